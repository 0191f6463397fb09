//! The crawler benchmark, in two modes.
//!
//! - The demo site (default): pages/s on the demo site (20 ms per response by default) for 1, 8, 32 and 64
//!   workers, next to the ideal (workers / latency), and the Python seed program (`bench/python/crawl_seed.py`,
//!   ThreadPoolExecutor + urllib) crawling the same site in the same run. Each run crawls with `--max-pages`
//!   binding (so every run fetches the same number of pages): 40 pages per worker, at least 200, at most the site's
//!   size.
//! - `--docs`: a real site with no latency: the Rust documentation (`rustup component add rust-docs`) served by
//!   nginx on 127.0.0.1, crawled from `std/index.html` to `--docs-depth` by the crawler at each worker count and by
//!   `wget -r` (one connection) in the same run: pages/s, peak memory (`/usr/bin/time`'s maximum resident set
//!   size) and a check that both fetched the same page set. `--baseline BIN` adds another crawler binary (e.g. an
//!   older build) to the same run. Needs Debian's `nginx`, `wget` and `time`.
//!
//! ```text
//! cargo run --release --example crawler_bench
//! cargo run --release --example crawler_bench -- --runs 5 --workers 1,8,32,64,128 --no-python
//! cargo run --release --example crawler_bench -- --docs --docs-depth 2 --workers 4,16,64
//! ```
//!
//! Every figure is the median of `--runs` runs.

#[path = "crawler/main.rs"]
mod crawler;
#[path = "crawler_bench/docs.rs"]
mod docs;

use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use indicatif::ProgressBar;

use crawler::crawl::{self, Config};
use crawler::demo::{DemoOptions, DemoSite};

#[derive(Parser, Debug)]
#[command(
    name = "crawler_bench",
    about = "Pages/s of the crawler example (and of the Python seed) on the demo site"
)]
struct Args {
    /// Latency of every demo-site response, in milliseconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    latency_ms: u64,

    /// Generated pages on the demo site.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    pages: u64,

    /// Worker counts to measure [default: 1,8,32,64; with --docs: 4,16,64].
    #[arg(long, value_delimiter = ',')]
    workers: Vec<usize>,

    /// Runs per figure (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    runs: u64,

    /// Do not run the Python seed program.
    #[arg(long)]
    no_python: bool,

    /// The Python interpreter.
    #[arg(long, default_value = "python3")]
    python: String,

    /// Crawl a documentation tree served by nginx instead of the demo site, next to `wget -r` [default: the
    /// newest toolchain's `share/doc/rust/html` under ~/.rustup].
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "auto")]
    docs: Option<PathBuf>,

    /// With --docs: the start page, relative to the tree.
    #[arg(long, default_value = "std/index.html")]
    docs_start: String,

    /// With --docs: how many hops from the start page.
    #[arg(long, default_value_t = 2)]
    docs_depth: u32,

    /// With --docs: another crawler binary (same command line as the crawler example) to measure in the same run.
    #[arg(long, value_name = "BIN")]
    baseline: Option<PathBuf>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// One crawl with the Rust crawler; pages/s and pages fetched.
fn rust_run(site: &DemoSite, workers: usize, max_pages: usize) -> Result<(f64, usize), String> {
    let config = Config {
        start: site.url().clone(),
        depth: 1000,
        max_pages,
        workers,
        timeout: Duration::from_secs(10),
        all_hosts: false,
        ignore_robots: false,
    };
    let (tx, rx) = mpsc::channel();
    let (outcome, finished) = crawl::run(config, tx, &rx, ProgressBar::hidden())?;
    finished.wait();
    let pages = outcome.pages.len();
    Ok((pages as f64 / outcome.elapsed.as_secs_f64(), pages))
}

/// One crawl with the Python seed program; pages/s and pages fetched (as it measures them, without its start-up).
fn python_run(
    args: &Args,
    script: &PathBuf,
    site: &DemoSite,
    workers: usize,
    max_pages: usize,
) -> Result<(f64, usize), String> {
    let output = Command::new(&args.python)
        .arg(script)
        .arg(site.url().as_str())
        .args([
            "--workers",
            &workers.to_string(),
            "--max-pages",
            &max_pages.to_string(),
            "--depth",
            "1000",
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args.python))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("bad output from the Python crawler: {e}"))?;
    let pages_per_s = doc["pages_per_s"]
        .as_f64()
        .ok_or("no pages_per_s from the Python crawler")?;
    let pages = doc["pages"]
        .as_u64()
        .ok_or("no pages from the Python crawler")? as usize;
    Ok((pages_per_s, pages))
}

fn main() {
    // The benchmark re-runs itself as the crawler, so that each crawl is a process of its own (as wget is).
    let mut raw = std::env::args_os();
    if raw.nth(1).is_some_and(|first| first == docs::RUN_CRAWLER) {
        let code = crawler::run(
            std::iter::once(std::ffi::OsString::from("crawler")).chain(raw),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
            |_| {},
        );
        std::process::exit(code);
    }
    let mut args = Args::parse();
    if args.workers.is_empty() {
        args.workers = if args.docs.is_some() {
            vec![4, 16, 64]
        } else {
            vec![1, 8, 32, 64]
        };
    }
    if args.workers.contains(&0) {
        eprintln!("error: --workers needs worker counts of at least 1");
        std::process::exit(2);
    }
    if let Some(dir) = &args.docs {
        let options = docs::Options {
            dir: dir.clone(),
            start: args.docs_start.clone(),
            depth: args.docs_depth,
            workers: args.workers.clone(),
            runs: args.runs as usize,
            baseline: args.baseline.clone(),
        };
        if let Err(e) = docs::run(&options) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/python/crawl_seed.py");
    let python = !args.no_python;
    let latency = Duration::from_millis(args.latency_ms);
    let site = DemoSite::start(DemoOptions {
        pages: args.pages as usize,
        latency,
        slow: false,
    })
    .unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1);
    });
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    println!(
        "Crawler benchmark: demo site at {} ({} pages, {} ms per response), {}, median of {}",
        site.url(),
        args.pages,
        args.latency_ms,
        crawler::report::counted(cpus, "CPU", "CPUs"),
        crawler::report::counted(args.runs, "run", "runs"),
    );
    if python {
        println!(
            "Python: {} (ThreadPoolExecutor + urllib, one connection per request)",
            script.display()
        );
    }
    println!();
    println!(
        "{:>7}  {:>6}  {:>13}  {:>20}  {:>20}",
        "workers",
        "pages",
        "ideal pages/s",
        "Rust pages/s",
        if python { "Python pages/s" } else { "" }
    );
    // Warm up: connections, page cache, lazily started threads.
    let _ = rust_run(&site, 8, 100);

    let mut failed = false;
    for &workers in &args.workers {
        let max_pages = (workers * 40).clamp(200, args.pages as usize);
        let ideal = workers as f64 / latency.as_secs_f64();
        let mut rust = Vec::new();
        let mut py = Vec::new();
        for _ in 0..args.runs {
            match rust_run(&site, workers, max_pages) {
                Ok((rate, _)) => rust.push(rate),
                Err(e) => {
                    eprintln!("error: {e}");
                    failed = true;
                }
            }
            if python {
                match python_run(&args, &script, &site, workers, max_pages) {
                    Ok((rate, _)) => py.push(rate),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
        }
        let cell = |values: Vec<f64>| {
            if values.is_empty() {
                String::new()
            } else {
                let m = median(values);
                format!("{m:.0} ({:.0}% ideal)", 100.0 * m / ideal)
            }
        };
        println!(
            "{workers:>7}  {max_pages:>6}  {ideal:>13.0}  {:>20}  {:>20}",
            cell(rust),
            cell(py)
        );
    }
    drop(site);
    if failed {
        std::process::exit(1);
    }
}
