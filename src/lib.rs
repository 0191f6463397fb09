//! Python's [`concurrent.futures`](https://docs.python.org/3/library/concurrent.futures.html) for Rust: a
//! [`ThreadPoolExecutor`] and a [`ProcessPoolExecutor`] that run your tasks and hand back [`Future`]s you can wait
//! on, time out, cancel and attach callbacks to, with [`wait`], [`as_completed`] and an order-keeping `map`.
//! Python's semantics where they are good, stronger where they are weak: bounded queues with back-pressure, panics
//! returned as errors (the worker lives on), no lost results, a process pool that survives crashed workers and
//! kills timed-out tasks, and waits inside a pool that cannot deadlock.
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
//! # From Python
//!
//! | Python `concurrent.futures` | this crate |
//! |---|---|
//! | `ThreadPoolExecutor(max_workers, thread_name_prefix, initializer)` | [`ThreadPoolExecutor::new(n)`](ThreadPoolExecutor::new), or [`ThreadPoolExecutor::builder()`](ThreadPoolBuilder)`.max_workers(n).thread_name_prefix(p).initializer(f).build()` |
//! | — (the queue is unbounded) | [`queue_bound(n)`](ThreadPoolBuilder::queue_bound): `submit` waits while the queue is full, [`try_submit`](ThreadPoolExecutor::try_submit) returns [`Error::Full`] |
//! | — (the pool never shrinks) | [`min_workers(n)`](ThreadPoolBuilder::min_workers)`.`[`idle_timeout(d)`](ThreadPoolBuilder::idle_timeout), [`set_max_workers(n)`](ThreadPoolExecutor::set_max_workers) |
//! | `ProcessPoolExecutor(max_workers, initializer, max_tasks_per_child)` | [`ProcessPoolExecutor::builder()`][`ProcessPoolBuilder`]`...build()`, plus a per-task timeout; see [the process pool](#the-process-pool) |
//! | `executor.submit(fn, *args)` | on a thread pool, [`pool.submit(move \|\| f(a, b))`](ThreadPoolExecutor::submit): any closure; in code for both pools, [`Executor::submit(&pool, f, arg)`](Executor::submit) |
//! | `executor.map(fn, iterable, timeout, chunksize, buffersize)` | [`pool.map(f, inputs)`](ThreadPoolExecutor::map), [`pool.map_with(f, inputs, options)`](ThreadPoolExecutor::map_with) with [`MapOptions`]`::new().timeout(t).chunksize(n).buffersize(n)` |
//! | `executor.shutdown(wait, cancel_futures=...)` | [`shutdown(wait)`](ThreadPoolExecutor::shutdown), [`shutdown_with(wait, cancel_futures)`](ThreadPoolExecutor::shutdown_with); dropping the last handle is `shutdown(true)` |
//! | `terminate_workers()`, `kill_workers()` (3.14) | the same, on [`ProcessPoolExecutor`] |
//! | `with ThreadPoolExecutor() as ex:` | a scope: the pool shuts down, waiting for its tasks, when its last handle is dropped |
//! | `future.result(timeout)` | [`result()`](Future::result), [`result_timeout(d)`](Future::result_timeout) → `Result<&T, Error>`; [`into_result()`](Future::into_result) moves the value out |
//! | `future.exception(timeout)` | [`exception()`](Future::exception), [`exception_timeout(d)`](Future::exception_timeout) |
//! | `future.add_done_callback(fn)` | [`add_done_callback(\|f\| ...)`](Future::add_done_callback); a panicking callback is logged, as Python logs exceptions |
//! | `future.cancel()`, `cancelled()`, `running()`, `done()` | the same names; [`state()`](Future::state) gives a [`State`] |
//! | `Future()`, `set_running_or_notify_cancel()`, `set_result()`, `set_exception()` | the same names, on [`Future::new()`](Future::new); setting twice is [`Error::InvalidState`] |
//! | `await asyncio.wrap_future(f)` | `future.await`: [`Future`] implements [`std::future::Future`] |
//! | — | [`future.map(\|v\| ...)`](Future::map), [`future.and_then(\|v\| pool.submit(...))`](Future::and_then), [`Future::ready(v)`](Future::ready), [`Future::failed(e)`](Future::failed) |
//! | `wait(fs, timeout, return_when=FIRST_COMPLETED)` | [`wait(&fs, timeout, ReturnWhen::FirstCompleted)`](wait) → `(done, not_done)` |
//! | `as_completed(fs, timeout)` | [`as_completed(&fs, timeout)`](as_completed): an iterator of `Result<&Future<T>, Error>` |
//! | `CancelledError`, `TimeoutError`, `InvalidStateError`, `BrokenExecutor` | [`Error::Cancelled`], [`Error::Timeout`], [`Error::InvalidState`], [`Error::Broken`] |
//! | an exception raised by the task | [`Error::Panicked`] (a task may also return its own `Result`) |
//! | `RuntimeError('cannot schedule new futures after shutdown')` | [`Error::Shutdown`], with the same message |
//!
//! # What you can rely on
//!
//! - **Every accepted task ends.** Its future finishes with a value or an error, or is cancelled; a submit the
//!   pool refuses returns an error and never runs. [`shutdown_with`](ThreadPoolExecutor::shutdown_with)`(_, true)`
//!   cancels only what has not started.
//! - **Panics are values.** A panicking task fails only its own future with [`Error::Panicked`]; the worker
//!   lives on. A panicking done-callback is logged at error level (target `concurrent_futures`) and the other
//!   callbacks still run.
//! - **What a task did is visible when its future is done.** Everything the task did happens before any handle
//!   sees it finished: through [`result`](Future::result), [`wait`], [`as_completed`], a done-callback or `.await`.
//! - **No polling, no lost wake-ups.** `result`, `wait` and `as_completed` sleep until exactly the futures they
//!   need finish.
//! - **Lazy threads, reused first.** A pool starts a thread only when no idle one can take a task, never more than
//!   `max_workers`.
//! - **Back-pressure when you want it.** A bounded queue makes `submit` wait, and `shutdown` releases a waiting
//!   `submit` with [`Error::Shutdown`].
//! - **Results without `Clone`.** [`result()`](Future::result) borrows the value (`&T`) from any handle or
//!   callback, as often as you like; [`into_result()`](Future::into_result) and `.await` move it out of the last
//!   handle.
//!
//! # Beyond Python
//!
//! - **Waits inside the pool cannot deadlock.** CPython documents that a task waiting on another future of the
//!   same saturated pool deadlocks. Here a worker that blocks in `result()`, `wait()` or `as_completed()` on a task
//!   of its own pool that has not started runs that task itself (exactly once). Recursive fan-out works on one
//!   worker:
//!
//!   ```
//!   use concurrent_futures::ThreadPoolExecutor;
//!
//!   fn fib(pool: &ThreadPoolExecutor, n: u64) -> u64 {
//!       if n < 2 {
//!           return n;
//!       }
//!       let (p1, p2) = (pool.clone(), pool.clone());
//!       let a = pool.submit(move || fib(&p1, n - 1)).unwrap();
//!       let b = pool.submit(move || fib(&p2, n - 2)).unwrap();
//!       a.result().unwrap() + b.result().unwrap()
//!   }
//!
//!   let pool = ThreadPoolExecutor::new(1)?;
//!   let p = pool.clone();
//!   assert_eq!(pool.submit(move || fib(&p, 15))?.into_result()?, 610);
//!   # Ok::<(), concurrent_futures::Error>(())
//!   ```
//! - **Fan-out inside the pool, work-stealing style.** A task submitted from one of the pool's own tasks goes to
//!   its worker's own queue (newest first for that worker; other workers steal the oldest); tasks from outside keep
//!   the shared queue, in Python's order. A worker waiting without a timeout on a future of its own pool runs queued
//!   fan-out tasks meanwhile, as rayon does, so recursive splits keep every thread busy. If your subtasks block on
//!   something their submitter does after its wait, build the pool with
//!   [`work_while_waiting(false)`](ThreadPoolBuilder::work_while_waiting).
//! - **Chained futures, no blocked threads.** [`Future::map`] and [`Future::and_then`] return new futures computed
//!   by done-callbacks; values, errors, panics and cancellation propagate.
//! - **A pool that grows and shrinks.** With [`min_workers`](ThreadPoolBuilder::min_workers) and
//!   [`idle_timeout`](ThreadPoolBuilder::idle_timeout), idle threads above the minimum exit and start again on
//!   demand; [`set_max_workers`](ThreadPoolExecutor::set_max_workers) changes the bound at run time.
//!
#![cfg_attr(feature = "process", doc = include_str!("docs/process_pool.md"))]
//! # Code for both pools
//!
//! The [`Executor`] trait is what both pools offer: `submit(f, arg)`, `map`, `map_with` and `shutdown`, where a
//! task is a function applied to one argument. Code written once against it runs on a thread pool and on a
//! process pool.
//!
//! # Feature flags
//!
//! | feature | default | what it adds | dependencies it brings |
//! |---|---|---|---|
//! | `process` | yes | [`ProcessPoolExecutor`], [`ProcessPoolBuilder`], [`Registry`], [`Payload`]; [`process_main!`] serves tasks (without the feature it is a no-op, so one `main` builds either way) | serde, postcard; rustix on Unix, windows-sys on Windows |
//!
//! Without default features (`concurrent-futures = { version = "0.1", default-features = false }`) the crate is
//! the thread pool, futures, `wait`, `as_completed` and `map`, and depends only on crossbeam-channel, parking_lot,
//! num_cpus and log.
//!
//! # Platform support
//!
//! | | Linux | macOS | Windows |
//! |---|---|---|---|
//! | thread pool, [`Future`], [`wait`], [`as_completed`], `map` | yes | yes | yes |
//! | process pool (feature `process`) | yes | yes | yes, with the differences below |
//!
//! The project's CI runs the whole test suite on Linux (x86_64); cross-compiles the test suite and the doctests
//! for Windows (`x86_64-pc-windows-gnu`) and runs them under Wine, the process pool's included (the tests that
//! drive the example programs through cargo stay on Linux); and, since macOS programs cannot run there, runs
//! clippy on everything (library, tests, examples) for macOS on x86_64 and aarch64.
//!
//! On Windows, a process-pool worker connects back to the pool over loopback TCP instead of inheriting a
//! socketpair; [`terminate_workers`][terminate_workers] is as abrupt as `kill_workers` (both
//! `TerminateProcess`: there is no `SIGTERM`); a worker's death reads as an exit status (`0xC0000409` for an
//! abort) rather than a signal; workers die with the pool's process through a job object; and a task handed to a
//! worker at the instant it dies fails with [`Error::WorkerDied`] instead of moving to another worker. The
//! details are under [Platforms][process-platforms] in the process pool's documentation.
//!
//! # Minimum supported Rust version
//!
//! Rust 1.88 (edition 2024 and its let-chains), checked in CI with that toolchain. Raising it is a minor-version
//! change.
//!
#![cfg_attr(
    feature = "process",
    doc = "[terminate_workers]: ProcessPoolExecutor::terminate_workers",
    doc = "[process-platforms]: ProcessPoolExecutor#platforms"
)]
// Without the process feature, the process items named above link to the feature table.
#![cfg_attr(
    not(feature = "process"),
    doc = "[terminate_workers]: #feature-flags",
    doc = "[process-platforms]: #feature-flags",
    doc = "[`ProcessPoolExecutor`]: #feature-flags",
    doc = "[`ProcessPoolBuilder`]: #feature-flags",
    doc = "[`Registry`]: #feature-flags",
    doc = "[`Payload`]: #feature-flags"
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

mod error;
mod executor;
mod future;
mod map;
#[cfg(all(feature = "mpi", unix))]
mod mpi;
#[cfg(feature = "process")]
mod process;
#[cfg(not(feature = "process"))]
#[path = "process/disabled.rs"]
mod process;
mod sync;
mod thread_pool;
mod unwind;
mod wait;

#[cfg(all(feature = "mpi", unix))]
pub use crate::mpi::{MpiPoolBuilder, MpiPoolExecutor, WorkerRank};
// `process::*` is empty without the feature.
#[cfg_attr(not(feature = "process"), allow(unused_imports))]
pub use crate::{
    error::Error,
    executor::{Executor, MapOptions},
    future::{Future, State},
    map::Map,
    // With the `process` feature: Payload, ProcessPoolBuilder, ProcessPoolExecutor, Registry; without: nothing.
    process::*,
    thread_pool::{ThreadPoolBuilder, ThreadPoolExecutor},
    wait::{AsCompleted, ReturnWhen, Waitable, as_completed, wait},
};

/// The README's examples, compiled and run as doctests (its process-pool ones need the `process` feature).
#[cfg(all(doctest, feature = "process"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Selects a deliberately broken variant of the library for the loom canaries; only in builds with
/// `--cfg concurrent_futures_mutant`. Not part of the API.
#[cfg(concurrent_futures_mutant)]
#[doc(hidden)]
pub fn __select_mutant(name: Option<&'static str>) {
    sync::select_mutant(name);
}
