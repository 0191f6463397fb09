//! Runs the done-callbacks of the futures a process pool completes on threads of their own, so that a callback
//! that blocks (waiting for another task of the same pool, say) never holds up the threads that deliver results.
//!
//! The runner is an internal [`ThreadPoolExecutor`] started on the first callback: it starts a thread for every
//! queued callback that finds none idle, without limit, so blocking callbacks cannot exhaust it, and threads idle
//! for a while exit. Futures without callbacks never come here: the plain `submit` + `result` path costs nothing.

use std::time::Duration;

use super::pending::Deferred;
use crate::ThreadPoolExecutor;
use crate::sync::Mutex;

/// How long a callback thread beyond the first waits for more work before it exits.
const IDLE: Duration = Duration::from_secs(10);

/// The runner of one pool's callbacks.
pub(crate) struct Callbacks {
    runner: Mutex<Runner>,
}

enum Runner {
    /// No callback has run yet.
    NotStarted,
    Started(ThreadPoolExecutor),
    /// The pool joined it: whatever comes now runs where it is (nothing should).
    Finished,
}

impl Callbacks {
    pub(crate) fn new() -> Self {
        Callbacks {
            runner: Mutex::new(Runner::NotStarted),
        }
    }

    /// Runs `callbacks` on a callback thread; `on_thread` runs first on every new such thread (to mark it as one
    /// of the pool's own).
    pub(crate) fn run(&self, callbacks: Deferred, on_thread: impl Fn() + Send + Sync + 'static) {
        let mut runner = self.runner.lock();
        if let Runner::NotStarted = *runner {
            let started = ThreadPoolExecutor::builder()
                .max_workers(usize::MAX)
                .min_workers(1)
                .idle_timeout(IDLE)
                .thread_name_prefix("process-pool-callbacks")
                .initializer(move || {
                    on_thread();
                    Ok(())
                })
                .build();
            match started {
                Ok(pool) => *runner = Runner::Started(pool),
                Err(error) => {
                    log::error!(target: "concurrent_futures", "could not start the callback threads: {error}");
                }
            }
        }
        let pool = match &*runner {
            Runner::Started(pool) => Some(pool.clone()),
            _ => None,
        };
        drop(runner);
        match pool {
            // A refused job is dropped, and a dropped notification runs its callbacks itself, here.
            Some(pool) => drop(pool.submit(callbacks)),
            None => callbacks(),
        }
    }

    /// Waits until every callback handed over so far has run (and the callback threads have exited). Called once
    /// the pool's own threads are done, so no more come.
    pub(crate) fn join(&self) {
        let runner = std::mem::replace(&mut *self.runner.lock(), Runner::Finished);
        if let Runner::Started(pool) = runner {
            pool.shutdown(true);
        }
    }
}
