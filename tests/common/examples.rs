//! Running an example program as a process, for the tests of the examples (crawler, echo server, folder copy,
//! quickstart). Included by those test files only (`#[path = "common/examples.rs"] mod examples;`), not through
//! `mod common;`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Builds `target/<profile>/examples/<name>` (or finds it up to date) with cargo, and returns its path. Callers
/// cache the path in a `OnceLock`, so cargo runs once per test binary.
pub fn build_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let target_dir = profile_dir.parent().expect("target/<profile>");
    let mut build = Command::new(env!("CARGO"));
    // Cargo gives this test process variables such as CARGO_MANIFEST_DIR; some build scripts (ring's) rerun
    // when those change, so a nested build that inherits them would rebuild dependencies back and forth with
    // the outer `cargo test`. Build in the environment the outer cargo had, and with the features of the whole
    // workspace, as `cargo test --workspace` (the project's test command) builds the examples.
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy();
        if var.starts_with("CARGO_PKG_")
            || var.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&var.as_ref())
            || ["CARGO_RUSTC_CURRENT_DIR", "OUT_DIR"].contains(&var.as_ref())
        {
            build.env_remove(var.as_ref());
        }
    }
    build
        .args([
            "build",
            "--quiet",
            "--workspace",
            "--example",
            name,
            "--manifest-path",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            build.arg("--release");
        }
        Some(other) => {
            build.args(["--profile", other]);
        }
        None => panic!("unexpected test path {}", exe.display()),
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "cargo build --example {name} failed");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "no {name} binary at {}", bin.display());
    bin
}

/// How a finished example process ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Starts `command` with stdin closed and stdout and stderr piped (as [`finish`] expects); fails naming it `what`
/// if it does not start.
pub fn spawn(command: &mut Command, what: &str) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} starts: {e:?}"))
}

/// Waits for `child` (whose stdout and stderr are piped) and collects its output. If it runs longer than
/// `watchdog` (a safety net, not a synchronisation), kills it and fails, naming it `what`.
pub fn finish(child: Child, what: &str, watchdog: Duration) -> Run {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(watchdog) {
        Ok(output) => {
            let output = output.unwrap_or_else(|e| panic!("{what}'s output: {e:?}"));
            Run {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{what} ran longer than {watchdog:?}");
        }
    }
}
