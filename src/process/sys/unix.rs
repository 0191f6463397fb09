//! Unix (Linux, macOS): a worker is the current executable started with `fork` + `exec`, talking over a socketpair
//! whose worker end it inherits as an fd >= 3; its death is seen with `waitid`, whatever happens to the socket.
//!
//! OS process code, outside loom's scope. Every worker is started from the pool's manager thread, which lives as
//! long as any worker: on Linux the parent-death signal fires when the *thread* that forked the child exits.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use super::{ENV, EXIT_ORPHANED};

/// The stream a pool and a worker exchange frames over.
pub(crate) type Stream = UnixStream;

/// A started worker: the process and the pool's side of its protocol socket.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) process: Process,
    pub(crate) conn: Conn,
}

/// The pool's side of a worker's protocol socket: its own end, and the worker's end, which the pool keeps open so
/// that the stream ends when the pool says so (after the worker's death), never earlier: a task that closes its
/// socket, or a forked copy of the worker that keeps it open, cannot fool the pool about the worker's life.
pub(crate) struct Conn {
    stream: UnixStream,
    peer: UnixStream,
    /// The write end of the worker's lifeline: the worker exits when it reads end of file there (this process
    /// died). Only held, never written.
    _lifeline: OwnedFd,
}

impl Conn {
    /// The stream to read replies from and write calls to.
    pub(crate) fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Makes reads give up (with `WouldBlock`/`TimedOut`) after `limit` without data; `None`: wait for ever.
    pub(crate) fn set_read_limit(&self, limit: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(limit)
    }

    /// Tells the worker to exit: it reads end of stream after the calls already sent. Writes fail from now on.
    pub(crate) fn close_calls(&self) {
        // Fails only if the socket is already shut down, which is what is wanted.
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// After the worker's death (with writes stopped by [`close_calls`](Self::close_calls)): the bytes of calls
    /// sent to it that it never read, in order. `None` if they cannot be known.
    pub(crate) fn unread_calls(&self) -> Option<Vec<u8>> {
        let mut unread = Vec::new();
        // The pool's writes are shut down, so this ends once the queued bytes are read.
        (&self.peer).read_to_end(&mut unread).ok()?;
        Some(unread)
    }

    /// After the worker's death: the reader sees end of stream once it has read every frame the worker sent.
    pub(crate) fn end_replies(&self) {
        let _ = self.peer.shutdown(std::net::Shutdown::Both);
    }
}

/// What the pool needs to stop a worker and to learn that it died, shared by the threads that do.
#[derive(Clone, Debug)]
pub(crate) struct Process {
    pid: Pid,
}

impl Process {
    pub(crate) fn id(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }

    /// Stops the worker: with `SIGTERM` if `gently` (`terminate_workers`), else `SIGKILL`. The caller guarantees
    /// it has not been reaped, so the pid cannot have been recycled.
    pub(crate) fn kill(&self, gently: bool) {
        let signal = if gently { Signal::TERM } else { Signal::KILL };
        // ESRCH cannot happen for an unreaped child; any other failure leaves the worker to end on its own.
        let _ = rustix::process::kill_process(self.pid, signal);
    }

    /// Kills and reaps a worker the pool could not take on (its `Child` is gone).
    pub(crate) fn discard(&self) {
        self.kill(false);
        let _ = rustix::process::waitpid(Some(self.pid), rustix::process::WaitOptions::empty());
    }

    /// Blocks until the worker has exited, without reaping it (so its pid stays reserved until the reader reaps
    /// it with `Child::wait`).
    pub(crate) fn wait_exit(&self) {
        loop {
            match rustix::process::waitid(
                WaitId::Pid(self.pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                // Exited (a zombie now), or already reaped by someone else (`SIGCHLD` ignored, a `waitpid(-1)`
                // elsewhere in the program): either way it is gone.
                _ => return,
            }
        }
    }
}

/// Starts `exe` as a worker. Its protocol socket is an inherited fd >= 3, and so is the read end of its lifeline
/// pipe (every other fd of this process is close-on-exec); its stdin is `/dev/null`, and its stdout and stderr
/// are this process's.
pub(crate) fn spawn_worker(exe: &Path, token: &str, max_frame: usize) -> io::Result<Spawned> {
    // Both ends are close-on-exec: no other child, ours or the program's, inherits them.
    let (conn, child_end) = UnixStream::pair()?;
    let child_end = above_stdio(child_end.into())?;
    let (lifeline_read, lifeline_write) = std::io::pipe()?;
    let lifeline_read = above_stdio(lifeline_read.into())?;
    let fd = child_end.as_raw_fd();
    let lifeline = lifeline_read.as_raw_fd();
    let parent = std::process::id();
    let mut command = Command::new(exe);
    command
        .env(ENV, format!("{parent}:{fd}:{max_frame}:{token}:{lifeline}"))
        .stdin(Stdio::null());
    let in_child = move || -> io::Result<()> {
        for fd in [fd, lifeline] {
            // SAFETY: `child_end` and `lifeline_read` stay open in the parent until `spawn` returns, so these fds
            // are open in the forked child; they are only borrowed for the call below.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            // Let exactly this child inherit them.
            rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::empty())?;
        }
        #[cfg(target_os = "linux")]
        {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died before the line above: then the signal will never come.
            if rustix::process::getppid().map(|p| p.as_raw_pid()) != Some(parent as i32) {
                return Err(rustix::io::Errno::SRCH.into());
            }
        }
        Ok(())
    };
    // SAFETY: the closure runs in the forked child before exec and only makes system calls that are
    // async-signal-safe (fcntl, prctl, getppid) through rustix, which does not allocate or take locks; its
    // errors are built from errno values, without allocating.
    unsafe {
        command.pre_exec(in_child);
    }
    let child = command.spawn()?;
    drop(lifeline_read);
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::other("the worker has no valid pid"))?;
    Ok(Spawned {
        child,
        process: Process { pid },
        conn: Conn {
            stream: conn,
            peer: UnixStream::from(child_end),
            _lifeline: lifeline_write.into(),
        },
    })
}

/// `fd` itself if it is above the standard streams, else a close-on-exec duplicate that is (needed only if
/// stdin, stdout or stderr were closed: keep clear of the fds the child's stdio setup rewrites).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() < 3 {
        Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
    } else {
        Ok(fd)
    }
}

/// How a worker ended, in words: `exit status 3`, `killed by signal 9 (SIGKILL)`.
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    if let Some(number) = status.signal() {
        let core = if status.core_dumped() {
            ", core dumped"
        } else {
            ""
        };
        return match signal_name(number) {
            Some(name) => format!("killed by signal {number} ({name}{core})"),
            None => format!("killed by signal {number}{core}"),
        };
    }
    format!("{status}")
}

fn signal_name(number: i32) -> Option<&'static str> {
    const NAMES: [(Signal, &str); 14] = [
        (Signal::HUP, "SIGHUP"),
        (Signal::INT, "SIGINT"),
        (Signal::QUIT, "SIGQUIT"),
        (Signal::ILL, "SIGILL"),
        (Signal::TRAP, "SIGTRAP"),
        (Signal::ABORT, "SIGABRT"),
        (Signal::BUS, "SIGBUS"),
        (Signal::FPE, "SIGFPE"),
        (Signal::KILL, "SIGKILL"),
        (Signal::SEGV, "SIGSEGV"),
        (Signal::PIPE, "SIGPIPE"),
        (Signal::ALARM, "SIGALRM"),
        (Signal::TERM, "SIGTERM"),
        (Signal::USR1, "SIGUSR1"),
    ];
    NAMES
        .iter()
        .find(|(signal, _)| signal.as_raw() == number)
        .map(|(_, name)| *name)
}

// ---------------------------------------------------------------------------------------------------------------
// The worker's side

/// What the pool told a worker through [`ENV`]: `{parent pid}:{socket fd}:{max frame}:{token}:{lifeline fd}`.
pub(crate) struct Invitation {
    fd: RawFd,
    lifeline: RawFd,
    pub(crate) max_frame: usize,
    pub(crate) token: String,
}

/// This process's invitation into worker mode, if it has a valid one: the variable parses, names this
/// process's parent, and its fds are open (a socket and a pipe). An inherited variable alone (a grandchild of a
/// pool, say) never enters worker mode.
pub(crate) fn invitation() -> Option<Invitation> {
    let value = std::env::var(ENV).ok()?;
    let mut parts = value.splitn(5, ':');
    let parent: i32 = parts.next()?.parse().ok()?;
    let fd: RawFd = parts.next()?.parse().ok()?;
    let max_frame: usize = parts.next()?.parse().ok()?;
    let token = parts.next()?.to_owned();
    let lifeline: RawFd = parts.next()?.parse().ok()?;
    if fd < 3 || lifeline < 3 || fd == lifeline || token.is_empty() {
        return None;
    }
    if rustix::process::getppid().map(|p| p.as_raw_pid()) != Some(parent) {
        return None;
    }
    let is = |fd: RawFd, kind: rustix::fs::FileType| {
        // SAFETY: only borrowed for the `fstat`, which fails cleanly (EBADF) if the fd is not open.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        rustix::fs::fstat(borrowed)
            .is_ok_and(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode) == kind)
    };
    if !is(fd, rustix::fs::FileType::Socket) || !is(lifeline, rustix::fs::FileType::Fifo) {
        return None;
    }
    Some(Invitation {
        fd,
        lifeline,
        max_frame,
        token,
    })
}

/// Takes the worker's end of its protocol socket, and starts the thread that ends this process when the pool's
/// process dies (on Linux the parent-death signal does it too; on macOS, which has none, this thread is what
/// does). `Err` with an exit status if this process cannot serve.
pub(crate) fn connect(invitation: &Invitation) -> Result<Stream, i32> {
    // SAFETY: `invitation()` checked that these fds are open (a socket and a pipe); the parent passed them to
    // this process for worker mode alone, and nothing else in it takes ownership of them.
    let (socket, lifeline) = unsafe {
        (
            OwnedFd::from_raw_fd(invitation.fd),
            OwnedFd::from_raw_fd(invitation.lifeline),
        )
    };
    // Tasks that start programs of their own must not hand them these fds.
    for fd in [&socket, &lifeline] {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)
            .map_err(|_| super::EXIT_PROTOCOL)?;
    }
    std::thread::Builder::new()
        .name("concurrent-futures-lifeline".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut byte = [0u8; 1];
            // The pool never writes: this returns when its process is gone (or on an error, which means the same).
            while let Err(rustix::io::Errno::INTR) = rustix::io::read(&lifeline, &mut byte) {}
            std::process::exit(EXIT_ORPHANED);
        })
        .map_err(|_| super::EXIT_PROTOCOL)?;
    Ok(UnixStream::from(socket))
}
