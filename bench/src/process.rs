//! Workload 6: the process pool against Python's `ProcessPoolExecutor` (PENDING HOOK).
//!
//! The Python side is ready (`bench/python/process_pool.py`). The Rust side reuses the generic
//! [`crate::ours::executor_submit_wait`] and [`crate::ours::executor_map_chunked`], which already run against the
//! thread pool through the `Executor` trait; only the pool's construction and the worker-mode line in `main` are
//! specific to the process pool. Those are compiled with the `process-pool` feature of this crate, so an API still
//! in flux cannot break the workspace build:
//!
//! - the library has no `ProcessPoolExecutor` yet (`build.rs` looks): the rows say "not built yet";
//! - it has one but the feature is off: the rows say how to enable them;
//! - `--features process-pool`: the rows run. If they do not compile, adapt `rust_pool` and [`worker_entry`] (marked `ADAPT`).

/// Why the Rust rows of workload 6 cannot run in this build, or `None` if they can.
pub fn unavailable() -> Option<&'static str> {
    if cfg!(feature = "process-pool") {
        None
    } else if cfg!(cf_bench_has_process_pool) {
        Some("pending: rerun with `--features process-pool` to wire the harness to the new pool")
    } else {
        Some("not built yet: the library has no ProcessPoolExecutor")
    }
}

/// Entered first thing in `main`: lets a process-pool worker (this same executable re-run) serve tasks.
pub fn worker_entry() {
    #[cfg(feature = "process-pool")]
    {
        // ADAPT: the process pool's documented "one line in main" goes here, and the task functions
        // (`crate::ours::noop`, `crate::ours::inc`) are registered the way the pool requires.
        todo!("process pool worker entry");
    }
}

/// Submit + result per no-op task through the process pool.
#[cfg_attr(not(feature = "process-pool"), allow(unused_variables))]
pub fn submit_wait(workers: usize, n: usize) -> Option<f64> {
    #[cfg(feature = "process-pool")]
    {
        let pool = rust_pool(workers)?;
        return crate::ours::executor_submit_wait(&pool, n);
    }
    #[allow(unreachable_code)]
    None
}

/// `map` with `chunksize` per item through the process pool.
#[cfg_attr(not(feature = "process-pool"), allow(unused_variables))]
pub fn map_chunked(workers: usize, n: usize, chunksize: usize) -> Option<f64> {
    #[cfg(feature = "process-pool")]
    {
        let pool = rust_pool(workers)?;
        return crate::ours::executor_map_chunked(&pool, n, chunksize);
    }
    #[allow(unreachable_code)]
    None
}

/// ADAPT: the process pool's constructor.
#[cfg(feature = "process-pool")]
fn rust_pool(workers: usize) -> Option<concurrent_futures::ProcessPoolExecutor> {
    concurrent_futures::ProcessPoolExecutor::new(workers).ok()
}
