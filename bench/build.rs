//! Tells the harness whether the library has a `ProcessPoolExecutor` yet (workload 6 is skipped with "not built
//! yet" until it does), by scanning the library's sources for the type's definition; and records the compiler's
//! version for the report.

use std::path::Path;

fn defines_process_pool(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            defines_process_pool(&path)
        } else {
            path.extension().is_some_and(|x| x == "rs")
                && std::fs::read_to_string(&path)
                    .is_ok_and(|s| s.contains("pub struct ProcessPoolExecutor"))
        }
    })
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc (unknown version)".into());
    println!("cargo::rustc-env=BENCH_RUSTC_VERSION={version}");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src");
    println!("cargo::rerun-if-changed={}", src.display());
    println!("cargo::rustc-check-cfg=cfg(cf_bench_has_process_pool)");
    if defines_process_pool(&src) {
        println!("cargo::rustc-cfg=cf_bench_has_process_pool");
    }
}
