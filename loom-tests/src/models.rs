//! The loom models: each function is one model body, run by `tests/models.rs` against the real code and by
//! `tests/canaries.rs` against a deliberately broken variant. Each is small (at most 4 threads, the pool's
//! workers included) so loom explores it exhaustively within the preemption bound.

use std::future::Future as _;
use std::pin::pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

use crate::Latch;
use concurrent_futures::{Error, Future, ReturnWhen, ThreadPoolExecutor, as_completed, wait};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// Model 1: Completion vs `add_done_callback` from another thread: the callback runs exactly once, after the result.
pub fn completion_vs_add_done_callback() {
    let future = Future::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let producer = future.clone();
    let t = thread::spawn(move || producer.set_result(7).unwrap());
    let c = calls.clone();
    future.add_done_callback(move |f| {
        assert_eq!(f.result(), Ok(&7), "the callback sees the result");
        c.fetch_add(1, Ordering::SeqCst);
    });
    t.join().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Model 2: `cancel` vs a worker starting the task: exactly one wins; state and callbacks agree.
pub fn cancel_vs_start() {
    let future: Future<u8> = Future::new();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    future.add_done_callback(move |f| {
        s.store(if f.cancelled() { 1 } else { 2 }, Ordering::SeqCst);
    });
    let worker = future.clone();
    let t = thread::spawn(move || {
        let started = worker.set_running_or_notify_cancel().unwrap();
        if started {
            worker.set_result(1).unwrap();
        }
        started
    });
    let cancelled = future.cancel();
    let started = t.join().unwrap();
    assert!(cancelled != started, "exactly one of cancel and start wins");
    assert_eq!(future.cancelled(), cancelled);
    assert_eq!(seen.load(Ordering::SeqCst), if cancelled { 1 } else { 2 });
}

/// Model 3: A `result()` waiter vs completion: no lost wake-up (loom reports a deadlock if the waiter sleeps forever).
pub fn result_waiter_vs_completion() {
    let future = Future::new();
    let producer = future.clone();
    let t = thread::spawn(move || producer.set_result(5).unwrap());
    assert_eq!(future.result(), Ok(&5));
    t.join().unwrap();
    assert_eq!(future.into_result(), Ok(5));
}

/// Model 4a: `wait(FirstCompleted)` with two futures completing concurrently.
pub fn wait_first_completed() {
    let (a, b) = (Future::new(), Future::new());
    let (pa, pb) = (a.clone(), b.clone());
    let ta = thread::spawn(move || pa.set_result(1).unwrap());
    let tb = thread::spawn(move || pb.set_result(2).unwrap());
    let (done, not_done) = wait([&a, &b], None, ReturnWhen::FirstCompleted);
    assert!(!done.is_empty());
    assert_eq!(done.len() + not_done.len(), 2);
    assert!(done.iter().all(|f| f.done()));
    ta.join().unwrap();
    tb.join().unwrap();
}

/// Model 4b: `as_completed` with two futures completing concurrently: both yielded, once each.
pub fn as_completed_two() {
    let (a, b) = (Future::new(), Future::new());
    let (pa, pb) = (a.clone(), b.clone());
    let ta = thread::spawn(move || pa.set_result(1).unwrap());
    let tb = thread::spawn(move || pb.set_result(2).unwrap());
    let mut sum = 0;
    let mut count = 0;
    for f in as_completed([&a, &b], None) {
        sum += f.unwrap().result().unwrap();
        count += 1;
    }
    assert_eq!((count, sum), (2, 3));
    ta.join().unwrap();
    tb.join().unwrap();
}

/// Model 5: `submit` racing `shutdown(wait = true)`: an accepted task runs before shutdown returns, nothing runs after
/// it returns, a rejected submit gets the shutdown error.
pub fn submit_vs_shutdown() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let (p, r) = (pool.clone(), ran.clone());
    let submitter = thread::spawn(move || {
        p.submit(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
    });
    pool.shutdown(true);
    let after_shutdown = ran.load(Ordering::SeqCst);
    match submitter.join().unwrap() {
        Ok(future) => {
            assert_eq!(
                after_shutdown, 1,
                "an accepted task ran before shutdown(wait) returned"
            );
            assert_eq!(future.result(), Ok(&()));
        }
        Err(error) => {
            assert_eq!(error, Error::Shutdown);
            assert_eq!(after_shutdown, 0);
        }
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        after_shutdown,
        "nothing ran after shutdown returned"
    );
}

/// Model 6: `shutdown(cancel_futures)` vs a worker taking the next task: every future ends once, ran iff not cancelled.
pub fn shutdown_cancel_vs_worker() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    // What each future's callback saw: 1 cancelled, 2 finished (several calls would add up to more).
    let seen = Arc::new(AtomicUsize::new(0));
    let futures: Vec<_> = (0..2)
        .map(|i| {
            let r = ran.clone();
            let future = pool
                .submit(move || {
                    r.fetch_add(1 << (4 * i), Ordering::SeqCst);
                })
                .unwrap();
            let s = seen.clone();
            future.add_done_callback(move |f| {
                s.fetch_add(
                    (if f.cancelled() { 1 } else { 2 }) << (4 * i),
                    Ordering::SeqCst,
                );
            });
            future
        })
        .collect();
    pool.shutdown_with(true, true);
    let (ran, seen) = (ran.load(Ordering::SeqCst), seen.load(Ordering::SeqCst));
    for (i, f) in futures.iter().enumerate() {
        assert!(f.done());
        let task_ran = (ran >> (4 * i)) & 0xf;
        assert_eq!(
            task_ran,
            if f.cancelled() { 0 } else { 1 },
            "task {i} ran iff it was not cancelled"
        );
        let callback_saw = (seen >> (4 * i)) & 0xf;
        assert_eq!(
            callback_saw,
            if f.cancelled() { 1 } else { 2 },
            "task {i}'s callback ran once, agreeing"
        );
    }
}

/// Model 7: Lazy thread start and idle reuse from two submitters: never more than `max_workers` threads, and every
/// queued task runs (no task is stranded without a thread).
pub fn lazy_start_two_submitters() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let p = pool.clone();
    let other = thread::spawn(move || {
        let f = p.submit(|| 1).unwrap();
        assert!(p.workers() <= 1);
        f
    });
    let f = pool.submit(|| 2).unwrap();
    assert!(pool.workers() <= 1, "never more than max_workers threads");
    let g = other.join().unwrap();
    pool.shutdown(true);
    assert_eq!(pool.workers(), 0);
    assert_eq!(
        (f.result(), g.result()),
        (Ok(&2), Ok(&1)),
        "no task was stranded"
    );
}

/// Model 8: Dropping the last handle of a future while its worker completes it: no leak (loom checks that every
/// allocation is freed), no use-after-free.
pub fn drop_handle_while_completing() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let future = pool.submit(|| vec![1u8, 2, 3]).unwrap();
    drop(future);
    pool.shutdown(true);
}

/// Model 9: Bounded queue: a submit blocked on a full queue is released by shutdown, with the shutdown error.
pub fn bounded_submit_released_by_shutdown() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_bound(1)
        .build()
        .unwrap();
    let latch = Latch::new();
    let l = latch.clone();
    let running = pool.submit(move || l.wait()).unwrap();
    let queued = pool.submit(|| ());
    let p = pool.clone();
    let blocked = thread::spawn(move || p.submit(|| ()).map(|_| ()));
    pool.shutdown_with(false, true);
    let outcome = blocked.join().unwrap();
    latch.open();
    running.result().unwrap();
    // The queue held `queued` (or the worker took it first, freeing a slot for the third submit).
    match outcome {
        Err(error) => assert_eq!(error, Error::Shutdown),
        Ok(()) => assert!(queued.is_ok()),
    }
    pool.shutdown(true);
    if let Ok(q) = queued {
        assert!(q.done());
    }
}

/// Model 9b: Bounded queue: a blocked submit is released when a worker takes a task.
pub fn bounded_submit_released_by_worker() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_bound(1)
        .build()
        .unwrap();
    let p = pool.clone();
    let submitter = thread::spawn(move || {
        (0..3)
            .map(|i| p.submit(move || i).unwrap())
            .collect::<Vec<_>>()
    });
    let futures = submitter.join().unwrap();
    let values: Vec<i32> = futures
        .into_iter()
        .map(|f| f.into_result().unwrap())
        .collect();
    assert_eq!(values, [0, 1, 2]);
    pool.shutdown(true);
}

/// Counts wake-ups; the polling thread can wait for them.
struct CountingWaker {
    wakes: loom::sync::Mutex<usize>,
    woken: loom::sync::Condvar,
}

impl CountingWaker {
    fn wait_for(&self, n: usize) {
        let mut wakes = self.wakes.lock().unwrap();
        while *wakes < n {
            wakes = self.woken.wait(wakes).unwrap();
        }
    }

    fn count(&self) -> usize {
        *self.wakes.lock().unwrap()
    }
}

impl Wake for CountingWaker {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        *self.wakes.lock().unwrap() += 1;
        self.woken.notify_all();
    }
}

/// Model 10: Awaiting a future (the `std::future::Future` impl) while it completes: if the poll returned `Pending`,
/// the waker fires, exactly once; then the value is ready.
pub fn await_vs_completion() {
    let future = Future::new();
    let producer = future.clone();
    let waker_state = StdArc::new(CountingWaker {
        wakes: loom::sync::Mutex::new(0),
        woken: loom::sync::Condvar::new(),
    });
    let waker = Waker::from(waker_state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut awaited = pin!(future);
    let t = thread::spawn(move || {
        producer.set_result(9).unwrap();
        // `producer` is dropped here, leaving `awaited` the only handle.
    });
    let first = awaited.as_mut().poll(&mut cx);
    t.join().unwrap();
    match first {
        Poll::Pending => {
            waker_state.wait_for(1);
            assert_eq!(awaited.as_mut().poll(&mut cx), Poll::Ready(Ok(9)));
            assert_eq!(waker_state.count(), 1, "the waker fired exactly once");
        }
        Poll::Ready(value) => {
            // Ready at once: the producer's handle may still have been alive, which is a clear error, not a hang.
            assert!(
                matches!(value, Ok(9) | Err(Error::InvalidState(_))),
                "{value:?}"
            );
            assert_eq!(waker_state.count(), 0);
        }
    }
}

/// Model 11: A task waits on a subtask of its own one-worker pool: the waiting worker runs the subtask itself.
/// Without that, the only worker waits on a task queued behind itself and loom reports a deadlock.
pub fn nested_wait_one_worker() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let p = pool.clone();
    let outer = pool
        .submit(move || {
            let sub = p.submit(|| 5).unwrap();
            sub.into_result()
        })
        .unwrap();
    assert_eq!(outer.into_result(), Ok(Ok(5)));
    pool.shutdown(true);
}

/// Model 11b: A claim by a waiting worker vs a second worker dequeuing the same task vs a cancel: the task runs
/// at most once, exactly when it was not cancelled.
pub fn claim_vs_dequeue_vs_cancel() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let p = pool.clone();
    let r = runs.clone();
    let (sub_tx, sub_rx) = loom::sync::mpsc::channel();
    let outer = pool
        .submit(move || {
            let r2 = r.clone();
            let sub = p
                .submit(move || {
                    r2.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            sub_tx.send(sub.clone()).unwrap();
            sub.result().is_ok()
        })
        .unwrap();
    let sub = sub_rx.recv().unwrap();
    let cancelled = sub.cancel();
    let sub_ok = outer.into_result().unwrap();
    pool.shutdown(true);
    assert_eq!(sub_ok, !cancelled);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        if cancelled { 0 } else { 1 },
        "ran at most once, iff not cancelled"
    );
}

/// Model 12: An idle worker retiring (idle timeout of zero, no minimum) races a submit: the task never waits
/// with no thread to run it.
pub fn shrink_vs_submit() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .min_workers(0)
        .idle_timeout(std::time::Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(pool.submit(|| 1).unwrap().into_result(), Ok(1));
    // The worker is now idle and about to retire; this submit races it.
    assert_eq!(pool.submit(|| 2).unwrap().into_result(), Ok(2));
    pool.shutdown(true);
}

/// Model 13: Lazy start is exact (issue 11.1). Task A blocks until task B runs (a channel, so nothing runs B
/// inline); with two workers allowed, B must get the second thread whenever it is submitted, including while the
/// first worker is taking A off the queue. Loom reports a deadlock if B is left with no thread.
pub fn lazy_start_blocked_task() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (tx, rx) = loom::sync::mpsc::channel::<u8>();
    let a = pool.submit(move || rx.recv().unwrap()).unwrap();
    let b = pool.submit(move || tx.send(3).unwrap()).unwrap();
    assert_eq!(a.into_result(), Ok(3));
    assert_eq!(b.into_result(), Ok(()));
    assert!(pool.workers() <= 2, "never more than max_workers threads");
    pool.shutdown(true);
}

/// Model 14: A worker running done-callbacks is busy (issue 11.4). A's callback submits B and blocks until B runs
/// (a channel); with two workers allowed, B must get a thread. Loom reports a deadlock if it does not.
pub fn callback_blocks_on_new_task() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (tx, rx) = loom::sync::mpsc::channel::<u8>();
    let p = pool.clone();
    let a = pool.submit(|| 1u8).unwrap();
    let (done_tx, done_rx) = loom::sync::mpsc::channel::<u8>();
    a.add_done_callback(move |_| {
        let _b = p.submit(move || tx.send(5).unwrap()).unwrap();
        done_tx.send(rx.recv().unwrap()).unwrap();
    });
    assert_eq!(done_rx.recv().unwrap(), 5);
    assert_eq!(a.into_result(), Ok(1));
    pool.shutdown(true);
}

/// Model 15: A task submitted from inside the pool goes to its worker's own queue (issue 14); it must still reach
/// the other worker. X holds one worker until the main thread releases it; A, on the other worker, submits B to
/// its own queue and blocks until B runs (a channel, so A's thread cannot run B). The first worker must take B,
/// whether it is still busy with X when B is pushed (it finds B when X ends) or already idle and asleep (the push
/// must wake it). Loom reports a deadlock if B is left in A's queue.
pub fn local_push_reaches_other_worker() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (go_tx, go_rx) = loom::sync::mpsc::channel::<()>();
    let x = pool.submit(move || go_rx.recv().unwrap()).unwrap();
    let p = pool.clone();
    let (tx, rx) = loom::sync::mpsc::channel::<u8>();
    let a = pool
        .submit(move || {
            drop(p.submit(move || tx.send(7).unwrap()).unwrap());
            rx.recv().unwrap()
        })
        .unwrap();
    go_tx.send(()).unwrap();
    assert_eq!(a.into_result(), Ok(7));
    pool.shutdown(true);
    assert_eq!(x.result_timeout(std::time::Duration::ZERO), Ok(&()));
}
