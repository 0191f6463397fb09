//! A pool that grows and shrinks: `min_workers`, `idle_timeout`, `set_max_workers`, and the counters
//! `workers()`, `idle_workers()`, `queued()`, `completed()`. Python's pool never shrinks; tokio's blocking pool
//! does. Counters are polled against a generous deadline, never after a fixed sleep.

mod common;

use std::time::{Duration, Instant};

use common::{Counter, Latch, results, submit_n};
use concurrent_futures::{Error, Future, ThreadPoolExecutor};

/// Polls `condition` until it holds or `limit` passes; panics with `what` on time-out.
fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

const LIMIT: Duration = Duration::from_secs(30);

/// Submits `n` tasks that each arrive at `started`, then wait until `n` have arrived: they can only finish when `n`
/// threads run them at once.
fn meeting(pool: &ThreadPoolExecutor, started: &Counter, n: usize) -> Vec<Future<()>> {
    let s = started.clone();
    submit_n(pool, n, move || {
        s.arrive();
        s.wait_for(n);
    })
}

/// A burst grows the pool to max_workers; after idle_timeout it returns to min_workers.
#[test]
fn burst_grows_to_max_then_shrinks_to_min() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(4)
        .min_workers(1)
        .idle_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let latch = Latch::new();
    let started = Counter::new();
    let (l, s) = (latch.clone(), started.clone());
    let futures = submit_n(&pool, 8, move || {
        s.arrive();
        l.wait();
    });
    started.wait_for(4);
    assert_eq!(pool.workers(), 4, "the burst grew the pool to max_workers");
    assert_eq!(pool.queued(), 4);
    latch.open();
    for f in &futures {
        f.result().unwrap();
    }
    eventually("the pool shrinks back to min_workers", LIMIT, || {
        pool.workers() == 1
    });
    eventually("the last thread is idle", LIMIT, || {
        pool.idle_workers() == 1
    });
    assert_eq!(pool.completed(), 8);
    // It grows again on demand, and thread names stay unique.
    let s = started.clone();
    let names: Vec<String> = results(submit_n(&pool, 3, move || {
        s.arrive();
        s.wait_for(4 + 4 + 3);
        std::thread::current().name().unwrap().to_owned()
    }));
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), 3, "{names:?}");
}

/// Without idle_timeout the pool never shrinks (Python's behaviour).
#[test]
fn without_idle_timeout_the_pool_keeps_its_threads() {
    let pool = ThreadPoolExecutor::new(3).unwrap();
    let started = Counter::new();
    let futures = meeting(&pool, &started, 3);
    for f in futures {
        f.result().unwrap();
    }
    eventually("all three threads are idle", LIMIT, || {
        pool.idle_workers() == 3
    });
    assert_eq!(pool.workers(), 3);
}

/// Shrinking never strands a queued task: submits racing idle retirements all complete.
#[test]
fn shrinking_never_strands_a_task() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .min_workers(0)
        .idle_timeout(Duration::ZERO)
        .build()
        .unwrap();
    for round in 0..2000 {
        let f = pool.submit(move || round).unwrap();
        assert_eq!(f.into_result(), Ok(round));
    }
    eventually("every thread retired", LIMIT, || pool.workers() == 0);
    assert_eq!(pool.submit(|| 7).unwrap().into_result(), Ok(7));
}

/// set_max_workers raises the bound at run time, starting threads for queued work.
#[test]
fn set_max_workers_raises_the_bound() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let started = Counter::new();
    let futures = meeting(&pool, &started, 3);
    started.wait_for(1);
    assert_eq!(pool.workers(), 1);
    pool.set_max_workers(3).unwrap();
    // The three tasks wait for each other, so they can only finish on three threads.
    for f in futures {
        f.result().unwrap();
    }
    assert_eq!(pool.workers(), 3);
}

/// set_max_workers lowers the bound: idle surplus threads leave at once, busy ones after their task.
#[test]
fn set_max_workers_lowers_the_bound() {
    let pool = ThreadPoolExecutor::new(4).unwrap();
    let started = Counter::new();
    let futures = meeting(&pool, &started, 4);
    for f in futures {
        f.result().unwrap();
    }
    assert_eq!(pool.workers(), 4);
    pool.set_max_workers(1).unwrap();
    eventually("the surplus threads leave", LIMIT, || pool.workers() == 1);
    // The pool still serves, on its one thread.
    let names: std::collections::HashSet<String> = results(submit_n(&pool, 10, || {
        std::thread::current().name().unwrap().to_owned()
    }));
    assert_eq!(names.len(), 1);
}

#[test]
fn invalid_sizes_are_errors() {
    assert!(matches!(
        ThreadPoolExecutor::builder().max_workers(2).min_workers(3).build(),
        Err(Error::InvalidArgument(m)) if m.contains("min_workers")
    ));
    let pool = ThreadPoolExecutor::builder()
        .max_workers(4)
        .min_workers(2)
        .build()
        .unwrap();
    assert!(matches!(
        pool.set_max_workers(1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        pool.set_max_workers(0),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(pool.max_workers(), 4);
}
