//! Stress: 100,000 tasks with concurrent cancel, callbacks, wait, as_completed and a racing shutdown. Every future
//! ends exactly once (a value, an error or cancelled), every callback runs exactly once, nothing hangs.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use concurrent_futures::{Error, Future, ReturnWhen, ThreadPoolExecutor, as_completed, wait};

const TASKS: usize = 100_000;
const PRODUCERS: usize = 4;

/// Every accepted task's index and future, shared by the producers.
type Accepted = Arc<Mutex<Vec<(usize, Future<usize>)>>>;

#[test]
fn hundred_thousand_tasks_with_racing_cancel_wait_and_shutdown() {
    let pool = ThreadPoolExecutor::new(4).unwrap();
    let ran = Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let callbacks = Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let accepted: Accepted = Arc::new(Mutex::new(Vec::new()));
    let start = Arc::new(Barrier::new(PRODUCERS + 2));

    // Producers submit, attach a callback, and cancel every seventh future right away.
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (pool, ran, callbacks, accepted, start) = (
                pool.clone(),
                ran.clone(),
                callbacks.clone(),
                accepted.clone(),
                start.clone(),
            );
            thread::spawn(move || {
                start.wait();
                let mut mine = Vec::new();
                for i in (p..TASKS).step_by(PRODUCERS) {
                    let r = ran.clone();
                    let future = match pool.submit(move || {
                        r[i].fetch_add(1, Ordering::SeqCst);
                        if i % 1000 == 999 {
                            panic!("task {i} panics");
                        }
                        i
                    }) {
                        Ok(future) => future,
                        Err(error) => {
                            assert_eq!(error, Error::Shutdown);
                            continue;
                        }
                    };
                    let c = callbacks.clone();
                    future.add_done_callback(move |f| {
                        assert!(f.done());
                        c[i].fetch_add(1, Ordering::SeqCst);
                    });
                    if i % 7 == 0 {
                        future.cancel();
                    }
                    mine.push((i, future));
                }
                accepted.lock().unwrap().extend(mine);
            })
        })
        .collect();

    // A racing shutdown that cancels what is still queued, once producers are well under way.
    let shutter = {
        let (pool, start, callbacks) = (pool.clone(), start.clone(), callbacks.clone());
        thread::spawn(move || {
            start.wait();
            // Wait (without sleeping) until a good share of callbacks have run, then shut down mid-stream.
            while callbacks
                .iter()
                .filter(|c| c.load(Ordering::Relaxed) > 0)
                .count()
                < TASKS / 4
            {
                thread::yield_now();
            }
            pool.shutdown_with(false, true);
        })
    };
    start.wait();
    for p in producers {
        p.join().unwrap();
    }
    shutter.join().unwrap();
    pool.shutdown(true);

    let accepted = std::mem::take(&mut *accepted.lock().unwrap());
    assert!(!accepted.is_empty());
    let all: Vec<&Future<usize>> = accepted.iter().map(|(_, f)| f).collect();

    // wait and as_completed over everything finish (all are done after shutdown(wait=true)).
    let (done, not_done) = wait(all.iter().copied(), None, ReturnWhen::AllCompleted);
    assert_eq!(done.len(), accepted.len());
    assert!(not_done.is_empty());
    assert_eq!(
        as_completed(all.iter().copied(), None).count(),
        accepted.len()
    );

    let mut seen = HashSet::new();
    for (i, future) in &accepted {
        assert!(seen.insert(*i));
        assert!(future.done(), "task {i} never ended");
        assert_eq!(
            callbacks[*i].load(Ordering::SeqCst),
            1,
            "callback of task {i} ran once"
        );
        let runs = ran[*i].load(Ordering::SeqCst);
        match future.result() {
            Ok(value) => {
                assert_eq!(*value, *i);
                assert_eq!(runs, 1);
            }
            Err(Error::Cancelled) => assert_eq!(runs, 0, "cancelled task {i} ran"),
            Err(Error::Panicked { message }) => {
                assert_eq!(message, format!("task {i} panics"));
                assert_eq!(runs, 1);
            }
            Err(other) => panic!("task {i}: unexpected {other:?}"),
        }
    }
    // A task that was never accepted never ran.
    for (i, r) in ran.iter().enumerate() {
        if !seen.contains(&i) {
            assert_eq!(r.load(Ordering::SeqCst), 0);
            assert_eq!(callbacks[i].load(Ordering::SeqCst), 0);
        }
    }
}

/// Waiters racing completion: many threads wait on the same futures while they complete.
#[test]
fn many_waiters_on_the_same_futures() {
    let pool = ThreadPoolExecutor::new(4).unwrap();
    for _ in 0..20 {
        let futures: Arc<Vec<Future<usize>>> =
            Arc::new((0..500).map(|i| pool.submit(move || i).unwrap()).collect());
        let waiters: Vec<_> = (0..4)
            .map(|w| {
                let futures = futures.clone();
                thread::spawn(move || match w {
                    0 => futures.iter().map(|f| *f.result().unwrap()).sum::<usize>(),
                    1 => as_completed(futures.iter(), None)
                        .map(|f| *f.unwrap().result().unwrap())
                        .sum(),
                    2 => {
                        let (done, _) = wait(futures.iter(), None, ReturnWhen::AllCompleted);
                        done.iter().map(|f| *f.result().unwrap()).sum()
                    }
                    _ => futures.iter().filter(|f| f.exception().is_none()).count() * 499 / 2,
                })
            })
            .collect();
        for w in waiters {
            assert_eq!(w.join().unwrap(), (0..500).sum::<usize>());
        }
    }
}
