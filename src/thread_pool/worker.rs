//! The loop each worker thread of a [`ThreadPoolExecutor`](crate::ThreadPoolExecutor) runs.

use std::cell::Cell;

use super::Shared;
use crate::sync::{Arc, Ordering, thread_local};
use crate::unwind;

thread_local! {
    /// The pool (by the address of its shared state) whose worker this thread is; 0 for other threads.
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static CURRENT_POOL: Cell<usize> = Cell::new(0);
}

/// The identity of `shared`, as recorded in [`CURRENT_POOL`].
pub(super) fn pool_id(shared: &Shared) -> usize {
    shared as *const Shared as usize
}

/// Whether the calling thread is a worker of the pool `shared`.
pub(super) fn is_worker_of(shared: &Shared) -> bool {
    CURRENT_POOL.with(|current| current.get() == pool_id(shared))
}

/// Runs the initializer, then jobs until the queue is closed and drained.
pub(super) fn run(shared: Arc<Shared>) {
    CURRENT_POOL.with(|current| current.set(pool_id(&shared)));
    if let Some(initializer) = &shared.initializer {
        let failure = match unwind::run_task(initializer) {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(panic) => Some(panic.to_string()),
        };
        if let Some(failure) = failure {
            log::error!(target: "concurrent_futures", "a thread pool initializer failed: {failure}");
            shared.break_pool(format!(
                "a thread initializer failed, the thread pool is not usable anymore: {failure}"
            ));
            shared.worker_exited();
            return;
        }
    }
    // Whether this thread is counted in `shared.idle`. A worker counts itself idle from the moment its task's
    // body returns (before the result is published, so a caller that saw the result and submits again finds it
    // idle) until it holds its next job.
    let idle = Cell::new(false);
    let set_idle = |now: bool| {
        if idle.replace(now) != now {
            // ORDERING: Relaxed: the idle count only steers how many threads to start; no data is published
            // through it, and a stale read costs at most one extra (bounded) thread or a short queue wait.
            if now {
                shared.idle.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.idle.fetch_sub(1, Ordering::Relaxed);
            }
        }
    };
    loop {
        let job = match shared.queue.try_pop() {
            Some(job) => job,
            None => {
                set_idle(true);
                match shared.queue.pop() {
                    Some(job) => job,
                    None => break,
                }
            }
        };
        set_idle(false);
        job.run(&|| set_idle(true));
    }
    set_idle(false);
    shared.worker_exited();
}
