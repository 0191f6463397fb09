//! The quickstart example, run as a process: every shape it shows prints what it should, and its deliberate panic
//! is announced as expected on stderr, right before Rust's own panic message.

#[path = "common/examples.rs"]
mod examples;

use std::process::Command;
use std::time::Duration;

#[test]
fn quickstart_runs_and_says_its_panic_is_expected() {
    let bin = examples::build_example("quickstart");
    let child = examples::spawn(&mut Command::new(bin), "quickstart");
    let run = examples::finish(child, "quickstart", Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    for line in [
        "map: [1, 4, 9, 16, 25, 36, 49, 64]",
        "joined 2 greenlets: noah eats / bobo plays",
        "panicking task, as expected: the task panicked: boom",
        "after shutdown, submit says: cannot schedule new futures after shutdown",
    ] {
        assert!(run.stdout.contains(line), "no {line:?} in\n{}", run.stdout);
    }
    assert_eq!(
        run.stdout.matches("as_completed: ").count(),
        3,
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches("finished square(").count(),
        4,
        "{}",
        run.stdout
    );
    // stderr: the announcement, then the panic it announces, and nothing else unannounced.
    let announced = run
        .stderr
        .find("panics on purpose (expected)")
        .unwrap_or_else(|| panic!("no announcement on stderr:\n{}", run.stderr));
    let panic = run
        .stderr
        .find("panicked at")
        .unwrap_or_else(|| panic!("no panic message on stderr:\n{}", run.stderr));
    assert!(announced < panic, "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("panicked at").count(),
        1,
        "{}",
        run.stderr
    );
}
