//! Production implementations of the sync API: parking_lot locks (std's under Miri), std atomics and threads,
//! crossbeam queues.

use std::time::Instant;

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, TrySendError};

pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
pub(crate) use std::thread_local;

#[cfg(not(miri))]
pub(crate) use locks::*;
#[cfg(miri)]
pub(crate) use miri_locks::*;

/// parking_lot's locks, in production.
#[cfg(not(miri))]
mod locks {
    use std::time::Instant;

    /// A mutex whose `lock` returns the guard directly (parking_lot style, no poisoning).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    /// The guard of [`Mutex`].
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A condition variable used with [`Mutex`].
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) const fn new() -> Self {
            Condvar(parking_lot::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            self.0.wait(guard);
        }

        /// Waits until notified or until `deadline`; returns `true` if the deadline passed.
        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            deadline: Instant,
        ) -> bool {
            self.0.wait_until(guard, deadline).timed_out()
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// A reader-writer lock (parking_lot style).
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T>(parking_lot::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) const fn new(value: T) -> Self {
            RwLock(parking_lot::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> parking_lot::RwLockReadGuard<'_, T> {
            self.0.read()
        }

        pub(crate) fn write(&self) -> parking_lot::RwLockWriteGuard<'_, T> {
            self.0.write()
        }
    }
}

/// Under Miri, the same API on std's locks: parking_lot_core 0.9.12 passes a reference where the futex syscall
/// takes a pointer, which Miri (since nightly 2026-09-11) reports as undefined behaviour in the dependency. Miri
/// then checks this crate's code on std's locks instead.
#[cfg(miri)]
mod miri_locks {
    use std::ops::{Deref, DerefMut};
    use std::time::Instant;

    /// A mutex whose `lock` returns the guard directly (no poisoning).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

    /// The guard of [`Mutex`]; it holds std's guard in an `Option` so [`Condvar::wait`] can take and return it.
    pub(crate) struct MutexGuard<'a, T>(Option<std::sync::MutexGuard<'a, T>>);

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
        pub(crate) const fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())))
        }
    }

    /// A condition variable used with [`Mutex`].
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(std::sync::Condvar);

    impl Condvar {
        pub(crate) const fn new() -> Self {
            Condvar(std::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let inner = guard.0.take().expect(GUARD_PRESENT);
            guard.0 = Some(self.0.wait(inner).unwrap_or_else(|e| e.into_inner()));
        }

        /// Waits until notified or until `deadline`; returns `true` if the deadline passed.
        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            deadline: Instant,
        ) -> bool {
            let inner = guard.0.take().expect(GUARD_PRESENT);
            let timeout = deadline.saturating_duration_since(Instant::now());
            let (inner, result) = self
                .0
                .wait_timeout(inner, timeout)
                .unwrap_or_else(|e| e.into_inner());
            guard.0 = Some(inner);
            result.timed_out()
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
    pub(crate) struct RwLock<T>(std::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) const fn new(value: T) -> Self {
            RwLock(std::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn write(&self) -> std::sync::RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(|e| e.into_inner())
        }
    }
}

/// An `UnsafeCell` with loom's closure-based access API.
#[derive(Debug, Default)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Marks an allocation that must be freed by the end of a loom model; nothing in production.
#[derive(Debug, Default, Clone)]
pub(crate) struct LeakToken;

impl LeakToken {
    pub(crate) fn new() -> Self {
        LeakToken
    }
}

/// Exponential back-off for a short wait: spins, then yields, then says it is time to block.
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    const SPIN_LIMIT: u32 = 6;
    const YIELD_LIMIT: u32 = 10;

    pub(crate) fn new() -> Self {
        Backoff { step: 0 }
    }

    /// Waits a little longer each call: 2^step spins, then a yield of the thread.
    pub(crate) fn snooze(&mut self) {
        if self.step <= Self::SPIN_LIMIT {
            for _ in 0..1u32 << self.step {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        if self.step <= Self::YIELD_LIMIT {
            self.step += 1;
        }
    }

    /// Whether waiting longer should block instead of spinning.
    pub(crate) fn is_completed(&self) -> bool {
        self.step > Self::YIELD_LIMIT
    }
}

/// Whether a thread about to wait on a future should spin first: only while spinning
/// has paid off on this thread lately, and never while the machine has more runnable threads than cores (a
/// spinning waiter would take a core from the very thread it waits for, or from other programs).
pub(crate) mod spin {
    use std::cell::Cell;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    /// Credit starts here; a wait whose spin paid adds 1 (up to `MAX_CREDIT`), one that had to block takes 2.
    const START_CREDIT: i32 = 4;
    const MAX_CREDIT: i32 = 16;
    /// Without credit, one wait in this many spins anyway, to notice when spinning pays again.
    const RETRY_EVERY: u32 = 32;
    /// How long a reading of the machine's load stays fresh.
    const LOAD_FRESH_MS: u64 = 20;

    std::thread_local! {
        static CREDIT: Cell<i32> = const { Cell::new(START_CREDIT) };
        static WITHOUT: Cell<u32> = const { Cell::new(0) };
    }

    /// Whether to spin before blocking in the wait that is starting.
    pub(crate) fn should_spin() -> bool {
        if oversubscribed() {
            return false;
        }
        CREDIT.with(|credit| {
            if credit.get() > 0 {
                return true;
            }
            WITHOUT.with(|without| {
                let n = without.get() + 1;
                without.set(n % RETRY_EVERY);
                n == RETRY_EVERY
            })
        })
    }

    /// Records whether the spin of the wait that is ending paid off (the future was done before blocking).
    pub(crate) fn record(paid: bool) {
        CREDIT.with(|credit| {
            let next = if paid {
                (credit.get().max(0) + 1).min(MAX_CREDIT)
            } else {
                credit.get() - 2
            };
            credit.set(next.max(-1));
        });
    }

    /// Whether more threads are runnable than there are cores, as last read (at most `LOAD_FRESH_MS` ago). Linux
    /// only (`/proc/loadavg`); elsewhere, and under Miri, never.
    fn oversubscribed() -> bool {
        if cfg!(any(miri, not(target_os = "linux"))) {
            return false;
        }
        // Bit 0: oversubscribed; the rest: when it was read, in ms since `EPOCH` (plus 1, so 0 means never).
        static READING: AtomicU64 = AtomicU64::new(0);
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let now = EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1;
        // ORDERING: Relaxed: a hint; nothing else is published through it.
        let reading = READING.load(Ordering::Relaxed);
        if reading != 0 && now.saturating_sub(reading >> 1) < LOAD_FRESH_MS {
            return reading & 1 == 1;
        }
        let busy = runnable_threads().is_some_and(|runnable| runnable > num_cpus::get());
        READING.store(now << 1 | u64::from(busy), Ordering::Relaxed);
        busy
    }

    /// The kernel's count of runnable threads (the fourth field of `/proc/loadavg`, `running/total`).
    fn runnable_threads() -> Option<usize> {
        let text = std::fs::read_to_string("/proc/loadavg").ok()?;
        let field = text.split_whitespace().nth(3)?;
        field.split('/').next()?.parse().ok()
    }
}

/// Threads: spawning named threads and telling the current one.
pub(crate) mod thread {
    pub(crate) use std::thread::{JoinHandle, ThreadId};

    pub(crate) fn spawn_named<F>(name: String, f: F) -> std::io::Result<JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        std::thread::Builder::new().name(name).spawn(f)
    }

    pub(crate) fn current_id() -> ThreadId {
        std::thread::current().id()
    }

    pub(crate) fn yield_now() {
        std::thread::yield_now();
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

/// A multi-producer multi-consumer FIFO queue, optionally bounded.
///
/// `close_push` makes every later push fail and releases pushers blocked on a full queue (they get their item
/// back). `close` also does that, and lets poppers return `None` once the queue is drained. The caller orders
/// pushes before `close` (the thread pool does so with its gate), so no item is left behind after the last pop.
pub(crate) struct Queue<T> {
    tx: Sender<T>,
    rx: Receiver<T>,
    push_closed: AtomicBool,
    push_close: Mutex<Option<Sender<()>>>,
    push_closed_rx: Receiver<()>,
    /// Nudges poppers (a message each) and, once dropped by `close`, tells them the queue is closed.
    pop_signal: Mutex<Option<Sender<()>>>,
    pop_signal_rx: Receiver<()>,
}

impl<T> Queue<T> {
    pub(crate) fn new(bound: Option<usize>) -> Self {
        let (tx, rx) = match bound {
            Some(n) => crossbeam_channel::bounded(n),
            None => crossbeam_channel::unbounded(),
        };
        let (push_close, push_closed_rx) = crossbeam_channel::bounded(0);
        let (pop_signal, pop_signal_rx) = crossbeam_channel::unbounded();
        Queue {
            tx,
            rx,
            push_closed: AtomicBool::new(false),
            push_close: Mutex::new(Some(push_close)),
            push_closed_rx,
            pop_signal: Mutex::new(Some(pop_signal)),
            pop_signal_rx,
        }
    }

    /// Pushes, blocking while the queue is full; gives the item back once the queue is closed for pushing.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        match self.try_push(item) {
            Ok(()) => Ok(()),
            Err(PushError::Closed(item)) => Err(item),
            Err(PushError::Full(item)) => {
                let mut select = Select::new();
                let send = select.send(&self.tx);
                let _closed = select.recv(&self.push_closed_rx);
                let op = select.select();
                if op.index() == send {
                    op.send(&self.tx, item).map_err(|e| e.into_inner())
                } else {
                    // The close channel only ever disconnects; completing the operation just observes that.
                    let _ = op.recv(&self.push_closed_rx);
                    Err(item)
                }
            }
        }
    }

    /// Pushes without blocking.
    pub(crate) fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        // ORDERING: Acquire pairs with the Release store in `close_push`; a push that misses the flag is still
        // ordered before the queue's final drain by the caller's gate.
        if self.push_closed.load(Ordering::Acquire) {
            return Err(PushError::Closed(item));
        }
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(item)) => Err(PushError::Full(item)),
            Err(TrySendError::Disconnected(item)) => Err(PushError::Closed(item)),
        }
    }

    /// Pops, blocking while the queue is empty: an item, or [`Pop::Closed`] once it is closed and drained,
    /// [`Pop::TimedOut`] at `deadline`, or [`Pop::Nudged`] if [`nudge`](Self::nudge) woke this popper.
    pub(crate) fn pop_until(&self, deadline: Option<Instant>) -> Pop<T> {
        match self.rx.try_recv() {
            Ok(item) => return Pop::Item(item),
            Err(TryRecvError::Disconnected) => return Pop::Closed,
            Err(TryRecvError::Empty) => {}
        }
        let mut select = Select::new();
        let recv = select.recv(&self.rx);
        let _signal = select.recv(&self.pop_signal_rx);
        let op = match deadline {
            None => select.select(),
            Some(deadline) => match select.select_deadline(deadline) {
                Ok(op) => op,
                Err(_) => return Pop::TimedOut,
            },
        };
        if op.index() == recv {
            return op.recv(&self.rx).map_or(Pop::Closed, Pop::Item);
        }
        match op.recv(&self.pop_signal_rx) {
            Ok(()) => Pop::Nudged,
            // Disconnected: the queue was closed; hand out what is left.
            Err(_) => self.rx.try_recv().map_or(Pop::Closed, Pop::Item),
        }
    }

    /// Wakes up to `n` blocked poppers with [`Pop::Nudged`] (a popper that finds a nudge later wakes at once).
    pub(crate) fn nudge(&self, n: usize) {
        if let Some(signal) = &*self.pop_signal.lock() {
            for _ in 0..n {
                let _ = signal.send(());
            }
        }
    }

    /// Pops without blocking.
    pub(crate) fn try_pop(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Refuses every later push and releases blocked pushers.
    pub(crate) fn close_push(&self) {
        // ORDERING: Release pairs with the Acquire load in `try_push`.
        self.push_closed.store(true, Ordering::Release);
        drop(self.push_close.lock().take());
    }

    /// `close_push`, and lets poppers return `None` once the queue is drained.
    pub(crate) fn close(&self) {
        self.close_push();
        drop(self.pop_signal.lock().take());
    }

    pub(crate) fn len(&self) -> usize {
        self.rx.len()
    }
}
