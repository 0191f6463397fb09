//! A worker rank: says hello to the manager, then serves one pool session after another. Each task runs in a
//! local worker process of the rank (the process pool, fed raw frames), so a task that aborts, segfaults or runs
//! past its timeout fails only its own future and the rank keeps serving; with `isolate(false)` tasks run in the
//! rank itself.
//!
//! Everything here runs on the rank's main thread, the only one that calls MPI; the local pool's threads only
//! push finished reports onto a queue that this thread sends.

use std::time::{Duration, Instant};

use crate::Error;
use crate::process::{Installed, RawInit, RawOutcome, RawPool, Status, install_panic_hook};
use crate::sync::{Arc, Mutex, Pop, Queue};

use super::comm::{self, Comm};
use super::wire::{
    Backoff, Failure, Hello, InitFailure, MAGIC, Order, Outcome, Report, Session, VERSION,
    build_of, decode, encode, encode_with, frame_with,
};

/// Exit status of a rank that lost its manager or received a message it could not read.
const EXIT_PROTOCOL: i32 = 70;

/// How a worker rank reaches its manager.
pub(crate) struct Link {
    pub(crate) comm: Comm,
    /// The manager's rank in `comm` (its remote group, for a spawned worker).
    pub(crate) manager: i32,
    /// `comm` is the intercommunicator to the process that spawned this one (disconnected on exit).
    pub(crate) spawned: bool,
}

/// What ended a session.
enum Next {
    /// The pool is done with this rank; wait for the next.
    Session,
    /// Leave MPI and exit.
    Exit(i32),
}

/// Serves the manager until it says exit, then leaves MPI and exits the process.
pub(crate) fn serve(installed: Result<&'static Installed, Error>, link: Link) -> ! {
    let (build, registry_error) = match installed {
        Ok(installed) => (
            build_of(installed.identity.tasks, installed.identity.names_hash),
            None,
        ),
        Err(ref error) => (build_of(0, 0), Some(error.to_string())),
    };
    let hello = Hello {
        magic: MAGIC,
        version: VERSION,
        build,
        rank: comm::rank(comm::world()).unwrap_or(-1) as u32,
        host: comm::processor_name(),
        pid: std::process::id(),
        registry_error,
    };
    if let Err(error) = comm::send(link.comm, link.manager, &encode(&Report::Hello(hello))) {
        eprintln!("concurrent_futures MPI worker: {error}");
        leave(&link, EXIT_PROTOCOL);
    }
    let mut backoff = Backoff::new();
    let code = loop {
        let bytes = match receive(&link, &mut backoff) {
            Ok(bytes) => bytes,
            Err(code) => break code,
        };
        let order = match decode::<Order>(&bytes) {
            Ok((order, _)) => order,
            Err(error) => {
                eprintln!("concurrent_futures MPI worker: {error} from the pool");
                break EXIT_PROTOCOL;
            }
        };
        let reply = match order {
            Order::Start(session) => match installed {
                Ok(installed) => match run_session(&link, installed, session) {
                    Next::Session => continue,
                    Next::Exit(code) => break code,
                },
                Err(ref error) => Report::Ready(Err(InitFailure::Failed(error.to_string()))),
            },
            Order::Exit => break 0,
            Order::End => Report::Ended,
            Order::Task { id, .. } => Report::Done {
                id,
                outcome: Outcome::Failed(Failure::Protocol("a task outside a session".into())),
            },
        };
        if send(&link, &encode(&reply)).is_err() {
            break EXIT_PROTOCOL;
        }
    };
    leave(&link, code)
}

/// Disconnects from the parent (if spawned), finalises MPI and exits.
fn leave(link: &Link, code: i32) -> ! {
    if link.spawned {
        let _ = comm::disconnect(link.comm);
    }
    let _ = comm::finalize();
    std::process::exit(code)
}

fn send(link: &Link, bytes: &[u8]) -> Result<(), i32> {
    comm::send(link.comm, link.manager, bytes).map_err(|error| {
        eprintln!("concurrent_futures MPI worker: {error}");
        EXIT_PROTOCOL
    })
}

/// Waits for the next message from the manager, polling with a backoff (capped at 1 ms).
fn receive(link: &Link, backoff: &mut Backoff) -> Result<Vec<u8>, i32> {
    loop {
        match comm::try_receive(link.comm) {
            Ok(Some((_, bytes))) => {
                backoff.reset();
                return Ok(bytes);
            }
            Ok(None) => backoff.pause(),
            Err(error) => {
                eprintln!("concurrent_futures MPI worker: {error}");
                return Err(EXIT_PROTOCOL);
            }
        }
    }
}

/// One pool's use of this rank: sets up, runs the initializer, serves tasks until `End` or `Exit`.
fn run_session(link: &Link, installed: &'static Installed, session: Session) -> Next {
    let (mut runner, ready) = match Runner::new(installed, &session) {
        Ok(runner) => (runner, Report::Ready(Ok(()))),
        // The manager breaks the pool and ends the session; until then, tasks fail here.
        Err(failure) => (
            Runner::without_workers(installed, &session),
            Report::Ready(Err(failure)),
        ),
    };
    if send(link, &encode(&ready)).is_err() {
        runner.kill();
        return Next::Exit(EXIT_PROTOCOL);
    }
    let mut backoff = Backoff::new();
    loop {
        let mut busy = false;
        while let Some(report) = runner.reports.try_pop() {
            busy = true;
            runner.running -= 1;
            if send(link, &report).is_err() {
                return Next::Exit(EXIT_PROTOCOL);
            }
        }
        match comm::try_receive(link.comm) {
            Ok(Some((_, bytes))) => {
                busy = true;
                match runner.on_order(link, &bytes) {
                    Ok(None) => {}
                    Ok(Some(next)) => return next,
                    Err(code) => return Next::Exit(code),
                }
            }
            Ok(None) => {}
            Err(error) => {
                eprintln!("concurrent_futures MPI worker: {error}");
                runner.kill();
                return Next::Exit(EXIT_PROTOCOL);
            }
        }
        if busy {
            backoff.reset();
            continue;
        }
        if runner.running >= runner.slots {
            // Every slot is busy, so the manager sends nothing until a report goes out (only `Exit`, at the
            // program's exit, may come): wait for a local task to finish, waking at once when one does.
            let wait = Duration::from_millis(1);
            if let Pop::Item(report) = runner.reports.pop_until(Some(Instant::now() + wait)) {
                runner.running -= 1;
                backoff.reset();
                if send(link, &report).is_err() {
                    return Next::Exit(EXIT_PROTOCOL);
                }
            }
        } else {
            backoff.pause();
        }
    }
}

/// Runs a session's tasks: in the local process pool, or in place.
struct Runner {
    installed: &'static Installed,
    local: Option<RawPool>,
    /// Finished tasks' reports, ready to send.
    reports: Arc<Queue<Vec<u8>>>,
    running: usize,
    /// How many tasks the manager sends at most at once (those run, and those held ahead).
    slots: usize,
    max_frame: usize,
}

impl Runner {
    /// Sets up the session and runs the initializer (in every local worker process, or here); reports `Ready`
    /// on success; a failure is returned for the caller to report.
    fn new(installed: &'static Installed, session: &Session) -> Result<Runner, InitFailure> {
        let mut runner = Runner::without_workers(installed, session);
        let init = match &session.initializer {
            None => None,
            Some((name, arg)) => match installed.entries.get_key_value(name.as_str()) {
                Some((name, _)) => Some((*name, arg.clone())),
                None => {
                    return Err(InitFailure::Failed(format!(
                        "no task named `{name}` is registered"
                    )));
                }
            },
        };
        let outcome = if session.isolate {
            runner.start_local(session, init)
        } else {
            install_panic_hook();
            match init {
                None => Ok(()),
                Some((name, arg)) => run_init_here(installed, name, &arg),
            }
        };
        outcome.map(|()| runner)
    }

    fn without_workers(installed: &'static Installed, session: &Session) -> Runner {
        Runner {
            installed,
            local: None,
            reports: Arc::new(Queue::new(None)),
            running: 0,
            slots: (session.slots.max(1) + session.ahead) as usize,
            max_frame: session.max_frame as usize,
        }
    }

    /// Starts the local pool's workers, each running the initializer; waits for all of them.
    fn start_local(
        &mut self,
        session: &Session,
        init: Option<(&'static str, Vec<u8>)>,
    ) -> Result<(), InitFailure> {
        let returned: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
        let raw_init = init.map(|(name, arg)| {
            let returned = returned.clone();
            RawInit {
                name,
                arg,
                // `Ok(())` of any `Result<(), E>` encodes as the single byte 0; anything else is an `Err` that
                // only the manager (which knows `E`) can decode.
                check: Box::new(move |bytes: &[u8]| {
                    if bytes == [0] {
                        Ok(())
                    } else {
                        *returned.lock() = Some(bytes.to_vec());
                        Err("it returned an error".into())
                    }
                }),
            }
        });
        let slots = session.slots.max(1) as usize;
        let local = RawPool::new(
            slots,
            session.ahead as usize,
            self.max_frame,
            session.startup_timeout,
            raw_init,
        )
        .map_err(|error| InitFailure::Failed(error.to_string()))?;
        let started: Arc<Queue<Result<(), Error>>> = Arc::new(Queue::new(None));
        let signal = started.clone();
        local.start_workers(slots, move |outcome| {
            let _ = signal.push(outcome);
        });
        self.local = Some(local);
        match started.pop_until(None) {
            Pop::Item(Ok(())) => Ok(()),
            Pop::Item(Err(error)) => Err(match returned.lock().take() {
                Some(bytes) => InitFailure::Returned(bytes),
                None => InitFailure::Failed(error.to_string()),
            }),
            _ => Err(InitFailure::Failed(
                "the local workers did not start".into(),
            )),
        }
    }

    /// Handles one order inside a session: `Some` when the session ends.
    fn on_order(&mut self, link: &Link, bytes: &[u8]) -> Result<Option<Next>, i32> {
        let (order, arg) = decode::<Order>(bytes).map_err(|error| {
            eprintln!("concurrent_futures MPI worker: {error} from the pool");
            EXIT_PROTOCOL
        })?;
        match order {
            Order::Task {
                id,
                name,
                chunk,
                timeout,
            } => {
                match self.installed.entries.get_key_value(name) {
                    None => {
                        let report = Report::Done {
                            id,
                            outcome: Outcome::Ran(Status::UnknownTask(name.to_owned())),
                        };
                        send(link, &encode(&report))?;
                    }
                    Some((name, _)) => self.run(link, id, name, chunk, arg, timeout)?,
                }
                Ok(None)
            }
            Order::End => {
                while self.running > 0 {
                    if let Pop::Item(report) = self.reports.pop_until(None) {
                        self.running -= 1;
                        send(link, &report)?;
                    }
                }
                if let Some(local) = self.local.take() {
                    local.shutdown();
                }
                send(link, &encode(&Report::Ended))?;
                Ok(Some(Next::Session))
            }
            Order::Exit => {
                self.kill();
                Ok(Some(Next::Exit(0)))
            }
            Order::Start(_) => {
                eprintln!("concurrent_futures MPI worker: a session started inside a session");
                self.kill();
                Err(EXIT_PROTOCOL)
            }
        }
    }

    /// Runs one task: hands it to the local pool, or runs it here and reports it.
    fn run(
        &mut self,
        link: &Link,
        id: u64,
        name: &'static str,
        chunk: bool,
        arg: &[u8],
        timeout: Option<Duration>,
    ) -> Result<(), i32> {
        if let Some(local) = &self.local {
            self.running += 1;
            let reports = self.reports.clone();
            local.submit(
                name,
                chunk,
                arg,
                timeout,
                Box::new(move |outcome| {
                    let _ = reports.push(report_of(id, outcome));
                }),
            );
            return Ok(());
        }
        let entry = &self.installed.entries[name];
        let mut frame = frame_with(&Report::Done {
            id,
            outcome: Outcome::Ran(Status::Ok),
        });
        let status = match (entry.invoke)(arg, chunk, &mut frame) {
            Status::Ok => match frame.finish(self.max_frame) {
                // The frame's first 4 bytes are the process pool's length prefix, which MPI does not need.
                Ok(bytes) => return send(link, &bytes[4..]),
                Err(size) => Status::TooLarge(format!(
                    "the result of `{name}` takes {size} bytes, more than the maximum frame size of {} bytes",
                    self.max_frame
                )),
            },
            failure => failure,
        };
        let report = Report::Done {
            id,
            outcome: Outcome::Ran(status),
        };
        send(link, &encode(&report))
    }

    /// Stops the local workers at once (their tasks are abandoned).
    fn kill(&mut self) {
        if let Some(local) = self.local.take() {
            local.kill();
            local.shutdown();
        }
    }
}

/// Runs the initializer in this process.
fn run_init_here(installed: &Installed, name: &str, arg: &[u8]) -> Result<(), InitFailure> {
    let entry = &installed.entries[name];
    let mut frame = frame_with(&());
    let start = frame.len();
    match (entry.invoke)(arg, false, &mut frame) {
        Status::Ok => {
            let bytes = frame.finish(usize::MAX >> 1).unwrap_or_default();
            let result = bytes.get(start..).unwrap_or_default();
            if result == [0] {
                Ok(())
            } else {
                Err(InitFailure::Returned(result.to_vec()))
            }
        }
        Status::Panicked(message) => Err(InitFailure::Failed(format!("it panicked: {message}"))),
        Status::UnknownTask(name) => Err(InitFailure::Failed(format!(
            "no task named `{name}` is registered"
        ))),
        Status::Serialization(what) | Status::TooLarge(what) => Err(InitFailure::Failed(what)),
    }
}

/// The report for a task the local pool finished.
fn report_of(id: u64, outcome: RawOutcome<'_>) -> Vec<u8> {
    match outcome {
        Ok((Status::Ok, payload)) => encode_with(
            &Report::Done {
                id,
                outcome: Outcome::Ran(Status::Ok),
            },
            payload,
        ),
        Ok((status, _)) => encode(&Report::Done {
            id,
            outcome: Outcome::Ran(status),
        }),
        Err(Error::WorkerDied { pid, reason }) => encode(&Report::Done {
            id,
            outcome: Outcome::Died { pid, reason },
        }),
        Err(Error::TaskTimeout { timeout, .. }) => encode(&Report::Done {
            id,
            outcome: Outcome::TimedOut(timeout),
        }),
        Err(error) => encode(&Report::Done {
            id,
            outcome: Outcome::Failed(Failure::from_error(error)),
        }),
    }
}
