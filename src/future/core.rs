//! The future's shared cell: one atomic state word, the outcome slot, and the slow path (callbacks, waiters).
//!
//! # The state word
//! Bits 0-2 hold the phase (`PENDING`, `RUNNING`, `COMPLETING`, `FINISHED`, `CANCELLED`); `WAITING` says the
//! slow-path list may hold entries; `NOTIFYING` says the done-callbacks have not all run yet and a handle is
//! counted for them; `DEFERRED` says those callbacks are parked on the slow path for whoever claims them first
//! (see `notify.rs`); `SETTLE_WAIT` says someone waits for `NOTIFYING` to clear; `FAILED` says the outcome is an
//! error; `TAKEN` says the outcome was moved out (in the `CANCELLED` phase: `set_running_or_notify_cancel` has
//! reported the cancellation); `JOB` says a task cell still holds its closure; `LOCKED` is the slow-path lock.
//! On 64-bit targets the next 16 bits hold the identity of the executor a task belongs to (its pool's index
//! among the live pools: exact, see `local.rs`). The bits from `ONE_HANDLE` up count the user-visible [`Future`]
//! handles: 37 bits on 64-bit targets, 21 on 32-bit ones. Counting past half of that aborts the process, as `Arc`
//! does.
//!
//! Keeping all of this in one word keeps a pending no-op task to one small allocation: no separate mutex, and the
//! outcome and job slots carry no discriminants of their own.
//!
//! # Happens-before
//! - Writing the outcome happens before any read of it: the completer writes the slot while it alone holds the
//!   `COMPLETING` phase, then publishes `FINISHED` with `Release`; readers load the state with `Acquire` and read
//!   the slot only once they see `FINISHED`.
//! - No wake-up is lost: a waiter sets `WAITING` in the same read-modify-write that takes the slow-path lock,
//!   and pushes its entry only if that read-modify-write saw the future unfinished. A completer whose publishing
//!   read-modify-write saw `WAITING` takes the lock before draining, so it sees every entry pushed before its
//!   publish; an entry whose registration comes after the publish sees the finished phase and is never pushed.
//! - Every callback runs exactly once: the list is drained under the lock, and a callback added after the
//!   future is done runs at once in the adding thread instead of being pushed.

use std::mem::MaybeUninit;
use std::task::Waker;

use super::Future;
use super::notify::{Nesting, Notification};
use super::waiter::Waiter;
use crate::Error;
use crate::sync::{Arc, AtomicUsize, Backoff, LeakToken, Ordering, UnsafeCell, mutant};
use crate::unwind;

pub(crate) const PHASE: usize = 0b111;
pub(crate) const PENDING: usize = 0;
pub(crate) const RUNNING: usize = 1;
pub(crate) const COMPLETING: usize = 2;
pub(crate) const FINISHED: usize = 3;
pub(crate) const CANCELLED: usize = 4;
pub(crate) const WAITING: usize = 1 << 3;
pub(crate) const NOTIFYING: usize = 1 << 4;
pub(crate) const SETTLE_WAIT: usize = 1 << 5;
pub(crate) const FAILED: usize = 1 << 6;
const TAKEN: usize = 1 << 7;
/// In the `CANCELLED` phase, `TAKEN`'s bit says `set_running_or_notify_cancel` already reported the
/// cancellation (CPython's `CANCELLED_AND_NOTIFIED`); a second call is an error.
const CANCEL_REPORTED: usize = TAKEN;
pub(crate) const JOB: usize = 1 << 8;
const LOCKED: usize = 1 << 9;
pub(crate) const DEFERRED: usize = 1 << 10;
const OWNER_SHIFT: u32 = 11;
/// On 64-bit targets, 16 bits of the word hold the identity of the executor a task belongs to (see `local.rs`),
/// so a task cell needs no field for it; 32-bit words have no room, and their task cells carry it in a field.
pub(crate) const OWNER_BITS: u32 = if usize::BITS >= 64 { 16 } else { 0 };
const OWNER_MASK: usize = ((1 << OWNER_BITS) - 1) << OWNER_SHIFT;
pub(crate) const ONE_HANDLE: usize = 1 << (OWNER_SHIFT + OWNER_BITS);
/// The most handles counted before the process aborts: half of what the word holds, so that threads racing past
/// the check cannot carry the count out of the word (the same margin `Arc` keeps).
const MAX_HANDLES: usize = (usize::MAX / ONE_HANDLE) / 2;

/// The state bits that record executor `owner` (0 where the word has no room for it, or it does not fit).
pub(crate) fn owner_bits(owner: usize) -> usize {
    if owner < (1 << OWNER_BITS) {
        owner << OWNER_SHIFT
    } else {
        0
    }
}

/// The executor identity recorded in a state word (see [`owner_bits`]).
pub(crate) fn owner_of(state: usize) -> usize {
    (state & OWNER_MASK) >> OWNER_SHIFT
}

/// Whether a state word is in a final phase.
pub(crate) fn is_done(state: usize) -> bool {
    matches!(state & PHASE, FINISHED | CANCELLED)
}

/// How many user handles a state word counts.
pub(crate) fn handles(state: usize) -> usize {
    state / ONE_HANDLE
}

/// Aborts if a state word seen just before adding a handle already counts the most allowed: past that, the count
/// could wrap and let `into_result` move the value out from under other handles' borrows.
fn check_handle_overflow(previous: usize) {
    if handles(previous) >= MAX_HANDLES {
        std::process::abort();
    }
}

/// A done-callback as stored on the slow path.
pub(crate) type Callback<T> = Box<dyn FnOnce(&Future<T>) + Send>;

/// Something registered on a future's slow path.
pub(crate) enum Entry<T> {
    /// A done-callback, run once by the thread that completes or cancels the future.
    Callback(Callback<T>),
    /// A parked thread, told `token` when the future is done.
    Waiter(Arc<Waiter>, usize),
    /// An async task waiting in `poll`.
    Waker(Waker),
}

impl<T> Entry<T> {
    /// Wakes a waiter or waker (a waker's `wake` is user code: a panic in it is logged); a callback is handed back.
    pub(crate) fn wake(self) -> Option<Callback<T>> {
        match self {
            Entry::Waiter(waiter, token) => waiter.notify(token),
            Entry::Waker(waker) => unwind::run_callback("a waker", || waker.wake()),
            Entry::Callback(callback) => return Some(callback),
        }
        None
    }
}

/// The outcome as stored: errors are boxed, so the slot of a `Future<()>` is one pointer.
type Outcome<T> = Result<T, Box<Error>>;

/// The state every future has, whatever produces its outcome.
pub(crate) struct Core<T> {
    pub(super) state: AtomicUsize,
    /// Registered entries; touched only while holding the `LOCKED` bit. Allocated on first registration, and
    /// boxed so that a future no one waits on pays one pointer for it, not a `Vec`'s three words.
    #[allow(clippy::box_collection)]
    slow: UnsafeCell<Option<Box<Vec<Entry<T>>>>>,
    /// Initialised iff the phase is `FINISHED` and `TAKEN` is clear (or while `COMPLETING`, by the completer).
    outcome: UnsafeCell<MaybeUninit<Outcome<T>>>,
    _leak: LeakToken,
}

// SAFETY: the outcome slot is written only by the thread holding the COMPLETING phase (or by `take_outcome`,
// which requires the only handle), and read only after FINISHED is published; the slow list only under the
// LOCKED bit. Moving a `T` across threads needs `T: Send`, and shared `&T` from several threads needs `T: Sync`.
unsafe impl<T: Send + Sync> Sync for Core<T> {}
// SAFETY: as above; all other fields are Send.
unsafe impl<T: Send> Send for Core<T> {}

/// The shared allocation behind a [`Future`]: a bare [`Core`], or a task cell that also holds the job to run.
pub(crate) trait Cell<T>: Send + Sync {
    fn core(&self) -> &Core<T>;

    /// Drops the job without running it. Called only by a thread that cleared the `JOB` bit in the same
    /// read-modify-write that moved the future out of `PENDING`, so it has the job slot to itself. A panic in the
    /// job's `Drop` is logged, never unwound into the caller.
    fn discard_job(&self) {}

    /// The identity of the executor this task belongs to (see [`LocalExecutor`](super::local::LocalExecutor)),
    /// or 0 for a future no executor can run.
    fn owner(&self) -> usize {
        0
    }

    /// Runs the task in the calling thread if it has not started: claims it exactly once (a worker that dequeues
    /// it later skips it; a racing cancel wins or loses once). `true` if it ran here.
    fn run_here(self: Arc<Self>) -> bool {
        false
    }
}

impl<T: Send + Sync> Cell<T> for Core<T> {
    fn core(&self) -> &Core<T> {
        self
    }
}

/// The slow-path list, borrowed while the `LOCKED` bit is held; dropping it releases the lock.
pub(super) struct SlowGuard<'a, T> {
    core: &'a Core<T>,
}

impl<T> SlowGuard<'_, T> {
    pub(super) fn with<R>(&mut self, f: impl FnOnce(&mut Vec<Entry<T>>) -> R) -> R {
        self.core.slow.with_mut(|slow| {
            // SAFETY: this guard holds the LOCKED bit, so no other thread touches the list.
            let slow = unsafe { &mut *slow };
            f(slow.get_or_insert_with(Default::default))
        })
    }

    fn take(&mut self) -> Vec<Entry<T>> {
        self.core.slow.with_mut(|slow| {
            // SAFETY: as in `with`.
            unsafe { (*slow).take() }.map_or_else(Vec::new, |list| *list)
        })
    }

    /// Sets or clears state bits while the lock is held (only bits no lock-free path changes: `DEFERRED`).
    pub(super) fn update(&mut self, set: usize, clear: usize) {
        // ORDERING: Relaxed: the lock's release in `drop` publishes it with the list.
        if set != 0 {
            self.core.state.fetch_or(set, Ordering::Relaxed);
        }
        if clear != 0 {
            self.core.state.fetch_and(!clear, Ordering::Relaxed);
        }
    }
}

impl<T> Drop for SlowGuard<'_, T> {
    fn drop(&mut self) {
        // ORDERING: Release: the list changes made under the lock happen before the next holder's Acquire.
        self.core.state.fetch_and(!LOCKED, Ordering::Release);
    }
}

impl<T> Core<T> {
    /// A core in phase `phase` (which may carry `JOB`) with `handles` user handles counted.
    pub(crate) fn new(phase: usize, handles: usize, outcome: Option<Result<T, Error>>) -> Self {
        let flags = match &outcome {
            Some(Err(_)) => FAILED,
            _ => 0,
        };
        Core {
            state: AtomicUsize::new(phase | flags | (handles * ONE_HANDLE)),
            slow: UnsafeCell::new(None),
            outcome: UnsafeCell::new(match outcome {
                Some(outcome) => MaybeUninit::new(outcome.map_err(Box::new)),
                None => MaybeUninit::uninit(),
            }),
            _leak: LeakToken::new(),
        }
    }

    pub(crate) fn load(&self) -> usize {
        // ORDERING: Acquire, so that seeing FINISHED makes the outcome written before it visible.
        self.state.load(Ordering::Acquire)
    }

    pub(crate) fn add_handle(&self) {
        // ORDERING: Relaxed, as for `Arc::clone`: a new handle is made from an existing one, whose count already
        // keeps `take_outcome` from running.
        let previous = self.state.fetch_add(ONE_HANDLE, Ordering::Relaxed);
        check_handle_overflow(previous);
    }

    pub(crate) fn drop_handle(&self) {
        // ORDERING: Release, so that every use of the outcome through this handle happens before a later
        // `take_outcome` that sees the count drop (it loads with Acquire).
        self.state.fetch_sub(ONE_HANDLE, Ordering::Release);
    }

    /// Takes the slow-path lock, also setting `extra` bits, unless `give_up(state)` says otherwise first (then
    /// returns that state without locking).
    pub(super) fn lock_slow(
        &self,
        extra: usize,
        give_up: impl Fn(usize) -> bool,
    ) -> Result<(usize, SlowGuard<'_, T>), usize> {
        let mut backoff = Backoff::new();
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if give_up(state) {
                return Err(state);
            }
            if state & LOCKED == 0 {
                // ORDERING: Acquire takes the lock (pairs with the Release in `SlowGuard::drop`) and sees a
                // published outcome; Release makes `extra` (WAITING) visible to the completer's publish.
                match self.state.compare_exchange_weak(
                    state,
                    state | LOCKED | extra,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok((state, SlowGuard { core: self })),
                    Err(actual) => {
                        state = actual;
                        continue;
                    }
                }
            }
            backoff.snooze();
            state = self.state.load(Ordering::Acquire);
        }
    }

    /// Moves `PENDING` to `RUNNING` (Python's `set_running_or_notify_cancel`): `Ok(false)` if it was cancelled.
    /// With `take_job`, also clears `JOB`: the caller then owns the job slot. With `report`, a cancellation is
    /// reported once: a second call on the cancelled future is `InvalidState`, as in CPython.
    fn start(&self, take_job: bool, report: bool) -> Result<bool, Error> {
        let mut state = self.load();
        if mutant("start_race") && state & PHASE == PENDING {
            // Mutant: check-then-act instead of compare-and-swap, so a cancel can win in between.
            let next = (state & !(PHASE | if take_job { JOB } else { 0 })) | RUNNING;
            self.state.store(next, Ordering::Release);
            return Ok(true);
        }
        loop {
            let next = match state & PHASE {
                PENDING => (state & !(PHASE | if take_job { JOB } else { 0 })) | RUNNING,
                CANCELLED if !report => return Ok(false),
                CANCELLED if state & CANCEL_REPORTED != 0 => {
                    return Err(Error::InvalidState(
                        "the cancellation was already reported by set_running_or_notify_cancel"
                            .into(),
                    ));
                }
                CANCELLED => state | CANCEL_REPORTED,
                RUNNING | COMPLETING => {
                    return Err(Error::InvalidState("the future is already running".into()));
                }
                _ => return Err(Error::InvalidState("the future is already finished".into())),
            };
            // ORDERING: Acquire on success: the job's captured state was published by the submitter through the
            // queue; nothing is published by this transition itself.
            match self.state.compare_exchange_weak(
                state,
                next,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(state & PHASE == PENDING),
                Err(actual) => state = actual,
            }
        }
    }

    /// Python's `set_running_or_notify_cancel`, for executors driving the producer side.
    pub(crate) fn try_start(&self) -> Result<bool, Error> {
        self.start(false, true)
    }

    /// A pool worker starting a task: `true` if it now owns the job slot.
    pub(super) fn start_job(&self) -> bool {
        self.start(true, false) == Ok(true)
    }

    /// Claims the right to write the outcome: `PENDING` (or, with `from_running`, `RUNNING`) to `COMPLETING`.
    /// Returns the state it left (leaving `PENDING` also clears `JOB`, handing the job slot to the caller).
    fn claim_completion(&self, from_running: bool) -> Result<usize, Error> {
        let mut state = self.load();
        loop {
            match state & PHASE {
                PENDING => {}
                RUNNING if from_running => {}
                RUNNING => return Err(Error::InvalidState("the future is already running".into())),
                CANCELLED => return Err(Error::InvalidState("the future was cancelled".into())),
                _ => {
                    return Err(Error::InvalidState(
                        "the future already has a result".into(),
                    ));
                }
            }
            let job = if state & PHASE == PENDING { JOB } else { 0 };
            // ORDERING: Acquire: the claimant only writes the outcome slot, which no one reads before FINISHED.
            match self.state.compare_exchange_weak(
                state,
                (state & !(PHASE | job)) | COMPLETING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(state),
                Err(actual) => state = actual,
            }
        }
    }

    /// Publishes a final phase; if anyone registered on the slow path, also sets `NOTIFYING` and counts the
    /// handle the notifier will pass to callbacks. Returns the previous state word.
    fn publish(&self, phase_bits: usize) -> usize {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let mut next = (state & !PHASE) | phase_bits;
            if state & WAITING != 0 {
                check_handle_overflow(state);
                next += NOTIFYING + ONE_HANDLE;
            }
            // ORDERING: Release publishes the outcome written under COMPLETING (and the job's effects); Acquire
            // pairs with the Release of `register`'s lock-taking read-modify-write, so the notifier sees the
            // entries through the lock it takes next.
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return state,
                Err(actual) => state = actual,
            }
        }
    }

    /// Registers `entry` unless the future is already done, in which case the entry is handed back.
    pub(crate) fn register(&self, entry: Entry<T>) -> Result<(), Entry<T>> {
        if mutant("lost_callback") && matches!(entry, Entry::Callback(_)) {
            // Mutant: checks for completion before taking the lock, then pushes without re-checking, so a
            // callback added while the future completes is never run.
            if is_done(self.load()) {
                return Err(entry);
            }
            let (_, mut slow) = self
                .lock_slow(WAITING, |_| false)
                .unwrap_or_else(|_| unreachable!());
            slow.with(|list| list.push(entry));
            return Ok(());
        }
        if mutant("lost_waker") && matches!(entry, Entry::Waker(_)) {
            // Mutant: registers the waker without looking at the state, so a completion that already drained
            // the list never wakes it.
            let (_, mut slow) = self
                .lock_slow(0, |_| false)
                .unwrap_or_else(|_| unreachable!());
            slow.with(|list| list.push(entry));
            return Ok(());
        }
        let Ok((_, mut slow)) = self.lock_slow(WAITING, is_done) else {
            return Err(entry);
        };
        slow.with(|list| {
            if let Entry::Waker(waker) = &entry {
                list.retain(|e| !matches!(e, Entry::Waker(w) if w.will_wake(waker)));
            }
            list.push(entry);
        });
        Ok(())
    }

    /// Registers `entry` to be told when the notifier has finished running callbacks; hands it back if it already
    /// has (or never had to).
    pub(crate) fn register_settle(&self, entry: Entry<T>) -> Result<(), Entry<T>> {
        let Ok((_, mut slow)) = self.lock_slow(SETTLE_WAIT, |state| state & NOTIFYING == 0) else {
            return Err(entry);
        };
        slow.with(|list| list.push(entry));
        Ok(())
    }

    /// Removes `waiter`'s entries (a wait that timed out).
    pub(crate) fn unregister(&self, waiter: &Arc<Waiter>) {
        if let Ok((_, mut slow)) = self.lock_slow(0, |_| false) {
            slow.with(|list| {
                list.retain(|e| !matches!(e, Entry::Waiter(w, _) if Arc::ptr_eq(w, waiter)))
            });
        }
    }

    /// Drains the slow-path list.
    pub(super) fn drain(&self) -> Vec<Entry<T>> {
        match self.lock_slow(0, |_| false) {
            Ok((_, mut slow)) => slow.take(),
            Err(_) => Vec::new(),
        }
    }

    /// Reads the outcome of a finished future.
    pub(crate) fn read(&self) -> Result<&T, Error> {
        let state = self.load();
        match state & PHASE {
            CANCELLED => Err(Error::Cancelled),
            FINISHED if state & TAKEN == 0 => self.outcome.with(|slot| {
                // SAFETY: FINISHED was seen with Acquire, so the slot's write happened before; it is written again
                // only by `take_outcome`, which needs the only handle, and `&self` is borrowed from a handle.
                match unsafe { (*slot).assume_init_ref() } {
                    Ok(value) => Ok(value),
                    Err(error) => Err((**error).clone()),
                }
            }),
            FINISHED => Err(Error::InvalidState(
                "the result was moved out of the future".into(),
            )),
            _ => Err(Error::InvalidState("the future is not done".into())),
        }
    }

    /// Moves the outcome out of a finished future that has exactly `allowed` handles, all of which the caller
    /// knows are not reading it (a chained future's forwarding callback: the notifier's handle, which is running
    /// that callback). Without `allowed` handles it is `InvalidState`, and the outcome stays.
    pub(crate) fn take_forwarded(&self, allowed: usize) -> Result<T, Error> {
        let state = self.load();
        match state & PHASE {
            CANCELLED => return Err(Error::Cancelled),
            FINISHED if state & TAKEN == 0 && handles(state) == allowed => {}
            FINISHED if state & TAKEN == 0 => {
                return Err(Error::InvalidState(
                    "other handles share the result, so it cannot move".into(),
                ));
            }
            FINISHED => {
                return Err(Error::InvalidState(
                    "the result was moved out of the future".into(),
                ));
            }
            _ => return Err(Error::InvalidState("the future is not done".into())),
        }
        // ORDERING: Relaxed: no other handle reads the slot (see the doc comment).
        self.state.fetch_or(TAKEN, Ordering::Relaxed);
        self.outcome
            .with_mut(|slot| {
                // SAFETY: FINISHED without TAKEN was seen with Acquire; the only handles are the caller's, which do
                // not read the slot, and TAKEN is now set, so nothing reads or drops it again.
                unsafe { (*slot).assume_init_read() }
            })
            .map_err(|error| *error)
    }

    /// [`take_outcome`](Self::take_outcome) for a handle being consumed: also releases that handle, in the same
    /// read-modify-write that marks the value taken when it succeeds.
    pub(crate) fn take_outcome_consuming(&self) -> Result<T, Error> {
        let state = self.load();
        if state & PHASE == FINISHED && state & (TAKEN | NOTIFYING) == 0 && handles(state) == 1 {
            // ORDERING: Release, as in `drop_handle`; TAKEN is set in the same step (its bit is clear, so adding it
            // cannot carry into the handle count).
            self.state.fetch_sub(ONE_HANDLE - TAKEN, Ordering::Release);
            return self
                .outcome
                .with_mut(|slot| {
                    // SAFETY: as in `take_outcome`: FINISHED without TAKEN was seen with Acquire, NOTIFYING is clear
                    // and this was the only handle; TAKEN is now set, so nothing reads or drops the slot again.
                    unsafe { (*slot).assume_init_read() }
                })
                .map_err(|error| *error);
        }
        let outcome = self.take_outcome();
        self.drop_handle();
        outcome
    }

    /// Moves the outcome out of a finished future whose only handle is the caller's and whose callbacks have run.
    pub(crate) fn take_outcome(&self) -> Result<T, Error> {
        let state = self.load();
        match state & PHASE {
            CANCELLED => return Err(Error::Cancelled),
            FINISHED if state & TAKEN == 0 => {}
            FINISHED => {
                return Err(Error::InvalidState(
                    "the result was moved out of the future".into(),
                ));
            }
            _ => return Err(Error::InvalidState("the future is not done".into())),
        }
        if state & NOTIFYING != 0 || handles(state) != 1 {
            return Err(Error::InvalidState(format!(
                "moving the result out needs the only handle to the future, and {} others exist; \
                 use result() to borrow it instead",
                (handles(state) + usize::from(state & NOTIFYING != 0)).saturating_sub(1)
            )));
        }
        // ORDERING: Relaxed: only this, the only handle, reads or writes the slot from now on.
        self.state.fetch_or(TAKEN, Ordering::Relaxed);
        self.outcome
            .with_mut(|slot| {
                // SAFETY: FINISHED without TAKEN was seen with Acquire and NOTIFYING is clear, and this is the only
                // handle: every other handle's drop (Release) happened before, so no `&T` from `read` is alive, and the
                // completer no longer touches the slot. TAKEN is now set, so nothing reads or drops it again.
                unsafe { (*slot).assume_init_read() }
            })
            .map_err(|error| *error)
    }
}

impl<T> Drop for Core<T> {
    fn drop(&mut self) {
        let state = self.state.load(Ordering::Acquire);
        if state & PHASE == FINISHED && state & TAKEN == 0 {
            let outcome = self.outcome.with_mut(|slot| {
                // SAFETY: FINISHED without TAKEN means the slot is initialised; `&mut self` means no one else
                // can reach it, and the value is read out exactly once, here.
                unsafe { (*slot).assume_init_read() }
            });
            // The last handle may be dropped on a pool thread: a panicking `Drop` of the result must not unwind it.
            unwind::drop_quietly("a future's result", outcome);
        }
    }
}

/// Sets the outcome of `cell`'s future and notifies. Fails with `InvalidState` if it is already done.
pub(crate) fn complete<T: Send + Sync + 'static>(
    cell: &Arc<dyn Cell<T>>,
    outcome: Result<T, Error>,
) -> Result<(), Error> {
    complete_from(cell, outcome, true)
}

/// [`complete`], optionally refusing a future that is already running.
pub(crate) fn complete_from<T: Send + Sync + 'static>(
    cell: &Arc<dyn Cell<T>>,
    outcome: Result<T, Error>,
    from_running: bool,
) -> Result<(), Error> {
    if let Some(notification) = complete_with(cell, outcome, from_running, Nesting::RunHere)? {
        notification.run();
    }
    Ok(())
}

/// Sets the outcome of `cell`'s future and wakes its waiters, but leaves its done-callbacks to the caller: they
/// come back as a [`Notification`] to run on whatever thread the caller chooses (the process pool runs them off
/// the threads that deliver results, so a callback that blocks cannot stall delivery). `None` if there are no
/// callbacks to run. Fails with `InvalidState` if the future is already done (or, without `from_running`, running).
///
/// The callbacks stay parked on the future until the notification runs, and a thread that needs them to have run
/// (`into_result` on the future, `.await`, adding another callback) runs them itself if it gets there first.
pub(crate) fn complete_deferred<T: Send + Sync + 'static>(
    cell: &Arc<dyn Cell<T>>,
    outcome: Result<T, Error>,
    from_running: bool,
) -> Result<Option<Notification<T>>, Error> {
    complete_with(cell, outcome, from_running, Nesting::Park)
}

/// Completes `cell` and wakes its waiters; the callbacks come back as a notification made as `nesting` says.
pub(super) fn complete_with<T: Send + Sync + 'static>(
    cell: &Arc<dyn Cell<T>>,
    outcome: Result<T, Error>,
    from_running: bool,
    nesting: Nesting,
) -> Result<Option<Notification<T>>, Error> {
    let core = cell.core();
    let left = match core.claim_completion(from_running) {
        Ok(left) => left,
        Err(error) => {
            // A refused outcome is dropped here, maybe on a pool thread: its `Drop` must not unwind.
            unwind::drop_quietly("a refused result", outcome);
            return Err(error);
        }
    };
    if left & PHASE == PENDING && left & JOB != 0 {
        cell.discard_job();
    }
    let phase = if outcome.is_ok() {
        FINISHED
    } else {
        FINISHED | FAILED
    };
    core.outcome.with_mut(|slot| {
        // SAFETY: this thread holds the COMPLETING phase, which no other thread can leave or read the slot in.
        unsafe { *slot = MaybeUninit::new(outcome.map_err(Box::new)) }
    });
    if mutant("lost_wakeup") {
        // Mutant: looks for waiters before publishing, so one that registers in between is never woken.
        let waiting = core.state.load(Ordering::Acquire) & WAITING != 0;
        core.publish(phase);
        return Ok(if waiting {
            Notification::take(cell, nesting)
        } else {
            None
        });
    }
    let previous = core.publish(phase);
    if mutant("leak_cell") {
        // Mutant: leaks a reference to the cell.
        std::mem::forget(cell.clone());
    }
    if previous & WAITING == 0 {
        return Ok(None);
    }
    Ok(Notification::take(cell, nesting))
}

/// Cancels `cell`'s future if it is pending; `true` if it is (now or already) cancelled.
///
/// The waiters are woken and the callbacks run even if the job's `Drop` panics (the panic is logged).
pub(crate) fn cancel<T: Send + Sync + 'static>(cell: &Arc<dyn Cell<T>>) -> bool {
    let core = cell.core();
    let mut state = core.load();
    if mutant("cancel_race") && state & PHASE == PENDING {
        // Mutant: check-then-act instead of compare-and-swap, so a worker can start the task in between.
        core.state
            .store((state & !(PHASE | JOB)) | COMPLETING, Ordering::Release);
        if state & JOB != 0 {
            cell.discard_job();
        }
        if core.publish(CANCELLED) & WAITING != 0 {
            notify(cell);
        }
        return true;
    }
    loop {
        match state & PHASE {
            PENDING => {}
            CANCELLED => return true,
            _ => return false,
        }
        let mut next = (state & !(PHASE | JOB)) | CANCELLED;
        if state & WAITING != 0 {
            check_handle_overflow(state);
            next += NOTIFYING + ONE_HANDLE;
        }
        // ORDERING: AcqRel on success: Acquire so the job slot, written by the submitter, is ours to drop (no one
        // touches it once the phase is CANCELLED); Release pairs with readers of the phase, as in `publish`.
        match core
            .state
            .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => break,
            Err(actual) => state = actual,
        }
    }
    if state & JOB != 0 {
        cell.discard_job();
    }
    if state & WAITING != 0 {
        notify(cell);
    }
    true
}

/// Runs the slow path after a final phase was published with `NOTIFYING` set: wakes waiters, runs callbacks in
/// the order they were added, then clears `NOTIFYING` and tells whoever waits for that.
fn notify<T: Send + Sync + 'static>(cell: &Arc<dyn Cell<T>>) {
    if let Some(notification) = Notification::take(cell, Nesting::RunHere) {
        notification.run();
    }
}

#[cfg(all(test, not(miri), not(concurrent_futures_loom)))]
mod tests {
    use super::*;

    /// The child side of `handle_overflow_aborts`: clones a handle of a future whose count is at the limit.
    #[test]
    #[ignore = "run by handle_overflow_aborts in a child process"]
    fn handle_overflow_child() {
        let future: Future<u8> = Future {
            cell: Arc::new(Core::new(FINISHED, MAX_HANDLES, Some(Ok(1)))),
        };
        let clone = future.clone();
        // Not reached: the clone above aborts. Forget both, so the test cannot pass by unwinding either.
        std::mem::forget((future, clone));
    }

    /// Counting one handle past the limit aborts the process (as `Arc` does) instead of wrapping the count. On 32-bit
    /// targets the limit is about a million handles; the future is made at the limit here, so this runs anywhere.
    #[test]
    fn handle_overflow_aborts() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "future::core::tests::handle_overflow_child",
                "--ignored",
                "--test-threads=1",
            ])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{output:?}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(output.status.signal(), Some(6), "SIGABRT: {output:?}");
        }
    }

    /// Below the limit, a clone counts normally.
    #[test]
    fn handle_count_below_the_limit() {
        let future: Future<u8> = Future {
            cell: Arc::new(Core::new(FINISHED, MAX_HANDLES - 1, Some(Ok(1)))),
        };
        let clone = future.clone();
        assert_eq!(handles(future.core().load()), MAX_HANDLES);
        // The counted handles are fictitious: leak the cell rather than run its drop checks.
        std::mem::forget((future, clone));
    }
}
