//! The crate's one error type, mirroring Python's `concurrent.futures` exceptions.

use std::fmt;
use std::time::Duration;

/// Everything that can go wrong with a future or an executor.
///
/// Python raises `CancelledError`, `TimeoutError`, `InvalidStateError` and `BrokenExecutor`; here each is a
/// variant, and a task's panic is one too. `Error` is `Clone`, so a future's error can be read any number of times.
///
/// ```
/// use concurrent_futures::{Error, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(1)?;
/// let future = pool.submit(|| -> u32 { panic!("boom") })?;
/// match future.result() {
///     Err(Error::Panicked { message }) => assert!(message.contains("boom")),
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The future was cancelled before it ran (Python's `CancelledError`).
    Cancelled,
    /// A wait gave up before enough futures finished (Python's `TimeoutError`): `unfinished` of `total`.
    Timeout {
        /// How many of the awaited futures had not finished.
        unfinished: usize,
        /// How many futures were awaited.
        total: usize,
    },
    /// The task panicked; `message` is the panic's message (and its location when known).
    Panicked {
        /// The panic payload as text.
        message: String,
    },
    /// The executor was shut down: "cannot schedule new futures after shutdown".
    Shutdown,
    /// The executor is broken (for example its initializer failed) and runs nothing more (Python's
    /// `BrokenExecutor`).
    Broken {
        /// Why the executor broke.
        reason: String,
    },
    /// `try_submit` found the executor's bounded queue full.
    Full,
    /// An argument was out of range, such as `max_workers == 0` or `chunksize == 0` (Python's `ValueError`).
    InvalidArgument(String),
    /// The operation does not fit the future's state, such as setting a result twice (Python's
    /// `InvalidStateError`).
    InvalidState(String),
    /// The worker process running the task died (process pools).
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// Its exit status or the signal that killed it.
        reason: String,
    },
    /// The task ran past its time limit and its worker was stopped (process pools).
    TaskTimeout {
        /// The limit it ran past.
        timeout: Duration,
        /// The worker that was stopped: `pid 1234` (process pool), or the local worker process and the MPI rank
        /// and host it ran on (MPI pool).
        worker: String,
    },
    /// An argument or a result could not be encoded or decoded (process pools).
    Serialization(String),
    /// The function (named here) is not registered for process pools: list it in
    /// `concurrent_futures::process_main!(...)` at the top of `main` (process pools).
    UnknownTask(String),
    /// The parent and a worker process could not understand each other: a malformed or oversized frame, or two
    /// different builds of the program (process pools).
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cancelled => f.write_str("the future was cancelled"),
            Error::Timeout { unfinished, total } if *total <= 1 && *unfinished <= 1 => {
                f.write_str("timed out waiting for the future")
            }
            Error::Timeout { unfinished, total } => {
                write!(f, "{unfinished} (of {total}) futures unfinished")
            }
            Error::Panicked { message } => write!(f, "the task panicked: {message}"),
            Error::Shutdown => f.write_str("cannot schedule new futures after shutdown"),
            Error::Broken { reason } => write!(f, "the executor is broken: {reason}"),
            Error::Full => f.write_str("the executor's queue is full"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::InvalidState(what) => write!(f, "invalid state: {what}"),
            Error::WorkerDied { pid, reason } => {
                write!(
                    f,
                    "the worker process (pid {pid}) running the task died: {reason}"
                )
            }
            Error::TaskTimeout { timeout, worker } => {
                write!(
                    f,
                    "the task ran longer than its timeout of {timeout:?} and its worker ({worker}) was stopped"
                )
            }
            Error::Serialization(what) => write!(f, "could not serialize or deserialize: {what}"),
            Error::UnknownTask(name) => write!(
                f,
                "no task named `{name}` is registered: list it in `concurrent_futures::process_main!(...)` \
                 at the top of `main`"
            ),
            Error::Protocol(what) => write!(f, "worker protocol error: {what}"),
        }
    }
}

impl std::error::Error for Error {}
