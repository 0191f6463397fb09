//! The folder_copy example (seed program 3), run as a process on trees made in temporary folders, and on
//! `/usr/share/doc`: the copy must be the same tree (folders, files and their contents, permissions, symlinks as
//! symlinks), a summary line is always printed, failures exit non-zero naming what failed, and a folder is never
//! copied into itself. (Unix: the trees have modes and symlinks.)
#![cfg(unix)]

#[path = "common/examples.rs"]
mod examples;

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use examples::Run;

/// If a copy runs longer than this, the test fails (a safety net, not a synchronisation).
const WATCHDOG: Duration = Duration::from_secs(300);

fn folder_copy_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| examples::build_example("folder_copy"))
}

fn copy(args: &[&Path]) -> Run {
    let child = examples::spawn(Command::new(folder_copy_bin()).args(args), "folder_copy");
    examples::finish(child, "folder_copy", WATCHDOG)
}

/// A fresh folder under the system's temporary folder, removed (permissions restored first) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "folder_copy-test-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).expect("a temporary folder");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        make_writable(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Gives every folder under `path` (links not followed) its owner's rwx bits back, so that it can be removed.
fn make_writable(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let mode = meta.permissions().mode() | 0o700;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                make_writable(&entry.path());
            }
        }
    }
}

/// One entry of a tree, as compared between a source and its copy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Folder {
        mode: u32,
    },
    /// The contents' length and hash (a tree of 100 MB is compared without holding it in memory).
    File {
        mode: u32,
        len: usize,
        hash: u64,
    },
    Link {
        target: PathBuf,
    },
}

/// Every entry under `root`, by relative path (links not followed). The root itself is `""`.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn visit(root: &Path, relative: &Path, tree: &mut BTreeMap<PathBuf, Node>) {
        let path = root.join(relative);
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        let mode = meta.permissions().mode() & 0o7777;
        let node = if meta.file_type().is_symlink() {
            Node::Link {
                target: std::fs::read_link(&path).expect("a link"),
            }
        } else if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("a readable folder") {
                visit(
                    root,
                    &relative.join(entry.expect("an entry").file_name()),
                    tree,
                );
            }
            Node::Folder { mode }
        } else {
            let contents = std::fs::read(&path).expect("a readable file");
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&contents, &mut hasher);
            Node::File {
                mode,
                len: contents.len(),
                hash: std::hash::Hasher::finish(&hasher),
            }
        };
        tree.insert(relative.to_owned(), node);
    }
    let mut tree = BTreeMap::new();
    visit(root, Path::new(""), &mut tree);
    tree
}

/// Asserts that two snapshots are the same tree, naming the first difference.
#[track_caller]
fn assert_same_tree(source: &BTreeMap<PathBuf, Node>, copy: &BTreeMap<PathBuf, Node>) {
    for (path, node) in source {
        match copy.get(path) {
            None => panic!("{} was not copied", path.display()),
            Some(copied) if copied != node => panic!(
                "{} differs: {} in the source, {} in the copy",
                path.display(),
                describe(node),
                describe(copied)
            ),
            Some(_) => {}
        }
    }
    for path in copy.keys() {
        assert!(
            source.contains_key(path),
            "{} is in the copy only",
            path.display()
        );
    }
}

fn describe(node: &Node) -> String {
    match node {
        Node::Folder { mode } => format!("a folder {mode:o}"),
        Node::File { mode, len, .. } => format!("a file {mode:o} of {len} bytes"),
        Node::Link { target } => format!("a link to {}", target.display()),
    }
}

fn files_in(tree: &BTreeMap<PathBuf, Node>) -> usize {
    tree.values()
        .filter(|n| matches!(n, Node::File { .. }))
        .count()
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Root reads every file whatever its mode, so unreadable-file cases only mean something for other users.
fn running_as_root() -> bool {
    // The owner of a file this process creates is this process's effective user.
    let probe = TempDir::new("whoami");
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&probe.0).unwrap()) == 0
}

/// A tree with nested folders, modes, empty and larger files, odd names, and links of every kind.
fn make_tree(root: &Path) {
    let mkdir = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
    let write = |p: &str, contents: &[u8], mode: u32| {
        std::fs::write(root.join(p), contents).unwrap();
        set_mode(&root.join(p), mode);
    };
    mkdir("a/b/c");
    mkdir("empty");
    mkdir("private");
    mkdir("read-only");
    write("top.txt", b"top\n", 0o644);
    write("run.sh", b"#!/bin/sh\necho hi\n", 0o755);
    write("a/secret", b"s3cret", 0o600);
    write("a/b/frozen", b"do not touch", 0o444);
    write(
        "a/b/c/deep.bin",
        &(0..=255u8).cycle().take(1 << 20).collect::<Vec<_>>(),
        0o640,
    );
    write("a/b/c/empty-file", b"", 0o644);
    write(
        "name with spaces & ünïcode.txt",
        "ünïcode".as_bytes(),
        0o644,
    );
    write("private/inside", b"inside a 0700 folder", 0o644);
    write("read-only/kept", b"inside a read-only folder", 0o644);
    symlink("top.txt", root.join("link-to-file")).unwrap();
    symlink("a/b", root.join("link-to-folder")).unwrap();
    symlink("../../top.txt", root.join("a/b/up-link")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    symlink("/etc/hostname", root.join("absolute-link")).unwrap();
    set_mode(&root.join("private"), 0o700);
    set_mode(&root.join("a/b/c"), 0o750);
    // Last: nothing more can be created inside it.
    set_mode(&root.join("read-only"), 0o555);
}

#[test]
fn copies_the_whole_tree_with_modes_and_links_and_prints_a_summary() {
    let temp = TempDir::new("tree");
    let src = temp.0.join("src");
    std::fs::create_dir(&src).unwrap();
    make_tree(&src);
    let dst = temp.0.join("out/copy");
    let before = snapshot(&src);

    let run = copy(&[&src, &dst]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_same_tree(&before, &snapshot(&dst));
    // Links are recreated, not followed: the link to a folder is a link in the copy.
    assert!(
        std::fs::symlink_metadata(dst.join("link-to-folder"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // No temporary files left behind.
    assert!(
        snapshot(&dst)
            .keys()
            .all(|p| !p.to_string_lossy().ends_with(".part"))
    );
    // stdout is not a terminal here: no progress bar, and one summary line.
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(
        lines[0].starts_with(&format!("Copied {} files (", files_in(&before))),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("7 folders and 5 symlinks from"),
        "{}",
        lines[0]
    );
    assert!(!run.stdout.contains('\r') && !run.stderr.contains('\r'));
    assert_eq!(run.stderr, "");
}

#[test]
fn the_default_destination_is_src_copy_and_an_existing_folder_is_filled() {
    let temp = TempDir::new("default");
    let src = temp.0.join("photos");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("one.jpg"), b"1").unwrap();
    let run = copy(&[&src]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let dst = temp.0.join("photos[copy]");
    assert_eq!(std::fs::read(dst.join("one.jpg")).unwrap(), b"1");
    // Again, into the folder that now exists: files are replaced, the tree is the same.
    std::fs::write(src.join("one.jpg"), b"one").unwrap();
    let run = copy(&[&src]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_same_tree(&snapshot(&src), &snapshot(&dst));
    assert!(
        run.stdout
            .starts_with("Copied 1 file (3 B of 3 B), 1 folder and 0 symlinks"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_folder_is_never_copied_into_itself() {
    let temp = TempDir::new("itself");
    let src = temp.0.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/file"), b"x").unwrap();
    symlink(&src, temp.0.join("alias")).unwrap();
    let before = snapshot(&temp.0);
    for (dst, expected) in [
        (src.clone(), "into itself"),
        (src.join("."), "into itself"),
        (src.join("sub"), "into one of its own subfolders"),
        (src.join("sub/new/deeper"), "into one of its own subfolders"),
        (temp.0.join("alias/new"), "into one of its own subfolders"),
        (
            temp.0.join("elsewhere/../src/new"),
            "into one of its own subfolders",
        ),
    ] {
        let run = copy(&[&src, &dst]);
        assert_eq!(
            run.code,
            Some(2),
            "{}: {}{}",
            dst.display(),
            run.stdout,
            run.stderr
        );
        assert!(
            run.stderr.contains("cannot copy the folder") && run.stderr.contains(expected),
            "{}: {}",
            dst.display(),
            run.stderr
        );
        // Nothing was created.
        assert_eq!(snapshot(&temp.0), before, "{}", dst.display());
    }
    // A sibling whose name starts like the source is not inside it.
    let run = copy(&[&src, &temp.0.join("src2")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let temp = TempDir::new("bad");
    let file = temp.0.join("file");
    std::fs::write(&file, b"x").unwrap();
    let missing = temp.0.join("missing");
    let cases: [(&[&Path], &str); 4] = [
        (&[], "usage: folder_copy SRC [DST]"),
        (&[&missing], "cannot be opened"),
        (&[&file], "is not a folder"),
        (
            &[&temp.0, &temp.0.join("../x-out-of-test"), &file],
            "unexpected argument",
        ),
    ];
    for (args, expected) in cases {
        let run = copy(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
    // A destination that is a file.
    let src = temp.0.join("src");
    std::fs::create_dir(&src).unwrap();
    let run = copy(&[&src, &file]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("exists and is not a folder"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unreadable_file_fails_with_its_name_and_the_rest_is_copied() {
    if running_as_root() {
        eprintln!("skipped: root reads files whatever their mode");
        return;
    }
    let temp = TempDir::new("unreadable");
    let src = temp.0.join("src");
    std::fs::create_dir_all(src.join("locked")).unwrap();
    std::fs::write(src.join("fine"), b"fine").unwrap();
    std::fs::write(src.join("no-read"), b"hidden").unwrap();
    set_mode(&src.join("no-read"), 0o000);
    std::fs::write(src.join("locked/inside"), b"x").unwrap();
    set_mode(&src.join("locked"), 0o000);
    let dst = temp.0.join("dst");
    let run = copy(&[&src, &dst]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("no-read"), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot list") && run.stderr.contains("locked"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("2 entries could not be copied"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("; 2 failed"), "{}", run.stdout);
    assert_eq!(std::fs::read(dst.join("fine")).unwrap(), b"fine");
    assert!(!dst.join("no-read").exists());
    assert!(!dst.join(".no-read.part").exists());
    set_mode(&src.join("locked"), 0o700);
}

#[test]
fn usr_share_doc_copies() {
    let doc = Path::new("/usr/share/doc");
    if !doc.is_dir() {
        eprintln!("skipped: no /usr/share/doc here");
        return;
    }
    let temp = TempDir::new("doc");
    let dst = temp.0.join("doc");
    // A package installed meanwhile changes the source: then the copy is compared again, up to three times.
    for attempt in 1..=3 {
        let before = snapshot(doc);
        let run = copy(&[doc, &dst]);
        let after = snapshot(doc);
        if before != after && attempt < 3 {
            make_writable(&dst);
            let _ = std::fs::remove_dir_all(&dst);
            continue;
        }
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let files = files_in(&before);
        assert!(files > 0);
        assert!(
            run.stdout.starts_with(&format!("Copied {files} files (")),
            "{} files in /usr/share/doc: {}",
            files,
            run.stdout
        );
        assert_same_tree(&before, &snapshot(&dst));
        return;
    }
}
