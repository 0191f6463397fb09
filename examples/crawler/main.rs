//! A concurrent web crawler on `concurrent_futures::ThreadPoolExecutor`: the Rust version of
//!
//! ```python
//! p = ThreadPoolExecutor(4)
//! for url in urls:
//!     future = p.submit(get, url)
//!     future.add_done_callback(parse)
//! ```
//!
//! where `parse` submits the links it finds. Run `cargo run --release --example crawler` to crawl the built-in
//! demo site, or `cargo run --release --example crawler -- https://example.com/ --depth 2`; `--help` for the rest.
//!
//! Modules: `cli` (the command line), `crawl` (the pool, the futures and their callbacks), `fetch` (one GET with
//! reqwest), `links` (a streaming link extractor, lol_html, and url), `robots` (robots.txt), `demo` (the demo site), `serve` (a small HTTP server on the pool), `report` (table and JSON).

// Every module is also compiled into tests/crawler.rs, which uses parts the binary does not.
#![allow(dead_code)]

pub mod cli;
pub mod crawl;
pub mod demo;
pub mod fetch;
pub mod links;
pub mod report;
pub mod robots;
pub mod serve;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use self::cli::Args;
use self::crawl::{Config, Event};
use self::demo::{DemoOptions, DemoSite};

/// Exit codes.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_INTERRUPTED: i32 = 130;

fn main() {
    let code = {
        let stdout = std::io::stdout();
        // Not locked for the whole run: the progress bar writes to stderr from other threads.
        let mut stderr = std::io::stderr();
        run(
            std::env::args_os(),
            &mut stdout.lock(),
            &mut stderr,
            |events| {
                // First Ctrl-C: stop and report. Second: leave at once.
                let pressed = AtomicBool::new(false);
                let installed = ctrlc::set_handler(move || {
                    if pressed.swap(true, Ordering::SeqCst) {
                        std::process::exit(EXIT_INTERRUPTED);
                    }
                    let _ = events.send(Event::Interrupted);
                });
                if let Err(e) = installed {
                    eprintln!("warning: cannot handle Ctrl-C: {e}");
                }
            },
        )
    };
    std::process::exit(code);
}

/// The whole program: parses `args`, crawls, writes the report on `out` and messages on `err`, returns the exit
/// code. `on_start` receives a sender for `Event::Interrupted` (the binary hands it to the Ctrl-C handler).
pub fn run<I, T>(
    args: I,
    out: &mut dyn Write,
    err: &mut dyn Write,
    on_start: impl FnOnce(Sender<Event>),
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            // --help and --version are not errors; usage errors exit with 2.
            let _ = if e.use_stderr() {
                write!(err, "{}", e.render())
            } else {
                write!(out, "{}", e.render())
            };
            return e.exit_code();
        }
    };
    let start = match args.url.as_deref().map(cli::parse_start_url).transpose() {
        Ok(start) => start,
        Err(message) => {
            let _ = writeln!(
                err,
                "error: {message}\n\nFor more information, try '--help'."
            );
            return EXIT_USAGE;
        }
    };
    let (events_tx, events) = mpsc::channel();
    on_start(events_tx.clone());

    let timeout = args.timeout.unwrap_or(if start.is_some() {
        cli::DEFAULT_TIMEOUT
    } else {
        cli::DEFAULT_DEMO_TIMEOUT
    });
    // The demo site lives as long as this function.
    let demo = match start {
        Some(_) => None,
        None => {
            let options = DemoOptions {
                pages: args.demo_pages as usize,
                latency: Duration::from_millis(args.demo_latency_ms),
                // Answers only when the site stops: slower than any timeout, so the crawler gives up on it.
                slow: true,
            };
            match DemoSite::start(options) {
                Ok(site) => Some(site),
                Err(message) => {
                    let _ = writeln!(err, "error: {message}");
                    return EXIT_FAILURE;
                }
            }
        }
    };
    let start = match (start, &demo) {
        (Some(start), _) => start,
        (None, Some(site)) => site.url().clone(),
        (None, None) => unreachable!("the demo site starts when no URL is given"),
    };
    if args.serve_demo {
        let _ = writeln!(out, "Serving the demo site at {start} (Ctrl-C to stop)");
        let _ = out.flush();
        let _ = events.recv();
        return EXIT_OK;
    }
    if demo.is_some() && !args.json {
        let _ = writeln!(
            err,
            "No URL given: crawling the built-in demo site at {start} ({}, {} ms latency).",
            report::counted(args.demo_pages, "page", "pages"),
            args.demo_latency_ms
        );
    }

    let config = Config {
        start,
        depth: args.depth as u32, // at most u32::MAX (cli::whole_number)
        max_pages: args.max_pages as usize,
        workers: args.workers as usize,
        timeout,
        all_hosts: args.all_hosts,
        ignore_robots: args.ignore_robots,
    };
    let progress = progress_bar(!(args.json || args.quiet));
    let (outcome, finished) = match crawl::run(config, events_tx, &events, progress) {
        Ok(result) => result,
        Err(message) => {
            let _ = writeln!(err, "error: {message}");
            return EXIT_FAILURE;
        }
    };
    let written = if args.json {
        report::write_json(out, &outcome)
    } else {
        report::write_table(out, &outcome)
    };
    let _ = out.flush();
    if outcome.interrupted {
        let _ = writeln!(
            err,
            "Interrupted: waiting for the fetches already running (at most {timeout:?})..."
        );
    }
    // After Ctrl-C, fetches already running finish (within --timeout); nothing new starts.
    finished.wait();
    drop(demo);
    let nothing_fetched = if outcome.interrupted {
        None
    } else {
        nothing_fetched(&outcome)
    };
    if let Some(reason) = &nothing_fetched {
        let _ = writeln!(err, "error: nothing was fetched: {reason}");
    }
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            let _ = writeln!(err, "error: cannot write the report: {e}");
            EXIT_FAILURE
        }
        _ if outcome.interrupted => EXIT_INTERRUPTED,
        _ if nothing_fetched.is_some() => EXIT_FAILURE,
        _ => EXIT_OK,
    }
}

/// Why a finished crawl got no response at all (`None` if some URL answered, even with an error status): the
/// start URL failed (connection refused, DNS, TLS, timeout, ...) or robots.txt disallowed it.
pub fn nothing_fetched(outcome: &crawl::Outcome) -> Option<String> {
    if outcome.pages.iter().any(|page| page.status.is_some()) {
        return None;
    }
    let start = &outcome.config.start;
    let reason = match outcome.pages.first() {
        Some(page) => match (&page.error, &page.detail) {
            (Some(kind), Some(detail)) => format!("{}: {kind}: {detail}", page.url),
            (Some(kind), None) => format!("{}: {kind}", page.url),
            (None, _) => format!("{}: no response", page.url),
        },
        None if outcome.robots_blocked.iter().any(|u| u == start.as_str()) => format!(
            "robots.txt of {} disallows {start} (--ignore-robots crawls it anyway)",
            start.origin().ascii_serialization()
        ),
        None => format!("{start}: no response"),
    };
    Some(reason)
}

/// A spinner with counts on stderr; hidden when stderr is not a terminal or when `show` is false.
fn progress_bar(show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{spinner} {pos} pages fetched in {elapsed} ({rate}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} pages/s", state.per_sec());
                },
            );
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
