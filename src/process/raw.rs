//! Untyped submission to a process pool: a registered function by name and an argument already encoded, answered
//! with the worker's raw [`Status`] and encoded result. The MPI pool's worker ranks run their tasks through this,
//! so each task runs in a local worker process with the process pool's crash and timeout isolation.

use std::time::Duration;

use super::pending::{Deferred, Pending};
use super::pool::{Config, InitCheck, Initializer, Job, Shared};
use super::protocol::{Call, FrameBuf, Status};
use super::registry::installed;
use crate::Error;
use crate::sync::{Arc, Mutex};

/// What a raw task's callback receives: the worker's status and the encoded result (empty unless
/// [`Status::Ok`]), or the pool's error ([`Error::WorkerDied`], [`Error::TaskTimeout`], [`Error::Broken`], ...).
pub(crate) type RawOutcome<'a> = Result<(Status, &'a [u8]), Error>;

/// Called exactly once with a raw task's outcome, on one of the pool's threads.
pub(crate) type RawDone = Box<dyn FnOnce(RawOutcome<'_>) + Send>;

/// The name of a call no registry holds: a worker answers it with [`Status::UnknownTask`] after starting up (and
/// running the initializer), which is how [`RawPool::start_workers`] makes every worker start now.
const PROBE: &str = "concurrent_futures::process::raw::probe";

/// An initializer given by name and encoded argument; `check` reads its encoded `Result<(), E>`.
pub(crate) struct RawInit {
    pub(crate) name: &'static str,
    pub(crate) arg: Vec<u8>,
    pub(crate) check: InitCheck,
}

/// A process pool fed raw frames.
pub(crate) struct RawPool {
    shared: Arc<Shared>,
}

/// [`Pending`] that hands the outcome to a callback instead of a future. Never cancelled: a raw task is sent to a
/// worker as soon as one is free.
struct RawPending {
    done: Slot,
}

/// Where a raw task's callback waits until its outcome is known.
type Slot = Arc<Mutex<Option<RawDone>>>;

fn settle(slot: &Slot, outcome: RawOutcome<'_>) {
    let done = slot.lock().take();
    if let Some(done) = done {
        done(outcome);
    }
}

impl RawPending {
    fn settle(&self, outcome: RawOutcome<'_>) {
        settle(&self.done, outcome);
    }
}

impl Pending for RawPending {
    fn start(&self) -> bool {
        true
    }

    // The callback only hands the outcome over (it runs no user code), so it runs here and defers nothing.
    fn finish(&self, _name: &str, status: Status, payload: &[u8]) -> Option<Deferred> {
        self.settle(Ok((status, payload)));
        None
    }

    fn fail(&self, error: Error) -> Option<Deferred> {
        self.settle(Err(error));
        None
    }

    fn cancel(&self) {
        self.settle(Err(Error::Cancelled));
    }

    fn cancel_started(&self) {
        self.settle(Err(Error::Cancelled));
    }
}

impl RawPool {
    /// A pool of at most `workers` processes (none started yet), each holding up to `ahead` small tasks behind
    /// the one it runs (`ProcessPoolBuilder::tasks_ahead`), refusing frames above `max_frame` bytes.
    pub(crate) fn new(
        workers: usize,
        ahead: usize,
        max_frame: usize,
        startup_timeout: Duration,
        init: Option<RawInit>,
    ) -> Result<Self, Error> {
        let registry = installed()?;
        let initializer = match init {
            None => None,
            Some(init) => {
                let frame = call_frame(0, init.name, false, &init.arg, max_frame)?;
                Some(Initializer {
                    frame,
                    check: init.check,
                })
            }
        };
        let exe = std::env::current_exe().map_err(|error| Error::Broken {
            reason: format!("cannot find the current executable to start workers: {error}"),
        })?;
        let shared = Shared::start(Config {
            max_workers: workers.max(1),
            max_tasks_per_child: None,
            timeout: None,
            startup_timeout,
            // As the process pool's default: a local worker that leaves a reply half-written this long is ended.
            stall_timeout: Duration::from_secs(10),
            ahead,
            max_frame,
            initializer,
            exe,
            token: super::manager::random_token(),
            identity: registry.identity.clone(),
        })?;
        Ok(RawPool { shared })
    }

    /// Queues `name(arg)` (`chunk`: `arg` encodes a `Vec` of inputs); `done` gets the outcome. Errors (a frame
    /// too large, a broken or closed pool) go to `done` too.
    pub(crate) fn submit(
        &self,
        name: &'static str,
        chunk: bool,
        arg: &[u8],
        timeout: Option<Duration>,
        done: RawDone,
    ) {
        let id = self.shared.next_job_id();
        let frame = match call_frame(id, name, chunk, arg, self.shared.config.max_frame) {
            Ok(frame) => frame,
            Err(error) => return done(Err(error)),
        };
        let slot: Slot = Arc::new(Mutex::new(Some(done)));
        let pending = Box::new(RawPending { done: slot.clone() });
        let job = Job {
            id,
            name,
            frame,
            timeout,
            pending,
            started: false,
        };
        // A refused job is dropped with its `RawPending`; the callback is still in `slot`.
        if let Err(error) = self.shared.submit(job) {
            settle(&slot, Err(error));
        }
    }

    /// Starts every worker now (each runs the initializer first); `done` gets `Ok` once all `n` answered, or the
    /// first error (an initializer that failed breaks the pool: [`Error::Broken`] with its reason).
    pub(crate) fn start_workers(
        &self,
        n: usize,
        done: impl FnOnce(Result<(), Error>) + Send + 'static,
    ) {
        let state = Arc::new(Mutex::new((n, Some(done))));
        for _ in 0..n {
            let state = state.clone();
            self.submit(
                PROBE,
                false,
                &[],
                None,
                Box::new(move |outcome| {
                    let mut guard = state.lock();
                    let result = match outcome {
                        Ok(_) => Ok(()),
                        Err(error) => Err(error),
                    };
                    guard.0 -= 1;
                    let finished = result.is_err() || guard.0 == 0;
                    let done = if finished { guard.1.take() } else { None };
                    drop(guard);
                    if let Some(done) = done {
                        done(result);
                    }
                }),
            );
        }
    }

    /// Stops the pool now: cancels what is queued and kills every worker (their tasks fail with
    /// [`Error::WorkerDied`]).
    pub(crate) fn kill(&self) {
        self.shared.close(true);
        self.shared.stop_all(false);
    }

    /// Stops accepting tasks and waits until every worker has exited and every task has settled.
    pub(crate) fn shutdown(&self) {
        self.shared.close(false);
        self.shared.join();
    }
}

impl Drop for RawPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A process-pool call frame for `name` with an argument encoded elsewhere.
fn call_frame(
    id: u64,
    name: &str,
    chunk: bool,
    arg: &[u8],
    max_frame: usize,
) -> Result<Vec<u8>, Error> {
    let mut frame = FrameBuf::new(&Call { id, name, chunk })
        .map_err(|error| Error::Serialization(error.to_string()))?;
    frame.extend(arg);
    frame.finish(max_frame).map_err(|size| {
        Error::Protocol(format!(
            "the argument of `{name}` takes {size} bytes, more than the maximum frame size of {max_frame} bytes"
        ))
    })
}
