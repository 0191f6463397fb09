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
