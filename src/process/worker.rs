//! The worker process's side: recognising the pool's invitation, and the loop that runs registered tasks.
//!
//! This is OS process and socket code, outside loom's scope: it runs in its own process, on its main thread.

use std::cell::{Cell, RefCell};
use std::io::BufReader;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use super::protocol::{
    Call, FrameBuf, Hello, Identity, MAGIC, ReadError, Reply, Status, VERSION, read_frame,
    write_frame,
};
use super::registry::Installed;
use crate::Error;
use crate::sync::thread_local;

/// The environment variable through which a pool invites the process it starts into worker mode:
/// `{parent pid}:{socket fd}:{max frame size}:{token}`.
pub(crate) const ENV: &str = "CONCURRENT_FUTURES_WORKER";

/// Exit status of a worker that lost its protocol stream or received a malformed frame.
const EXIT_PROTOCOL: i32 = 70;

/// What the parent told a worker through [`ENV`].
pub(crate) struct Invitation {
    fd: RawFd,
    max_frame: usize,
    token: String,
}

/// This process's invitation into worker mode, if it has a valid one: the variable parses, names this
/// process's parent, and its fd is an open socket. An inherited variable alone (a grandchild of a pool, say)
/// never enters worker mode.
pub(crate) fn invitation() -> Option<Invitation> {
    let value = std::env::var(ENV).ok()?;
    let mut parts = value.splitn(4, ':');
    let parent: i32 = parts.next()?.parse().ok()?;
    let fd: RawFd = parts.next()?.parse().ok()?;
    let max_frame: usize = parts.next()?.parse().ok()?;
    let token = parts.next()?.to_owned();
    if fd < 3 || token.is_empty() {
        return None;
    }
    if rustix::process::getppid().map(|p| p.as_raw_pid()) != Some(parent) {
        return None;
    }
    // SAFETY: only borrowed for the `fstat` below, which fails cleanly (EBADF) if the fd is not open.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let stat = rustix::fs::fstat(borrowed).ok()?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        return None;
    }
    Some(Invitation {
        fd,
        max_frame,
        token,
    })
}

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
    // SAFETY: `invitation()` checked that this fd is open and a socket; the parent passed it to this process for
    // worker mode alone, and nothing else in it takes ownership of the fd.
    let fd = unsafe { OwnedFd::from_raw_fd(invitation.fd) };
    // Tasks that start programs of their own must not hand them the protocol socket.
    if rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).is_err() {
        std::process::exit(EXIT_PROTOCOL);
    }
    let conn = UnixStream::from(fd);
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
