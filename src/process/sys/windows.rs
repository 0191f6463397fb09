//! Windows: a worker is the current executable started in worker mode, connected back to the pool over a
//! loopback TCP connection and authenticated by the pool's token in its hello; the pool's processes belong to a
//! job object that kills them when the pool's process dies, and each worker also watches its parent process and
//! exits when it ends (a second line of defence, as the lifeline pipe is on Unix).
//!
//! Why TCP and not inherited pipes: a handle made inheritable for one child is inherited by any process another
//! thread starts at the same moment (std serialises only its own spawns, and does not let a caller restrict the
//! inherited handles), and such a stray copy would keep the stream open past the worker's death. std's sockets are
//! never inheritable, so only the worker ever holds its end; sockets also take read timeouts, which the stall
//! limit needs and anonymous pipes lack. Each worker gets a listener of its own on 127.0.0.1, bound to a port the
//! system picks, which accepts one connection.
//!
//! OS process code, outside loom's scope.

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::windows::io::{AsHandle, AsRawHandle, OwnedHandle};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW, TH32CS_SNAPPROCESS,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
    SetInformationJobObject,
};
use windows_sys::Win32::System::Threading::{
    INFINITE, OpenProcess, PROCESS_SYNCHRONIZE, TerminateProcess, WaitForSingleObject,
};

use super::ENV;

/// The stream a pool and a worker exchange frames over.
pub(crate) type Stream = TcpStream;

/// Exit status of a worker whose pool's process died (as on Unix).
const EXIT_ORPHANED: i32 = 71;

/// The exit status the pool gives a worker it kills (`kill_workers`, a timeout, a broken protocol).
const KILLED: u32 = 0xC000_0000 | 0x0CF_9009;

/// The exit status the pool gives a worker it terminates (`terminate_workers`).
const TERMINATED: u32 = 0xC000_0000 | 0x0CF_9015;

/// A started worker: the process and the pool's side of its connection.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) process: Process,
    pub(crate) conn: Conn,
}

/// The pool's side of a worker's connection: the listener it connects to, then the connection.
pub(crate) struct Conn {
    listener: TcpListener,
    address: SocketAddr,
    stream: OnceLock<TcpStream>,
}

impl Conn {
    /// The connection, once the worker made it. The reader waits for it ([`accept`](Self::accept)) before
    /// anything else touches the stream, and nothing is written before the worker's hello was read.
    pub(crate) fn stream(&self) -> &Stream {
        self.stream.get().unwrap_or_else(|| {
            unreachable!("the worker's connection is used before it was accepted")
        })
    }

    /// Waits for the worker to connect (or, if it exits first, for [`end_replies`](Self::end_replies) to wake
    /// this up with a connection that ends at once).
    pub(crate) fn accept(&self) -> io::Result<()> {
        let (stream, _) = self.listener.accept()?;
        stream.set_nodelay(true)?;
        let _ = self.stream.set(stream);
        Ok(())
    }

    /// Makes reads give up (with `TimedOut`) after `limit` without data; `None`: wait for ever.
    pub(crate) fn set_read_limit(&self, limit: Option<Duration>) -> io::Result<()> {
        self.stream().set_read_timeout(limit)
    }

    /// Tells the worker to exit: it reads end of stream after the calls already sent. Writes fail from now on.
    pub(crate) fn close_calls(&self) {
        if let Some(stream) = self.stream.get() {
            let _ = stream.shutdown(Shutdown::Write);
        }
    }

    /// The calls the worker never read cannot be known on Windows: its socket is gone with it.
    pub(crate) fn unread_calls(&self) -> Option<Vec<u8>> {
        None
    }

    /// After the worker's death: its stream ended with it (the system closes a process's sockets when it
    /// exits), unless it died before connecting, in which case the reader still waits in `accept`: a connection
    /// of our own, closed at once, ends that wait.
    pub(crate) fn end_replies(&self) {
        if self.stream.get().is_none() {
            drop(TcpStream::connect_timeout(
                &self.address,
                Duration::from_secs(5),
            ));
        }
    }
}

/// What the pool needs to stop a worker and to learn that it died, shared by the threads that do: a handle of
/// its own to the process (valid until dropped, so never a recycled process).
#[derive(Clone, Debug)]
pub(crate) struct Process {
    handle: Arc<OwnedHandle>,
    pid: u32,
}

impl Process {
    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// Stops the worker with `TerminateProcess` (Windows has no gentler way for a program without a window or
    /// a console of its own): `gently` only changes the exit status it gets.
    pub(crate) fn kill(&self, gently: bool) {
        let code = if gently { TERMINATED } else { KILLED };
        // SAFETY: the handle is open (owned by `self.handle`) and has PROCESS_TERMINATE access (a duplicate of
        // the one `CreateProcess` returned, with the same access). A failure means it already exited.
        unsafe {
            TerminateProcess(self.raw(), code);
        }
    }

    /// Kills a worker the pool could not take on.
    pub(crate) fn discard(&self) {
        self.kill(false);
        self.wait_exit();
    }

    /// Blocks until the worker has exited.
    pub(crate) fn wait_exit(&self) {
        // SAFETY: the handle is open and has SYNCHRONIZE access; an error (which cannot happen for a valid
        // process handle) returns at once.
        unsafe {
            WaitForSingleObject(self.raw(), INFINITE);
        }
    }

    fn raw(&self) -> HANDLE {
        self.handle.as_raw_handle() as HANDLE
    }
}

/// The job object every worker of this process belongs to. Its only handle is this process's, so when this
/// process dies, however it dies, the job closes and the system kills its workers (`KILL_ON_JOB_CLOSE`).
/// `None` if it could not be set up (the workers then exit when they find their connection closed).
fn job() -> Option<&'static OwnedHandle> {
    static JOB: OnceLock<Option<OwnedHandle>> = OnceLock::new();
    JOB.get_or_init(|| {
        // SAFETY: plain calls with valid arguments: no security attributes (not inheritable), no name; the
        // information structure is fully initialised and its size is passed.
        unsafe {
            let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
            if job.is_null() {
                log::warn!(target: "concurrent_futures", "could not create a job object for the process pool's workers: {}", io::Error::last_os_error());
                return None;
            }
            let job = <OwnedHandle as std::os::windows::io::FromRawHandle>::from_raw_handle(job.cast());
            let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
            limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            let set = SetInformationJobObject(
                job.as_raw_handle() as HANDLE,
                JobObjectExtendedLimitInformation,
                (&raw const limits).cast(),
                size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            );
            if set == 0 {
                log::warn!(target: "concurrent_futures", "could not make the workers' job object kill them with this process: {}", io::Error::last_os_error());
                return None;
            }
            Some(job)
        }
    })
    .as_ref()
}

/// Starts `exe` as a worker and puts it in the pool's job object (before it can have reached `main`'s
/// worker-mode line: if this process died in between, the worker would find no pool to connect to, and exit). It
/// connects to a listener of its own on 127.0.0.1 (the port travels in its invitation, with the token it presents
/// in its hello); its stdin is `NUL`, and its stdout and stderr are this process's.
pub(crate) fn spawn_worker(exe: &Path, token: &str, max_frame: usize) -> io::Result<Spawned> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let address = listener.local_addr()?;
    let parent = std::process::id();
    let port = address.port();
    let mut child = Command::new(exe)
        .env(ENV, format!("{parent}:{port}:{max_frame}:{token}"))
        .stdin(Stdio::null())
        .spawn()?;
    let handle = match child.as_handle().try_clone_to_owned() {
        Ok(handle) => handle,
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
    };
    if let Some(job) = job() {
        // SAFETY: both handles are open; a process can belong to nested jobs (Windows 8 and later).
        let assigned = unsafe {
            AssignProcessToJobObject(
                job.as_raw_handle() as HANDLE,
                handle.as_raw_handle() as HANDLE,
            )
        };
        if assigned == 0 {
            log::warn!(target: "concurrent_futures", "could not put worker process {} in the pool's job object: {}", child.id(), io::Error::last_os_error());
        }
    }
    Ok(Spawned {
        process: Process {
            handle: Arc::new(handle),
            pid: child.id(),
        },
        child,
        conn: Conn {
            listener,
            address,
            stream: OnceLock::new(),
        },
    })
}

/// How a worker ended, in words: `exit status 3`, `killed by the pool (TerminateProcess)`,
/// `exit status 0xC0000409 (STATUS_STACK_BUFFER_OVERRUN: an abort or a failed runtime check)`.
pub(crate) fn describe(status: ExitStatus) -> String {
    let Some(code) = status.code() else {
        return format!("{status}");
    };
    let code = code as u32;
    match code {
        KILLED => "killed by the pool (TerminateProcess)".to_owned(),
        TERMINATED => "terminated by the pool (TerminateProcess)".to_owned(),
        _ if code >= 0xC000_0000 => match status_name(code) {
            Some(name) => format!("exit status {code:#010X} ({name})"),
            None => format!("exit status {code:#010X}"),
        },
        _ => format!("exit status {}", code as i32),
    }
}

fn status_name(code: u32) -> Option<&'static str> {
    const NAMES: [(u32, &str); 8] = [
        (0xC000_0005, "STATUS_ACCESS_VIOLATION"),
        (0xC000_001D, "STATUS_ILLEGAL_INSTRUCTION"),
        (0xC000_0094, "STATUS_INTEGER_DIVIDE_BY_ZERO"),
        (0xC000_00FD, "STATUS_STACK_OVERFLOW"),
        (0xC000_013A, "STATUS_CONTROL_C_EXIT"),
        (0xC000_0374, "STATUS_HEAP_CORRUPTION"),
        (
            0xC000_0409,
            "STATUS_STACK_BUFFER_OVERRUN: an abort or a failed runtime check",
        ),
        (0xC000_0017, "STATUS_NO_MEMORY"),
    ];
    NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

// ---------------------------------------------------------------------------------------------------------------
// The worker's side

/// What the pool told a worker through [`ENV`]: `{parent pid}:{port}:{max frame}:{token}`.
pub(crate) struct Invitation {
    parent: u32,
    port: u16,
    pub(crate) max_frame: usize,
    pub(crate) token: String,
}

/// This process's invitation into worker mode, if it has a valid one: the variable parses and names this
/// process's parent. An inherited variable alone (a grandchild of a pool, say) never enters worker mode.
pub(crate) fn invitation() -> Option<Invitation> {
    let value = std::env::var(ENV).ok()?;
    let mut parts = value.splitn(4, ':');
    let parent: u32 = parts.next()?.parse().ok()?;
    let port: u16 = parts.next()?.parse().ok()?;
    let max_frame: usize = parts.next()?.parse().ok()?;
    let token = parts.next()?.to_owned();
    if port == 0 || token.is_empty() || parent_pid() != Some(parent) {
        return None;
    }
    Some(Invitation {
        parent,
        port,
        max_frame,
        token,
    })
}

/// The pid of the process that started this one.
fn parent_pid() -> Option<u32> {
    let me = std::process::id();
    // SAFETY: a snapshot handle, closed below; the entry is initialised with its size as the API requires.
    unsafe {
        let snapshot = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
        if snapshot == INVALID_HANDLE_VALUE || snapshot.is_null() {
            return None;
        }
        let snapshot =
            <OwnedHandle as std::os::windows::io::FromRawHandle>::from_raw_handle(snapshot.cast());
        let mut entry = PROCESSENTRY32W {
            dwSize: size_of::<PROCESSENTRY32W>() as u32,
            ..Default::default()
        };
        let raw = snapshot.as_raw_handle() as HANDLE;
        let mut more = Process32FirstW(raw, &mut entry) != 0;
        while more {
            if entry.th32ProcessID == me {
                return Some(entry.th32ParentProcessID);
            }
            more = Process32NextW(raw, &mut entry) != 0;
        }
        None
    }
}

/// Connects to the pool, and starts the thread that ends this process when the pool's process ends. The job
/// object does that already; under Wine, whose job objects do not always kill a job's processes when its last
/// handle closes with a killed process, and wherever a job cannot be assigned, this thread is what does. `Err`
/// with an exit status if this process cannot serve.
pub(crate) fn connect(invitation: &Invitation) -> Result<Stream, i32> {
    // SAFETY: OpenProcess takes no pointers; a null result is checked, and the handle is owned below.
    let parent = unsafe { OpenProcess(PROCESS_SYNCHRONIZE, 0, invitation.parent) };
    if parent.is_null() {
        // The pool's process is already gone.
        return Err(EXIT_ORPHANED);
    }
    // SAFETY: a valid process handle that nothing else owns.
    let parent: OwnedHandle = unsafe {
        <OwnedHandle as std::os::windows::io::FromRawHandle>::from_raw_handle(parent.cast())
    };
    std::thread::Builder::new()
        .name("concurrent-futures-lifeline".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            // SAFETY: the handle stays open (owned by this closure) for the whole wait.
            unsafe { WaitForSingleObject(parent.as_raw_handle() as HANDLE, INFINITE) };
            std::process::exit(EXIT_ORPHANED);
        })
        .map_err(|_| super::EXIT_PROTOCOL)?;
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, invitation.port))
        .map_err(|_| super::EXIT_PROTOCOL)?;
    stream.set_nodelay(true).map_err(|_| super::EXIT_PROTOCOL)?;
    Ok(stream)
}
