//! The messages between the pool's MPI thread (the manager) and its worker ranks: postcard values, one MPI
//! message each (MPI keeps message boundaries, so there is no length prefix). A task's encoded argument, and a
//! finished task's encoded result, follow the header in the same message, exactly as the process pool encodes
//! them, so the same registry runs them.

use std::io::Read;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::process::{FrameBuf, Status};

/// The first bytes of a worker's hello: a process speaking something else is not ours.
pub(crate) const MAGIC: [u8; 8] = *b"cfmpi\0\0\x01";

/// Bumped whenever a message's layout changes.
pub(crate) const VERSION: u32 = 1;

/// What identifies a build of the program, checked when a worker rank starts: its registered task names and the
/// bytes of its executable (not its file time, which differs between nodes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Build {
    /// How many functions are registered.
    pub(crate) tasks: u64,
    /// A hash of the sorted registered names.
    pub(crate) names_hash: u64,
    /// The executable's size in bytes.
    pub(crate) exe_size: u64,
    /// A hash of the executable's bytes.
    pub(crate) exe_hash: u64,
}

impl std::fmt::Display for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} registered tasks (names hash {:016x}), executable of {} bytes with content hash {:016x}",
            self.tasks, self.names_hash, self.exe_size, self.exe_hash
        )
    }
}

/// A worker rank's first message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) magic: [u8; 8],
    pub(crate) version: u32,
    pub(crate) build: Build,
    /// Its rank in its own `MPI_COMM_WORLD`.
    pub(crate) rank: u32,
    pub(crate) host: String,
    pub(crate) pid: u32,
    /// Why its task registry is unusable, if it is.
    pub(crate) registry_error: Option<String>,
}

/// How a pool's session on a worker rank runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Run each task in a local worker process (crash and timeout isolation), or in the rank itself.
    pub(crate) isolate: bool,
    /// How many tasks the rank runs at once.
    pub(crate) slots: u32,
    /// How many more it may hold, queued behind those (sent ahead: no longer cancellable).
    pub(crate) ahead: u32,
    pub(crate) max_frame: u64,
    /// How long a local worker process may take to start.
    pub(crate) startup_timeout: Duration,
    /// The initializer's registered name and encoded argument.
    pub(crate) initializer: Option<(String, Vec<u8>)>,
}

/// From the manager to a worker rank.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Order<'a> {
    /// A pool starts using this rank: set up, run the initializer, answer [`Report::Ready`].
    Start(Session),
    /// Run a task; its encoded argument follows.
    Task {
        id: u64,
        #[serde(borrow)]
        name: &'a str,
        chunk: bool,
        timeout: Option<Duration>,
    },
    /// The pool is done with this rank: stop the local workers, answer [`Report::Ended`].
    End,
    /// Leave: stop everything, disconnect and finalise MPI, exit.
    Exit,
}

/// From a worker rank to the manager.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    Hello(Hello),
    /// The session is set up: the initializer's outcome.
    Ready(Result<(), InitFailure>),
    /// A task finished; with [`Outcome::Ran`]`(`[`Status::Ok`]`)` its encoded result follows.
    Done {
        id: u64,
        outcome: Outcome,
    },
    /// The session ended; the rank waits for the next.
    Ended,
}

/// Why the initializer failed on a rank.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum InitFailure {
    /// It returned `Err`: its encoded `Result<(), E>`, for the manager to decode (it knows `E`).
    Returned(Vec<u8>),
    /// It panicked, was not found, or its worker process died: the reason.
    Failed(String),
}

/// How a task ended on a rank.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// It ran: the registry's status.
    Ran(Status),
    /// Its local worker process died.
    Died { pid: u32, reason: String },
    /// It ran past its timeout and its local worker process was killed.
    TimedOut(Duration),
    /// The rank could not run it.
    Failed(Failure),
}

/// An error on a rank, in a form that travels.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Failure {
    Broken(String),
    Protocol(String),
    Serialization(String),
    UnknownTask(String),
    Other(String),
}

impl Failure {
    /// The travelling form of a local pool's error (for the errors [`Outcome`] has no variant of).
    pub(crate) fn from_error(error: Error) -> Failure {
        match error {
            Error::Broken { reason } => Failure::Broken(reason),
            Error::Protocol(what) => Failure::Protocol(what),
            Error::Serialization(what) => Failure::Serialization(what),
            Error::UnknownTask(name) => Failure::UnknownTask(name),
            other => Failure::Other(other.to_string()),
        }
    }

    /// The error it stands for, on the manager; `place` says where it happened.
    pub(crate) fn into_error(self, place: &str) -> Error {
        match self {
            Failure::Broken(reason) => Error::Broken {
                reason: format!("{reason} ({place})"),
            },
            Failure::Protocol(what) => Error::Protocol(format!("{what} ({place})")),
            Failure::Serialization(what) => Error::Serialization(format!("{what} ({place})")),
            Failure::UnknownTask(name) => Error::UnknownTask(name),
            Failure::Other(what) => Error::Broken {
                reason: format!("{what} ({place})"),
            },
        }
    }
}

/// Encodes a message header.
pub(crate) fn encode<T: Serialize>(header: &T) -> Vec<u8> {
    postcard::to_stdvec(header).expect("the pool's own message headers always encode")
}

/// Encodes a header followed by bytes encoded elsewhere.
pub(crate) fn encode_with<T: Serialize>(header: &T, tail: &[u8]) -> Vec<u8> {
    let mut bytes = encode(header);
    bytes.extend_from_slice(tail);
    bytes
}

/// Decodes a header; returns it and the bytes after it.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, &'a [u8]), String> {
    postcard::take_from_bytes(bytes).map_err(|error| format!("a malformed message: {error}"))
}

/// A frame builder whose body starts with `header` (for results appended in place by the registry).
pub(crate) fn frame_with<T: Serialize>(header: &T) -> FrameBuf {
    FrameBuf::new(header).expect("the pool's own message headers always encode")
}

/// This build's identity: `tasks` and `names_hash` from the registry, the rest from the executable's bytes.
pub(crate) fn build_of(tasks: u64, names_hash: u64) -> Build {
    let (exe_size, exe_hash) = std::env::current_exe()
        .and_then(|path| hash_file(&path))
        .unwrap_or((0, 0));
    Build {
        tasks,
        names_hash,
        exe_size,
        exe_hash,
    }
}

/// The size of a file and a 64-bit hash of its bytes (FNV-1a over 8-byte words: the same on every node, and fast
/// enough for a large executable in a debug build).
fn hash_file(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut size: u64 = 0;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        size += n as u64;
        let mut words = buf[..n].chunks_exact(8);
        for word in &mut words {
            let word = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
            hash = (hash ^ word).wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &byte in words.remainder() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok((size, hash))
}

/// Waiting for MPI messages without burning a core (MPI cannot wake a sleeping thread). For 50 µs after the last
/// message the caller only yields between polls (the next message of a busy pool comes within microseconds); for
/// the next 2 ms it sleeps 50 µs between polls (a reply to a task in flight is on its way, and on a loaded machine
/// a sleeping thread is scheduled sooner than a spinning one); after that each wait doubles, up to 1 ms, as
/// mpi4py's backoff does, so an idle rank costs about a thousand polls a second.
pub(crate) struct Backoff {
    wait: Duration,
    active_at: Instant,
}

impl Backoff {
    const SPIN: Duration = Duration::from_micros(50);
    const SHORT: Duration = Duration::from_millis(2);
    const STEP: Duration = Duration::from_micros(50);
    const MAX: Duration = Duration::from_millis(1);

    pub(crate) fn new() -> Self {
        Backoff {
            wait: Self::STEP,
            active_at: Instant::now(),
        }
    }

    /// Something happened: poll eagerly again for a while.
    pub(crate) fn reset(&mut self) {
        self.wait = Self::STEP;
        self.active_at = Instant::now();
    }

    /// How long to wait before the next poll: zero (just yield) right after the last message, then short sleeps,
    /// then doubling ones.
    pub(crate) fn next(&mut self) -> Duration {
        let idle = self.active_at.elapsed();
        if idle < Self::SPIN {
            return Duration::ZERO;
        }
        if idle < Self::SHORT {
            return Self::STEP;
        }
        let wait = self.wait;
        self.wait = (self.wait * 2).min(Self::MAX);
        wait
    }

    /// Waits as [`next`](Self::next) says: yields, or sleeps.
    pub(crate) fn pause(&mut self) {
        match self.next() {
            Duration::ZERO => std::thread::yield_now(),
            wait => std::thread::sleep(wait),
        }
    }
}
