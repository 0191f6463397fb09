//! A pool's task: the future's core and the closure that computes its value, in one allocation.

use std::mem::ManuallyDrop;

use super::Future;
use super::core::{
    Cell, Core, JOB, PENDING, cancel, complete_from, complete_with, is_done, owner_bits, owner_of,
};
use super::notify::Nesting;
use crate::Error;
use crate::sync::{Arc, Ordering, UnsafeCell};
use crate::unwind;

/// What a worker wants to hear while it runs a job (a task run inline by a waiting thread tells nothing).
pub(crate) trait RunHooks {
    /// The job's closure returned; its outcome is not published yet (a worker counts itself idle here, so that a
    /// caller who saw the result and submits again finds it idle).
    fn body_done(&self);
    /// The outcome is published and done-callbacks are about to run in this thread: the worker is busy again
    /// (a callback may block) until they return.
    fn callbacks_ahead(&self);
}

/// Hooks for a task run inline by a waiting thread: nothing to tell.
struct Inline;

impl RunHooks for Inline {
    fn body_done(&self) {}
    fn callbacks_ahead(&self) {}
}

/// A job in a pool's queue: the task cell, type-erased.
pub(crate) trait Runnable: Send + Sync {
    /// Runs the job if its future is still pending, and completes the future; `true` if it ran.
    /// `hooks.body_done` is called once the job's closure returned, before its outcome is published;
    /// `hooks.callbacks_ahead` before done-callbacks run here. Neither is called for a job that does not run.
    fn run(self: Arc<Self>, hooks: &dyn RunHooks) -> bool;
    /// Cancels the job's future if it has not started.
    fn cancel(self: Arc<Self>);
    /// Fails the job's future with `error` if it has not started.
    fn fail(self: Arc<Self>, error: Error);
}

/// A thread-pool task: the future's core and the closure that computes its value, in one allocation.
pub(crate) struct Task<T, F> {
    core: Core<T>,
    /// The identity of the executor the task belongs to (see `local.rs`), where the state word has no room for it
    /// (on 64-bit targets it is in the state word, which keeps a no-op task at 40 bytes with `Arc`'s counts).
    #[cfg(not(target_pointer_width = "64"))]
    owner: usize,
    /// Initialised iff the state's `JOB` bit is set.
    job: UnsafeCell<ManuallyDrop<F>>,
}

// SAFETY: the job slot is touched only by the one thread that cleared `JOB` (the worker that starts it, or the
// canceller / completer that discards it), or by `drop`, so `F: Send` suffices.
unsafe impl<T: Send + Sync, F: Send> Sync for Task<T, F> {}

impl<T, F> Task<T, F>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    /// A pending task of the executor identified by `owner`, and the first handle to its future.
    pub(crate) fn new_pair(job: F, owner: usize) -> (Arc<dyn Runnable>, Future<T>) {
        let task = Arc::new(Task {
            core: Core::new(PENDING | JOB | owner_bits(owner), 1, None),
            #[cfg(not(target_pointer_width = "64"))]
            owner,
            job: UnsafeCell::new(ManuallyDrop::new(job)),
        });
        let cell: Arc<dyn Cell<T>> = task.clone();
        (task, Future { cell })
    }

    /// Starts the task if it is still pending (taking its job), runs it, and completes its future; `false` if
    /// it was already started, cancelled or finished elsewhere.
    fn execute(self: Arc<Self>, hooks: &dyn RunHooks) -> bool {
        if !self.core.start_job() {
            return false;
        }
        let job = self.job.with_mut(|slot| {
            // SAFETY: this thread moved the future from PENDING to RUNNING and cleared JOB in that same step, so
            // it alone owns the initialised slot.
            unsafe { ManuallyDrop::take(&mut *slot) }
        });
        let outcome = unwind::run_task(job);
        hooks.body_done();
        let cell: Arc<dyn Cell<T>> = self;
        // Fails only if someone set the result from outside while it ran; theirs stands, as in Python.
        if let Ok(Some(notification)) = complete_with(&cell, outcome, true, Nesting::RunHere) {
            hooks.callbacks_ahead();
            notification.run();
        }
        true
    }
}

impl<T, F> Drop for Task<T, F> {
    fn drop(&mut self) {
        if self.core.state.load(Ordering::Acquire) & JOB != 0 {
            let job = self.job.with_mut(|slot| {
                // SAFETY: JOB set means the closure was never taken; `&mut self` means no one else can reach it, and
                // it is taken exactly once, here.
                unsafe { ManuallyDrop::take(&mut *slot) }
            });
            unwind::drop_quietly("a task's closure", job);
        }
    }
}

impl<T, F> Cell<T> for Task<T, F>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    fn core(&self) -> &Core<T> {
        &self.core
    }

    fn discard_job(&self) {
        let job = self.job.with_mut(|slot| {
            // SAFETY: see `Cell::discard_job`: the caller cleared JOB, so it alone owns the initialised slot.
            unsafe { ManuallyDrop::take(&mut *slot) }
        });
        unwind::drop_quietly("a task's closure", job);
    }

    fn owner(&self) -> usize {
        #[cfg(not(target_pointer_width = "64"))]
        return self.owner;
        #[cfg(target_pointer_width = "64")]
        owner_of(self.core.load())
    }

    fn run_here(self: Arc<Self>) -> bool {
        self.execute(&Inline)
    }
}

impl<T, F> Runnable for Task<T, F>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    fn run(self: Arc<Self>, hooks: &dyn RunHooks) -> bool {
        self.execute(hooks)
    }

    fn cancel(self: Arc<Self>) {
        let cell: Arc<dyn Cell<T>> = self;
        cancel(&cell);
    }

    fn fail(self: Arc<Self>, error: Error) {
        let cell: Arc<dyn Cell<T>> = self;
        if is_done(cell.core().load()) {
            return;
        }
        // Fails only if the task already started or was cancelled; then its own outcome stands.
        let _ = complete_from(&cell, Err(error), false);
    }
}
