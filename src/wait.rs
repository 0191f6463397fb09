//! `wait` and `as_completed`: waiting on many futures at once, as Python's module-level functions do.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::Error;
use crate::future::{Entry, Future, Waiter, deadline_after};
use crate::sync::{Arc, mutant};

mod sealed {
    use crate::future::Waiter;
    use crate::sync::Arc;

    /// The type-erased view of a future that `wait` and `as_completed` need. Not nameable outside the crate.
    pub trait Watch {
        /// Identity of the shared cell (two handles of one future have the same).
        fn id(&self) -> usize;
        fn is_done(&self) -> bool;
        /// Done with an error or cancelled.
        fn failed(&self) -> bool;
        /// Runs the task in this thread if this thread is a worker of its pool and it has not started.
        fn run_here(&self) -> bool;
        /// Whether this thread works for the executor the future's task belongs to.
        fn mine(&self) -> bool;
        /// Registers `waiter` to be told `token`; `false` if the future is already done.
        fn register(&self, waiter: &Arc<Waiter>, token: usize) -> bool;
        fn unregister(&self, waiter: &Arc<Waiter>);
    }
}

use sealed::Watch;

/// What [`wait`] and [`as_completed`] accept: a [`Future`] or a reference to one, of any output type.
///
/// This trait is sealed: it is implemented for `Future<T>` and `&Future<T>` only.
pub trait Waitable {
    #[doc(hidden)]
    fn watch(&self) -> &dyn sealed::Watch;
}

impl<T: Send + Sync + 'static> sealed::Watch for Future<T> {
    fn id(&self) -> usize {
        Arc::as_ptr(&self.cell) as *const () as usize
    }

    fn is_done(&self) -> bool {
        self.done()
    }

    fn failed(&self) -> bool {
        self.failed_or_cancelled() && !self.cancelled()
    }

    fn run_here(&self) -> bool {
        self.run_here_if_mine()
    }

    fn mine(&self) -> bool {
        self.is_mine()
    }

    fn register(&self, waiter: &Arc<Waiter>, token: usize) -> bool {
        self.cell
            .core()
            .register(Entry::Waiter(waiter.clone(), token))
            .is_ok()
    }

    fn unregister(&self, waiter: &Arc<Waiter>) {
        self.cell.core().unregister(waiter);
    }
}

impl<T: Send + Sync + 'static> Waitable for Future<T> {
    fn watch(&self) -> &dyn sealed::Watch {
        self
    }
}

impl<T: Send + Sync + 'static> Waitable for &Future<T> {
    fn watch(&self) -> &dyn sealed::Watch {
        *self
    }
}

/// When [`wait`] returns, as Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION` and `ALL_COMPLETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReturnWhen {
    /// As soon as any future finishes or is cancelled.
    FirstCompleted,
    /// As soon as any future finishes with an error (not counting cancellation); if none does, when all are done.
    FirstException,
    /// When every future is done.
    #[default]
    AllCompleted,
}

/// Keeps the first of each future (by identity), in input order.
fn distinct<W: Waitable>(futures: impl IntoIterator<Item = W>) -> Vec<W> {
    let mut seen = HashSet::new();
    futures
        .into_iter()
        .filter(|f| seen.insert(f.watch().id()))
        .collect()
}

/// Waits for `futures` as `return_when` says, or until `timeout`, and returns `(done, not_done)`.
///
/// Pass owned futures to get them back, or references (`&futures` for a `Vec<Future<T>>`) to keep your own.
/// Each future appears once (duplicates are dropped) and both lists keep the input order. A timeout is not an
/// error: the unfinished futures are in `not_done`. The calling thread sleeps until a future it needs finishes;
/// nothing polls.
///
/// ```
/// use concurrent_futures::{ReturnWhen, ThreadPoolExecutor, wait};
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let futures: Vec<_> = (0..4).map(|i| pool.submit(move || i * 10)).collect::<Result<_, _>>()?;
/// let (done, not_done) = wait(&futures, None, ReturnWhen::AllCompleted);
/// assert_eq!((done.len(), not_done.len()), (4, 0));
/// assert_eq!(*done[3].result()?, 30);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub fn wait<W: Waitable>(
    futures: impl IntoIterator<Item = W>,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> (Vec<W>, Vec<W>) {
    let futures = distinct(futures);
    let deadline = timeout.map(deadline_after);
    let mut tally = Tally {
        done: vec![false; futures.len()],
        count: 0,
        failed: false,
    };
    for (i, f) in futures.iter().enumerate() {
        if f.watch().is_done() {
            tally.mark(i, f.watch());
        }
    }
    // A worker waiting on tasks of its own pool that have not started runs them itself, one at a time, until
    // the condition holds: with every thread waiting, nothing else would. Not with a timeout: a task run here
    // could take longer than the timeout allows.
    let on_worker = deadline.is_none() && crate::future::local::on_executor_thread();
    for (i, f) in futures.iter().enumerate() {
        if !on_worker || tally.satisfies(return_when) {
            break;
        }
        if !tally.done[i] && f.watch().run_here() {
            tally.mark(i, f.watch());
        }
    }
    if !tally.satisfies(return_when) {
        let waiter = Arc::new(Waiter::new());
        let mut registered = Vec::new();
        for (i, f) in futures.iter().enumerate() {
            if tally.done[i] {
                continue;
            }
            if f.watch().register(&waiter, i) {
                registered.push(i);
            } else if !mutant("wait_no_recheck") {
                // (Mutant: forgets a future that finished while the waiter was being installed.)
                tally.mark(i, f.watch());
            }
        }
        // A worker of the futures' pool runs the pool's queued fan-out work while the condition does not hold
        // (see `local::help`), then sleeps.
        let helps = on_worker && futures.iter().any(|f| f.watch().mine());
        while helps && !tally.satisfies(return_when) && crate::future::local::help() {
            for i in waiter.take() {
                if let Some(f) = futures.get(i) {
                    tally.mark(i, f.watch());
                }
            }
        }
        while !tally.satisfies(return_when) {
            let tokens = waiter.wait(deadline);
            if tokens.is_empty() && deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            for i in tokens {
                if let Some(f) = futures.get(i) {
                    tally.mark(i, f.watch());
                }
            }
        }
        for i in registered {
            futures[i].watch().unregister(&waiter);
        }
    }
    futures.into_iter().partition(|f| f.watch().is_done())
}

/// What `wait` has seen finish so far.
struct Tally {
    done: Vec<bool>,
    count: usize,
    failed: bool,
}

impl Tally {
    fn mark(&mut self, i: usize, future: &dyn Watch) {
        if !self.done[i] {
            self.done[i] = true;
            self.count += 1;
            self.failed |= future.failed();
        }
    }

    fn satisfies(&self, return_when: ReturnWhen) -> bool {
        let all = self.count == self.done.len();
        match return_when {
            ReturnWhen::FirstCompleted => self.count > 0 || all,
            ReturnWhen::FirstException => self.failed || all,
            ReturnWhen::AllCompleted => all,
        }
    }
}

/// Yields futures as they finish (or are cancelled): those already done first, in input order, then each as it
/// finishes. Each future is yielded once, duplicates included.
///
/// If `timeout` passes first, the iterator yields one [`Error::Timeout`] naming how many are unfinished, then
/// ends. The calling thread sleeps between futures; nothing polls.
///
/// ```
/// use concurrent_futures::{ThreadPoolExecutor, as_completed};
///
/// let pool = ThreadPoolExecutor::new(4)?;
/// let futures: Vec<_> = (1..=3).map(|i| pool.submit(move || i)).collect::<Result<_, _>>()?;
/// let mut total = 0;
/// for future in as_completed(futures, None) {
///     total += future?.result()?;
/// }
/// assert_eq!(total, 6);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub fn as_completed<W: Waitable>(
    futures: impl IntoIterator<Item = W>,
    timeout: Option<Duration>,
) -> AsCompleted<W> {
    let futures = distinct(futures);
    let total = futures.len();
    let waiter = Arc::new(Waiter::new());
    let mut ready = VecDeque::new();
    let mut pending = 0;
    let already: Vec<bool> = futures.iter().map(|f| f.watch().is_done()).collect();
    ready.extend((0..total).filter(|&i| already[i]));
    for (i, f) in futures.iter().enumerate() {
        if !already[i] {
            if f.watch().register(&waiter, i) {
                pending += 1;
            } else if !mutant("wait_no_recheck") {
                // (Mutant: forgets a future that finished while the waiter was being installed.)
                ready.push_back(i);
            }
        }
    }
    AsCompleted {
        slots: futures.into_iter().map(Some).collect(),
        ready,
        pending,
        total,
        waiter,
        deadline: timeout.map(deadline_after),
        ended: false,
    }
}

/// The iterator returned by [`as_completed`].
pub struct AsCompleted<W: Waitable> {
    slots: Vec<Option<W>>,
    ready: VecDeque<usize>,
    pending: usize,
    total: usize,
    waiter: Arc<Waiter>,
    deadline: Option<Instant>,
    ended: bool,
}

impl<W: Waitable> Iterator for AsCompleted<W> {
    type Item = Result<W, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(i) = self.ready.pop_front() {
                if let Some(future) = self.slots[i].take() {
                    return Some(Ok(future));
                }
                continue;
            }
            if self.ended || self.pending == 0 {
                return None;
            }
            // A worker waiting on a task of its own pool that has not started runs it itself; its completion
            // posts the token, so the wait below returns at once. Not with a timeout (see `wait`).
            // Else it runs its pool's queued fan-out work (see `local::help`) until a future is done.
            let tokens = if self.deadline.is_none() && crate::future::local::on_executor_thread() {
                // Stops at the first task it ran; the result only says whether there was one.
                let ran = self.slots.iter().flatten().any(|f| f.watch().run_here());
                let helps = !ran && self.slots.iter().flatten().any(|f| f.watch().mine());
                let mut tokens = self.waiter.take();
                while helps && tokens.is_empty() && crate::future::local::help() {
                    tokens = self.waiter.take();
                }
                if tokens.is_empty() {
                    self.waiter.wait(None)
                } else {
                    tokens
                }
            } else {
                self.waiter.wait(self.deadline)
            };
            if tokens.is_empty() {
                if self.deadline.is_some_and(|d| Instant::now() >= d) {
                    self.ended = true;
                    return Some(Err(Error::Timeout {
                        unfinished: self.pending,
                        total: self.total,
                    }));
                }
                continue;
            }
            // Each registered future posts its token exactly once.
            self.pending -= tokens.len();
            self.ready.extend(tokens);
        }
    }
}

impl<W: Waitable> Drop for AsCompleted<W> {
    fn drop(&mut self) {
        if self.pending > 0 {
            for future in self.slots.iter().flatten() {
                future.watch().unregister(&self.waiter);
            }
        }
    }
}
