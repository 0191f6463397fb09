//! One pool's run on the MPI thread: its worker ranks (slots) and the tasks each holds, the checks on a rank's
//! hello, and how a rank's report becomes its future's outcome.

use std::collections::HashMap;
use std::time::Instant;

use crate::Error;
use crate::process::{Pending, Status};
use crate::sync::Arc;

use super::comm::{Comm, Sending};
use super::shared::Shared;
use super::wire::{Build, Hello, MAGIC, Outcome, VERSION};

/// Where the pool is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for every rank's hello.
    Hello,
    /// Ranks are running the initializer.
    Starting,
    Running,
    /// Told the ranks to end the session; waiting for them.
    Ending,
    Done,
}

/// A task a rank holds.
pub(crate) struct InFlight {
    pub(crate) name: &'static str,
    pub(crate) pending: Box<dyn Pending>,
}

/// One worker rank of a running pool.
pub(crate) struct Slot {
    pub(crate) dest: i32,
    pub(crate) hello: Option<Hello>,
    pub(crate) started: bool,
    pub(crate) ready: bool,
    pub(crate) ended: bool,
    pub(crate) in_flight: HashMap<u64, InFlight>,
}

impl Slot {
    pub(crate) fn place(&self) -> String {
        match &self.hello {
            Some(hello) => format!("on MPI rank {} ({})", hello.rank, hello.host),
            None => format!("on MPI rank {}", self.dest),
        }
    }
}

/// The MPI thread's state for one pool.
pub(crate) struct Run {
    pub(crate) pool: Arc<Shared>,
    pub(crate) comm: Option<Comm>,
    pub(crate) spawned: bool,
    pub(crate) phase: Phase,
    pub(crate) slots: Vec<Slot>,
    pub(crate) sends: Vec<Sending>,
    pub(crate) deadline: Instant,
    /// Its spawned ranks may serve the next pool (false once they failed their hello checks).
    pub(crate) reusable: bool,
}

pub(crate) fn new_slot(dest: i32) -> Slot {
    Slot {
        dest,
        hello: None,
        started: false,
        ready: false,
        ended: false,
        in_flight: HashMap::new(),
    }
}

/// Completes a task's future from its rank's report (errors name the rank and host); its done-callbacks run on
/// the pool's callback threads.
pub(crate) fn settle(
    pool: &Arc<Shared>,
    task: InFlight,
    outcome: Outcome,
    payload: &[u8],
    place: &str,
) {
    let callbacks = match outcome {
        Outcome::Ran(Status::Panicked(message)) => task.pending.finish(
            task.name,
            Status::Panicked(format!("{message}, {place}")),
            payload,
        ),
        Outcome::Ran(status) => task.pending.finish(task.name, status, payload),
        Outcome::Died { pid, reason } => task.pending.fail(Error::WorkerDied {
            pid,
            reason: format!("{reason}, in a local worker process {place}"),
        }),
        Outcome::TimedOut(timeout) => {
            log::warn!(target: "concurrent_futures", "task `{}` ran past its timeout of {timeout:?} {place}; its local worker process was killed", task.name);
            task.pending.fail(Error::TaskTimeout {
                timeout,
                worker: format!("a local worker process {place}"),
            })
        }
        Outcome::Failed(failure) => task.pending.fail(failure.into_error(place)),
    };
    pool.defer(callbacks);
}

/// Checks a rank's hello: our protocol, a usable registry, our build.
pub(crate) fn verify_hello(hello: &Hello, build: &Build, place: &str) -> Result<(), Error> {
    if hello.magic != MAGIC || hello.version != VERSION {
        return Err(Error::Protocol(format!(
            "the worker {place} speaks protocol version {}, this pool speaks version {VERSION}",
            hello.version
        )));
    }
    if let Some(error) = &hello.registry_error {
        return Err(Error::Protocol(format!(
            "the task registry of the worker {place} is unusable: {error}"
        )));
    }
    if hello.build != *build {
        return Err(Error::Protocol(format!(
            "the worker {place} runs a different build of the program than this process (worker: {}; this \
             process: {build}); every rank must run the same executable",
            hello.build
        )));
    }
    Ok(())
}
