//! The Rust peers, each driven the same way as our pool.
//!
//! Shape of every "submit + wait" sample: build the pool (not timed), run a few warm-up tasks so its threads exist,
//! then time *submit N no-op tasks, keeping a handle to each, then wait for every handle in submission order*, and
//! return nanoseconds per task. This is the shape the reference figures in `design-notes.md` were taken with. Peers
//! without a result handle get a one-shot channel per task, which is what their users write.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Tasks run before timing starts, per worker, so lazily started threads exist and are warm.
pub const WARMUP_PER_WORKER: usize = 16;

/// Nanoseconds per item for `n` items done in `elapsed`.
pub fn per_item(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_nanos() as f64 / n.max(1) as f64
}

fn rusty(workers: usize) -> rusty_pool::ThreadPool {
    rusty_pool::ThreadPool::new(workers, workers, Duration::from_secs(60))
}

/// rusty_pool: `evaluate` returns a `JoinHandle`, waited with `await_complete`.
pub fn rusty_pool_submit_wait(workers: usize, n: usize) -> Option<f64> {
    let pool = rusty(workers);
    for h in (0..WARMUP_PER_WORKER * workers)
        .map(|_| pool.evaluate(|| ()))
        .collect::<Vec<_>>()
    {
        h.await_complete();
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| pool.evaluate(|| ())).collect();
    for h in handles {
        h.await_complete();
    }
    let ns = per_item(start.elapsed(), n);
    pool.shutdown_join();
    Some(ns)
}

/// A tokio runtime whose blocking pool has at most `workers` threads.
fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(workers)
        .build()
        .expect("tokio runtime")
}

/// tokio: `spawn_blocking` returns a `JoinHandle` (a future); all handles are awaited in order inside one
/// `block_on`, the cheapest way a synchronous caller can wait on them.
pub fn tokio_submit_wait(workers: usize, n: usize) -> Option<f64> {
    let rt = tokio_rt(workers);
    let warm: Vec<_> = (0..WARMUP_PER_WORKER * workers)
        .map(|_| rt.spawn_blocking(|| ()))
        .collect();
    rt.block_on(async {
        for h in warm {
            h.await.expect("tokio task");
        }
    });
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| rt.spawn_blocking(|| ())).collect();
    rt.block_on(async {
        for h in handles {
            h.await.expect("tokio task");
        }
    });
    let ns = per_item(start.elapsed(), n);
    rt.shutdown_timeout(Duration::from_secs(5));
    Some(ns)
}

fn rayon_pool(workers: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("rayon pool")
}

/// rayon: `spawn` has no handle; a `sync_channel(1)` per task carries the result back.
pub fn rayon_submit_wait(workers: usize, n: usize) -> Option<f64> {
    let pool = rayon_pool(workers);
    let submit = |pool: &rayon::ThreadPool| {
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        pool.spawn(move || {
            let _ = tx.send(());
        });
        rx
    };
    for rx in (0..WARMUP_PER_WORKER * workers)
        .map(|_| submit(&pool))
        .collect::<Vec<_>>()
    {
        rx.recv().expect("rayon task");
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| submit(&pool)).collect();
    for rx in handles {
        rx.recv().expect("rayon task");
    }
    Some(per_item(start.elapsed(), n))
}

/// threadpool: `execute` has no handle; a `sync_channel(1)` per task carries the result back.
pub fn threadpool_submit_wait(workers: usize, n: usize) -> Option<f64> {
    let pool = threadpool::ThreadPool::new(workers);
    let submit = |pool: &threadpool::ThreadPool| {
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        pool.execute(move || {
            let _ = tx.send(());
        });
        rx
    };
    for rx in (0..WARMUP_PER_WORKER * workers)
        .map(|_| submit(&pool))
        .collect::<Vec<_>>()
    {
        rx.recv().expect("threadpool task");
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| submit(&pool)).collect();
    for rx in handles {
        rx.recv().expect("threadpool task");
    }
    let ns = per_item(start.elapsed(), n);
    pool.join();
    Some(ns)
}

/// `std::thread::spawn` per task, then `join` each: no pool at all, so the worker count does not apply.
pub fn std_thread_submit_wait(n: usize) -> Option<f64> {
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| std::thread::spawn(|| ())).collect();
    for h in handles {
        h.join().expect("thread");
    }
    Some(per_item(start.elapsed(), n))
}

/// Runs `producers` threads that start together (a barrier), each doing `work`; returns the wall time from the
/// first producer's start to the last producer's end. Each producer takes its own timestamps: with more threads
/// than cores, the coordinating thread may not run again until the producers are done.
pub fn timed_producers(producers: usize, work: impl Fn(usize) + Sync) -> Duration {
    let barrier = Barrier::new(producers);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    work(p);
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("producer"))
            .collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("one producer");
    let last = spans.iter().map(|s| s.1).max().expect("one producer");
    last - first
}

/// rusty_pool with `producers` threads each submitting `n / producers` tasks, then waiting their own handles.
pub fn rusty_pool_producers(workers: usize, producers: usize, n: usize) -> Option<f64> {
    let pool = rusty(workers);
    pool.start_core_threads();
    let each = n / producers;
    let elapsed = timed_producers(producers, |_| {
        let handles: Vec<_> = (0..each).map(|_| pool.evaluate(|| ())).collect();
        for h in handles {
            h.await_complete();
        }
    });
    pool.shutdown_join();
    Some(per_item(elapsed, each * producers))
}

/// tokio `spawn_blocking` from `producers` threads (each holding the runtime's `Handle`).
pub fn tokio_producers(workers: usize, producers: usize, n: usize) -> Option<f64> {
    let rt = tokio_rt(workers);
    let each = n / producers;
    let elapsed = timed_producers(producers, |_| {
        let handle = rt.handle();
        let hs: Vec<_> = (0..each).map(|_| handle.spawn_blocking(|| ())).collect();
        handle.block_on(async {
            for h in hs {
                h.await.expect("tokio task");
            }
        });
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    Some(per_item(elapsed, each * producers))
}

/// rayon `spawn` + a channel per task, from `producers` threads.
pub fn rayon_producers(workers: usize, producers: usize, n: usize) -> Option<f64> {
    let pool = rayon_pool(workers);
    let each = n / producers;
    let elapsed = timed_producers(producers, |_| {
        let rxs: Vec<_> = (0..each)
            .map(|_| {
                let (tx, rx) = mpsc::sync_channel::<()>(1);
                pool.spawn(move || {
                    let _ = tx.send(());
                });
                rx
            })
            .collect();
        for rx in rxs {
            rx.recv().expect("rayon task");
        }
    });
    Some(per_item(elapsed, each * producers))
}

/// threadpool `execute` + a channel per task, from `producers` threads sharing the pool.
pub fn threadpool_producers(workers: usize, producers: usize, n: usize) -> Option<f64> {
    let pool = threadpool::ThreadPool::new(workers);
    let each = n / producers;
    let elapsed = timed_producers(producers, |_| {
        let rxs: Vec<_> = (0..each)
            .map(|_| {
                let (tx, rx) = mpsc::sync_channel::<()>(1);
                pool.execute(move || {
                    let _ = tx.send(());
                });
                rx
            })
            .collect();
        for rx in rxs {
            rx.recv().expect("threadpool task");
        }
    });
    pool.join();
    Some(per_item(elapsed, each * producers))
}

/// rayon's own ordered parallel map (`into_par_iter().map().collect()`), as a reference point for `map`: it splits
/// the input up front, so it is the floor a chunked map can hope for, not a like-for-like peer.
pub fn rayon_par_map(workers: usize, n: usize) -> Option<f64> {
    use rayon::prelude::*;
    let pool = rayon_pool(workers);
    let start = Instant::now();
    let out: Vec<u64> = pool.install(|| (0..n as u64).into_par_iter().map(|x| x + 1).collect());
    let ns = per_item(start.elapsed(), n);
    assert_eq!(out.len(), n);
    Some(ns)
}

/// A hand-rolled floor: a crossbeam channel of boxed jobs, each with its own `Arc<(Mutex<Option<T>>, Condvar)>`
/// result slot. Not a peer; it shows what the simplest correct design costs on this machine.
pub mod floor {
    use super::*;
    use std::sync::{Condvar, Mutex};

    type Job = Box<dyn FnOnce() + Send>;
    type Slot = Arc<(Mutex<Option<()>>, Condvar)>;

    /// Submit + wait through the hand-rolled floor pool.
    pub fn submit_wait(workers: usize, n: usize) -> Option<f64> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    for job in rx {
                        job();
                    }
                })
            })
            .collect();
        let submit = || {
            let slot: Slot = Arc::new((Mutex::new(None), Condvar::new()));
            let theirs = Arc::clone(&slot);
            tx.send(Box::new(move || {
                *theirs.0.lock().expect("slot") = Some(());
                theirs.1.notify_one();
            }))
            .expect("floor pool");
            slot
        };
        let wait = |slot: Slot| {
            let mut v = slot.0.lock().expect("slot");
            while v.is_none() {
                v = slot.1.wait(v).expect("slot");
            }
        };
        for s in (0..WARMUP_PER_WORKER * workers)
            .map(|_| submit())
            .collect::<Vec<_>>()
        {
            wait(s);
        }
        let start = Instant::now();
        let slots: Vec<_> = (0..n).map(|_| submit()).collect();
        for s in slots {
            wait(s);
        }
        let ns = per_item(start.elapsed(), n);
        drop(tx);
        for t in threads {
            t.join().expect("floor worker");
        }
        Some(ns)
    }
}

/// Plain recursive Fibonacci, the sequential part of the fan-out workloads (8 and 9): leaves below the cutoff
/// call it, and the reference floor row is this on the whole input.
pub fn fib_seq(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_seq(n - 1) + fib_seq(n - 2)
    }
}

/// The right answer, computed iteratively, that every fan-out contender is checked against.
pub fn fib_expected(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

/// Tasks (child submissions) of the fan-out recursion on `n` with `cutoff`: one per call with `n >= cutoff`
/// (such a call submits `fib(n - 1)` and computes `fib(n - 2)` itself; calls below the cutoff run [`fib_seq`]).
pub fn fanout_tasks(n: u64, cutoff: u64) -> usize {
    let (mut below2, mut below1) = (0usize, 0usize);
    for k in 0..=n {
        let here = if k < cutoff { 0 } else { 1 + below1 + below2 };
        (below2, below1) = (below1, here);
    }
    below1
}

/// The fan-out reference floor: [`fib_seq`] on the whole input, timed per task of the parallel versions.
pub fn fib_seq_fanout(n: u64, cutoff: u64) -> Option<f64> {
    let start = Instant::now();
    let v = fib_seq(std::hint::black_box(n));
    let ns = per_item(start.elapsed(), fanout_tasks(n, cutoff));
    (v == fib_expected(n)).then_some(ns)
}

fn fib_join(n: u64, cutoff: u64) -> u64 {
    if n < cutoff {
        return fib_seq(n);
    }
    // `join` runs its first closure on this thread and leaves the second stealable: the child is `fib(n - 1)`,
    // the part the caller computes itself `fib(n - 2)`, as in the other contenders.
    let (b, a) = rayon::join(|| fib_join(n - 2, cutoff), || fib_join(n - 1, cutoff));
    a + b
}

/// rayon: the fan-out with `rayon::join` inside `install` on a `workers`-thread pool (built and warmed untimed).
pub fn rayon_fanout(workers: usize, n: u64, cutoff: u64) -> Option<f64> {
    let pool = rayon_pool(workers);
    pool.install(|| fib_join(std::hint::black_box(12), 2));
    let start = Instant::now();
    let v = pool.install(|| fib_join(std::hint::black_box(n), cutoff));
    let ns = per_item(start.elapsed(), fanout_tasks(n, cutoff));
    (v == fib_expected(n)).then_some(ns)
}

type BoxedFib = std::pin::Pin<Box<dyn std::future::Future<Output = Option<u64>> + Send>>;

fn fib_spawn(n: u64, cutoff: u64) -> BoxedFib {
    Box::pin(async move {
        if n < cutoff {
            return Some(fib_seq(n));
        }
        let child = tokio::spawn(fib_spawn(n - 1, cutoff));
        let b = fib_spawn(n - 2, cutoff).await?;
        let a = child.await.ok()??;
        Some(a + b)
    })
}

/// tokio: the fan-out on a multi-thread runtime with `workers` worker threads; each call `tokio::spawn`s its child
/// and awaits the `JoinHandle` (boxed async recursion). The root is spawned too, so all of it runs on the workers.
pub fn tokio_fanout(workers: usize, n: u64, cutoff: u64) -> Option<f64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("tokio runtime");
    rt.block_on(rt.spawn(fib_spawn(std::hint::black_box(12), 2)))
        .ok()??;
    let start = Instant::now();
    let v = rt
        .block_on(rt.spawn(fib_spawn(std::hint::black_box(n), cutoff)))
        .ok()??;
    let ns = per_item(start.elapsed(), fanout_tasks(n, cutoff));
    rt.shutdown_timeout(Duration::from_secs(5));
    (v == fib_expected(n)).then_some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_counts_one_task_per_call_at_or_above_the_cutoff() {
        // Fine-grained fib(30): one child per call with n >= 2, i.e. fib(31) - 1.
        assert_eq!(fanout_tasks(30, 2), 1_346_268);
        // Coarse-grained: 18 levels above the cutoff give fib(21) - 1 tasks.
        assert_eq!(fanout_tasks(33, 15), 10_945);
        assert_eq!(fanout_tasks(15, 15), 1);
        assert_eq!(fanout_tasks(14, 15), 0);
    }

    #[test]
    fn fib_versions_agree() {
        assert_eq!(fib_expected(30), 832_040);
        assert_eq!(fib_seq(20), fib_expected(20));
        assert_eq!(fib_join(20, 2), fib_expected(20));
    }
}
