//! The concurrent-futures benchmark harness: this crate against its Rust peers and Python, in one run.
//!
//! ```text
//! cargo run --release -p concurrent-futures-bench                 # full run (~5-10 min on 2 cores), prints the table
//! cargo run --release -p concurrent-futures-bench -- --write      # same, and writes BENCHMARKS.md
//! cargo run --release -p concurrent-futures-bench -- --smoke      # tiny counts, for CI (seconds)
//! cargo run --release -p concurrent-futures-bench -- --only 1,5   # a subset of the workloads
//! cargo run --release -p concurrent-futures-bench -- --only 8,9,10 # issue 14's workloads (~1-2 min on 2 cores)
//! ```
//!
//! Every group of contenders runs interleaved (see [`stats::interleave`]); every figure is the median of the
//! rounds with min and max; every ratio is the median of per-round ratios. Workloads 1-7 are those of issue 6,
//! 8-10 those of issue 14:
//!
//! 1. submit + wait for a no-op task at 1, 2 and 4 workers;
//! 2. four producer threads into one pool;
//! 3. `map` over 1,000,000 items with and without `buffersize`, and with `chunksize`;
//! 4. done-callback latency;
//! 5. bytes per pending future (a fresh child process per figure);
//! 6. the process pool against Python's;
//! 7. with `--features mpi` (run by `bench/run-mpi`): the MPI pool against mpi4py.futures;
//! 8. fine-grained recursive fan-out: `fib(30)`, every call with `n >= 2` submits `fib(n - 1)` to the same pool
//!    and waits it inside the worker (about 1.35M tasks), at 1 and 2 workers, against `rayon::join` and
//!    `tokio::spawn`, with a sequential floor;
//! 9. coarse-grained fan-out: the same on `fib(33)` with calls below 15 sequential (10,945 tasks of about
//!    0.6 us), at 1 and 2 workers;
//! 10. workload 1's submit + wait at 1, 2 and 4 workers while `2 * cores` busy-loop threads saturate the cores.

mod machine;
mod memory;
#[cfg(feature = "mpi")]
mod mpi;
mod ours;
mod peers;
mod process;
mod python;
mod report;
mod spin;
mod stats;

use std::path::PathBuf;
use std::time::Instant;

use concurrent_futures::MapOptions;

use report::{Section, Target, targets_markdown};
use stats::{Contender, Kind, Unit, fastest_of, interleave};

/// Counts and repetitions of one run (full or smoke).
#[derive(Clone, Debug)]
struct Config {
    smoke: bool,
    warmup: usize,
    rounds: usize,
    /// Workload 1: worker counts, tasks per sample for the Rust pools, for `std::thread::spawn`, for Python.
    workers: Vec<usize>,
    tasks: usize,
    std_tasks: usize,
    py_tasks: usize,
    /// Workload 2: producer threads, pool workers.
    producers: usize,
    producer_workers: usize,
    /// Workload 3: items per `map` (Rust, Python), workers, and the options tried.
    map_items: usize,
    py_map_items: usize,
    map_workers: usize,
    map_rounds: usize,
    /// Workload 4: tasks per sample (Rust, Python).
    callback_tasks: usize,
    py_callback_tasks: usize,
    /// Workload 5: queued tasks per child, rounds.
    memory_tasks: usize,
    memory_rounds: usize,
    /// Workload 6: tasks (submit), items (map), chunksize, workers.
    process_tasks: usize,
    process_map_items: usize,
    process_chunksize: usize,
    process_workers: usize,
    /// Workloads 8 and 9: worker counts, rounds of 8 and of 9 (whose samples are short), fine-grained `fib(n)`,
    /// coarse-grained `fib(n)` and its cutoff.
    fanout_workers: Vec<usize>,
    fanout_rounds: usize,
    coarse_rounds: usize,
    fine_n: u64,
    coarse_n: u64,
    coarse_cutoff: u64,
    /// Workload 10: tasks per sample and rounds (worker counts: `workers`).
    saturated_tasks: usize,
    saturated_rounds: usize,
}

impl Config {
    fn full() -> Config {
        Config {
            smoke: false,
            warmup: 1,
            rounds: 15,
            workers: vec![1, 2, 4],
            tasks: 100_000,
            std_tasks: 2_000,
            py_tasks: 20_000,
            producers: 4,
            producer_workers: 4,
            map_items: 1_000_000,
            py_map_items: 50_000,
            map_workers: 2,
            map_rounds: 7,
            callback_tasks: 100_000,
            py_callback_tasks: 20_000,
            memory_tasks: 1_000_000,
            memory_rounds: 3,
            process_tasks: 5_000,
            process_map_items: 200_000,
            process_chunksize: 1_000,
            process_workers: 2,
            fanout_workers: vec![1, 2],
            fanout_rounds: 15,
            coarse_rounds: 31,
            fine_n: 30,
            coarse_n: 33,
            coarse_cutoff: 15,
            saturated_tasks: 100_000,
            saturated_rounds: 21,
        }
    }

    fn smoke() -> Config {
        Config {
            smoke: true,
            warmup: 0,
            rounds: 1,
            workers: vec![1, 2, 4],
            tasks: 2_000,
            std_tasks: 50,
            py_tasks: 200,
            producers: 4,
            producer_workers: 4,
            map_items: 10_000,
            py_map_items: 1_000,
            map_workers: 2,
            map_rounds: 1,
            callback_tasks: 1_000,
            py_callback_tasks: 200,
            memory_tasks: 10_000,
            memory_rounds: 1,
            process_tasks: 100,
            process_map_items: 5_000,
            process_chunksize: 1_000,
            process_workers: 2,
            fanout_workers: vec![1, 2],
            fanout_rounds: 1,
            coarse_rounds: 1,
            fine_n: 16,
            coarse_n: 20,
            coarse_cutoff: 12,
            saturated_tasks: 2_000,
            saturated_rounds: 1,
        }
    }
}

/// Command-line options of the main run.
struct Options {
    config: Config,
    write: bool,
    only: Option<Vec<u32>>,
}

fn usage() -> ! {
    eprintln!(
        "usage: concurrent-futures-bench [--smoke] [--write] [--only N,N,...]   (workloads 1-10; 7 needs \
         --features mpi)\n       \
         concurrent-futures-bench mem-child <{}> <count>",
        memory::CONTENDERS.join("|")
    );
    std::process::exit(2);
}

fn parse_options(args: &[String]) -> Options {
    let mut options = Options {
        config: Config::full(),
        write: false,
        only: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smoke" => options.config = Config::smoke(),
            "--write" => options.write = true,
            "--only" => {
                let list = it.next().unwrap_or_else(|| usage());
                let parsed: Result<Vec<u32>, _> = list.split(',').map(str::parse).collect();
                options.only = Some(parsed.unwrap_or_else(|_| usage()));
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if options.write && options.only.as_ref().is_some_and(|only| only != &[7]) {
        // A partial run would erase the other workloads' figures; workload 7 alone has its own section.
        eprintln!(
            "error: --write records a full run (or, from bench/run-mpi, workload 7 alone), not --only"
        );
        std::process::exit(2);
    }
    options
}

fn main() {
    process::worker_entry();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("mem-child") {
        let (Some(name), Some(count)) = (args.get(1), args.get(2).and_then(|c| c.parse().ok()))
        else {
            usage()
        };
        std::process::exit(memory::child_main(name, count));
    }
    let options = parse_options(&args);
    let cfg = &options.config;
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf();
    let machine = machine::Machine::detect(&workspace);
    let wanted = |n: u32| options.only.as_ref().is_none_or(|o| o.contains(&n));
    let started = Instant::now();

    let mut sections = Vec::new();
    let mut targets = Vec::new();
    if wanted(1) {
        for &w in &cfg.workers {
            eprint!("workload 1, {w} worker(s) ");
            let section = submit_wait(cfg, w);
            targets.extend(submit_wait_targets(&section, w));
            sections.push(section);
        }
    }
    if wanted(2) {
        eprint!("workload 2 ");
        sections.push(producers(cfg));
    }
    if wanted(3) {
        eprint!("workload 3 ");
        sections.push(map(cfg));
    }
    if wanted(4) {
        eprint!("workload 4 ");
        sections.push(callbacks(cfg));
    }
    if wanted(5) {
        eprint!("workload 5 ");
        let section = memory_section(cfg);
        targets.extend(memory_targets(&section));
        sections.push(section);
    }
    if wanted(6) {
        eprint!("workload 6 ");
        let (submit, map) = process_sections(cfg);
        targets.extend(process_targets(&submit, &map));
        sections.push(submit);
        sections.push(map);
    }

    #[cfg(feature = "mpi")]
    if wanted(7) {
        eprint!("workload 7 ");
        let (submit, map) = mpi::sections(cfg);
        targets.extend(mpi::targets(&submit, &map));
        sections.push(submit);
        sections.push(map);
    }
    if wanted(8) {
        eprint!("workload 8 ");
        let fine = fanout(cfg, Grain::Fine);
        targets.extend(fanout_targets(&fine, Grain::Fine, &cfg.fanout_workers));
        sections.extend(fine);
    }
    if wanted(9) {
        eprint!("workload 9 ");
        let coarse = fanout(cfg, Grain::Coarse);
        targets.extend(fanout_targets(&coarse, Grain::Coarse, &cfg.fanout_workers));
        sections.extend(coarse);
    }
    if wanted(10) {
        for &w in &cfg.workers {
            eprint!("workload 10, {w} worker(s) ");
            let section = saturated(cfg, w);
            targets.extend(saturated_targets(&section, w));
            sections.push(section);
        }
    }

    let mpi_only = options.only.as_deref() == Some(&[7]);
    let doc = document(&machine, cfg, &targets, &sections, started.elapsed());
    println!("{doc}");
    // A Rust contender that failed is a broken harness or a broken pool: fail the run (CI's smoke run relies on
    // it). Python may be missing on a machine; its rows then say so and the run still passes.
    let failed: Vec<String> = sections
        .iter()
        .flat_map(|s| &s.series)
        .filter(|s| s.kind != Kind::Python && s.samples.iter().any(Option::is_none))
        .map(|s| s.name.clone())
        .collect();
    if options.write && failed.is_empty() {
        let path = workspace.join("BENCHMARKS.md");
        let previous = std::fs::read_to_string(&path).unwrap_or_default();
        let new = if mpi_only {
            // `bench/run-mpi --write`: replace only the MPI section, keep the main run's figures.
            let section = mpi_document(&machine, cfg, &targets, &sections, started.elapsed());
            replace_mpi_section(&previous, &section)
        } else {
            let ran_mpi = sections.iter().any(|s| s.title.starts_with("7a."));
            if ran_mpi {
                doc.clone()
            } else {
                keep_mpi_section(&doc, &previous)
            }
        };
        std::fs::write(&path, new).expect("write BENCHMARKS.md");
        eprintln!("wrote {}", path.display());
    }
    if !failed.is_empty() {
        eprintln!("error: these contenders failed at least once: {failed:?}");
        std::process::exit(1);
    }
}

/// Heading of the MPI section, which `bench/run-mpi` records separately (it needs Open MPI and mpi4py).
const MPI_HEADING: &str = "\n## MPI pool (issue 10)";

/// `doc`, followed by the MPI section of the `previous` report when `doc` has none: a run without workload 7
/// must not erase the figures `bench/run-mpi` recorded.
fn keep_mpi_section(doc: &str, previous: &str) -> String {
    match previous.find(MPI_HEADING) {
        Some(at) if !doc.contains(MPI_HEADING) => {
            format!("{}\n{}", doc.trim_end(), &previous[at..])
        }
        _ => doc.to_string(),
    }
}

/// The MPI section (workload 7 alone, from `bench/run-mpi --write`), with the facts of its own run.
fn mpi_document(
    m: &machine::Machine,
    cfg: &Config,
    targets: &[Target],
    sections: &[Section],
    took: std::time::Duration,
) -> String {
    let mut out = format!("{}: workload 7\n\n", MPI_HEADING.trim_start());
    out.push_str(&format!(
        "Produced by `bench/run-mpi --write` (the same harness with `--features mpi -- --only 7`; it installs \
         mpi4py into a virtualenv, built against the same Open MPI), recorded separately from the run above: {}, \
         commit {}, load average at start {}, {} recorded rounds per group after {} warm-up round(s); run took \
         {:.0} s{}.\n\n",
        m.date,
        m.commit,
        m.load_at_start,
        cfg.rounds,
        cfg.warmup,
        took.as_secs_f64(),
        if cfg.smoke {
            " (SMOKE: tiny counts, the figures mean nothing)"
        } else {
            ""
        },
    ));
    out.push_str(&targets_markdown(targets));
    out.push('\n');
    out.push_str(&sections_markdown(sections));
    out
}

/// Every section's table, one after another.
fn sections_markdown(sections: &[Section]) -> String {
    sections.iter().map(|s| s.markdown() + "\n").collect()
}

/// The whole report as Markdown.
fn document(
    m: &machine::Machine,
    cfg: &Config,
    targets: &[Target],
    sections: &[Section],
    took: std::time::Duration,
) -> String {
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(
        "Produced by `cargo run --release -p concurrent-futures-bench -- --write` (the harness in `bench/`). \
         Contenders of each group run interleaved in one process run (A, B, C, A, B, C, ...); every figure is \
         the median of the rounds, with min and max; every ratio is the median of the per-round ratios of two \
         contenders, with its range. Lower is better everywhere.\n\n",
    );
    out.push_str(&format!(
        "- machine: {} ({} cores), load average at start {}\n- date: {}\n- commit: {}\n- {}; Python {}\n\
         - mode: {}, {} recorded rounds per group after {} warm-up round(s); run took {:.0} s\n\n",
        m.cpu,
        m.cores,
        m.load_at_start,
        m.date,
        m.commit,
        m.rustc,
        m.python.as_deref().unwrap_or("not found"),
        if cfg.smoke {
            "SMOKE (tiny counts: the figures mean nothing)"
        } else {
            "full"
        },
        cfg.rounds,
        cfg.warmup,
        took.as_secs_f64(),
    ));
    out.push_str(
        "On a small shared machine these figures are noisy (other processes compete for the same cores); \
         compare the paired ratios rather than absolute figures across runs.\n\n",
    );
    out.push_str(
        "Commands: `cargo run --release -p concurrent-futures-bench` prints this report; `-- --write` also \
         writes it here; `-- --smoke` runs tiny counts (what CI runs, so the harness cannot rot); \
         `-- --only 1,5` runs some workloads. Python's side is `bench/python/*.py`, run with `python3` (or \
         `$PYTHON`). The harness's `main` starts with the process pool's worker-mode line, so the same \
         binary serves as the pool's workers (see `bench/src/process.rs`).\n\n",
    );
    if !targets.is_empty() {
        out.push_str("## Targets (issues 6 and 14)\n\n");
        out.push_str(&targets_markdown(targets));
        out.push('\n');
    }
    out.push_str("## Workloads\n\n");
    out.push_str(&sections_markdown(sections));
    out
}

/// Workloads 1 and 10: ours and the peers with a result handle, submitting `n` no-op tasks to `w` workers.
fn submit_wait_contenders(w: usize, n: usize) -> Vec<Contender<'static>> {
    vec![
        Contender::new(
            "concurrent-futures (`into_result`)",
            Kind::Ours,
            move || ours::submit_wait(w, n),
        ),
        Contender::new(
            "rusty_pool `evaluate` + `await_complete`",
            Kind::PeerWithHandle,
            move || peers::rusty_pool_submit_wait(w, n),
        ),
        Contender::new(
            "tokio `spawn_blocking` + `block_on`",
            Kind::PeerWithHandle,
            move || peers::tokio_submit_wait(w, n),
        ),
    ]
}

/// Workload 1 at `w` workers.
fn submit_wait(cfg: &Config, w: usize) -> Section {
    let (n, sn, pn) = (cfg.tasks, cfg.std_tasks, cfg.py_tasks);
    let mut contenders = submit_wait_contenders(w, n);
    contenders.insert(
        1,
        Contender::new(
            "concurrent-futures (`result()` by reference)",
            Kind::OursVariant,
            move || ours::submit_wait_by_ref(w, n),
        ),
    );
    contenders.extend([
        Contender::new("rayon `spawn` + channel", Kind::PeerOther, move || {
            peers::rayon_submit_wait(w, n)
        }),
        Contender::new(
            "threadpool `execute` + channel",
            Kind::PeerOther,
            move || peers::threadpool_submit_wait(w, n),
        ),
        Contender::new(
            "`std::thread::spawn` + `join` (no pool)",
            Kind::PeerOther,
            move || peers::std_thread_submit_wait(sn),
        ),
        Contender::new(
            "reference floor: crossbeam channel + Mutex/Condvar slot",
            Kind::PeerOther,
            move || peers::floor::submit_wait(w, n),
        ),
        Contender::new(
            "Python `ThreadPoolExecutor` submit + result",
            Kind::Python,
            move || python::thread_pool("submit", w, pn, &[]),
        ),
    ]);
    Section {
        title: format!("1. Submit + wait, no-op task, {w} worker(s): time per task"),
        how: format!(
            "Each sample builds a fresh pool (not timed), runs {} warm-up tasks per worker, then times: submit \
             {n} no-op tasks keeping a handle to each, then wait for each handle in submission order \
             (`std::thread::spawn`: {sn} threads; Python: {pn} tasks, its interpreter and pool start-up not \
             timed). Peers without a result handle get a `sync_channel(1)` per task. tokio awaits all its \
             handles in order inside one `block_on`.",
            peers::WARMUP_PER_WORKER
        ),
        unit: Unit::Nanos,
        series: interleave(contenders, cfg.warmup, cfg.rounds),
        skipped: Vec::new(),
    }
}

fn submit_wait_targets(section: &Section, w: usize) -> Vec<Target> {
    let ours = section.ours();
    let fastest = fastest_of(&section.series, Kind::PeerWithHandle);
    let python = python_series(section);
    vec![
        Target::ratio(
            format!(
                "1, {w} worker(s): ours / fastest Rust peer with a handle ({})",
                fastest.map_or("-", |s| s.name.as_str())
            ),
            ours,
            fastest,
            "<= 0.8x",
            |r| r <= 0.8,
        ),
        Target::ratio(
            format!("1, {w} worker(s): Python `ThreadPoolExecutor` / ours"),
            python,
            ours,
            ">= 60x",
            |r| r >= 60.0,
        ),
    ]
}

/// Workload 2: several producer threads submitting into one pool.
fn producers(cfg: &Config) -> Section {
    let (w, p, n, pn) = (cfg.producer_workers, cfg.producers, cfg.tasks, cfg.py_tasks);
    let py_extra = vec!["--producers".to_string(), p.to_string()];
    let contenders = vec![
        Contender::new("concurrent-futures", Kind::Ours, move || {
            ours::producers(w, p, n)
        }),
        Contender::new("rusty_pool", Kind::PeerWithHandle, move || {
            peers::rusty_pool_producers(w, p, n)
        }),
        Contender::new("tokio `spawn_blocking`", Kind::PeerWithHandle, move || {
            peers::tokio_producers(w, p, n)
        }),
        Contender::new("rayon `spawn` + channel", Kind::PeerOther, move || {
            peers::rayon_producers(w, p, n)
        }),
        Contender::new("threadpool + channel", Kind::PeerOther, move || {
            peers::threadpool_producers(w, p, n)
        }),
        Contender::new("Python `ThreadPoolExecutor`", Kind::Python, move || {
            python::thread_pool("producers", w, pn, &py_extra)
        }),
    ];
    Section {
        title: format!("2. {p} producer threads into one {w}-worker pool: time per task"),
        how: format!(
            "{p} threads start together (a barrier); each submits {} no-op tasks, keeping the handles, then \
             waits for its own; timed from the barrier to the last producer's end, divided by all tasks \
             (Python: {pn} tasks in all).",
            n / p
        ),
        unit: Unit::Nanos,
        series: interleave(contenders, cfg.warmup, cfg.rounds),
        skipped: Vec::new(),
    }
}

/// Workload 3: `map` over many items.
fn map(cfg: &Config) -> Section {
    let (w, n, pn) = (cfg.map_workers, cfg.map_items, cfg.py_map_items);
    let mut contenders = vec![
        Contender::new(
            "concurrent-futures `map` (all submitted at once)",
            Kind::Ours,
            move || ours::map(w, n, MapOptions::new()),
        ),
        Contender::new(
            "concurrent-futures `map`, `buffersize(64)`",
            Kind::OursVariant,
            move || ours::map(w, n, MapOptions::new().buffersize(64)),
        ),
        Contender::new(
            "concurrent-futures `map`, `chunksize(1000)`",
            Kind::OursVariant,
            move || ours::map(w, n, MapOptions::new().chunksize(1000)),
        ),
        Contender::new(
            "concurrent-futures `map`, `chunksize(1000)` + `buffersize(8)`",
            Kind::OursVariant,
            move || ours::map(w, n, MapOptions::new().chunksize(1000).buffersize(8)),
        ),
        Contender::new(
            "reference: rayon `into_par_iter().map().collect()`",
            Kind::PeerOther,
            move || peers::rayon_par_map(w, n),
        ),
        Contender::new("Python `ThreadPoolExecutor.map`", Kind::Python, move || {
            python::thread_pool("map", w, pn, &[])
        }),
    ];
    let mut skipped = Vec::new();
    let py_has_buffersize = python::version().is_some_and(|v| {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (3, 14)
    });
    if py_has_buffersize {
        let extra = vec!["--buffersize".to_string(), "64".to_string()];
        contenders.push(Contender::new(
            "Python `ThreadPoolExecutor.map`, `buffersize=64`",
            Kind::Python,
            move || python::thread_pool("map", w, pn, &extra),
        ));
    } else {
        skipped.push((
            "Python `ThreadPoolExecutor.map`, `buffersize=64`".to_string(),
            "needs Python 3.14".to_string(),
        ));
    }
    Section {
        title: format!("3. `map` over {n} items, {w} workers: time per item"),
        how: format!(
            "`map_with(|x| x + 1, 0..{n}, options)` consumed to the end, on a fresh warmed pool (Python: \
             `list(ex.map(inc, range({pn})))`; its thread pool ignores `chunksize`). rayon's parallel iterator \
             splits the whole input up front: a floor for chunked maps, not a like-for-like peer."
        ),
        unit: Unit::Nanos,
        series: interleave(contenders, cfg.warmup.min(1), cfg.map_rounds),
        skipped,
    }
}

/// Workload 4: from the task's end to its done-callback.
fn callbacks(cfg: &Config) -> Section {
    let (n, pn) = (cfg.callback_tasks, cfg.py_callback_tasks);
    let contenders = vec![
        Contender::new("concurrent-futures", Kind::Ours, move || {
            ours::callback_latency(n)
        }),
        Contender::new("Python `ThreadPoolExecutor`", Kind::Python, move || {
            python::thread_pool("callback", 1, pn, &[])
        }),
    ];
    Section {
        title: "4. Done-callback latency, 1 worker: task end to callback start".into(),
        how: format!(
            "The only worker is held by a gate task while {n} tasks are queued (Python: {pn}); each returns a \
             timestamp as its last act and has a done-callback (attached before the gate opens, so it runs on the \
             completing worker) that records `now - timestamp`. A sample is the median latency of its tasks. \
             None of the Rust peers has done-callbacks."
        ),
        unit: Unit::Nanos,
        series: interleave(contenders, cfg.warmup, cfg.rounds),
        skipped: vec![(
            "rusty_pool, tokio, rayon, threadpool".into(),
            "no done-callbacks".into(),
        )],
    }
}

/// Workload 5: bytes per pending future, each figure from a fresh child process.
fn memory_section(cfg: &Config) -> Section {
    let n = cfg.memory_tasks;
    let child = |name: &'static str| move || memory::measure_in_child(name, n);
    let contenders = vec![
        Contender::new("concurrent-futures", Kind::Ours, child("ours")),
        Contender::new(
            "rusty_pool `evaluate` (JoinHandle)",
            Kind::PeerWithHandle,
            child("rusty_pool"),
        ),
        Contender::new(
            "tokio `spawn_blocking` (JoinHandle)",
            Kind::PeerWithHandle,
            child("tokio"),
        ),
        Contender::new("Python `ThreadPoolExecutor`", Kind::Python, move || {
            python::memory(n)
        }),
    ];
    Section {
        title: format!("5. Memory: bytes per pending no-op future, {n} queued"),
        how: format!(
            "A fresh child process per figure (`concurrent-futures-bench mem-child <name> {n}`; Python: \
             `memory.py`): one worker held by a gate, then {n} no-op tasks submitted and their handles kept in a \
             pre-reserved `Vec` (a Python list); the figure is the growth of VmRSS divided by {n}, so it includes \
             the handle itself (8 bytes in Rust) and the queued job."
        ),
        unit: Unit::Bytes,
        series: interleave(contenders, 0, cfg.memory_rounds),
        skipped: Vec::new(),
    }
}

fn memory_targets(section: &Section) -> Vec<Target> {
    let ours = section.ours();
    let best_peer = fastest_of(&section.series, Kind::PeerWithHandle);
    vec![
        Target::absolute(
            "5: bytes per pending no-op future (ours)".into(),
            ours,
            Unit::Bytes,
            "<= 96 B",
            |b| b <= 96.0,
        ),
        Target::ratio(
            format!(
                "5: ours / smallest Rust peer with a handle ({})",
                best_peer.map_or("-", |s| s.name.as_str())
            ),
            ours,
            best_peer,
            "< 1.0x",
            |r| r < 1.0,
        ),
    ]
}

/// Workload 6: the process pool's submit + result, and chunked `map`.
fn process_sections(cfg: &Config) -> (Section, Section) {
    let (w, n, mn, c) = (
        cfg.process_workers,
        cfg.process_tasks,
        cfg.process_map_items,
        cfg.process_chunksize,
    );
    let mut submit: Vec<Contender<'_>> = Vec::new();
    let mut map: Vec<Contender<'_>> = Vec::new();
    let skipped = Vec::new();
    submit.push(Contender::new(
        "concurrent-futures `ProcessPoolExecutor`",
        Kind::Ours,
        move || process::submit_wait(w, n),
    ));
    submit.push(Contender::new(
        "concurrent-futures `ProcessPoolExecutor` with `tasks_ahead(1)`",
        Kind::PeerOther,
        move || process::submit_wait_ahead(w, n),
    ));
    map.push(Contender::new(
        "concurrent-futures `ProcessPoolExecutor`",
        Kind::Ours,
        move || process::map_chunked(w, mn, c),
    ));
    submit.push(Contender::new(
        "Python `ProcessPoolExecutor`",
        Kind::Python,
        move || python::process_pool("submit", w, n, c),
    ));
    submit.push(Contender::new(
        "reference: our thread pool through the `Executor` trait",
        Kind::PeerOther,
        move || ours::thread_pool_trait_submit_wait(w, n),
    ));
    map.push(Contender::new(
        "Python `ProcessPoolExecutor`",
        Kind::Python,
        move || python::process_pool("map", w, mn, c),
    ));
    map.push(Contender::new(
        "reference: our thread pool through the `Executor` trait",
        Kind::PeerOther,
        move || ours::thread_pool_trait_map_chunked(w, mn, c),
    ));
    let submit = Section {
        title: format!("6a. Process pool, {w} workers: submit + result per no-op task"),
        how: format!(
            "A fresh pool per sample, every worker started and used before timing; then submit {n} no-op tasks \
             (a registered `fn`) keeping the handles, then wait each. Pool start-up is not timed."
        ),
        unit: Unit::Nanos,
        series: interleave(submit, cfg.warmup.min(1), cfg.map_rounds),
        skipped: skipped.clone(),
    };
    let map = Section {
        title: format!("6b. Process pool, {w} workers: `map` with chunksize {c}, per item"),
        how: format!(
            "`map` of `x + 1` over {mn} integers with `chunksize({c})`, consumed to the end."
        ),
        unit: Unit::Nanos,
        series: interleave(map, cfg.warmup.min(1), cfg.map_rounds),
        skipped,
    };
    (submit, map)
}

/// The first Python series of a section.
fn python_series(section: &Section) -> Option<&stats::Series> {
    section.series.iter().find(|s| s.kind == Kind::Python)
}

fn process_targets(submit: &Section, map: &Section) -> Vec<Target> {
    vec![
        Target::ratio(
            "6: Python `ProcessPoolExecutor` / ours, submit + result".into(),
            python_series(submit),
            submit.ours(),
            ">= 10x",
            |r| r >= 10.0,
        ),
        Target::ratio(
            "6: Python `ProcessPoolExecutor` / ours, chunked `map` per item".into(),
            python_series(map),
            map.ours(),
            ">= 3x",
            |r| r >= 3.0,
        ),
    ]
}

/// The two fan-out workloads: 8 (fine-grained, every call with `n >= 2` submits a child) and 9 (coarse-grained,
/// calls below a cutoff compute sequentially).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grain {
    Fine,
    Coarse,
}

const OURS_FANOUT: &str = "concurrent-futures (`submit` child + `into_result` in the task)";
const RAYON_JOIN: &str = "rayon `join` in `install`";
const TOKIO_SPAWN: &str = "tokio `spawn` child + `.await` its `JoinHandle`";

impl Grain {
    /// The workload's number, `fib` argument, cutoff (below it a call computes sequentially) and rounds.
    fn params(self, cfg: &Config) -> (u32, u64, u64, usize) {
        match self {
            Grain::Fine => (8, cfg.fine_n, 2, cfg.fanout_rounds),
            Grain::Coarse => (9, cfg.coarse_n, cfg.coarse_cutoff, cfg.coarse_rounds),
        }
    }
}

/// Workloads 8 and 9: the recursive fan-out at every worker count of `cfg.fanout_workers` as ONE interleaved group
/// (so ours at 2 workers and ours at 1 are paired by round), reported as one section per worker count. The
/// sequential floor has no worker count: its series appears in every section.
fn fanout(cfg: &Config, grain: Grain) -> Vec<Section> {
    let (number, n, cutoff, rounds) = grain.params(cfg);
    let tasks = peers::fanout_tasks(n, cutoff);
    let mut tagged: Vec<(Option<usize>, Contender<'_>)> = Vec::new();
    for &w in &cfg.fanout_workers {
        tagged.push((
            Some(w),
            Contender::new(OURS_FANOUT, Kind::Ours, move || ours::fanout(w, n, cutoff)),
        ));
        tagged.push((
            Some(w),
            Contender::new(RAYON_JOIN, Kind::PeerOther, move || {
                peers::rayon_fanout(w, n, cutoff)
            }),
        ));
        tagged.push((
            Some(w),
            Contender::new(TOKIO_SPAWN, Kind::PeerWithHandle, move || {
                peers::tokio_fanout(w, n, cutoff)
            }),
        ));
    }
    tagged.push((
        None,
        Contender::new(
            "reference floor: sequential `fib` (no tasks)",
            Kind::PeerOther,
            move || peers::fib_seq_fanout(n, cutoff),
        ),
    ));
    let (tags, contenders): (Vec<_>, Vec<_>) = tagged.into_iter().unzip();
    let series = interleave(contenders, cfg.warmup, rounds);
    let shape = match grain {
        Grain::Fine => format!(
            "`fib({n})` where every call with `n >= 2` submits `fib(n - 1)` as a child task to the same pool, \
             computes `fib(n - 2)` itself the same way, then waits for the child's result inside the worker: \
             {tasks} child tasks, each doing almost nothing but its own submit and wait."
        ),
        Grain::Coarse => format!(
            "`fib({n})` with the same recursion, but calls with `n < {cutoff}` compute `fib` sequentially: \
             {tasks} child tasks, each a sequential `fib({})` or `fib({})` (about {:.1} us of work on average \
             here: the sequential floor's time per task).",
            cutoff - 1,
            cutoff - 2,
            series
                .last()
                .and_then(|s| s.summary())
                .map_or(f64::NAN, |s| s.median / 1e3),
        ),
    };
    let how = format!(
        "{shape} Time per child task (the whole run divided by {tasks}). Ours: the root is submitted too and \
         every call waits its child with `into_result` (a child not yet started runs inline on the waiting \
         worker); the pool handle is cloned into each task. rayon: `join(|| fib(n - 2), || fib(n - 1))` inside \
         `install` (its second closure is the stealable one). tokio: a multi-thread runtime with that many \
         `worker_threads`, each call `tokio::spawn`s its child (a boxed async recursion) and `.await`s the \
         `JoinHandle`; the root is spawned. Fresh pool per sample, built and warmed untimed; every contender's \
         value is checked. All worker counts and the sequential floor (the same series in each table) run as one \
         interleaved group."
    );
    let kind = match grain {
        Grain::Fine => "Fine-grained recursive fan-out".to_string(),
        Grain::Coarse => format!("Coarse-grained fan-out (cutoff {cutoff})"),
    };
    cfg.fanout_workers
        .iter()
        .map(|&w| Section {
            title: format!("{number}. {kind}, `fib({n})`, {w} worker(s): time per task"),
            how: how.clone(),
            unit: Unit::Nanos,
            series: tags
                .iter()
                .zip(&series)
                .filter(|(t, _)| t.is_none_or(|t| t == w))
                .map(|(_, s)| s.clone())
                .collect(),
            skipped: Vec::new(),
        })
        .collect()
}

/// The named series of a section.
fn series_named<'a>(section: &'a Section, name: &str) -> Option<&'a stats::Series> {
    section.series.iter().find(|s| s.name == name)
}

fn fanout_targets(sections: &[Section], grain: Grain, workers: &[usize]) -> Vec<Target> {
    let (number, limit) = match grain {
        Grain::Fine => (8, 3.0),
        Grain::Coarse => (9, 1.2),
    };
    let mut targets: Vec<Target> = sections
        .iter()
        .zip(workers)
        .map(|(section, w)| {
            Target::ratio(
                format!("{number}, {w} worker(s): ours / rayon `join`"),
                section.ours(),
                series_named(section, RAYON_JOIN),
                &format!("<= {limit}x"),
                move |r| r <= limit,
            )
        })
        .collect();
    if grain == Grain::Coarse {
        let at = |w: usize| {
            workers
                .iter()
                .position(|&x| x == w)
                .and_then(|i| sections[i].ours())
        };
        targets.push(Target::ratio(
            "9: ours at 2 workers / ours at 1 worker".into(),
            at(2),
            at(1),
            "< 1.0x",
            |r| r < 1.0,
        ));
    }
    targets
}

/// Workload 10 at `w` workers: workload 1's shape while `2 * cores` busy-loop threads of this process spin.
fn saturated(cfg: &Config, w: usize) -> Section {
    let n = cfg.saturated_tasks;
    let contenders = submit_wait_contenders(w, n);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let spinners = spin::Spinners::start(2 * cores);
    let spinning = spinners.count();
    let series = interleave(contenders, cfg.warmup, cfg.saturated_rounds);
    spinners.stop();
    Section {
        title: format!(
            "10. Submit + wait with the cores saturated, no-op task, {w} worker(s): time per task"
        ),
        how: format!(
            "Workload 1's shape and code ({n} no-op tasks per sample, handles kept, then waited in order; fresh \
             warmed pool per sample) while {spinning} busy-loop threads of this process (2 x {cores} cores, \
             plain spinning on a stop flag) run through all of this group's rounds: started before its first \
             round, stopped and joined after its last."
        ),
        unit: Unit::Nanos,
        series,
        skipped: Vec::new(),
    }
}

fn saturated_targets(section: &Section, w: usize) -> Vec<Target> {
    let fastest = fastest_of(&section.series, Kind::PeerWithHandle);
    vec![Target::ratio(
        format!(
            "10, {w} worker(s), cores saturated: ours / fastest of rusty_pool and tokio ({})",
            fastest.map_or("-", |s| s.name.as_str())
        ),
        section.ours(),
        fastest,
        "<= 1.0x",
        |r| r <= 1.0,
    )]
}

/// The `previous` report with its MPI section (if any) replaced by `section`.
fn replace_mpi_section(previous: &str, section: &str) -> String {
    let main_part = previous
        .find(MPI_HEADING)
        .map_or(previous, |at| &previous[..at]);
    format!("{}\n\n{section}", main_part.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_main_run_keeps_the_recorded_mpi_section() {
        let previous =
            "# Benchmarks\n\nold main\n\n## MPI pool (issue 10): workload 7\n\nmpi figures\n";
        let kept = keep_mpi_section("# Benchmarks\n\nnew main\n", previous);
        assert_eq!(
            kept,
            "# Benchmarks\n\nnew main\n\n## MPI pool (issue 10): workload 7\n\nmpi figures\n"
        );
        assert_eq!(keep_mpi_section("new\n", "no section\n"), "new\n");
    }

    #[test]
    fn an_mpi_run_replaces_only_the_mpi_section() {
        let section = "## MPI pool (issue 10): workload 7\n\nnew figures\n";
        let main = "# Benchmarks\n\nmain figures\n";
        let old = format!("{main}\n## MPI pool (issue 10): workload 7\n\nold figures\n");
        let expected = format!("{main}\n{section}");
        assert_eq!(replace_mpi_section(&old, section), expected);
        assert_eq!(replace_mpi_section(main, section), expected);
    }
}
