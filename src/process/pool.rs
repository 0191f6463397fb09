//! The parent's side of a process pool: the task queue, the worker table, a reader thread per worker and the
//! manager thread that starts workers and kills the ones whose task ran past its deadline.
//!
//! # How a task travels
//! `submit` encodes the argument into a ready-to-send frame and queues the job; an idle worker takes it at once
//! (the submitting thread writes the frame), otherwise the job waits until a worker's reader thread, having read
//! that worker's previous result, hands it the next job. Each worker runs one task at a time, so its socket has
//! one writer at a time and the frames never interleave.
//!
//! # How a worker ends
//! Its reader thread reads until end of stream (the worker exited, was killed, or was told to exit by the pool
//! closing its half of the socket), reaps it with `waitpid`, fails the task it held (with
//! [`Error::WorkerDied`], or [`Error::TaskTimeout`] if the manager killed it for its deadline), and asks the
//! manager for a replacement if work is waiting. Signals are sent only under the state lock and only to workers
//! whose reader has not started reaping them, so a pid is never signalled after it may have been recycled.
//!
//! The locks, condition variables and threads come from `crate::sync`, but the process and socket code is outside
//! loom's scope: the loom build compiles this module without modelling it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::BufReader;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::protocol::{
    Hello, Identity, MAGIC, ReadError, Reply, Status, VERSION, read_frame, write_frame,
};
use super::spawn::{describe, signal, spawn_worker};
use crate::future::{Promise, deadline_after};
use crate::map::Partial;
use crate::sync::{Arc, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering, thread, thread_local};
use crate::{Error, Payload};

/// A queued task's future, with its result type erased.
pub(crate) trait Pending: Send {
    /// Marks it running; `false` if it was cancelled (or set from outside) and must not be sent.
    fn start(&self) -> bool;
    /// Completes it from the worker's reply: decodes the result, or maps the failure to an [`Error`].
    fn finish(&self, name: &str, status: Status, payload: &[u8]);
    /// Fails it.
    fn fail(&self, error: Error);
    /// Cancels it if it is still pending.
    fn cancel(&self);
}

/// [`Pending`] for a future of `R`.
pub(crate) struct Typed<R>(pub(crate) Promise<R>);

impl<R: Payload> Pending for Typed<R> {
    fn start(&self) -> bool {
        self.0.start() == Ok(true)
    }

    fn finish(&self, name: &str, status: Status, payload: &[u8]) {
        let outcome = match status {
            Status::Ok => decode::<R>(name, payload),
            failure => Err(status_error(failure)),
        };
        // Fails only if the future was set from outside meanwhile; that outcome stands.
        let _ = self.0.complete(outcome);
    }

    fn fail(&self, error: Error) {
        let _ = self.0.complete(Err(error));
    }

    fn cancel(&self) {
        self.0.cancel();
    }
}

/// [`Pending`] for a `map` chunk: the worker replies with the values of the items up to the first that failed,
/// and that item's failure (see `Registry::register`).
pub(crate) struct Chunked<R>(pub(crate) Promise<Partial<R>>);

impl<R: Payload> Pending for Chunked<R> {
    fn start(&self) -> bool {
        self.0.start() == Ok(true)
    }

    fn finish(&self, name: &str, status: Status, payload: &[u8]) {
        let outcome = match status {
            Status::Ok => {
                decode::<(Vec<R>, Option<Status>)>(name, payload).map(|(values, failure)| Partial {
                    values,
                    error: failure.map(status_error),
                })
            }
            failure => Err(status_error(failure)),
        };
        let _ = self.0.complete(outcome);
    }

    fn fail(&self, error: Error) {
        let _ = self.0.complete(Err(error));
    }

    fn cancel(&self) {
        self.0.cancel();
    }
}

/// Decodes a task's result; a panicking `Deserialize` impl must not take the reader thread down with it.
fn decode<T: serde::de::DeserializeOwned>(name: &str, payload: &[u8]) -> Result<T, Error> {
    match crate::unwind::run_task(|| postcard::from_bytes::<T>(payload)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Error::Serialization(format!(
            "could not decode the result of `{name}`: {error}"
        ))),
        Err(panic) => Err(Error::Serialization(format!(
            "decoding the result of `{name}` panicked: {panic}"
        ))),
    }
}

/// The error for a task that failed in its worker.
fn status_error(status: Status) -> Error {
    match status {
        Status::Ok => Error::Protocol("a task reported success without a result".into()),
        Status::Panicked(message) => Error::Panicked { message },
        Status::UnknownTask(name) => Error::UnknownTask(name),
        Status::Serialization(what) => Error::Serialization(what),
        Status::TooLarge(what) => Error::Protocol(what),
    }
}

/// A task waiting for a worker.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) name: &'static str,
    /// The whole frame, ready to write.
    pub(crate) frame: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) pending: Box<dyn Pending>,
    /// Already marked running: it was handed to a worker that could not take it, and waits for another.
    pub(crate) started: bool,
}

/// A task sent to a worker: the first of a worker's tasks is running, the others wait in its socket.
struct InFlight {
    id: u64,
    name: &'static str,
    timeout: Option<Duration>,
    pending: Box<dyn Pending>,
    /// A copy of the frame of a task sent ahead (small frames only), or the frame of a task whose write failed:
    /// what is needed to hand it to another worker if this one dies before starting it.
    retry: Option<Vec<u8>>,
    /// Its frame could not be written whole: the worker never started it.
    unsent: bool,
}

/// Only frames up to this size are sent ahead of a running task: they fit in the socket's buffer, so writing one
/// never waits for the worker (which may be busy writing a large result the pool has yet to read).
const AHEAD_MAX: usize = 16 * 1024;

/// The pool's end of a worker's socket, and the frames waiting to be written to it, in order.
struct Conn {
    stream: UnixStream,
    outbox: Mutex<VecDeque<(u64, Vec<u8>)>>,
    /// 1 while a thread is writing the outbox out: one writer at a time, so frames never interleave.
    writing: AtomicUsize,
}

/// Decodes an initializer's result: `Err(reason)` if it failed.
pub(crate) type InitCheck = Box<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// The initializer every worker runs before its first task.
pub(crate) struct Initializer {
    /// Its call frame (task id 0).
    pub(crate) frame: Vec<u8>,
    /// Decodes its result: `Err(reason)` if it failed.
    pub(crate) check: InitCheck,
}

/// The pool's fixed settings.
pub(crate) struct Config {
    pub(crate) max_workers: usize,
    pub(crate) max_tasks_per_child: Option<usize>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) startup_timeout: Duration,
    /// How many tasks a busy worker may hold beyond the one it runs (see `ProcessPoolBuilder::tasks_ahead`).
    pub(crate) ahead: usize,
    pub(crate) max_frame: usize,
    pub(crate) initializer: Option<Initializer>,
    pub(crate) exe: PathBuf,
    pub(crate) token: String,
    pub(crate) identity: Identity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Started; its hello has not arrived.
    Hello,
    /// Running the initializer.
    Init,
    /// Waiting for a task.
    Idle,
    /// Running a task.
    Busy,
    /// Told to exit (its socket's write half is closed); gets no more tasks.
    Retiring,
}

/// Why the pool is ending a worker.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Its task ran past this timeout.
    Timeout(Duration),
    /// A frame could not be written to it.
    Killed,
    /// `terminate_workers` or `kill_workers`.
    Terminated,
    /// It did not say hello within the startup timeout.
    Silent(Duration),
}

/// The task id under which a worker's startup deadline sits in the deadline queue.
const HELLO: u64 = u64::MAX;

struct Worker {
    pid: u32,
    conn: Arc<Conn>,
    phase: Phase,
    in_flight: VecDeque<InFlight>,
    tasks_done: usize,
    stopping: Option<Stop>,
    /// Its reader is reaping it: it must not be signalled any more.
    reaping: bool,
}

struct State {
    queue: VecDeque<Job>,
    workers: HashMap<u64, Worker>,
    idle: Vec<u64>,
    /// Workers the manager is asked to start.
    pending_spawns: usize,
    /// Workers the manager is starting now.
    spawning: usize,
    closed: bool,
    broken: Option<Error>,
    /// (deadline, worker, task id) of running tasks with a timeout; stale entries are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    next_worker: u64,
    /// The manager and reader threads that have not finished their work.
    threads_running: usize,
}

/// What the pool's handles, its manager and its readers share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the manager: a spawn is wanted, a deadline was added, or the pool may be done.
    wake: Condvar,
    /// Signalled when a worker is gone or a pool thread finished.
    changed: Condvar,
    next_job: AtomicUsize,
    pub(crate) config: Config,
}

thread_local! {
    /// The pool (by the address of its shared state) whose manager or reader this thread is; 0 for others.
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static CURRENT_POOL: std::cell::Cell<usize> = std::cell::Cell::new(0);
}

/// A worker whose outbox has frames to write once the state lock is released.
type Outgoing = Option<(u64, Arc<Conn>)>;

impl Shared {
    /// A pool with no workers yet; starts its manager thread.
    pub(crate) fn start(config: Config) -> Result<Arc<Shared>, Error> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                workers: HashMap::new(),
                idle: Vec::new(),
                pending_spawns: 0,
                spawning: 0,
                closed: false,
                broken: None,
                deadlines: BinaryHeap::new(),
                next_worker: 0,
                threads_running: 1,
            }),
            wake: Condvar::new(),
            changed: Condvar::new(),
            next_job: AtomicUsize::new(1),
            config,
        });
        let manager = shared.clone();
        thread::spawn_named("process-pool-manager".into(), move || manager.manage()).map_err(
            |error| Error::Broken {
                reason: format!("could not start the process pool's manager thread: {error}"),
            },
        )?;
        Ok(shared)
    }

    /// A fresh task id (0 is the initializer's).
    pub(crate) fn next_job_id(&self) -> u64 {
        // ORDERING: Relaxed: only uniqueness matters; the id travels with the job under the state lock.
        self.next_job.fetch_add(1, Ordering::Relaxed) as u64
    }

    fn is_own_thread(&self) -> bool {
        CURRENT_POOL.with(|current| current.get() == self as *const Shared as usize)
    }

    /// Queues `job`, handing it to an idle worker if there is one.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Error> {
        let mut state = self.state.lock();
        if let Some(error) = &state.broken {
            return Err(error.clone());
        }
        if state.closed {
            return Err(Error::Shutdown);
        }
        state.queue.push_back(job);
        let send = self.place(&mut state);
        drop(state);
        self.send(send);
        Ok(())
    }

    /// Finds a worker for the job at the head of the queue: an idle one; else more workers if the pool may
    /// grow; else a busy one with room to take it ahead.
    fn place(&self, state: &mut State) -> Outgoing {
        if let Some(key) = state.idle.pop() {
            return self.dispatch(state, key);
        }
        if self.ensure_capacity(state) {
            return None;
        }
        let small = state
            .queue
            .front()
            .is_some_and(|job| job.frame.len() <= AHEAD_MAX);
        let room = state
            .workers
            .iter()
            .filter(|(_, w)| w.phase == Phase::Busy && w.stopping.is_none())
            .filter(|(_, w)| w.in_flight.len() <= self.config.ahead)
            .min_by_key(|(_, w)| w.in_flight.len())
            .map(|(key, _)| *key);
        match room {
            Some(key) if small => self.dispatch(state, key),
            _ => None,
        }
    }

    /// Tops worker `key` up to `1 + ahead` tasks from the queue (within its `max_tasks_per_child` budget, and
    /// only small frames ahead of a running task); a worker left with none idles, or retires once the pool is
    /// closed. Returns the worker if frames were queued for it.
    fn dispatch(&self, state: &mut State, key: u64) -> Outgoing {
        let budget = self.config.max_tasks_per_child;
        let mut sent = false;
        loop {
            let worker = state.workers.get(&key)?;
            if worker.stopping.is_some() || !matches!(worker.phase, Phase::Idle | Phase::Busy) {
                return None;
            }
            let held = worker.in_flight.len();
            let spent = worker.tasks_done + held;
            if held > self.config.ahead || budget.is_some_and(|max| spent >= max) {
                break;
            }
            let Some(job) = state.queue.pop_front() else {
                break;
            };
            if held > 0 && job.frame.len() > AHEAD_MAX {
                state.queue.push_front(job);
                break;
            }
            if !job.started && !job.pending.start() {
                continue;
            }
            if held == 0
                && let Some(timeout) = job.timeout
            {
                self.add_deadline(state, deadline_after(timeout), key, job.id);
            }
            let Some(worker) = state.workers.get_mut(&key) else {
                // Cannot happen (it was there above, under the same lock); keep the task for another worker.
                state.queue.push_front(Job {
                    started: true,
                    ..job
                });
                return None;
            };
            worker.phase = Phase::Busy;
            worker.in_flight.push_back(InFlight {
                id: job.id,
                name: job.name,
                timeout: job.timeout,
                pending: job.pending,
                retry: (held > 0).then(|| job.frame.clone()),
                unsent: false,
            });
            worker.conn.outbox.lock().push_back((job.id, job.frame));
            sent = true;
        }
        let worker = state.workers.get_mut(&key)?;
        if worker.in_flight.is_empty() {
            if state.closed || budget.is_some_and(|max| worker.tasks_done >= max) {
                Self::retire(state, key);
            } else {
                worker.phase = Phase::Idle;
                if !state.idle.contains(&key) {
                    state.idle.push(key);
                }
            }
        }
        let conn = state.workers.get(&key).map(|w| w.conn.clone())?;
        sent.then_some((key, conn))
    }

    fn add_deadline(&self, state: &mut State, deadline: Instant, key: u64, id: u64) {
        if state.deadlines.len() > 64 + 4 * state.workers.len() {
            // Drop the entries of tasks that already finished.
            let workers = &state.workers;
            state.deadlines.retain(|Reverse((_, key, id))| {
                workers.get(key).is_some_and(|w| {
                    (*id == HELLO && w.phase == Phase::Hello)
                        || w.in_flight.front().is_some_and(|task| task.id == *id)
                })
            });
        }
        state.deadlines.push(Reverse((deadline, key, id)));
        self.wake.notify_one();
    }

    /// Writes out worker `key`'s outbox, unless another thread is already at it (that thread then writes these
    /// frames too: a writer re-checks the outbox after its turn ends).
    fn send(&self, send: Outgoing) {
        let Some((key, conn)) = send else {
            return;
        };
        loop {
            // ORDERING: Acquire pairs with the Release store that ends the previous writer's turn, so its writes
            // to the socket happen before ours.
            if conn
                .writing
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return;
            }
            let mut failed = None;
            loop {
                let next = conn.outbox.lock().pop_front();
                let Some((id, frame)) = next else {
                    break;
                };
                if failed.is_none() && write_frame(&conn.stream, &frame).is_err() {
                    failed = Some((id, frame));
                }
            }
            // ORDERING: Release ends this turn; pairs with the Acquire of the next writer's exchange.
            conn.writing.store(0, Ordering::Release);
            if let Some((id, frame)) = failed {
                self.write_failed(key, id, frame);
            }
            if conn.outbox.lock().is_empty() {
                return;
            }
        }
    }

    /// A frame could not be written to worker `key`: it and the tasks after it never reached the worker whole.
    /// The worker is killed; its reader hands those tasks to other workers.
    fn write_failed(&self, key: u64, id: u64, frame: Vec<u8>) {
        let mut state = self.state.lock();
        let Some(worker) = state.workers.get_mut(&key) else {
            return;
        };
        if !worker.reaping {
            signal(worker.pid, Signal::KILL);
        }
        worker.stopping.get_or_insert(Stop::Killed);
        let mut frame = Some(frame);
        let mut after = false;
        for task in worker.in_flight.iter_mut() {
            if task.id == id {
                after = true;
                task.retry = task.retry.take().or_else(|| frame.take());
            }
            if after {
                task.unsent = true;
            }
        }
    }

    /// Tells worker `key` to exit: it gets no more work and sees end of stream.
    fn retire(state: &mut State, key: u64) {
        if let Some(worker) = state.workers.get_mut(&key) {
            worker.phase = Phase::Retiring;
            // Fails only if the worker is already gone; its reader sees that too.
            let _ = worker.conn.stream.shutdown(Shutdown::Write);
        }
    }

    /// Asks the manager for workers if jobs wait and fewer than `max_workers` are alive or starting. Returns
    /// whether the workers starting will take every queued job.
    fn ensure_capacity(&self, state: &mut State) -> bool {
        let starting = state.pending_spawns + state.spawning;
        let mut ready_soon = starting;
        let mut capacity = starting;
        for worker in state.workers.values() {
            if matches!(worker.phase, Phase::Hello | Phase::Init) {
                ready_soon += 1;
            }
            if worker.phase != Phase::Retiring && worker.stopping.is_none() {
                capacity += 1;
            }
        }
        let want = state
            .queue
            .len()
            .saturating_sub(ready_soon)
            .min(self.config.max_workers.saturating_sub(capacity));
        if want > 0 {
            state.pending_spawns += want;
            self.wake.notify_one();
        }
        state.queue.len() <= ready_soon + want
    }

    /// Marks the pool broken: later submits fail with `error`, and so does every queued job (returned, to be
    /// failed once the lock is released). Idle workers are told to exit.
    fn break_pool(&self, state: &mut State, error: Error) -> (Vec<Job>, Error) {
        let error = state.broken.get_or_insert(error).clone();
        state.closed = true;
        state.pending_spawns = 0;
        for key in std::mem::take(&mut state.idle) {
            Self::retire(state, key);
        }
        self.wake.notify_one();
        (state.queue.drain(..).collect(), error)
    }

    /// Stops accepting work; with `cancel`, cancels what is queued. Workers exit once the queue is drained.
    pub(crate) fn close(&self, cancel: bool) {
        let mut state = self.state.lock();
        state.closed = true;
        let cancelled: Vec<Job> = if cancel {
            state.queue.drain(..).collect()
        } else {
            Vec::new()
        };
        if state.queue.is_empty() {
            state.pending_spawns = 0;
            for key in std::mem::take(&mut state.idle) {
                Self::retire(&mut state, key);
            }
        }
        self.wake.notify_one();
        drop(state);
        for job in cancelled {
            if job.started {
                // Marked running when a dying worker could not take it; it never ran.
                job.pending.fail(Error::Cancelled);
            } else {
                job.pending.cancel();
            }
        }
    }

    /// Sends `sig` to every live worker (after `close(true)`): their running tasks fail with
    /// [`Error::WorkerDied`].
    pub(crate) fn signal_all(&self, sig: Signal) {
        let mut state = self.state.lock();
        for worker in state.workers.values_mut() {
            if !worker.reaping {
                worker.stopping.get_or_insert(Stop::Terminated);
                signal(worker.pid, sig);
            }
        }
    }

    /// Waits until the manager and every reader are done (every worker reaped, every task's future settled).
    /// On one of the pool's own threads (a done-callback calling `shutdown`) it returns at once instead of
    /// waiting for itself.
    pub(crate) fn join(&self) {
        if self.is_own_thread() {
            return;
        }
        let mut state = self.state.lock();
        while state.threads_running > 0 {
            self.changed.wait(&mut state);
        }
    }

    /// The pids of the live workers, in increasing order.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let state = self.state.lock();
        let mut pids: Vec<u32> = state
            .workers
            .values()
            .filter(|w| !w.reaping)
            .map(|w| w.pid)
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Whether the pool accepts no more work.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// The manager thread: starts workers on request and kills those whose task passed its deadline; exits once
    /// the pool is closed and every worker is gone.
    fn manage(self: Arc<Self>) {
        CURRENT_POOL.with(|current| current.set(Arc::as_ptr(&self) as usize));
        let mut state = self.state.lock();
        loop {
            if state.pending_spawns > 0 {
                state.pending_spawns -= 1;
                state.spawning += 1;
                drop(state);
                let spawned =
                    spawn_worker(&self.config.exe, &self.config.token, self.config.max_frame);
                state = self.state.lock();
                state.spawning -= 1;
                match spawned {
                    Ok(spawned) => state = self.add_worker(state, spawned.child, spawned.conn),
                    Err(error) => {
                        state = self.spawn_failed(
                            state,
                            format!("could not start a worker process: {error}"),
                        );
                    }
                }
                continue;
            }
            let now = Instant::now();
            while let Some(&Reverse((deadline, key, id))) = state.deadlines.peek() {
                if deadline > now {
                    break;
                }
                state.deadlines.pop();
                let Some(worker) = state.workers.get_mut(&key) else {
                    continue;
                };
                if worker.reaping || worker.stopping.is_some() {
                    continue;
                }
                if id == HELLO {
                    if worker.phase == Phase::Hello {
                        worker.stopping = Some(Stop::Silent(self.config.startup_timeout));
                        signal(worker.pid, Signal::KILL);
                    }
                } else if let Some(task) = worker.in_flight.front()
                    && task.id == id
                {
                    worker.stopping = Some(Stop::Timeout(task.timeout.unwrap_or_default()));
                    signal(worker.pid, Signal::KILL);
                }
            }
            if state.closed
                && state.queue.is_empty()
                && state.workers.is_empty()
                && state.pending_spawns == 0
                && state.spawning == 0
            {
                state.threads_running -= 1;
                self.changed.notify_all();
                return;
            }
            match state.deadlines.peek() {
                Some(&Reverse((deadline, _, _))) => {
                    self.wake.wait_until(&mut state, deadline);
                }
                None => self.wake.wait(&mut state),
            }
        }
    }

    /// Records a started worker and starts its reader thread.
    fn add_worker<'a>(
        self: &'a Arc<Self>,
        mut state: MutexGuard<'a, State>,
        child: Child,
        conn: UnixStream,
    ) -> MutexGuard<'a, State> {
        let pid = child.id();
        let key = state.next_worker;
        state.next_worker += 1;
        let conn = Arc::new(Conn {
            stream: conn,
            outbox: Mutex::new(VecDeque::new()),
            writing: AtomicUsize::new(0),
        });
        state.workers.insert(
            key,
            Worker {
                pid,
                conn: conn.clone(),
                phase: Phase::Hello,
                in_flight: VecDeque::new(),
                tasks_done: 0,
                stopping: None,
                reaping: false,
            },
        );
        let startup = deadline_after(self.config.startup_timeout);
        self.add_deadline(&mut state, startup, key, HELLO);
        state.threads_running += 1;
        let shared = self.clone();
        let started = thread::spawn_named(format!("process-pool-reader-{pid}"), move || {
            shared.read(key, child, conn)
        });
        if let Err(error) = started {
            // Nobody can talk to this worker: end it and reap it here.
            state.threads_running -= 1;
            state.workers.remove(&key);
            signal(pid, Signal::KILL);
            if let Some(raw) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::waitpid(Some(raw), rustix::process::WaitOptions::empty());
            }
            state = self.spawn_failed(state, format!("could not start a reader thread: {error}"));
        }
        state
    }

    /// A worker could not be started: with no worker left to run the queue, the pool is broken.
    fn spawn_failed<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        reason: String,
    ) -> MutexGuard<'a, State> {
        log::error!(target: "concurrent_futures", "{reason}");
        if state.workers.is_empty() && state.spawning == 0 {
            let (jobs, error) = self.break_pool(&mut state, Error::Broken { reason });
            drop(state);
            for job in jobs {
                job.pending.fail(error.clone());
            }
            state = self.state.lock();
        }
        state
    }

    /// A worker's reader thread: handles its frames until it ends, then reaps it and settles its task.
    fn read(self: Arc<Self>, key: u64, mut child: Child, conn: Arc<Conn>) {
        CURRENT_POOL.with(|current| current.set(Arc::as_ptr(&self) as usize));
        let pid = child.id();
        let mut input = BufReader::with_capacity(64 * 1024, &conn.stream);
        let fault = loop {
            match read_frame(&mut input, self.config.max_frame) {
                Ok(body) => {
                    if let Err(error) = self.on_frame(key, pid, &body) {
                        break Some(error);
                    }
                }
                Err(ReadError::Eof) => break None,
                // A worker that dies with frames unread in its socket resets the connection.
                Err(ReadError::Io(error))
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    break None;
                }
                Err(error) => {
                    break Some(Error::Protocol(format!(
                        "could not read from worker process {pid}: {error}"
                    )));
                }
            }
        };
        {
            let mut state = self.state.lock();
            if let Some(worker) = state.workers.get_mut(&key) {
                if fault.is_some() {
                    signal(pid, Signal::KILL);
                }
                worker.reaping = true;
            }
        }
        let reason = match child.wait() {
            Ok(status) => describe(status),
            Err(error) => format!("could not be waited for: {error}"),
        };
        let mut state = self.state.lock();
        let mut failed: Vec<(Box<dyn Pending>, Error)> = Vec::new();
        let mut send = Vec::new();
        if let Some(mut worker) = state.workers.remove(&key) {
            state.idle.retain(|k| *k != key);
            // The first task was running (unless it never arrived whole); the others never started.
            let mut unstarted = Vec::new();
            if let Some(task) = worker.in_flight.pop_front() {
                if task.unsent {
                    unstarted.push(task);
                } else {
                    let error = match (&fault, worker.stopping) {
                        (Some(fault), _) => fault.clone(),
                        (None, Some(Stop::Timeout(timeout))) => Error::TaskTimeout { timeout },
                        (None, _) => Error::WorkerDied {
                            pid,
                            reason: reason.clone(),
                        },
                    };
                    failed.push((task.pending, error));
                }
            }
            unstarted.extend(worker.in_flight.drain(..));
            // Back to the front of the queue, in order, for other workers; unless the pool is broken, or being
            // stopped by `terminate_workers`/`kill_workers` (which cancel what has not started).
            for task in unstarted.into_iter().rev() {
                let refusal = match (&state.broken, worker.stopping) {
                    (Some(error), _) => Some(error.clone()),
                    (None, Some(Stop::Terminated)) => Some(Error::Cancelled),
                    _ => None,
                };
                match (refusal, task.retry) {
                    (None, Some(frame)) => state.queue.push_front(Job {
                        id: task.id,
                        name: task.name,
                        frame,
                        timeout: task.timeout,
                        pending: task.pending,
                        started: true,
                    }),
                    (Some(error), _) => failed.push((task.pending, error)),
                    (None, None) => failed.push((
                        task.pending,
                        Error::WorkerDied {
                            pid,
                            reason: reason.clone(),
                        },
                    )),
                }
            }
            if matches!(worker.phase, Phase::Hello | Phase::Init) && !state.closed {
                let reason = match (worker.phase, worker.stopping) {
                    (Phase::Hello, Some(Stop::Silent(limit))) => format!(
                        "worker process {pid} did not start serving within {limit:?} and was killed; \
                         `concurrent_futures::process_main!` must run at the top of `main`, before \
                         anything slow"
                    ),
                    (Phase::Hello, _) => {
                        format!("worker process {pid} ended before it was ready: {reason}")
                    }
                    _ => format!(
                        "worker process {pid} ended while running the initializer: {reason}"
                    ),
                };
                let (jobs, error) = self.break_pool(&mut state, Error::Broken { reason });
                failed.extend(jobs.into_iter().map(|job| (job.pending, error.clone())));
            }
        }
        while !state.queue.is_empty() {
            match self.place(&mut state) {
                Some(outgoing) => send.push(outgoing),
                None => break,
            }
        }
        self.ensure_capacity(&mut state);
        self.wake.notify_one();
        self.changed.notify_all();
        drop(state);
        for outgoing in send {
            self.send(Some(outgoing));
        }
        for (pending, error) in failed {
            pending.fail(error);
        }
        let mut state = self.state.lock();
        state.threads_running -= 1;
        self.changed.notify_all();
        self.wake.notify_one();
    }

    /// Handles one frame from worker `key`. An error means the worker broke the protocol and must be ended;
    /// the error goes to the task it held.
    fn on_frame(&self, key: u64, pid: u32, body: &[u8]) -> Result<(), Error> {
        let (reply, payload) = postcard::take_from_bytes::<Reply>(body).map_err(|error| {
            Error::Protocol(format!(
                "worker process {pid} sent a malformed frame: {error}"
            ))
        })?;
        let mut state = self.state.lock();
        let Some(worker) = state.workers.get_mut(&key) else {
            return Err(Error::Protocol(format!("worker process {pid} is unknown")));
        };
        let phase = worker.phase;
        match reply {
            Reply::Hello(hello) => {
                if phase != Phase::Hello {
                    return Err(Error::Protocol(format!(
                        "worker process {pid} said hello twice"
                    )));
                }
                if let Err(reason) = self.check_hello(&hello, pid) {
                    let (jobs, error) = self.break_pool(&mut state, Error::Protocol(reason));
                    drop(state);
                    for job in jobs {
                        job.pending.fail(error.clone());
                    }
                    return Err(error);
                }
                let wanted = !state.closed || !state.queue.is_empty();
                let send = match &self.config.initializer {
                    Some(init) if wanted => state.workers.get_mut(&key).map(|worker| {
                        worker.phase = Phase::Init;
                        worker.conn.outbox.lock().push_back((0, init.frame.clone()));
                        (key, worker.conn.clone())
                    }),
                    _ => {
                        if let Some(worker) = state.workers.get_mut(&key) {
                            worker.phase = Phase::Idle;
                        }
                        self.dispatch(&mut state, key)
                    }
                };
                drop(state);
                self.send(send);
                Ok(())
            }
            Reply::Done { id, status } => {
                if worker.phase == Phase::Init && id == 0 {
                    let outcome = match status {
                        Status::Ok => self
                            .config
                            .initializer
                            .as_ref()
                            .map_or(Ok(()), |init| (init.check)(payload)),
                        Status::Panicked(message) => Err(format!("it panicked: {message}")),
                        Status::UnknownTask(name) => {
                            Err(format!("no task named `{name}` is registered"))
                        }
                        Status::Serialization(what) | Status::TooLarge(what) => Err(what),
                    };
                    match outcome {
                        Ok(()) => {
                            if let Some(worker) = state.workers.get_mut(&key) {
                                worker.phase = Phase::Idle;
                            }
                            let send = self.dispatch(&mut state, key);
                            drop(state);
                            self.send(send);
                        }
                        Err(reason) => {
                            let reason =
                                format!("the initializer failed in worker process {pid}: {reason}");
                            log::error!(target: "concurrent_futures", "{reason}");
                            Self::retire(&mut state, key);
                            let (jobs, error) =
                                self.break_pool(&mut state, Error::Broken { reason });
                            drop(state);
                            for job in jobs {
                                job.pending.fail(error.clone());
                            }
                        }
                    }
                    return Ok(());
                }
                let matches = worker.phase == Phase::Busy
                    && worker.in_flight.front().is_some_and(|task| task.id == id);
                if !matches {
                    return Err(Error::Protocol(format!(
                        "worker process {pid} answered task {id}, which it was not running"
                    )));
                }
                let task = worker.in_flight.pop_front();
                worker.tasks_done += 1;
                let stopping = worker.stopping.is_some();
                // The task sent ahead, if any, starts now: its time limit counts from here.
                let next = worker.in_flight.front().map(|next| (next.id, next.timeout));
                if !stopping && let Some((next_id, Some(timeout))) = next {
                    self.add_deadline(&mut state, deadline_after(timeout), key, next_id);
                }
                // A worker being killed gets no more work; one that used up its budget retires in `dispatch`.
                let send = if stopping {
                    None
                } else {
                    self.dispatch(&mut state, key)
                };
                if state
                    .workers
                    .get(&key)
                    .is_some_and(|w| w.phase == Phase::Retiring)
                {
                    self.ensure_capacity(&mut state);
                }
                drop(state);
                self.send(send);
                if let Some(task) = task {
                    task.pending.finish(task.name, status, payload);
                }
                Ok(())
            }
        }
    }

    /// Checks a worker's hello: our protocol, our token, our build.
    fn check_hello(&self, hello: &Hello, pid: u32) -> Result<(), String> {
        if hello.magic != MAGIC || hello.version != VERSION {
            return Err(format!(
                "worker process {pid} speaks protocol version {}, this pool speaks version {VERSION}",
                hello.version
            ));
        }
        if let Some(error) = &hello.registry_error {
            return Err(format!(
                "the task registry of worker process {pid} is unusable: {error}"
            ));
        }
        if hello.token != self.config.token {
            return Err(format!(
                "worker process {pid} did not present this pool's token"
            ));
        }
        if hello.identity != self.config.identity {
            return Err(format!(
                "worker process {pid} runs a different build of the program than this process \
                 (worker: {}; this process: {}); was the executable rebuilt, or does `main` register \
                 different tasks in workers?",
                hello.identity, self.config.identity
            ));
        }
        Ok(())
    }
}

/// A random token for one pool: `RandomState`'s per-process random keys, the time and the pid.
pub(crate) fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut words = [0u64; 2];
    for (i, word) in words.iter_mut().enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        hasher.write_u32(std::process::id());
        if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(now.as_nanos());
        }
        *word = hasher.finish();
    }
    format!("{:016x}{:016x}", words[0], words[1])
}
