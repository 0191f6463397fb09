//! [`Map`]: the iterator behind every executor's `map`, yielding results in input order.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use crate::future::deadline_after;
use crate::{Error, Future, MapOptions};

/// One submitted unit of a `map`: a single item's future, or a chunk's.
pub(crate) enum Batch<R> {
    One(Future<R>),
    Chunk(Future<Partial<R>>),
}

/// What a chunk of a `map` produced: the values of its items in input order, up to the first item that failed,
/// and that item's error. The items after a failed one are not run (the map ends at the error).
///
/// A chunk's future fails as a whole only when no item's outcome is known (it was cancelled, timed out, or its
/// worker died); then [`Map`] yields that error in place of the whole chunk.
pub(crate) struct Partial<R> {
    pub(crate) values: Vec<R>,
    pub(crate) error: Option<Error>,
}

impl<R> Partial<R> {
    /// Runs `f` on each input in order, catching panics per item, and stops at the first failure.
    pub(crate) fn run<A>(inputs: Vec<A>, mut f: impl FnMut(A) -> R) -> Self {
        let mut values = Vec::with_capacity(inputs.len());
        for input in inputs {
            match crate::unwind::run_task(|| f(input)) {
                Ok(value) => values.push(value),
                Err(error) => {
                    return Partial {
                        values,
                        error: Some(error),
                    };
                }
            }
        }
        Partial {
            values,
            error: None,
        }
    }
}

impl<R: Send + Sync + 'static> Batch<R> {
    fn cancel(&self) {
        match self {
            Batch::One(f) => f.cancel(),
            Batch::Chunk(f) => f.cancel(),
        };
    }
}

/// Pulls the next batch from the inputs and submits it: `None` once the inputs are exhausted.
pub(crate) type Source<'a, R> = Box<dyn FnMut() -> Option<Result<Batch<R>, Error>> + Send + 'a>;

/// The [`Source`] every executor's `map` uses: takes one input at a time (`chunksize` 1) and submits it with
/// `one`, or takes `chunksize` inputs at a time and submits them with `chunk`.
pub(crate) fn batches<'a, A, R, I, One, Chunk>(
    mut inputs: I,
    chunksize: usize,
    mut one: One,
    mut chunk: Chunk,
) -> Source<'a, R>
where
    R: Send + Sync + 'static,
    I: Iterator<Item = A> + Send + 'a,
    One: FnMut(A) -> Result<Future<R>, Error> + Send + 'a,
    Chunk: FnMut(Vec<A>) -> Result<Future<Partial<R>>, Error> + Send + 'a,
{
    Box::new(move || {
        if chunksize == 1 {
            let input = inputs.next()?;
            Some(one(input).map(Batch::One))
        } else {
            let inputs: Vec<A> = inputs.by_ref().take(chunksize).collect();
            if inputs.is_empty() {
                return None;
            }
            Some(chunk(inputs).map(Batch::Chunk))
        }
    })
}

/// The results of an executor's `map`, in input order: `Iterator<Item = Result<R, Error>>`.
///
/// After yielding an error (a task's error, or [`Error::Timeout`] once the map's timeout passes) the iterator
/// ends and cancels the tasks it has not yielded. Dropping it early cancels them too.
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let lengths: Vec<usize> = pool.map(|s: &str| s.len(), ["a", "bb", "ccc"])?.collect::<Result<_, _>>()?;
/// assert_eq!(lengths, [1, 2, 3]);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub struct Map<'a, R: Send + Sync + 'static> {
    in_flight: VecDeque<Batch<R>>,
    current: std::vec::IntoIter<R>,
    /// The error that ends the chunk being yielded from `current`, once its values are out.
    current_error: Option<Error>,
    source: Option<Source<'a, R>>,
    buffersize: Option<usize>,
    deadline: Option<Instant>,
    ended: bool,
}

impl<'a, R: Send + Sync + 'static> Map<'a, R> {
    /// Starts a map: submits everything at once, or the first `buffersize` batches. A submission error before
    /// anything is yielded (a shut-down executor) cancels what was submitted and is returned.
    pub(crate) fn new(options: MapOptions, mut source: Source<'a, R>) -> Result<Self, Error> {
        options.validate()?;
        let deadline = options.timeout.map(deadline_after);
        let mut map = Map {
            in_flight: VecDeque::new(),
            current: Vec::new().into_iter(),
            current_error: None,
            source: None,
            buffersize: options.buffersize,
            deadline,
            ended: false,
        };
        let limit = options.buffersize.unwrap_or(usize::MAX);
        while map.in_flight.len() < limit {
            match source() {
                Some(Ok(batch)) => map.in_flight.push_back(batch),
                Some(Err(error)) => return Err(error),
                None => return Ok(map),
            }
        }
        map.source = Some(source);
        Ok(map)
    }

    /// Ends the map: cancels every batch not yielded and stops pulling inputs.
    fn finish(&mut self) {
        self.ended = true;
        self.source = None;
        for batch in self.in_flight.drain(..) {
            batch.cancel();
        }
    }
}

impl<R: Send + Sync + 'static> Iterator for Map<'_, R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(value) = self.current.next() {
                return Some(Ok(value));
            }
            if let Some(error) = self.current_error.take() {
                self.finish();
                return Some(Err(error));
            }
            if self.ended {
                return None;
            }
            let Some(batch) = self.in_flight.pop_front() else {
                self.ended = true;
                return None;
            };
            // Keep the buffer full: submit the next batch before waiting on this one.
            if self.buffersize.is_some()
                && let Some(source) = self.source.as_mut()
            {
                match source() {
                    Some(Ok(next)) => self.in_flight.push_back(next),
                    Some(Err(error)) => {
                        batch.cancel();
                        self.finish();
                        return Some(Err(error));
                    }
                    None => self.source = None,
                }
            }
            let done = match &batch {
                Batch::One(future) => future.wait_until(self.deadline),
                Batch::Chunk(future) => future.wait_until(self.deadline),
            };
            if !done {
                batch.cancel();
                let unfinished = self.in_flight.len() + 1;
                self.finish();
                return Some(Err(Error::Timeout {
                    unfinished,
                    total: unfinished,
                }));
            }
            let outcome = match batch {
                Batch::One(future) => future.into_result().map(|value| Some(value)),
                Batch::Chunk(future) => future.into_result().map(|partial| {
                    self.current = partial.values.into_iter();
                    self.current_error = partial.error;
                    None
                }),
            };
            match outcome {
                Ok(Some(value)) => return Some(Ok(value)),
                Ok(None) => {}
                Err(error) => {
                    self.finish();
                    return Some(Err(error));
                }
            }
        }
    }
}

impl<R: Send + Sync + 'static> Drop for Map<'_, R> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<R: Send + Sync + 'static> fmt::Debug for Map<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("in_flight", &self.in_flight.len())
            .field("ended", &self.ended)
            .finish()
    }
}
