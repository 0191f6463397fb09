//! Fan-out inside the pool (issue 14): tasks submitted from the pool's own tasks go to their worker's own queue,
//! other workers steal them, and a waiting worker runs queued fan-out work. Each test is about a guarantee that
//! must survive that: no task is stranded in a worker's queue, shutdown still cancels them, the bound still holds
//! for outside submits, and `work_while_waiting(false)` runs only the awaited task.
//!
//! Every wait that a bug would turn into a hang has a deadline (`LONG`), so such a bug fails the test instead.

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use concurrent_futures::{Error, Future, ThreadPoolExecutor};

/// A deadline no correct run comes near, even on a saturated machine.
const LONG: Duration = Duration::from_secs(120);

/// A task blocks (on a channel, so nothing can run the other task inline) until a task it submitted runs. The
/// second worker must steal it from the first one's queue, whether it was busy or asleep when the push happened.
#[test]
fn a_task_in_a_blocked_workers_queue_is_stolen() {
    for round in 0..50 {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        // Start both workers and let them go idle.
        let barrier = Arc::new(Barrier::new(2));
        let warm: Vec<_> = (0..2)
            .map(|_| {
                let barrier = barrier.clone();
                pool.submit(move || {
                    barrier.wait();
                })
                .unwrap()
            })
            .collect();
        for f in warm {
            f.result_timeout(LONG).unwrap();
        }
        let p = pool.clone();
        let blocked = pool
            .submit(move || {
                let (tx, rx) = mpsc::channel();
                let _b = p.submit(move || tx.send(round).unwrap()).unwrap();
                rx.recv_timeout(LONG)
            })
            .unwrap();
        assert_eq!(
            blocked.result_timeout(LONG),
            Ok(&Ok(round)),
            "round {round}"
        );
    }
}

/// A pool whose only thread blocks on a task it pushed to its own queue gets a thread for it once
/// `set_max_workers` raises the bound: tasks pushed while every thread ran (not counted in the demand then) are
/// counted when the bound rises.
#[test]
fn raising_max_workers_starts_a_thread_for_a_blocked_workers_queue() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let p = pool.clone();
    let (pushed_tx, pushed_rx) = mpsc::channel();
    let blocked = pool
        .submit(move || {
            let (tx, rx) = mpsc::channel();
            let _b = p.submit(move || tx.send(7).unwrap()).unwrap();
            pushed_tx.send(()).unwrap();
            rx.recv_timeout(LONG)
        })
        .unwrap();
    pushed_rx.recv_timeout(LONG).unwrap();
    assert_eq!(
        pool.queued(),
        1,
        "the subtask waits in the worker's own queue"
    );
    assert_eq!(pool.idle_workers(), 0, "the only worker is busy");
    pool.set_max_workers(2).unwrap();
    assert_eq!(blocked.result_timeout(LONG), Ok(&Ok(7)));
    assert_eq!(pool.workers(), 2);
}

/// `shutdown(cancel_futures = true)` cancels tasks waiting in workers' own queues too, as in the shared queue
/// (CPython: `test_cancel_futures`, for tasks submitted from inside the pool).
#[test]
fn shutdown_cancel_futures_cancels_tasks_in_workers_queues() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let p = pool.clone();
    let (sub_tx, sub_rx) = mpsc::channel::<Future<u8>>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let outer = pool
        .submit(move || {
            let sub = p.submit(|| 1u8).unwrap();
            sub_tx.send(sub).unwrap();
            release_rx.recv_timeout(LONG).unwrap();
        })
        .unwrap();
    let sub = sub_rx.recv_timeout(LONG).unwrap();
    pool.shutdown_with(false, true);
    release_tx.send(()).unwrap();
    assert_eq!(sub.result_timeout(LONG), Err(Error::Cancelled));
    assert_eq!(outer.result_timeout(LONG), Ok(&()));
    pool.shutdown(true);
}

/// After shutdown, a submit from inside a running task is refused like any other.
#[test]
fn a_submit_from_inside_after_shutdown_is_refused() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let p = pool.clone();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let outer = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            go_rx.recv_timeout(LONG).unwrap();
            p.submit(|| ()).err()
        })
        .unwrap();
    started_rx.recv_timeout(LONG).unwrap();
    pool.shutdown_with(false, false);
    go_tx.send(()).unwrap();
    assert_eq!(outer.result_timeout(LONG), Ok(&Some(Error::Shutdown)));
    pool.shutdown(true);
}

/// The queue bound holds back outside submits only: a task's own submits never wait on it or fail with `Full`,
/// so a worker cannot block on its own pool's full queue.
#[test]
fn submits_from_inside_do_not_count_against_the_queue_bound() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_bound(1)
        .build()
        .unwrap();
    let p = pool.clone();
    let outer = pool
        .submit(move || {
            let subs: Vec<_> = (0..10u32)
                .map(|i| p.try_submit(move || i).expect("never Full from inside"))
                .collect();
            subs.into_iter()
                .map(|f| f.into_result().unwrap())
                .sum::<u32>()
        })
        .unwrap();
    assert_eq!(outer.result_timeout(LONG), Ok(&45));
}

/// Submits a task that records `name` when it runs.
fn recorder(
    pool: &ThreadPoolExecutor,
    log: &Arc<Mutex<Vec<&'static str>>>,
    name: &'static str,
) -> Future<()> {
    let log = log.clone();
    pool.submit(move || log.lock().unwrap().push(name)).unwrap()
}

/// A worker waiting on a subtask runs the other fan-out tasks queued meanwhile (newest first, as rayon does):
/// here C, submitted after B, runs before B, and both run before the waiting task goes on.
#[test]
fn a_waiting_worker_runs_queued_fan_out_work() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (p, l) = (pool.clone(), log.clone());
    let outer = pool
        .submit(move || {
            let b = recorder(&p, &l, "b");
            let _c = recorder(&p, &l, "c");
            b.result().unwrap();
            l.lock().unwrap().push("a resumes");
        })
        .unwrap();
    outer.result_timeout(LONG).unwrap();
    assert_eq!(*log.lock().unwrap(), ["c", "b", "a resumes"]);
}

/// With `work_while_waiting(false)`, a waiting worker runs only the task it waits for (still inline, so the nested
/// wait cannot deadlock); C runs after the waiting task is done.
#[test]
fn without_work_while_waiting_only_the_awaited_task_runs_inline() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .work_while_waiting(false)
        .build()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (p, l) = (pool.clone(), log.clone());
    let outer = pool
        .submit(move || {
            let b = recorder(&p, &l, "b");
            let c = recorder(&p, &l, "c");
            b.result().unwrap();
            l.lock().unwrap().push("a resumes");
            c
        })
        .unwrap();
    let c = outer.into_result().unwrap();
    c.result_timeout(LONG).unwrap();
    assert_eq!(*log.lock().unwrap(), ["b", "a resumes", "c"]);
}

/// Recursive fan-out on two workers gives the right answer. First the root task pushes a rendezvous task to its
/// own queue and meets it at a barrier: only the second worker can run it (the first is blocked at the barrier),
/// so it must start and steal it.
#[test]
fn recursive_fan_out_on_two_workers() {
    fn fib(pool: &ThreadPoolExecutor, n: u64) -> u64 {
        if n < 2 {
            return n;
        }
        let p = pool.clone();
        let child = pool.submit(move || fib(&p, n - 1)).unwrap();
        let other = fib(pool, n - 2);
        child.into_result().unwrap() + other
    }
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let (p, b) = (pool.clone(), barrier.clone());
    let root = pool
        .submit(move || {
            let b2 = b.clone();
            let rendezvous = p.submit(move || b2.wait()).unwrap();
            b.wait();
            rendezvous.into_result().unwrap();
            fib(&p, if cfg!(miri) { 8 } else { 22 })
        })
        .unwrap();
    let expected = if cfg!(miri) { 21 } else { 17_711 };
    assert_eq!(root.result_timeout(LONG), Ok(&expected));
    assert_eq!(pool.workers(), 2);
}
