//! Waits inside the pool that cannot deadlock: a task that waits on a not-yet-started task of its own pool runs
//! it itself. CPython documents this case as a deadlock (its `ThreadPoolExecutor` docs, "Deadlocks can occur
//! when the callable associated with a Future waits on the results of another Future").

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use concurrent_futures::{Error, Future, ReturnWhen, ThreadPoolExecutor, as_completed, wait};

/// The depth of the Fibonacci tests (about 20,000 tasks; fewer under Miri, which interprets every step).
const DEPTH: u64 = if cfg!(miri) { 8 } else { 20 };

fn fib(pool: &ThreadPoolExecutor, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let a = submit_fib(pool, n - 1);
    let b = submit_fib(pool, n - 2);
    a.result().unwrap() + b.result().unwrap()
}

/// Submits `fib(n)` as a task of `pool`; the task submits its subtasks to the same pool and waits on them.
fn submit_fib(pool: &ThreadPoolExecutor, n: u64) -> Future<u64> {
    let p = pool.clone();
    pool.submit(move || fib(&p, n)).unwrap()
}

fn fib_plain(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_plain(n - 1) + fib_plain(n - 2)
    }
}

#[test]
fn recursive_fibonacci_depth_20_on_one_worker() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let result = submit_fib(&pool, DEPTH);
    assert_eq!(result.into_result(), Ok(fib_plain(DEPTH)));
    assert_eq!(pool.workers(), 1);
}

#[test]
fn recursive_fibonacci_depth_20_on_two_workers() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let result = submit_fib(&pool, DEPTH);
    assert_eq!(result.into_result(), Ok(fib_plain(DEPTH)));
}

/// A recursive fan-out with `wait(ALL_COMPLETED)` inside tasks (a directory-walk shape) on one worker.
#[test]
fn fan_out_with_wait_inside_tasks_on_one_worker() {
    fn walk(
        pool: &ThreadPoolExecutor,
        depth: u32,
        seen: Arc<Mutex<HashSet<String>>>,
        path: String,
    ) -> usize {
        seen.lock().unwrap().insert(path.clone());
        if depth == 0 {
            return 1;
        }
        let children: Vec<_> = (0..3)
            .map(|i| {
                let (p, s, child) = (pool.clone(), seen.clone(), format!("{path}/{i}"));
                pool.submit(move || walk(&p, depth - 1, s, child)).unwrap()
            })
            .collect();
        let (done, not_done) = wait(&children, None, ReturnWhen::AllCompleted);
        assert!(not_done.is_empty());
        1 + done.iter().map(|f| *f.result().unwrap()).sum::<usize>()
    }
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let (p, s) = (pool.clone(), seen.clone());
    let count = pool
        .submit(move || walk(&p, if cfg!(miri) { 2 } else { 4 }, s, "root".into()))
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(
        count,
        if cfg!(miri) {
            1 + 3 + 9
        } else {
            1 + 3 + 9 + 27 + 81
        }
    );
    assert_eq!(seen.lock().unwrap().len(), count);
}

/// `as_completed` inside a task over subtasks of the same one-worker pool.
#[test]
fn as_completed_inside_a_task_on_one_worker() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let p = pool.clone();
    let total = pool
        .submit(move || {
            let subtasks: Vec<_> = (1..=10u32)
                .map(|i| p.submit(move || i * i).unwrap())
                .collect();
            as_completed(&subtasks, None)
                .map(|f| *f.unwrap().result().unwrap())
                .sum::<u32>()
        })
        .unwrap();
    assert_eq!(total.into_result(), Ok((1..=10u32).map(|i| i * i).sum()));
}

/// A subtask cancelled before its parent waits on it is reported cancelled, and never runs.
#[test]
fn cancelled_subtask_is_not_run_by_the_waiter() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let p = pool.clone();
    let outcome = pool
        .submit(move || {
            let ran = Arc::new(Mutex::new(false));
            let r = ran.clone();
            let sub = p.submit(move || *r.lock().unwrap() = true).unwrap();
            assert!(sub.cancel());
            (sub.result().cloned(), *ran.lock().unwrap())
        })
        .unwrap();
    assert_eq!(outcome.into_result(), Ok((Err(Error::Cancelled), false)));
}

/// The main thread is no worker: it never runs tasks itself.
#[test]
fn non_worker_threads_do_not_run_tasks() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix("only")
        .build()
        .unwrap();
    let futures: Vec<_> = (0..50)
        .map(|_| {
            pool.submit(|| std::thread::current().name().map(str::to_owned))
                .unwrap()
        })
        .collect();
    for f in futures {
        assert_eq!(f.into_result().unwrap().as_deref(), Some("only_0"));
    }
}

/// A worker of one pool waiting on another pool's pending task does not run it (it belongs to that pool).
#[test]
fn a_worker_does_not_run_another_pools_tasks() {
    let a = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix("a")
        .build()
        .unwrap();
    let b = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix("b")
        .build()
        .unwrap();
    let b2 = b.clone();
    let name = a
        .submit(move || {
            let f = b2
                .submit(|| std::thread::current().name().map(str::to_owned))
                .unwrap();
            f.into_result().unwrap()
        })
        .unwrap();
    assert_eq!(name.into_result().unwrap().as_deref(), Some("b_0"));
}

/// Issue 11.7: recognising a pool's own tasks is exact. Pools used to be told apart by a 16-bit tag, which wrapped
/// after 65,535 pools: a worker of pool A waiting on a queued task of pool B with A's tag ran it itself. Here B is
/// made A's 65,535th successor (numbers come from the default thread names) and its only worker is busy: A's worker
/// must leave B's task to B.
#[test]
#[cfg_attr(miri, ignore = "builds 65,535 pools")]
fn a_worker_never_runs_a_task_of_a_pool_created_65535_pools_later() {
    fn number(pool: &ThreadPoolExecutor) -> usize {
        let name = pool
            .submit(|| std::thread::current().name().unwrap().to_owned())
            .unwrap()
            .into_result()
            .unwrap();
        let (prefix, _) = name.rsplit_once('_').unwrap();
        prefix["ThreadPoolExecutor-".len()..].parse().unwrap()
    }
    let a = ThreadPoolExecutor::new(1).unwrap();
    let a_number = number(&a);
    // Other tests make pools meanwhile, so aim, check, and aim again until B's number is A's plus a multiple of
    // 65,535 (what the tag wrapped at).
    let b = loop {
        let b = ThreadPoolExecutor::new(1).unwrap();
        let distance = number(&b) - a_number;
        let missing = (65_535 - distance % 65_535) % 65_535;
        if missing == 0 {
            break b;
        }
        for _ in 0..missing.saturating_sub(1) {
            drop(ThreadPoolExecutor::new(1).unwrap());
        }
    };
    let release = std::sync::Arc::new(std::sync::Barrier::new(2));
    let r = release.clone();
    let busy = b.submit(move || r.wait()).unwrap();
    let queued = b
        .submit(|| std::thread::current().name().unwrap().to_owned())
        .unwrap();
    let q = queued.clone();
    let waiting = a.submit(move || q.result().cloned()).unwrap();
    // A's worker now waits on `queued` (or is about to): it must not run it, so `waiting` cannot finish while B's
    // worker is busy. (Failing this check proves the bug; passing it waits only this long.)
    assert!(
        waiting
            .result_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "A's worker ran B's task"
    );
    release.wait();
    busy.result().unwrap();
    let name = waiting.into_result().unwrap().unwrap();
    assert!(
        !name.starts_with(&format!("ThreadPoolExecutor-{a_number}_")),
        "{name}"
    );
}

/// Issue 11.9: a wait with a timeout never runs a task inline (the task could take longer than the timeout), so it
/// returns by its deadline, as Python's `TimeoutError` does. A task on a one-worker pool waits, with a zero timeout,
/// on a task queued behind it.
#[test]
fn waits_with_a_timeout_never_run_a_task_inline() {
    use concurrent_futures::MapOptions;
    use std::time::Duration;

    let pool = ThreadPoolExecutor::new(1).unwrap();
    let p = pool.clone();
    let outcome = pool
        .submit(move || {
            let queued = p.submit(|| 1).unwrap();
            let result = queued.result_timeout(Duration::ZERO).cloned();
            let exception = queued.exception_timeout(Duration::ZERO);
            let (done, _) = wait([&queued], Some(Duration::ZERO), ReturnWhen::AllCompleted);
            let first = as_completed([&queued], Some(Duration::ZERO))
                .next()
                .map(|f| f.map(|f| *f.result().unwrap()));
            let mapped: Vec<_> = p
                .map_with(|x: u8| x, [1], MapOptions::new().timeout(Duration::ZERO))
                .unwrap()
                .collect();
            (result, exception, done.len(), first, mapped, queued.done())
        })
        .unwrap();
    let (result, exception, done, first, mapped, ran) = outcome.into_result().unwrap();
    let timeout = Error::Timeout {
        unfinished: 1,
        total: 1,
    };
    assert_eq!(result, Err(timeout.clone()), "result_timeout");
    assert_eq!(exception, Err(timeout.clone()), "exception_timeout");
    assert_eq!(done, 0, "wait with a timeout");
    assert_eq!(
        first,
        Some(Err(timeout.clone())),
        "as_completed with a timeout"
    );
    assert_eq!(mapped, [Err(timeout)], "map with a timeout");
    assert!(!ran, "no wait ran the queued task");
}
