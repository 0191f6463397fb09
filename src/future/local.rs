//! The executor a thread works for: a thread-local hook through which a wait on one of that executor's own tasks,
//! not yet started, runs the task in the waiting thread instead of blocking on it.
//!
//! The future layer knows no pool: a pool's worker thread installs its pool here (as a [`LocalExecutor`]) for
//! as long as it runs, and each task cell records the identity of the executor it belongs to
//! ([`Cell::owner`](super::Cell::owner)). A wait asks the installed executor whether it owns the task.

use std::cell::RefCell;

use crate::sync::{Arc, thread_local};

/// An executor whose worker threads may run its not-yet-started tasks inline while they wait on them.
pub(crate) trait LocalExecutor: Send + Sync {
    /// Whether a task recorded with `owner` belongs to this executor, so that this thread may run it.
    fn owns(&self, owner: usize) -> bool;
}

thread_local! {
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static CURRENT: RefCell<Option<Arc<dyn LocalExecutor>>> = RefCell::new(None);
}

/// Installs `executor` as the calling thread's executor until the returned guard is dropped.
pub(crate) fn enter(executor: Arc<dyn LocalExecutor>) -> Entered {
    CURRENT.with(|current| *current.borrow_mut() = Some(executor));
    Entered(())
}

/// Uninstalls the calling thread's executor when dropped.
pub(crate) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        // The executor's `Drop` (if this was the last reference) runs outside the borrow.
        let executor = CURRENT.try_with(|current| current.borrow_mut().take());
        drop(executor);
    }
}

/// Whether the calling thread works for an executor.
pub(crate) fn on_executor_thread() -> bool {
    CURRENT
        .try_with(|current| current.borrow().is_some())
        .unwrap_or(false)
}

/// Whether the calling thread works for the executor that owns tasks recorded with `owner` (never for 0).
pub(crate) fn owns(owner: usize) -> bool {
    owner != 0
        && CURRENT
            .try_with(|current| current.borrow().as_ref().is_some_and(|e| e.owns(owner)))
            .unwrap_or(false)
}
