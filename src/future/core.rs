//! The future's shared cell: one atomic state word, the outcome slot, and the slow path (callbacks, waiters).
//!
//! # The state word
//! Bits 0-2 hold the phase (`PENDING`, `RUNNING`, `COMPLETING`, `FINISHED`, `CANCELLED`); `WAITING` says the
//! slow-path list may hold entries; `NOTIFYING` says the completer is still running callbacks and holds a handle
//! of its own; `SETTLE_WAIT` says someone waits for `NOTIFYING` to clear; `FAILED` says the outcome is an error;
//! `TAKEN` says the outcome was moved out; `JOB` says a task cell still holds its closure; `LOCKED` is the
//! slow-path lock. On 64-bit targets the next 16 bits hold the tag of the pool a task belongs to (0 for
//! futures made by hand), so a worker of that pool can recognise the task and run it itself while it waits for
//! it. The bits from `ONE_HANDLE` up count the user-visible [`Future`] handles.
//!
//! Keeping all of this in one word keeps a pending no-op task to one 48-byte allocation: no separate mutex,
//! and the outcome and job slots carry no discriminants of their own.
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

use std::mem::{ManuallyDrop, MaybeUninit};
use std::task::Waker;

use super::Future;
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
const JOB: usize = 1 << 8;
const LOCKED: usize = 1 << 9;
const TAG_SHIFT: u32 = 10;
/// Pool tags need 16 bits, which only 64-bit state words have room for; elsewhere tasks carry no tag.
const TAG_BITS: u32 = if usize::BITS >= 64 { 16 } else { 0 };
const TAG_MASK: usize = ((1 << TAG_BITS) - 1) << TAG_SHIFT;
pub(crate) const ONE_HANDLE: usize = 1 << (TAG_SHIFT + TAG_BITS);

/// A pool's tag from a number: nonzero and within `TAG_BITS` (0 where there are no tag bits).
pub(crate) fn pool_tag(number: usize) -> usize {
    if TAG_BITS == 0 {
        0
    } else {
        number % ((1 << TAG_BITS) - 1) + 1
    }
}

/// Whether a future in `state` is a task of the pool tagged `tag` that has not started.
pub(crate) fn claimable(state: usize, tag: usize) -> bool {
    tag != 0 && state & PHASE == PENDING && (state & TAG_MASK) >> TAG_SHIFT == tag
}

/// Whether a state word is in a final phase.
pub(crate) fn is_done(state: usize) -> bool {
    matches!(state & PHASE, FINISHED | CANCELLED)
}

/// How many user handles a state word counts.
pub(crate) fn handles(state: usize) -> usize {
    state / ONE_HANDLE
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

/// The outcome as stored: errors are boxed, so the slot of a `Future<()>` is one pointer.
type Outcome<T> = Result<T, Box<Error>>;

/// The state every future has, whatever produces its outcome.
pub(crate) struct Core<T> {
    state: AtomicUsize,
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
    /// read-modify-write that moved the future out of `PENDING`, so it has the job slot to itself.
    fn discard_job(&self) {}

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
struct SlowGuard<'a, T> {
    core: &'a Core<T>,
}

impl<T> SlowGuard<'_, T> {
    fn with<R>(&mut self, f: impl FnOnce(&mut Vec<Entry<T>>) -> R) -> R {
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
        self.state.fetch_add(ONE_HANDLE, Ordering::Relaxed);
    }

    pub(crate) fn drop_handle(&self) {
        // ORDERING: Release, so that every use of the outcome through this handle happens before a later
        // `take_outcome` that sees the count drop (it loads with Acquire).
        self.state.fetch_sub(ONE_HANDLE, Ordering::Release);
    }

    /// Takes the slow-path lock, also setting `extra` bits, unless `give_up(state)` says otherwise first (then
    /// returns that state without locking).
    fn lock_slow(
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
    /// With `take_job`, also clears `JOB`: the caller then owns the job slot.
    fn start(&self, take_job: bool) -> Result<bool, Error> {
        let mut state = self.load();
        if mutant("start_race") && state & PHASE == PENDING {
            // Mutant: check-then-act instead of compare-and-swap, so a cancel can win in between.
            let next = (state & !(PHASE | if take_job { JOB } else { 0 })) | RUNNING;
            self.state.store(next, Ordering::Release);
            return Ok(true);
        }
        loop {
            match state & PHASE {
                PENDING => {}
                CANCELLED => return Ok(false),
                RUNNING | COMPLETING => {
                    return Err(Error::InvalidState("the future is already running".into()));
                }
                _ => return Err(Error::InvalidState("the future is already finished".into())),
            }
            let next = (state & !(PHASE | if take_job { JOB } else { 0 })) | RUNNING;
            // ORDERING: Acquire on success: the job's captured state was published by the submitter through the
            // queue; nothing is published by this transition itself.
            match self.state.compare_exchange_weak(
                state,
                next,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(true),
                Err(actual) => state = actual,
            }
        }
    }

    /// Python's `set_running_or_notify_cancel`, for executors driving the producer side.
    pub(crate) fn try_start(&self) -> Result<bool, Error> {
        self.start(false)
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
    fn drain(&self) -> Vec<Entry<T>> {
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
                handles(state).saturating_sub(1)
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
            self.outcome.with_mut(|slot| {
                // SAFETY: FINISHED without TAKEN means the slot is initialised; `&mut self` means no one else
                // can reach it.
                unsafe { (*slot).assume_init_drop() }
            });
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
    if let Some(notification) = complete_deferred(cell, outcome, from_running)? {
        notification.run();
    }
    Ok(())
}

/// Sets the outcome of `cell`'s future and wakes its waiters, but leaves its done-callbacks to the caller: they
/// come back as a [`Notification`] to run on whatever thread the caller chooses (the process pool runs them off
/// the threads that deliver results, so a callback that blocks cannot stall delivery). `None` if there are no
/// callbacks to run. Fails with `InvalidState` if the future is already done (or, without `from_running`, running).
pub(crate) fn complete_deferred<T: Send + Sync + 'static>(
    cell: &Arc<dyn Cell<T>>,
    outcome: Result<T, Error>,
    from_running: bool,
) -> Result<Option<Notification<T>>, Error> {
    let core = cell.core();
    let left = core.claim_completion(from_running)?;
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
        return Ok(waiting.then(|| Notification::take(cell)));
    }
    let previous = core.publish(phase);
    if mutant("leak_cell") {
        // Mutant: leaks a reference to the cell.
        std::mem::forget(cell.clone());
    }
    if previous & WAITING == 0 {
        return Ok(None);
    }
    let notification = Notification::take(cell);
    if notification.callbacks.is_empty() {
        notification.run();
        return Ok(None);
    }
    Ok(Some(notification))
}

/// Cancels `cell`'s future if it is pending; `true` if it is (now or already) cancelled.
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
    Notification::take(cell).run();
}

/// The second half of notifying a finished (or cancelled) future: its done-callbacks, taken off the slow path
/// after its waiters were woken. Until it runs, the future stays `NOTIFYING` (so `into_result` waits for it);
/// dropping it runs it, so the callbacks run exactly once whatever happens to it.
pub(crate) struct Notification<T: Send + Sync + 'static> {
    cell: Arc<dyn Cell<T>>,
    callbacks: Vec<Callback<T>>,
    done: bool,
}

impl<T: Send + Sync + 'static> Notification<T> {
    /// Drains the slow path of a future published with `NOTIFYING` set: wakes its waiters and wakers now and
    /// keeps its callbacks for [`run`](Self::run).
    fn take(cell: &Arc<dyn Cell<T>>) -> Self {
        let entries = cell.core().drain();
        let mut callbacks = Vec::new();
        for entry in entries {
            match entry {
                Entry::Waiter(waiter, token) => waiter.notify(token),
                Entry::Waker(waker) => waker.wake(),
                Entry::Callback(callback) => callbacks.push(callback),
            }
        }
        Notification {
            cell: cell.clone(),
            callbacks,
            done: false,
        }
    }

    /// Runs the callbacks in the order they were added, with the handle `publish` counted for them, then clears
    /// `NOTIFYING` and wakes whoever waits for that.
    pub(crate) fn run(mut self) {
        self.run_once();
    }

    fn run_once(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let cell = &self.cell;
        let core = cell.core();
        let callbacks = std::mem::take(&mut self.callbacks);
        if !callbacks.is_empty() {
            // `publish` already counted this handle.
            let handle = Future { cell: cell.clone() };
            for callback in callbacks {
                unwind::run_callback("a done callback", || callback(&handle));
            }
            drop(handle);
        } else {
            core.drop_handle();
        }
        // ORDERING: AcqRel: Release so that the callbacks' reads of the outcome and the handle's drop happen
        // before a `take_outcome` that sees NOTIFYING clear; Acquire pairs with `register_settle`.
        let previous = core
            .state
            .fetch_and(!(NOTIFYING | SETTLE_WAIT), Ordering::AcqRel);
        if previous & SETTLE_WAIT != 0 {
            let entries = core.drain();
            for entry in entries {
                match entry {
                    Entry::Waiter(waiter, token) => waiter.notify(token),
                    Entry::Waker(waker) => waker.wake(),
                    // A callback added after the future was done ran at once; none can be here.
                    Entry::Callback(callback) => {
                        let handle = Future::from_cell(cell.clone());
                        unwind::run_callback("a done callback", || callback(&handle));
                    }
                }
            }
        }
    }
}

impl<T: Send + Sync + 'static> Drop for Notification<T> {
    fn drop(&mut self) {
        self.run_once();
    }
}

/// A job in a pool's queue: the task cell, type-erased.
pub(crate) trait Runnable: Send + Sync {
    /// Runs the job if its future is still pending, and completes the future; `true` if it ran. `body_done` is
    /// called after the job's closure returned and before its outcome is published (a worker uses it to count
    /// itself idle before anyone can see the task finished); it is not called for a job that does not run.
    fn run(self: Arc<Self>, body_done: &dyn Fn()) -> bool;
    /// Cancels the job's future if it has not started.
    fn cancel(self: Arc<Self>);
    /// Fails the job's future with `error` if it has not started.
    fn fail(self: Arc<Self>, error: Error);
}

/// A thread-pool task: the future's core and the closure that computes its value, in one allocation.
pub(crate) struct Task<T, F> {
    core: Core<T>,
    /// Initialised iff the state's `JOB` bit is set.
    job: UnsafeCell<ManuallyDrop<F>>,
}

// SAFETY: the job slot is touched only by the one thread that cleared `JOB` (the worker that starts it, or the
// canceller / completer that discards it), or by `drop`, so `F: Send` suffices.
unsafe impl<T: Send + Sync, F: Send> Sync for Task<T, F> {}

impl<T, F> Task<T, F>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    /// A pending task of the pool tagged `tag`, and the first handle to its future.
    pub(crate) fn new_pair(job: F, tag: usize) -> (Arc<dyn Runnable>, Future<T>) {
        let task = Arc::new(Task {
            core: Core::new(PENDING | JOB | ((tag << TAG_SHIFT) & TAG_MASK), 1, None),
            job: UnsafeCell::new(ManuallyDrop::new(job)),
        });
        let cell: Arc<dyn Cell<T>> = task.clone();
        (task, Future { cell })
    }
}

impl<T, F> Drop for Task<T, F> {
    fn drop(&mut self) {
        if self.core.state.load(Ordering::Acquire) & JOB != 0 {
            self.job.with_mut(|slot| {
                // SAFETY: JOB set means the closure was never taken; `&mut self` means no one else can reach it.
                unsafe { ManuallyDrop::drop(&mut *slot) }
            });
        }
    }
}

impl<T, F> Cell<T> for Task<T, F>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    fn core(&self) -> &Core<T> {
        &self.core
    }

    fn discard_job(&self) {
        let job = self.job.with_mut(|slot| {
            // SAFETY: see `Cell::discard_job`: the caller cleared JOB, so it alone owns the initialised slot.
            unsafe { ManuallyDrop::take(&mut *slot) }
        });
        drop(job);
    }

    fn run_here(self: Arc<Self>) -> bool {
        self.execute(&|| {})
    }
}

impl<T, F> Task<T, F>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    /// Starts the task if it is still pending (taking its job), runs it, and completes its future; `false` if
    /// it was already started, cancelled or finished elsewhere.
    fn execute(self: Arc<Self>, body_done: &dyn Fn()) -> bool {
        if self.core.start(true) != Ok(true) {
            return false;
        }
        let job = self.job.with_mut(|slot| {
            // SAFETY: this thread moved the future from PENDING to RUNNING and cleared JOB in that same step, so
            // it alone owns the initialised slot.
            unsafe { ManuallyDrop::take(&mut *slot) }
        });
        let outcome = unwind::run_task(job);
        body_done();
        let cell: Arc<dyn Cell<T>> = self;
        // Fails only if someone set the result from outside while it ran; theirs stands, as in Python.
        let _ = complete(&cell, outcome);
        true
    }
}

impl<T, F> Runnable for Task<T, F>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    fn run(self: Arc<Self>, body_done: &dyn Fn()) -> bool {
        self.execute(body_done)
    }

    fn cancel(self: Arc<Self>) {
        let cell: Arc<dyn Cell<T>> = self;
        cancel(&cell);
    }

    fn fail(self: Arc<Self>, error: Error) {
        let cell: Arc<dyn Cell<T>> = self;
        // Fails only if the task already started or was cancelled; then its own outcome stands.
        let _ = complete_from(&cell, Err(error), false);
    }
}
