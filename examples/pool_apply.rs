//! Seed program 2 (`multiprocessing.Pool(3)` + `apply_async`): a pool of 3 worker processes runs 10 tasks that
//! print their pid and sleep a random time; then the pool is shut down and waited for. The output shows 3
//! distinct worker pids.
//!
//! `cargo run --example pool_apply`

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use concurrent_futures::{Error, ProcessPoolExecutor};

/// The task: runs in a worker process.
fn worker(msg: u32) {
    let started = Instant::now();
    println!("{msg} started, pid {}", std::process::id());
    std::thread::sleep(Duration::from_secs_f64(random_unit() * 2.0));
    println!("{msg} done in {:.2}", started.elapsed().as_secs_f64());
}

/// A number in [0, 1) from a tiny xorshift seeded by the clock and the pid (no `rand` needed for a demo).
fn random_unit() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) | 1;
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn main() -> Result<(), Error> {
    // The worker-mode line: in a worker process this serves tasks and never returns.
    concurrent_futures::process_main!(worker)?;

    let pool = ProcessPoolExecutor::new(3)?;
    let tasks = (0..10)
        .map(|i| pool.submit(worker, i))
        .collect::<Result<Vec<_>, _>>()?;
    println!("----start----");
    pool.shutdown(true); // Python's close() + join()
    println!("-----end-----");
    for task in tasks {
        task.result()?;
    }
    Ok(())
}
