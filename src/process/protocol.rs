//! The wire protocol between the pool and its workers: length-prefixed postcard frames on a private socket.
//!
//! A frame is a little-endian `u32` body length, then the body: a postcard-encoded header ([`Call`] from the
//! parent, [`Reply`] from a worker), then, for calls and successful replies, the postcard-encoded argument or
//! result. Bodies longer than the pool's maximum frame size are refused on both sides before anything is
//! allocated for them, so a corrupt length cannot exhaust memory. The first frame a worker sends is a
//! [`Hello`], which the parent checks (magic, version, token, build identity) before sending any task.

use std::fmt;
use std::io::{self, Read, Write};
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// The first bytes of every hello: a worker speaking something else is not ours.
pub(crate) const MAGIC: [u8; 8] = *b"cfpool\0\x01";

/// Bumped whenever a frame's layout changes.
pub(crate) const VERSION: u32 = 2;

/// The default maximum body size of one frame: 1 GiB.
pub(crate) const DEFAULT_MAX_FRAME: usize = 1 << 30;

/// Bytes of the length prefix.
pub(crate) const PREFIX: usize = 4;

/// A task for a worker; the argument follows in the frame.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Call<'a> {
    /// The pool's id of the task, echoed in the reply.
    pub(crate) id: u64,
    /// The registered name of the function (`std::any::type_name` of its type).
    pub(crate) name: &'a str,
    /// Whether the argument is a `Vec` of inputs to map the function over (one frame per `map` chunk).
    pub(crate) chunk: bool,
}

/// A message from a worker; the result follows a `Done` with [`Status::Ok`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The worker's first message.
    Hello(Hello),
    /// A task finished.
    Done {
        /// The id from the [`Call`].
        id: u64,
        /// How it finished.
        status: Status,
    },
}

/// How a task finished in the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Status {
    /// It returned; the encoded result follows.
    Ok,
    /// It panicked: the message and location.
    Panicked(String),
    /// The worker has no function by that name.
    UnknownTask(String),
    /// The argument could not be decoded or the result encoded.
    Serialization(String),
    /// The encoded result is larger than the maximum frame size.
    TooLarge(String),
}

/// A worker's introduction: who it is and which build it runs.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// [`MAGIC`].
    pub(crate) magic: [u8; 8],
    /// [`VERSION`].
    pub(crate) version: u32,
    /// The token the parent put in the worker's environment.
    pub(crate) token: String,
    /// The worker's build identity.
    pub(crate) identity: Identity,
    /// The worker's pid, as it sees it.
    pub(crate) pid: u32,
    /// Why the worker's task registry is unusable, if it is.
    pub(crate) registry_error: Option<String>,
}

/// What identifies a build of the program: its registered task names and its executable file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// How many functions are registered.
    pub(crate) tasks: u64,
    /// An FNV-1a hash of the sorted registered names.
    pub(crate) names_hash: u64,
    /// The executable's size in bytes (0 if unknown).
    pub(crate) exe_size: u64,
    /// The executable's modification time in nanoseconds since the epoch (0 if unknown).
    pub(crate) exe_mtime: u128,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} registered tasks (names hash {:016x}), executable of {} bytes modified at {} ns",
            self.tasks, self.names_hash, self.exe_size, self.exe_mtime
        )
    }
}

/// 64-bit FNV-1a: a stable hash, the same in every build (unlike std's `DefaultHasher`).
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>, mut hash: u64) -> u64 {
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The FNV-1a offset basis.
pub(crate) const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A frame being built: the length prefix is filled in by [`FrameBuf::finish`].
pub(crate) struct FrameBuf {
    bytes: Vec<u8>,
}

impl FrameBuf {
    /// A frame whose body starts with `header`.
    pub(crate) fn new<H: Serialize>(header: &H) -> Result<Self, postcard::Error> {
        let mut bytes = vec![0; PREFIX];
        postcard::to_io(header, &mut bytes)?;
        Ok(FrameBuf { bytes })
    }

    /// The length of the frame so far.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends `value`, encoded; on failure the frame is left as it was.
    pub(crate) fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), postcard::Error> {
        let before = self.bytes.len();
        let result = postcard::to_io(value, &mut self.bytes).map(|_| ());
        if result.is_err() {
            self.bytes.truncate(before);
        }
        result
    }

    /// Appends bytes encoded elsewhere (an argument the MPI pool received already encoded).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn extend(&mut self, encoded: &[u8]) {
        self.bytes.extend_from_slice(encoded);
    }

    /// Cuts the frame back to `len` bytes (undoing pushes).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.bytes.truncate(len);
    }

    /// Fills in the length prefix: an error if the body is longer than `max` bytes.
    pub(crate) fn finish(mut self, max: usize) -> Result<Vec<u8>, usize> {
        let body = self.bytes.len() - PREFIX;
        if body > max || body > u32::MAX as usize {
            return Err(body);
        }
        self.bytes[..PREFIX].copy_from_slice(&(body as u32).to_le_bytes());
        Ok(self.bytes)
    }
}

/// Why no frame could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the socket at a frame boundary.
    Eof,
    /// The peer announced a body longer than the maximum.
    TooLarge(usize),
    /// The peer sent part of a frame and then nothing more for the stall limit: `got` of `want` bytes (length
    /// prefix included) arrived.
    Stalled {
        /// Bytes of the frame that arrived.
        got: usize,
        /// Bytes the frame needs.
        want: usize,
    },
    /// The socket failed, or closed in the middle of a frame.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Eof => f.write_str("end of stream"),
            ReadError::TooLarge(n) => {
                write!(f, "a frame of {n} bytes exceeds the maximum frame size")
            }
            ReadError::Stalled { got, want } => write!(
                f,
                "stopped in the middle of a frame ({got} of its {want} bytes arrived, then nothing more)"
            ),
            ReadError::Io(error) => write!(f, "{error}"),
        }
    }
}

/// Reads frames from a stream through a buffer, telling the stream whether it is waiting between frames (which
/// may take as long as a task runs) or in the middle of one (which a sound peer never makes it do for long).
pub(crate) struct FrameReader {
    buf: Box<[u8]>,
    /// The buffered bytes not yet returned.
    pending: Range<usize>,
    /// The body of the last frame, when it was too large for `buf`.
    big: Vec<u8>,
}

/// The read buffer's size: every frame up to this size (length prefix included) is read through it.
const READ_BUFFER: usize = 64 * 1024;

impl FrameReader {
    pub(crate) fn new() -> Self {
        FrameReader {
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            pending: 0..0,
            big: Vec::new(),
        }
    }

    /// Reads the next frame's body (at most `max` bytes). `read(buf, mid_frame)` reads from the stream into
    /// `buf`; `mid_frame` says whether part of a frame has arrived already, so that the stream can give up with
    /// `WouldBlock` or `TimedOut` if the rest does not come (reported as [`ReadError::Stalled`]).
    pub(crate) fn next(
        &mut self,
        max: usize,
        mut read: impl FnMut(&mut [u8], bool) -> io::Result<usize>,
    ) -> Result<&[u8], ReadError> {
        if self.big.capacity() > READ_BUFFER {
            self.big = Vec::new();
        }
        while self.pending.len() < PREFIX {
            self.compact(PREFIX);
            let got = self.pending.len();
            let end = self.pending.end;
            let n = read_some(&mut read, &mut self.buf[end..], got > 0, got, PREFIX)?;
            if n == 0 {
                return Err(if got == 0 {
                    ReadError::Eof
                } else {
                    ReadError::Io(io::ErrorKind::UnexpectedEof.into())
                });
            }
            self.pending.end += n;
        }
        let start = self.pending.start;
        let mut prefix = [0u8; PREFIX];
        prefix.copy_from_slice(&self.buf[start..start + PREFIX]);
        let len = u32::from_le_bytes(prefix) as usize;
        if len > max {
            return Err(ReadError::TooLarge(len));
        }
        let want = PREFIX + len;
        if want <= self.buf.len() {
            self.compact(want);
            while self.pending.len() < want {
                let (got, end) = (self.pending.len(), self.pending.end);
                let n = read_some(&mut read, &mut self.buf[end..], true, got, want)?;
                if n == 0 {
                    return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                self.pending.end += n;
            }
            let body = self.pending.start + PREFIX..self.pending.start + want;
            self.pending.start += want;
            return Ok(&self.buf[body]);
        }
        // Too large for the buffer: read the body straight into a vector of its size.
        let mut big = std::mem::take(&mut self.big);
        big.clear();
        big.try_reserve_exact(len)
            .map_err(|_| ReadError::Io(io::ErrorKind::OutOfMemory.into()))?;
        big.extend_from_slice(&self.buf[self.pending.start + PREFIX..self.pending.end]);
        self.pending = 0..0;
        let mut got = big.len();
        big.resize(len, 0);
        while got < len {
            let n = read_some(&mut read, &mut big[got..], true, PREFIX + got, want)?;
            if n == 0 {
                return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            got += n;
        }
        self.big = big;
        Ok(&self.big)
    }

    /// Makes room for `want` bytes from the start of the pending ones.
    fn compact(&mut self, want: usize) {
        if self.pending.is_empty() {
            self.pending = 0..0;
        } else if self.pending.start + want > self.buf.len() {
            let len = self.pending.len();
            self.buf.copy_within(self.pending.clone(), 0);
            self.pending = 0..len;
        }
    }
}

/// One read, retried when interrupted; a give-up of the stream in the middle of a frame is a stall.
fn read_some(
    read: &mut impl FnMut(&mut [u8], bool) -> io::Result<usize>,
    buf: &mut [u8],
    mid_frame: bool,
    got: usize,
    want: usize,
) -> Result<usize, ReadError> {
    loop {
        match read(buf, mid_frame) {
            Ok(n) => return Ok(n),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error)
                if mid_frame
                    && matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                return Err(ReadError::Stalled { got, want });
            }
            Err(error) => return Err(ReadError::Io(error)),
        }
    }
}

/// Reads one frame's body (at most `max` bytes).
pub(crate) fn read_frame(reader: &mut impl Read, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut prefix = [0u8; PREFIX];
    let mut filled = 0;
    while filled < PREFIX {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Err(ReadError::Eof),
            Ok(0) => {
                return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(ReadError::Io(error)),
        }
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(ReadError::TooLarge(len));
    }
    let mut body = Vec::new();
    body.try_reserve_exact(len)
        .map_err(|_| ReadError::Io(io::ErrorKind::OutOfMemory.into()))?;
    let read = reader
        .take(len as u64)
        .read_to_end(&mut body)
        .map_err(ReadError::Io)?;
    if read != len {
        return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(body)
}

/// Writes a finished frame.
pub(crate) fn write_frame(mut writer: impl Write, frame: &[u8]) -> io::Result<()> {
    writer.write_all(frame)?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_oversized_bodies() {
        let mut frame = FrameBuf::new(&Call {
            id: 7,
            name: "a::b",
            chunk: false,
        })
        .unwrap();
        frame.push(&vec![1u32, 2, 3]).unwrap();
        let bytes = frame.finish(1024).unwrap();
        let body = read_frame(&mut &bytes[..], 1024).unwrap();
        let (call, rest) = postcard::take_from_bytes::<Call<'_>>(&body).unwrap();
        assert_eq!((call.id, call.name, call.chunk), (7, "a::b", false));
        assert_eq!(postcard::from_bytes::<Vec<u32>>(rest).unwrap(), [1, 2, 3]);

        assert!(matches!(
            read_frame(&mut &bytes[..], 3),
            Err(ReadError::TooLarge(_))
        ));
        assert!(matches!(read_frame(&mut &[][..], 3), Err(ReadError::Eof)));
        assert!(matches!(
            read_frame(&mut &bytes[..6], 1024),
            Err(ReadError::Io(_))
        ));
        let big = FrameBuf::new(&vec![0u8; 100]).unwrap();
        assert_eq!(big.finish(10), Err(101));
    }

    /// Serves `bytes` a few at a time (`step`), then end of stream; or, with `stall`, `WouldBlock` where the bytes
    /// end, as a stream with a read limit does.
    fn chunks(
        bytes: Vec<u8>,
        step: usize,
        stall: bool,
    ) -> impl FnMut(&mut [u8], bool) -> io::Result<usize> {
        let mut at = 0;
        move |buf, _| {
            if at == bytes.len() && stall {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = step.min(buf.len()).min(bytes.len() - at);
            buf[..n].copy_from_slice(&bytes[at..at + n]);
            at += n;
            Ok(n)
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut bytes = (body.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn frame_reader_reads_small_and_large_frames_in_pieces() {
        // Larger than the reader's buffer, so it goes through the big-frame path (by less under Miri, which runs
        // each byte's work a thousand times slower).
        let len = if cfg!(miri) {
            READ_BUFFER + 4096
        } else {
            200_000
        };
        let large: Vec<u8> = (0..len).map(|i| i as u8).collect();
        for step in [1, 3, 4096, 1 << 20] {
            // Under Miri a read costs about a millisecond: the byte-at-a-time passes leave the large frame out
            // (200,000 reads took 5 minutes of CI); the others still read it in pieces.
            let with_large = !cfg!(miri) || step >= 4096;
            let mut stream = frame(b"one");
            if with_large {
                stream.extend(frame(&large));
            }
            stream.extend(frame(b""));
            stream.extend(frame(b"last"));
            let mut reader = FrameReader::new();
            let mut read = chunks(stream, step, false);
            assert_eq!(reader.next(1 << 20, &mut read).unwrap(), b"one");
            if with_large {
                assert_eq!(reader.next(1 << 20, &mut read).unwrap(), &large[..]);
            }
            assert_eq!(reader.next(1 << 20, &mut read).unwrap(), b"");
            assert_eq!(reader.next(1 << 20, &mut read).unwrap(), b"last");
            assert!(matches!(
                reader.next(1 << 20, &mut read),
                Err(ReadError::Eof)
            ));
        }
    }

    #[test]
    fn frame_reader_reports_stalls_and_truncation() {
        // A header announcing 24 bytes, then 2: a stall in the middle of the frame.
        let mut reader = FrameReader::new();
        let mut read = chunks(vec![24, 0, 0, 0, 1, 2], 4, true);
        assert!(matches!(
            reader.next(1024, &mut read),
            Err(ReadError::Stalled { got: 6, want: 28 })
        ));
        // Mid-prefix.
        let mut reader = FrameReader::new();
        let mut read = chunks(vec![24, 0], 4, true);
        assert!(matches!(
            reader.next(1024, &mut read),
            Err(ReadError::Stalled { got: 2, want: 4 })
        ));
        // End of stream in the middle of a frame, and an oversized announcement.
        assert!(matches!(
            FrameReader::new().next(1024, chunks(vec![24, 0, 0, 0, 1], 4, false)),
            Err(ReadError::Io(_))
        ));
        assert!(matches!(
            FrameReader::new().next(10, chunks(frame(&[0; 11]), 64, false)),
            Err(ReadError::TooLarge(11))
        ));
        // Waiting between frames is never a stall: the stream is told so.
        let mut reader = FrameReader::new();
        let mut mids = Vec::new();
        let bytes = frame(b"ab");
        let mut at = 0;
        let read = |buf: &mut [u8], mid: bool| {
            mids.push(mid);
            let n = 1.min(bytes.len() - at);
            buf[..n].copy_from_slice(&bytes[at..at + n]);
            at += n;
            Ok(n)
        };
        assert_eq!(reader.next(1024, read).unwrap(), b"ab");
        assert_eq!(mids, [false, true, true, true, true, true]);
    }
}
