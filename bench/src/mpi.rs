//! Workload 7 (feature `mpi`): the MPI pool against mpi4py.futures, both spawning 2 worker ranks from a singleton
//! (run it with `bench/run-mpi`, which installs mpi4py and sets Open MPI's environment).
//!
//! The Rust side reuses [`crate::ours::executor_submit_wait`] and [`crate::ours::executor_map_chunked`] (the
//! `Executor` trait); the pool's workers are this executable, spawned with a marker argument, entering
//! [`crate::process::worker_entry`]'s registry line.

use concurrent_futures::MpiPoolExecutor;

use crate::report::{Section, Target};
use crate::stats::{Contender, Kind, Unit, interleave};
use crate::{Config, python, python_series};

/// A pool spawning `workers` ranks; `isolate`: each task in a local worker process (the default) or in the rank;
/// `ahead`: tasks each rank may hold beyond the one it runs.
fn pool(workers: usize, isolate: bool, ahead: usize) -> Option<MpiPoolExecutor> {
    MpiPoolExecutor::builder()
        .max_workers(workers)
        .isolate(isolate)
        .tasks_ahead(ahead)
        .build()
        .map_err(|error| eprintln!("MPI pool: {error}"))
        .ok()
}

fn submit_wait(workers: usize, n: usize, isolate: bool, ahead: usize) -> Option<f64> {
    let pool = pool(workers, isolate, ahead)?;
    let ns = crate::ours::executor_submit_wait(&pool, n);
    pool.shutdown(true);
    ns
}

fn map_chunked(workers: usize, n: usize, chunksize: usize, isolate: bool) -> Option<f64> {
    let pool = pool(workers, isolate, 0)?;
    // Every rank started and used before timing, as for mpi4py.
    crate::ours::executor_submit_wait(&pool, 8)?;
    let ns = crate::ours::executor_map_chunked(&pool, n, chunksize);
    pool.shutdown(true);
    ns
}

/// `mpi_pool.py <mode> --workers W --tasks N --chunksize C`, nanoseconds per item.
fn mpi4py(mode: &str, workers: usize, tasks: usize, chunksize: usize) -> Option<f64> {
    let args: Vec<String> = [
        mode,
        "--workers",
        &workers.to_string(),
        "--tasks",
        &tasks.to_string(),
        "--chunksize",
        &chunksize.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    python::run("mpi_pool.py", &args, "ns_per_item")
}

/// The two sections of workload 7.
pub fn sections(cfg: &Config) -> (Section, Section) {
    let (w, n, mn, c) = (
        cfg.process_workers,
        cfg.process_tasks,
        cfg.process_map_items,
        cfg.process_chunksize,
    );
    let submit = vec![
        Contender::new(
            "concurrent-futures `MpiPoolExecutor` (isolated: a local worker process per rank)",
            Kind::Ours,
            move || submit_wait(w, n, true, 0),
        ),
        Contender::new(
            "concurrent-futures `MpiPoolExecutor` with `isolate(false)`",
            Kind::OursVariant,
            move || submit_wait(w, n, false, 0),
        ),
        Contender::new(
            "concurrent-futures `MpiPoolExecutor` with `tasks_ahead(1)` (a task sent ahead is not cancellable)",
            Kind::PeerOther,
            move || submit_wait(w, n, true, 1),
        ),
        Contender::new(
            "mpi4py.futures `MPIPoolExecutor`",
            Kind::Python,
            move || mpi4py("submit", w, n, c),
        ),
    ];
    let map = vec![
        Contender::new(
            "concurrent-futures `MpiPoolExecutor` (isolated: a local worker process per rank)",
            Kind::Ours,
            move || map_chunked(w, mn, c, true),
        ),
        Contender::new(
            "concurrent-futures `MpiPoolExecutor` with `isolate(false)`",
            Kind::OursVariant,
            move || map_chunked(w, mn, c, false),
        ),
        Contender::new(
            "mpi4py.futures `MPIPoolExecutor`",
            Kind::Python,
            move || mpi4py("map", w, mn, c),
        ),
    ];
    let spawned = format!(
        "Both sides run as a singleton that spawns {w} worker ranks with `MPI_Comm_spawn` (Open MPI, shared \
         memory between ranks); spawning, MPI start-up and warm-up (every rank used) are not timed."
    );
    let submit = Section {
        title: format!("7a. MPI pool, {w} worker ranks: submit + result per no-op task"),
        how: format!("{spawned} Then submit {n} no-op tasks keeping the handles, then wait each."),
        unit: Unit::Nanos,
        series: interleave(submit, cfg.warmup.min(1), cfg.map_rounds),
        skipped: Vec::new(),
    };
    let map = Section {
        title: format!("7b. MPI pool, {w} worker ranks: `map` with chunksize {c}, per item"),
        how: format!(
            "{spawned} `map` of `x + 1` over {mn} integers with `chunksize({c})`, consumed to the end."
        ),
        unit: Unit::Nanos,
        series: interleave(map, cfg.warmup.min(1), cfg.map_rounds),
        skipped: Vec::new(),
    };
    (submit, map)
}

/// Issue 10's targets: at least 10x mpi4py per task, 3x per item chunked (for the default, isolated pool; the
/// in-rank variant is listed too).
pub fn targets(submit: &Section, map: &Section) -> Vec<Target> {
    let variant = |s: &Section| {
        s.series
            .iter()
            .find(|s| s.kind == Kind::OursVariant)
            .cloned()
    };
    let (submit_variant, map_variant) = (variant(submit), variant(map));
    vec![
        Target::ratio(
            "10: mpi4py.futures / ours, submit + result".into(),
            python_series(submit),
            submit.ours(),
            ">= 10x",
            |r| r >= 10.0,
        ),
        Target::ratio(
            "10: mpi4py.futures / ours with `isolate(false)`, submit + result".into(),
            python_series(submit),
            submit_variant.as_ref(),
            ">= 10x",
            |r| r >= 10.0,
        ),
        Target::ratio(
            "10: mpi4py.futures / ours, chunked `map` per item".into(),
            python_series(map),
            map.ours(),
            ">= 3x",
            |r| r >= 3.0,
        ),
        Target::ratio(
            "10: mpi4py.futures / ours with `isolate(false)`, chunked `map` per item".into(),
            python_series(map),
            map_variant.as_ref(),
            ">= 3x",
            |r| r >= 3.0,
        ),
    ]
}
