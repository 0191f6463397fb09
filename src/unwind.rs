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
