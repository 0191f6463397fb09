//! Turning a caught panic into an [`Error`](crate::Error), and running user callbacks without letting them unwind.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::Error;

/// The message of a panic payload, as `panic!` formats it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Runs `f`, turning a panic into [`Error::Panicked`].
pub(crate) fn run_task<T>(f: impl FnOnce() -> T) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| Error::Panicked {
        message: panic_message(&*payload),
    })
}

/// Runs a user callback; a panic is logged at error level (as Python logs callback exceptions) and swallowed.
pub(crate) fn run_callback(what: &str, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        log::error!(target: "concurrent_futures", "exception calling {what}: {}", panic_message(&*payload));
    }
}

/// Drops `value`; a panic in its `Drop` is logged at error level and swallowed, so that a task's closure or
/// result dropped on a pool thread cannot take the thread down (or skip the notification that follows).
pub(crate) fn drop_quietly<T>(what: &str, value: T) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        log::error!(target: "concurrent_futures", "dropping {what} panicked: {}", panic_message(&*payload));
    }
}

/// Runs `f`; a panic is logged at error level (naming `what`) and becomes `None`.
pub(crate) fn quietly<R>(what: &str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(payload) => {
            log::error!(target: "concurrent_futures", "{what} panicked: {}", panic_message(&*payload));
            None
        }
    }
}
