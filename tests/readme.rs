//! The README's Rust snippets are run as doctests (`ReadmeDoctests` in `src/lib.rs`); this checks that they are
//! also what a reader copies: complete programs, with no line that rustdoc hides (`# ...`) and a Markdown
//! reader shows.

#[test]
fn readme_snippets_are_complete_programs_with_no_hidden_lines() {
    let readme = include_str!("../README.md");
    let mut snippets = 0;
    let mut lines = readme.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let fence = line.trim_start();
        if !fence.starts_with("```rust") {
            continue;
        }
        snippets += 1;
        let mut body = Vec::new();
        for (_, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            body.push(line.trim_start());
        }
        for line in &body {
            assert!(
                !(*line == "#" || line.starts_with("# ")),
                "README.md line {}: a snippet has a line rustdoc hides: {line:?}",
                number + 1
            );
        }
        assert!(
            body.iter().any(|line| line.starts_with("fn main(")),
            "README.md line {}: a snippet without `fn main`",
            number + 1
        );
    }
    assert!(snippets >= 4, "only {snippets} Rust snippets found");
}
