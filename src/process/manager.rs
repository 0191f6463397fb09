//! The process pool's manager thread: starts workers when the pool asks for them, records each with its reader
//! thread, kills the workers whose task ran past its deadline (or that never said hello), and exits once the pool
//! is closed and every worker is gone.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::process::Child;
use std::time::Instant;

use super::link::Link;
use super::pool::{HELLO, Phase, Shared, State, Stop, Worker};
use super::sys::{Conn, Process, spawn_worker};
use crate::Error;
use crate::future::deadline_after;
use crate::sync::{Arc, MutexGuard, thread};

impl Shared {
    /// The manager thread: starts workers on request and kills those whose task passed its deadline; exits once
    /// the pool is closed and every worker is gone.
    pub(super) fn manage(self: Arc<Self>) {
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
        let link = Arc::new(Link::new(conn));
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
