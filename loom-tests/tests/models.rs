//! Runs every loom model against the library's real code (see `src/models.rs` for what each checks).
#![cfg(all(concurrent_futures_loom, not(concurrent_futures_mutant)))]

use concurrent_futures_loom_tests::{model, model_capped, models};

/// The preemption bound of the largest models (4a, 4b, 9b, 11b, 12): at 2 they explore 0.3 to 1 million
/// interleavings each (20 to 60 s); at 3, several million, beyond CI's budget on 2 cores.
const LARGE_MODEL_BOUND: usize = 2;

#[test]
fn model_1_completion_vs_add_done_callback() {
    model(
        "1 completion vs add_done_callback",
        models::completion_vs_add_done_callback,
    );
}

#[test]
fn model_2_cancel_vs_start() {
    model("2 cancel vs worker start", models::cancel_vs_start);
}

#[test]
fn model_3_result_waiter_vs_completion() {
    model(
        "3 result() waiter vs completion",
        models::result_waiter_vs_completion,
    );
}

#[test]
fn model_4a_wait_first_completed() {
    model_capped(
        "4a wait(FirstCompleted), two completing",
        LARGE_MODEL_BOUND,
        models::wait_first_completed,
    );
}

#[test]
fn model_4b_as_completed_two() {
    model_capped(
        "4b as_completed, two completing",
        LARGE_MODEL_BOUND,
        models::as_completed_two,
    );
}

#[test]
fn model_5_submit_vs_shutdown() {
    model("5 submit vs shutdown(wait)", models::submit_vs_shutdown);
}

#[test]
fn model_6_shutdown_cancel_vs_worker() {
    model(
        "6 shutdown(cancel_futures) vs worker",
        models::shutdown_cancel_vs_worker,
    );
}

#[test]
fn model_7_lazy_start_two_submitters() {
    model(
        "7 lazy start, two submitters, max_workers 1",
        models::lazy_start_two_submitters,
    );
}

#[test]
fn model_8_drop_handle_while_completing() {
    model(
        "8 drop last handle while completing",
        models::drop_handle_while_completing,
    );
}

#[test]
fn model_9_bounded_submit_released_by_shutdown() {
    model(
        "9 bounded queue: blocked submit vs shutdown",
        models::bounded_submit_released_by_shutdown,
    );
}

#[test]
fn model_9b_bounded_submit_released_by_worker() {
    model_capped(
        "9b bounded queue: blocked submit vs worker",
        LARGE_MODEL_BOUND,
        models::bounded_submit_released_by_worker,
    );
}

#[test]
fn model_10_await_vs_completion() {
    model("10 await vs completion", models::await_vs_completion);
}

#[test]
fn model_11_nested_wait_one_worker() {
    model(
        "11 nested wait on one worker",
        models::nested_wait_one_worker,
    );
}

#[test]
fn model_11b_claim_vs_dequeue_vs_cancel() {
    model_capped(
        "11b claim vs worker dequeue vs cancel",
        LARGE_MODEL_BOUND,
        models::claim_vs_dequeue_vs_cancel,
    );
}

#[test]
fn model_12_shrink_vs_submit() {
    model_capped(
        "12 shrinking vs submit",
        LARGE_MODEL_BOUND,
        models::shrink_vs_submit,
    );
}

#[test]
fn model_13_lazy_start_blocked_task() {
    model_capped(
        "13 lazy start: a task blocked on a queued one gets a thread",
        LARGE_MODEL_BOUND,
        models::lazy_start_blocked_task,
    );
}

#[test]
fn model_14_callback_blocks_on_new_task() {
    model_capped(
        "14 a callback blocked on a task it submitted gets a thread",
        LARGE_MODEL_BOUND,
        models::callback_blocks_on_new_task,
    );
}

#[test]
fn model_15_local_push_reaches_other_worker() {
    model_capped(
        "15 a task pushed to a worker's own queue reaches the other worker",
        LARGE_MODEL_BOUND,
        models::local_push_reaches_other_worker,
    );
}
