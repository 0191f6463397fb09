//! Loom implementations of the sync API, used under `--cfg concurrent_futures_loom`.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
pub(crate) use loom::thread_local;

/// A mutex whose `lock` returns the guard directly.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

/// The guard of [`Mutex`]; it holds loom's guard in an `Option` so [`Condvar::wait`] can take and return it.
pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

const GUARD_PRESENT: &str = "a MutexGuard always holds its lock outside Condvar::wait";

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect(GUARD_PRESENT)
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect(GUARD_PRESENT)
    }
}

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

/// A condition variable used with [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct Condvar(loom::sync::Condvar);

impl Condvar {
    pub(crate) fn new() -> Self {
        Condvar(loom::sync::Condvar::new())
    }

    pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
        let inner = guard.0.take().expect(GUARD_PRESENT);
        guard.0 = Some(self.0.wait(inner).unwrap_or_else(|e| e.into_inner()));
    }

    /// Loom never times out a wait: this behaves as `wait` and returns `false`.
    pub(crate) fn wait_until<T>(&self, guard: &mut MutexGuard<'_, T>, _deadline: Instant) -> bool {
        self.wait(guard);
        false
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// A reader-writer lock.
#[derive(Debug, Default)]
pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

impl<T> RwLock<T> {
    pub(crate) fn new(value: T) -> Self {
        RwLock(loom::sync::RwLock::new(value))
    }

    pub(crate) fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) use loom::cell::UnsafeCell;

/// Marks an allocation that must be freed by the end of a loom model: loom reports a leaked `Arc`.
#[derive(Debug, Clone)]
pub(crate) struct LeakToken(#[allow(dead_code)] loom::sync::Arc<()>);

impl LeakToken {
    pub(crate) fn new() -> Self {
        LeakToken(loom::sync::Arc::new(()))
    }
}

/// Back-off under loom: `snooze` yields to loom's scheduler (so spin loops are explored, not spun), and a wait
/// never spins before blocking, which keeps the models small.
pub(crate) struct Backoff;

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff
    }

    pub(crate) fn snooze(&mut self) {
        loom::thread::yield_now();
    }

    pub(crate) fn is_completed(&self) -> bool {
        true
    }
}

/// Under loom a waiter never spins: it blocks at once (spinning only adds interleavings).
pub(crate) mod spin {
    pub(crate) fn should_spin() -> bool {
        false
    }

    pub(crate) fn record(_paid: bool) {}
}

/// Threads: spawning named threads and telling the current one.
pub(crate) mod thread {
    pub(crate) use loom::thread::{JoinHandle, ThreadId};

    pub(crate) fn spawn_named<F>(name: String, f: F) -> std::io::Result<JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        loom::thread::Builder::new().name(name).spawn(f)
    }

    pub(crate) fn current_id() -> ThreadId {
        loom::thread::current().id()
    }

    /// Lets the other threads run (loom's scheduler then prefers them).
    pub(crate) fn yield_now() {
        loom::thread::yield_now();
    }
}

/// What a blocking [`Queue`] pop got.
#[derive(Debug)]
pub(crate) enum Pop<T> {
    Item(T),
    /// The queue is closed and drained.
    Closed,
    TimedOut,
    Nudged,
}

/// Why a [`Queue`] push did not happen.
#[derive(Debug)]
pub(crate) enum PushError<T> {
    /// The queue is bounded and full (only from `try_push`).
    Full(T),
    /// The queue no longer accepts items.
    Closed(T),
}

struct QueueState<T> {
    items: VecDeque<T>,
    nudges: usize,
    bound: Option<usize>,
    push_closed: bool,
    closed: bool,
}

/// The loom stand-in for the crossbeam-backed queue: a `Mutex<VecDeque>` with two condition variables and the
/// same methods and close semantics.
pub(crate) struct Queue<T> {
    state: Mutex<QueueState<T>>,
    not_empty: Condvar,
    not_full: Condvar,
}

impl<T> Queue<T> {
    pub(crate) fn new(bound: Option<usize>) -> Self {
        Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                nudges: 0,
                bound,
                push_closed: false,
                closed: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
        }
    }

    fn is_full(state: &QueueState<T>) -> bool {
        state.bound.is_some_and(|bound| state.items.len() >= bound)
    }

    /// Like the crossbeam queue, checks the closed flag and pushes in two steps, so a push that passed the check
    /// can still land after `close`: the window the thread pool's gate exists to close.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        if self.state.lock().push_closed {
            return Err(item);
        }
        let mut state = self.state.lock();
        loop {
            if !Self::is_full(&state) {
                state.items.push_back(item);
                self.not_empty.notify_one();
                return Ok(());
            }
            if state.push_closed {
                return Err(item);
            }
            self.not_full.wait(&mut state);
        }
    }

    pub(crate) fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        if self.state.lock().push_closed {
            return Err(PushError::Closed(item));
        }
        let mut state = self.state.lock();
        if Self::is_full(&state) {
            return Err(PushError::Full(item));
        }
        state.items.push_back(item);
        self.not_empty.notify_one();
        Ok(())
    }

    /// Loom never times out a wait, so [`Pop::TimedOut`] comes only from a deadline already past (models use
    /// one to mean "time out now").
    pub(crate) fn pop_until(&self, deadline: Option<Instant>) -> Pop<T> {
        let mut state = self.state.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                if !super::mutant("queue_no_release") {
                    // (Mutant: a pop that frees a slot does not wake a blocked push.)
                    self.not_full.notify_one();
                }
                return Pop::Item(item);
            }
            if state.closed {
                return Pop::Closed;
            }
            if state.nudges > 0 {
                state.nudges -= 1;
                return Pop::Nudged;
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Pop::TimedOut;
            }
            self.not_empty.wait(&mut state);
        }
    }

    pub(crate) fn nudge(&self, n: usize) {
        self.state.lock().nudges += n;
        self.not_empty.notify_all();
    }

    pub(crate) fn try_pop(&self) -> Option<T> {
        let mut state = self.state.lock();
        let item = state.items.pop_front();
        if item.is_some() {
            self.not_full.notify_one();
        }
        item
    }

    pub(crate) fn close_push(&self) {
        self.state.lock().push_closed = true;
        self.not_full.notify_all();
    }

    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.push_closed = true;
        state.closed = true;
        drop(state);
        self.not_full.notify_all();
        self.not_empty.notify_all();
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().items.len()
    }
}
