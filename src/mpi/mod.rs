//! [`MpiPoolExecutor`] (cargo feature `mpi`): the process pool's interface over MPI ranks, like mpi4py's
//! `MPIPoolExecutor`, with crashes and timeouts isolated per task.
//!
//! Tasks are the functions the program registers with [`process_main!`](crate::process_main); the same line
//! makes a worker rank serve them. One thread of the program (the MPI thread, `manager.rs`) makes every MPI call;
//! each pool's ranks and tasks are in `run.rs`; worker ranks run `rank.rs`; messages are in `wire.rs`, the MPI calls in `comm.rs`, roles and start-up in
//! `launch.rs`.

mod comm;
mod launch;
mod manager;
mod rank;
mod run;
mod shared;
mod watchdog;
mod wire;

use std::any::Any;
use std::fmt;
use std::time::Duration;

use self::launch::{Service, inside_worker, service};
use self::shared::{Config, InitCheck, Job, Mode, Shared};
use self::wire::{Order, Session, encode_with};
use crate::future::Promise;
use crate::map::{Map, Partial, batches};
use crate::process::{
    Call, Codec, FRAME_PREFIX, MakePending, chunked, codec_of, erased, erased_chunk, typed,
};
use crate::sync::{Arc, AtomicUsize, Ordering};
use crate::{Error, Executor, Future, MapOptions, Payload};

pub(crate) use self::launch::{Role, main_started, role, serve_rank};
pub use self::shared::WorkerRank;

/// The default largest message (an encoded argument or result plus a small header): 1 GiB.
const DEFAULT_MAX_FRAME: usize = 1 << 30;

/// The largest `max_frame_size`: MPI counts are C `int`s, so one message carries less than 2 GiB.
const MAX_FRAME_LIMIT: usize = comm::MAX_MESSAGE - 4096;

/// How long worker ranks (and their local worker processes) may take to start serving, by default.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A pool of MPI worker ranks that runs registered functions and hands back a [`Future`] for each: the
/// [`ProcessPoolExecutor`](crate::ProcessPoolExecutor)'s interface across the nodes of a cluster, like mpi4py's
/// `MPIPoolExecutor`, sturdier where MPI allows.
///
/// # Two ways to get workers
/// - **Shared pool**: `mpirun -n N prog`. Rank 0 runs `main`; ranks 1..N-1 never return from
///   [`process_main!`](crate::process_main) and serve rank 0's pool (N-1 workers, or fewer with `max_workers`).
/// - **Spawn**: a program started normally (or by `mpirun -n 1`) spawns `max_workers` worker ranks with
///   `MPI_Comm_spawn` (the same executable, with a marker argument). After the pool's shutdown they stay
///   connected and idle, and serve the program's next pool of the same size (spawning again is slow, and a spawn
///   after a disconnect can hang Open MPI 4); up to 4 such groups of different sizes wait; they leave when the
///   program exits.
///
/// MPI is initialised only in a process started by an MPI launcher, or spawned as a worker, or when the program
/// builds its first pool; never in a program that does not use one.
///
/// # What you can rely on
/// - **A crash fails only its own task.** Each task runs in a local worker process on its rank (the process
///   pool's machinery): a task that aborts, segfaults or exits fails its future with [`Error::WorkerDied`]
///   (its pid, the signal or exit status, the rank and host) and the rank keeps serving.
/// - **Timeouts kill.** Past its timeout ([`MpiPoolBuilder::timeout`],
///   [`submit_with_timeout`](Self::submit_with_timeout)) a task's local worker process is killed and replaced:
///   [`Error::TaskTimeout`] (the rank and host are logged).
/// - **Panics are values**: [`Error::Panicked`] with the message, location, rank and host.
/// - **Failures are errors, not aborts**: communicators return errors, so a spawn that fails (no free slots,
///   an unknown host) breaks the pool with [`Error::Broken`] carrying MPI's reason; an initializer that fails on
///   any rank breaks it too (as in mpi4py, every rank runs it and success is combined); a rank running a
///   different build (checked at start from the executable's bytes and the registered task names, not from file
///   times) breaks it with [`Error::Protocol`].
/// - Arguments of 2 GiB and more cannot be one MPI message: larger than `max_frame_size` (1 GiB by default, at
///   most 2 GiB - 4 KiB) is [`Error::Protocol`] on that task's future.
/// - One task in flight per rank by default ([`tasks_per_rank`](MpiPoolBuilder::tasks_per_rank),
///   [`tasks_ahead`](MpiPoolBuilder::tasks_ahead)): a queued task can be cancelled until it is sent. Waiting
///   for messages polls with a backoff capped at 1 ms (as mpi4py's does), and the program's MPI thread sleeps
///   when nothing is in flight, so an idle pool costs almost no CPU.
///
/// # What stays fatal
/// Open MPI 4 has no per-process fault tolerance: if a whole rank dies (killed, out of memory, its node lost)
/// or, with [`isolate(false)`](MpiPoolBuilder::isolate), a task crashes its rank, `mpirun` aborts the whole job
/// and prints which rank and node failed ("mpirun noticed that process rank 2 ... exited on signal 9"); the
/// program's futures are not completed because the program is gone. Keep `isolate` on to confine crashes to
/// the local worker process.
///
/// MPI has no timeout for `MPI_Comm_spawn` and `MPI_Comm_disconnect`, and Open MPI 4 can hang in them: a
/// watchdog then breaks every pool of the program ([`Error::Broken`] saying which call hung) rather than letting
/// it wait forever; tasks already on a rank stay pending.
///
/// Done-callbacks run on threads of their own (as the process pool's do), never on the MPI thread: a callback
/// may submit to the pool and wait for the result.
///
/// ```no_run
/// use concurrent_futures::{Error, MpiPoolExecutor};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), Error> {
///     concurrent_futures::process_main!(square)?; // on a worker rank this line serves tasks and never returns
///
///     let pool = MpiPoolExecutor::new(4)?; // under `mpirun -n 5`: the 4 other ranks; otherwise 4 spawned ranks
///     let squares: Vec<u64> = pool.map(square, 0..100)?.collect::<Result<_, _>>()?;
///     assert_eq!(squares[9], 81);
///     Ok(())
/// }
/// ```
pub struct MpiPoolExecutor {
    shared: Arc<Shared>,
    service: &'static Service,
    handles: Arc<AtomicUsize>,
}

/// Builds an [`MpiPoolExecutor`]: `max_workers`, an initializer run on every rank, a per-task timeout, and how
/// each rank runs its tasks.
///
/// ```no_run
/// use std::time::Duration;
/// use concurrent_futures::MpiPoolExecutor;
///
/// fn load(path: String) -> Result<(), String> {
///     if path.is_empty() { Err("no path".into()) } else { Ok(()) }
/// }
///
/// fn main() -> Result<(), concurrent_futures::Error> {
///     concurrent_futures::process_main!(load)?;
///     let pool = MpiPoolExecutor::builder()
///         .max_workers(8)
///         .initializer(load, "/data/model".to_string())
///         .timeout(Duration::from_secs(600))
///         .tasks_per_rank(4) // one rank per node, 4 tasks at once on each
///         .build()?;
///     # drop(pool);
///     Ok(())
/// }
/// ```
#[must_use]
pub struct MpiPoolBuilder {
    max_workers: Option<usize>,
    timeout: Option<Duration>,
    startup_timeout: Duration,
    max_frame_size: usize,
    isolate: bool,
    tasks_per_rank: usize,
    tasks_ahead: usize,
    spawn_info: Vec<(String, String)>,
    initializer: Option<Result<PendingInit, Error>>,
}

/// An initializer as given to the builder.
struct PendingInit {
    name: &'static str,
    arg: Vec<u8>,
    check: InitCheck,
}

impl fmt::Debug for MpiPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("timeout", &self.timeout)
            .field("startup_timeout", &self.startup_timeout)
            .field("max_frame_size", &self.max_frame_size)
            .field("isolate", &self.isolate)
            .field("tasks_per_rank", &self.tasks_per_rank)
            .field("tasks_ahead", &self.tasks_ahead)
            .field("spawn_info", &self.spawn_info)
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

impl MpiPoolBuilder {
    /// How many worker ranks: spawned ones (default: the number of CPUs), or at most this many of an
    /// `mpirun` job's ranks 1..N-1 (default: all of them). Must be at least 1.
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = Some(max_workers);
        self
    }

    /// Runs `f(arg)` on every rank before its first task (Python's `initializer`/`initargs`): in each local
    /// worker process, or in the rank with `isolate(false)`. `f` must be registered like a task. If it returns
    /// `Err` or panics on any rank, the pool is broken: queued tasks and later submits fail with
    /// [`Error::Broken`] naming the rank and the reason.
    pub fn initializer<F, A, E>(mut self, f: F, arg: A) -> Self
    where
        F: Fn(A) -> Result<(), E> + Copy + Send + Sync + 'static,
        A: Payload,
        E: Payload + fmt::Display,
    {
        let _ = f; // zero-sized: its type is all that travels
        let init = codec_of::<F>()
            .and_then(|codec| {
                postcard::to_stdvec(&arg)
                    .map(|arg| (codec.name, arg))
                    .map_err(|error| {
                        Error::Serialization(format!(
                            "could not encode the initializer's argument: {error}"
                        ))
                    })
            })
            .map(|(name, arg)| PendingInit {
                name,
                arg,
                check: Box::new(|bytes| match postcard::from_bytes::<Result<(), E>>(bytes) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(error) => Err(format!("could not decode its result: {error}")),
                }),
            });
        self.initializer = Some(init);
        self
    }

    /// Kills a task's local worker process when the task has run for `timeout` (counted from when its rank
    /// starts it): its future fails with [`Error::TaskTimeout`] and the rank goes on. No limit by default. Needs
    /// `isolate(true)` (the default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long worker ranks may take to start serving (to reach [`process_main!`](crate::process_main)), and
    /// each rank's local worker processes too. Past it the pool is broken ([`Error::Broken`]). Default 60 s.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// The largest message either side accepts (an encoded argument or result plus a small header); larger
    /// ones are refused with [`Error::Protocol`] on that task's future. Default 1 GiB; between 4 KiB and
    /// 2 GiB - 4 KiB (MPI counts are C `int`s).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Whether each task runs in a local worker process on its rank (default `true`): a crash or timeout then
    /// fails only that task. With `false`, tasks run in the rank process itself: one hop less per task, but a
    /// task that crashes takes the whole MPI job down (Open MPI aborts it), and per-task timeouts are refused.
    pub fn isolate(mut self, isolate: bool) -> Self {
        self.isolate = isolate;
        self
    }

    /// How many tasks each rank runs at once (default 1): with one rank per node, set it to the node's core
    /// count. Must be at least 1; with `isolate(false)` it must be 1.
    pub fn tasks_per_rank(mut self, n: usize) -> Self {
        self.tasks_per_rank = n;
        self
    }

    /// Lets each rank hold up to `n` more tasks queued behind the ones it runs, so that it starts the next
    /// without waiting for the pool to hear of the last: much faster for many tiny tasks (the process pool's
    /// `tasks_ahead`). The price, as in CPython's process pool: a task sent ahead can no longer be cancelled.
    /// Default 0; at most 8.
    pub fn tasks_ahead(mut self, n: usize) -> Self {
        self.tasks_ahead = n;
        self
    }

    /// Adds an `MPI_Info` key for `MPI_Comm_spawn` (spawn mode only), such as `"host"`, `"hostfile"` or
    /// `"wdir"`, as mpi4py's `**kwargs` do.
    pub fn spawn_info(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.spawn_info.push((key.into(), value.into()));
        self
    }

    /// Builds the pool. The workers start in the background (spawned, or claimed from the `mpirun` job):
    /// if that fails, the pool's futures and later submits fail with [`Error::Broken`] saying why.
    ///
    /// Fails at once if the program has not installed its task registry
    /// ([`process_main!`](crate::process_main)), if an option is out of range ([`Error::InvalidArgument`]), if
    /// the initializer is not registered ([`Error::UnknownTask`]), on a worker rank or in one of its tasks (a
    /// worker does not spawn workers: [`Error::InvalidState`]), or while another pool uses the `mpirun` job's
    /// worker ranks ([`Error::InvalidState`]).
    pub fn build(self) -> Result<MpiPoolExecutor, Error> {
        crate::process::installed()?;
        if inside_worker() {
            return Err(Error::InvalidState(
                "an MpiPoolExecutor cannot be built on an MPI worker rank or in one of its tasks \
                 (workers do not spawn workers)"
                    .into(),
            ));
        }
        if self.max_workers == Some(0) {
            return Err(Error::InvalidArgument(
                "max_workers must be greater than 0".into(),
            ));
        }
        if self.tasks_per_rank == 0 || (!self.isolate && self.tasks_per_rank != 1) {
            return Err(Error::InvalidArgument(
                "tasks_per_rank must be at least 1, and 1 with isolate(false)".into(),
            ));
        }
        if self.tasks_ahead > 8 {
            return Err(Error::InvalidArgument(
                "tasks_ahead must be at most 8".into(),
            ));
        }
        if !self.isolate && self.timeout.is_some() {
            return Err(Error::InvalidArgument(
                "a per-task timeout needs isolate(true): a task running in the rank itself cannot be stopped"
                    .into(),
            ));
        }
        if !(4096..=MAX_FRAME_LIMIT).contains(&self.max_frame_size) {
            return Err(Error::InvalidArgument(format!(
                "max_frame_size must be between 4096 and {MAX_FRAME_LIMIT} bytes (an MPI message carries less \
                 than 2 GiB)"
            )));
        }
        let initializer = self.initializer.transpose()?;
        let service = service()?;
        if let Some(error) = service.watchdog.broken() {
            return Err(error);
        }
        let mode = if service.world_size > 1 {
            let ranks = service.world_size - 1;
            // ORDERING: Acquire pairs with the MPI thread's Release when the previous pool released the ranks.
            if service
                .shared_claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return Err(Error::InvalidState(
                    "another MpiPoolExecutor is using this mpirun job's worker ranks; shut it down first".into(),
                ));
            }
            Mode::Shared(self.max_workers.unwrap_or(ranks).min(ranks))
        } else {
            Mode::Spawn(self.max_workers.unwrap_or_else(|| num_cpus::get().max(1)))
        };
        let (init, init_check) = match initializer {
            Some(init) => (Some((init.name.to_owned(), init.arg)), Some(init.check)),
            None => (None, None),
        };
        let shared = Arc::new(Shared::new(Config {
            mode,
            session: Session {
                isolate: self.isolate,
                slots: self.tasks_per_rank as u32,
                ahead: self.tasks_ahead as u32,
                max_frame: self.max_frame_size as u64,
                startup_timeout: self.startup_timeout,
                initializer: init,
            },
            init_check,
            spawn_info: self.spawn_info,
            startup_timeout: self.startup_timeout,
            timeout: self.timeout,
        }));
        if let Err(error) = service.open(shared.clone()) {
            if matches!(mode, Mode::Shared(_)) {
                // ORDERING: Release, as the MPI thread's when a pool is done with the ranks.
                service.shared_claimed.store(false, Ordering::Release);
            }
            return Err(error);
        }
        Ok(MpiPoolExecutor {
            shared,
            service,
            handles: Arc::new(AtomicUsize::new(1)),
        })
    }
}

impl MpiPoolExecutor {
    /// A pool of `max_workers` worker ranks (see [`MpiPoolBuilder::max_workers`]).
    pub fn new(max_workers: usize) -> Result<Self, Error> {
        Self::builder().max_workers(max_workers).build()
    }

    /// A builder for the other options.
    pub fn builder() -> MpiPoolBuilder {
        MpiPoolBuilder {
            max_workers: None,
            timeout: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            max_frame_size: DEFAULT_MAX_FRAME,
            isolate: true,
            tasks_per_rank: 1,
            tasks_ahead: 0,
            spawn_info: Vec::new(),
            initializer: None,
        }
    }

    /// How many worker ranks this pool uses.
    pub fn max_workers(&self) -> usize {
        match self.shared.config.mode {
            Mode::Spawn(n) | Mode::Shared(n) => n,
        }
    }

    /// Whether the workers were spawned (`true`) or are an `mpirun` job's ranks (`false`).
    pub fn spawned(&self) -> bool {
        matches!(self.shared.config.mode, Mode::Spawn(_))
    }

    /// The worker ranks (rank, host, pid), once they have started; empty before.
    pub fn workers(&self) -> Vec<WorkerRank> {
        self.shared.state.lock().workers.clone()
    }

    /// Schedules `f(arg)` on a worker rank and returns its future (Python's `submit(fn, arg)`), with the same
    /// errors as [`ProcessPoolExecutor::submit`](crate::ProcessPoolExecutor::submit).
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

    /// [`submit`](Self::submit) with this task's own timeout instead of the pool's.
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
        if !self.shared.config.session.isolate {
            return Err(Error::InvalidArgument(
                "a per-task timeout needs isolate(true): a task running in the rank itself cannot be stopped"
                    .into(),
            ));
        }
        self.submit_call(codec_of::<F>()?, &arg, false, Some(timeout), typed::<R>)
    }

    /// Builds one task's message (the argument encoded by `codec`, as the process pool encodes it) and queues
    /// it; `pending` wraps the future's producer side in what completes it from the rank's report.
    fn submit_call<T: Send + Sync + 'static>(
        &self,
        codec: &'static Codec,
        arg: &dyn Any,
        chunk: bool,
        timeout: Option<Duration>,
        pending: MakePending<T>,
    ) -> Result<Future<T>, Error> {
        let id = self.shared.next_id();
        let max = self.shared.config.session.max_frame as usize;
        let frame = match codec.call(id, chunk, arg, max) {
            Ok(frame) => frame,
            Err(error @ (Error::Serialization(_) | Error::Protocol(_))) => {
                return Ok(Future::failed(error));
            }
            Err(error) => return Err(error),
        };
        // The process pool's frame: a length prefix (MPI keeps message boundaries and needs none), the call
        // header, then the encoded argument, which travels after this pool's own header.
        let encoded = match postcard::take_from_bytes::<Call<'_>>(&frame[FRAME_PREFIX..]) {
            Ok((_, encoded)) => encoded,
            Err(error) => return Ok(Future::failed(Error::Serialization(error.to_string()))),
        };
        let name = codec.name;
        let message = encode_with(
            &Order::Task {
                id,
                name,
                chunk,
                timeout,
            },
            encoded,
        );
        let (promise, future) = Promise::<T>::new();
        self.shared.push(Job {
            id,
            name,
            message,
            pending: pending(promise, codec),
        })?;
        self.service.wake();
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

    /// Applies `f` to every input on the worker ranks and yields the results in input order (Python's `map`).
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
    /// one task; it yields its values up to its first failed item, then that error) and a buffer size.
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
        self.map_calls(codec_of::<F>()?, inputs, options, typed::<R>, chunked::<R>)
    }

    /// Stops accepting tasks (Python's `shutdown(wait)`); queued tasks still run. With `wait`, returns once
    /// they have finished and the worker ranks are released (for the program's next pool).
    pub fn shutdown(&self, wait: bool) {
        self.shutdown_with(wait, false);
    }

    /// [`shutdown`](Self::shutdown); with `cancel_futures`, every task not yet sent to a rank is cancelled. In
    /// one of this pool's done-callbacks `wait` does not wait (the callback itself is part of what it waits for).
    pub fn shutdown_with(&self, wait: bool, cancel_futures: bool) {
        self.shared.close(cancel_futures);
        self.service.wake();
        if wait && !launch::on_mpi_thread() && !self.shared.on_callback_thread() {
            self.shared.wait_finished();
            self.shared.join_callbacks();
        }
    }
}

impl Clone for MpiPoolExecutor {
    fn clone(&self) -> Self {
        // ORDERING: Relaxed, as for `Arc::clone`: made from a live handle, which keeps the count above zero.
        self.handles.fetch_add(1, Ordering::Relaxed);
        MpiPoolExecutor {
            shared: self.shared.clone(),
            service: self.service,
            handles: self.handles.clone(),
        }
    }
}

impl Drop for MpiPoolExecutor {
    /// Dropping the last handle is `shutdown(true)`.
    fn drop(&mut self) {
        // ORDERING: AcqRel: the last handle's drop sees every other handle's submits as done.
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shutdown_with(true, false);
        }
    }
}

impl fmt::Debug for MpiPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("MpiPoolExecutor")
            .field("mode", &self.shared.config.mode)
            .field("workers", &state.workers)
            .field("queued", &state.queue.len())
            .field("shutdown", &state.closed)
            .finish()
    }
}

/// Through the trait, which has no serde bounds, a function's argument and result travel by the codec
/// [`Registry::register`](crate::Registry::register) stored for it, as for the process pool: a function not
/// registered in this process is [`Error::UnknownTask`].
impl Executor for MpiPoolExecutor {
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
        MpiPoolExecutor::shutdown_with(self, wait, cancel_futures);
    }
}
