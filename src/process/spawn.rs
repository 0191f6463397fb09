//! Starting a worker process (the current executable, re-run) and describing how one ended.
//!
//! OS process code, outside loom's scope. Every worker is started from the pool's manager thread, which lives
//! as long as any worker: on Linux the parent-death signal fires when the *thread* that forked the child exits.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use rustix::process::Signal;

use super::worker::ENV;

/// A started worker: the process and the parent's end of its protocol socket.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) conn: UnixStream,
}

/// Starts `exe` as a worker: its protocol socket is an inherited fd >= 3 (every other fd of this process is
/// close-on-exec), its stdin is `/dev/null`, and its stdout and stderr are this process's.
pub(crate) fn spawn_worker(exe: &Path, token: &str, max_frame: usize) -> io::Result<Spawned> {
    // Both ends are close-on-exec: no other child, ours or the program's, inherits them.
    let (conn, child_end) = UnixStream::pair()?;
    let child_end: OwnedFd = if child_end.as_raw_fd() < 3 {
        // Only if stdin/stdout/stderr were closed: keep clear of the fds the child's stdio setup rewrites.
        rustix::io::fcntl_dupfd_cloexec(&child_end, 3)?
    } else {
        child_end.into()
    };
    let fd = child_end.as_raw_fd();
    let parent = std::process::id();
    let mut command = Command::new(exe);
    command
        .env(ENV, format!("{parent}:{fd}:{max_frame}:{token}"))
        .stdin(Stdio::null());
    let in_child = move || -> io::Result<()> {
        // SAFETY: `child_end` stays open in the parent until `spawn` returns, so this fd is open in the forked
        // child; it is only borrowed for the call below.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        // Let exactly this child inherit its end of the socket.
        rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::empty())?;
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
    drop(child_end);
    Ok(Spawned { child, conn })
}

/// Sends `signal` to the process `pid`. The caller guarantees `pid` is a child not yet reaped, so it cannot
/// name a recycled pid.
pub(crate) fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // ESRCH cannot happen for an unreaped child; any other failure leaves the worker to end on its own.
        let _ = rustix::process::kill_process(pid, signal);
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
