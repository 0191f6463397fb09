//! [`ProcessPoolBuilder`]: the process pool's options, checked when the pool is built.

use std::any::Any;
use std::fmt;
use std::time::Duration;

use super::codec::{Codec, codec_of};
use super::pool::{self, Config, InitCheck, Initializer, Shared};
use super::protocol::DEFAULT_MAX_FRAME;
use super::registry::installed;
use super::{Payload, ProcessPoolExecutor};
use crate::Error;
use crate::sync::{Arc, AtomicUsize};

/// Python's default worker count for a process pool: the number of CPUs.
fn default_max_workers() -> usize {
    num_cpus::get().max(1)
}

/// Builds a [`ProcessPoolExecutor`]: Python's `max_workers`, `initializer` and `max_tasks_per_child`, plus a
/// per-task timeout and the maximum frame size.
///
/// ```no_run
/// use std::time::Duration;
/// use concurrent_futures::ProcessPoolExecutor;
///
/// fn setup(level: u8) -> Result<(), String> {
///     if level > 3 { Err(format!("no level {level}")) } else { Ok(()) }
/// }
///
/// fn main() -> Result<(), concurrent_futures::Error> {
///     concurrent_futures::process_main!(setup)?;
///     let pool = ProcessPoolExecutor::builder()
///         .max_workers(2)
///         .initializer(setup, 1)
///         .max_tasks_per_child(100)
///         .timeout(Duration::from_secs(60))
///         .build()?;
///     # drop(pool);
///     Ok(())
/// }
/// ```
#[must_use]
#[cfg_attr(docsrs, doc(cfg(feature = "process")))]
pub struct ProcessPoolBuilder {
    max_workers: Option<usize>,
    max_tasks_per_child: Option<usize>,
    timeout: Option<Duration>,
    startup_timeout: Duration,
    stall_timeout: Duration,
    tasks_ahead: usize,
    max_frame_size: usize,
    initializer: Option<Result<PendingInit, Error>>,
}

/// How long a new worker may take to reach the worker-mode line, by default.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a worker may leave a frame half-sent, by default.
const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An initializer as given to the builder: its codec and argument, and how to read its result.
struct PendingInit {
    codec: &'static Codec,
    arg: Box<dyn Any + Send>,
    check: InitCheck,
}

impl fmt::Debug for ProcessPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("timeout", &self.timeout)
            .field("startup_timeout", &self.startup_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("tasks_ahead", &self.tasks_ahead)
            .field("max_frame_size", &self.max_frame_size)
            .field(
                "initializer",
                &self
                    .initializer
                    .as_ref()
                    .map(|init| init.as_ref().map(|init| init.codec.name)),
            )
            .finish()
    }
}

impl ProcessPoolBuilder {
    /// The most worker processes at once (default: the number of CPUs, as in Python). Must be at least 1.
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = Some(max_workers);
        self
    }

    /// Runs `f(arg)` in each worker process before its first task (Python's `initializer`/`initargs`). `f` must
    /// be registered like a task. If it returns `Err` or panics, the pool is broken: queued tasks and later
    /// submits fail with [`Error::Broken`] carrying the reason.
    pub fn initializer<F, A, E>(mut self, f: F, arg: A) -> Self
    where
        F: Fn(A) -> Result<(), E> + Copy + Send + Sync + 'static,
        A: Payload,
        E: Payload + fmt::Display,
    {
        let _ = f; // zero-sized: its type is all that travels
        self.initializer = Some(codec_of::<F>().map(|codec| PendingInit {
            codec,
            arg: Box::new(arg),
            check: Box::new(|bytes| match postcard::from_bytes::<Result<(), E>>(bytes) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(error) => Err(format!("could not decode its result: {error}")),
            }),
        }));
        self
    }

    /// Replaces a worker process with a fresh one after it has run `max` tasks (a `map` chunk counts as one).
    /// Must be at least 1. Unlimited by default.
    pub fn max_tasks_per_child(mut self, max: usize) -> Self {
        self.max_tasks_per_child = Some(max);
        self
    }

    /// Kills a task's worker when the task has run for `timeout` (counted from when it is sent to a worker):
    /// its future fails with [`Error::TaskTimeout`] and a new worker takes its place. No limit by default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long a new worker process may take to start serving (to reach
    /// [`process_main!`](crate::process_main) in `main` and introduce itself). A worker that does not is killed
    /// and the pool is broken ([`Error::Broken`] saying so): `main` probably does something slow, or blocks,
    /// before the worker-mode line. Default 60 s.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// How long a worker may stop in the middle of sending a frame (a result, or its hello) before the pool
    /// gives up on it: a sound worker writes each frame at once, so one that stalls has a task writing on its
    /// protocol socket or is stuck. The worker is killed and replaced, and its task fails with
    /// [`Error::Protocol`]. Waiting *between* frames (while a task runs) is never limited by this. Default 10 s;
    /// must not be zero.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// Lets a busy worker hold up to `n` more tasks (small ones, up to 16 KiB encoded) behind the one it runs,
    /// so that it starts the next one without waiting for the pool to read its result: much faster for many
    /// tiny tasks. The price, as in CPython's process pool (which sends one task ahead): a task sent ahead is
    /// marked running and can no longer be cancelled. Default 0: every queued task stays cancellable until a
    /// worker starts it, as in the thread pool. At most 8.
    ///
    /// If a worker dies, only the task it was running fails; the ones it held go to other workers.
    pub fn tasks_ahead(mut self, n: usize) -> Self {
        self.tasks_ahead = n;
        self
    }

    /// The largest frame (an encoded argument or result plus a few bytes) either side accepts; larger ones are
    /// refused with [`Error::Protocol`]. Default 1 GiB; between 4 KiB and 4 GiB - 1.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Builds the pool; no worker starts until the first task. Fails if the program has not installed its
    /// task registry ([`process_main!`](crate::process_main)), if an option is out of range
    /// ([`Error::InvalidArgument`]), or if the initializer is not registered ([`Error::UnknownTask`]).
    pub fn build(self) -> Result<ProcessPoolExecutor, Error> {
        let registry = installed()?;
        let max_workers = self.max_workers.unwrap_or_else(default_max_workers);
        if max_workers == 0 {
            return Err(Error::InvalidArgument(
                "max_workers must be greater than 0".into(),
            ));
        }
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::InvalidArgument(
                "max_tasks_per_child must be at least 1".into(),
            ));
        }
        if self.tasks_ahead > 8 {
            return Err(Error::InvalidArgument(
                "tasks_ahead must be at most 8".into(),
            ));
        }
        if self.stall_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "stall_timeout must not be zero".into(),
            ));
        }
        if !(4096..=u32::MAX as usize).contains(&self.max_frame_size) {
            return Err(Error::InvalidArgument(format!(
                "max_frame_size must be between 4096 and {} bytes",
                u32::MAX
            )));
        }
        let initializer = match self.initializer {
            None => None,
            Some(init) => {
                let init = init?;
                let frame = init.codec.call(0, false, &*init.arg, self.max_frame_size)?;
                Some(Initializer {
                    frame,
                    check: init.check,
                })
            }
        };
        let exe = std::env::current_exe().map_err(|error| Error::Broken {
            reason: format!("cannot find the current executable to start workers: {error}"),
        })?;
        let shared = Shared::start(Config {
            max_workers,
            max_tasks_per_child: self.max_tasks_per_child,
            timeout: self.timeout,
            startup_timeout: self.startup_timeout,
            stall_timeout: self.stall_timeout,
            ahead: self.tasks_ahead,
            max_frame: self.max_frame_size,
            initializer,
            exe,
            token: pool::random_token(),
            identity: registry.identity.clone(),
        })?;
        Ok(ProcessPoolExecutor {
            shared,
            handles: Arc::new(AtomicUsize::new(1)),
        })
    }
}

impl ProcessPoolBuilder {
    /// The defaults.
    pub(super) fn new() -> Self {
        ProcessPoolBuilder {
            max_workers: None,
            max_tasks_per_child: None,
            timeout: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            tasks_ahead: 0,
            max_frame_size: DEFAULT_MAX_FRAME,
            initializer: None,
        }
    }
}
