//! What a pool's handles and the MPI thread share: the queue of tasks waiting for a rank, the pool's closed and
//! broken states, and the latch `shutdown(wait = true)` waits on.

use std::collections::VecDeque;

use std::cell::Cell;

use crate::Error;
use crate::process::{Callbacks, Deferred, Pending};
use crate::sync::{Arc, AtomicUsize, Condvar, Mutex, Ordering, thread_local};

use super::wire::Session;

/// Reads an initializer's encoded `Result<(), E>`: `Err(reason)` if it failed.
pub(crate) type InitCheck = Box<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// A task waiting for a rank.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) name: &'static str,
    /// The whole [`Order::Task`](super::wire::Order::Task) message, argument included.
    pub(crate) message: Vec<u8>,
    pub(crate) pending: Box<dyn Pending>,
}

/// Where a pool's workers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `MPI_Comm_spawn` this many worker ranks.
    Spawn(usize),
    /// The ranks 1..N-1 of the `mpirun` job, this many of them.
    Shared(usize),
}

/// A pool's fixed settings, as the MPI thread needs them.
pub(crate) struct Config {
    pub(crate) mode: Mode,
    pub(crate) session: Session,
    /// Decodes the initializer's encoded `Result<(), E>`: `Err(reason)` if it failed.
    pub(crate) init_check: Option<InitCheck>,
    /// Extra `MPI_Info` keys for `MPI_Comm_spawn`.
    pub(crate) spawn_info: Vec<(String, String)>,
    pub(crate) startup_timeout: std::time::Duration,
    /// The pool's per-task timeout.
    pub(crate) timeout: Option<std::time::Duration>,
}

/// A worker rank as the pool knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRank {
    /// Its rank in its `MPI_COMM_WORLD` (the `mpirun` job's, or the spawned workers' own).
    pub rank: u32,
    /// The node it runs on.
    pub host: String,
    /// Its process id on that node.
    pub pid: u32,
}

pub(crate) struct State {
    pub(crate) queue: VecDeque<Job>,
    pub(crate) closed: bool,
    pub(crate) broken: Option<Error>,
    /// The MPI thread is done with this pool: every task settled, every rank released.
    pub(crate) finished: bool,
    pub(crate) workers: Vec<WorkerRank>,
}

/// The pool's shared half.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Signalled when the pool finishes.
    pub(crate) finished: Condvar,
    next_id: AtomicUsize,
    /// Runs the done-callbacks of the futures the MPI thread completes, on threads of their own (the process
    /// pool's runner): a callback that blocks, even on another task of this pool, never holds up the MPI thread.
    callbacks: Callbacks,
    pub(crate) config: Config,
}

thread_local! {
    /// The pool (by the address of its shared state) whose callback thread this is; 0 for other threads.
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static CALLBACK_POOL: Cell<usize> = Cell::new(0);
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closed: false,
                broken: None,
                finished: false,
                workers: Vec::new(),
            }),
            finished: Condvar::new(),
            next_id: AtomicUsize::new(1),
            callbacks: Callbacks::new(),
            config,
        }
    }

    /// A fresh task id.
    pub(crate) fn next_id(&self) -> u64 {
        // ORDERING: Relaxed: only uniqueness matters; the id travels with the job under the state lock.
        self.next_id.fetch_add(1, Ordering::Relaxed) as u64
    }

    /// Queues a job, unless the pool is closed or broken.
    pub(crate) fn push(&self, job: Job) -> Result<(), Error> {
        let mut state = self.state.lock();
        if let Some(error) = &state.broken {
            return Err(error.clone());
        }
        if state.closed {
            return Err(Error::Shutdown);
        }
        state.queue.push_back(job);
        Ok(())
    }

    /// Stops accepting tasks; with `cancel`, cancels the queued ones.
    pub(crate) fn close(&self, cancel: bool) {
        let mut state = self.state.lock();
        state.closed = true;
        let cancelled: Vec<Job> = if cancel {
            state.queue.drain(..).collect()
        } else {
            Vec::new()
        };
        drop(state);
        for job in cancelled {
            job.pending.cancel();
        }
    }

    /// Runs the done-callbacks of a future this pool completed on a callback thread.
    pub(crate) fn defer(self: &Arc<Self>, callbacks: Option<Deferred>) {
        if let Some(callbacks) = callbacks {
            let id = Arc::as_ptr(self) as usize;
            self.callbacks.run(callbacks, move || {
                CALLBACK_POOL.with(|pool| pool.set(id));
            });
        }
    }

    /// Whether the calling thread is one of this pool's callback threads.
    pub(crate) fn on_callback_thread(&self) -> bool {
        CALLBACK_POOL.with(|pool| pool.get() == self as *const Shared as usize)
    }

    /// Waits until every callback handed over so far has run (after the pool finished: no more come).
    pub(crate) fn join_callbacks(&self) {
        self.callbacks.join();
    }

    /// Breaks the pool: later submits and every queued task fail with `error`.
    pub(crate) fn break_with(self: &Arc<Self>, error: Error) {
        let mut state = self.state.lock();
        let error = state.broken.get_or_insert(error).clone();
        state.closed = true;
        let jobs: Vec<Job> = state.queue.drain(..).collect();
        drop(state);
        log::error!(target: "concurrent_futures", "MPI pool broken: {error}");
        for job in jobs {
            let callbacks = job.pending.fail(error.clone());
            self.defer(callbacks);
        }
    }

    /// Marks the pool finished and wakes `wait_finished`.
    pub(crate) fn set_finished(&self) {
        let mut state = self.state.lock();
        state.finished = true;
        self.finished.notify_all();
    }

    /// Waits until the MPI thread is done with the pool.
    pub(crate) fn wait_finished(&self) {
        let mut state = self.state.lock();
        while !state.finished {
            self.finished.wait(&mut state);
        }
    }
}
