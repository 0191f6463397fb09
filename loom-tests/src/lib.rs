//! Helpers for the loom models: a model runner that reports how many interleavings it explored, and the
//! synchronisation the models' own tasks use (loom's, so loom sees it).
#![cfg(concurrent_futures_loom)]

pub mod models;

use std::sync::Arc as StdArc;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};

use loom::sync::{Arc, Condvar, Mutex};

/// Runs `body` under loom with the bounds from the environment (`LOOM_MAX_PREEMPTIONS`, default 3;
/// `LOOM_MAX_BRANCHES`),
/// refusing the duration and permutation caps that would let a cut-short model report success, and prints the
/// number of interleavings explored.
pub fn model<F>(name: &str, body: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_capped(name, usize::MAX, body);
}

/// [`model`] with the preemption bound capped at `cap`, for models whose state space at the global bound would
/// not fit CI's time budget.
pub fn model_capped<F>(name: &str, cap: usize, body: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    // LOOM_MAX_PREEMPTIONS, or 3 (what CI uses) when it is not set.
    builder.preemption_bound = Some(builder.preemption_bound.unwrap_or(3).min(cap));
    assert!(
        builder.max_duration.is_none() && builder.max_permutations.is_none(),
        "LOOM_MAX_DURATION / LOOM_MAX_PERMUTATIONS stop a model early and report success: unset them"
    );
    builder.max_duration = None;
    builder.max_permutations = None;
    let runs = StdArc::new(StdAtomicUsize::new(0));
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, StdOrdering::Relaxed);
        body();
    });
    let bound = builder
        .preemption_bound
        .map_or("none".to_string(), |b| b.to_string());
    println!(
        "loom model {name}: {} interleavings, preemption bound {bound}",
        runs.load(StdOrdering::Relaxed)
    );
}

/// A one-shot gate the models' tasks wait on, built from loom's primitives.
#[derive(Clone)]
pub struct Latch(Arc<(Mutex<bool>, Condvar)>);

impl Default for Latch {
    fn default() -> Self {
        Self::new()
    }
}

impl Latch {
    pub fn new() -> Self {
        Latch(Arc::new((Mutex::new(false), Condvar::new())))
    }

    pub fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    pub fn wait(&self) {
        let mut open = self.0.0.lock().unwrap();
        while !*open {
            open = self.0.1.wait(open).unwrap();
        }
    }
}
