//! Chained futures: `map` and `and_then` build a new future from a callback, so no thread blocks for them.

use super::Future;
use super::core::{Cell, Entry, cancel, complete};
use crate::sync::Arc;
use crate::{Error, unwind};

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
    let pending_target = target.clone();
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
        let target = mapped.cell.clone();
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
        let target = chained.cell.clone();
        self.add_done_callback(move |source| {
            if let Some(value) = propagate(source, &target) {
                match unwind::run_task(|| f(value)) {
                    Ok(Ok(inner)) => forward(inner, target),
                    Ok(Err(error)) | Err(error) => {
                        let _ = complete(&target, Err(error));
                    }
                }
            }
        });
        chained
    }
}
