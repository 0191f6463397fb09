//! The loop each worker thread of a [`ThreadPoolExecutor`](crate::ThreadPoolExecutor) runs.

use std::cell::Cell;

use super::{Retire, Shared};
use crate::future::RunHooks;
use crate::future::local::{self, LocalExecutor};
use crate::sync::{Arc, Ordering, Pop, mutant, thread};
use crate::unwind;

/// This worker's side of the pool's demand count (see `Shared::add_demand`): whether it is counted idle.
struct Idle<'a> {
    shared: &'a Arc<Shared>,
    idle: Cell<bool>,
}

impl Idle<'_> {
    /// Counts this thread idle (if it is not already).
    fn enter(&self) {
        if !self.idle.replace(true) {
            self.shared.add_demand(-1);
        }
    }

    /// This thread took a job off the queue: one job and one idle thread fewer, so the demand does not change.
    fn took_job(&self) {
        debug_assert!(
            self.idle.get(),
            "a worker takes jobs only while counted idle"
        );
        self.idle.set(false);
        if mutant("split_counts") {
            // (Mutant: takes the job off the backlog and this thread off the idle count in two steps, as two
            // separate counters would: a submit in between counts this thread idle and starts no thread for its
            // job, though this thread is about to run another.)
            self.shared.add_demand(-1);
            self.shared.add_demand(1);
        }
    }

    /// Leaves the idle count for good: this thread exits.
    fn exit(&self) {
        if self.idle.replace(false) {
            self.shared.add_demand(1);
        }
    }

    /// Leaves the idle state without a job; starts a thread if that leaves a job with none to take it.
    fn leave(&self) {
        if self.idle.replace(false) {
            self.shared.leave_idle();
        }
    }
}

impl RunHooks for Idle<'_> {
    fn body_done(&self) {
        // Idle before the outcome is published, so a caller that saw it and submits again finds this thread idle.
        self.enter();
    }

    fn callbacks_ahead(&self) {
        // (Mutant: stays counted idle while done-callbacks run, so a callback that submits a task and blocks on
        // it can wait forever for a thread that is never started.)
        if !mutant("idle_callbacks") {
            self.leave();
        }
    }
}

/// Runs the initializer, then jobs until the queue is closed and drained.
pub(super) fn run(shared: Arc<Shared>) {
    let executor: Arc<dyn LocalExecutor> = shared.clone();
    let entered = local::enter(executor);
    // Counted idle from birth by `Shared::start_worker`.
    let idle = Idle {
        shared: &shared,
        idle: Cell::new(true),
    };
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
            idle.exit();
            shared.worker_exited();
            drop(entered);
            return;
        }
    }
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
                flush(&mut completed);
                match shared.queue.pop_until(shared.idle_deadline()) {
                    Pop::Item(job) => job,
                    Pop::Closed => break,
                    wake @ (Pop::TimedOut | Pop::Nudged) => {
                        match shared.try_retire(matches!(wake, Pop::TimedOut)) {
                            Retire::Retired => {
                                idle.idle.set(false);
                                drop(entered);
                                return;
                            }
                            // A job is on its way (its submitter counted it and is about to push it), or
                            // another thread takes it: let them run before looking again.
                            Retire::Stayed => thread::yield_now(),
                            Retire::NotNeeded => {}
                        }
                        continue;
                    }
                }
            }
        };
        idle.took_job();
        // Everything a job does on this thread, down to dropping its result, runs inside the panic net: a panic
        // that escapes the task's own net (a result's `Drop`, say) is logged, and this thread goes on.
        if unwind::quietly("a task's cleanup", || job.run(&idle)).unwrap_or(true) {
            completed += 1;
            if completed == 64 {
                flush(&mut completed);
            }
        }
        idle.enter();
        if shared.over_max() {
            // `set_max_workers` lowered the maximum: the surplus threads leave as they finish a task.
            flush(&mut completed);
            if shared.try_retire(false) == Retire::Retired {
                idle.idle.set(false);
                drop(entered);
                return;
            }
        }
    }
    idle.exit();
    flush(&mut completed);
    shared.worker_exited();
    drop(entered);
}
