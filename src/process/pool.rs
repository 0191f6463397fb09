//! The parent's side of a process pool: the task queue, the worker table, and how tasks are placed on workers.
//! The manager thread (starting workers, enforcing deadlines) is in `manager.rs`, each worker's reader and watcher
//! threads in `reader.rs`, and how frames are written in `link.rs`.
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
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::callbacks::Callbacks;
use super::link::Link;
use super::pending::{Deferred, Pending};
use super::protocol::Identity;
use super::sys::Process;
use crate::Error;
use crate::future::deadline_after;
use crate::sync::{Arc, AtomicUsize, Condvar, Mutex, Ordering, thread, thread_local};

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
    pub(super) pending_spawns: usize,
    /// Workers the manager is starting now.
    pub(super) spawning: usize,
    pub(super) closed: bool,
    pub(super) broken: Option<Error>,
    /// (deadline, worker, task id) of running tasks with a timeout; stale entries are skipped.
    pub(super) deadlines: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    pub(super) next_worker: u64,
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
            let failed = link.write_out();
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
}
