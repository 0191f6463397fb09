//! The one door to threads, locks, atomics and queues: real ones in production, loom's under model checking.
//!
//! No other module names `std::sync`, `std::thread`, `parking_lot` or `crossbeam_channel`. Under
//! `--cfg concurrent_futures_loom` every item here is swapped for a [loom](https://docs.rs/loom) type with the same
//! methods, so the models in `loom-tests/` check the library's real code paths.
//!
//! One deliberate exception: [`Arc`] is `std::sync::Arc` in both builds, because loom's `Arc` cannot be coerced to
//! a trait object on stable Rust and task cells live behind `Arc<dyn ...>`. Leaks are still caught under loom:
//! every cell carries a [`LeakToken`], which is a loom `Arc` there and a zero-sized value in production.

#[cfg(not(concurrent_futures_loom))]
mod real;
#[cfg(not(concurrent_futures_loom))]
pub(crate) use real::*;

#[cfg(concurrent_futures_loom)]
mod model;
#[cfg(concurrent_futures_loom)]
pub(crate) use model::*;

pub(crate) use std::sync::Arc;

/// A process-wide value set once (the process pool's task registry). Statics cannot hold loom types, and the
/// registry is installed before any pool thread exists, so it is `std::sync::OnceLock` in both builds.
#[cfg(feature = "process")]
pub(crate) use std::sync::OnceLock;

/// A process-wide counter for default names (`ThreadPoolExecutor-{n}`). Nothing synchronises through it, so it
/// is a plain std atomic in both builds.
pub(crate) fn next_pool_number() -> usize {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    // ORDERING: Relaxed: only uniqueness matters.
    COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Deliberate bugs for the loom canaries (`loom-tests/tests/canaries.rs`).
///
/// Built with `--cfg concurrent_futures_mutant`, a few places in the library check `mutant("name")` and, when
/// that mutant is selected, run a known-broken variant of their logic; each canary selects one and asserts that
/// its loom model catches the bug. In every other build `mutant` is a constant `false` and the broken variants
/// are compiled out.
#[cfg(not(concurrent_futures_mutant))]
#[inline(always)]
pub(crate) const fn mutant(_name: &str) -> bool {
    false
}

#[cfg(concurrent_futures_mutant)]
static MUTANT: std::sync::Mutex<Option<&'static str>> = std::sync::Mutex::new(None);

/// Whether the mutant `name` is selected (see the non-mutant `mutant`).
#[cfg(concurrent_futures_mutant)]
pub(crate) fn mutant(name: &str) -> bool {
    *MUTANT.lock().unwrap_or_else(|e| e.into_inner()) == Some(name)
}

/// Selects the mutant the next models run against (`None`: the real code).
#[cfg(concurrent_futures_mutant)]
pub(crate) fn select_mutant(name: Option<&'static str>) {
    *MUTANT.lock().unwrap_or_else(|e| e.into_inner()) = name;
}
