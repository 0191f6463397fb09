//! Workload 5: bytes per pending no-op future, each measurement in a fresh child process.
//!
//! The harness re-runs its own executable as `concurrent-futures-bench mem-child <contender> <count>`. The child
//! builds a one-worker pool, blocks that worker with a gate task (and waits until it runs), reads its RSS, submits
//! `count` no-op tasks keeping every handle in a `Vec` (reserved up front; its pages are touched as handles are
//! pushed, so the handle's own size is counted, as a caller must store it somewhere), reads RSS again and prints
//! `(after - before) / count`. It then exits without draining the queue. A fresh process per figure keeps freed
//! memory from earlier workloads out of the delta.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// Resident set size of this process in bytes (`VmRSS` of `/proc/self/status`).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The contenders the child knows, by name.
pub const CONTENDERS: &[&str] = &["ours", "rusty_pool", "tokio"];

/// Bytes per item for `count` items that grew RSS from `before` to `after`.
pub fn per_item(before: u64, after: u64, count: usize) -> f64 {
    after.saturating_sub(before) as f64 / count.max(1) as f64
}

/// The child's side: measure `contender` with `count` queued tasks and print the figure. Returns the exit code.
pub fn child_main(contender: &str, count: usize) -> i32 {
    let figure = match contender {
        "ours" => crate::ours::memory(count),
        "rusty_pool" => rusty_pool_memory(count),
        "tokio" => tokio_memory(count),
        other => {
            eprintln!("mem-child: unknown contender {other:?} (known: {CONTENDERS:?})");
            return 2;
        }
    };
    match figure {
        Some(b) => {
            println!("bytes_per_item {b}");
            0
        }
        None => 1,
    }
}

/// The parent's side: run one child for `contender` and read its figure.
pub fn measure_in_child(contender: &str, count: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new(exe)
        .args(["mem-child", contender, &count.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "mem-child {contender} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("bytes_per_item "))
        .and_then(|v| v.trim().parse().ok())
}

/// A gate: the returned closure blocks (as a task) until the returned sender is dropped or sent to, and signals
/// `started` once it is running, so the caller knows the only worker is busy.
pub fn gate() -> (
    impl FnOnce() + Send + 'static,
    mpsc::Sender<()>,
    mpsc::Receiver<()>,
) {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let task = move || {
        let _ = started_tx.send(());
        let _ = release_rx.recv();
    };
    (task, release_tx, started_rx)
}

fn rusty_pool_memory(count: usize) -> Option<f64> {
    let pool = rusty_pool::ThreadPool::new(1, 1, Duration::from_secs(60));
    let (task, release, started) = gate();
    pool.execute(task);
    started.recv().ok()?;
    let mut handles = Vec::with_capacity(count);
    let before = rss_bytes()?;
    for _ in 0..count {
        handles.push(pool.evaluate(|| ()));
    }
    let after = rss_bytes()?;
    // The child exits right after printing: leak everything rather than drain a million tasks.
    std::mem::forget((pool, handles, release));
    Some(per_item(before, after, count))
}

fn tokio_memory(count: usize) -> Option<f64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .ok()?;
    let (task, release, started) = gate();
    let _gate = rt.spawn_blocking(task);
    started.recv().ok()?;
    let mut handles = Vec::with_capacity(count);
    let before = rss_bytes()?;
    for _ in 0..count {
        handles.push(rt.spawn_blocking(|| ()));
    }
    let after = rss_bytes()?;
    std::mem::forget((rt, handles, release));
    Some(per_item(before, after, count))
}
