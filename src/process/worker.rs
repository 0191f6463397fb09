//! The worker process's side: recognising the pool's invitation, and the loop that runs registered tasks.
//!
//! This is OS process and socket code, outside loom's scope: it runs in its own process, on its main thread.

use std::cell::{Cell, RefCell};
use std::io::BufReader;

use super::protocol::{
    Call, FrameBuf, Hello, Identity, MAGIC, ReadError, Reply, Status, VERSION, read_frame,
    write_frame,
};
use super::registry::Installed;
use super::sys::{self, EXIT_PROTOCOL, Invitation};
use crate::Error;
use crate::sync::thread_local;

thread_local! {
    /// Whether this thread is running a task (so the panic hook records the location instead of printing).
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static IN_TASK: Cell<bool> = Cell::new(false);
    /// Where the task running on this thread panicked.
    #[allow(clippy::missing_const_for_thread_local)]
    static PANIC_LOCATION: RefCell<Option<String>> = RefCell::new(None);
}

/// Marks the start of a task (or of one item of a `map` chunk inside it) on this thread; returns whether a task
/// was already running here, for [`leave_task`].
pub(crate) fn enter_task() -> bool {
    PANIC_LOCATION.with(|l| l.borrow_mut().take());
    IN_TASK.with(|t| t.replace(true))
}

/// Marks the end of what [`enter_task`] started (`outer`: what it returned); returns where it panicked, if it did.
pub(crate) fn leave_task(outer: bool) -> Option<String> {
    IN_TASK.with(|t| t.set(outer));
    PANIC_LOCATION.with(|l| l.borrow_mut().take())
}

/// Installs the worker's panic hook: a panic inside a task is recorded (message and location travel to the
/// parent as the task's error); any other panic goes to the previous hook.
pub(crate) fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_TASK.with(Cell::get) {
            if let Some(location) = info.location() {
                let text = format!(
                    "{}:{}:{}",
                    location.file(),
                    location.line(),
                    location.column()
                );
                PANIC_LOCATION.with(|l| *l.borrow_mut() = Some(text));
            }
        } else {
            previous(info);
        }
    }));
}

/// Serves tasks on the invitation's socket until the parent closes it, then exits the process.
pub(crate) fn run(invitation: Invitation, installed: Result<&'static Installed, Error>) -> ! {
    let conn = match sys::connect(&invitation) {
        Ok(conn) => conn,
        Err(status) => std::process::exit(status),
    };
    install_panic_hook();

    let (identity, registry_error) = match installed {
        Ok(installed) => (installed.identity.clone(), None),
        Err(ref error) => (
            Identity {
                tasks: 0,
                names_hash: 0,
                exe_size: 0,
                exe_mtime: 0,
            },
            Some(error.to_string()),
        ),
    };
    let hello = Reply::Hello(Hello {
        magic: MAGIC,
        version: VERSION,
        token: invitation.token,
        identity,
        pid: std::process::id(),
        registry_error,
    });
    let sent = FrameBuf::new(&hello)
        .ok()
        .and_then(|frame| frame.finish(invitation.max_frame).ok())
        .map(|frame| write_frame(&conn, &frame));
    if !matches!(sent, Some(Ok(()))) {
        std::process::exit(EXIT_PROTOCOL);
    }
    let Ok(installed) = installed else {
        // The parent refuses this worker; wait for it to close the socket.
        let _ = read_frame(&mut &conn, 0);
        std::process::exit(EXIT_PROTOCOL);
    };

    let mut reader = BufReader::with_capacity(64 * 1024, &conn);
    loop {
        let body = match read_frame(&mut reader, invitation.max_frame) {
            Ok(body) => body,
            Err(ReadError::Eof) => std::process::exit(0),
            Err(error) => {
                eprintln!("concurrent_futures worker {}: {error}", std::process::id());
                std::process::exit(EXIT_PROTOCOL);
            }
        };
        let Ok((call, payload)) = postcard::take_from_bytes::<Call<'_>>(&body) else {
            eprintln!(
                "concurrent_futures worker {}: a malformed task frame",
                std::process::id()
            );
            std::process::exit(EXIT_PROTOCOL);
        };
        let frame = run_call(installed, &call, payload, invitation.max_frame);
        if write_frame(&conn, &frame).is_err() {
            // The parent is gone or gave up on this worker.
            std::process::exit(EXIT_PROTOCOL);
        }
    }
}

/// Runs one call and builds its reply frame.
fn run_call(installed: &Installed, call: &Call<'_>, payload: &[u8], max_frame: usize) -> Vec<u8> {
    let reply = |status| Reply::Done {
        id: call.id,
        status,
    };
    let status = match installed.entries.get(call.name) {
        None => Status::UnknownTask(call.name.to_owned()),
        Some(entry) => match FrameBuf::new(&reply(Status::Ok)) {
            Ok(mut frame) => {
                let start = frame.len();
                match (entry.invoke)(payload, call.chunk, &mut frame) {
                    Status::Ok => match frame.finish(max_frame) {
                        Ok(bytes) => return bytes,
                        Err(size) => Status::TooLarge(format!(
                            "the result of `{}` takes {} bytes, more than the maximum frame size of \
                             {max_frame} bytes",
                            call.name,
                            size.saturating_sub(start)
                        )),
                    },
                    failure => {
                        frame.truncate(start);
                        failure
                    }
                }
            }
            Err(error) => Status::Serialization(error.to_string()),
        },
    };
    // A failure's frame is small; if even it cannot be built, the parent sees the worker exit instead.
    FrameBuf::new(&reply(status))
        .ok()
        .and_then(|frame| frame.finish(max_frame).ok())
        .unwrap_or_else(|| std::process::exit(EXIT_PROTOCOL))
}
