//! The generic `fn work<E: Executor>` program against the thread pool (the process pool runs the same function in
//! its own tests).

mod common;

use concurrent_futures::{Executor, ThreadPoolExecutor};

#[test]
fn generic_work_on_thread_pool() {
    let pool = ThreadPoolExecutor::new(3).unwrap();
    common::generic::work(&pool).unwrap();
}

#[test]
fn trait_submit_on_a_concrete_thread_pool() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let future = Executor::submit(&pool, common::generic::square, 9).unwrap();
    assert_eq!(future.into_result(), Ok(81));
}
