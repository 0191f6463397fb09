//! Running the Python side: `bench/python/*.py` under `python3` (or `$PYTHON`), one fresh interpreter per sample.
//!
//! Each script times itself (interpreter start-up and pool start-up are not timed) and prints one JSON object with
//! `ns_per_item` or `bytes_per_item`. A missing interpreter or a failing script makes the sample `None`, reported
//! once on stderr, so the Rust rows still run.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The interpreter: `$PYTHON` if set, else `python3`.
fn interpreter() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// `bench/python/<script>`.
fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// The interpreter's version (`3.11.7`), or `None` when it cannot be run.
pub fn version() -> Option<String> {
    static VERSION: OnceLock<Option<String>> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let out = Command::new(interpreter())
                .args(["-c", "import sys; print(sys.version.split()[0])"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .clone()
}

/// Runs `script` with `args` and returns the number under `key` in its JSON output.
///
/// `None` (with a note on stderr) when Python is missing, the script fails, or it reports `null` (e.g. a feature
/// the interpreter lacks).
pub fn run(script_name: &str, args: &[String], key: &str) -> Option<f64> {
    version()?;
    let out = match Command::new(interpreter())
        .arg(script(script_name))
        .args(args)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("python: cannot run {script_name}: {e}");
            return None;
        }
    };
    if !out.status.success() {
        eprintln!(
            "python: {script_name} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let value: serde_json::Value = match serde_json::from_str(text.trim()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("python: {script_name} printed something that is not JSON ({e}): {text}");
            return None;
        }
    };
    value.get(key).and_then(serde_json::Value::as_f64)
}

/// `thread_pool.py <mode> --workers W --tasks N [extra...]`, nanoseconds per item.
pub fn thread_pool(mode: &str, workers: usize, tasks: usize, extra: &[String]) -> Option<f64> {
    let mut args = vec![
        mode.to_string(),
        "--workers".into(),
        workers.to_string(),
        "--tasks".into(),
        tasks.to_string(),
    ];
    args.extend_from_slice(extra);
    run("thread_pool.py", &args, "ns_per_item")
}

/// `process_pool.py <mode> --workers W --tasks N --chunksize C`, nanoseconds per item.
pub fn process_pool(mode: &str, workers: usize, tasks: usize, chunksize: usize) -> Option<f64> {
    let args = vec![
        mode.to_string(),
        "--workers".into(),
        workers.to_string(),
        "--tasks".into(),
        tasks.to_string(),
        "--chunksize".into(),
        chunksize.to_string(),
    ];
    run("process_pool.py", &args, "ns_per_item")
}

/// `memory.py --tasks N`, bytes per pending future.
pub fn memory(tasks: usize) -> Option<f64> {
    run(
        "memory.py",
        &["--tasks".into(), tasks.to_string()],
        "bytes_per_item",
    )
}
