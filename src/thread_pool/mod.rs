//! [`ThreadPoolExecutor`]: Python's thread pool, plus a bounded queue and panics returned as errors.

mod local_queue;
mod worker;

use std::fmt;
use std::time::{Duration, Instant};

use crate::future::deadline_after;
use crate::future::local;
use crate::future::{Runnable, Task};
use crate::map::{Map, Partial, batches};
use crate::sync::{
    Arc, AtomicUsize, Condvar, Mutex, Ordering, PushError, Queue, RwLock, identities, mutant,
    thread,
};
use crate::{Error, Executor, Future, MapOptions, unwind};

type Job = Arc<dyn Runnable>;

/// A thread initializer: runs once at the start of each worker thread; an `Err` (or a panic) breaks the pool.
type Initializer =
    Box<dyn Fn() -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// Python's default worker count: `min(32, cpus + 4)`.
fn default_max_workers() -> usize {
    (num_cpus::get() + 4).min(32)
}

/// The state shared by the pool's handles and its workers.
pub(crate) struct Shared {
    /// Tasks submitted from outside the pool, in submission order.
    queue: Queue<Job>,
    /// Each worker's own queue of the tasks it submitted (see `local_queue.rs`).
    locals: local_queue::Locals,
    /// Whether a worker waiting on a future of this pool runs the pool's fan-out tasks meanwhile.
    work_while_waiting: bool,
    /// Orders submits (readers) before shutdown (the writer): once `closed` is set under the write lock, no push
    /// is in flight and none will start, so closing the queue afterwards strands nothing.
    gate: RwLock<Gate>,
    /// Why the pool broke, if it did; set before the gate closes.
    broken: Mutex<Option<String>>,
    /// The most threads at once; `set_max_workers` changes it.
    max_workers: AtomicUsize,
    /// Idle threads beyond this many exit after `idle_timeout`.
    min_workers: usize,
    idle_timeout: Option<Duration>,
    /// Tasks the workers ran (each worker adds its count before it blocks, and every 64 tasks).
    completed: AtomicUsize,
    thread_name_prefix: String,
    initializer: Option<Initializer>,
    /// This pool's identity among live executors, recorded in its tasks (see `future/local.rs`); 0 if none was
    /// free (then its workers never run its tasks inline).
    identity: usize,
    /// The demand for threads, as a two's-complement `isize`: jobs accepted and not yet taken by a thread (the
    /// backlog), minus threads idle. See [`Shared::add_demand`].
    demand: AtomicUsize,
    /// Threads started so far (mirrors `workers.started`, read without the lock on the fast path).
    started: AtomicUsize,
    workers: Mutex<Workers>,
    /// Signalled each time a worker exits.
    worker_exit: Condvar,
}

struct Gate {
    closed: bool,
}

/// What [`Shared::try_retire`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retire {
    /// The pool needs this thread as it is.
    NotNeeded,
    /// The thread gave up its place, then found a job accepted that no idle thread will take: it stays for it.
    Stayed,
    /// The thread left the pool: it must return.
    Retired,
}

#[derive(Default)]
struct Workers {
    /// Threads counted against `max_workers` (started and not retired).
    started: usize,
    alive: usize,
    /// Threads ever started: numbers the names, which stay unique as threads retire and start again.
    named: usize,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // No task of this pool is pending any more (each sat in the queue this drops with it, drained), so another
        // pool may take the identity.
        identities::release(self.identity);
    }
}

impl Shared {
    /// The error for a submit the pool no longer accepts.
    fn refusal(&self) -> Error {
        match self.broken.lock().clone() {
            Some(reason) => Error::Broken { reason },
            None => Error::Shutdown,
        }
    }

    /// Adds `delta` to the demand for threads and returns the new demand.
    ///
    /// The demand is the backlog (jobs accepted and not yet taken) minus the idle threads, kept in one word so
    /// that every change to either is one read-modify-write and every decision sees both at one instant:
    /// - a submit adds 1 before its push (one more job); a new thread subtracts 1 (idle from birth);
    /// - a worker taking a job changes nothing (one job and one idle thread fewer), so no pop races a count;
    /// - a worker that becomes idle subtracts 1; one that leaves the idle state without a job (to run
    ///   done-callbacks, or to retire) adds 1.
    ///
    /// Whoever raises it above 0 (a job no idle thread will take) starts a thread, unless `max_workers` run.
    /// So while fewer than `max_workers` threads run, every accepted job has a thread that will take it, whatever
    /// the running jobs wait for.
    ///
    /// ORDERING: AcqRel: the retirement of a thread (its `started` decrement, then its `+1` here) and a submit
    /// (its `+1` here, then its read of `started`) each see the other: whichever read-modify-write comes second
    /// reads the first, and synchronises with it.
    fn add_demand(&self, delta: isize) -> isize {
        let previous = self.demand.fetch_add(delta as usize, Ordering::AcqRel);
        (previous as isize).wrapping_add(delta)
    }

    /// The demand for threads now (a snapshot).
    fn demand(&self) -> isize {
        // ORDERING: Relaxed: a snapshot for decisions that re-check under the lock, and for statistics; after a
        // local push, the queues' locks order it against idle workers (see `after_local_push`).
        self.demand.load(Ordering::Relaxed) as isize
    }

    /// Queues a task: in the calling worker's own queue if it is one of this pool's threads, else in the shared
    /// queue (waiting there while a bounded queue is full, if `block`).
    fn enqueue(self: &Arc<Self>, job: Job, block: bool) -> Result<(), Error> {
        let job = match worker::push_local(self, job) {
            worker::LocalPush::Pushed => return Ok(()),
            worker::LocalPush::Refused => return Err(self.refusal()),
            worker::LocalPush::NotAWorker(job) => job,
        };
        let gate = self.gate.read();
        if gate.closed {
            return Err(self.refusal());
        }
        // (Mutant: lets the push run outside the gate, so it can land after shutdown closed the queue.)
        let gate = if mutant("no_gate") {
            drop(gate);
            None
        } else {
            Some(gate)
        };
        // Count the job before anyone can take it (see `add_demand`), and start a thread for it if no idle one
        // will take it. The first task's thread starts before the push, so a failed spawn refuses the task
        // instead of stranding it.
        if self.add_demand(1) > 0
            && let Err(error) = self.start_for_demand()
        {
            // ORDERING: Acquire pairs with the Release store in `start_worker`.
            if self.started.load(Ordering::Acquire) == 0 {
                self.add_demand(-1);
                return Err(error);
            }
            // At least one worker exists, so the task will still run.
            log::warn!(target: "concurrent_futures", "could not start another worker thread: {error}");
        }
        let pushed = if block {
            self.queue.push(job).map_err(|_| self.refusal())
        } else {
            self.queue.try_push(job).map_err(|e| match e {
                PushError::Full(_) => Error::Full,
                PushError::Closed(_) => self.refusal(),
            })
        };
        if pushed.is_err() {
            self.add_demand(-1);
        }
        drop(gate);
        pushed
    }

    /// Whether a task a worker pushes to its own queue now is counted in the demand (see [`add_demand`]).
    ///
    /// While fewer than `max_workers` threads run, it is: the demand is what starts a thread for it if its pusher
    /// blocks. Once all have started it is not (in a pool that never shrinks, as Python's): no thread can start
    /// for it, and counting each fan-out task costs two read-modify-writes of one word shared by every thread.
    /// An idle thread still finds it: idle threads steal, and the push wakes one (see `after_local_push`).
    /// A pool that retires idle threads (`idle_timeout`) counts every task, so a thread about to retire sees it.
    ///
    /// [`add_demand`]: Self::add_demand
    fn counts_local_pushes(&self) -> bool {
        // ORDERING: Acquire pairs with the Release stores of `started`; the decision is re-checked after the push
        // (see `after_local_push`).
        self.idle_timeout.is_some()
            || self.started.load(Ordering::Acquire) < self.max_workers.load(Ordering::Acquire)
    }

    /// A worker pushed a task to `queue`, its own, counted in the demand or not: get a thread to it if the pusher
    /// does not come back for it. An idle thread is woken (it steals the task), or, with none idle, a thread
    /// starts if fewer than `max_workers` run. The push comes first, so the thread woken or started finds it.
    ///
    /// Happens-before: the push (under the queue's lock) precedes this read of the demand; an idle worker counts
    /// itself idle (a read-modify-write of the demand) before it looks in every queue (under each queue's lock).
    /// Whichever takes the queue's lock second sees the other: the idle worker finds the task, or this call sees
    /// the worker idle and nudges it. Likewise `set_max_workers` raises the maximum before it counts the queued
    /// tasks (under their locks): a push it misses sees the new maximum here and counts its queue itself.
    fn after_local_push(self: &Arc<Self>, queue: &local_queue::LocalQueue, counted: bool) {
        let newly_counted = if counted {
            1
        } else if self.counts_local_pushes() {
            // Threads may start now (`set_max_workers` raised the maximum): count what this queue holds.
            queue.count_all()
        } else {
            0
        };
        if newly_counted > 0 {
            if self.add_demand(newly_counted as isize) > 0 {
                if let Err(error) = self.start_for_demand() {
                    // The pusher is a worker, so the task still runs (at the latest when the pusher is free).
                    log::warn!(target: "concurrent_futures", "could not start another worker thread: {error}");
                }
                return;
            }
        } else if self.demand() >= 0 {
            // No idle thread lacks a counted task: each will look for this one when it is free again.
            return;
        }
        // (Mutant: wakes no idle thread, so the task waits for its pusher.)
        if !mutant("no_nudge") {
            self.queue.nudge(1);
        }
    }

    /// Starts a thread for a demand above 0, if fewer than `max_workers` run; `Ok(false)` if none started.
    fn start_for_demand(self: &Arc<Self>) -> Result<bool, Error> {
        // ORDERING: Acquire pairs with the Release store in `start_worker`; `start_worker` re-checks under the lock.
        if self.started.load(Ordering::Acquire) >= self.max_workers.load(Ordering::Relaxed) {
            return Ok(false);
        }
        self.start_worker()
    }

    /// A thread leaves the idle state without taking a job (to run done-callbacks): if that leaves a job that no
    /// idle thread will take, it starts a thread for it.
    fn leave_idle(self: &Arc<Self>) {
        if self.add_demand(1) > 0
            && let Err(error) = self.start_for_demand()
        {
            log::warn!(target: "concurrent_futures", "could not start another worker thread: {error}");
        }
    }

    /// Starts one more worker if under `max_workers`; `true` if it started one.
    fn start_worker(self: &Arc<Self>) -> Result<bool, Error> {
        let mut workers = self.workers.lock();
        // (Mutant: trusts the caller's unlocked checks, so two submits can both start the last thread.)
        if workers.started >= self.max_workers.load(Ordering::Relaxed) && !mutant("overspawn") {
            return Ok(false);
        }
        let name = format!("{}_{}", self.thread_name_prefix, workers.named);
        let shared = self.clone();
        // A new thread counts as idle from birth (it looks for work at once), so the submit that started it
        // does not start another for the same task.
        self.add_demand(-1);
        let number = workers.named;
        match thread::spawn_named(name, move || worker::run(shared, number)) {
            Ok(handle) => {
                workers.started += 1;
                workers.named += 1;
                workers.alive += 1;
                workers.threads.push(handle);
                // ORDERING: Release pairs with the Acquire loads on the submit path.
                self.started.store(workers.started, Ordering::Release);
                Ok(true)
            }
            Err(error) => {
                self.add_demand(1);
                Err(Error::Broken {
                    reason: format!("could not start a worker thread: {error}"),
                })
            }
        }
    }

    /// Stops accepting work; with `cancel`, cancels what is queued; then lets workers exit once the queue drains.
    fn close(&self, cancel: bool) {
        if !mutant("shutdown_no_release") {
            // (Mutant: leaves submits blocked on a full queue holding the gate.)
            self.queue.close_push();
        }
        self.gate.write().closed = true;
        // Workers' own queues refuse later pushes; their owners run what they hold, unless it is cancelled here.
        let local = self.locals.close(cancel);
        if cancel {
            for (job, counted) in self.drain(local) {
                // Taken off the backlog by this thread, which is no worker.
                if counted {
                    self.add_demand(-1);
                }
                unwind::quietly("cancelling a queued task", || job.cancel());
            }
        }
        self.queue.close();
    }

    /// Marks the pool broken (an initializer failed): later submits and every queued task fail with the reason.
    fn break_pool(&self, reason: String) {
        self.broken.lock().get_or_insert_with(|| reason.clone());
        self.queue.close_push();
        self.gate.write().closed = true;
        let local = self.locals.close(true);
        for (job, counted) in self.drain(local) {
            if counted {
                self.add_demand(-1);
            }
            let error = Error::Broken {
                reason: reason.clone(),
            };
            unwind::quietly("failing a queued task", || job.fail(error));
        }
        self.queue.close();
    }

    /// What the workers' queues held (`local`), then what the shared queue holds, each with whether it is counted
    /// in the demand.
    fn drain(&self, local: Vec<local_queue::Entry>) -> impl Iterator<Item = (Job, bool)> + '_ {
        local
            .into_iter()
            .map(|entry| (entry.job, entry.counted))
            .chain(std::iter::from_fn(|| self.queue.try_pop()).map(|job| (job, true)))
    }

    fn worker_exited(&self) {
        self.workers.lock().alive -= 1;
        self.worker_exit.notify_all();
    }

    /// When an idle worker should give up waiting and consider retiring: `idle_timeout` from now, if more than
    /// `min_workers` threads run.
    fn idle_deadline(&self) -> Option<Instant> {
        let timeout = self.idle_timeout?;
        // ORDERING: Relaxed: a hint; `try_retire` decides under the lock.
        (self.started.load(Ordering::Relaxed) > self.min_workers).then(|| deadline_after(timeout))
    }

    /// Whether more threads run than `max_workers` allows (after `set_max_workers` lowered it).
    fn over_max(&self) -> bool {
        // ORDERING: Relaxed: a hint; `try_retire` decides under the lock.
        self.started.load(Ordering::Relaxed) > self.max_workers.load(Ordering::Relaxed)
    }

    /// Lets the calling worker, which is idle, exit if the pool has more threads than it needs: more than
    /// `max_workers`, or (`timed_out`, after `idle_timeout`) more than `min_workers`. On [`Retire::Retired`] the
    /// caller returns from its loop; on [`Retire::Stayed`] a job is on its way, and the caller yields before it
    /// looks again (with a zero `idle_timeout` it would otherwise spin until the job's submitter pushes it).
    ///
    /// Shrinking never strands a task: the worker gives up its place (`started`), then leaves the idle count
    /// (`add_demand(1)`); a submit adds its job to the demand, then reads `started`. Whichever read-modify-write
    /// of the demand comes second sees the other: either the worker sees the job (and stays for it) or the
    /// submit sees the place free (and starts a thread).
    fn try_retire(self: &Arc<Self>, timed_out: bool) -> Retire {
        let me = thread::current_id();
        let mut workers = self.workers.lock();
        let max = self.max_workers.load(Ordering::Relaxed);
        let surplus = workers.started > max;
        if !(surplus || (timed_out && workers.started > self.min_workers)) {
            return Retire::NotNeeded;
        }
        workers.started -= 1;
        // ORDERING: Release pairs with the Acquire loads on the submit path.
        self.started.store(workers.started, Ordering::Release);
        drop(workers);
        // (Mutant: skips the re-check, so a task queued while this thread retires can be left with no thread.)
        if self.add_demand(1) > 0 && !surplus && !mutant("retire_no_recheck") {
            // A job was accepted that no idle thread will take: stay for it, if there is still room.
            let mut workers = self.workers.lock();
            if workers.started < self.max_workers.load(Ordering::Relaxed) {
                workers.started += 1;
                self.started.store(workers.started, Ordering::Release);
                drop(workers);
                self.add_demand(-1);
                return Retire::Stayed;
            }
        }
        let mut workers = self.workers.lock();
        workers.alive -= 1;
        // This thread is finishing: detach it, since nobody will join a retired thread.
        if let Some(position) = workers.threads.iter().position(|t| t.thread().id() == me) {
            drop(workers.threads.swap_remove(position));
        }
        drop(workers);
        self.worker_exit.notify_all();
        Retire::Retired
    }

    /// Waits for every worker to exit (but the calling thread, if it is one of them) and reaps the threads.
    fn join_workers(&self) {
        let on_worker = worker::is_worker_of(self);
        let me = thread::current_id();
        let mut workers = self.workers.lock();
        let others = if on_worker { 1 } else { 0 };
        while workers.alive > others {
            self.worker_exit.wait(&mut workers);
        }
        let threads = std::mem::take(&mut workers.threads);
        let (mine, finished): (Vec<_>, Vec<_>) =
            threads.into_iter().partition(|t| t.thread().id() == me);
        workers.threads = mine;
        drop(workers);
        for thread in finished {
            // A worker catches every panic of its tasks and callbacks, so it cannot have panicked itself.
            let _ = thread.join();
        }
    }
}

/// A pool of threads that runs submitted closures and hands back a [`Future`] for each, like Python's
/// `concurrent.futures.ThreadPoolExecutor`.
///
/// Threads start lazily, one per submit while none is idle, up to `max_workers`; an idle thread is reused before
/// a new one starts. A panicking task fails only its own future ([`Error::Panicked`]); the thread lives on.
/// With a [queue bound](ThreadPoolBuilder::queue_bound), `submit` waits while the queue is full and
/// [`try_submit`](Self::try_submit) returns [`Error::Full`].
///
/// `ThreadPoolExecutor` is a cheap handle: clones share one pool. Dropping the last handle is
/// `shutdown(true)`: it waits for queued and running tasks (but never for the dropping thread itself, if that is
/// one of the pool's workers).
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::builder().max_workers(4).thread_name_prefix("fetch").build()?;
/// let future = pool.submit(|| std::thread::current().name().map(str::to_owned))?;
/// assert_eq!(future.result()?.as_deref(), Some("fetch_0"));
/// pool.shutdown(true);
/// assert!(pool.submit(|| ()).is_err());
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub struct ThreadPoolExecutor {
    handle: Arc<Handle>,
}

/// What every clone of a [`ThreadPoolExecutor`] shares: the pool, which the last clone to go shuts down. (One
/// reference count for the handles, apart from the workers' references to the pool, so a clone costs one
/// read-modify-write.) Aligned to its own cache lines: tasks that clone the handle write its count, which must
/// not slow down threads reading the pool's state next to it.
#[repr(align(128))]
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The last handle: `shutdown(true)` (which never waits for the calling thread, if it is a worker).
        self.shared.close(false);
        self.shared.join_workers();
    }
}

/// Builds a [`ThreadPoolExecutor`] (Python's keyword arguments, plus a queue bound).
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::builder()
///     .max_workers(2)
///     .thread_name_prefix("io")
///     .initializer(|| Ok(()))
///     .queue_bound(100)
///     .build()?;
/// assert_eq!(pool.max_workers(), 2);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[must_use]
pub struct ThreadPoolBuilder {
    max_workers: Option<usize>,
    thread_name_prefix: Option<String>,
    initializer: Option<Initializer>,
    queue_bound: Option<usize>,
    work_while_waiting: bool,
    min_workers: usize,
    idle_timeout: Option<Duration>,
}

impl fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.thread_name_prefix)
            .field("initializer", &self.initializer.is_some())
            .field("queue_bound", &self.queue_bound)
            .field("work_while_waiting", &self.work_while_waiting)
            .field("min_workers", &self.min_workers)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl ThreadPoolBuilder {
    /// Keeps at least this many threads once started, when [`idle_timeout`](Self::idle_timeout) retires idle
    /// ones (default 0). Threads still start lazily. Must not exceed `max_workers`.
    pub fn min_workers(mut self, min_workers: usize) -> Self {
        self.min_workers = min_workers;
        self
    }

    /// Lets a thread that stayed idle this long exit while more than `min_workers` run; it starts again on
    /// demand. Without it (the default, as in Python) the pool never shrinks.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder()
    ///     .max_workers(8)
    ///     .min_workers(1)
    ///     .idle_timeout(Duration::from_secs(30))
    ///     .build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = Some(idle_timeout);
        self
    }

    /// The most threads the pool runs at once (default `min(32, cpus + 4)`, as in Python). Must be at least 1.
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = Some(max_workers);
        self
    }

    /// Names the threads `{prefix}_{i}` (default `ThreadPoolExecutor-{n}`, as in Python).
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name_prefix = Some(prefix.into());
        self
    }

    /// Runs `initializer` at the start of each worker thread. If it returns an error or panics, the pool is
    /// broken: the error is logged, queued tasks fail with [`Error::Broken`], and so do later submits.
    pub fn initializer<F>(mut self, initializer: F) -> Self
    where
        F: Fn() -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + Sync + 'static,
    {
        self.initializer = Some(Box::new(initializer));
        self
    }

    /// Bounds the queue of tasks waiting for a thread: `submit` then waits while it is full, and `try_submit`
    /// fails with [`Error::Full`]. Unbounded by default (as in Python). Must be at least 1.
    ///
    /// The bound holds back submits from outside the pool. A task submitted from inside one of the pool's own
    /// tasks goes to its worker's own queue, which is not bounded: a worker never waits on its own pool's queue.
    pub fn queue_bound(mut self, bound: usize) -> Self {
        self.queue_bound = Some(bound);
        self
    }

    /// Whether a worker that waits on a future of its own pool (`result()`, `into_result()`, `.await` by
    /// `block_on`) runs the pool's queued fan-out work meanwhile instead of sleeping (default `true`).
    ///
    /// Either way, a waiting worker runs the task it waits for itself if no thread has started it, so nested
    /// waits cannot deadlock. With `true` it also runs other tasks that the pool's own tasks submitted (never
    /// tasks submitted from outside the pool), as rayon and Java's fork-join pools do: recursive fan-out then
    /// keeps every thread busy. The price: the waiting task resumes only once the task it picked up returns. If
    /// your tasks submit subtasks that block on something their submitter does after its wait (a channel, a
    /// lock), set `false`: then a waiting worker runs only the task it waits for.
    pub fn work_while_waiting(mut self, work: bool) -> Self {
        self.work_while_waiting = work;
        self
    }

    /// Builds the pool. No thread starts until the first submit. `max_workers == 0` or `queue_bound == 0` is
    /// [`Error::InvalidArgument`].
    pub fn build(self) -> Result<ThreadPoolExecutor, Error> {
        let max_workers = self.max_workers.unwrap_or_else(default_max_workers);
        if max_workers == 0 {
            return Err(Error::InvalidArgument(
                "max_workers must be greater than 0".into(),
            ));
        }
        if self.min_workers > max_workers {
            return Err(Error::InvalidArgument(format!(
                "min_workers ({}) must not exceed max_workers ({max_workers})",
                self.min_workers
            )));
        }
        if self.queue_bound == Some(0) {
            return Err(Error::InvalidArgument(
                "queue_bound must be at least 1".into(),
            ));
        }
        let number = crate::sync::next_pool_number();
        let thread_name_prefix = self
            .thread_name_prefix
            .unwrap_or_else(|| format!("ThreadPoolExecutor-{number}"));
        Ok(ThreadPoolExecutor::from_shared(Arc::new(Shared {
            queue: Queue::new(self.queue_bound),
            locals: local_queue::Locals::default(),
            work_while_waiting: self.work_while_waiting,
            gate: RwLock::new(Gate { closed: false }),
            broken: Mutex::new(None),
            max_workers: AtomicUsize::new(max_workers),
            min_workers: self.min_workers,
            idle_timeout: self.idle_timeout,
            completed: AtomicUsize::new(0),
            thread_name_prefix,
            initializer: self.initializer,
            identity: identities::acquire(local::max_identity()),
            demand: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            workers: Mutex::new(Workers::default()),
            worker_exit: Condvar::new(),
        })))
    }
}

impl ThreadPoolExecutor {
    fn from_shared(shared: Arc<Shared>) -> Self {
        ThreadPoolExecutor {
            handle: Arc::new(Handle { shared }),
        }
    }

    /// The pool this handle drives.
    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// A pool of at most `max_workers` threads. `max_workers == 0` is [`Error::InvalidArgument`].
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// assert!(ThreadPoolExecutor::new(8).is_ok());
    /// assert!(matches!(ThreadPoolExecutor::new(0), Err(Error::InvalidArgument(_))));
    /// ```
    pub fn new(max_workers: usize) -> Result<Self, Error> {
        Self::builder().max_workers(max_workers).build()
    }

    /// A builder for the other options.
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder {
            max_workers: None,
            thread_name_prefix: None,
            initializer: None,
            queue_bound: None,
            min_workers: 0,
            idle_timeout: None,
            work_while_waiting: true,
        }
    }

    /// The most threads this pool runs at once.
    pub fn max_workers(&self) -> usize {
        // ORDERING: Relaxed: a snapshot.
        self.shared().max_workers.load(Ordering::Relaxed)
    }

    /// Changes the most threads the pool runs at once, while it runs. Raising it starts threads for queued
    /// tasks at once; lowering it lets the surplus threads exit as they finish their current task (idle ones at
    /// once). Below 1 or below `min_workers` is [`Error::InvalidArgument`].
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(2)?;
    /// pool.set_max_workers(8)?;
    /// assert_eq!(pool.max_workers(), 8);
    /// assert!(pool.set_max_workers(0).is_err());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn set_max_workers(&self, max_workers: usize) -> Result<(), Error> {
        if max_workers == 0 || max_workers < self.shared().min_workers {
            return Err(Error::InvalidArgument(format!(
                "max_workers must be at least 1 and at least min_workers ({})",
                self.shared().min_workers
            )));
        }
        // ORDERING: AcqRel: later spawns and retirements read the new bound (they re-check under the lock).
        let old = self
            .shared()
            .max_workers
            .swap(max_workers, Ordering::AcqRel);
        if max_workers > old {
            let gate = self.shared().gate.read();
            if !gate.closed {
                // Tasks pushed to workers' own queues while every thread ran were not counted: count them now,
                // so that threads start for them too (see `Shared::counts_local_pushes`).
                let uncounted = self.shared().locals.count_all();
                if uncounted > 0 {
                    self.shared().add_demand(uncounted as isize);
                }
                // Start threads for what is queued and has no idle thread to take it, up to the new bound.
                for _ in old..max_workers {
                    if self.shared().demand() <= 0
                        || !matches!(self.shared().start_for_demand(), Ok(true))
                    {
                        break;
                    }
                }
            }
        } else if max_workers < old {
            // Wake idle threads so the surplus can leave without waiting for work.
            self.shared().queue.nudge(old - max_workers);
        }
        Ok(())
    }

    /// How many tasks the pool's threads have run (as of each thread's last pause: a busy thread adds its count
    /// before it next waits for work, and every 64 tasks). Tasks a waiting worker ran itself (the one it waited
    /// for, or others while it waited) are not counted.
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(1)?;
    /// pool.submit(|| ())?.result()?;
    /// pool.shutdown(true);
    /// assert_eq!(pool.completed(), 1);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn completed(&self) -> usize {
        // ORDERING: Relaxed: a statistic.
        self.shared().completed.load(Ordering::Relaxed)
    }

    /// Schedules `task` and returns its future (Python's `submit`).
    ///
    /// Waits while a bounded queue is full. Fails with [`Error::Shutdown`] after shutdown (also when a shutdown
    /// releases this waiting submit) and [`Error::Broken`] if the pool is broken.
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(2)?;
    /// let name = String::from("world");
    /// let greeting = pool.submit(move || format!("hello {name}"))?;
    /// assert_eq!(greeting.result()?, "hello world");
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn submit<F, T>(&self, task: F) -> Result<Future<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        let (job, future) = Task::new_pair(task, self.shared().identity);
        self.shared().enqueue(job, true)?;
        Ok(future)
    }

    /// Like [`submit`](Self::submit), but never waits: a full bounded queue is [`Error::Full`].
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::builder().max_workers(1).queue_bound(1).build()?;
    /// let (started_tx, started_rx) = std::sync::mpsc::channel();
    /// let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    /// let busy = pool.try_submit(move || { started_tx.send(()).unwrap(); release_rx.recv().ok(); })?;
    /// started_rx.recv().unwrap(); // the worker holds the first task
    /// let queued = pool.try_submit(|| ())?; // fills the queue
    /// assert!(matches!(pool.try_submit(|| ()), Err(Error::Full)));
    /// release_tx.send(()).unwrap();
    /// queued.result()?;
    /// # busy.result()?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_submit<F, T>(&self, task: F) -> Result<Future<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        let (job, future) = Task::new_pair(task, self.shared().identity);
        self.shared().enqueue(job, false)?;
        Ok(future)
    }

    /// Applies `f` to every input on the pool and yields the results in input order (Python's `map`), with the
    /// default [`MapOptions`]: every input is submitted now, one per task.
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(4)?;
    /// let offset = 10;
    /// let results: Vec<u32> = pool.map(move |x: u32| x + offset, 0..5)?.collect::<Result<_, _>>()?;
    /// assert_eq!(results, [10, 11, 12, 13, 14]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn map<'a, F, A, R, I>(&'a self, f: F, inputs: I) -> Result<Map<'a, R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + Sync + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        self.map_with(f, inputs, MapOptions::new())
    }

    /// [`map`](Self::map) with a timeout, a chunk size (several inputs per task) and a buffer size (at most that
    /// many tasks in flight, so an endless input works). `chunksize` or `buffersize` of 0 is
    /// [`Error::InvalidArgument`].
    ///
    /// ```
    /// use concurrent_futures::{MapOptions, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(2)?;
    /// let options = MapOptions::new().chunksize(100).buffersize(2);
    /// let total: u64 = pool.map_with(|x: u64| x, 1..=1000, options)?.sum::<Result<u64, _>>()?;
    /// assert_eq!(total, 500_500);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn map_with<'a, F, A, R, I>(
        &'a self,
        f: F,
        inputs: I,
        options: MapOptions,
    ) -> Result<Map<'a, R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + Sync + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        options.validate()?;
        let f = Arc::new(f);
        let g = f.clone();
        let source = batches(
            inputs.into_iter(),
            options.chunksize,
            move |input| {
                let f = f.clone();
                self.submit(move || f(input))
            },
            move |chunk: Vec<A>| {
                let g = g.clone();
                self.submit(move || Partial::run(chunk, |input| g(input)))
            },
        );
        Map::new(options, source)
    }

    /// Stops accepting tasks (Python's `shutdown(wait)`): queued tasks still run. With `wait`, returns once they
    /// have all finished and every thread has exited. Calling it again is harmless.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(2)?;
    /// let future = pool.submit(|| 1)?;
    /// pool.shutdown(true);
    /// assert!(future.done());
    /// assert!(matches!(pool.submit(|| 2), Err(Error::Shutdown)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn shutdown(&self, wait: bool) {
        self.shutdown_with(wait, false);
    }

    /// [`shutdown`](Self::shutdown), and with `cancel_futures` every task still queued is cancelled (Python's
    /// `shutdown(wait, cancel_futures=True)`). Submits waiting on a full queue fail with [`Error::Shutdown`].
    pub fn shutdown_with(&self, wait: bool, cancel_futures: bool) {
        self.shared().close(cancel_futures);
        if wait {
            self.shared().join_workers();
        }
    }

    /// How many tasks wait in the queue for a thread.
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(1)?;
    /// assert_eq!(pool.queued(), 0);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn queued(&self) -> usize {
        self.shared().queue.len() + self.shared().locals.len()
    }

    /// How many worker threads are alive (threads start lazily, so 0 before the first submit).
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(4)?;
    /// assert_eq!(pool.workers(), 0);
    /// pool.submit(|| ())?.result()?;
    /// assert_eq!(pool.workers(), 1);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn workers(&self) -> usize {
        self.shared().workers.lock().alive
    }

    /// How many worker threads are idle: done with their last task and not yet holding another (a snapshot).
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(4)?;
    /// pool.submit(|| ())?.result()?;
    /// assert!(pool.idle_workers() <= 1);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn idle_workers(&self) -> usize {
        // Idle threads are the backlog minus the demand (see `Shared::add_demand`); the queues hold the backlog
        // (the tasks counted in the demand) but for submits between counting their job and pushing it, so this
        // can briefly read low.
        let shared = self.shared();
        let backlog = (shared.queue.len() + shared.locals.counted_len()) as isize;
        usize::try_from(backlog.saturating_sub(shared.demand())).unwrap_or(0)
    }
}

impl Default for ThreadPoolExecutor {
    /// A pool of `min(32, cpus + 4)` threads, as Python's default.
    fn default() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("the default max_workers is at least 5"))
    }
}

impl Clone for ThreadPoolExecutor {
    fn clone(&self) -> Self {
        ThreadPoolExecutor {
            handle: self.handle.clone(),
        }
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let workers = self.shared().workers.lock();
        f.debug_struct("ThreadPoolExecutor")
            .field("max_workers", &self.max_workers())
            .field("threads", &workers.alive)
            .field("queued", &self.queued())
            .field("shutdown", &self.shared().gate.read().closed)
            .finish()
    }
}

impl Executor for ThreadPoolExecutor {
    fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + Sync + 'static,
    {
        ThreadPoolExecutor::submit(self, move || f(arg))
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
        ThreadPoolExecutor::map_with(self, f, inputs, options)
    }

    fn shutdown_with(&self, wait: bool, cancel_futures: bool) {
        ThreadPoolExecutor::shutdown_with(self, wait, cancel_futures);
    }
}
