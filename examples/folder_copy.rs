//! Seed program 3: copy a folder with a process pool, with a progress bar driven by the futures as they complete
//! (`as_completed`): no separate queue is needed to learn which copies are done.
//!
//! `cargo run --example folder_copy -- SRC [DST]` (DST defaults to `SRC[copy]`, as in the Python seed).
//!
//! The whole tree is copied: folders are created, symbolic links are recreated as links (never followed),
//! permissions are kept. The parent walks the tree, creates the folders and links, and submits one task per file
//! to a pool of 3 worker processes; each file is copied to a temporary name and renamed once complete, so a file
//! appears under its own name only after its copy succeeded. Folder permissions are applied last (deepest first),
//! so a read-only folder can still be filled. The progress bar is drawn only on a terminal; the summary line is
//! always printed. Exit codes: 0 when everything was copied, 1 when something could not be (each failure is
//! named on stderr), 2 for bad input (a missing source, or a destination inside the source).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use concurrent_futures::{Future, ProcessPoolExecutor, as_completed};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Worker processes, as in the seed's `Pool(3)`.
const WORKERS: usize = 3;

/// The task, run in a worker process: copies the file `src` to `dst` (contents and permission bits); the number
/// of bytes, or why it failed.
fn copy_file((src, dst): (PathBuf, PathBuf)) -> Result<u64, String> {
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dst.with_file_name(format!(".{name}.part"));
    // `std::fs::copy` copies the permission bits too.
    let copied = std::fs::copy(&src, &partial).and_then(|bytes| {
        std::fs::rename(&partial, &dst)?;
        Ok(bytes)
    });
    copied.map_err(|error| {
        let _ = std::fs::remove_file(&partial);
        format!("{}: {error}", src.display())
    })
}

/// Why the program stops early.
enum Stop {
    /// Bad input: exit code 2.
    Usage(String),
    /// Something failed: exit code 1.
    Failed(String),
}

fn main() -> ExitCode {
    // The worker-mode line: in a worker process this serves tasks and never returns.
    if let Err(error) = concurrent_futures::process_main!(copy_file) {
        eprintln!("folder_copy: {error}");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stop::Usage(message)) => {
            eprintln!("folder_copy: {message}");
            ExitCode::from(2)
        }
        Err(Stop::Failed(message)) => {
            eprintln!("folder_copy: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What the walk of the source found, in the order it found it (a folder before its contents).
#[derive(Default)]
struct Tree {
    /// Relative paths and permission modes; the root (`""`) first.
    folders: Vec<(PathBuf, u32)>,
    /// Relative paths and sizes.
    files: Vec<(PathBuf, u64)>,
    /// Relative paths, link targets (as stored in the link), and whether the target is a folder (Windows makes
    /// folder links and file links differently).
    links: Vec<(PathBuf, PathBuf, bool)>,
    /// What could not be read or is not a file, folder or link: the path and why.
    problems: Vec<String>,
}

fn run() -> Result<(), Stop> {
    let mut args = std::env::args_os().skip(1);
    let Some(src) = args.next().map(PathBuf::from) else {
        return Err(Stop::Usage("usage: folder_copy SRC [DST]".into()));
    };
    let dst = args.next().map(PathBuf::from).unwrap_or_else(|| {
        let mut name = OsString::from(src.as_os_str());
        name.push("[copy]");
        PathBuf::from(name)
    });
    if let Some(extra) = args.next() {
        return Err(Stop::Usage(format!(
            "unexpected argument {extra:?}; usage: folder_copy SRC [DST]"
        )));
    }
    check_paths(&src, &dst)?;

    let started = Instant::now();
    let mut tree = Tree::default();
    walk(&src, Path::new(""), &mut tree);
    // Each failure is said on stderr at once, and counted for the summary.
    let mut failures = Vec::new();
    let mut fail = |failure: String| {
        eprintln!("folder_copy: {failure}");
        failures.push(failure);
    };
    for problem in std::mem::take(&mut tree.problems) {
        fail(problem);
    }

    // Folders first (writable by us while we fill them), then links, then files on the pool.
    let mut folders_made = Vec::new();
    for (relative, mode) in &tree.folders {
        let target = dst.join(relative);
        match std::fs::create_dir_all(&target).and_then(|()| set_mode(&target, 0o700)) {
            Ok(()) => folders_made.push((target, *mode)),
            Err(error) => fail(format!("cannot create {}: {error}", target.display())),
        }
    }
    let mut links_made = 0usize;
    for (relative, target, to_folder) in &tree.links {
        let link = dst.join(relative);
        if std::fs::symlink_metadata(&link).is_ok_and(|m| !m.is_dir()) {
            let _ = std::fs::remove_file(&link);
        }
        match make_link(target, &link, *to_folder) {
            Ok(()) => links_made += 1,
            Err(error) => fail(format!(
                "cannot create the link {}: {error}",
                link.display()
            )),
        }
    }

    let pool = ProcessPoolExecutor::new(WORKERS).map_err(|e| Stop::Failed(e.to_string()))?;
    let mut futures: Vec<Future<Result<u64, String>>> = Vec::with_capacity(tree.files.len());
    for (relative, _) in &tree.files {
        let future = pool
            .submit(copy_file, (src.join(relative), dst.join(relative)))
            .map_err(|e| Stop::Failed(format!("cannot submit a copy: {e}")))?;
        futures.push(future);
    }
    let total_bytes: u64 = tree.files.iter().map(|(_, size)| size).sum();
    let bar = progress_bar(futures.len() as u64);
    let (mut bytes, mut files_copied) = (0u64, 0usize);
    for finished in as_completed(&futures, None) {
        let finished = finished.map_err(|e| Stop::Failed(e.to_string()))?;
        let failure = match finished.result() {
            Ok(Ok(size)) => {
                bytes += size;
                files_copied += 1;
                None
            }
            Ok(Err(why)) => Some(format!("could not copy {why}")),
            Err(error) => Some(format!("a copy failed: {error}")),
        };
        if let Some(failure) = failure {
            bar.suspend(|| fail(failure));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    pool.shutdown(true);

    // Folder permissions last, deepest first, so that a read-only folder could be filled.
    for (folder, mode) in folders_made.iter().rev() {
        if let Err(error) = set_mode(folder, *mode) {
            fail(format!(
                "cannot set the permissions of {}: {error}",
                folder.display()
            ));
        }
    }

    println!(
        "Copied {} ({} of {}), {} and {} from {} to {} in {:.2} s{}",
        counted(files_copied, "file", "files"),
        human_bytes(bytes),
        human_bytes(total_bytes),
        counted(folders_made.len(), "folder", "folders"),
        counted(links_made, "symlink", "symlinks"),
        src.display(),
        dst.display(),
        started.elapsed().as_secs_f64(),
        if failures.is_empty() {
            String::new()
        } else {
            format!("; {} failed", failures.len())
        }
    );
    if failures.is_empty() {
        return Ok(());
    }
    Err(Stop::Failed(format!(
        "{} could not be copied (see above)",
        counted(failures.len(), "entry", "entries")
    )))
}

/// The source must be a folder, the destination must not be the source or inside it (compared as canonical paths,
/// so links and `..` cannot hide it), and must be a folder if it exists.
fn check_paths(src: &Path, dst: &Path) -> Result<(), Stop> {
    let src_real = match std::fs::canonicalize(src) {
        Ok(path) if path.is_dir() => path,
        Ok(_) => {
            return Err(Stop::Usage(format!(
                "the source {} is not a folder",
                src.display()
            )));
        }
        Err(error) => {
            return Err(Stop::Usage(format!(
                "the source folder {} cannot be opened: {error}",
                src.display()
            )));
        }
    };
    let dst_real = canonical_to_be(dst).map_err(|error| {
        Stop::Usage(format!(
            "the destination {} cannot be used: {error}",
            dst.display()
        ))
    })?;
    if dst_real.starts_with(&src_real) {
        let what = if dst_real == src_real {
            "into itself".to_owned()
        } else {
            format!("into one of its own subfolders ({})", dst_real.display())
        };
        return Err(Stop::Usage(format!(
            "cannot copy the folder {} {what}: choose a destination outside it",
            src_real.display()
        )));
    }
    if std::fs::metadata(dst).is_ok_and(|m| !m.is_dir()) {
        return Err(Stop::Usage(format!(
            "the destination {} exists and is not a folder",
            dst.display()
        )));
    }
    Ok(())
}

/// The canonical form `path` has or would have once created: its deepest existing ancestor canonicalised, then the
/// rest (which cannot contain links, since it does not exist) normalised by hand.
fn canonical_to_be(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::env::current_dir()?.join(path);
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(existing).is_err() {
        rest.push(existing.file_name().map(OsString::from));
        existing = match existing.parent() {
            Some(parent) => parent,
            None => break,
        };
    }
    let mut real = std::fs::canonicalize(existing)?;
    for part in rest.into_iter().rev() {
        match part {
            Some(name) if name == ".." => {
                real.pop();
            }
            Some(name) if name == "." => {}
            Some(name) => real.push(name),
            // `..` as the last component has no file name.
            None => {
                real.pop();
            }
        }
    }
    Ok(real)
}

/// Records `root/relative` and everything under it in `tree`, without following links.
fn walk(root: &Path, relative: &Path, tree: &mut Tree) {
    let folder = root.join(relative);
    let mode = match std::fs::metadata(&folder) {
        Ok(meta) => mode_of(&meta),
        Err(error) => {
            tree.problems
                .push(format!("cannot read {}: {error}", folder.display()));
            return;
        }
    };
    tree.folders.push((relative.to_owned(), mode));
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(error) => {
            tree.problems
                .push(format!("cannot list {}: {error}", folder.display()));
            return;
        }
    };
    let mut entries: Vec<_> = entries
        .filter_map(|entry| match entry {
            Ok(entry) => Some(entry),
            Err(error) => {
                tree.problems
                    .push(format!("cannot list {}: {error}", folder.display()));
                None
            }
        })
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let relative = relative.join(entry.file_name());
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(error) => {
                tree.problems
                    .push(format!("cannot read {}: {error}", path.display()));
                continue;
            }
        };
        if kind.is_symlink() {
            match std::fs::read_link(&path) {
                Ok(target) => {
                    let to_folder = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
                    tree.links.push((relative, target, to_folder));
                }
                Err(error) => tree
                    .problems
                    .push(format!("cannot read the link {}: {error}", path.display())),
            }
        } else if kind.is_dir() {
            walk(root, &relative, tree);
        } else if kind.is_file() {
            let size = entry.metadata().map_or(0, |m| m.len());
            tree.files.push((relative, size));
        } else {
            tree.problems.push(format!(
                "not copied: {} is not a file, a folder or a symlink (a device, socket or pipe)",
                path.display()
            ));
        }
    }
}

/// The permission bits of a folder: its Unix mode (elsewhere, a mode that says only whether it is read-only).
#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o555
    } else {
        0o755
    }
}

/// Gives `path` the permission bits `mode` (elsewhere than Unix: the read-only flag).
#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    let mut permissions = std::fs::metadata(path)?.permissions();
    permissions.set_readonly(mode & 0o200 == 0);
    std::fs::set_permissions(path, permissions)
}

/// Creates the symbolic link `link` pointing at `target`.
#[cfg(unix)]
fn make_link(target: &Path, link: &Path, _to_folder: bool) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn make_link(target: &Path, link: &Path, to_folder: bool) -> std::io::Result<()> {
    if to_folder {
        std::os::windows::fs::symlink_dir(target, link)
    } else {
        std::os::windows::fs::symlink_file(target, link)
    }
}

#[cfg(not(any(unix, windows)))]
fn make_link(_: &Path, _: &Path, _: bool) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "symbolic links are not supported here",
    ))
}

/// A bar with counts on stderr when stderr is a terminal; hidden otherwise (the summary line is printed anyway).
fn progress_bar(files: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(files), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} files ({percent}%)") {
        bar.set_style(style);
    }
    bar
}

/// `1 file`, `2 files`: a count and the noun that agrees with it.
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
