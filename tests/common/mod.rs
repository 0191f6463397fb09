//! Helpers shared by the integration tests: a latch to hold tasks, and a logger that records messages.
#![allow(dead_code)]

use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// A one-shot gate: tasks `wait()` on it until the test `open()`s it. Synchronises without sleeping.
#[derive(Clone, Default)]
pub struct Latch(Arc<(Mutex<bool>, Condvar)>);

impl Latch {
    pub fn new() -> Self {
        Self::default()
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

/// Counts arrivals; `wait_for(n)` blocks until `n` have arrived.
#[derive(Clone, Default)]
pub struct Counter(Arc<(Mutex<usize>, Condvar)>);

impl Counter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn arrive(&self) {
        *self.0.0.lock().unwrap() += 1;
        self.0.1.notify_all();
    }

    pub fn wait_for(&self, n: usize) {
        let mut count = self.0.0.lock().unwrap();
        while *count < n {
            count = self.0.1.wait(count).unwrap();
        }
    }

    pub fn get(&self) -> usize {
        *self.0.0.lock().unwrap()
    }
}

struct Recorder;

static RECORDS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        RECORDS
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .push(line);
    }

    fn flush(&self) {}
}

/// Installs the recording logger (once per test binary) and returns everything logged so far.
pub fn logged() -> Vec<String> {
    let _ = log::set_logger(&Recorder).map(|()| log::set_max_level(log::LevelFilter::Trace));
    RECORDS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .clone()
}
