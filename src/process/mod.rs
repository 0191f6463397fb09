//! [`ProcessPoolExecutor`]: Python's process pool, with workers that survive each other's crashes and tasks
//! that can be killed when they run too long.
//!
//! Workers are the current executable re-run in worker mode, entered through
//! [`process_main!`](crate::process_main) at the top of `main`. Tasks are functions the program registered
//! there; arguments and results are serde values encoded with postcard, sent as length-prefixed frames over a
//! private socket (stdin is `/dev/null`, stdout and stderr are the program's). The parent side is in `pool.rs`,
//! the child's loop in `worker.rs`, the frames in `protocol.rs`.
//!
//! Process, socket and signal code is outside loom's scope: the loom build compiles this module but its models
//! do not exercise it; the process-pool tests do.

mod pool;
mod protocol;
#[cfg(feature = "mpi")]
mod raw;
mod registry;
mod spawn;
mod worker;

// What the MPI pool (`crate::mpi`) reuses: the task registry, the payload statuses, the typed pending futures
// and the raw submission its worker ranks run tasks through.
#[cfg(feature = "mpi")]
pub(crate) use self::{
    protocol::Status,
    raw::{RawInit, RawOutcome, RawPool},
    registry::Installed,
    worker::{ENV as WORKER_ENV, install_panic_hook},
};

use std::any::TypeId;
use std::fmt;
use std::time::Duration;

pub(crate) use self::pool::{Chunked, Pending, Typed};
use self::pool::{Config, InitCheck, Initializer, Job, Shared};
pub(crate) use self::protocol::FrameBuf;
use self::protocol::{Call, DEFAULT_MAX_FRAME};
pub use self::registry::Registry;
pub(crate) use self::registry::{check_zero_sized, installed, task_name};
use crate::future::Promise;
use crate::map::{Map, Partial, batches};
use crate::sync::{Arc, AtomicUsize, Ordering};
use crate::{Error, Executor, Future, MapOptions, Payload};

/// Python's default worker count for a process pool: the number of CPUs.
fn default_max_workers() -> usize {
    num_cpus::get().max(1)
}

/// A pool of worker processes that runs registered functions and hands back a [`Future`] for each, like
/// Python's `concurrent.futures.ProcessPoolExecutor`, but sturdier:
///
/// - A worker that dies (`abort`, `kill -9`, `exit`) fails only the task it was running, with
///   [`Error::WorkerDied`] naming its pid and exit status or signal; a replacement starts and every other task
///   completes (pebble's behaviour; CPython breaks the whole pool). The death is noticed at once, from the end
///   of its protocol stream and `waitpid`, not by polling.
/// - A task that runs past its timeout ([`ProcessPoolBuilder::timeout`],
///   [`submit_with_timeout`](Self::submit_with_timeout)) gets [`Error::TaskTimeout`]; its worker is killed and
///   replaced, the rest go on.
/// - A panicking task fails its own future with [`Error::Panicked`] (message and location); the worker lives.
/// - Failing to encode an argument or decode a result is [`Error::Serialization`] on that future; a frame above
///   the maximum size (1 GiB by default) is [`Error::Protocol`]. Payloads of 64 MiB and more work.
/// - Shutdown and drop reap every worker (no zombies); on Linux a worker whose parent dies is killed at once
///   (`PR_SET_PDEATHSIG`); elsewhere it exits when it next reads its protocol socket and finds it closed.
/// - A worker that never reaches the worker-mode line is killed after the startup timeout
///   ([`ProcessPoolBuilder::startup_timeout`], 60 s by default) and the pool reports why ([`Error::Broken`]).
///
/// The program must call [`process_main!`](crate::process_main) (the one line in `main`, listing the tasks)
/// before building a pool. Workers start on demand, up to `max_workers`.
///
/// `ProcessPoolExecutor` is a cheap handle: clones share one pool. Dropping the last handle is
/// `shutdown(true)`.
///
/// # Under `cargo test`
/// Workers re-run the test executable, so it needs the worker-mode line too: make the integration test that
/// uses a process pool a `harness = false` test (`[[test]] name = "..." harness = false` in `Cargo.toml`) whose
/// own `main` calls [`process_main!`](crate::process_main) first and then runs its cases, as this crate's
/// `tests/process_pool.rs` does. A libtest `#[test]` function cannot host a pool: its workers would start the
/// whole test harness again instead of serving tasks.
///
/// ```no_run
/// use concurrent_futures::{Error, ProcessPoolExecutor};
///
/// fn fib(n: u64) -> u64 {
///     if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// fn crash(_: ()) {
///     std::process::abort();
/// }
///
/// fn main() -> Result<(), Error> {
///     concurrent_futures::process_main!(fib, crash)?;
///
///     let pool = ProcessPoolExecutor::new(4)?;
///     let big = pool.submit(fib, 30)?;
///     let crashed = pool.submit(crash, ())?;
///     let small: Vec<u64> = pool.map(fib, 0..10)?.collect::<Result<_, _>>()?;
///     assert_eq!(small, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
///     assert_eq!(big.result()?, &832_040);
///     assert!(matches!(crashed.result(), Err(Error::WorkerDied { .. })));
///     pool.shutdown(true);
///     Ok(())
/// }
/// ```
pub struct ProcessPoolExecutor {
    shared: Arc<Shared>,
    handles: Arc<AtomicUsize>,
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
pub struct ProcessPoolBuilder {
    max_workers: Option<usize>,
    max_tasks_per_child: Option<usize>,
    timeout: Option<Duration>,
    startup_timeout: Duration,
    tasks_ahead: usize,
    max_frame_size: usize,
    initializer: Option<Result<PendingInit, Error>>,
}

/// How long a new worker may take to reach the worker-mode line, by default.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Appends an initializer's encoded argument to its call frame.
type InitEncode = Box<dyn FnOnce(&mut FrameBuf) -> Result<(), postcard::Error> + Send>;

/// An initializer as given to the builder: its name and argument, and how to read its result.
struct PendingInit {
    name: &'static str,
    encode: InitEncode,
    check: InitCheck,
}

impl fmt::Debug for ProcessPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("timeout", &self.timeout)
            .field("startup_timeout", &self.startup_timeout)
            .field("tasks_ahead", &self.tasks_ahead)
            .field("max_frame_size", &self.max_frame_size)
            .field(
                "initializer",
                &self
                    .initializer
                    .as_ref()
                    .map(|init| init.as_ref().map(|init| init.name)),
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
        let init = check_zero_sized::<F>().map(|()| PendingInit {
            name: task_name::<F>(),
            encode: Box::new(move |frame| frame.push(&arg)),
            check: Box::new(|bytes| match postcard::from_bytes::<Result<(), E>>(bytes) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(error) => Err(format!("could not decode its result: {error}")),
            }),
        });
        let init = init.and_then(|init| check_registered::<F>().map(|()| init));
        self.initializer = Some(init);
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
                let call = Call {
                    id: 0,
                    name: init.name,
                    chunk: false,
                };
                let mut frame = FrameBuf::new(&call).map_err(serialization)?;
                (init.encode)(&mut frame).map_err(|error| {
                    Error::Serialization(format!(
                        "could not encode the initializer's argument: {error}"
                    ))
                })?;
                let frame = frame.finish(self.max_frame_size).map_err(|size| {
                    Error::Protocol(format!(
                        "the initializer's argument takes {size} bytes, more than the maximum frame size"
                    ))
                })?;
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

fn serialization(error: postcard::Error) -> Error {
    Error::Serialization(error.to_string())
}

/// Refuses `F` unless it is the function registered under its name.
pub(crate) fn check_registered<F: 'static>() -> Result<(), Error> {
    let name = task_name::<F>();
    match installed()?.entries.get(name) {
        Some(entry) if entry.type_id == TypeId::of::<F>() => Ok(()),
        Some(_) => Err(Error::UnknownTask(format!(
            "{name} (a different function of that name is registered)"
        ))),
        None => Err(Error::UnknownTask(name.to_owned())),
    }
}

impl ProcessPoolExecutor {
    /// A pool of at most `max_workers` processes. `max_workers == 0` is [`Error::InvalidArgument`]; without
    /// [`process_main!`](crate::process_main) in `main` it is [`Error::InvalidState`].
    ///
    /// ```no_run
    /// fn main() -> Result<(), concurrent_futures::Error> {
    ///     concurrent_futures::process_main!()?;
    ///     let pool = concurrent_futures::ProcessPoolExecutor::new(2)?;
    ///     assert_eq!(pool.max_workers(), 2);
    ///     Ok(())
    /// }
    /// ```
    pub fn new(max_workers: usize) -> Result<Self, Error> {
        Self::builder().max_workers(max_workers).build()
    }

    /// A builder for the other options.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder {
            max_workers: None,
            max_tasks_per_child: None,
            timeout: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            tasks_ahead: 0,
            max_frame_size: DEFAULT_MAX_FRAME,
            initializer: None,
        }
    }

    /// The most worker processes this pool runs at once.
    pub fn max_workers(&self) -> usize {
        self.shared.config.max_workers
    }

    /// The pids of the worker processes alive now, in increasing order.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.pids()
    }

    /// Schedules `f(arg)` in a worker process and returns its future (Python's `submit(fn, arg)`).
    ///
    /// `f` must be registered ([`process_main!`](crate::process_main)): otherwise [`Error::UnknownTask`]; a
    /// `fn` pointer or capturing closure is [`Error::InvalidArgument`]. After shutdown it is
    /// [`Error::Shutdown`]; on a broken pool, the reason it broke. An argument that cannot be encoded gives a
    /// future failed with [`Error::Serialization`].
    ///
    /// ```no_run
    /// fn add(pair: (i32, i32)) -> i32 {
    ///     pair.0 + pair.1
    /// }
    ///
    /// fn main() -> Result<(), concurrent_futures::Error> {
    ///     concurrent_futures::process_main!(add)?;
    ///     let pool = concurrent_futures::ProcessPoolExecutor::new(1)?;
    ///     assert_eq!(pool.submit(add, (2, 3))?.into_result()?, 5);
    ///     Ok(())
    /// }
    /// ```
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Payload,
        R: Payload,
    {
        let _ = f; // zero-sized: its type is all that travels
        self.submit_inner::<F, A, R>(&arg, false, self.shared.config.timeout, |promise| {
            Box::new(Typed(promise))
        })
    }

    /// [`submit`](Self::submit) with this task's own timeout instead of the pool's: past it, the worker is
    /// killed and the future fails with [`Error::TaskTimeout`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use concurrent_futures::{Error, ProcessPoolExecutor};
    ///
    /// fn nap(seconds: u64) {
    ///     std::thread::sleep(Duration::from_secs(seconds));
    /// }
    ///
    /// fn main() -> Result<(), Error> {
    ///     concurrent_futures::process_main!(nap)?;
    ///     let pool = ProcessPoolExecutor::new(1)?;
    ///     let late = pool.submit_with_timeout(nap, 60, Duration::from_millis(100))?;
    ///     assert!(matches!(late.result(), Err(Error::TaskTimeout { .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn submit_with_timeout<F, A, R>(
        &self,
        f: F,
        arg: A,
        timeout: Duration,
    ) -> Result<Future<R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Payload,
        R: Payload,
    {
        let _ = f;
        self.submit_inner::<F, A, R>(&arg, false, Some(timeout), |promise| {
            Box::new(Typed(promise))
        })
    }

    /// Encodes and queues one task; `T` is what its future holds (`R`, or a [`Partial`] for a chunk), and
    /// `pending` wraps the future's producer side in what decodes the worker's reply into it.
    fn submit_inner<F, P, T>(
        &self,
        payload: &P,
        chunk: bool,
        timeout: Option<Duration>,
        pending: impl FnOnce(Promise<T>) -> Box<dyn Pending>,
    ) -> Result<Future<T>, Error>
    where
        F: 'static,
        P: serde::Serialize + ?Sized,
        T: Send + Sync + 'static,
    {
        check_zero_sized::<F>()?;
        check_registered::<F>()?;
        let name = task_name::<F>();
        let id = self.shared.next_job_id();
        let mut frame = FrameBuf::new(&Call { id, name, chunk }).map_err(serialization)?;
        if let Err(error) = frame.push(payload) {
            return Ok(Future::failed(Error::Serialization(format!(
                "could not encode the argument of `{name}`: {error}"
            ))));
        }
        let frame = match frame.finish(self.shared.config.max_frame) {
            Ok(frame) => frame,
            Err(size) => {
                return Ok(Future::failed(Error::Protocol(format!(
                    "the argument of `{name}` takes {size} bytes, more than the maximum frame size of {} bytes",
                    self.shared.config.max_frame
                ))));
            }
        };
        let (promise, future) = Promise::<T>::new();
        self.shared.submit(Job {
            id,
            name,
            frame,
            timeout,
            pending: pending(promise),
            started: false,
        })?;
        Ok(future)
    }

    /// Applies `f` to every input in the worker processes and yields the results in input order (Python's
    /// `map`), with the default [`MapOptions`].
    ///
    /// ```no_run
    /// fn cube(x: i64) -> i64 {
    ///     x * x * x
    /// }
    ///
    /// fn main() -> Result<(), concurrent_futures::Error> {
    ///     concurrent_futures::process_main!(cube)?;
    ///     let pool = concurrent_futures::ProcessPoolExecutor::new(2)?;
    ///     let cubes: Vec<i64> = pool.map(cube, [1, 2, 3])?.collect::<Result<_, _>>()?;
    ///     assert_eq!(cubes, [1, 8, 27]);
    ///     Ok(())
    /// }
    /// ```
    pub fn map<'a, F, A, R, I>(&'a self, f: F, inputs: I) -> Result<Map<'a, R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        self.map_with(f, inputs, MapOptions::new())
    }

    /// [`map`](Self::map) with a timeout, a chunk size (each chunk of inputs travels as one message and runs as
    /// one task in a worker) and a buffer size.
    ///
    /// ```no_run
    /// use concurrent_futures::MapOptions;
    ///
    /// fn double(x: u32) -> u32 {
    ///     x * 2
    /// }
    ///
    /// fn main() -> Result<(), concurrent_futures::Error> {
    ///     concurrent_futures::process_main!(double)?;
    ///     let pool = concurrent_futures::ProcessPoolExecutor::new(2)?;
    ///     let options = MapOptions::new().chunksize(1000);
    ///     let total: u32 = pool.map_with(double, 0..10_000, options)?.sum::<Result<u32, _>>()?;
    ///     assert_eq!(total, 99_990_000);
    ///     Ok(())
    /// }
    /// ```
    pub fn map_with<'a, F, A, R, I>(
        &'a self,
        f: F,
        inputs: I,
        options: MapOptions,
    ) -> Result<Map<'a, R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        options.validate()?;
        check_zero_sized::<F>()?;
        check_registered::<F>()?;
        let _ = f;
        let timeout = self.shared.config.timeout;
        let source = batches(
            inputs.into_iter(),
            options.chunksize,
            move |input: A| {
                self.submit_inner::<F, A, R>(&input, false, timeout, |promise| {
                    Box::new(Typed(promise))
                })
            },
            move |chunk: Vec<A>| {
                self.submit_inner::<F, Vec<A>, Partial<R>>(&chunk, true, timeout, |promise| {
                    Box::new(Chunked(promise))
                })
            },
        );
        Map::new(options, source)
    }

    /// Stops accepting tasks (Python's `shutdown(wait)`): queued tasks still run. With `wait`, returns once
    /// they have all finished and every worker process has exited and been reaped. Calling it again is
    /// harmless.
    ///
    /// ```no_run
    /// fn one(_: ()) -> u8 {
    ///     1
    /// }
    ///
    /// fn main() -> Result<(), concurrent_futures::Error> {
    ///     concurrent_futures::process_main!(one)?;
    ///     let pool = concurrent_futures::ProcessPoolExecutor::new(1)?;
    ///     let future = pool.submit(one, ())?;
    ///     pool.shutdown(true);
    ///     assert!(future.done());
    ///     assert!(pool.worker_pids().is_empty());
    ///     Ok(())
    /// }
    /// ```
    pub fn shutdown(&self, wait: bool) {
        self.shutdown_with(wait, false);
    }

    /// [`shutdown`](Self::shutdown), and with `cancel_futures` every task still queued is cancelled (Python's
    /// `shutdown(wait, cancel_futures=True)`). Running tasks finish. On one of the pool's own threads (a done
    /// callback) `wait` does not wait, since that thread is needed to finish.
    pub fn shutdown_with(&self, wait: bool, cancel_futures: bool) {
        self.shared.close(cancel_futures);
        if wait {
            self.shared.join();
        }
    }

    /// Stops the pool now (Python 3.14's `terminate_workers`): cancels queued tasks, then sends `SIGTERM` to
    /// every worker. Running tasks fail with [`Error::WorkerDied`]. Returns without waiting; the workers are
    /// reaped as they exit, and dropping the pool waits for that.
    pub fn terminate_workers(&self) {
        self.shared.close(true);
        self.shared.signal_all(rustix::process::Signal::TERM);
    }

    /// Like [`terminate_workers`](Self::terminate_workers), with `SIGKILL` (Python 3.14's `kill_workers`).
    ///
    /// ```no_run
    /// use concurrent_futures::{Error, ProcessPoolExecutor};
    ///
    /// fn spin(_: ()) {
    ///     loop {
    ///         std::hint::spin_loop();
    ///     }
    /// }
    ///
    /// fn main() -> Result<(), Error> {
    ///     concurrent_futures::process_main!(spin)?;
    ///     let pool = ProcessPoolExecutor::new(1)?;
    ///     let stuck = pool.submit(spin, ())?;
    ///     let queued = pool.submit(spin, ())?;
    ///     while !stuck.running() {
    ///         std::thread::yield_now();
    ///     }
    ///     pool.kill_workers();
    ///     assert!(matches!(stuck.result(), Err(Error::WorkerDied { .. })));
    ///     assert!(queued.cancelled());
    ///     Ok(())
    /// }
    /// ```
    pub fn kill_workers(&self) {
        self.shared.close(true);
        self.shared.signal_all(rustix::process::Signal::KILL);
    }
}

impl Clone for ProcessPoolExecutor {
    fn clone(&self) -> Self {
        // ORDERING: Relaxed, as for `Arc::clone`: made from a live handle, which keeps the count above zero.
        self.handles.fetch_add(1, Ordering::Relaxed);
        ProcessPoolExecutor {
            shared: self.shared.clone(),
            handles: self.handles.clone(),
        }
    }
}

impl Drop for ProcessPoolExecutor {
    /// Dropping the last handle is `shutdown(true)`.
    fn drop(&mut self) {
        // ORDERING: AcqRel: the last handle's drop sees every other handle's submits as done.
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shutdown_with(true, false);
        }
    }
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .field("max_workers", &self.shared.config.max_workers)
            .field("workers", &self.shared.pids())
            .field("shutdown", &self.shared.is_closed())
            .finish()
    }
}

impl Executor for ProcessPoolExecutor {
    fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Payload,
        R: Payload,
    {
        ProcessPoolExecutor::submit(self, f, arg)
    }

    fn map_with<'a, F, A, R, I>(
        &'a self,
        f: F,
        inputs: I,
        options: MapOptions,
    ) -> Result<Map<'a, R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        ProcessPoolExecutor::map_with(self, f, inputs, options)
    }

    fn shutdown_with(&self, wait: bool, cancel_futures: bool) {
        ProcessPoolExecutor::shutdown_with(self, wait, cancel_futures);
    }
}
