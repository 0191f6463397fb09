//! This crate's contenders, driven exactly like the peers in `peers.rs` (same shapes, same warm-up).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use concurrent_futures::{Executor, MapOptions, ThreadPoolExecutor};

use crate::peers::{
    WARMUP_PER_WORKER, fanout_tasks, fib_expected, fib_seq, per_item, timed_producers,
};

/// A pool with `workers` threads, warmed up so every thread has started and run a task.
fn warm_pool(workers: usize) -> Option<ThreadPoolExecutor> {
    let pool = ThreadPoolExecutor::new(workers).ok()?;
    let warm: Vec<_> = (0..WARMUP_PER_WORKER * workers)
        .map(|_| pool.submit(|| ()))
        .collect::<Result<_, _>>()
        .ok()?;
    for f in warm {
        f.into_result().ok()?;
    }
    Some(pool)
}

/// Submit N no-op tasks, then take each result out with `into_result` (the owning path).
pub fn submit_wait(workers: usize, n: usize) -> Option<f64> {
    let pool = warm_pool(workers)?;
    let start = Instant::now();
    let futures: Vec<_> = (0..n)
        .map(|_| pool.submit(|| ()))
        .collect::<Result<_, _>>()
        .ok()?;
    for f in futures {
        f.into_result().ok()?;
    }
    let ns = per_item(start.elapsed(), n);
    pool.shutdown(true);
    Some(ns)
}

/// Submit N no-op tasks, then read each result by reference with `result()` (the handle is kept and dropped later,
/// as Python code does).
pub fn submit_wait_by_ref(workers: usize, n: usize) -> Option<f64> {
    let pool = warm_pool(workers)?;
    let start = Instant::now();
    let futures: Vec<_> = (0..n)
        .map(|_| pool.submit(|| ()))
        .collect::<Result<_, _>>()
        .ok()?;
    for f in &futures {
        f.result().ok()?;
    }
    let ns = per_item(start.elapsed(), n);
    drop(futures);
    pool.shutdown(true);
    Some(ns)
}

/// `producers` threads share one pool (by reference), each submitting `n / producers` tasks, then waiting its own.
pub fn producers(workers: usize, producers: usize, n: usize) -> Option<f64> {
    let pool = warm_pool(workers)?;
    let each = n / producers;
    let elapsed = timed_producers(producers, |_| {
        let futures: Vec<_> = (0..each)
            .map(|_| pool.submit(|| ()).expect("submit"))
            .collect();
        for f in futures {
            f.into_result().expect("no-op task");
        }
    });
    pool.shutdown(true);
    Some(per_item(elapsed, each * producers))
}

/// `map_with(|x| x + 1, 0..n, options)` consumed to the end; nanoseconds per item.
pub fn map(workers: usize, n: usize, options: MapOptions) -> Option<f64> {
    let pool = warm_pool(workers)?;
    let start = Instant::now();
    let mut count = 0usize;
    for r in pool.map_with(|x: u64| x + 1, 0..n as u64, options).ok()? {
        r.ok()?;
        count += 1;
    }
    let ns = per_item(start.elapsed(), n);
    assert_eq!(count, n);
    pool.shutdown(true);
    Some(ns)
}

/// Callback latency: one worker is held by a gate while N tasks are queued, each returning a timestamp as its last
/// act, each with a done-callback that stores `now - timestamp`. Attaching before the gate opens guarantees the
/// callback runs on the completing worker (not at once in the caller). Returns the median latency in ns.
pub fn callback_latency(n: usize) -> Option<f64> {
    let pool = warm_pool(1)?;
    let (gate, release, started) = crate::memory::gate();
    let gate = pool.submit(gate).ok()?;
    started.recv().ok()?;
    let origin = Instant::now();
    let latencies: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let mut futures = Vec::with_capacity(n);
    for i in 0..n {
        let f = pool
            .submit(move || origin.elapsed().as_nanos() as u64)
            .ok()?;
        let latencies = Arc::clone(&latencies);
        f.add_done_callback(move |f| {
            let end = origin.elapsed().as_nanos() as u64;
            if let Ok(stamp) = f.result() {
                latencies[i].store(end.saturating_sub(*stamp), Ordering::Relaxed);
            }
        });
        futures.push(f);
    }
    drop(release);
    gate.into_result().ok()?;
    for f in &futures {
        f.result().ok()?;
    }
    // Callbacks run after the value is published; shutdown(true) joins the worker, so all have run.
    pool.shutdown(true);
    let samples: Vec<f64> = latencies
        .iter()
        .map(|l| l.load(Ordering::Relaxed) as f64)
        .collect();
    crate::stats::Summary::of(&samples).map(|s| s.median)
}

/// Workload 5, child side: bytes per pending no-op future with `count` queued behind a gate.
pub fn memory(count: usize) -> Option<f64> {
    use crate::memory::{gate, per_item, rss_bytes};
    let pool = ThreadPoolExecutor::new(1).ok()?;
    let (task, release, started) = gate();
    let gate = pool.submit(task).ok()?;
    started.recv().ok()?;
    let mut futures = Vec::with_capacity(count);
    let before = rss_bytes()?;
    for _ in 0..count {
        futures.push(pool.submit(|| ()).ok()?);
    }
    let after = rss_bytes()?;
    // The child exits right after printing: leak everything rather than drain a million tasks.
    std::mem::forget((pool, gate, futures, release));
    Some(per_item(before, after, count))
}

/// The no-op task function of workload 6 (a plain `fn`, as a process pool needs).
pub fn noop(_: ()) {}

/// The map function of workload 6.
pub fn inc(x: u64) -> u64 {
    x + 1
}

/// Workload 6 shape through the `Executor` trait (so it works for either pool): submit N no-op function tasks, then
/// take each result. Nanoseconds per task.
pub fn executor_submit_wait<E: Executor>(pool: &E, n: usize) -> Option<f64> {
    let warm: Vec<_> = (0..8)
        .map(|_| Executor::submit(pool, noop, ()))
        .collect::<Result<_, _>>()
        .ok()?;
    for f in warm {
        f.into_result().ok()?;
    }
    let start = Instant::now();
    let futures: Vec<_> = (0..n)
        .map(|_| Executor::submit(pool, noop, ()))
        .collect::<Result<_, _>>()
        .ok()?;
    for f in futures {
        f.into_result().ok()?;
    }
    Some(per_item(start.elapsed(), n))
}

/// Workload 6 shape through the `Executor` trait: `map` of `inc` over `0..n` with `chunksize`. Nanoseconds per item.
pub fn executor_map_chunked<E: Executor>(pool: &E, n: usize, chunksize: usize) -> Option<f64> {
    let start = Instant::now();
    let mut count = 0usize;
    let options = MapOptions::new().chunksize(chunksize);
    for r in Executor::map_with(pool, inc, 0..n as u64, options).ok()? {
        r.ok()?;
        count += 1;
    }
    assert_eq!(count, n);
    Some(per_item(start.elapsed(), n))
}

/// [`executor_submit_wait`] on a fresh thread pool (the trait path's overhead, next to the closure path).
pub fn thread_pool_trait_submit_wait(workers: usize, n: usize) -> Option<f64> {
    let pool = warm_pool(workers)?;
    let ns = executor_submit_wait(&pool, n);
    pool.shutdown(true);
    ns
}

/// [`executor_map_chunked`] on a fresh thread pool.
pub fn thread_pool_trait_map_chunked(workers: usize, n: usize, chunksize: usize) -> Option<f64> {
    let pool = warm_pool(workers)?;
    let ns = executor_map_chunked(&pool, n, chunksize);
    pool.shutdown(true);
    ns
}

/// One call of the fan-out recursion (workloads 8 and 9): below `cutoff` it computes sequentially; otherwise it
/// submits `fib(n - 1)` as a child task to the same pool (with a clone of the pool), computes `fib(n - 2)` itself
/// the same way, then waits for the child with `into_result` (a child not yet started then runs on this thread).
fn fib_task(pool: &ThreadPoolExecutor, n: u64, cutoff: u64) -> Option<u64> {
    if n < cutoff {
        return Some(fib_seq(n));
    }
    let p = pool.clone();
    let child = pool.submit(move || fib_task(&p, n - 1, cutoff)).ok()?;
    let b = fib_task(pool, n - 2, cutoff)?;
    let a = child.into_result().ok()??;
    Some(a + b)
}

/// The fan-out on a fresh warmed pool of `workers`: the root call is submitted too, so all of it runs on the
/// workers; nanoseconds per child task, `None` on a wrong value.
pub fn fanout(workers: usize, n: u64, cutoff: u64) -> Option<f64> {
    let pool = warm_pool(workers)?;
    let p = pool.clone();
    let start = Instant::now();
    let v = pool
        .submit(move || fib_task(&p, std::hint::black_box(n), cutoff))
        .ok()?
        .into_result()
        .ok()??;
    let ns = per_item(start.elapsed(), fanout_tasks(n, cutoff));
    pool.shutdown(true);
    (v == fib_expected(n)).then_some(ns)
}
