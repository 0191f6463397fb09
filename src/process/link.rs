//! A worker's connection as the pool writes to it: the outbox of frames in stream order, one writer at a time,
//! and the account of where each frame lies in the stream and how many bytes the socket took, from which the
//! pool tells, after a death, which calls the worker read.

use std::collections::VecDeque;
use std::io::{self, Write};

use super::sys::{self, Conn};
use crate::sync::{AtomicUsize, Backoff, Mutex, Ordering};

/// A worker's connection and the frames waiting to be written to it, in order.
pub(super) struct Link {
    pub(super) conn: Conn,
    pub(super) outbox: Mutex<Outbox>,
    /// 1 while a thread is writing the outbox out: one writer at a time, so frames never interleave. The
    /// watcher takes it for good once the worker is dead.
    pub(super) writing: AtomicUsize,
}

pub(super) struct Outbox {
    pub(super) frames: VecDeque<(u64, Vec<u8>)>,
    /// Bytes queued so far, over the worker's life: the end offset of the last frame queued.
    queued: u64,
    /// Bytes the socket accepted so far.
    pub(super) written: u64,
}

impl Link {
    pub(super) fn new(conn: Conn) -> Self {
        Link {
            conn,
            outbox: Mutex::new(Outbox {
                frames: VecDeque::new(),
                queued: 0,
                written: 0,
            }),
            writing: AtomicUsize::new(0),
        }
    }

    /// Queues a frame; returns its offsets in the stream.
    pub(super) fn push(&self, id: u64, frame: Vec<u8>) -> (u64, u64) {
        let mut outbox = self.outbox.lock();
        let start = outbox.queued;
        outbox.queued += frame.len() as u64;
        let end = outbox.queued;
        outbox.frames.push_back((id, frame));
        (start, end)
    }

    /// Waits for the writer of the moment (if any) to finish its turn and keeps every later one out, for good:
    /// the outbox and the written count are final from now on. Writes fail at once by then (the worker is dead
    /// and its calls closed), so the wait is short.
    pub(super) fn stop_writers(&self) {
        let mut backoff = Backoff::new();
        // ORDERING: Acquire pairs with the Release store that ends the writer's turn, so its count is seen.
        while self
            .writing
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff.snooze();
        }
    }
}

impl Link {
    /// Writes the outbox out, in order, for the writer whose turn it is (the caller holds `writing`). Returns the
    /// first frame that could not be written whole (with its task id); the frames after it are dropped unwritten
    /// (their tasks were sent ahead and keep a copy). Every byte the socket accepted is counted in `written`.
    pub(super) fn write_out(&self) -> Option<(u64, Vec<u8>)> {
        let mut failed = None;
        let mut accepted = 0;
        loop {
            let next = {
                let mut outbox = self.outbox.lock();
                outbox.written += std::mem::take(&mut accepted);
                outbox.frames.pop_front()
            };
            let Some((id, frame)) = next else {
                return failed;
            };
            if failed.is_none() {
                let (done, result) = write_counted(self.conn.stream(), &frame);
                accepted = done as u64;
                if result.is_err() {
                    failed = Some((id, frame));
                }
            }
        }
    }
}

/// Writes `frame`; returns how many bytes the socket accepted, and whether all of them were.
fn write_counted(mut stream: &sys::Stream, frame: &[u8]) -> (usize, io::Result<()>) {
    let mut done = 0;
    while done < frame.len() {
        match stream.write(&frame[done..]) {
            Ok(0) => return (done, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return (done, Err(error)),
        }
    }
    (done, Ok(()))
}
