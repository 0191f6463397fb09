//! What the figures were taken on: CPU, cores, load, date, commit, compiler and Python versions.

use std::path::Path;
use std::process::Command;

/// A description of the machine and the build, for the report's header.
#[derive(Clone, Debug)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu: String,
    /// `std::thread::available_parallelism`.
    pub cores: usize,
    /// The 1-minute load average when the run started (a hint of how noisy it was).
    pub load_at_start: String,
    /// UTC date and time of the run.
    pub date: String,
    /// Short commit of the workspace, with `-dirty` when it has uncommitted changes.
    pub commit: String,
    /// `rustc --version` of the compiler that built the harness.
    pub rustc: &'static str,
    /// The Python interpreter's version, if there is one.
    pub python: Option<String>,
}

fn command_output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Machine {
    /// Gathers the description; unknown parts read `unknown`.
    pub fn detect(workspace: &Path) -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let load_at_start = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        let date = command_output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
            .unwrap_or_else(|| "unknown".into());
        let commit = command_output(Command::new("git").arg("-C").arg(workspace).args([
            "rev-parse",
            "--short",
            "HEAD",
        ]))
        .map(|c| {
            let dirty = command_output(Command::new("git").arg("-C").arg(workspace).args([
                "status",
                "--porcelain",
                "--untracked-files=no",
            ]))
            .is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}-dirty") } else { c }
        })
        .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu,
            cores,
            load_at_start,
            date,
            commit,
            rustc: env!("BENCH_RUSTC_VERSION"),
            python: crate::python::version(),
        }
    }
}
