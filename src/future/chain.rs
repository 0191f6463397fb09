//! Chained futures: `map` and `and_then` build a new future from a callback, so no thread blocks for them.

use std::any::Any;
use std::cell::RefCell;
use std::ops::Deref;

use super::Future;
use super::core::{Cell, Entry, cancel, complete};
use crate::sync::{Arc, thread_local};
use crate::{Error, unwind};

/// The next future of a chain, as a link's callback holds it. Dropping an unfinished chain drops each link's
/// callback, which drops the next future, whose callbacks drop the next: done naively, that recurses once per
/// link and overflows the stack on a long chain. A `Link` hands its future to [`drop_iteratively`] instead.
struct Link<U: 'static>(Option<Arc<dyn Cell<U>>>);

impl<U: 'static> Link<U> {
    fn new(cell: Arc<dyn Cell<U>>) -> Self {
        Link(Some(cell))
    }
}

impl<U: 'static> Deref for Link<U> {
    type Target = Arc<dyn Cell<U>>;

    fn deref(&self) -> &Self::Target {
        self.0
            .as_ref()
            .expect("a link holds its future until dropped")
    }
}

impl<U: 'static> Drop for Link<U> {
    fn drop(&mut self) {
        if let Some(cell) = self.0.take() {
            drop_iteratively(Box::new(cell));
        }
    }
}

thread_local! {
    /// Links whose drop is pending on this thread: `Some` while the outermost link drop runs them.
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static PENDING_DROPS: RefCell<Option<Vec<Box<dyn Any>>>> = RefCell::new(None);
}

/// Drops `item`; a drop that happens while another runs on this thread is queued, and the outermost one runs
/// the queue in a loop, so a chain of drops never nests deeper than one.
fn drop_iteratively(item: Box<dyn Any>) {
    let outermost = PENDING_DROPS.try_with(|pending| {
        let mut pending = pending.borrow_mut();
        match &mut *pending {
            Some(queue) => {
                queue.push(item);
                None
            }
            None => {
                *pending = Some(Vec::new());
                Some(item)
            }
        }
    });
    // (If the thread's record is gone, `item` was dropped in place above.)
    if let Ok(Some(item)) = outermost {
        drop(item);
        while let Some(next) =
            PENDING_DROPS.with(|pending| pending.borrow_mut().as_mut().and_then(Vec::pop))
        {
            drop(next);
        }
        PENDING_DROPS.with(|pending| *pending.borrow_mut() = None);
    }
}

/// Finishes `target` as `source` finished: its error, or cancelled if it was cancelled. Returns the value.
fn propagate<'a, T: Send + Sync + 'static, U: Send + Sync + 'static>(
    source: &'a Future<T>,
    target: &Arc<dyn Cell<U>>,
) -> Option<&'a T> {
    match source.result() {
        Ok(value) => Some(value),
        Err(Error::Cancelled) if source.cancelled() => {
            cancel(target);
            None
        }
        Err(error) => {
            let _ = complete(target, Err(error));
            None
        }
    }
}

/// Delivers `inner`'s outcome into `target` once `inner` is done, without blocking: moved when the chain holds
/// the only handle to `inner`, cloned when someone else (a producer, say) still holds one.
fn forward<U: Clone + Send + Sync + 'static>(inner: Future<U>, target: Arc<dyn Cell<U>>) {
    let cell = inner.cell.clone();
    drop(inner);
    let deliver = |cell: &Arc<dyn Cell<U>>, allowed: usize, target: &Arc<dyn Cell<U>>| {
        let core = cell.core();
        let state = core.load();
        if state & super::core::PHASE == super::core::CANCELLED {
            cancel(target);
        } else if super::core::handles(state) == allowed {
            let _ = complete(target, core.take_forwarded(allowed));
        } else {
            let _ = complete(target, core.read().cloned());
        }
    };
    let pending_target = Link::new(target.clone());
    let pending_cell = cell.clone();
    // Registered on the inner future: runs in its completing thread, whose handle is the only one (1).
    let entry = Entry::Callback(Box::new(move |_: &Future<U>| {
        deliver(&pending_cell, 1, &pending_target)
    }));
    if cell.core().register(entry).is_err() {
        // Already done: no handle at all is left (0).
        deliver(&cell, 0, &target);
    }
}

impl<T: Send + Sync + 'static> Future<T> {
    /// A future of `f` applied to this one's value, computed by a callback in the thread that completes this
    /// future (or at once, if it is done). An error or a cancellation passes through unchanged; a panic in `f`
    /// becomes [`Error::Panicked`]. Cancelling the returned future does not cancel this one.
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(2)?;
    /// let length = pool.submit(|| "hello".to_string())?.map(|s| s.len());
    /// assert_eq!(length.into_result(), Ok(5));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn map<U, F>(&self, f: F) -> Future<U>
    where
        U: Send + Sync + 'static,
        F: FnOnce(&T) -> U + Send + 'static,
    {
        let mapped = Future::new();
        let target = Link::new(mapped.cell.clone());
        self.add_done_callback(move |source| {
            if let Some(value) = propagate(source, &target) {
                let _ = complete(&target, unwind::run_task(|| f(value)));
            }
        });
        mapped
    }

    /// A future of the future `f` returns for this one's value: typically `f` submits more work
    /// (`fut.and_then(|v| pool.submit(...))`). The returned future finishes as that inner future does. Errors and
    /// cancellation of either pass through, as does an `Err` returned by `f`; a panic in `f` becomes
    /// [`Error::Panicked`]. Nothing blocks: both steps are callbacks.
    ///
    /// The inner value moves into the returned future when the chain holds the only handle to the inner future
    /// (as with `pool.submit`); if someone else still holds one, it is cloned, hence `U: Clone`.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(2)?;
    /// let p = pool.clone();
    /// let doubled_len = pool.submit(|| "hello".to_string())?.and_then(move |s| {
    ///     let n = s.len();
    ///     p.submit(move || n * 2)
    /// });
    /// assert_eq!(doubled_len.into_result(), Ok(10));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn and_then<U, F>(&self, f: F) -> Future<U>
    where
        U: Clone + Send + Sync + 'static,
        F: FnOnce(&T) -> Result<Future<U>, Error> + Send + 'static,
    {
        let chained = Future::new();
        let target = Link::new(chained.cell.clone());
        self.add_done_callback(move |source| {
            if let Some(value) = propagate(source, &target) {
                match unwind::run_task(|| f(value)) {
                    Ok(Ok(inner)) => forward(inner, Arc::clone(&target)),
                    Ok(Err(error)) | Err(error) => {
                        let _ = complete(&target, Err(error));
                    }
                }
            }
        });
        chained
    }
}
