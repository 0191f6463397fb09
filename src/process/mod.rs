//! [`ProcessPoolExecutor`]: Python's process pool, with workers that survive each other's crashes and tasks
//! that can be killed when they run too long.
//!
//! Workers are the current executable re-run in worker mode, entered through
//! [`process_main!`](crate::process_main) at the top of `main`. Tasks are functions the program registered
//! there; arguments and results are serde values encoded with postcard, sent as length-prefixed frames over a
//! private connection (stdin is `/dev/null`, stdout and stderr are the program's). The parent side is in
//! `pool.rs` (queue, workers, placing tasks), `manager.rs` (starting workers, deadlines), `link.rs` (writing
//! frames) and `reader.rs` (each worker's reader and watcher threads); futures' callbacks run on the threads of
//! `callbacks.rs`; `registry.rs` and `codec.rs` hold the registered functions, `builder.rs` the options, the
//! child's loop is in `worker.rs`, the frames in `protocol.rs`, and what differs between operating systems in
//! `sys/`.
//!
//! Process, socket and signal code is outside loom's scope: the loom build compiles this module but its models
//! do not exercise it; the process-pool tests do.

mod builder;
mod callbacks;
mod codec;
mod link;
mod manager;
mod pending;
mod pool;
mod protocol;
#[cfg(feature = "mpi")]
mod raw;
mod reader;
mod registry;
mod sys;
mod worker;

// What the MPI pool (`crate::mpi`) reuses: the task registry and its codecs, the payload statuses, the pending
// futures and their callback threads, and the raw submission its worker ranks run tasks through.
#[cfg(feature = "mpi")]
pub(crate) use self::{
    callbacks::Callbacks,
    pending::Deferred,
    protocol::{Call, FrameBuf, PREFIX as FRAME_PREFIX, Status},
    raw::{RawInit, RawOutcome, RawPool},
    registry::{Installed, installed},
    sys::ENV as WORKER_ENV,
    worker::install_panic_hook,
};

use std::any::Any;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::builder::ProcessPoolBuilder;
pub(crate) use self::codec::{Codec, codec_of};
pub(crate) use self::pending::Pending;
use self::pending::{Chunked, Erased, Typed};
use self::pool::{Job, Shared};
pub use self::registry::Registry;
use crate::future::Promise;
use crate::map::{Map, Partial, batches};
use crate::sync::{Arc, AtomicUsize, Ordering};
use crate::{Error, Executor, Future, MapOptions};

/// What a process pool's tasks take and return: values that cross a process boundary, so serde-serializable
/// (with postcard), and shareable between threads once they arrive. Implemented for every fitting type.
///
/// The [`ProcessPoolExecutor`]'s own methods and [`Registry::register`] ask for it at compile time. The
/// [`Executor`] trait does not (it is the same with or without the `process` feature): through it, a process
/// pool finds a function's codec in the registry, where `register` put it, so an unregistered function is
/// [`Error::UnknownTask`] at run time.
#[cfg_attr(docsrs, doc(cfg(feature = "process")))]
pub trait Payload: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Payload for T {}

/// A pool of worker processes that runs registered functions and hands back a [`Future`] for each, like
/// Python's `concurrent.futures.ProcessPoolExecutor`, but sturdier:
///
/// - A worker that dies (`abort`, `kill -9`, `exit`) fails only the task it was running, with
///   [`Error::WorkerDied`] naming its pid and exit status or signal; a replacement starts and every other task
///   completes (pebble's behaviour; CPython breaks the whole pool). The death is noticed at once, by waiting for
///   the process itself, not by polling and not from its socket (which a forked copy of the worker may hold
///   open). A task the worker never read runs on another worker instead (on Unix; see below for Windows).
/// - A task that runs past its timeout ([`ProcessPoolBuilder::timeout`],
///   [`submit_with_timeout`](Self::submit_with_timeout)) gets [`Error::TaskTimeout`]; its worker is killed and
///   replaced, the rest go on.
/// - A panicking task fails its own future with [`Error::Panicked`] (message and location); the worker lives.
/// - Failing to encode an argument or decode a result is [`Error::Serialization`] on that future; a frame above
///   the maximum size (1 GiB by default), a malformed one, or one left half-sent for the
///   [stall timeout](ProcessPoolBuilder::stall_timeout) is [`Error::Protocol`] on the task the worker was
///   running, and the worker is replaced. A well-formed reply to a task the worker is not running (something in
///   the worker wrote on its socket) is logged and dropped: it fails no task. Payloads of 64 MiB and more work.
/// - Done-callbacks run on threads of their own, never on the threads that deliver results: a callback may
///   submit to the pool and wait for the result.
/// - Shutdown and drop reap every worker (no zombies). A worker whose parent dies exits at once, even in the
///   middle of a task: on Linux it is killed (`PR_SET_PDEATHSIG`); on every Unix (macOS has no parent-death
///   signal) a thread in the worker watches a pipe that only the parent holds open, and exits the process when
///   it closes.
/// - A worker that never reaches the worker-mode line is killed after the startup timeout
///   ([`ProcessPoolBuilder::startup_timeout`], 60 s by default) and the pool reports why ([`Error::Broken`]).
///
/// # Platforms
/// On Unix (Linux, macOS) a worker talks to the pool over a socketpair it inherits; the pool sees it exit with
/// `waitid`. On Windows a worker connects back to a loopback listener of its own and presents the pool's token;
/// the pool stops it with `TerminateProcess` on a handle of its own, sees it exit on that handle, and puts it in
/// a job object that kills it when the pool's process dies. What differs on Windows:
/// - [`terminate_workers`](Self::terminate_workers) cannot be gentler than
///   [`kill_workers`](Self::kill_workers): Windows has no `SIGTERM` for a process without a console or window
///   of its own, so both end the worker at once; the reason says "terminated by the pool" or "killed by the
///   pool".
/// - A worker's end reads as an exit status: `exit status 3`, or a named status such as `exit status 0xC0000409
///   (STATUS_STACK_BUFFER_OVERRUN: an abort or a failed runtime check)`.
/// - The calls sent to a worker that it never read cannot be read back after its death (its socket goes with
///   it), so a task handed to a worker at the instant it dies fails with [`Error::WorkerDied`] instead of moving
///   to another worker.
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
#[cfg_attr(docsrs, doc(cfg(feature = "process")))]
pub struct ProcessPoolExecutor {
    shared: Arc<Shared>,
    handles: Arc<AtomicUsize>,
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
        ProcessPoolBuilder::new()
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
        let timeout = self.shared.config.timeout;
        self.submit_call(codec_of::<F>()?, &arg, false, timeout, typed::<R>)
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
        self.submit_call(codec_of::<F>()?, &arg, false, Some(timeout), typed::<R>)
    }

    /// Encodes and queues one call of `codec`'s function on `arg` (an `&A`, or an `&Vec<A>` for a `chunk`); `T`
    /// is what its future holds (`R`, or a [`Partial`] for a chunk), and `pending` wraps the future's producer
    /// side in what decodes the worker's reply into it. An argument that cannot be encoded, or is too large,
    /// gives a failed future.
    fn submit_call<T: Send + Sync + 'static>(
        &self,
        codec: &'static Codec,
        arg: &dyn Any,
        chunk: bool,
        timeout: Option<Duration>,
        pending: MakePending<T>,
    ) -> Result<Future<T>, Error> {
        let id = self.shared.next_job_id();
        let frame = match codec.call(id, chunk, arg, self.shared.config.max_frame) {
            Ok(frame) => frame,
            Err(error @ (Error::Serialization(_) | Error::Protocol(_))) => {
                return Ok(Future::failed(error));
            }
            Err(error) => return Err(error),
        };
        let (promise, future) = Promise::<T>::new();
        self.shared.submit(Job {
            id,
            name: codec.name,
            frame,
            timeout,
            pending: pending(promise, codec),
            started: false,
        })?;
        Ok(future)
    }

    /// `map` over `inputs` of `codec`'s function, each future's producer side wrapped by `one` (or `chunk`).
    fn map_calls<'a, A, R, I>(
        &'a self,
        codec: &'static Codec,
        inputs: I,
        options: MapOptions,
        one: MakePending<R>,
        chunk: MakePending<Partial<R>>,
    ) -> Result<Map<'a, R>, Error>
    where
        A: Send + 'static,
        R: Send + Sync + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        options.validate()?;
        let timeout = self.shared.config.timeout;
        let source = batches(
            inputs.into_iter(),
            options.chunksize,
            move |input: A| self.submit_call(codec, &input, false, timeout, one),
            move |inputs: Vec<A>| self.submit_call(codec, &inputs, true, timeout, chunk),
        );
        Map::new(options, source)
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
        let _ = f;
        let codec = codec_of::<F>()?;
        self.map_calls(codec, inputs, options, typed::<R>, chunked::<R>)
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

    /// Stops the pool now (Python 3.14's `terminate_workers`): cancels queued tasks, then sends `SIGTERM` (on
    /// Windows: `TerminateProcess`) to
    /// every worker. Running tasks fail with [`Error::WorkerDied`]. Returns without waiting; the workers are
    /// reaped as they exit, and dropping the pool waits for that.
    pub fn terminate_workers(&self) {
        self.shared.close(true);
        self.shared.stop_all(true);
    }

    /// Like [`terminate_workers`](Self::terminate_workers), with `SIGKILL` (on Windows: `TerminateProcess`, as
    /// there) (Python 3.14's `kill_workers`).
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
        self.shared.stop_all(false);
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

/// Through the trait, which has no serde bounds, a function's argument and result travel by the codec
/// [`Registry::register`] stored for it: a function not registered in this process is [`Error::UnknownTask`].
impl Executor for ProcessPoolExecutor {
    fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + Sync + 'static,
    {
        let _ = f;
        let timeout = self.shared.config.timeout;
        self.submit_call(codec_of::<F>()?, &arg, false, timeout, erased::<R>)
    }

    fn map_with<'a, F, A, R, I>(
        &'a self,
        f: F,
        inputs: I,
        options: MapOptions,
    ) -> Result<Map<'a, R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + Sync + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        let _ = f;
        let codec = codec_of::<F>()?;
        self.map_calls(codec, inputs, options, erased::<R>, erased_chunk::<R>)
    }

    fn shutdown_with(&self, wait: bool, cancel_futures: bool) {
        ProcessPoolExecutor::shutdown_with(self, wait, cancel_futures);
    }
}

/// Wraps a task's future (its producer side) in what completes it from the worker's reply.
pub(crate) type MakePending<T> = fn(Promise<T>, &'static Codec) -> Box<dyn Pending>;

/// A single result, decoded with `R`'s own serde impl.
pub(crate) fn typed<R: Payload>(promise: Promise<R>, _: &'static Codec) -> Box<dyn Pending> {
    Box::new(Typed(promise))
}

/// A chunk's reply, decoded with `R`'s own serde impl.
pub(crate) fn chunked<R: Payload>(
    promise: Promise<Partial<R>>,
    _: &'static Codec,
) -> Box<dyn Pending> {
    Box::new(Chunked(promise))
}

/// A single result, decoded by the function's codec.
pub(crate) fn erased<R: Send + Sync + 'static>(
    promise: Promise<R>,
    codec: &'static Codec,
) -> Box<dyn Pending> {
    Box::new(Erased {
        promise,
        decode: codec.decoder(false),
    })
}

/// A chunk's reply, decoded by the function's codec.
pub(crate) fn erased_chunk<R: Send + Sync + 'static>(
    promise: Promise<Partial<R>>,
    codec: &'static Codec,
) -> Box<dyn Pending> {
    Box::new(Erased {
        promise,
        decode: codec.decoder(true),
    })
}
