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

/// A value with no serde impl: the `Executor` trait asks only what threads need (`Send`, `Sync` results), so it
/// is the same with or without the crate's `process` feature.
#[derive(Debug, PartialEq)]
struct Opaque(std::sync::Arc<str>);

fn label(n: u32) -> Opaque {
    Opaque(format!("item {n}").into())
}

fn generic_labels<E: Executor>(pool: &E) -> Result<Vec<Opaque>, concurrent_futures::Error> {
    let first = pool.submit(label, 0)?;
    let mut all = vec![first.into_result()?];
    for value in pool.map(label, 1..4)? {
        all.push(value?);
    }
    Ok(all)
}

#[test]
fn the_trait_needs_no_serde() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let labels = generic_labels(&pool).unwrap();
    let expected: Vec<Opaque> = (0..4).map(label).collect();
    assert_eq!(labels, expected);
}
