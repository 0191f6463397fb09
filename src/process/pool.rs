//! The parent's side of a process pool: the task queue, the worker table, and the manager thread that starts
//! workers and kills the ones whose task ran past its deadline. Each worker's reader and watcher threads are in
//! `reader.rs`.
//!
//! # How a task travels
//! `submit` encodes the argument into a ready-to-send frame and queues the job; an idle worker takes it at once
//! (the submitting thread writes the frame), otherwise the job waits until a worker's reader thread, having read
//! that worker's previous result, hands it the next job. Each worker runs one task at a time, and its frames go
//! through one outbox written by one thread at a time, so they never interleave. Every frame's place in the
//! stream (its byte offsets) is recorded, so that after a worker's death the pool knows which calls it read.
//!
//! # How a worker ends
//! Its watcher thread sees it exit (`waitid` on Unix, whatever happened to its socket); its reader thread then
//! reads the frames it sent before dying, reaps it, fails the task it was running ([`Error::WorkerDied`], or
//! [`Error::TaskTimeout`] if the manager killed it for its deadline), hands the tasks it never read to other
//! workers, and asks the manager for a replacement if work is waiting. Signals are sent only under the state lock
//! and only to workers whose reader has not started reaping them, so a pid is never signalled after it may have
//! been recycled.
//!
//! The locks, condition variables and threads come from `crate::sync`, but the process and socket code is outside
//! loom's scope: the loom build compiles this module without modelling it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use super::callbacks::Callbacks;
use super::pending::{Deferred, Pending};
use super::protocol::Identity;
use super::sys::{self, Conn, Process, spawn_worker};
use crate::Error;
use crate::future::deadline_after;
use crate::sync::{
    Arc, AtomicUsize, Backoff, Condvar, Mutex, MutexGuard, Ordering, thread, thread_local,
};

/// A task waiting for a worker.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) name: &'static str,
    /// The whole frame, ready to write.
    pub(crate) frame: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) pending: Box<dyn Pending>,
    /// Already marked running: it was handed to a worker that died before reading it, and waits for another.
    pub(crate) started: bool,
}

/// A task sent to a worker: the first of a worker's tasks is running, the others wait in its socket.
pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) name: &'static str,
    pub(super) timeout: Option<Duration>,
    pub(super) pending: Box<dyn Pending>,
    /// A copy of the frame of a task sent ahead (small frames only), or the frame of a task whose write failed:
    /// what is needed to hand it to another worker if this one dies before starting it.
    pub(super) retry: Option<Vec<u8>>,
    /// Where its frame lies in the stream of bytes sent to the worker.
    pub(super) span: (u64, u64),
}

/// Only frames up to this size are sent ahead of a running task: they fit in the socket's buffer, so writing one
/// never waits for the worker (which may be busy writing a large result the pool has yet to read).
const AHEAD_MAX: usize = 16 * 1024;

/// A worker's connection and the frames waiting to be written to it, in order.
pub(super) struct Link {
    pub(super) conn: Conn,
    pub(super) outbox: Mutex<Outbox>,
    /// 1 while a thread is writing the outbox out: one writer at a time, so frames never interleave. The
    /// watcher takes it for good once the worker is dead.
    pub(super) writing: AtomicUsize,
}

pub(super) struct Outbox {
    pub(super) frames: VecDeque<(u64, Vec<u8>)>,
    /// Bytes queued so far, over the worker's life: the end offset of the last frame queued.
    queued: u64,
    /// Bytes the socket accepted so far.
    pub(super) written: u64,
}

impl Link {
    /// Queues a frame; returns its offsets in the stream.
    fn push(&self, id: u64, frame: Vec<u8>) -> (u64, u64) {
        let mut outbox = self.outbox.lock();
        let start = outbox.queued;
        outbox.queued += frame.len() as u64;
        let end = outbox.queued;
        outbox.frames.push_back((id, frame));
        (start, end)
    }

    /// Waits for the writer of the moment (if any) to finish its turn and keeps every later one out, for good:
    /// the outbox and the written count are final from now on. Writes fail at once by then (the worker is dead
    /// and its calls closed), so the wait is short.
    pub(super) fn stop_writers(&self) {
        let mut backoff = Backoff::new();
        // ORDERING: Acquire pairs with the Release store that ends the writer's turn, so its count is seen.
        while self
            .writing
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff.snooze();
        }
    }
}

/// Writes `frame`; returns how many bytes the socket accepted, and whether all of them were.
fn write_counted(mut stream: &sys::Stream, frame: &[u8]) -> (usize, io::Result<()>) {
    let mut done = 0;
    while done < frame.len() {
        match stream.write(&frame[done..]) {
            Ok(0) => return (done, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return (done, Err(error)),
        }
    }
    (done, Ok(()))
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
    pub(crate) stall_timeout: Duration,
    /// How many tasks a busy worker may hold beyond the one it runs (see `ProcessPoolBuilder::tasks_ahead`).
    pub(crate) ahead: usize,
    pub(crate) max_frame: usize,
    pub(crate) initializer: Option<Initializer>,
    pub(crate) exe: PathBuf,
    pub(crate) token: String,
    pub(crate) identity: Identity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Started; its hello has not arrived.
    Hello,
    /// Running the initializer.
    Init,
    /// Waiting for a task.
    Idle,
    /// Running a task.
    Busy,
    /// Told to exit (its calls are closed); gets no more tasks.
    Retiring,
}

/// Why the pool is ending a worker.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stop {
    /// Its task ran past this timeout.
    Timeout(Duration),
    /// A frame could not be written to it.
    Killed,
    /// `terminate_workers` or `kill_workers`.
    Terminated,
    /// It did not say hello within the startup timeout.
    Silent(Duration),
    /// It broke the protocol.
    Fault,
    /// Its stream ended while it lived on (it shut its socket down).
    Lost,
}

/// What the watcher learnt once the worker exited: the pool's account of the calls it sent, to tell which the
/// worker read.
pub(super) struct Exit {
    /// Bytes the socket accepted.
    pub(super) written: u64,
    /// The calls the worker never read, if they can be known.
    pub(super) unread: Option<Vec<u8>>,
}

/// The task id under which a worker's startup deadline sits in the deadline queue.
pub(super) const HELLO: u64 = u64::MAX;

pub(super) struct Worker {
    pub(super) process: Process,
    pub(super) link: Arc<Link>,
    pub(super) phase: Phase,
    pub(super) in_flight: VecDeque<InFlight>,
    pub(super) tasks_done: usize,
    pub(super) stopping: Option<Stop>,
    /// Set by the watcher once the worker has exited (not yet reaped).
    pub(super) exited: Option<Exit>,
    /// Its reader is reaping it: it must not be signalled any more.
    pub(super) reaping: bool,
}

impl Worker {
    /// Kills it, unless it may have been reaped (then its pid may name another process).
    pub(super) fn kill(&self, gently: bool) {
        if !self.reaping {
            self.process.kill(gently);
        }
    }
}

pub(super) struct State {
    pub(super) queue: VecDeque<Job>,
    pub(super) workers: HashMap<u64, Worker>,
    pub(super) idle: Vec<u64>,
    /// Workers the manager is asked to start.
    pending_spawns: usize,
    /// Workers the manager is starting now.
    spawning: usize,
    pub(super) closed: bool,
    pub(super) broken: Option<Error>,
    /// (deadline, worker, task id) of running tasks with a timeout; stale entries are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    next_worker: u64,
    /// The manager, reader and watcher threads that have not finished their work.
    pub(super) threads_running: usize,
}

/// What the pool's handles, its manager, its readers and watchers share.
pub(crate) struct Shared {
    pub(super) state: Mutex<State>,
    /// Wakes the manager: a spawn is wanted, a deadline was added, or the pool may be done.
    pub(super) wake: Condvar,
    /// Signalled when a worker exited or is gone, or a pool thread finished.
    pub(super) changed: Condvar,
    next_job: AtomicUsize,
    callbacks: Callbacks,
    pub(crate) config: Config,
}

thread_local! {
    /// The pool (by the address of its shared state) whose manager, reader, watcher or callback thread this is;
    /// 0 for others.
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static CURRENT_POOL: std::cell::Cell<usize> = std::cell::Cell::new(0);
}

/// A worker whose outbox has frames to write once the state lock is released.
pub(super) type Outgoing = Option<(u64, Arc<Link>)>;

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
            callbacks: Callbacks::new(),
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

    /// Marks the calling thread as one of this pool's own.
    pub(super) fn enter_thread(&self) {
        let me = self as *const Shared as usize;
        CURRENT_POOL.with(|current| current.set(me));
    }

    fn is_own_thread(&self) -> bool {
        CURRENT_POOL.with(|current| current.get() == self as *const Shared as usize)
    }

    /// Runs the done-callbacks of futures this pool completed, off the calling thread (a reader, the manager):
    /// a callback that blocks must not hold up the delivery of results.
    pub(super) fn defer(self: &Arc<Self>, callbacks: Option<Deferred>) {
        if let Some(callbacks) = callbacks {
            let id = Arc::as_ptr(self) as usize;
            self.callbacks.run(callbacks, move || {
                CURRENT_POOL.with(|current| current.set(id));
            });
        }
    }

    /// Fails `pending` with `error`, its callbacks off the calling thread.
    pub(super) fn fail(self: &Arc<Self>, pending: Box<dyn Pending>, error: Error) {
        let callbacks = pending.fail(error);
        self.defer(callbacks);
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
    pub(super) fn place(&self, state: &mut State) -> Outgoing {
        while let Some(key) = state.idle.pop() {
            let usable = state.workers.get(&key).is_some_and(|w| {
                w.phase == Phase::Idle && w.stopping.is_none() && w.exited.is_none()
            });
            if usable {
                return self.dispatch(state, key);
            }
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
            .filter(|(_, w)| w.phase == Phase::Busy && w.stopping.is_none() && w.exited.is_none())
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
    pub(super) fn dispatch(&self, state: &mut State, key: u64) -> Outgoing {
        let budget = self.config.max_tasks_per_child;
        let mut sent = false;
        loop {
            let worker = state.workers.get(&key)?;
            if worker.stopping.is_some()
                || worker.exited.is_some()
                || !matches!(worker.phase, Phase::Idle | Phase::Busy)
            {
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
            let retry = (held > 0).then(|| job.frame.clone());
            let span = worker.link.push(job.id, job.frame);
            worker.in_flight.push_back(InFlight {
                id: job.id,
                name: job.name,
                timeout: job.timeout,
                pending: job.pending,
                retry,
                span,
            });
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
        let link = state.workers.get(&key).map(|w| w.link.clone())?;
        sent.then_some((key, link))
    }

    /// Sends worker `key` the initializer's call.
    pub(super) fn send_initializer(&self, state: &mut State, key: u64, frame: Vec<u8>) -> Outgoing {
        let worker = state.workers.get_mut(&key)?;
        worker.phase = Phase::Init;
        worker.link.push(0, frame);
        Some((key, worker.link.clone()))
    }

    pub(super) fn add_deadline(&self, state: &mut State, deadline: Instant, key: u64, id: u64) {
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
    pub(super) fn send(&self, send: Outgoing) {
        let Some((key, link)) = send else {
            return;
        };
        loop {
            // ORDERING: Acquire pairs with the Release store that ends the previous writer's turn, so its writes
            // to the socket happen before ours.
            if link
                .writing
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return;
            }
            let mut failed = None;
            let mut accepted = 0;
            loop {
                let next = {
                    let mut outbox = link.outbox.lock();
                    outbox.written += std::mem::take(&mut accepted);
                    outbox.frames.pop_front()
                };
                let Some((id, frame)) = next else {
                    break;
                };
                if failed.is_none() {
                    let (done, result) = write_counted(link.conn.stream(), &frame);
                    accepted = done as u64;
                    if result.is_err() {
                        failed = Some((id, frame));
                    }
                }
            }
            // ORDERING: Release ends this turn; pairs with the Acquire of the next writer's exchange.
            link.writing.store(0, Ordering::Release);
            if let Some((id, frame)) = failed {
                self.write_failed(key, id, frame);
            }
            if link.outbox.lock().frames.is_empty() {
                return;
            }
        }
    }

    /// A frame could not be written whole to worker `key`: the worker never read it, nor the ones after it. The
    /// worker is killed; its reader hands those tasks to other workers.
    fn write_failed(&self, key: u64, id: u64, frame: Vec<u8>) {
        let mut state = self.state.lock();
        let Some(worker) = state.workers.get_mut(&key) else {
            return;
        };
        if worker.exited.is_none() {
            worker.kill(false);
        }
        worker.stopping.get_or_insert(Stop::Killed);
        if let Some(task) = worker.in_flight.iter_mut().find(|task| task.id == id) {
            task.retry.get_or_insert(frame);
        }
    }

    /// Tells worker `key` to exit: it gets no more work and sees end of stream.
    pub(super) fn retire(state: &mut State, key: u64) {
        if let Some(worker) = state.workers.get_mut(&key) {
            worker.phase = Phase::Retiring;
            worker.link.conn.close_calls();
        }
    }

    /// Asks the manager for workers if jobs wait and fewer than `max_workers` are alive or starting. Returns
    /// whether the workers starting will take every queued job.
    pub(super) fn ensure_capacity(&self, state: &mut State) -> bool {
        let starting = state.pending_spawns + state.spawning;
        let mut ready_soon = starting;
        let mut capacity = starting;
        for worker in state.workers.values() {
            if matches!(worker.phase, Phase::Hello | Phase::Init) && worker.exited.is_none() {
                ready_soon += 1;
            }
            if worker.phase != Phase::Retiring
                && worker.stopping.is_none()
                && worker.exited.is_none()
            {
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
    pub(super) fn break_pool(&self, state: &mut State, error: Error) -> (Vec<Job>, Error) {
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
        // On the caller's thread, callbacks included, as Python's `cancel` does.
        for job in cancelled {
            if job.started {
                // Marked running when a dying worker could not take it; it never ran.
                job.pending.cancel_started();
            } else {
                job.pending.cancel();
            }
        }
    }

    /// Stops every live worker (after `close(true)`): with `SIGTERM` if `gently` (`terminate_workers`), else
    /// `SIGKILL`. Their running tasks fail with [`Error::WorkerDied`].
    pub(crate) fn stop_all(&self, gently: bool) {
        let mut state = self.state.lock();
        for worker in state.workers.values_mut() {
            if worker.exited.is_none() && !worker.reaping {
                worker.stopping.get_or_insert(Stop::Terminated);
                worker.kill(gently);
            }
        }
    }

    /// Waits until the manager, every reader and watcher, and every done-callback the pool handed over are done
    /// (every worker reaped, every task's future settled). On one of the pool's own threads (a done-callback
    /// calling `shutdown`) it returns at once instead of waiting for itself.
    pub(crate) fn join(&self) {
        if self.is_own_thread() {
            return;
        }
        let mut state = self.state.lock();
        while state.threads_running > 0 {
            self.changed.wait(&mut state);
        }
        drop(state);
        self.callbacks.join();
    }

    /// The pids of the live workers, in increasing order.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let state = self.state.lock();
        let mut pids: Vec<u32> = state
            .workers
            .values()
            .filter(|w| !w.reaping && w.exited.is_none())
            .map(|w| w.process.id())
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
        self.enter_thread();
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
                    Ok(spawned) => {
                        state =
                            self.add_worker(state, spawned.child, spawned.process, spawned.conn);
                    }
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
                if worker.reaping || worker.exited.is_some() || worker.stopping.is_some() {
                    continue;
                }
                if id == HELLO {
                    if worker.phase == Phase::Hello {
                        worker.stopping = Some(Stop::Silent(self.config.startup_timeout));
                        worker.kill(false);
                    }
                } else if let Some(task) = worker.in_flight.front()
                    && task.id == id
                {
                    worker.stopping = Some(Stop::Timeout(task.timeout.unwrap_or_default()));
                    worker.kill(false);
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

    /// Records a started worker and starts its reader thread (which starts its watcher).
    fn add_worker<'a>(
        self: &'a Arc<Self>,
        mut state: MutexGuard<'a, State>,
        child: Child,
        process: Process,
        conn: Conn,
    ) -> MutexGuard<'a, State> {
        let key = state.next_worker;
        state.next_worker += 1;
        let link = Arc::new(Link {
            conn,
            outbox: Mutex::new(Outbox {
                frames: VecDeque::new(),
                queued: 0,
                written: 0,
            }),
            writing: AtomicUsize::new(0),
        });
        state.workers.insert(
            key,
            Worker {
                process: process.clone(),
                link: link.clone(),
                phase: Phase::Hello,
                in_flight: VecDeque::new(),
                tasks_done: 0,
                stopping: None,
                exited: None,
                reaping: false,
            },
        );
        let startup = deadline_after(self.config.startup_timeout);
        self.add_deadline(&mut state, startup, key, HELLO);
        state.threads_running += 1;
        let shared = self.clone();
        let pid = process.id();
        let for_reader = process.clone();
        let started = thread::spawn_named(format!("process-pool-reader-{pid}"), move || {
            shared.read(key, child, for_reader, link)
        });
        if let Err(error) = started {
            // Nobody can talk to this worker: end it and reap it here.
            state.threads_running -= 1;
            state.workers.remove(&key);
            process.discard();
            state = self.spawn_failed(state, format!("could not start a reader thread: {error}"));
        }
        state
    }

    /// A worker could not be started: with no worker left to run the queue, the pool is broken.
    pub(super) fn spawn_failed<'a>(
        self: &'a Arc<Self>,
        mut state: MutexGuard<'a, State>,
        reason: String,
    ) -> MutexGuard<'a, State> {
        log::error!(target: "concurrent_futures", "{reason}");
        if state.workers.is_empty() && state.spawning == 0 {
            let (jobs, error) = self.break_pool(&mut state, Error::Broken { reason });
            drop(state);
            for job in jobs {
                self.fail(job.pending, error.clone());
            }
            state = self.state.lock();
        }
        state
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
