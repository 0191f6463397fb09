//! The echo-server example: run as a process with 500 clients, and its parts in-process (the example file is compiled
//! in as a module), including a check that the clients' verification catches a server that does not upper-case.

#[path = "../examples/echo_server.rs"]
mod echo_server;
#[path = "common/examples.rs"]
mod examples;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use echo_server::{EchoServer, run_clients};
use examples::Run;

/// If the example runs longer than this, the test fails (a safety net, not a synchronisation).
const WATCHDOG: Duration = Duration::from_secs(120);
/// The clients' reply timeout: a safety net far above what a reply needs, even waiting in line behind every other
/// client on a saturated machine, so that only a hung server reaches it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

/// `target/<profile>/examples/echo_server`, built (or found up to date) by cargo on first use.
fn echo_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| examples::build_example("echo_server"))
}

/// Runs the example; a self-test gets the generous `CLIENT_TIMEOUT` (in whole seconds).
fn run(args: &[&str]) -> Run {
    let mut command = Command::new(echo_bin());
    command.args(args);
    if args.contains(&"--self-test") {
        command.args([
            "--client-timeout",
            &format!("{}s", CLIENT_TIMEOUT.as_secs()),
        ]);
    }
    let child = examples::spawn(&mut command, "the example");
    examples::finish(child, "echo_server", WATCHDOG)
}

/// Asserts that the example exited with code 0, showing its output otherwise.
#[track_caller]
fn assert_succeeded(run: &Run) {
    assert_eq!(
        run.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
}

/// The value on the report line that starts with `label`.
fn figure(stdout: &str, label: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in\n{stdout}"));
    line[label.len()..]
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn self_test_with_500_clients_verifies_every_reply() {
    // `--self-test` with no count means 500 clients, as in the seed program.
    let run = run(&["--self-test", "--messages", "10"]);
    assert_succeeded(&run);
    assert!(
        run.stdout.contains("500 clients x 10 messages"),
        "{}",
        run.stdout
    );
    assert_eq!(figure(&run.stdout, "clients"), 500);
    assert_eq!(figure(&run.stdout, "messages sent"), 5000);
    assert_eq!(figure(&run.stdout, "replies verified"), 5000);
    assert_eq!(figure(&run.stdout, "mismatches"), 0);
    assert_eq!(figure(&run.stdout, "failed clients"), 0);
    assert_eq!(figure(&run.stdout, "connections"), 500);
    // Each message is "client-{id} say hello {n}\n".
    let bytes: u64 = (0..500u64)
        .flat_map(|id| (0..10u64).map(move |n| format!("client-{id} say hello {n}\n").len() as u64))
        .sum();
    assert_eq!(figure(&run.stdout, "bytes echoed"), bytes);
    let peak = figure(&run.stdout, "peak concurrent");
    assert!((1..=64).contains(&peak), "peak {peak} with 64 workers");
    assert!(run.stdout.contains("OK: every reply verified"));
}

#[test]
fn a_tiny_pool_with_a_queue_of_one_still_serves_every_client() {
    let run = run(&[
        "--self-test",
        "200",
        "--workers",
        "2",
        "--queue",
        "1",
        "--messages",
        "3",
    ]);
    assert_succeeded(&run);
    assert_eq!(figure(&run.stdout, "replies verified"), 600);
    assert_eq!(figure(&run.stdout, "connections"), 200);
    let peak = figure(&run.stdout, "peak concurrent");
    assert!((1..=2).contains(&peak), "peak {peak} with 2 workers");
}

#[test]
fn bad_input_exits_2_with_a_message() {
    for (args, message) in [
        (&["--addr", "0.0.0.0:7777"][..], "not a loopback address"),
        (&["--self-test", "0"][..], "--self-test"),
        (&["--workers", "0", "--self-test", "5"][..], "--workers"),
        (&["--addr", "nowhere"][..], "--addr"),
        (
            &["--addr", "0.0.0.0:0", "--self-test", "3"][..],
            "not a loopback address",
        ),
        (
            &["--self-test", "-1"][..],
            "expected a whole number from 1 to 10000",
        ),
        (
            &["--workers", "-1", "--self-test", "5"][..],
            "expected a whole number from 1 to 4096",
        ),
        (&["--messages", "-2", "--self-test", "5"][..], "--messages"),
        (
            &["--client-timeout", "soon", "--self-test", "5"][..],
            "--client-timeout",
        ),
    ] {
        let run = run(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(message),
            "{args:?}: {message:?} not in {}",
            run.stderr
        );
        // clap's tip to pass `-1` after `--` does not apply here.
        assert!(!run.stderr.contains("tip:"), "{args:?}: {}", run.stderr);
    }
}

/// `--addr` is where the self-test's server listens too (it used to be ignored there). 127.0.0.2 is loopback on
/// Linux, and port 0 picks a free port, so no other program's port is taken.
#[cfg(target_os = "linux")]
#[test]
fn self_test_listens_on_addr() {
    let run = run(&[
        "--self-test",
        "5",
        "--messages",
        "2",
        "--addr",
        "127.0.0.2:0",
    ]);
    assert_succeeded(&run);
    assert!(
        run.stdout.starts_with("echo server on 127.0.0.2:"),
        "{}",
        run.stdout
    );
    assert_eq!(figure(&run.stdout, "replies verified"), 10);
}

#[test]
fn counts_agree_with_their_nouns() {
    let run = run(&[
        "--self-test",
        "1",
        "--workers",
        "1",
        "--queue",
        "1",
        "--messages",
        "1",
    ]);
    assert_succeeded(&run);
    assert!(
        run.stdout
            .contains("(1 worker, queue of 1); 1 client x 1 message\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn in_process_server_counts_what_it_served() {
    let server = EchoServer::start(([127, 0, 0, 1], 0).into(), 8, 4).expect("a loopback server");
    let stats = run_clients(server.addr(), 50, 4, CLIENT_TIMEOUT);
    let served = server.stop();
    assert_eq!(
        (stats.clients, stats.messages, stats.verified),
        (50, 200, 200)
    );
    assert_eq!(
        (stats.mismatches, stats.failed_clients),
        (0, 0),
        "{:?}",
        stats.problems
    );
    assert_eq!(served.connections, 50);
    assert_eq!(served.bytes, stats.bytes);
    assert_eq!(served.errors, 0);
    assert!(served.peak_concurrent <= 8);
}

#[test]
fn the_clients_catch_a_server_that_does_not_upper_case() {
    // A plain echo server (no upper-casing), one thread per connection, for 20 connections.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut handlers = Vec::new();
        for conn in listener.incoming().take(20) {
            let mut conn = conn.unwrap();
            handlers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => conn.write_all(&buf[..n]).unwrap(),
                    }
                }
            }));
        }
        for handler in handlers {
            handler.join().unwrap();
        }
    });
    let stats = run_clients(addr, 20, 5, CLIENT_TIMEOUT);
    server.join().unwrap();
    assert_eq!(stats.messages, 100);
    assert_eq!(stats.verified, 0);
    assert_eq!(stats.mismatches, 100);
    assert!(
        stats.problems[0].contains("say hello"),
        "{:?}",
        stats.problems
    );
}

#[test]
fn a_non_loopback_address_is_refused_in_process_too() {
    let err = EchoServer::start(([0, 0, 0, 0], 0).into(), 1, 1)
        .err()
        .expect("refused");
    assert!(err.contains("not a loopback address"), "{err}");
}
