//! Chained futures: `map`, `and_then`, `Future::ready` and `Future::failed`, with values, panics and
//! cancellation propagating. Built from callbacks: creating a chain on a pending future never blocks.

use concurrent_futures::{Error, Future, ThreadPoolExecutor};

#[test]
fn map_propagates_value() {
    let source = Future::new();
    let doubled = source.map(|v: &u32| v * 2);
    assert!(!doubled.done(), "building the chain does not wait");
    source.set_result(21).unwrap();
    assert_eq!(doubled.into_result(), Ok(42));
}

#[test]
fn map_on_a_done_future_runs_at_once() {
    let mapped = Future::ready(String::from("abc")).map(|s| s.to_uppercase());
    assert!(mapped.done());
    assert_eq!(mapped.into_result(), Ok(String::from("ABC")));
}

#[test]
fn map_propagates_errors_and_panics() {
    let failed: Future<u8> = Future::failed(Error::Shutdown);
    assert_eq!(failed.map(|v| v + 1).into_result(), Err(Error::Shutdown));

    let pool = ThreadPoolExecutor::new(1).unwrap();
    let source = pool.submit(|| -> u8 { panic!("source panicked") }).unwrap();
    assert!(
        matches!(source.map(|v| v + 1).into_result(), Err(Error::Panicked { message }) if message == "source panicked")
    );

    let mapped = Future::ready(1u8).map(|_| -> u8 { panic!("mapper panicked") });
    assert!(
        matches!(mapped.into_result(), Err(Error::Panicked { message }) if message == "mapper panicked")
    );
}

#[test]
fn map_propagates_cancellation() {
    let source: Future<u8> = Future::new();
    let mapped = source.map(|v| v + 1);
    let twice = mapped.map(|v| v * 2);
    assert!(source.cancel());
    assert!(mapped.cancelled());
    assert!(twice.cancelled());
    assert_eq!(twice.into_result(), Err(Error::Cancelled));
}

#[test]
fn cancelling_the_mapped_future_leaves_the_source() {
    let source = Future::new();
    let mapped = source.map(|v: &u8| v + 1);
    assert!(mapped.cancel());
    source.set_result(1).unwrap();
    assert_eq!(source.result(), Ok(&1));
    assert!(mapped.cancelled());
}

#[test]
fn and_then_chains_pool_work() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (p1, p2) = (pool.clone(), pool.clone());
    let result = pool
        .submit(|| 3u64)
        .unwrap()
        .and_then(move |&x| p1.submit(move || x * 10))
        .and_then(move |&x| p2.submit(move || x + 1));
    assert_eq!(result.into_result(), Ok(31));
}

#[test]
fn and_then_propagates_errors_from_each_step() {
    // The source fails.
    let failed: Future<u8> = Future::failed(Error::Shutdown);
    assert_eq!(
        failed.and_then(|&v| Ok(Future::ready(v))).into_result(),
        Err(Error::Shutdown)
    );
    // The step returns an error (a refused submit).
    let pool = ThreadPoolExecutor::new(1).unwrap();
    pool.shutdown(true);
    let p = pool.clone();
    let chained = Future::ready(1u8).and_then(move |&v| p.submit(move || v));
    assert_eq!(chained.into_result(), Err(Error::Shutdown));
    // The step panics.
    let chained =
        Future::ready(1u8).and_then(|_| -> Result<Future<u8>, Error> { panic!("step panicked") });
    assert!(
        matches!(chained.into_result(), Err(Error::Panicked { message }) if message == "step panicked")
    );
    // The inner future fails.
    let chained = Future::ready(1u8).and_then(|_| Ok(Future::<u8>::failed(Error::Full)));
    assert_eq!(chained.into_result(), Err(Error::Full));
}

#[test]
fn and_then_propagates_cancellation_of_either_future() {
    let source: Future<u8> = Future::new();
    let chained = source.and_then(|&v| Ok(Future::ready(v)));
    source.cancel();
    assert!(chained.cancelled());

    let inner: Future<u8> = Future::new();
    let keep = inner.clone();
    let chained = Future::ready(()).and_then(move |_| Ok(inner));
    assert!(!chained.done());
    keep.cancel();
    assert!(chained.cancelled());
}

#[test]
fn and_then_with_a_pending_inner_future_completes_later() {
    let inner = Future::new();
    let producer = inner.clone();
    let chained = Future::ready(2u32).and_then(move |_| Ok(inner));
    assert!(!chained.done());
    // The inner future's only other handle is the producer's, dropped right after completing it.
    std::thread::spawn(move || {
        producer.set_result(String::from("late")).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(chained.into_result(), Ok(String::from("late")));
}

/// How many links the long-chain tests build: far past what a per-link recursion survives (about 1,000 links in a
/// debug build, 10,000 in release, on a 2 MiB thread stack).
const LINKS: usize = if cfg!(miri) { 40 } else { 100_000 };

/// Issue 11.5: completing a long `map` chain does not recurse once per link.
#[test]
fn a_long_map_chain_completes_without_overflowing_the_stack() {
    let source = Future::new();
    let mut last = source.map(|v: &u64| v + 1);
    for _ in 1..LINKS {
        last = last.map(|v| v + 1);
    }
    source.set_result(0).unwrap();
    // The whole chain ran before set_result returned (the callbacks ran in this thread).
    assert!(last.done());
    assert_eq!(last.into_result(), Ok(LINKS as u64));
}

/// Issue 11.5: the same for `and_then`, completed by a pool worker (whose stack is the default 2 MiB).
#[test]
fn a_long_and_then_chain_completed_on_a_worker() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = std::sync::Arc::new(std::sync::Barrier::new(2));
    let l = latch.clone();
    let source = pool
        .submit(move || {
            l.wait();
            0u64
        })
        .unwrap();
    let mut last = source.and_then(|v| Ok(Future::ready(v + 1)));
    for _ in 1..LINKS {
        last = last.and_then(|v| Ok(Future::ready(v + 1)));
    }
    latch.wait();
    assert_eq!(last.into_result(), Ok(LINKS as u64));
}

/// Past the nesting depth, a completion's callbacks are queued: a callback deep in a chain that waits, through
/// another thread, for such a queued future's callbacks (`into_result` waits for them) must not deadlock: the
/// waiting thread runs them itself.
#[test]
fn a_deep_callback_waiting_on_a_queued_notification_does_not_deadlock() {
    let source = Future::new();
    let mut last = source.map(|v: &u32| *v);
    for _ in 0..40 {
        last = last.map(|v| *v);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let _end = last.map(move |_| {
        // Deep in the chain: completing `side` queues its callbacks on this thread.
        let side = Future::new();
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        side.add_done_callback(move |f: &Future<String>| {
            seen_tx.send(f.result().cloned()).unwrap()
        });
        side.set_result(String::from("side")).unwrap();
        // Another thread needs those callbacks to have run; this thread waits for it.
        let taker = std::thread::spawn(move || side.into_result());
        let taken = taker.join().unwrap();
        tx.send((taken, seen_rx.try_recv())).unwrap();
    });
    source.set_result(1).unwrap();
    let (taken, seen) = rx.recv().unwrap();
    assert_eq!(taken, Ok(String::from("side")));
    assert_eq!(seen, Ok(Ok(String::from("side"))), "the callback ran first");
}

/// Dropping a long chain that never completes does not overflow the stack either.
#[test]
fn dropping_a_long_unfinished_chain() {
    let source: Future<u64> = Future::new();
    let mut last = source.map(|v| v + 1);
    for _ in 1..LINKS {
        last = last.map(|v| v + 1);
    }
    drop(last);
    drop(source);
}
