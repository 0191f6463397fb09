//! The loop each worker thread of a [`ThreadPoolExecutor`](crate::ThreadPoolExecutor) runs.

use std::cell::Cell;

use super::Shared;
use crate::sync::{Arc, Ordering, Pop, thread_local};
use crate::unwind;

thread_local! {
    /// The pool (by the address of its shared state) whose worker this thread is; 0 for other threads.
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static CURRENT_POOL: Cell<usize> = Cell::new(0);
    /// The tag of that pool's tasks; 0 for other threads.
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static CURRENT_TAG: Cell<usize> = Cell::new(0);
}

/// The tag of the pool whose worker the calling thread is (0 if it is no pool's worker).
pub(crate) fn current_worker_tag() -> usize {
    CURRENT_TAG.with(Cell::get)
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
    CURRENT_TAG.with(|current| current.set(shared.tag));
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
            // ORDERING: Relaxed: this thread was counted idle from birth (see `Shared::start_worker`).
            shared.idle.fetch_sub(1, Ordering::Relaxed);
            shared.worker_exited();
            return;
        }
    }
    // Whether this thread is counted in `shared.idle`. A worker counts itself idle from the moment its task's
    // body returns (before the result is published, so a caller that saw the result and submits again finds it
    // idle) until it holds its next job.
    let idle = Cell::new(true); // counted idle from birth by `Shared::start_worker`
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
    // Tasks run since this thread last added to `shared.completed` (flushed before it blocks, and every 64).
    let mut completed = 0;
    let flush = |completed: &mut usize| {
        if *completed > 0 {
            // ORDERING: Relaxed: a statistic; nothing is published through it.
            shared
                .completed
                .fetch_add(std::mem::take(completed), Ordering::Relaxed);
        }
    };
    loop {
        let job = match shared.queue.try_pop() {
            Some(job) => job,
            None => {
                set_idle(true);
                flush(&mut completed);
                match shared.queue.pop_until(shared.idle_deadline()) {
                    Pop::Item(job) => job,
                    Pop::Closed => break,
                    wake @ (Pop::TimedOut | Pop::Nudged) => {
                        set_idle(false);
                        if shared.try_retire(matches!(wake, Pop::TimedOut)) {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        set_idle(false);
        if job.run(&|| set_idle(true)) {
            completed += 1;
            if completed == 64 {
                flush(&mut completed);
            }
        }
        if shared.over_max() {
            // `set_max_workers` lowered the maximum: the surplus threads leave as they finish a task.
            set_idle(false);
            flush(&mut completed);
            if shared.try_retire(false) {
                return;
            }
        }
    }
    set_idle(false);
    flush(&mut completed);
    shared.worker_exited();
}
