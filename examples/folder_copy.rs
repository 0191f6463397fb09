//! Seed program 3: copy a folder's files with a process pool, with a progress bar driven by the futures as
//! they complete (`as_completed`): no separate queue is needed to learn which copies are done.
//!
//! `cargo run --example folder_copy -- SRC [DST]` (DST defaults to `SRC[copy]`, as in the Python seed).
//! Each file is copied to a temporary name and renamed once complete, so a file is reported done (and appears
//! under its own name) only after its copy succeeded.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use concurrent_futures::{Future, ProcessPoolExecutor, as_completed};
use indicatif::{ProgressBar, ProgressStyle};

/// The task, run in a worker process: copies `src` to `dst`; the number of bytes, or why it failed.
fn copy_file((src, dst): (PathBuf, PathBuf)) -> Result<u64, String> {
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dst.with_file_name(format!(".{name}.part"));
    let copied = std::fs::copy(&src, &partial).and_then(|bytes| {
        std::fs::rename(&partial, &dst)?;
        Ok(bytes)
    });
    copied.map_err(|error| {
        let _ = std::fs::remove_file(&partial);
        format!("{}: {error}", src.display())
    })
}

fn main() -> ExitCode {
    // The worker-mode line: in a worker process this serves tasks and never returns.
    if let Err(error) = concurrent_futures::process_main!(copy_file) {
        eprintln!("folder_copy: {error}");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("folder_copy: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args_os().skip(1);
    let Some(src) = args.next().map(PathBuf::from) else {
        return Err("usage: folder_copy SRC [DST]".into());
    };
    let dst = args.next().map(PathBuf::from).unwrap_or_else(|| {
        let mut name = OsString::from(src.as_os_str());
        name.push("[copy]");
        PathBuf::from(name)
    });
    if !src.is_dir() {
        return Err(format!(
            "the source folder {} does not exist or is not a folder",
            src.display()
        ));
    }
    std::fs::create_dir_all(&dst)
        .map_err(|error| format!("cannot create {}: {error}", dst.display()))?;
    let files = regular_files(&src)?;

    let pool = ProcessPoolExecutor::new(3).map_err(|error| error.to_string())?;
    let futures: Vec<Future<Result<u64, String>>> = files
        .iter()
        .map(|name| pool.submit(copy_file, (src.join(name), dst.join(name))))
        .collect::<Result<_, _>>()
        .map_err(|error| error.to_string())?;

    let bar = ProgressBar::new(futures.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files ({percent}%) {msg}")
            .map_err(|error| error.to_string())?,
    );
    let (mut bytes, mut failed) = (0u64, 0usize);
    for finished in as_completed(&futures, None) {
        let finished = finished.map_err(|error| error.to_string())?;
        match finished.result() {
            Ok(Ok(size)) => {
                bytes += size;
                bar.inc(1);
            }
            Ok(Err(why)) => {
                failed += 1;
                bar.println(format!("could not copy {why}"));
            }
            Err(error) => {
                failed += 1;
                bar.println(format!("a copy failed: {error}"));
            }
        }
    }
    bar.finish_with_message(format!("{bytes} bytes copied to {}", dst.display()));
    pool.shutdown(true);
    if failed > 0 {
        return Err(format!("{failed} of {} files were not copied", files.len()));
    }
    Ok(())
}

/// The names of the regular files in `folder` (subfolders are not copied, as in the seed).
fn regular_files(folder: &Path) -> Result<Vec<OsString>, String> {
    let entries = std::fs::read_dir(folder)
        .map_err(|error| format!("cannot list {}: {error}", folder.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| format!("cannot list {}: {error}", folder.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            names.push(entry.file_name());
        }
    }
    names.sort();
    Ok(names)
}
