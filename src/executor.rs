//! The [`Executor`] trait both pools implement, and the options of `map`.

use std::time::Duration;

use crate::{Error, Future, Map};

/// What every executor offers, so that code can be written once for a thread pool and a process pool.
///
/// Tasks are plain functions (`fn` items, or closures that capture nothing) applied to one argument: that is what
/// can run in another process. The trait asks only what a thread needs (`Send`, and `Sync` results, shared as
/// `&R` between handles), so it is the same with or without the crate's `process` feature. A process pool also
/// needs the argument and result to be serde-serializable, and the function registered with
/// `process_main!`: it finds how to encode them in its registry at run time, and reports a function it does not
/// know as [`Error::UnknownTask`].
///
/// A thread pool also has inherent methods that take any capturing closure; on a concrete
/// [`ThreadPoolExecutor`](crate::ThreadPoolExecutor), call the trait's form as `Executor::submit(&pool, f, arg)`,
/// since its inherent `submit` takes a closure.
///
/// ```
/// use concurrent_futures::{Executor, ThreadPoolExecutor};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn sum_of_squares<E: Executor>(pool: &E) -> Result<u64, concurrent_futures::Error> {
///     let first = pool.submit(square, 3)?;
///     let rest: u64 = pool.map(square, 4..=5)?.sum::<Result<u64, _>>()?;
///     Ok(first.into_result()? + rest)
/// }
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// assert_eq!(sum_of_squares(&pool)?, 9 + 16 + 25);
/// pool.shutdown(true);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub trait Executor {
    /// Schedules `f(arg)` and returns its future (Python's `submit(fn, arg)`).
    ///
    /// Fails with [`Error::Shutdown`] after shutdown and [`Error::Broken`] if the executor is broken.
    fn submit<F, A, R>(&self, f: F, arg: A) -> Result<Future<R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + Sync + 'static;

    /// Applies `f` to every input and yields the results in input order (Python's `map`), as
    /// [`MapOptions`] say: a timeout counted from this call, a chunk size, and how many batches may be in flight.
    fn map_with<'a, F, A, R, I>(
        &'a self,
        f: F,
        inputs: I,
        options: MapOptions,
    ) -> Result<Map<'a, R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + Sync + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a;

    /// [`map_with`](Self::map_with) with the default options: everything submitted at once, one item per task,
    /// no timeout.
    fn map<'a, F, A, R, I>(&'a self, f: F, inputs: I) -> Result<Map<'a, R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + Sync + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        self.map_with(f, inputs, MapOptions::new())
    }

    /// Stops accepting tasks (Python's `shutdown(wait, cancel_futures=...)`). With `cancel_futures`, every task
    /// still queued is cancelled; otherwise queued tasks still run. With `wait`, returns once every task has
    /// finished and every worker is gone.
    fn shutdown_with(&self, wait: bool, cancel_futures: bool);

    /// [`shutdown_with`](Self::shutdown_with) without cancelling queued tasks.
    fn shutdown(&self, wait: bool) {
        self.shutdown_with(wait, false);
    }
}

/// Options of `map`: Python's `timeout`, `chunksize` and `buffersize`.
///
/// ```
/// use std::time::Duration;
/// use concurrent_futures::{MapOptions, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// // An endless input works with a buffer: at most 4 batches of 10 are in flight at once.
/// let options = MapOptions::new().chunksize(10).buffersize(4).timeout(Duration::from_secs(60));
/// let firsts: Vec<u64> = pool.map_with(|x: u64| x * 2, 0.., options)?.take(5).collect::<Result<_, _>>()?;
/// assert_eq!(firsts, [0, 2, 4, 6, 8]);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) chunksize: usize,
    pub(crate) buffersize: Option<usize>,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            timeout: None,
            chunksize: 1,
            buffersize: None,
        }
    }
}

impl MapOptions {
    /// The defaults: no timeout, `chunksize` 1, no buffer limit (every input is submitted at once).
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives up with [`Error::Timeout`] if a result is not ready `timeout` after the `map` call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends inputs to workers in batches of `chunksize` (one task per batch). Must be at least 1.
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = chunksize;
        self
    }

    /// Keeps at most `buffersize` batches submitted ahead of the consumer, pulling more inputs only as results
    /// are yielded, so an endless input works. Must be at least 1.
    pub fn buffersize(mut self, buffersize: usize) -> Self {
        self.buffersize = Some(buffersize);
        self
    }

    /// Checks the options: `chunksize` and `buffersize` of 0 are [`Error::InvalidArgument`].
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.chunksize == 0 {
            return Err(Error::InvalidArgument(
                "chunksize must be at least 1".into(),
            ));
        }
        if self.buffersize == Some(0) {
            return Err(Error::InvalidArgument(
                "buffersize must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
