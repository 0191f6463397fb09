//! Helpers shared by the integration tests: a latch to hold tasks, helpers that submit tasks held by a latch, and
//! a logger that records messages.
#![allow(dead_code)]

use std::sync::{Arc, Condvar, Mutex, OnceLock};

use concurrent_futures::{Future, ThreadPoolExecutor};

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

/// Submits `n` tasks, each a clone of `task`, and returns their futures in submission order.
pub fn submit_n<T, F>(pool: &ThreadPoolExecutor, n: usize, task: F) -> Vec<Future<T>>
where
    F: FnOnce() -> T + Clone + Send + 'static,
    T: Send + Sync + 'static,
{
    (0..n).map(|_| pool.submit(task.clone()).unwrap()).collect()
}

/// Waits for each of `futures` (each its only handle) and collects their values; panics if one failed.
pub fn results<T, C>(futures: Vec<Future<T>>) -> C
where
    T: Send + Sync + 'static,
    C: FromIterator<T>,
{
    futures
        .into_iter()
        .map(|f| f.into_result().unwrap())
        .collect()
}

/// Submits a task that waits until `release` is opened, then returns `value`.
pub fn blocked<T>(pool: &ThreadPoolExecutor, release: &Latch, value: T) -> Future<T>
where
    T: Send + Sync + 'static,
{
    let release = release.clone();
    pool.submit(move || {
        release.wait();
        value
    })
    .unwrap()
}

/// Like [`blocked`], but returns only once the task is running (it holds a worker thread until `release` opens).
pub fn blocked_running<T>(pool: &ThreadPoolExecutor, release: &Latch, value: T) -> Future<T>
where
    T: Send + Sync + 'static,
{
    let started = Latch::new();
    let (s, release) = (started.clone(), release.clone());
    let future = pool
        .submit(move || {
            s.open();
            release.wait();
            value
        })
        .unwrap();
    started.wait();
    future
}

/// Occupies one worker of `pool`: submits a task, waits until it is running, and returns its future and the latch
/// whose `open()` lets it finish.
pub fn hold_worker(pool: &ThreadPoolExecutor) -> (Future<()>, Latch) {
    let release = Latch::new();
    (blocked_running(pool, &release, ()), release)
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

/// The generic program from the core issue: written once against the `Executor` trait, it must work unchanged
/// on every pool. It submits plain functions with arguments, maps over inputs (with and without chunking and a
/// buffer), attaches callbacks, and shuts down.
pub mod generic {
    use std::sync::mpsc;

    use concurrent_futures::{Error, Executor, MapOptions};

    pub fn square(x: u64) -> u64 {
        x * x
    }

    pub fn describe(words: Vec<String>) -> (usize, String) {
        (words.len(), words.join(" "))
    }

    pub fn fail(x: u32) -> u32 {
        if x > 0 {
            panic!("bad input {x}");
        }
        x
    }

    pub fn work<E: Executor>(pool: &E) -> Result<(), Error> {
        let future = pool.submit(square, 12)?;
        assert_eq!(future.result()?, &144);

        let (tx, rx) = mpsc::channel();
        let described = pool.submit(describe, vec!["hello".to_string(), "pool".to_string()])?;
        described.add_done_callback(move |f| tx.send(f.result().cloned()).unwrap());
        assert_eq!(rx.recv().unwrap(), Ok((2, "hello pool".to_string())));

        let squares: Vec<u64> = pool.map(square, 0..100)?.collect::<Result<_, _>>()?;
        assert_eq!(squares, (0..100).map(|x| x * x).collect::<Vec<_>>());
        for options in [
            MapOptions::new().chunksize(7),
            MapOptions::new().buffersize(3).chunksize(5),
        ] {
            let squares: Vec<u64> = pool
                .map_with(square, 0..100, options)?
                .collect::<Result<_, _>>()?;
            assert_eq!(squares, (0..100).map(|x| x * x).collect::<Vec<_>>());
        }

        let failed = pool.submit(fail, 3)?;
        assert!(
            matches!(failed.result(), Err(Error::Panicked { message }) if message.contains("bad input 3"))
        );

        pool.shutdown(true);
        assert!(matches!(pool.submit(square, 1), Err(Error::Shutdown)));
        Ok(())
    }
}

/// How long a test waits for something that happens at once when the code is right, before it calls it stuck and
/// fails instead of hanging. Generous, for a machine whose cores are saturated, and far more so under Miri, which
/// interprets every step.
pub const PATIENCE: std::time::Duration =
    std::time::Duration::from_secs(if cfg!(miri) { 1200 } else { 20 });
