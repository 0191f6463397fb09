//! Ported from CPython's `Lib/test/test_concurrent_futures/test_wait.py` and `test_as_completed.py`: each test
//! names the case it mirrors. Long-running tasks block on latches instead of sleeping.

mod common;

use std::time::Duration;

use common::{Latch, blocked};
use concurrent_futures::{Error, Future, ReturnWhen, ThreadPoolExecutor, as_completed, wait};

fn cancelled() -> Future<i32> {
    let f = Future::new();
    f.cancel();
    f
}

fn exception() -> Future<i32> {
    Future::failed(Error::Panicked {
        message: "OSError".into(),
    })
}

fn successful() -> Future<i32> {
    Future::ready(42)
}

fn ids(futures: &[&Future<i32>]) -> Vec<usize> {
    futures
        .iter()
        .map(|f| *f as *const Future<i32> as usize)
        .collect()
}

/// test_20369: a future passed twice is reported once.
#[test]
fn duplicate_futures_reported_once() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let future = pool.submit(|| 1 + 2).unwrap();
    let (done, not_done) = wait([&future, &future], None, ReturnWhen::AllCompleted);
    assert_eq!(done.len(), 1);
    assert!(not_done.is_empty());
    // The same with two handles of one future.
    let (done, _) = wait([future.clone(), future], None, ReturnWhen::AllCompleted);
    assert_eq!(done.len(), 1);
}

/// test_first_completed
#[test]
fn first_completed() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let latch = Latch::new();
    let future1 = pool.submit(|| 21 * 2).unwrap();
    let future2 = blocked(&pool, &latch, 0);
    let (done, not_done) = wait([&future1, &future2], None, ReturnWhen::FirstCompleted);
    assert_eq!(ids(&done), ids(&[&future1]));
    assert_eq!(ids(&not_done), ids(&[&future2]));
    latch.open();
}

/// test_first_completed_some_already_completed
#[test]
fn first_completed_some_already_completed() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = Latch::new();
    let future1 = blocked(&pool, &latch, 0);
    let (c, s) = (cancelled(), successful());
    let (done, not_done) = wait([&c, &s, &future1], None, ReturnWhen::FirstCompleted);
    assert_eq!(ids(&done), ids(&[&c, &s]));
    assert_eq!(ids(&not_done), ids(&[&future1]));
    latch.open();
}

/// test_first_exception
#[test]
fn first_exception() {
    let pool = ThreadPoolExecutor::new(3).unwrap();
    let latch = Latch::new();
    let future1 = pool.submit(|| 2 * 21).unwrap();
    let future2 = pool
        .submit(|| -> i32 { panic!("sleep_and_raise") })
        .unwrap();
    let future3 = blocked(&pool, &latch, 0);
    let (done, not_done) = wait(
        [&future1, &future2, &future3],
        None,
        ReturnWhen::FirstException,
    );
    assert_eq!(ids(&not_done), ids(&[&future3]));
    assert!(done.iter().any(|f| std::ptr::eq(*f, &future2)));
    latch.open();
}

/// test_first_exception_some_already_complete
#[test]
fn first_exception_some_already_complete() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let latch = Latch::new();
    let future1 = pool.submit(|| -> i32 { panic!("divmod by zero") }).unwrap();
    let future2 = blocked(&pool, &latch, 0);
    let (s, c) = (successful(), cancelled());
    let (done, not_done) = wait(
        [&s, &c, &future1, &future2],
        None,
        ReturnWhen::FirstException,
    );
    assert_eq!(ids(&done), ids(&[&s, &c, &future1]));
    assert_eq!(ids(&not_done), ids(&[&future2]));
    latch.open();
}

/// test_first_exception_one_already_failed
#[test]
fn first_exception_one_already_failed() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = Latch::new();
    let future1 = blocked(&pool, &latch, 0);
    let e = exception();
    let (done, not_done) = wait([&e, &future1], None, ReturnWhen::FirstException);
    assert_eq!(ids(&done), ids(&[&e]));
    assert_eq!(ids(&not_done), ids(&[&future1]));
    latch.open();
}

/// FIRST_EXCEPTION does not count a cancelled future as an exception and acts as ALL_COMPLETED when none fail.
#[test]
fn first_exception_without_exception_waits_for_all() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let futures: Vec<_> = (0..10).map(|i| pool.submit(move || i).unwrap()).collect();
    let c = cancelled();
    let all: Vec<&Future<i32>> = futures.iter().chain([&c]).collect();
    let (done, not_done) = wait(all, None, ReturnWhen::FirstException);
    assert_eq!(done.len(), 11);
    assert!(not_done.is_empty());
}

/// test_all_completed
#[test]
fn all_completed() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let future1 = pool.submit(|| -> i32 { panic!("divmod") }).unwrap();
    let future2 = pool.submit(|| 2 * 21).unwrap();
    let (s, c, e) = (successful(), cancelled(), exception());
    let (done, not_done) = wait(
        [&s, &c, &e, &future1, &future2],
        None,
        ReturnWhen::AllCompleted,
    );
    assert_eq!(done.len(), 5);
    assert!(not_done.is_empty());
}

/// test_timeout: a timeout is not an error; the unfinished futures are in not_done.
#[test]
fn timeout_returns_not_done() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = Latch::new();
    let future = blocked(&pool, &latch, 0);
    let (s, c, e) = (successful(), cancelled(), exception());
    let (done, not_done) = wait(
        [&s, &c, &e, &future],
        Some(Duration::from_millis(100)),
        ReturnWhen::AllCompleted,
    );
    assert_eq!(ids(&done), ids(&[&s, &c, &e]));
    assert_eq!(ids(&not_done), ids(&[&future]));
    latch.open();
    assert_eq!(future.result(), Ok(&0));
}

/// test_pending_calls_race: many futures completing while the waiter installs itself.
#[test]
fn pending_calls_race() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    for _ in 0..if cfg!(miri) { 2 } else { 50 } {
        let futures: Vec<_> = (0..100).map(|i| pool.submit(move || i).unwrap()).collect();
        let (done, not_done) = wait(&futures, None, ReturnWhen::AllCompleted);
        assert_eq!(done.len(), 100);
        assert!(not_done.is_empty());
    }
}

/// test_as_completed.py test_no_timeout
#[test]
fn as_completed_no_timeout() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let future1 = pool.submit(|| 2 * 21).unwrap();
    let future2 = pool.submit(|| 7 * 6).unwrap();
    let (c, e, s) = (cancelled(), exception(), successful());
    let yielded: Vec<&Future<i32>> = as_completed([&c, &e, &s, &future1, &future2], None)
        .collect::<Result<_, _>>()
        .unwrap();
    let mut got = ids(&yielded);
    got.sort();
    let mut want = ids(&[&c, &e, &s, &future1, &future2]);
    want.sort();
    assert_eq!(got, want);
}

/// test_as_completed.py test_future_times_out: finished ones first, then a timeout error naming the count.
#[test]
fn as_completed_future_times_out() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = Latch::new();
    let future = blocked(&pool, &latch, 0);
    let (c, e, s) = (cancelled(), exception(), successful());
    let mut it = as_completed([&c, &e, &s, &future], Some(Duration::from_millis(100)));
    let mut finished = Vec::new();
    let error = loop {
        match it.next() {
            Some(Ok(f)) => finished.push(f),
            Some(Err(error)) => break error,
            None => panic!("as_completed ended without a timeout"),
        }
    };
    assert_eq!(ids(&finished), ids(&[&c, &e, &s]));
    assert_eq!(
        error,
        Error::Timeout {
            unfinished: 1,
            total: 4
        }
    );
    assert!(it.next().is_none());
    latch.open();
}

/// test_as_completed.py test_duplicate_futures
#[test]
fn as_completed_duplicate_futures() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let latch = Latch::new();
    let future1 = blocked(&pool, &latch, 1);
    latch.open();
    let completed: Vec<_> = as_completed([&future1, &future1, &future1], None).collect();
    assert_eq!(completed.len(), 1);
}

/// test_as_completed.py test_correct_timeout_exception_msg
#[test]
fn as_completed_timeout_message() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = Latch::new();
    let blockers: Vec<_> = (0..2).map(|_| blocked(&pool, &latch, 0)).collect();
    let (c, s) = (cancelled(), successful());
    let all = [&c, &s, &blockers[0], &blockers[1]];
    let error = as_completed(all, Some(Duration::from_millis(50)))
        .find_map(Result::err)
        .unwrap();
    assert_eq!(error.to_string(), "2 (of 4) futures unfinished");
    latch.open();
}

/// as_completed yields each future as it finishes: the one released first comes first.
#[test]
fn as_completed_yields_in_completion_order() {
    let pool = ThreadPoolExecutor::new(3).unwrap();
    let latches: Vec<Latch> = (0..3).map(|_| Latch::new()).collect();
    let futures: Vec<_> = latches
        .iter()
        .enumerate()
        .map(|(i, l)| blocked(&pool, l, i))
        .collect();
    let mut it = as_completed(&futures, None);
    for i in [2, 0, 1] {
        latches[i].open();
        let f = it.next().unwrap().unwrap();
        assert_eq!(f.result(), Ok(&i));
    }
    assert!(it.next().is_none());
}

/// Dropping an unfinished as_completed iterator unregisters it (the futures still complete and can be waited).
#[test]
fn as_completed_dropped_early() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = Latch::new();
    let f = blocked(&pool, &latch, 5);
    let it = as_completed([&f], Some(Duration::from_millis(1)));
    drop(it);
    latch.open();
    assert_eq!(f.result(), Ok(&5));
}
