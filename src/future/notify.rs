//! Running done-callbacks: exactly once per future, without recursing once per link of a chain, and without ever
//! waiting on callbacks that the waiting thread itself has yet to run.
//!
//! Completing a future runs its callbacks; a callback of a chained future (`map`, `and_then`) completes the next
//! future, whose callbacks complete the next, and so on. Run naively, a chain of 10,000 links nests 10,000 deep
//! and overflows the stack. So each thread keeps a small record (a thread-local): the futures whose callbacks it
//! is running now, innermost last. Past [`MAX_NESTING`] of them, a completion wakes its waiters at once but
//! *parks* its callbacks on the future (the `DEFERRED` bit) and queues the future on this thread; the outermost
//! notification runs the queue, one at a time, once its own callbacks have returned.
//!
//! Parked callbacks belong to whoever claims them first (under the future's slow-path lock): the queue, or a
//! thread that needs them to have run before it can go on (`into_result` or `.await` on that future, which wait
//! for its callbacks, or adding another callback, which must run after them). Such a thread runs them itself, so
//! it never waits on a queue that cannot move until it returns. The process pool's
//! [`complete_deferred`](super::core::complete_deferred) parks callbacks the same way.
//!
//! The record also answers "is this thread inside this future's own callbacks?": `into_result` and `.await` there
//! would wait for the very callback that calls them, so they return `InvalidState` instead.

use std::cell::RefCell;
use std::collections::VecDeque;

use super::Future;
use super::core::{Callback, Cell, DEFERRED, Entry, NOTIFYING, SETTLE_WAIT};
use crate::sync::{Arc, Ordering, thread_local};
use crate::unwind;

/// How many notifications may nest on one thread before further ones are queued instead of run in place.
const MAX_NESTING: usize = 16;

/// How a completion hands over its callbacks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nesting {
    /// To be run by the caller now, unless this thread is nested too deep (then parked and queued here).
    RunHere,
    /// Parked on the future and handed to the caller, who runs them elsewhere (or whoever claims them first).
    Park,
}

#[derive(Default)]
struct Local {
    /// Identities of the futures whose callbacks this thread is running, innermost last.
    running: Vec<usize>,
    /// Futures whose callbacks were parked here past `MAX_NESTING`, oldest first.
    queued: VecDeque<Box<dyn FnOnce()>>,
    /// Whether the outermost notification is running the queue.
    draining: bool,
}

thread_local! {
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// The identity of a future's shared cell.
pub(crate) fn cell_id<T>(cell: &Arc<dyn Cell<T>>) -> usize {
    Arc::as_ptr(cell) as *const () as usize
}

/// How many notifications this thread is running now (0 where the record is gone: a thread being torn down).
fn depth() -> usize {
    LOCAL
        .try_with(|local| local.borrow().running.len())
        .unwrap_or(0)
}

/// Whether this thread is running the callbacks of the future whose cell is `id`.
pub(crate) fn running_here(id: usize) -> bool {
    LOCAL
        .try_with(|local| local.borrow().running.contains(&id))
        .unwrap_or(false)
}

/// The done-callbacks of a finished (or cancelled) future, still to run: taken off its slow path (to run now), or
/// parked on it (to run when claimed). Until they have run, the future stays `NOTIFYING` (so `into_result` waits
/// for them). Dropping it runs it, so the callbacks run exactly once whatever happens to it.
pub(crate) struct Notification<T: Send + Sync + 'static> {
    cell: Arc<dyn Cell<T>>,
    /// The callbacks, or `None` when they are parked on the future.
    callbacks: Option<Vec<Callback<T>>>,
    done: bool,
}

impl<T: Send + Sync + 'static> Notification<T> {
    /// Drains the slow path of a future published with `NOTIFYING` set: wakes its waiters and wakers now, and
    /// returns its callbacks to run, if it has any (parking them as `nesting` says). Without callbacks, it finishes
    /// the notification here and returns `None`; so it does for callbacks it parks and queues on this thread.
    pub(super) fn take(cell: &Arc<dyn Cell<T>>, nesting: Nesting) -> Option<Self> {
        let core = cell.core();
        let Ok((_, mut slow)) = core.lock_slow(0, |_| false) else {
            unreachable!("lock_slow never gives up without a give_up condition")
        };
        let entries = slow.with(std::mem::take);
        let mut callbacks = Vec::new();
        let mut wake = Vec::new();
        for entry in entries {
            match entry {
                Entry::Callback(callback) => callbacks.push(callback),
                other => wake.push(other),
            }
        }
        let park = !callbacks.is_empty() && (nesting == Nesting::Park || depth() >= MAX_NESTING);
        if park {
            slow.with(|list| list.extend(callbacks.drain(..).map(Entry::Callback)));
            slow.update(DEFERRED, 0);
        }
        drop(slow);
        for entry in wake {
            let _ = entry.wake();
        }
        if !park && callbacks.is_empty() {
            // Nothing to run: release the handle `publish` counted and clear NOTIFYING now.
            core.drop_handle();
            settle(cell);
            return None;
        }
        let notification = Notification {
            cell: cell.clone(),
            callbacks: (!park).then_some(callbacks),
            done: false,
        };
        if park && nesting == Nesting::RunHere {
            queue(notification);
            return None;
        }
        Some(notification)
    }

    /// Runs the callbacks in the order they were added, with the handle `publish` counted for them, then clears
    /// `NOTIFYING` and wakes whoever waits for that. Parked callbacks that another thread claimed first are left
    /// to it.
    pub(crate) fn run(mut self) {
        self.run_once();
    }

    fn run_once(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let callbacks = match self.callbacks.take() {
            Some(callbacks) => callbacks,
            None => match claim(&self.cell) {
                Some(callbacks) => callbacks,
                None => return,
            },
        };
        run_callbacks(&self.cell, callbacks);
    }
}

impl<T: Send + Sync + 'static> Drop for Notification<T> {
    fn drop(&mut self) {
        self.run_once();
    }
}

/// Queues a parked notification on this thread, for the outermost notification to run.
fn queue<T: Send + Sync + 'static>(mut notification: Notification<T>) {
    notification.done = true;
    let cell = notification.cell.clone();
    let run = Box::new(move || {
        if let Some(callbacks) = claim(&cell) {
            run_callbacks(&cell, callbacks);
        }
    });
    if let Err(error) = LOCAL.try_with(|local| local.borrow_mut().queued.push_back(run)) {
        // Unreachable in practice (the depth that led here came from the same record); run it rather than lose it.
        log::debug!(target: "concurrent_futures", "no notification queue on this thread: {error}");
        if let Some(callbacks) = claim(&notification.cell) {
            run_callbacks(&notification.cell, callbacks);
        }
    }
}

/// Claims the callbacks parked on `cell`'s future, if no one has yet: the caller must run them.
fn claim<T: Send + Sync + 'static>(cell: &Arc<dyn Cell<T>>) -> Option<Vec<Callback<T>>> {
    let (_, mut slow) = cell
        .core()
        .lock_slow(0, |state| state & DEFERRED == 0)
        .ok()?;
    slow.update(0, DEFERRED);
    let callbacks = slow.with(|list| {
        let (callbacks, rest): (Vec<_>, Vec<_>) = std::mem::take(list)
            .into_iter()
            .partition(|entry| matches!(entry, Entry::Callback(_)));
        *list = rest;
        callbacks
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::Callback(callback) => Some(callback),
                _ => None,
            })
            .collect::<Vec<_>>()
    });
    Some(callbacks)
}

/// Runs the callbacks of a future parked on `cell` now, if they are still parked (a thread that must not wait for
/// them: see the module docs). `true` if it ran them.
pub(crate) fn run_parked<T: Send + Sync + 'static>(cell: &Arc<dyn Cell<T>>) -> bool {
    match claim(cell) {
        Some(callbacks) => {
            run_callbacks(cell, callbacks);
            true
        }
        None => false,
    }
}

/// Runs `callbacks` with the handle `publish` counted for them, then settles the future; the outermost
/// notification on this thread then runs what was queued meanwhile.
fn run_callbacks<T: Send + Sync + 'static>(cell: &Arc<dyn Cell<T>>, callbacks: Vec<Callback<T>>) {
    let id = cell_id(cell);
    let outermost = LOCAL
        .try_with(|local| {
            let mut local = local.borrow_mut();
            local.running.push(id);
            local.running.len() == 1 && !local.draining
        })
        .unwrap_or(false);
    // `publish` (or `cancel`) already counted this handle.
    let handle = Future { cell: cell.clone() };
    for callback in callbacks {
        unwind::run_callback("a done callback", || callback(&handle));
    }
    drop(handle);
    let _ = LOCAL.try_with(|local| local.borrow_mut().running.pop());
    settle(cell);
    if outermost {
        drain_queue();
    }
}

/// Runs the notifications queued on this thread, oldest first, until none is left.
fn drain_queue() {
    let _ = LOCAL.try_with(|local| local.borrow_mut().draining = true);
    while let Some(run) = LOCAL
        .try_with(|local| local.borrow_mut().queued.pop_front())
        .ok()
        .flatten()
    {
        run();
    }
    let _ = LOCAL.try_with(|local| local.borrow_mut().draining = false);
}

/// Clears `NOTIFYING` once the callbacks have run (and their handle is released), and wakes whoever waits for that.
fn settle<T: Send + Sync + 'static>(cell: &Arc<dyn Cell<T>>) {
    let core = cell.core();
    // ORDERING: AcqRel: Release so that the callbacks' reads of the outcome and the handle's drop happen before a
    // `take_outcome` that sees NOTIFYING clear; Acquire pairs with `register_settle`.
    let previous = core
        .state
        .fetch_and(!(NOTIFYING | SETTLE_WAIT), Ordering::AcqRel);
    if previous & SETTLE_WAIT != 0 {
        for entry in core.drain() {
            // A callback added after the future was done ran at once, and parked ones were claimed: none is here.
            if let Some(callback) = entry.wake() {
                let handle = Future::from_cell(cell.clone());
                unwind::run_callback("a done callback", || callback(&handle));
            }
        }
    }
}
