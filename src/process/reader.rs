//! A worker's two threads in the parent: the reader, which handles the frames the worker sends and, once the
//! worker is gone, reaps it and settles its tasks; and the watcher, which waits for the worker's exit.
//!
//! The reader never runs user code: results are published at once and done-callbacks go to the callback threads.
//! It stops reading when the worker breaks the protocol: a malformed or oversized frame, or a frame left half-sent
//! for the stall limit (the worker is then killed and its task fails with [`Error::Protocol`]). A well-formed reply
//! to a task the worker is not running is logged and dropped: it belongs to no running task, so it fails none.
//!
//! The watcher sees the worker exit whatever became of its socket (a task may have closed it, a forked copy of
//! the worker may hold it open), stops the writers, learns which calls the worker never read, and only then ends
//! the reader's stream, after the worker's last frame.

use std::io::Read;
use std::process::Child;
use std::time::{Duration, Instant};

use super::link::Link;
use super::pending::Pending;
use super::pool::{Exit, Job, Phase, Shared, State, Stop};
use super::protocol::{FrameReader, Hello, MAGIC, ReadError, Reply, Status, VERSION};
use super::sys::{Process, describe};
use crate::Error;
use crate::future::deadline_after;
use crate::sync::{Arc, MutexGuard, thread};

/// How long a worker whose stream ended may take to exit before the pool kills it (it shut its socket down and
/// lives on; an exiting worker is gone long before).
const LOST_GRACE: Duration = Duration::from_secs(2);

impl Shared {
    /// A worker's reader thread: starts its watcher, handles its frames until its stream ends or it breaks the
    /// protocol, then reaps it and settles its tasks.
    pub(super) fn read(self: Arc<Self>, key: u64, child: Child, process: Process, link: Arc<Link>) {
        self.enter_thread();
        let pid = process.id();
        self.state.lock().threads_running += 1;
        let watcher = {
            let shared = self.clone();
            let link = link.clone();
            let process = process.clone();
            thread::spawn_named(format!("process-pool-watcher-{pid}"), move || {
                shared.watch(key, process, &link);
                shared.thread_done();
            })
        };
        let fault = match watcher {
            Ok(_) => match link.conn.accept() {
                Ok(()) => self.read_frames(key, pid, &link),
                Err(error) => Some(Error::Broken {
                    reason: format!("worker process {pid} could not connect to the pool: {error}"),
                }),
            },
            Err(error) => {
                // Without a watcher the pool cannot see this worker die: end it now.
                self.thread_done();
                let reason =
                    format!("could not start a thread to watch worker process {pid}: {error}");
                log::error!(target: "concurrent_futures", "{reason}");
                if let Some(worker) = self.state.lock().workers.get_mut(&key) {
                    worker.stopping.get_or_insert(Stop::Killed);
                    worker.kill(false);
                }
                self.watch(key, process, &link);
                Some(Error::Broken { reason })
            }
        };
        self.end_worker(key, pid, child, fault);
        self.thread_done();
    }

    /// One of the pool's threads finished its work.
    fn thread_done(&self) {
        let mut state = self.state.lock();
        state.threads_running -= 1;
        self.changed.notify_all();
        self.wake.notify_one();
    }

    /// Reads worker `key`'s frames until its stream ends (`None`) or it breaks the protocol (the error, for the
    /// task it holds).
    fn read_frames(self: &Arc<Self>, key: u64, pid: u32, link: &Link) -> Option<Error> {
        let stall = self.config.stall_timeout;
        let mut reader = FrameReader::new();
        let mut limited = false;
        let mut stream = link.conn.stream();
        loop {
            let frame = reader.next(self.config.max_frame, |buf, mid_frame| {
                if mid_frame != limited {
                    link.conn.set_read_limit(mid_frame.then_some(stall))?;
                    limited = mid_frame;
                }
                stream.read(buf)
            });
            match frame {
                Ok(body) => {
                    if let Err(error) = self.on_frame(key, pid, body) {
                        return Some(error);
                    }
                }
                Err(ReadError::Eof) => return None,
                // A worker that dies in the middle of a frame (killed while writing a large result), or with
                // frames unread in its socket (which resets the connection on some systems).
                Err(ReadError::Io(error))
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return None;
                }
                Err(error @ ReadError::Stalled { .. }) => {
                    return Some(Error::Protocol(format!(
                        "worker process {pid} {error} for {stall:?}; it was killed"
                    )));
                }
                Err(error) => {
                    return Some(Error::Protocol(format!(
                        "could not read from worker process {pid}: {error}"
                    )));
                }
            }
        }
    }

    /// A worker's watcher thread: waits until the worker has exited, then records which calls it read and ends
    /// the reader's stream.
    fn watch(&self, key: u64, process: Process, link: &Link) {
        process.wait_exit();
        // From here on writes fail at once, and once the writer of the moment is done, nothing more is written:
        // the count of bytes sent and the calls left unread are final.
        link.conn.close_calls();
        link.stop_writers();
        let written = link.outbox.lock().written;
        let unread = link.conn.unread_calls();
        let mut state = self.state.lock();
        if let Some(worker) = state.workers.get_mut(&key) {
            worker.exited = Some(Exit { written, unread });
        }
        state.idle.retain(|k| *k != key);
        // A replacement can start now; the tasks the worker held go back to the queue once it is reaped.
        self.ensure_capacity(&mut state);
        self.changed.notify_all();
        drop(state);
        link.conn.end_replies();
    }

    /// After worker `key`'s stream ended (or it broke the protocol, `fault`): waits for its exit (killing it if
    /// it broke the protocol, or if it lives on without a stream), reaps it, fails the task it was running, hands
    /// the ones it never started to other workers, and asks for a replacement.
    fn end_worker(self: &Arc<Self>, key: u64, pid: u32, mut child: Child, fault: Option<Error>) {
        let mut state = self.state.lock();
        if fault.is_some()
            && let Some(worker) = state.workers.get_mut(&key)
            && worker.exited.is_none()
        {
            worker.stopping.get_or_insert(Stop::Fault);
            worker.kill(false);
        }
        let grace = deadline_after(LOST_GRACE);
        let mut killed = fault.is_some();
        loop {
            let Some(worker) = state.workers.get_mut(&key) else {
                return;
            };
            if worker.exited.is_some() {
                worker.reaping = true;
                break;
            }
            if !killed && Instant::now() >= grace {
                // Its stream ended and it lives on: it can deliver nothing more.
                worker.stopping.get_or_insert(Stop::Lost);
                worker.kill(false);
                killed = true;
            }
            if killed {
                self.changed.wait(&mut state);
            } else {
                self.changed.wait_until(&mut state, grace);
            }
        }
        drop(state);
        let reason = match child.wait() {
            Ok(status) => describe(status),
            Err(error) => format!("could not be waited for: {error}"),
        };
        let mut state = self.state.lock();
        let failed = self.settle(&mut state, key, pid, &reason, fault.as_ref());
        let mut send = Vec::new();
        while !state.queue.is_empty() {
            match self.place(&mut state) {
                Some(outgoing) => send.push(outgoing),
                None => break,
            }
        }
        self.ensure_capacity(&mut state);
        self.wake.notify_one();
        self.changed.notify_all();
        drop(state);
        for outgoing in send {
            self.send(Some(outgoing));
        }
        for (pending, error) in failed {
            self.fail(pending, error);
        }
    }

    /// Removes reaped worker `key` and sorts out its tasks: the one it was running fails; the ones it never read
    /// go back to the front of the queue (unless the pool is broken or being stopped). Returns the futures to
    /// fail once the lock is released.
    fn settle(
        &self,
        state: &mut MutexGuard<'_, State>,
        key: u64,
        pid: u32,
        reason: &str,
        fault: Option<&Error>,
    ) -> Vec<(Box<dyn Pending>, Error)> {
        let mut failed: Vec<(Box<dyn Pending>, Error)> = Vec::new();
        let Some(mut worker) = state.workers.remove(&key) else {
            return failed;
        };
        state.idle.retain(|k| *k != key);
        let died = || Error::WorkerDied {
            pid,
            reason: reason.to_owned(),
        };
        // (Always known here; if it were not, every call written would count as read: no task runs twice.)
        let exit = worker.exited.take().unwrap_or(Exit {
            written: u64::MAX,
            unread: None,
        });
        // Frames queued for it and never written, and the bytes of calls written and never read: what it read
        // is everything before them.
        let mut unwritten: Vec<(u64, Vec<u8>)> =
            worker.link.outbox.lock().frames.drain(..).collect();
        let unread = exit.unread.unwrap_or_default();
        let consumed = exit.written.saturating_sub(unread.len() as u64);
        let mut back = Vec::new();
        for (i, task) in worker.in_flight.drain(..).enumerate() {
            let (start, end) = task.span;
            if i == 0 && end <= consumed {
                // It read this call: it was running it.
                let error = match (fault, worker.stopping) {
                    (Some(fault), _) => fault.clone(),
                    (None, Some(Stop::Timeout(timeout))) => Error::TaskTimeout {
                        timeout,
                        worker: format!("pid {pid}"),
                    },
                    (None, Some(Stop::Lost)) => Error::WorkerDied {
                        pid,
                        reason: format!(
                            "it shut its protocol socket down and lived on, so the pool killed it ({reason})"
                        ),
                    },
                    (None, _) => died(),
                };
                failed.push((task.pending, error));
                continue;
            }
            // It never started this one: find its frame to send it to another worker.
            let frame = task
                .retry
                .or_else(|| {
                    let at = unwritten.iter().position(|(id, _)| *id == task.id)?;
                    Some(unwritten.swap_remove(at).1)
                })
                .or_else(|| {
                    let from = usize::try_from(start.checked_sub(consumed)?).ok()?;
                    let to = usize::try_from(end - consumed).ok()?;
                    unread.get(from..to).map(<[u8]>::to_vec)
                });
            back.push((task.id, task.name, task.timeout, task.pending, frame));
        }
        // Back to the front of the queue, in order, for other workers; unless the pool is broken, or being stopped
        // by `terminate_workers`/`kill_workers` (which cancel what has not started).
        for (id, name, timeout, pending, frame) in back.into_iter().rev() {
            let refusal = match (&state.broken, worker.stopping) {
                (Some(error), _) => Some(error.clone()),
                (None, Some(Stop::Terminated)) => Some(Error::Cancelled),
                _ => None,
            };
            match (refusal, frame) {
                (None, Some(frame)) => state.queue.push_front(Job {
                    id,
                    name,
                    frame,
                    timeout,
                    pending,
                    started: true,
                }),
                (Some(error), _) => failed.push((pending, error)),
                (None, None) => failed.push((pending, died())),
            }
        }
        if matches!(worker.phase, Phase::Hello | Phase::Init) && !state.closed {
            let reason = match (worker.phase, worker.stopping, fault) {
                (_, _, Some(fault)) => format!("worker process {pid} broke the protocol: {fault}"),
                (Phase::Hello, Some(Stop::Silent(limit)), _) => format!(
                    "worker process {pid} did not start serving within {limit:?} and was killed; \
                     `concurrent_futures::process_main!` must run at the top of `main`, before \
                     anything slow"
                ),
                (Phase::Hello, _, _) => {
                    format!("worker process {pid} ended before it was ready: {reason}")
                }
                _ => format!("worker process {pid} ended while running the initializer: {reason}"),
            };
            let (jobs, error) = self.break_pool(state, Error::Broken { reason });
            failed.extend(jobs.into_iter().map(|job| (job.pending, error.clone())));
        }
        failed
    }

    /// Handles one frame from worker `key`. An error means the worker broke the protocol and must be ended; the
    /// error goes to the task it was running.
    fn on_frame(self: &Arc<Self>, key: u64, pid: u32, body: &[u8]) -> Result<(), Error> {
        let (reply, payload) = postcard::take_from_bytes::<Reply>(body).map_err(|error| {
            Error::Protocol(format!(
                "worker process {pid} sent a malformed frame: {error}"
            ))
        })?;
        let mut state = self.state.lock();
        let Some(worker) = state.workers.get_mut(&key) else {
            return Err(Error::Protocol(format!("worker process {pid} is unknown")));
        };
        match reply {
            Reply::Hello(hello) => {
                if worker.phase != Phase::Hello {
                    drop(state);
                    stray(pid, "a second hello");
                    return Ok(());
                }
                if let Err(reason) = self.check_hello(&hello, pid) {
                    let (jobs, error) = self.break_pool(&mut state, Error::Protocol(reason));
                    drop(state);
                    for job in jobs {
                        self.fail(job.pending, error.clone());
                    }
                    return Err(error);
                }
                let wanted = !state.closed || !state.queue.is_empty();
                let send = match &self.config.initializer {
                    Some(init) if wanted => {
                        self.send_initializer(&mut state, key, init.frame.clone())
                    }
                    _ => {
                        if let Some(worker) = state.workers.get_mut(&key) {
                            worker.phase = Phase::Idle;
                        }
                        self.dispatch(&mut state, key)
                    }
                };
                drop(state);
                self.send(send);
                Ok(())
            }
            Reply::Done { id: 0, status } if worker.phase == Phase::Init => {
                self.initialized(state, key, pid, status, payload);
                Ok(())
            }
            Reply::Done { id, status } => {
                let running = worker.phase == Phase::Busy
                    && worker.in_flight.front().is_some_and(|task| task.id == id);
                if !running {
                    drop(state);
                    stray(
                        pid,
                        &format!("a reply to task {id}, which it was not running"),
                    );
                    return Ok(());
                }
                let task = worker.in_flight.pop_front();
                worker.tasks_done += 1;
                let stopping = worker.stopping.is_some();
                // The task sent ahead, if any, starts now: its time limit counts from here.
                let next = worker.in_flight.front().map(|next| (next.id, next.timeout));
                if !stopping && let Some((next_id, Some(timeout))) = next {
                    self.add_deadline(&mut state, deadline_after(timeout), key, next_id);
                }
                // A worker being killed gets no more work; one that used up its budget retires in `dispatch`.
                let send = if stopping {
                    None
                } else {
                    self.dispatch(&mut state, key)
                };
                if state
                    .workers
                    .get(&key)
                    .is_some_and(|w| w.phase == Phase::Retiring)
                {
                    self.ensure_capacity(&mut state);
                }
                drop(state);
                self.send(send);
                if let Some(task) = task {
                    let callbacks = task.pending.finish(task.name, status, payload);
                    self.defer(callbacks);
                }
                Ok(())
            }
        }
    }

    /// Worker `key` ran the initializer: it serves now, or (if that failed) the pool is broken.
    fn initialized(
        self: &Arc<Self>,
        mut state: MutexGuard<'_, State>,
        key: u64,
        pid: u32,
        status: Status,
        payload: &[u8],
    ) {
        let outcome = match status {
            Status::Ok => self
                .config
                .initializer
                .as_ref()
                .map_or(Ok(()), |init| (init.check)(payload)),
            Status::Panicked(message) => Err(format!("it panicked: {message}")),
            Status::UnknownTask(name) => Err(format!("no task named `{name}` is registered")),
            Status::Serialization(what) | Status::TooLarge(what) => Err(what),
        };
        match outcome {
            Ok(()) => {
                if let Some(worker) = state.workers.get_mut(&key) {
                    worker.phase = Phase::Idle;
                }
                let send = self.dispatch(&mut state, key);
                drop(state);
                self.send(send);
            }
            Err(reason) => {
                let reason = format!("the initializer failed in worker process {pid}: {reason}");
                log::error!(target: "concurrent_futures", "{reason}");
                Self::retire(&mut state, key);
                let (jobs, error) = self.break_pool(&mut state, Error::Broken { reason });
                drop(state);
                for job in jobs {
                    self.fail(job.pending, error.clone());
                }
            }
        }
    }

    /// Checks a worker's hello: our protocol, our token, our build.
    fn check_hello(&self, hello: &Hello, pid: u32) -> Result<(), String> {
        if hello.magic != MAGIC || hello.version != VERSION {
            return Err(format!(
                "worker process {pid} speaks protocol version {}, this pool speaks version {VERSION}",
                hello.version
            ));
        }
        if let Some(error) = &hello.registry_error {
            return Err(format!(
                "the task registry of worker process {pid} is unusable: {error}"
            ));
        }
        if hello.token != self.config.token {
            return Err(format!(
                "worker process {pid} did not present this pool's token"
            ));
        }
        if hello.identity != self.config.identity {
            return Err(format!(
                "worker process {pid} runs a different build of the program than this process \
                 (worker: {}; this process: {}); was the executable rebuilt, or does `main` register \
                 different tasks in workers?",
                hello.identity, self.config.identity
            ));
        }
        Ok(())
    }
}

/// A well-formed frame that answers nothing the worker was asked: something in the worker (a task, a thread it
/// left behind, a forked copy) wrote on the protocol socket. It is dropped; the stream is still in step.
fn stray(pid: u32, what: &str) {
    log::warn!(
        target: "concurrent_futures",
        "worker process {pid} sent {what}; dropped (something in the worker writes on its protocol socket)"
    );
}
