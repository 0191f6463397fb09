//! The executor a thread works for: a thread-local hook through which a wait on one of that executor's own tasks,
//! not yet started, runs the task in the waiting thread instead of blocking on it.
//!
//! The future layer knows no pool: a pool's worker thread installs its pool here (as a [`LocalExecutor`]) for
//! as long as it runs, and each task cell records the identity of the executor it belongs to
//! ([`Cell::owner`](super::Cell::owner)). A wait asks the installed executor whether it owns the task.
//!
//! Identities come from `crate::sync::identities`: each is held by one live executor at a time, at most
//! [`max_identity`] of them (16 bits, so that 64-bit task cells keep it in their state word). That is exact: a
//! task that has not started keeps its executor alive (it sits in that executor's queue, or is held by a submit, a
//! worker or a shutdown of it), so its identity cannot pass to another executor while anyone can claim the task.
//! An executor created while all identities are held gets 0: its tasks are never run inline.

use std::cell::RefCell;

use super::core::OWNER_BITS;
use crate::sync::{Arc, thread_local};

/// The largest executor identity a task can record.
pub(crate) fn max_identity() -> usize {
    if OWNER_BITS == 0 {
        usize::MAX
    } else {
        (1 << OWNER_BITS) - 1
    }
}

/// An executor whose worker threads may run its not-yet-started tasks inline while they wait on them.
pub(crate) trait LocalExecutor: Send + Sync {
    /// Whether a task recorded with `owner` belongs to this executor, so that this thread may run it.
    fn owns(&self, owner: usize) -> bool;

    /// Runs one of the executor's queued tasks on the calling thread, which waits on one of its futures;
    /// `true` if it ran one. The default runs nothing.
    fn help(&self) -> bool {
        false
    }
}

/// How deep waits may nest tasks they run for others on one thread's stack (see [`help`]). Running the awaited
/// task itself is not counted: that is the program's own recursion.
const MAX_HELP_DEPTH: usize = 32;

thread_local! {
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static CURRENT: RefCell<Option<Arc<dyn LocalExecutor>>> = RefCell::new(None);
    #[allow(clippy::missing_const_for_thread_local)]
    static HELP_DEPTH: std::cell::Cell<usize> = std::cell::Cell::new(0);
}

/// The calling thread waits on a future of the executor it works for: runs one of that executor's queued tasks
/// meanwhile ([`LocalExecutor::help`]); `true` if it ran one. Nothing past [`MAX_HELP_DEPTH`] nested helps.
pub(crate) fn help() -> bool {
    let depth = HELP_DEPTH.try_with(|d| d.get()).unwrap_or(MAX_HELP_DEPTH);
    if depth >= MAX_HELP_DEPTH {
        return false;
    }
    // The executor is borrowed (not cloned) while the task runs: nothing but `enter` and its guard, at the start
    // and end of the thread's work, borrows it mutably.
    CURRENT
        .try_with(|current| {
            let current = current.borrow();
            let Some(executor) = current.as_ref() else {
                return false;
            };
            HELP_DEPTH.with(|d| d.set(depth + 1));
            let ran = executor.help();
            HELP_DEPTH.with(|d| d.set(depth));
            ran
        })
        .unwrap_or(false)
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
