//! Workload 6: the process pool against Python's `ProcessPoolExecutor`.
//!
//! The Rust side reuses the generic [`crate::ours::executor_submit_wait`] and
//! [`crate::ours::executor_map_chunked`], which run against any pool through the `Executor` trait; only the pool's
//! construction and the worker-mode line in `main` ([`worker_entry`]) are specific to the process pool. Built
//! without the `process` feature (`--no-default-features`), the rows report no figure.

#[cfg(feature = "process")]
use concurrent_futures::ProcessPoolExecutor;

/// Entered first thing in `main`: in a process-pool worker (this same executable re-run) it serves the
/// registered tasks and never returns; in the harness itself it registers them and returns.
pub fn worker_entry() {
    if let Err(error) = concurrent_futures::process_main!(crate::ours::noop, crate::ours::inc) {
        eprintln!("process pool task registry: {error}");
        std::process::exit(2);
    }
}

/// A pool of `workers` processes; `tasks_ahead` > 0 sends small tasks ahead to busy workers (they can no longer
/// be cancelled then, as in CPython).
#[cfg(feature = "process")]
fn pool(workers: usize, tasks_ahead: usize) -> Option<ProcessPoolExecutor> {
    ProcessPoolExecutor::builder()
        .max_workers(workers)
        .tasks_ahead(tasks_ahead)
        .build()
        .ok()
}

/// Submit + result per no-op task through the process pool (default configuration: every queued task can be
/// cancelled).
pub fn submit_wait(workers: usize, n: usize) -> Option<f64> {
    #[cfg(feature = "process")]
    return crate::ours::executor_submit_wait(&pool(workers, 0)?, n);
    #[cfg(not(feature = "process"))]
    return none(workers, n);
}

/// The same with `tasks_ahead(1)`.
pub fn submit_wait_ahead(workers: usize, n: usize) -> Option<f64> {
    #[cfg(feature = "process")]
    return crate::ours::executor_submit_wait(&pool(workers, 1)?, n);
    #[cfg(not(feature = "process"))]
    return none(workers, n);
}

/// `map` with `chunksize` per item through the process pool.
pub fn map_chunked(workers: usize, n: usize, chunksize: usize) -> Option<f64> {
    #[cfg(feature = "process")]
    return crate::ours::executor_map_chunked(&pool(workers, 0)?, n, chunksize);
    #[cfg(not(feature = "process"))]
    return none(workers, n + chunksize);
}

/// No figure: this build has no process pool.
#[cfg(not(feature = "process"))]
fn none(_: usize, _: usize) -> Option<f64> {
    None
}
