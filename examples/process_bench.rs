//! Process pool benchmark, next to Python's `ProcessPoolExecutor` measured in the same run: microseconds per
//! no-op task through `submit` + `result`, per item through `map` with `chunksize=1000`, and the cost of a
//! 4-worker pool's start, first result and shutdown.
//!
//! `cargo run --release --example process_bench` (Python's figures need `python3` on the `PATH`).

use std::process::Command;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, MapOptions, ProcessPoolExecutor};

fn noop(_: ()) {}

fn ident(x: u64) -> u64 {
    x
}

const SUBMITS: u32 = 3_000;
const MAP_ITEMS: u64 = 300_000;
const WORKERS: usize = 2;

const PYTHON: &str = r#"
import time
from concurrent.futures import ProcessPoolExecutor

def noop():
    pass

def ident(x):
    return x

if __name__ == "__main__":
    SUBMITS, MAP_ITEMS, WORKERS = 3000, 300000, 2
    with ProcessPoolExecutor(WORKERS) as pool:
        pool.submit(noop).result()
        t = time.perf_counter()
        for _ in range(SUBMITS):
            pool.submit(noop).result()
        per_submit = (time.perf_counter() - t) / SUBMITS * 1e6
        t = time.perf_counter()
        for f in [pool.submit(noop) for _ in range(SUBMITS)]:
            f.result()
        per_batch = (time.perf_counter() - t) / SUBMITS * 1e6
        list(pool.map(ident, range(10000), chunksize=1000))
        t = time.perf_counter()
        out = list(pool.map(ident, range(MAP_ITEMS), chunksize=1000))
        per_item = (time.perf_counter() - t) / MAP_ITEMS * 1e6
        assert out[-1] == MAP_ITEMS - 1
    t = time.perf_counter()
    with ProcessPoolExecutor(4) as pool:
        pool.submit(noop).result()
    lifecycle = (time.perf_counter() - t) * 1e3
    print(f"{per_submit:.1f} {per_batch:.1f} {per_item:.3f} {lifecycle:.1f}")
"#;

struct Figures {
    per_submit_us: f64,
    per_batch_us: f64,
    per_batch_ahead_us: f64,
    per_item_us: f64,
    lifecycle_ms: f64,
}

fn rust() -> Result<Figures, Error> {
    let pool = ProcessPoolExecutor::new(WORKERS)?;
    pool.submit(noop, ())?.into_result()?;
    let started = Instant::now();
    for _ in 0..SUBMITS {
        pool.submit(noop, ())?.into_result()?;
    }
    let per_submit_us = micros(started.elapsed()) / f64::from(SUBMITS);
    let per_batch_us = batch(&pool)?;

    let options = MapOptions::new().chunksize(1000);
    pool.map_with(ident, 0..10_000, options)?.for_each(drop);
    let started = Instant::now();
    let mut last = 0;
    for value in pool.map_with(ident, 0..MAP_ITEMS, options)? {
        last = value?;
    }
    let per_item_us = micros(started.elapsed()) / MAP_ITEMS as f64;
    assert_eq!(last, MAP_ITEMS - 1);
    pool.shutdown(true);

    let ahead = ProcessPoolExecutor::builder()
        .max_workers(WORKERS)
        .tasks_ahead(1)
        .build()?;
    ahead.submit(noop, ())?.into_result()?;
    let per_batch_ahead_us = batch(&ahead)?;
    ahead.shutdown(true);

    let started = Instant::now();
    let pool = ProcessPoolExecutor::new(4)?;
    pool.submit(noop, ())?.into_result()?;
    pool.shutdown(true);
    let lifecycle_ms = micros(started.elapsed()) / 1000.0;
    Ok(Figures {
        per_submit_us,
        per_batch_us,
        per_batch_ahead_us,
        per_item_us,
        lifecycle_ms,
    })
}

/// Submits `SUBMITS` no-op tasks keeping the futures, then waits each: microseconds per task.
fn batch(pool: &ProcessPoolExecutor) -> Result<f64, Error> {
    let started = Instant::now();
    let futures = (0..SUBMITS)
        .map(|_| pool.submit(noop, ()))
        .collect::<Result<Vec<_>, _>>()?;
    for future in futures {
        future.into_result()?;
    }
    Ok(micros(started.elapsed()) / f64::from(SUBMITS))
}

fn python() -> Option<Figures> {
    let output = Command::new("python3").args(["-c", PYTHON]).output().ok()?;
    if !output.status.success() {
        eprintln!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<f64> = text
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    match numbers[..] {
        [per_submit_us, per_batch_us, per_item_us, lifecycle_ms] => Some(Figures {
            per_submit_us,
            per_batch_us,
            per_batch_ahead_us: per_batch_us,
            per_item_us,
            lifecycle_ms,
        }),
        _ => None,
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> Result<(), Error> {
    concurrent_futures::process_main!(noop, ident)?;

    let ours = rust()?;
    let theirs = python();
    println!("process pool, {WORKERS} workers, no-op tasks");
    println!(
        "{:<48} {:>18} {:>20}",
        "", "concurrent-futures", "Python ProcessPool"
    );
    let python = |pick: fn(&Figures) -> f64, digits: usize| {
        theirs
            .as_ref()
            .map_or("n/a".to_string(), |f| format!("{:.*}", digits, pick(f)))
    };
    println!(
        "{:<48} {:>18.1} {:>20}",
        "submit + result, us per task",
        ours.per_submit_us,
        python(|f| f.per_submit_us, 1)
    );
    println!(
        "{:<48} {:>18.1} {:>20}",
        "submit all, then wait each: us per task",
        ours.per_batch_us,
        python(|f| f.per_batch_us, 1)
    );
    println!(
        "{:<48} {:>18.1} {:>20}",
        "  the same with tasks_ahead(1)",
        ours.per_batch_ahead_us,
        python(|f| f.per_batch_ahead_us, 1)
    );
    println!(
        "{:<48} {:>18.3} {:>20}",
        "map chunksize=1000, us per item",
        ours.per_item_us,
        python(|f| f.per_item_us, 3)
    );
    println!(
        "{:<48} {:>18.1} {:>20}",
        "4 workers: create + first result + shutdown, ms",
        ours.lifecycle_ms,
        python(|f| f.lifecycle_ms, 1)
    );
    Ok(())
}
