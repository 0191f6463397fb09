//! The operating system's side of a process pool: starting a worker, the stream to it, stopping it, seeing it
//! exit, and the worker's own view of its invitation. One implementation per platform family, with the same names.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use self::unix::*;

/// The environment variable through which a pool invites the process it starts into worker mode (its format is
/// the platform's: see `Invitation`).
pub(crate) const ENV: &str = "CONCURRENT_FUTURES_WORKER";

/// Exit status of a worker that lost its protocol stream or received a malformed frame.
pub(crate) const EXIT_PROTOCOL: i32 = 70;

/// Exit status of a worker whose pool's process died while it ran a task.
pub(crate) const EXIT_ORPHANED: i32 = 71;
