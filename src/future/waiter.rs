//! A parked thread waiting for one or more futures: completers post their token and wake it.

use std::time::Instant;

use crate::sync::{Condvar, Mutex};

/// One waiting thread's mailbox. Completers push the token they were registered with and notify; the waiting
/// thread takes the tokens. Posting happens under the mailbox lock, so a wake-up cannot be lost between the
/// waiting thread's check and its sleep.
#[derive(Default)]
pub struct Waiter {
    tokens: Mutex<Vec<usize>>,
    wake: Condvar,
}

impl Waiter {
    pub(crate) fn new() -> Self {
        Waiter {
            tokens: Mutex::new(Vec::new()),
            wake: Condvar::new(),
        }
    }

    /// Posts `token` and wakes the waiting thread.
    pub(crate) fn notify(&self, token: usize) {
        self.tokens.lock().push(token);
        self.wake.notify_one();
    }

    /// The tokens posted so far, without waiting (empty if none).
    pub(crate) fn take(&self) -> Vec<usize> {
        std::mem::take(&mut *self.tokens.lock())
    }

    /// Waits until at least one token was posted, or `deadline` passes; returns the tokens (empty on time-out).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Vec<usize> {
        let mut tokens = self.tokens.lock();
        while tokens.is_empty() {
            match deadline {
                None => self.wake.wait(&mut tokens),
                Some(deadline) => {
                    if self.wake.wait_until(&mut tokens, deadline) && tokens.is_empty() {
                        break;
                    }
                }
            }
        }
        std::mem::take(&mut *tokens)
    }
}
