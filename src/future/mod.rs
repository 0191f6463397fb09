//! [`Future<T>`]: a handle to the outcome of one task, as in Python's `concurrent.futures.Future`.

mod chain;
mod core;
pub(crate) mod local;
mod notify;
mod task;
mod waiter;

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::Error;
use crate::sync::{Arc, Backoff, mutant, spin};
use crate::unwind;

use self::core::{
    CANCELLED, DEFERRED, FAILED, FINISHED, NOTIFYING, PENDING, PHASE, complete, complete_deferred,
};
pub(crate) use self::core::{Cell, Core, Entry, is_done};
pub(crate) use self::notify::Notification;
use self::notify::{cell_id, run_parked, running_here};
pub(crate) use self::task::{RunHooks, Runnable, Task};
pub(crate) use self::waiter::Waiter;

/// Where a future is in its life, as in Python: pending, running, cancelled or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting to run; it can still be cancelled.
    Pending,
    /// Running now; it can no longer be cancelled.
    Running,
    /// Cancelled before it ran.
    Cancelled,
    /// Finished with a value or an error.
    Finished,
}

/// The outcome of a task that may not have finished yet.
///
/// A `Future` is a cheap handle: clones share one outcome. Any handle can wait for it ([`result`](Self::result),
/// [`result_timeout`](Self::result_timeout)), read it any number of times (as `&T`, so `T` need not be `Clone`),
/// [`cancel`](Self::cancel) it while it is pending, or attach [callbacks](Self::add_done_callback).
/// [`into_result`](Self::into_result) moves the value out of the last handle. Async code can `.await` it.
///
/// Results are shared between threads through `&T`, so `T` must be `Send + Sync`, as for `Arc<T>`.
///
/// ```
/// use concurrent_futures::{State, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let future = pool.submit(|| 6 * 7)?;
/// assert_eq!(future.result()?, &42);
/// assert_eq!(future.state(), State::Finished);
/// assert_eq!(future.into_result()?, 42);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
///
/// # Happens-before
/// Everything the task did happens before any handle's `result`, `into_result`, `exception`, `.await` or
/// done-callback sees it finished, and before `wait` or `as_completed` report it done.
pub struct Future<T> {
    pub(crate) cell: Arc<dyn Cell<T>>,
}

impl<T: Send + Sync + 'static> Future<T> {
    /// A new pending future with no task behind it: the producer side for writing your own executor (Python's
    /// `Future()`), completed with [`set_result`](Self::set_result) or [`set_exception`](Self::set_exception).
    ///
    /// ```
    /// use concurrent_futures::Future;
    ///
    /// let future = Future::new();
    /// assert_eq!(future.set_running_or_notify_cancel(), Ok(true));
    /// future.set_result("done")?;
    /// assert_eq!(future.result()?, &"done");
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self::from_core(Core::new(PENDING, 1, None))
    }

    /// A future that is already finished with `value`.
    ///
    /// ```
    /// let future = concurrent_futures::Future::ready(3);
    /// assert!(future.done());
    /// assert_eq!(future.result(), Ok(&3));
    /// ```
    pub fn ready(value: T) -> Self {
        Self::from_core(Core::new(FINISHED, 1, Some(Ok(value))))
    }

    /// A future that is already finished with `error` (cancelled, if `error` is [`Error::Cancelled`]).
    ///
    /// ```
    /// use concurrent_futures::{Error, Future};
    ///
    /// let future: Future<u8> = Future::failed(Error::Shutdown);
    /// assert_eq!(future.exception(), Some(Error::Shutdown));
    /// ```
    pub fn failed(error: Error) -> Self {
        if error == Error::Cancelled {
            return Self::from_core(Core::new(CANCELLED, 1, None));
        }
        Self::from_core(Core::new(FINISHED | FAILED, 1, Some(Err(error))))
    }

    fn from_core(core: Core<T>) -> Self {
        Future {
            cell: Arc::new(core),
        }
    }

    /// A new handle to `cell`, counted.
    pub(crate) fn from_cell(cell: Arc<dyn Cell<T>>) -> Self {
        cell.core().add_handle();
        Future { cell }
    }

    fn core(&self) -> &Core<T> {
        self.cell.core()
    }

    /// The future's state now.
    ///
    /// ```
    /// use concurrent_futures::{Future, State};
    ///
    /// let future = Future::<()>::new();
    /// assert_eq!(future.state(), State::Pending);
    /// future.cancel();
    /// assert_eq!(future.state(), State::Cancelled);
    /// ```
    pub fn state(&self) -> State {
        match self.core().load() & PHASE {
            PENDING => State::Pending,
            CANCELLED => State::Cancelled,
            FINISHED => State::Finished,
            // RUNNING, or COMPLETING: the result is being stored.
            _ => State::Running,
        }
    }

    /// `true` once the future finished or was cancelled.
    ///
    /// ```
    /// assert!(concurrent_futures::Future::ready(()).done());
    /// ```
    pub fn done(&self) -> bool {
        is_done(self.core().load())
    }

    /// `true` while the task runs.
    ///
    /// ```
    /// let future = concurrent_futures::Future::<()>::new();
    /// future.set_running_or_notify_cancel()?;
    /// assert!(future.running());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn running(&self) -> bool {
        self.state() == State::Running
    }

    /// `true` if the future was cancelled.
    ///
    /// ```
    /// let future = concurrent_futures::Future::<()>::new();
    /// assert!(future.cancel());
    /// assert!(future.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.core().load() & PHASE == CANCELLED
    }

    /// Cancels the future if it has not started: returns `true` if it is now (or was already) cancelled, `false`
    /// if it is running or finished. Cancelling wakes every waiter and runs the callbacks, in this thread; the
    /// task's closure is dropped without running.
    ///
    /// ```
    /// use concurrent_futures::{Error, Future};
    ///
    /// let future = Future::<u32>::new();
    /// assert!(future.cancel());
    /// assert_eq!(future.result(), Err(Error::Cancelled));
    /// ```
    pub fn cancel(&self) -> bool {
        self::core::cancel(&self.cell)
    }

    /// Waits until the future is done, or until `deadline`; `true` if it is done.
    ///
    /// Without a deadline, a worker waiting on a not-yet-started task of its own pool runs it itself; with one, it
    /// never does (the task could take longer than the deadline allows).
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let core = self.core();
        if is_done(core.load()) || (deadline.is_none() && self.work_until_done()) {
            return true;
        }
        // Spin briefly first, while it pays (see `sync::spin`): a task that is about to finish is cheaper to wait
        // for than to sleep on.
        if spin::should_spin() {
            let mut backoff = Backoff::new();
            let mut paid = false;
            while !backoff.is_completed() {
                if is_done(core.load()) {
                    paid = true;
                    break;
                }
                backoff.snooze();
            }
            spin::record(paid || is_done(core.load()));
            if paid {
                return true;
            }
        }
        if is_done(core.load()) {
            return true;
        }
        let waiter = Arc::new(Waiter::new());
        if core.register(Entry::Waiter(waiter.clone(), 0)).is_err() {
            return true;
        }
        if !waiter.wait(deadline).is_empty() {
            return true;
        }
        core.unregister(&waiter);
        is_done(core.load())
    }

    /// Whether the calling thread works for the executor this future's task belongs to.
    pub(crate) fn is_mine(&self) -> bool {
        local::owns(self.cell.owner())
    }

    /// On a worker of the executor this task belongs to: runs the executor's queued tasks (see
    /// [`local::help`]) until this one is done, then this one itself if nobody started it; `true` if it is done.
    /// Elsewhere, `false` at once.
    fn work_until_done(&self) -> bool {
        if !self.is_mine() {
            return false;
        }
        loop {
            if is_done(self.core().load()) {
                return true;
            }
            if !local::help() {
                break;
            }
        }
        self.run_here_if_mine()
    }

    /// If the calling thread works for the executor this task belongs to and the task has not started, runs it
    /// here (so a task waiting on a subtask of its own saturated pool cannot deadlock); `true` if it did.
    pub(crate) fn run_here_if_mine(&self) -> bool {
        // (Mutant: never claims, so a worker waiting on its own pool's queued task can wait forever.)
        !mutant("no_claim")
            && local::owns(self.cell.owner())
            && self.core().load() & PHASE == PENDING
            && self.cell.clone().run_here()
    }

    /// Waits until the done-callbacks have run (they hold a handle meanwhile). Callbacks parked on the future
    /// (see `notify.rs`) are run here; inside one of the future's own callbacks this would wait for itself, so it
    /// is `InvalidState`.
    fn wait_settled(&self) -> Result<(), Error> {
        let waiter = Arc::new(Waiter::new());
        loop {
            let state = self.core().load();
            if state & NOTIFYING == 0 {
                return Ok(());
            }
            if running_here(cell_id(&self.cell)) {
                return Err(inside_own_callback());
            }
            if state & DEFERRED != 0 {
                run_parked(&self.cell);
                continue;
            }
            if self
                .core()
                .register_settle(Entry::Waiter(waiter.clone(), 0))
                .is_ok()
            {
                waiter.wait(None);
            }
        }
    }

    /// Waits for the task and returns its value, or its error ([`Error::Cancelled`] if it was cancelled,
    /// [`Error::Panicked`] if it panicked). Can be called any number of times, from any handle or callback.
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(1)?;
    /// let future = pool.submit(|| String::from("hello"))?;
    /// assert_eq!(future.result()?.len(), 5);
    /// assert_eq!(future.result()?, "hello");
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn result(&self) -> Result<&T, Error> {
        self.wait_until(None);
        self.core().read()
    }

    /// Like [`result`](Self::result), but gives up after `timeout` with [`Error::Timeout`] (the future goes on).
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurrent_futures::{Error, Future};
    ///
    /// let future = Future::<u8>::new();
    /// assert_eq!(
    ///     future.result_timeout(Duration::from_millis(1)),
    ///     Err(Error::Timeout { unfinished: 1, total: 1 })
    /// );
    /// ```
    pub fn result_timeout(&self, timeout: Duration) -> Result<&T, Error> {
        if !self.wait_until(Some(deadline_after(timeout))) {
            return Err(Error::Timeout {
                unfinished: 1,
                total: 1,
            });
        }
        self.core().read()
    }

    /// Waits for the task and moves its value out.
    ///
    /// The value can move only out of the last handle: if other clones of this future are alive, this returns
    /// [`Error::InvalidState`] and the value stays with them (read it with [`result`](Self::result)). It waits
    /// for the future's done-callbacks to finish (they read the value); inside one of them it returns
    /// `InvalidState` at once, since it would wait for itself.
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(1)?;
    /// let future = pool.submit(|| vec![1, 2, 3])?;
    /// let numbers: Vec<i32> = future.into_result()?;
    /// assert_eq!(numbers, [1, 2, 3]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn into_result(self) -> Result<T, Error> {
        self.into_result_until(None)
    }

    /// Like [`into_result`](Self::into_result), but gives up after `timeout` with [`Error::Timeout`] (the value
    /// is then dropped with this handle if it was the last).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let future = concurrent_futures::Future::ready(1);
    /// assert_eq!(future.into_result_timeout(Duration::from_secs(1)), Ok(1));
    /// ```
    pub fn into_result_timeout(self, timeout: Duration) -> Result<T, Error> {
        self.into_result_until(Some(deadline_after(timeout)))
    }

    pub(crate) fn into_result_until(self, deadline: Option<Instant>) -> Result<T, Error> {
        if !self.wait_until(deadline) {
            return Err(Error::Timeout {
                unfinished: 1,
                total: 1,
            });
        }
        self.wait_settled()?;
        // `take_outcome_consuming` releases this handle itself (in the same read-modify-write that marks the value
        // taken), so this handle's `Drop` must not run; the cell reference is dropped here.
        let this = std::mem::ManuallyDrop::new(self);
        let outcome = this.core().take_outcome_consuming();
        // SAFETY: `this` is never used again and its `Drop` does not run, so the `Arc` is moved out exactly once.
        drop(unsafe { std::ptr::read(&this.cell) });
        outcome
    }

    /// Waits for the task and returns its error, or `None` if it returned a value (Python's `exception()`).
    /// A cancelled future gives `Some(Error::Cancelled)`.
    ///
    /// ```
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(1)?;
    /// let future = pool.submit(|| if true { panic!("no") } else { 1 })?;
    /// assert!(future.exception().is_some());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn exception(&self) -> Option<Error> {
        self.wait_until(None);
        self.core().read().err()
    }

    /// Like [`exception`](Self::exception), but gives up after `timeout` with `Err(Error::Timeout)`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let future = concurrent_futures::Future::ready(1);
    /// assert_eq!(future.exception_timeout(Duration::from_secs(1)), Ok(None));
    /// ```
    pub fn exception_timeout(&self, timeout: Duration) -> Result<Option<Error>, Error> {
        if !self.wait_until(Some(deadline_after(timeout))) {
            return Err(Error::Timeout {
                unfinished: 1,
                total: 1,
            });
        }
        Ok(self.core().read().err())
    }

    /// Calls `callback` with this future once it is done.
    ///
    /// If the future is already done, `callback` runs at once in this thread; otherwise it runs in the thread that
    /// completes or cancels the future, after the callbacks added before it. A panicking callback is logged at
    /// error level (target `concurrent_futures`) and does not stop the others or the worker.
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// let pool = concurrent_futures::ThreadPoolExecutor::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// let future = pool.submit(|| "page")?;
    /// future.add_done_callback(move |f| tx.send(f.result().map(|s| s.len())).unwrap());
    /// assert_eq!(rx.recv().unwrap(), Ok(4));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn add_done_callback<F>(&self, callback: F)
    where
        F: FnOnce(&Future<T>) + Send + 'static,
    {
        if let Err(Entry::Callback(callback)) =
            self.core().register(Entry::Callback(Box::new(callback)))
        {
            // Callbacks added before this one, parked on the future (see `notify.rs`), run first.
            if self.core().load() & DEFERRED != 0 {
                run_parked(&self.cell);
            }
            unwind::run_callback("a done callback", || callback(self));
        }
    }

    /// For executors: marks the future running before its work starts. `Ok(false)` means it was cancelled and
    /// the work must be skipped; an error means it was already running or finished, or that its cancellation was
    /// already reported by an earlier call (Python's `set_running_or_notify_cancel`, which raises there too).
    ///
    /// ```
    /// use concurrent_futures::{Error, Future};
    ///
    /// let future = Future::<()>::new();
    /// future.cancel();
    /// assert_eq!(future.set_running_or_notify_cancel(), Ok(false));
    /// assert!(matches!(future.set_running_or_notify_cancel(), Err(Error::InvalidState(_))));
    /// ```
    pub fn set_running_or_notify_cancel(&self) -> Result<bool, Error> {
        self.core().try_start()
    }

    /// For executors: finishes the future with `value`, waking waiters and running callbacks in this thread.
    /// Setting a finished or cancelled future is [`Error::InvalidState`].
    ///
    /// ```
    /// use concurrent_futures::{Error, Future};
    ///
    /// let future = Future::new();
    /// future.set_result(1)?;
    /// assert!(matches!(future.set_result(2), Err(Error::InvalidState(_))));
    /// assert_eq!(future.result(), Ok(&1));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn set_result(&self, value: T) -> Result<(), Error> {
        complete(&self.cell, Ok(value))
    }

    /// For executors: finishes the future with `error`. Setting a finished or cancelled future is
    /// [`Error::InvalidState`].
    ///
    /// ```
    /// use concurrent_futures::{Error, Future};
    ///
    /// let future = Future::<u8>::new();
    /// future.set_exception(Error::Panicked { message: "bad input".into() })?;
    /// assert!(future.exception().is_some());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn set_exception(&self, error: Error) -> Result<(), Error> {
        complete(&self.cell, Err(error))
    }

    /// Whether the outcome is an error (only meaningful once done).
    pub(crate) fn failed_or_cancelled(&self) -> bool {
        let state = self.core().load();
        state & FAILED != 0 || state & PHASE == CANCELLED
    }
}

/// The producer side of a [`Future`] for executors that complete it from another thread later (the process
/// pool). Unlike a cloned `Future`, it is not counted as a user handle, so `into_result` on the user's last handle
/// works as soon as the outcome is published, even while the executor still holds its `Promise`.
pub(crate) struct Promise<T> {
    cell: Arc<dyn Cell<T>>,
}

#[cfg_attr(not(feature = "process"), allow(dead_code))] // only the process pool completes futures this way
impl<T: Send + Sync + 'static> Promise<T> {
    /// A pending future and its uncounted producer side.
    pub(crate) fn new() -> (Promise<T>, Future<T>) {
        let future = Future::new();
        (
            Promise {
                cell: future.cell.clone(),
            },
            future,
        )
    }

    /// [`Future::set_running_or_notify_cancel`].
    pub(crate) fn start(&self) -> Result<bool, Error> {
        self.cell.core().try_start()
    }

    /// [`Future::set_result`] or [`Future::set_exception`].
    pub(crate) fn complete(&self, outcome: Result<T, Error>) -> Result<(), Error> {
        complete(&self.cell, outcome)
    }

    /// [`complete`](Self::complete), but the done-callbacks are handed back to run elsewhere (waiters are woken
    /// now); `None` if there are none. See `future::core::complete_deferred`.
    #[allow(dead_code)] // used by the process pool's result delivery (issue 12)
    pub(crate) fn complete_deferred(
        &self,
        outcome: Result<T, Error>,
    ) -> Result<Option<Notification<T>>, Error> {
        complete_deferred(&self.cell, outcome, true)
    }

    /// [`Future::cancel`].
    pub(crate) fn cancel(&self) -> bool {
        self::core::cancel(&self.cell)
    }
}

/// The error for moving a value out inside one of its future's own done-callbacks.
fn inside_own_callback() -> Error {
    Error::InvalidState(
        "moving the result out inside one of the future's own done-callbacks would wait for that callback; \
         use result() to borrow it there"
            .into(),
    )
}

/// `now + timeout`, saturating far in the future instead of overflowing.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 100))
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        self.cell.core().add_handle();
        Future {
            cell: self.cell.clone(),
        }
    }
}

impl<T> Drop for Future<T> {
    fn drop(&mut self) {
        self.cell.core().drop_handle();
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.core().load();
        let mut out = f.debug_struct("Future");
        out.field("state", &self.state());
        if state & PHASE == FINISHED {
            out.field(
                "outcome",
                &if state & FAILED != 0 {
                    "error"
                } else {
                    "value"
                },
            );
        }
        out.finish_non_exhaustive()
    }
}

/// `.await` a future from async code: the output is [`into_result`](Future::into_result)'s.
///
/// ```
/// let pool = concurrent_futures::ThreadPoolExecutor::new(1)?;
/// let future = pool.submit(|| 2 + 2)?;
/// assert_eq!(pollster::block_on(future), Ok(4));
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
impl<T: Send + Sync + 'static> std::future::Future for Future<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let core = self.core();
        loop {
            let state = core.load();
            if !is_done(state) {
                match core.register(Entry::Waker(cx.waker().clone())) {
                    Ok(()) => return Poll::Pending,
                    Err(_) => continue,
                }
            }
            if state & PHASE == CANCELLED {
                return Poll::Ready(Err(Error::Cancelled));
            }
            if state & NOTIFYING != 0 {
                if running_here(cell_id(&self.cell)) {
                    return Poll::Ready(Err(inside_own_callback()));
                }
                if state & DEFERRED != 0 {
                    run_parked(&self.cell);
                    continue;
                }
            }
            match core.register_settle(Entry::Waker(cx.waker().clone())) {
                Ok(()) => return Poll::Pending,
                Err(_) => return Poll::Ready(core.take_outcome()),
            }
        }
    }
}
