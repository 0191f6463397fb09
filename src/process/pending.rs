//! A queued or running task's future, seen by the pool with its result type erased: started, completed from a
//! worker's reply, failed or cancelled. Completion hands back the future's done-callbacks instead of running them,
//! so that the threads that deliver results never run user code (see `callbacks.rs`).

use super::codec::DecodeAny;
use super::protocol::Status;
use crate::Error;
use crate::future::Promise;
use crate::map::Partial;

/// Done-callbacks of a future the pool completed, to run off the delivering thread.
pub(crate) type Deferred = Box<dyn FnOnce() + Send>;

/// A queued task's future, with its result type erased.
pub(crate) trait Pending: Send {
    /// Marks it running; `false` if it was cancelled (or set from outside) and must not be sent.
    fn start(&self) -> bool;
    /// Completes it from the worker's reply: decodes the result, or maps the failure to an [`Error`].
    fn finish(&self, name: &str, status: Status, payload: &[u8]) -> Option<Deferred>;
    /// Fails it.
    fn fail(&self, error: Error) -> Option<Deferred>;
    /// Cancels it if it is still pending (its callbacks run on the calling thread, as Python's `cancel` does).
    fn cancel(&self);
    /// Fails one already marked running, but never sent to a worker that could run it, as cancelled (its
    /// callbacks run on the calling thread, as for [`cancel`](Self::cancel)).
    fn cancel_started(&self);
}

/// Sets `promise` and returns its callbacks, if any. Fails only if the future was set from outside meanwhile (it
/// is a public [`crate::Future`]): that outcome stands.
fn complete<T: Send + Sync + 'static>(
    promise: &Promise<T>,
    outcome: Result<T, Error>,
) -> Option<Deferred> {
    let notification = promise.complete_deferred(outcome).ok().flatten()?;
    Some(Box::new(move || notification.run()))
}

/// The result of a reply: decoded by `decode` if the task succeeded, else its failure.
fn outcome<T>(
    status: Status,
    payload: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, Error>,
) -> Result<T, Error> {
    match status {
        Status::Ok => decode(payload),
        failure => Err(status_error(failure)),
    }
}

/// [`Pending`] for a future of `R`, decoded by `R`'s own serde impl.
pub(crate) struct Typed<R>(pub(crate) Promise<R>);

impl<R: super::Payload> Pending for Typed<R> {
    fn start(&self) -> bool {
        self.0.start() == Ok(true)
    }

    fn finish(&self, name: &str, status: Status, payload: &[u8]) -> Option<Deferred> {
        complete(&self.0, outcome(status, payload, |p| decode::<R>(name, p)))
    }

    fn fail(&self, error: Error) -> Option<Deferred> {
        complete(&self.0, Err(error))
    }

    fn cancel(&self) {
        self.0.cancel();
    }

    fn cancel_started(&self) {
        let _ = self.0.complete(Err(Error::Cancelled));
    }
}

/// [`Pending`] for a `map` chunk: the worker replies with the values of the items up to the first that failed,
/// and that item's failure (see `Registry::register`).
pub(crate) struct Chunked<R>(pub(crate) Promise<Partial<R>>);

impl<R: super::Payload> Pending for Chunked<R> {
    fn start(&self) -> bool {
        self.0.start() == Ok(true)
    }

    fn finish(&self, name: &str, status: Status, payload: &[u8]) -> Option<Deferred> {
        let outcome = outcome(status, payload, |p| {
            decode::<(Vec<R>, Option<Status>)>(name, p).map(partial)
        });
        complete(&self.0, outcome)
    }

    fn fail(&self, error: Error) -> Option<Deferred> {
        complete(&self.0, Err(error))
    }

    fn cancel(&self) {
        self.0.cancel();
    }

    fn cancel_started(&self) {
        let _ = self.0.complete(Err(Error::Cancelled));
    }
}

/// A chunk's reply as the [`Partial`] a `map` yields from.
pub(crate) fn partial<R>((values, failure): (Vec<R>, Option<Status>)) -> Partial<R> {
    Partial {
        values,
        error: failure.map(status_error),
    }
}

/// [`Pending`] for a future of `T` decoded through a registered function's codec (a single result, or a chunk's
/// [`Partial`]): how code that knows `T` but not its serde impls (the `Executor` trait) gets results.
pub(crate) struct Erased<T> {
    pub(crate) promise: Promise<T>,
    pub(crate) decode: DecodeAny,
}

impl<T: Send + Sync + 'static> Pending for Erased<T> {
    fn start(&self) -> bool {
        self.promise.start() == Ok(true)
    }

    fn finish(&self, name: &str, status: Status, payload: &[u8]) -> Option<Deferred> {
        let outcome = outcome(status, payload, |p| {
            let value = (self.decode)(name, p)?;
            value.downcast::<T>().map(|value| *value).map_err(|_| {
                Error::Serialization(format!(
                    "the result of `{name}` is not a `{}`",
                    std::any::type_name::<T>()
                ))
            })
        });
        complete(&self.promise, outcome)
    }

    fn fail(&self, error: Error) -> Option<Deferred> {
        complete(&self.promise, Err(error))
    }

    fn cancel(&self) {
        self.promise.cancel();
    }

    fn cancel_started(&self) {
        let _ = self.promise.complete(Err(Error::Cancelled));
    }
}

/// Decodes a task's result; a panicking `Deserialize` impl must not take the reader thread down with it.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    name: &str,
    payload: &[u8],
) -> Result<T, Error> {
    match crate::unwind::run_task(|| postcard::from_bytes::<T>(payload)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Error::Serialization(format!(
            "could not decode the result of `{name}`: {error}"
        ))),
        Err(panic) => Err(Error::Serialization(format!(
            "decoding the result of `{name}` panicked: {panic}"
        ))),
    }
}

/// The error for a task that failed in its worker.
pub(crate) fn status_error(status: Status) -> Error {
    match status {
        Status::Ok => Error::Protocol("a task reported success without a result".into()),
        Status::Panicked(message) => Error::Panicked { message },
        Status::UnknownTask(name) => Error::UnknownTask(name),
        Status::Serialization(what) => Error::Serialization(what),
        Status::TooLarge(what) => Error::Protocol(what),
    }
}
