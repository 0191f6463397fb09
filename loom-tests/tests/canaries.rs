//! Canaries: each runs a model against a deliberately broken variant of the library (built with
//! `--cfg concurrent_futures_mutant`) and asserts that loom finds the bug. They are the evidence that the models
//! in `models.rs` are not vacuous. Run one at a time (`--test-threads=1`): the mutant switch is process-wide.
#![cfg(all(concurrent_futures_loom, concurrent_futures_mutant))]

use std::process::{Command, Stdio};

use concurrent_futures_loom_tests::{model, models};

/// Every canary: the mutant, the model it breaks, that model's function, and the preemption bound the model runs
/// at in `tests/models.rs` (each canary runs at its model's own bound: the evidence is about that exploration).
#[rustfmt::skip]
const CANARIES: &[(&str, &str, fn(), usize)] = &[
    ("lost_callback", "1 completion vs add_done_callback", models::completion_vs_add_done_callback, 3),
    ("cancel_race", "2 cancel vs worker start", models::cancel_vs_start, 3),
    ("lost_wakeup", "3 result() waiter vs completion", models::result_waiter_vs_completion, 3),
    ("wait_no_recheck", "4a wait(FirstCompleted)", models::wait_first_completed, 2),
    ("wait_no_recheck", "4b as_completed", models::as_completed_two, 2),
    ("no_gate", "5 submit vs shutdown(wait)", models::submit_vs_shutdown, 3),
    ("start_race", "6 shutdown(cancel_futures) vs worker", models::shutdown_cancel_vs_worker, 3),
    ("overspawn", "7 lazy start, two submitters", models::lazy_start_two_submitters, 3),
    ("leak_cell", "8 drop last handle while completing", models::drop_handle_while_completing, 3),
    ("shutdown_no_release", "9 bounded queue: blocked submit vs shutdown", models::bounded_submit_released_by_shutdown, 3),
    ("queue_no_release", "9b bounded queue: blocked submit vs worker", models::bounded_submit_released_by_worker, 2),
    ("lost_waker", "10 await vs completion", models::await_vs_completion, 3),
    ("no_claim", "11 nested wait on one worker", models::nested_wait_one_worker, 3),
    ("start_race", "11b claim vs worker dequeue vs cancel", models::claim_vs_dequeue_vs_cancel, 2),
    ("retire_no_recheck", "12 shrinking vs submit", models::shrink_vs_submit, 2),
    ("split_counts", "13 lazy start: a task blocked on a queued one", models::lazy_start_blocked_task, 2),
    ("idle_callbacks", "14 a callback blocked on a task it submitted", models::callback_blocks_on_new_task, 2),
    ("no_nudge", "15 a task pushed to a worker's own queue", models::local_push_reaches_other_worker, 2),
    ("uncounted_first_push", "15 a task pushed to a worker's own queue", models::local_push_reaches_other_worker, 2),
];

/// Runs every canary in a child process (a loom failure can abort while unwinding, which must not take the
/// harness down) and asserts that each child failed with loom's finding: a deadlock, a failed assertion, or a
/// leak.
#[test]
fn every_mutant_is_caught_by_its_model() {
    let exe = std::env::current_exe().unwrap();
    let mut vacuous = Vec::new();
    // Two children at a time: one per core of the CI machine.
    let indexed: Vec<_> = CANARIES.iter().enumerate().collect();
    for pair in indexed.chunks(2) {
        let children: Vec<_> = pair
            .iter()
            .map(|(index, (_, _, _, bound))| {
                Command::new(&exe)
                    .args([
                        "--exact",
                        "canary_child",
                        "--ignored",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env("CANARY_INDEX", index.to_string())
                    .env("LOOM_MAX_PREEMPTIONS", bound.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for ((_, (mutant, name, _, bound)), child) in pair.iter().zip(children) {
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            let finding = ["deadlock", "leaked", "assertion", "panicked"]
                .into_iter()
                .find(|f| stderr.contains(f));
            match (output.status.success(), finding) {
                (false, Some(finding)) => {
                    println!(
                        "canary {mutant} against model {name}: caught ({finding}, preemption bound {bound})"
                    )
                }
                _ => {
                    println!(
                        "canary {mutant} against model {name}: NOT caught (exit {:?})",
                        output.status
                    );
                    vacuous.push(*mutant);
                }
            }
        }
    }
    assert!(
        vacuous.is_empty(),
        "loom did not catch these mutants, so their models are vacuous: {vacuous:?}"
    );
}

/// The child side: runs one canary's model against its mutant. It passes only if loom finds nothing, which the
/// parent counts as a vacuous model.
#[test]
#[ignore = "run by every_mutant_is_caught_by_its_model in a child process"]
fn canary_child() {
    let index: usize = std::env::var("CANARY_INDEX")
        .expect("CANARY_INDEX")
        .parse()
        .unwrap();
    let (mutant, name, body, _) = CANARIES[index];
    concurrent_futures::__select_mutant(Some(mutant));
    model(&format!("canary {mutant} / {name}"), body);
}
