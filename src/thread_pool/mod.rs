//! [`ThreadPoolExecutor`]: Python's thread pool, plus a bounded queue and panics returned as errors.

mod worker;

use std::fmt;
use std::time::{Duration, Instant};

use crate::future::deadline_after;
use crate::future::{Runnable, Task, pool_tag};
use crate::map::{Map, Partial, batches};
use crate::sync::{
    Arc, AtomicUsize, Condvar, Mutex, Ordering, PushError, Queue, RwLock, fence, mutant, thread,
};
use crate::{Error, Executor, Future, MapOptions};
pub(crate) use worker::current_worker_tag;

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
    queue: Queue<Job>,
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
    /// Marks this pool's tasks, so its workers can recognise them (see `Future::run_here_if_mine`).
    tag: usize,
    thread_name_prefix: String,
    initializer: Option<Initializer>,
    /// Threads between finishing a task and taking the next one (what Python's idle semaphore approximates).
    idle: AtomicUsize,
    /// Threads started so far (mirrors `workers.started`, read without the lock on the fast path).
    started: AtomicUsize,
    workers: Mutex<Workers>,
    /// Signalled each time a worker exits.
    worker_exit: Condvar,
    /// User-visible `ThreadPoolExecutor` handles; the last one to drop shuts the pool down.
    handles: AtomicUsize,
}

struct Gate {
    closed: bool,
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

impl Shared {
    /// The error for a submit the pool no longer accepts.
    fn refusal(&self) -> Error {
        match self.broken.lock().clone() {
            Some(reason) => Error::Broken { reason },
            None => Error::Shutdown,
        }
    }

    fn enqueue(self: &Arc<Self>, job: Job, block: bool) -> Result<(), Error> {
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
        // The first task: a worker must exist before anything is queued, or a failed spawn would strand it.
        if self.started.load(Ordering::Acquire) == 0 {
            self.start_worker(true)?;
        }
        let pushed = if block {
            self.queue.push(job).map_err(|_| self.refusal())
        } else {
            self.queue.try_push(job).map_err(|e| match e {
                PushError::Full(_) => Error::Full,
                PushError::Closed(_) => self.refusal(),
            })
        };
        pushed?;
        if self.idle_timeout.is_some() {
            // Pairs with the fence in `try_retire`: either this submit sees a retiring thread gone (and starts
            // another), or that thread sees this task queued (and stays).
            fence(Ordering::SeqCst);
        }
        self.adjust_thread_count();
        drop(gate);
        Ok(())
    }

    /// After a push: start a thread if more tasks are queued than threads are idle, up to `max_workers`.
    /// An idle thread is thus reused before a new one starts; every queued task has a thread that will take it,
    /// because at least one thread exists and threads only exit once the queue is closed and drained.
    fn adjust_thread_count(self: &Arc<Self>) {
        // ORDERING: Acquire pairs with the Release store in `start_worker`; a stale read only costs a lock.
        if self.started.load(Ordering::Acquire) >= self.max_workers.load(Ordering::Relaxed) {
            return;
        }
        // Idle first: a thread that takes a job lowers both counts, so this order never over-counts idle threads.
        // ORDERING: Relaxed: a hint (see `worker::run`).
        let idle = self.idle.load(Ordering::Relaxed);
        if self.queue.len() <= idle {
            return;
        }
        if let Err(error) = self.start_worker(false) {
            // At least one worker exists (the first submit made sure), so the task will still run.
            log::warn!(target: "concurrent_futures", "could not start another worker thread: {error}");
        }
    }

    /// Starts one more worker if under `max_workers` (or, with `first`, only if none was started yet); `true` if
    /// it started one.
    fn start_worker(self: &Arc<Self>, first: bool) -> Result<bool, Error> {
        let mut workers = self.workers.lock();
        let full = workers.started >= self.max_workers.load(Ordering::Relaxed)
            || (first && workers.started > 0);
        // (Mutant: trusts the caller's unlocked checks, so two submits can both start the last thread.)
        if full && !mutant("overspawn") {
            return Ok(false);
        }
        let name = format!("{}_{}", self.thread_name_prefix, workers.named);
        let shared = self.clone();
        // A new thread counts as idle from birth (it looks for work at once), so the submit that started it
        // does not start another for the same task.
        // ORDERING: Relaxed: a hint (see `worker::run`).
        self.idle.fetch_add(1, Ordering::Relaxed);
        match thread::spawn_named(name, move || worker::run(shared)) {
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
                self.idle.fetch_sub(1, Ordering::Relaxed);
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
        if cancel {
            while let Some(job) = self.queue.try_pop() {
                job.cancel();
            }
        }
        self.queue.close();
    }

    /// Marks the pool broken (an initializer failed): later submits and every queued task fail with the reason.
    fn break_pool(&self, reason: String) {
        self.broken.lock().get_or_insert_with(|| reason.clone());
        self.queue.close_push();
        self.gate.write().closed = true;
        while let Some(job) = self.queue.try_pop() {
            job.fail(Error::Broken {
                reason: reason.clone(),
            });
        }
        self.queue.close();
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

    /// Lets the calling worker exit if the pool has more threads than it needs: more than `max_workers`, or
    /// (`idle`, after `idle_timeout`) more than `min_workers` with nothing queued. `true` if it retired; the
    /// caller then returns from its loop.
    ///
    /// Shrinking never strands a task: after giving up its place, the worker fences and looks at the queue
    /// again; a submit fences after its push and before counting threads. One of the two sees the other, so
    /// either the worker stays for the task or the submit starts a thread.
    fn try_retire(&self, idle: bool) -> bool {
        let me = thread::current_id();
        let mut workers = self.workers.lock();
        let max = self.max_workers.load(Ordering::Relaxed);
        let surplus = workers.started > max;
        if !(surplus || (idle && workers.started > self.min_workers && self.queue.len() == 0)) {
            return false;
        }
        workers.started -= 1;
        // ORDERING: Release pairs with the Acquire loads on the submit path.
        self.started.store(workers.started, Ordering::Release);
        drop(workers);
        if !surplus && !mutant("retire_no_recheck") {
            // (Mutant: skips the re-check, so a task queued while this thread retires can be left with no thread.)
            fence(Ordering::SeqCst);
            if self.queue.len() > 0 {
                let mut workers = self.workers.lock();
                if workers.started < self.max_workers.load(Ordering::Relaxed) {
                    workers.started += 1;
                    self.started.store(workers.started, Ordering::Release);
                    return false;
                }
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
        true
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
    shared: Arc<Shared>,
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
    pub fn queue_bound(mut self, bound: usize) -> Self {
        self.queue_bound = Some(bound);
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
        Ok(ThreadPoolExecutor {
            shared: Arc::new(Shared {
                queue: Queue::new(self.queue_bound),
                gate: RwLock::new(Gate { closed: false }),
                broken: Mutex::new(None),
                max_workers: AtomicUsize::new(max_workers),
                min_workers: self.min_workers,
                idle_timeout: self.idle_timeout,
                completed: AtomicUsize::new(0),
                tag: pool_tag(number),
                thread_name_prefix,
                initializer: self.initializer,
                idle: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
                workers: Mutex::new(Workers::default()),
                worker_exit: Condvar::new(),
                handles: AtomicUsize::new(1),
            }),
        })
    }
}

impl ThreadPoolExecutor {
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
        }
    }

    /// The most threads this pool runs at once.
    pub fn max_workers(&self) -> usize {
        // ORDERING: Relaxed: a snapshot.
        self.shared.max_workers.load(Ordering::Relaxed)
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
        if max_workers == 0 || max_workers < self.shared.min_workers {
            return Err(Error::InvalidArgument(format!(
                "max_workers must be at least 1 and at least min_workers ({})",
                self.shared.min_workers
            )));
        }
        // ORDERING: AcqRel: later spawns and retirements read the new bound (they re-check under the lock).
        let old = self.shared.max_workers.swap(max_workers, Ordering::AcqRel);
        if max_workers > old {
            let gate = self.shared.gate.read();
            if !gate.closed {
                // Start threads for what is queued, up to the new bound.
                for _ in old..max_workers {
                    let before = self.shared.started.load(Ordering::Acquire);
                    self.shared.adjust_thread_count();
                    if self.shared.started.load(Ordering::Acquire) == before {
                        break;
                    }
                }
            }
        } else if max_workers < old {
            // Wake idle threads so the surplus can leave without waiting for work.
            self.shared.queue.nudge(old - max_workers);
        }
        Ok(())
    }

    /// How many tasks the pool's threads have run (as of each thread's last pause: a busy thread adds its count
    /// before it next waits for work, and every 64 tasks). Tasks a waiting worker ran itself are not counted.
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
        self.shared.completed.load(Ordering::Relaxed)
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
        let (job, future) = Task::new_pair(task, self.shared.tag);
        self.shared.enqueue(job, true)?;
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
        let (job, future) = Task::new_pair(task, self.shared.tag);
        self.shared.enqueue(job, false)?;
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
        self.shared.close(cancel_futures);
        if wait {
            self.shared.join_workers();
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
        self.shared.queue.len()
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
        self.shared.workers.lock().alive
    }

    /// How many worker threads are idle: done with their last task and not yet holding another.
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(4)?;
    /// pool.submit(|| ())?.result()?;
    /// assert!(pool.idle_workers() <= 1);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn idle_workers(&self) -> usize {
        // ORDERING: Relaxed: a snapshot for observation only.
        self.shared.idle.load(Ordering::Relaxed)
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
        // ORDERING: Relaxed, as for `Arc::clone`: made from a live handle, which keeps the count above zero.
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        ThreadPoolExecutor {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for ThreadPoolExecutor {
    /// Dropping the last handle is `shutdown(true)`.
    fn drop(&mut self) {
        // ORDERING: AcqRel: the last handle's drop sees every other handle's submits as done.
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shutdown_with(true, false);
        }
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let workers = self.shared.workers.lock();
        f.debug_struct("ThreadPoolExecutor")
            .field("max_workers", &self.max_workers())
            .field("threads", &workers.alive)
            .field("queued", &self.shared.queue.len())
            .field("shutdown", &self.shared.gate.read().closed)
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
