//! Python's `concurrent.futures` for Rust: pools of threads (and processes) that run your tasks and hand back
//! [`Future`]s you can wait on, time out, cancel and attach callbacks to.
//!
//! ```
//! use std::time::Duration;
//! use concurrent_futures::{ReturnWhen, ThreadPoolExecutor, as_completed, wait};
//!
//! let pool = ThreadPoolExecutor::new(4)?;
//!
//! // submit + result, with a timeout
//! let answer = pool.submit(|| 6 * 7)?;
//! assert_eq!(answer.result_timeout(Duration::from_secs(5))?, &42);
//!
//! // callbacks run in the thread that completes the future
//! let page = pool.submit(|| "<html>...</html>".to_string())?;
//! page.add_done_callback(|f| println!("parsed {} bytes", f.result().map_or(0, |s| s.len())));
//!
//! // map keeps the input order; as_completed yields as tasks finish
//! let squares: Vec<u64> = pool.map(|x: u64| x * x, 1..=4)?.collect::<Result<_, _>>()?;
//! assert_eq!(squares, [1, 4, 9, 16]);
//! let futures: Vec<_> = (0..3).map(|i| pool.submit(move || i)).collect::<Result<_, _>>()?;
//! let finished = as_completed(&futures, None).count();
//! assert_eq!(finished, 3);
//! let (done, not_done) = wait(&futures, None, ReturnWhen::AllCompleted);
//! assert_eq!((done.len(), not_done.len()), (3, 0));
//!
//! // a panic is an error on its own future, not a dead worker
//! let boom = pool.submit(|| -> u8 { panic!("boom") })?;
//! assert!(boom.result().is_err());
//!
//! pool.shutdown(true);
//! # Ok::<(), concurrent_futures::Error>(())
//! ```
//!
//! See the [`Executor`] trait for code written once for thread and process pools, and `ARCHITECTURE.md` for the
//! design and its happens-before guarantees.
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

mod error;
mod executor;
mod future;
mod map;
#[cfg(feature = "mpi")]
mod mpi;
mod process;
mod sync;
mod thread_pool;
mod unwind;
mod wait;

#[cfg(feature = "mpi")]
pub use crate::mpi::{MpiPoolBuilder, MpiPoolExecutor, WorkerRank};
pub use crate::{
    error::Error,
    executor::{Executor, MapOptions, Payload},
    future::{Future, State},
    map::Map,
    process::{ProcessPoolBuilder, ProcessPoolExecutor, Registry},
    thread_pool::{ThreadPoolBuilder, ThreadPoolExecutor},
    wait::{AsCompleted, ReturnWhen, Waitable, as_completed, wait},
};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Selects a deliberately broken variant of the library for the loom canaries; only in builds with
/// `--cfg concurrent_futures_mutant`. Not part of the API.
#[cfg(concurrent_futures_mutant)]
#[doc(hidden)]
pub fn __select_mutant(name: Option<&'static str>) {
    sync::select_mutant(name);
}
