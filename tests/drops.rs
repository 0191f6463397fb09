//! Every value a future holds is dropped exactly once, on every path: the outcome (read, moved out, never read)
//! and the task's closure (run, cancelled, refused by a shut-down pool). The cells keep both in uninitialised
//! slots whose presence the state word tracks, so these paths are checked here.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::hold_worker;
use concurrent_futures::{Error, Future, ThreadPoolExecutor};

/// Counts its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

#[test]
fn outcome_read_then_dropped_once() {
    let drops = counter();
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let d = drops.clone();
    let future = pool.submit(move || Tracked(d)).unwrap();
    assert!(future.result().is_ok());
    let clone = future.clone();
    drop(future);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "a handle is still alive");
    drop(clone);
    pool.shutdown(true);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn outcome_moved_out_is_not_dropped_by_the_cell() {
    let drops = counter();
    let future = Future::ready(Tracked(drops.clone()));
    let value = future.into_result().unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(value);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn outcome_never_read_is_dropped_once() {
    let drops = counter();
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let d = drops.clone();
    drop(pool.submit(move || Tracked(d)).unwrap());
    pool.shutdown(true);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn error_outcome_and_set_result_values() {
    let drops = counter();
    let future = Future::new();
    future.set_result(Tracked(drops.clone())).unwrap();
    // A second set_result is refused and its value dropped at once.
    assert!(matches!(
        future.set_result(Tracked(drops.clone())),
        Err(Error::InvalidState(_))
    ));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(future);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn closure_dropped_once_when_run_cancelled_or_refused() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (busy, latch) = hold_worker(&pool);

    // Queued behind the busy task, then cancelled by shutdown: dropped once, never run.
    let ran = counter();
    let r = ran.clone();
    let captured = Tracked(ran.clone());
    let run = pool
        .submit(move || {
            let _keep = &captured;
            r.load(Ordering::SeqCst)
        })
        .unwrap();

    // Cancelled while queued: dropped by cancel, never run.
    let cancelled = counter();
    let captured = Tracked(cancelled.clone());
    let queued = pool.submit(move || drop(captured)).unwrap();
    assert!(queued.cancel());
    assert_eq!(cancelled.load(Ordering::SeqCst), 1);

    // Cancelled by shutdown(cancel_futures): dropped once.
    let by_shutdown = counter();
    let captured = Tracked(by_shutdown.clone());
    let queued2 = pool.submit(move || drop(captured)).unwrap();

    // Cancel what is queued while the worker is still held, then let it finish.
    pool.shutdown_with(false, true);
    latch.open();
    pool.shutdown(true);
    busy.result().unwrap();
    assert!(run.cancelled());
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the cancelled closure was dropped once"
    );
    assert!(queued2.cancelled());
    assert_eq!(by_shutdown.load(Ordering::SeqCst), 1);

    // Refused by the shut-down pool: dropped once, never run.
    let refused = counter();
    let captured = Tracked(refused.clone());
    assert_eq!(
        pool.submit(move || drop(captured)).unwrap_err(),
        Error::Shutdown
    );
    assert_eq!(refused.load(Ordering::SeqCst), 1);
}

#[test]
fn producer_started_pool_future_still_drops_its_closure() {
    // An executor-style `set_running_or_notify_cancel` on a pool future leaves the closure in the cell; the
    // worker then refuses to run it, and the cell drops it once.
    let drops = counter();
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (busy, latch) = hold_worker(&pool);
    let captured = Tracked(drops.clone());
    let future = pool.submit(move || drop(captured)).unwrap();
    assert_eq!(future.set_running_or_notify_cancel(), Ok(true));
    future.set_result(()).unwrap();
    latch.open();
    busy.result().unwrap();
    pool.shutdown(true);
    drop(future);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// Panics when dropped (after counting the drop).
struct PanicsOnDrop(Arc<AtomicUsize>);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("drop panicked");
    }
}

/// Issue 11.2: a result whose `Drop` panics, dropped by the worker (no handle left), must not kill the worker:
/// the panic is logged, later tasks run on the same thread, and `shutdown(true)` returns.
#[test]
fn a_result_whose_drop_panics_does_not_kill_the_worker() {
    common::logged();
    let drops = counter();
    // If the worker died, dropping the pool would wait for it forever: drop it only once the test passed.
    let pool = std::mem::ManuallyDrop::new(ThreadPoolExecutor::new(1).unwrap());
    let (busy, latch) = hold_worker(&pool);
    let d = drops.clone();
    // Dropped before it runs, so the worker holds the last reference and drops the result itself.
    drop(pool.submit(move || PanicsOnDrop(d)).unwrap());
    latch.open();
    busy.result().unwrap();
    let later = pool.submit(|| 7).unwrap();
    assert_eq!(
        later.result_timeout(common::PATIENCE),
        Ok(&7),
        "the worker died with the result's drop"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(pool.workers(), 1);
    assert!(
        common::logged()
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("drop panicked"))
    );
    pool.shutdown(true);
    drop(std::mem::ManuallyDrop::into_inner(pool));
}

/// Issue 11.2: the same for a closure whose `Drop` panics when its pool breaks (the worker whose initializer failed
/// fails the queued tasks) and for a refused result.
#[test]
fn a_closure_whose_drop_panics_does_not_stop_the_pool_breaking() {
    let drops = counter();
    let started = common::Latch::new();
    let go = common::Latch::new();
    let (s, g) = (started.clone(), go.clone());
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(move || {
            s.open();
            g.wait();
            Err("no".into())
        })
        .build()
        .unwrap();
    let d = drops.clone();
    let captured = PanicsOnDrop(d);
    let doomed = pool
        .submit(move || {
            let _keep = &captured;
        })
        .unwrap();
    let after = pool.submit(|| 1).unwrap();
    started.wait();
    go.open();
    assert!(matches!(
        doomed.result_timeout(common::PATIENCE),
        Err(Error::Broken { .. })
    ));
    assert!(matches!(after.result(), Err(Error::Broken { .. })));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// Issue 11.6: cancelling a queued task whose closure's `Drop` panics still wakes its waiters and runs its
/// callbacks; the panic is logged and `cancel` returns normally.
#[test]
fn cancel_wakes_waiters_even_if_the_closure_drop_panics() {
    common::logged();
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (busy, latch) = hold_worker(&pool);
    let drops = counter();
    let captured = PanicsOnDrop(drops.clone());
    let queued = pool
        .submit(move || {
            let _keep = &captured;
        })
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    queued.add_done_callback(move |f| tx.send(f.cancelled()).unwrap());
    let waiter = {
        let queued = queued.clone();
        std::thread::spawn(move || queued.result_timeout(common::PATIENCE).cloned())
    };
    let cancelled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| queued.cancel()));
    assert_eq!(cancelled.ok(), Some(true), "cancel panicked");
    assert_eq!(rx.recv_timeout(common::PATIENCE), Ok(true));
    assert_eq!(waiter.join().unwrap(), Err(Error::Cancelled));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    latch.open();
    busy.result().unwrap();
}
