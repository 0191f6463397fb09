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
    loop {
        let job = match shared.queue.try_pop() {
            Some(job) => job,
            None => {
                // Advertise this thread as idle, so that a submit wakes it instead of starting a new thread.
                // ORDERING: AcqRel on the idle count: it is a hint about how many threads are about to block;
                // correctness never depends on it (a blocked pop is woken by any push).
                shared.idle.fetch_add(1, Ordering::AcqRel);
                let job = shared.queue.pop();
                // Take the advertisement back unless a submitter already consumed it.
                let _ = shared
                    .idle
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
                match job {
                    Some(job) => job,
                    None => break,
                }
            }
        };
        job.run();
    }
    shared.worker_exited();
}
