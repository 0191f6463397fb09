//! Ported from CPython's `Lib/test/test_concurrent_futures/` `test_thread_pool.py`, `test_shutdown.py`,
//! `test_init.py` and `executor.py` (the `ExecutorTest` map/submit cases): each test names the case it mirrors.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use common::{Counter, Latch, blocked, blocked_running, hold_worker, results, submit_n};
use concurrent_futures::{Error, Future, MapOptions, State, ThreadPoolExecutor};

fn thread_name() -> String {
    thread::current().name().unwrap_or("").to_owned()
}

/// executor.py ExecutorTest.test_submit / test_submit_keyword
#[test]
fn submit() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let future = pool.submit(|| 2i32.pow(8)).unwrap();
    assert_eq!(future.result(), Ok(&256));
    let (a, b) = (2, 8);
    let future = pool.submit(move || a * b).unwrap();
    assert_eq!(future.result(), Ok(&16));
}

/// executor.py ExecutorTest.test_map
#[test]
fn map() {
    let pool = ThreadPoolExecutor::new(4).unwrap();
    let got: Vec<i64> = pool
        .map(|x: i64| x.pow(2), 0..10)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, (0..10).map(|x: i64| x.pow(2)).collect::<Vec<_>>());
    let got: Vec<i64> = pool
        .map_with(|x: i64| x.pow(2), 0..10, MapOptions::new().chunksize(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, (0..10).map(|x: i64| x.pow(2)).collect::<Vec<_>>());
}

/// executor.py ExecutorTest.test_map_exception: the error is yielded in order, then the iterator ends.
#[test]
fn map_exception() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut it = pool
        .map(
            |(a, b): (i32, i32)| {
                if b == 0 {
                    panic!("division by zero")
                } else {
                    a / b
                }
            },
            [(1, 1), (1, 0), (1, 1)],
        )
        .unwrap();
    assert_eq!(it.next(), Some(Ok(1)));
    assert!(
        matches!(it.next(), Some(Err(Error::Panicked { message })) if message.contains("division by zero"))
    );
    assert_eq!(it.next(), None);
}

/// executor.py ExecutorTest.test_map_exception with `chunksize`: a panic on one item of a chunk yields the
/// values of the items before it, then its error (CPython's process pool loses the whole chunk).
#[test]
fn map_exception_in_a_chunk_keeps_the_items_before_it() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let ran_after = Arc::new(AtomicUsize::new(0));
    let seen = ran_after.clone();
    let got: Vec<Result<u32, Error>> = pool
        .map_with(
            move |x: u32| {
                if x == 4 {
                    panic!("item {x}");
                }
                if x == 5 {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                x * 10
            },
            0..9,
            MapOptions::new().chunksize(3),
        )
        .unwrap()
        .collect();
    assert_eq!(got[..4], [Ok(0), Ok(10), Ok(20), Ok(30)]);
    assert!(matches!(&got[4], Err(Error::Panicked { message }) if message == "item 4"));
    assert_eq!(got.len(), 5, "the map ends at the error");
    pool.shutdown(true);
    assert_eq!(
        ran_after.load(Ordering::SeqCst),
        0,
        "the chunk stops at its failed item"
    );
}

/// executor.py ExecutorTest.test_map_timeout: results before the blocked one, then a timeout.
///
/// One worker runs the items in order, so once item 2 has started, items 0 and 1 are done: the test collects only
/// then, and a done item is yielded even past the deadline. However slow the machine (Miri took longer than the
/// timeout to run items 0 and 1), the results are the same.
#[test]
fn map_timeout() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = Latch::new();
    let started = Latch::new();
    let (l, s) = (latch.clone(), started.clone());
    let map = pool
        .map_with(
            move |i: u32| {
                if i == 2 {
                    s.open();
                    l.wait();
                }
                i
            },
            0..3,
            MapOptions::new().timeout(Duration::from_millis(200)),
        )
        .unwrap();
    started.wait();
    let results: Vec<_> = map.collect();
    latch.open();
    assert_eq!(results[..2], [Ok(0), Ok(1)]);
    assert!(matches!(results[2], Err(Error::Timeout { .. })));
    assert_eq!(results.len(), 3);
}

/// executor.py test_map_buffersize_type_validation / test_map_buffersize_value_validation, and chunksize < 1.
#[test]
fn map_option_validation() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let err = pool
        .map_with(|x: i32| x, 0..1, MapOptions::new().buffersize(0))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(m) if m.contains("buffersize")));
    let err = pool
        .map_with(|x: i32| x, 0..1, MapOptions::new().chunksize(0))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(m) if m.contains("chunksize")));
}

/// executor.py test_map_buffersize_on_infinite_iterable
#[test]
fn map_buffersize_on_infinite_iterable() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut res = pool
        .map_with(|x: u64| x.to_string(), 0.., MapOptions::new().buffersize(2))
        .unwrap();
    assert_eq!(res.next(), Some(Ok("0".to_string())));
    assert_eq!(res.next(), Some(Ok("1".to_string())));
    assert_eq!(res.next(), Some(Ok("2".to_string())));
}

/// executor.py test_map_buffersize_when_buffer_is_full: at most `buffersize` tasks in flight, one more per result.
#[test]
fn map_buffersize_bounds_in_flight() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let submitted = Arc::new(AtomicUsize::new(0));
    let s = submitted.clone();
    let inputs = (0..100).inspect(move |_| {
        s.fetch_add(1, Ordering::SeqCst);
    });
    let mut res = pool
        .map_with(|x: i32| x, inputs, MapOptions::new().buffersize(3))
        .unwrap();
    assert_eq!(submitted.load(Ordering::SeqCst), 3);
    assert_eq!(res.next(), Some(Ok(0)));
    assert_eq!(submitted.load(Ordering::SeqCst), 4);
    let rest: Vec<i32> = res.collect::<Result<_, _>>().unwrap();
    assert_eq!(rest, (1..100).collect::<Vec<_>>());
}

/// test_thread_pool.py test_map_submits_without_iteration: without buffersize, map submits everything at once.
#[test]
fn map_submits_without_iteration() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let finished = Counter::new();
    let f = finished.clone();
    let _results = pool.map(move |_: i32| f.arrive(), 0..10).unwrap();
    finished.wait_for(10);
    assert_eq!(finished.get(), 10);
}

/// executor.py: closing the result iterator cancels the futures not yet yielded (CPython's `result_iterator`
/// `finally` clause).
#[test]
fn map_dropped_cancels_pending() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = Latch::new();
    let started = Latch::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let (l, s, r) = (latch.clone(), started.clone(), ran.clone());
    let it = pool
        .map(
            move |i: i32| {
                r.fetch_add(1, Ordering::SeqCst);
                if i == 0 {
                    s.open();
                    l.wait();
                }
            },
            0..100,
        )
        .unwrap();
    started.wait();
    drop(it); // task 0 is running; 1..100 are queued behind it and get cancelled
    latch.open();
    pool.shutdown(true);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

/// test_thread_pool.py test_default_workers
#[test]
fn default_workers() {
    let pool = ThreadPoolExecutor::default();
    assert_eq!(pool.max_workers(), (num_cpus() + 4).min(32));
}

fn num_cpus() -> usize {
    thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

/// executor.py test_max_workers_negative (here: zero)
#[test]
fn max_workers_zero_is_invalid() {
    assert!(
        matches!(ThreadPoolExecutor::new(0), Err(Error::InvalidArgument(m)) if m.contains("max_workers"))
    );
    assert!(matches!(
        ThreadPoolExecutor::builder().queue_bound(0).build(),
        Err(Error::InvalidArgument(_))
    ));
}

/// test_thread_pool.py test_idle_thread_reuse: one task at a time needs one thread.
#[test]
fn idle_thread_reuse() {
    let pool = ThreadPoolExecutor::new(8).unwrap();
    let names: HashSet<String> = (0..10)
        .map(|_| pool.submit(thread_name).unwrap().into_result().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

/// test_thread_pool.py test_saturation: never more threads than max_workers.
#[test]
fn saturation() {
    let pool = ThreadPoolExecutor::new(4).unwrap();
    let latch = Latch::new();
    let started = Counter::new();
    let (l, s) = (latch.clone(), started.clone());
    let futures = submit_n(&pool, 15 * 4, move || {
        s.arrive();
        l.wait();
        thread_name()
    });
    started.wait_for(4);
    assert_eq!(started.get(), 4);
    latch.open();
    let names: HashSet<String> = results(futures);
    assert_eq!(names.len(), 4);
}

/// test_thread_pool.py test_thread_names_assigned
#[test]
fn thread_names_assigned() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(5)
        .thread_name_prefix("SpecialPool")
        .build()
        .unwrap();
    // Each task waits until all five run at once, so they must be on five threads.
    let started = Counter::new();
    let s = started.clone();
    let futures = submit_n(&pool, 5, move || {
        s.arrive();
        s.wait_for(5);
        thread_name()
    });
    let names: HashSet<String> = results(futures);
    let want: HashSet<String> = (0..5).map(|i| format!("SpecialPool_{i}")).collect();
    assert_eq!(names, want);
}

/// test_thread_pool.py test_thread_names_default: ThreadPoolExecutor-N_i
#[test]
fn thread_names_default() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let name = pool.submit(thread_name).unwrap().into_result().unwrap();
    let (prefix, index) = name.rsplit_once('_').unwrap();
    assert!(prefix.starts_with("ThreadPoolExecutor-"), "{name}");
    assert!(
        prefix["ThreadPoolExecutor-".len()..]
            .parse::<usize>()
            .is_ok(),
        "{name}"
    );
    assert_eq!(index, "0");
}

/// test_shutdown.py test_run_after_shutdown
#[test]
fn run_after_shutdown() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    pool.shutdown(true);
    let err = pool.submit(|| 2i32.pow(3)).unwrap_err();
    assert_eq!(err, Error::Shutdown);
    assert_eq!(
        err.to_string(),
        "cannot schedule new futures after shutdown"
    );
    assert!(pool.map(|x: i32| x, 0..3).is_err());
}

/// test_shutdown.py test_threads_terminate / test_context_manager_shutdown: shutdown(wait) returns after every
/// queued task ran.
#[test]
fn shutdown_wait_runs_queued_tasks() {
    let pool = ThreadPoolExecutor::new(3).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let futures = submit_n(&pool, 50, move || r.fetch_add(1, Ordering::SeqCst));
    pool.shutdown(true);
    assert_eq!(ran.load(Ordering::SeqCst), 50);
    assert!(futures.iter().all(|f| f.state() == State::Finished));
}

/// test_shutdown.py test_del_shutdown: dropping the last handle is shutdown(wait=True).
#[test]
fn drop_is_shutdown_wait() {
    let ran = Arc::new(AtomicUsize::new(0));
    let futures: Vec<_> = {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let clone = pool.clone();
        drop(clone); // not the last handle: nothing happens
        let r = ran.clone();
        submit_n(&pool, 20, move || r.fetch_add(1, Ordering::SeqCst))
    };
    assert_eq!(ran.load(Ordering::SeqCst), 20);
    assert!(futures.iter().all(Future::done));
}

/// test_shutdown.py test_shutdown_no_wait: returns at once; queued work still runs.
#[test]
fn shutdown_no_wait() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = Latch::new();
    let first = blocked(&pool, &latch, ());
    let queued: Vec<_> = (0..5).map(|i| pool.submit(move || i).unwrap()).collect();
    pool.shutdown(false); // returns although a task is blocked
    assert_eq!(pool.submit(|| 0).unwrap_err(), Error::Shutdown);
    latch.open();
    first.result().unwrap();
    for (i, f) in queued.iter().enumerate() {
        assert_eq!(f.result(), Ok(&i));
    }
}

/// test_shutdown.py test_cancel_futures: queued tasks are cancelled, running ones finish, every future is done.
/// The running task is released by the cancellation of the last queued one (a callback run by the shutdown
/// itself), so it cannot finish, and let a queued task start, before the shutdown cancels them.
#[test]
fn shutdown_cancel_futures() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let latch = Latch::new();
    let running = blocked_running(&pool, &latch, 1);
    let queued: Vec<_> = (0..50).map(|i| pool.submit(move || i).unwrap()).collect();
    let release = latch.clone();
    queued[49].add_done_callback(move |f| {
        assert!(f.cancelled());
        release.open();
    });
    pool.shutdown_with(true, true);
    assert_eq!(running.result(), Ok(&1));
    assert!(queued.iter().all(Future::cancelled));
}

/// test_shutdown.py test_cancel_futures_wait_false
#[test]
fn shutdown_cancel_futures_wait_false() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (running, latch) = hold_worker(&pool);
    let queued: Vec<_> = (0..10).map(|i| pool.submit(move || i).unwrap()).collect();
    pool.shutdown_with(false, true);
    assert!(queued.iter().all(Future::cancelled));
    latch.open();
    running.result().unwrap();
}

/// test_init.py InitializerMixin.test_initializer: every worker runs it before its first task.
#[test]
fn initializer_runs_in_each_worker() {
    thread_local!(static INITIALIZED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    let pool = ThreadPoolExecutor::builder()
        .max_workers(3)
        .initializer(|| {
            INITIALIZED.with(|i| i.set(true));
            Ok(())
        })
        .build()
        .unwrap();
    let latch = Latch::new();
    let l = latch.clone();
    let futures = submit_n(&pool, 6, move || {
        l.wait();
        INITIALIZED.with(|i| i.get())
    });
    latch.open();
    assert!(futures.into_iter().all(|f| f.into_result().unwrap()));
}

/// test_init.py FailingInitializerMixin.test_initializer: the pool breaks; queued and later submits fail with
/// a broken-pool error, and the failure is logged.
#[test]
fn failing_initializer_breaks_pool() {
    common::logged();
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .initializer(|| Err("init failed".into()))
        .build()
        .unwrap();
    let futures: Vec<_> = (0..10)
        .filter_map(|i| pool.submit(move || i).ok())
        .collect();
    for f in &futures {
        assert!(
            matches!(f.result(), Err(Error::Broken { reason }) if reason.contains("init failed"))
        );
    }
    // Later submits fail too: once a future reported the breakage, the pool refuses work.
    let err = pool.submit(|| 0).unwrap_err();
    assert!(matches!(err, Error::Broken { reason } if reason.contains("init failed")));
    assert!(
        common::logged()
            .iter()
            .any(|l| l.contains("initializer failed") && l.contains("init failed"))
    );
}

/// A panicking initializer breaks the pool the same way.
#[test]
fn panicking_initializer_breaks_pool() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(|| panic!("no config"))
        .build()
        .unwrap();
    if let Ok(f) = pool.submit(|| 1) {
        assert!(
            matches!(f.result(), Err(Error::Broken { reason }) if reason.contains("no config"))
        );
    }
    assert!(matches!(pool.submit(|| 1), Err(Error::Broken { .. })));
}

/// A panic in a task is an error on its future; the worker survives and runs the next task.
#[test]
fn panic_becomes_error_and_worker_survives() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let boom = pool.submit(|| -> u8 { panic!("boom {}", 7) }).unwrap();
    assert_eq!(
        boom.result(),
        Err(Error::Panicked {
            message: "boom 7".into()
        })
    );
    let name_before = pool.submit(thread_name).unwrap().into_result().unwrap();
    let after = pool.submit(|| 5).unwrap();
    assert_eq!(after.result(), Ok(&5));
    let name_after = pool.submit(thread_name).unwrap().into_result().unwrap();
    assert_eq!(name_before, name_after, "the same thread kept serving");
}

/// Bounded queue: submit blocks while the queue is full and is released when a worker takes a task.
#[test]
fn bounded_queue_blocks_then_admits() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_bound(2)
        .build()
        .unwrap();
    let latch = Latch::new();
    let first = blocked_running(&pool, &latch, 0);
    let a = pool.try_submit(|| 1).unwrap();
    let b = pool.try_submit(|| 2).unwrap();
    assert_eq!(pool.try_submit(|| 3).unwrap_err(), Error::Full);
    assert_eq!(pool.queued(), 2);
    // A blocking submit from another thread waits until the latch lets the worker drain the queue.
    let p = pool.clone();
    let (tx, rx) = mpsc::channel();
    let blocked = thread::spawn(move || {
        let f = p.submit(|| 4).unwrap();
        tx.send(()).unwrap();
        f.into_result()
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "submit must wait while the queue is full"
    );
    latch.open();
    rx.recv().unwrap();
    assert_eq!(blocked.join().unwrap(), Ok(4));
    assert_eq!(
        (first.result(), a.result(), b.result()),
        (Ok(&0), Ok(&1), Ok(&2))
    );
}

/// Bounded queue: a blocked submit is released by shutdown with a shutdown error.
#[test]
fn bounded_queue_blocked_submit_released_by_shutdown() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_bound(1)
        .build()
        .unwrap();
    let (first, latch) = hold_worker(&pool);
    let queued = pool.submit(|| 1).unwrap();
    let p = pool.clone();
    let blocked = thread::spawn(move || p.submit(|| 2).map(|_| ()));
    // Whether or not the blocked submit is already waiting, after shutdown it must fail with Shutdown.
    pool.shutdown_with(false, true);
    assert_eq!(blocked.join().unwrap(), Err(Error::Shutdown));
    assert!(queued.cancelled());
    latch.open();
    first.result().unwrap();
}

/// A task can drop the last handle of its own pool: shutdown from a worker does not wait for itself.
#[test]
fn last_handle_dropped_inside_a_task() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let inner = pool.clone();
    let (tx, rx) = mpsc::channel();
    let f = pool
        .submit(move || {
            rx.recv().unwrap();
            drop(inner); // the last handle, once the test dropped its own
            "dropped"
        })
        .unwrap();
    drop(pool);
    // `drop(pool)` did not wait (a handle remained); the task now drops the last one.
    tx.send(()).unwrap();
    assert_eq!(f.result(), Ok(&"dropped"));
}

/// Callbacks run in the worker thread that completed the future and may submit more work (the crawler's shape).
#[test]
fn callback_submits_follow_up_work() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .thread_name_prefix("cb")
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    let latch = Latch::new();
    let first = blocked(&pool, &latch, 20);
    first.add_done_callback(move |f| {
        let n = *f.result().unwrap();
        let tx2 = tx.clone();
        let name = thread_name();
        p.submit(move || tx2.send((n + 1, name)).unwrap()).unwrap();
    });
    latch.open(); // only now can the task finish, so the callback runs in the worker
    let (n, name) = rx.recv().unwrap();
    assert_eq!(n, 21);
    assert!(name.starts_with("cb_"), "{name}");
}

/// Dropping a cancelled task's closure releases what it captured, without running it.
#[test]
fn cancel_drops_the_closure() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, latch) = hold_worker(&pool);
    let captured = Arc::new(());
    let c = captured.clone();
    let queued = pool.submit(move || drop(c)).unwrap();
    assert_eq!(Arc::strong_count(&captured), 2);
    assert!(queued.cancel());
    assert_eq!(Arc::strong_count(&captured), 1);
    latch.open();
}

/// Records of what ran, shared with tasks.
#[test]
fn futures_complete_exactly_once_under_cancel_race() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let futures: Vec<_> = (0..if cfg!(miri) { 50 } else { 2000 })
        .map(|i| {
            let r = ran.clone();
            pool.submit(move || r.lock().unwrap().push(i)).unwrap()
        })
        .collect();
    let cancelled: Vec<bool> = futures.iter().map(Future::cancel).collect();
    pool.shutdown(true);
    let ran: HashSet<usize> = ran.lock().unwrap().iter().copied().collect();
    for (i, (f, c)) in futures.iter().zip(cancelled).enumerate() {
        assert!(f.done());
        assert_eq!(c, f.cancelled());
        assert_eq!(
            ran.contains(&i),
            !c,
            "task {i} ran iff it was not cancelled"
        );
    }
}

/// Issue 11.1: a worker must not count itself idle once it holds a job. Task A blocks until task B runs (by a
/// channel, not by our futures, so nothing can run B inline); with `max_workers` 2, B must get the second thread.
/// B is submitted right as the first worker takes A off the queue: the window in which a worker that popped a
/// job still counted as idle made the submit start no thread, stranding B. A stranded B shows as A not finishing;
/// the test then releases A itself (so nothing hangs) and fails.
#[test]
fn lazy_start_gives_every_queued_task_a_thread() {
    let rounds = if cfg!(miri) { 4 } else { 1000 };
    let mut stranded = 0;
    for _ in 0..rounds {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let rescue = tx.clone();
        let a = pool.submit(move || rx.recv().unwrap()).unwrap();
        // Wait (spinning) until the first worker took A off the queue, then submit B at once.
        while pool.queued() != 0 {
            std::hint::spin_loop();
        }
        let b = pool.submit(move || tx.send(()).is_ok()).unwrap();
        if a.result_timeout(common::PATIENCE).is_err() {
            stranded += 1;
            rescue.send(()).unwrap();
        }
        a.result().unwrap();
        b.result().unwrap();
    }
    assert_eq!(stranded, 0, "B waited with no thread to run it");
}

/// Issue 11.1, the promise itself: below `max_workers`, every queued task gets a thread even when every running
/// task blocks on one queued behind it (by channels: task i waits until task i + 1 sends; the last sends at once).
#[test]
fn every_queued_task_gets_a_thread_below_max_workers() {
    let n = 8;
    let pool = ThreadPoolExecutor::new(n).unwrap();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel::<()>()).unzip();
    let mut senders: Vec<Option<mpsc::Sender<()>>> = senders.into_iter().map(Some).collect();
    let futures: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, rx)| {
            let previous = if i > 0 { senders[i - 1].take() } else { None };
            pool.submit(move || {
                if i + 1 < n {
                    rx.recv().unwrap();
                }
                if let Some(previous) = previous {
                    previous.send(()).unwrap();
                }
                i
            })
            .unwrap()
        })
        .collect();
    let values: Vec<usize> = results(futures);
    assert_eq!(values, (0..n).collect::<Vec<_>>());
    assert_eq!(pool.workers(), n);
}

/// Issue 11.4: a worker running done-callbacks is busy, not idle. A callback that submits a task and blocks on it
/// (by a channel) must get a thread for that task while the pool is below `max_workers`.
#[test]
fn a_callback_that_blocks_on_a_new_task_gets_a_thread() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let p = pool.clone();
    // Held until the callback is added, so the callback runs on the worker that completes the task.
    let latch = Latch::new();
    let first = blocked(&pool, &latch, 1);
    first.add_done_callback(move |_| {
        let (tx, rx) = mpsc::channel();
        p.submit(move || tx.send(thread_name()).unwrap()).unwrap();
        // Bounded, so that a stranded task fails the test instead of hanging it.
        done_tx.send(rx.recv_timeout(common::PATIENCE)).unwrap();
    });
    latch.open();
    let name = done_rx.recv().unwrap();
    assert!(name.is_ok(), "the task submitted by the callback never ran");
    first.result().unwrap();
}
