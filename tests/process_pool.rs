//! Process pool tests. This is a `harness = false` test binary: its own `main` holds the worker-mode line (the
//! pool re-runs this very executable as its workers), then runs the test cases one by one and prints a
//! libtest-like summary. `cargo test --test process_pool [FILTER]` runs it.
//!
//! Nothing here synchronises with sleeps: tasks report to the test through loopback TCP connections, and block
//! on them. Only the timeout tests have tasks that sleep, as the work being timed out. Every test that could hang
//! if the pool broke its promises waits with a bound, so a hang fails the test instead of stalling the run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use concurrent_futures::{
    Error, Executor, Future, MapOptions, ProcessPoolExecutor, Registry, ReturnWhen,
    ThreadPoolExecutor, as_completed, wait,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// ---------------------------------------------------------------------------------------------------------------
// Tasks (registered in `main`)

fn square(x: u64) -> u64 {
    x * x
}

fn square_or_panic_at_4(x: u64) -> u64 {
    if x == 4 {
        panic!("item {x}");
    }
    x * x
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn abort_task(_: ()) {
    std::process::abort();
}

fn exit_task(code: i32) {
    std::process::exit(code);
}

fn panic_task(message: String) -> u32 {
    panic!("{message}");
}

/// Sleeps: the work a timeout test times out.
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Connects to the test's socket at `path`, sends this worker's pid, then blocks until the test closes the
/// connection (or kills this worker). Returns the pid.
fn report_and_block(address: String) -> u32 {
    let mut stream = TcpStream::connect(&address).expect("the test listens");
    stream
        .write_all(&std::process::id().to_le_bytes())
        .expect("the test reads");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    std::process::id()
}

fn flip(mut bytes: Vec<u8>) -> Vec<u8> {
    for byte in &mut bytes {
        *byte = !*byte;
    }
    bytes
}

fn make_bytes(len: usize) -> Vec<u8> {
    vec![7; len]
}

fn print_task(n: u32) -> u32 {
    println!("hello from worker {} task {n}", std::process::id());
    n
}

static INIT_VALUE: AtomicU32 = AtomicU32::new(0);

fn init_ok(value: u32) -> Result<(), String> {
    INIT_VALUE.store(value, Ordering::SeqCst);
    Ok(())
}

fn init_fail(_: ()) -> Result<(), String> {
    Err("no database".into())
}

fn read_init(_: ()) -> u32 {
    INIT_VALUE.load(Ordering::SeqCst)
}

/// Encodes as a byte that its decoder refuses.
#[derive(Debug)]
struct Undecodable;

impl Serialize for Undecodable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(7)
    }
}

impl<'de> Deserialize<'de> for Undecodable {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("this type never decodes"))
    }
}

fn bad_result(_: ()) -> Undecodable {
    Undecodable
}

/// Its `Deserialize` panics (in the parent, which must survive it).
#[derive(Debug)]
struct PanicsWhenDecoded;

impl Serialize for PanicsWhenDecoded {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(1)
    }
}

impl<'de> Deserialize<'de> for PanicsWhenDecoded {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("decoder exploded");
    }
}

fn panicking_decode(_: ()) -> PanicsWhenDecoded {
    PanicsWhenDecoded
}

/// Its `Serialize` panics (in the worker, which must survive it).
#[derive(Debug)]
struct PanicsWhenEncoded;

impl Serialize for PanicsWhenEncoded {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("encoder exploded");
    }
}

impl<'de> Deserialize<'de> for PanicsWhenEncoded {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(PanicsWhenEncoded)
    }
}

fn panicking_encode(_: ()) -> PanicsWhenEncoded {
    PanicsWhenEncoded
}

/// Writes a bad frame on this worker's own protocol socket, as a corrupted or foreign worker would: 0, an
/// undecodable body; 1, an oversized length; 2, a well-formed reply to a task it was never given. The real reply
/// follows the bad frame.
fn corrupt_protocol(kind: u8) {
    let frame: Vec<u8> = match kind {
        0 => vec![3, 0, 0, 0, 0xff, 0xff, 0xff],
        1 => vec![0xf0, 0xff, 0xff, 0xff],
        _ => vec![3, 0, 0, 0, 1, 99, 0],
    };
    protocol_socket::write(&frame);
}

/// Shuts the read side of this worker's protocol socket: the task's reply still goes out, but the next frame the
/// pool sends fails at once (EPIPE on Linux), and the worker exits at its next read.
#[cfg(unix)]
fn shut_my_reads(_: ()) -> u32 {
    use std::os::fd::FromRawFd;
    let fd = protocol_socket::fd();
    // SAFETY: the fd named by the invitation is this worker's protocol socket, open for the worker's lifetime;
    // `ManuallyDrop` keeps this borrowed view from closing it.
    let socket = std::mem::ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(fd) });
    socket.shutdown(std::net::Shutdown::Read).unwrap();
    std::process::id()
}

/// This worker's own protocol socket, reached as a broken or foreign piece of code in the worker would.
#[cfg(unix)]
mod protocol_socket {
    use std::os::unix::net::UnixStream;

    /// Its fd, from the pool's invitation (`{parent}:{fd}:...`).
    pub fn fd() -> i32 {
        let invitation = std::env::var("CONCURRENT_FUTURES_WORKER").expect("run by a pool");
        invitation.split(':').nth(1).unwrap().parse().unwrap()
    }

    pub fn write(bytes: &[u8]) {
        // SAFETY: the fd named by the invitation is this worker's protocol socket, open for the worker's
        // lifetime; it is only borrowed for this write.
        let socket = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd()) };
        rustix::io::write(socket, bytes).expect("write to the protocol socket");
    }

    /// Closes the worker's fd under its feet, as a buggy task might (the worker is killed before it uses it again).
    pub fn close() {
        // SAFETY: see above; the fd is not used by this process again.
        unsafe { rustix::io::close(fd()) };
    }

    pub fn shutdown_both() {
        use std::os::fd::FromRawFd;
        // SAFETY: the fd is this worker's open protocol socket; `ManuallyDrop` keeps this view from closing it.
        let socket = std::mem::ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(fd()) });
        socket.shutdown(std::net::Shutdown::Both).expect("shutdown");
    }
}

/// This worker's own protocol socket, reached as a broken or foreign piece of code in the worker would: found
/// among the process's handles as the socket connected to the pool's port (`{parent}:{port}:...`).
#[cfg(windows)]
mod protocol_socket {
    use windows_sys::Win32::Networking::WinSock::{
        SD_BOTH, SOCKADDR, SOCKADDR_IN, SOCKET, closesocket, getpeername, ntohs, send, shutdown,
    };

    fn socket() -> SOCKET {
        let invitation = std::env::var("CONCURRENT_FUTURES_WORKER").expect("run by a pool");
        let port: u16 = invitation.split(':').nth(1).unwrap().parse().unwrap();
        for handle in (4..1 << 16).step_by(4) {
            // SAFETY: `getpeername` fails cleanly on a value that is not a socket; the address buffer and its
            // length are valid.
            let peer = unsafe {
                let mut address: SOCKADDR_IN = std::mem::zeroed();
                let mut len = std::mem::size_of::<SOCKADDR_IN>() as i32;
                let found = getpeername(handle, (&raw mut address).cast::<SOCKADDR>(), &mut len);
                (found == 0).then(|| ntohs(address.sin_port))
            };
            if peer == Some(port) {
                return handle;
            }
        }
        panic!("no socket of this worker is connected to the pool's port {port}");
    }

    pub fn write(bytes: &[u8]) {
        // SAFETY: a connected socket of this process and a valid buffer.
        let sent = unsafe { send(socket(), bytes.as_ptr(), bytes.len() as i32, 0) };
        assert_eq!(sent, bytes.len() as i32, "write to the protocol socket");
    }

    pub fn close() {
        // SAFETY: closes the worker's socket under its feet, as a buggy task might.
        unsafe { closesocket(socket()) };
    }

    pub fn shutdown_both() {
        // SAFETY: a connected socket of this process.
        unsafe { shutdown(socket(), SD_BOTH) };
    }
}

/// Writes a frame header announcing 24 bytes followed by only 2, then returns: the worker's real reply follows,
/// and the pool is left waiting for the rest of a frame that never comes (issue 12.2).
fn truncated_frame(_: ()) {
    protocol_socket::write(&[24, 0, 0, 0, 1, 2]);
}

/// Leaves a thread behind in the worker that, when the test says so, writes a well-formed reply to a task this
/// worker never ran (task 1,000,000) on the protocol socket, then tells the test it did (issue 12.3).
fn stray_reply_later(address: String) -> u32 {
    let mut stream = TcpStream::connect(&address).expect("the test listens");
    stream
        .write_all(&std::process::id().to_le_bytes())
        .expect("the test reads");
    std::thread::spawn(move || {
        let mut go = [0u8; 1];
        if stream.read_exact(&mut go).is_ok() {
            // Done { id: 1_000_000 (varint c0 84 3d), status: Ok }
            protocol_socket::write(&[5, 0, 0, 0, 1, 0xc0, 0x84, 0x3d, 0]);
            let _ = stream.write_all(&[1]);
        }
    });
    std::process::id()
}

/// Closes this worker's protocol socket (`how` 0: close it; 1: shut it down both ways), then sleeps `ms`: the
/// work a per-task timeout must still stop (issue 12.4).
fn lose_socket_then_sleep((how, ms): (u8, u64)) -> u64 {
    if how == 0 {
        protocol_socket::close();
    } else {
        protocol_socket::shutdown_both();
    }
    sleep_ms(ms)
}

/// Reports to the test, forks without exec, and aborts; the forked copy (holding the worker's protocol socket)
/// lives on until the test closes the connection (issue 12.5).
#[cfg(unix)]
fn fork_then_abort(address: String) {
    use std::os::fd::AsRawFd;
    let mut stream = TcpStream::connect(&address).expect("the test listens");
    stream
        .write_all(&std::process::id().to_le_bytes())
        .expect("the test reads");
    let fd = stream.as_raw_fd();
    // SAFETY: the child only calls async-signal-safe functions (read, _exit) before it exits.
    match unsafe { libc::fork() } {
        0 => {
            let mut byte = 0u8;
            // SAFETY: `fd` is open in the child (inherited); reads into a live local byte.
            while unsafe { libc::read(fd, (&raw mut byte).cast(), 1) } > 0 {}
            // SAFETY: ends the forked copy without running any destructor or atexit handler.
            unsafe { libc::_exit(0) }
        }
        -1 => panic!("fork failed"),
        _ => std::process::abort(),
    }
}

/// Runs a pool of its own inside a worker: its workers are this worker's children.
fn nested_square(x: u64) -> (u64, u32) {
    let pool = ProcessPoolExecutor::new(1).expect("a pool inside a worker");
    let value = pool.submit(square, x).unwrap().into_result().unwrap();
    let grandchild = pool.submit(pid, ()).unwrap().into_result().unwrap();
    (value, grandchild)
}

fn not_registered(x: u32) -> u32 {
    x
}

fn only_in_parent(x: u32) -> u32 {
    x
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/// Children of this process, as (pid, state) from `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let state = fields.first().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.get(1).and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(me) {
            found.push((pid, state));
        }
    }
    found
}

/// Children of this process (zombies included), state unknown (`?`).
#[cfg(target_os = "macos")]
fn children() -> Vec<(u32, char)> {
    let mut pids = vec![0 as libc::pid_t; 4096];
    let size = (pids.len() * std::mem::size_of::<libc::pid_t>()) as libc::c_int;
    // SAFETY: the buffer holds `size` bytes of pid_t and lives across the call.
    let n = unsafe {
        libc::proc_listchildpids(
            std::process::id() as libc::pid_t,
            pids.as_mut_ptr().cast(),
            size,
        )
    };
    assert!(n >= 0, "proc_listchildpids failed");
    pids.truncate(n as usize);
    pids.into_iter().map(|pid| (pid as u32, '?')).collect()
}

/// Children of this process (`R`: a process whose parent is this one).
#[cfg(windows)]
fn children() -> Vec<(u32, char)> {
    use windows_sys::Win32::Foundation::{CloseHandle, INVALID_HANDLE_VALUE};
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW,
        TH32CS_SNAPPROCESS,
    };
    let me = std::process::id();
    let mut found = Vec::new();
    // SAFETY: a snapshot handle, closed below; the entry is initialised with its size as the API requires.
    unsafe {
        let snapshot = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
        assert!(
            snapshot != INVALID_HANDLE_VALUE,
            "CreateToolhelp32Snapshot failed"
        );
        let mut entry = PROCESSENTRY32W {
            dwSize: std::mem::size_of::<PROCESSENTRY32W>() as u32,
            ..Default::default()
        };
        let mut more = Process32FirstW(snapshot, &mut entry) != 0;
        while more {
            if entry.th32ParentProcessID == me && entry.th32ProcessID != me {
                found.push((entry.th32ProcessID, 'R'));
            }
            more = Process32NextW(snapshot, &mut entry) != 0;
        }
        CloseHandle(snapshot);
    }
    found
}

fn assert_no_children() {
    let left = children();
    assert!(
        left.is_empty(),
        "child processes left behind (pid, state): {left:?}"
    );
}

/// A listening socket a task can report to (loopback TCP, so it works on every platform).
struct Rendezvous {
    listener: TcpListener,
}

impl Rendezvous {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test socket");
        Rendezvous { listener }
    }

    /// The address a task connects to.
    fn path(&self) -> String {
        self.listener
            .local_addr()
            .expect("a bound socket")
            .to_string()
    }

    /// Waits for a task to connect; returns the connection and the pid it reported.
    fn accept(&self) -> (TcpStream, u32) {
        let (mut stream, _) = self.listener.accept().expect("a task connects");
        let mut pid = [0u8; 4];
        stream.read_exact(&mut pid).expect("the task sends its pid");
        (stream, u32::from_le_bytes(pid))
    }
}

/// Kills a worker from outside the pool, as `kill -9` does (`TerminateProcess` with exit status 9 on Windows).
#[cfg(unix)]
fn kill9(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a valid pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill the worker");
}

#[cfg(windows)]
fn kill9(pid: u32) {
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::System::Threading::{OpenProcess, PROCESS_TERMINATE, TerminateProcess};
    // SAFETY: the handle is checked, used once and closed.
    unsafe {
        let process = OpenProcess(PROCESS_TERMINATE, 0, pid);
        assert!(!process.is_null(), "open worker process {pid}");
        assert!(
            TerminateProcess(process, 9) != 0,
            "kill worker process {pid}"
        );
        CloseHandle(process);
    }
}

/// How a worker's end reads in [`Error::WorkerDied`], on each platform: it aborted; the pool killed it
/// (`kill_workers`, a timeout); the pool terminated it (`terminate_workers`); [`kill9`] killed it.
#[cfg(unix)]
mod died {
    pub const ABORTED: &str = "SIGABRT";
    pub const KILLED: &str = "SIGKILL";
    pub const TERMINATED: &str = "SIGTERM";
    pub const KILLED_FROM_OUTSIDE: &str = "SIGKILL";
}

#[cfg(windows)]
mod died {
    pub const ABORTED: &str = "0xC0000409";
    pub const KILLED: &str = "killed by the pool";
    pub const TERMINATED: &str = "terminated by the pool";
    pub const KILLED_FROM_OUTSIDE: &str = "exit status 9";
}

const LONG: Duration = Duration::from_secs(60);

fn result<T: Send + Sync + Clone + 'static>(future: &Future<T>) -> Result<T, Error> {
    future.result_timeout(LONG).cloned()
}

/// Runs `f` on a thread of its own and returns what it returns; fails the test if it takes longer than `limit`
/// (the thread is left behind), so a hang is a failure instead of a stalled run.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// The bound on what the fixed pool does at once (a hang past it is a failure).
const BOUND: Duration = Duration::from_secs(20);

fn pool(workers: usize) -> ProcessPoolExecutor {
    ProcessPoolExecutor::new(workers).expect("a pool")
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

/// Written once against the `Executor` trait; run against both pools.
fn work<E: Executor>(pool: &E) {
    let one = pool.submit(square, 7).unwrap();
    assert_eq!(one.result_timeout(LONG), Ok(&49));

    let squares: Vec<u64> = pool
        .map(square, 0..50)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(squares, (0..50).map(|x| x * x).collect::<Vec<_>>());

    let options = MapOptions::new().chunksize(8).buffersize(3).timeout(LONG);
    let chunked: Vec<u64> = pool
        .map_with(square, 0..100, options)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunked, (0..100).map(|x| x * x).collect::<Vec<_>>());

    let futures: Vec<Future<u64>> = (0..10)
        .map(|i| pool.submit(square, i))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        as_completed(&futures, Some(LONG))
            .filter(Result::is_ok)
            .count(),
        10
    );
    let (done, not_done) = wait(&futures, Some(LONG), ReturnWhen::AllCompleted);
    assert_eq!((done.len(), not_done.len()), (10, 0));
    let total: u64 = futures.into_iter().map(|f| f.into_result().unwrap()).sum();
    assert_eq!(total, (0..10).map(|x| x * x).sum::<u64>());

    pool.shutdown(true);
    assert!(matches!(pool.submit(square, 1), Err(Error::Shutdown)));
}

fn generic_work_on_thread_pool() {
    work(&ThreadPoolExecutor::new(2).unwrap());
}

fn generic_work_on_process_pool() {
    work(&pool(2));
}

/// The shared generic program of `tests/common` (the one `executor_generic.rs` runs on the thread pool).
fn shared_generic_work_on_process_pool() {
    common::generic::work(&pool(2)).unwrap();
}

fn map_10000_in_order_with_chunk_sizes() {
    let pool = pool(4);
    let expected: Vec<u64> = (0..10_000u64).map(|x| x * x).collect();
    for chunksize in [1, 7, 250, 1000, 20_000] {
        let options = MapOptions::new().chunksize(chunksize);
        let got: Vec<u64> = pool
            .map_with(square, 0..10_000u64, options)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, expected, "chunksize {chunksize}");
    }
    let buffered: Vec<u64> = pool
        .map_with(
            square,
            0..10_000u64,
            MapOptions::new().chunksize(100).buffersize(4),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(buffered, expected);
}

/// A panic on one item of a chunk yields the values of the items before it, then the panic (with its
/// location), and the map ends; CPython's process pool loses the whole chunk.
fn map_panic_in_a_chunk_keeps_the_items_before_it() {
    let pool = pool(2);
    let got: Vec<Result<u64, Error>> = pool
        .map_with(
            square_or_panic_at_4,
            0..9u64,
            MapOptions::new().chunksize(3),
        )
        .unwrap()
        .collect();
    assert_eq!(got[..4], [Ok(0), Ok(1), Ok(4), Ok(9)]);
    assert!(
        matches!(&got[4], Err(Error::Panicked { message }) if message.starts_with("item 4 (at ")),
        "{:?}",
        got[4]
    );
    assert_eq!(got.len(), 5, "the map ends at the error");
}

/// Several threads submit at once through clones of one pool: every task runs once, with its own result.
fn concurrent_submitters_lose_nothing() {
    let pool = pool(3);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let futures: Vec<Future<u64>> = (0..500)
                    .map(|i| pool.submit(square, t * 1000 + i).unwrap())
                    .collect();
                for (i, future) in (0..).zip(futures) {
                    assert_eq!(future.into_result_timeout(LONG), Ok((t * 1000 + i).pow(2)));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a submitting thread");
    }
    drop(pool);
    assert_no_children();
}

/// Submits `crash` among ordinary tasks: only its future fails, with an error `check` accepts.
fn crash_among_others(
    submit_crash: impl FnOnce(&ProcessPoolExecutor) -> Future<()>,
    check: impl Fn(&Error),
) {
    let pool = pool(2);
    let before: Vec<Future<u64>> = (0..20).map(|i| pool.submit(square, i).unwrap()).collect();
    let crashed = submit_crash(&pool);
    let after: Vec<Future<u64>> = (20..40).map(|i| pool.submit(square, i).unwrap()).collect();
    let error = crashed
        .result_timeout(LONG)
        .expect_err("the crashing task fails");
    check(&error);
    for (i, future) in (0..).zip(before.iter().chain(&after)) {
        assert_eq!(result(future), Ok(i * i));
    }
    // The pool keeps serving.
    assert_eq!(result(&pool.submit(square, 12).unwrap()), Ok(144));
    drop(pool);
    assert_no_children();
}

fn abort_fails_only_its_task() {
    crash_among_others(
        |pool| pool.submit(abort_task, ()).unwrap(),
        |error| match error {
            Error::WorkerDied { reason, .. } => {
                assert!(reason.contains(died::ABORTED), "{reason}")
            }
            other => panic!("expected WorkerDied, got {other:?}"),
        },
    );
}

fn exit_fails_only_its_task() {
    crash_among_others(
        |pool| pool.submit(exit_task, 3).unwrap(),
        |error| match error {
            Error::WorkerDied { reason, .. } => assert_eq!(reason, "exit status 3"),
            other => panic!("expected WorkerDied, got {other:?}"),
        },
    );
}

fn sigkill_from_outside_fails_only_its_task() {
    let rendezvous = Rendezvous::new();
    let pool = pool(2);
    let victim = pool.submit(report_and_block, rendezvous.path()).unwrap();
    let others: Vec<Future<u64>> = (0..30).map(|i| pool.submit(square, i).unwrap()).collect();
    let (_connection, victim_pid) = rendezvous.accept();
    assert!(pool.worker_pids().contains(&victim_pid));
    kill9(victim_pid);
    match victim.result_timeout(LONG) {
        Err(Error::WorkerDied { pid, reason }) => {
            assert_eq!(pid, victim_pid);
            assert!(reason.contains(died::KILLED_FROM_OUTSIDE), "{reason}");
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    for (i, future) in (0..).zip(&others) {
        assert_eq!(result(future), Ok(i * i));
    }
    assert_eq!(result(&pool.submit(square, 5).unwrap()), Ok(25));
    assert!(!pool.worker_pids().contains(&victim_pid));
    drop(pool);
    assert_no_children();
}

fn panic_is_an_error_with_message_and_location() {
    let pool = pool(1);
    let worker = result(&pool.submit(pid, ()).unwrap()).unwrap();
    match pool
        .submit(panic_task, "boom".to_string())
        .unwrap()
        .result_timeout(LONG)
    {
        Err(Error::Panicked { message }) => {
            assert!(message.contains("boom"), "{message}");
            assert!(message.contains("process_pool.rs:"), "{message}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    // The worker survived its task's panic.
    assert_eq!(result(&pool.submit(pid, ()).unwrap()), Ok(worker));
}

fn timeout_kills_and_replaces_the_worker() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    let first = result(&pool.submit(pid, ()).unwrap()).unwrap();
    let started = Instant::now();
    let slow = pool.submit(sleep_ms, 60_000).unwrap();
    assert!(
        matches!(
            slow.result_timeout(LONG),
            Err(Error::TaskTimeout { timeout, worker })
                if timeout == Duration::from_millis(1500) && worker.starts_with("pid ")
        ),
        "{:?}",
        slow.result_timeout(LONG)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let second = result(&pool.submit(pid, ()).unwrap()).unwrap();
    assert_ne!(first, second, "a new worker replaced the killed one");
    // A task within its time is unaffected.
    assert_eq!(result(&pool.submit(sleep_ms, 1).unwrap()), Ok(1));
    drop(pool);
    assert_no_children();
}

fn per_submit_timeout() {
    let pool = pool(1);
    let slow = pool
        .submit_with_timeout(sleep_ms, 60_000, Duration::from_millis(200))
        .unwrap();
    assert!(matches!(
        slow.result_timeout(LONG),
        Err(Error::TaskTimeout { .. })
    ));
    assert_eq!(result(&pool.submit(square, 3).unwrap()), Ok(9));
}

fn cancel_a_pending_task() {
    let rendezvous = Rendezvous::new();
    let pool = pool(1);
    let blocker = pool.submit(report_and_block, rendezvous.path()).unwrap();
    let (connection, worker) = rendezvous.accept();
    let queued = pool.submit(square, 3).unwrap();
    assert!(blocker.running());
    assert!(!blocker.cancel(), "a running task cannot be cancelled");
    assert!(queued.cancel());
    assert_eq!(queued.result(), Err(Error::Cancelled));
    drop(connection);
    assert_eq!(result(&blocker), Ok(worker));
    assert_eq!(result(&pool.submit(square, 4).unwrap()), Ok(16));
}

fn shutdown_cancels_queued_futures() {
    let rendezvous = Rendezvous::new();
    let pool = pool(1);
    let blocker = pool.submit(report_and_block, rendezvous.path()).unwrap();
    let (connection, _) = rendezvous.accept();
    let queued: Vec<Future<u64>> = (0..3).map(|i| pool.submit(square, i).unwrap()).collect();
    pool.shutdown_with(false, true);
    assert!(queued.iter().all(Future::cancelled));
    assert!(matches!(pool.submit(square, 1), Err(Error::Shutdown)));
    drop(connection);
    assert!(result(&blocker).is_ok());
    pool.shutdown(true);
    assert!(pool.worker_pids().is_empty());
    assert_no_children();
}

/// A done callback runs on one of the pool's own threads; `shutdown(true)` there must not wait for itself.
fn shutdown_from_a_done_callback_does_not_deadlock() {
    let rendezvous = Rendezvous::new();
    let pool = pool(1);
    let running = pool.submit(report_and_block, rendezvous.path()).unwrap();
    let (connection, _) = rendezvous.accept();
    let handle = pool.clone();
    let (tx, rx) = mpsc::channel();
    running.add_done_callback(move |_| {
        handle.shutdown(true);
        drop(handle);
        tx.send(()).unwrap();
    });
    drop(connection);
    rx.recv_timeout(LONG).expect("the callback returned");
    assert!(matches!(pool.submit(square, 1), Err(Error::Shutdown)));
    drop(pool);
    assert_no_children();
}

fn shutdown_without_cancel_runs_queued_tasks() {
    let pool = pool(2);
    let futures: Vec<Future<u64>> = (0..20).map(|i| pool.submit(square, i).unwrap()).collect();
    pool.shutdown(false);
    pool.shutdown(true);
    for (i, future) in (0..).zip(&futures) {
        assert!(future.done());
        assert_eq!(future.result(), Ok(&(i * i)));
    }
    assert_no_children();
}

fn kill_workers_fails_running_and_cancels_queued() {
    let rendezvous = Rendezvous::new();
    let pool = pool(1);
    let running = pool.submit(report_and_block, rendezvous.path()).unwrap();
    let (_connection, _) = rendezvous.accept();
    let queued = pool.submit(square, 2).unwrap();
    pool.kill_workers();
    match running.result_timeout(LONG) {
        Err(Error::WorkerDied { reason, .. }) => {
            assert!(reason.contains(died::KILLED), "{reason}")
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert!(queued.cancelled());
    assert!(matches!(pool.submit(square, 1), Err(Error::Shutdown)));
    drop(pool);
    assert_no_children();
}

fn terminate_workers_sends_sigterm() {
    let rendezvous = Rendezvous::new();
    let pool = pool(1);
    let running = pool.submit(report_and_block, rendezvous.path()).unwrap();
    let (_connection, _) = rendezvous.accept();
    pool.terminate_workers();
    match running.result_timeout(LONG) {
        Err(Error::WorkerDied { reason, .. }) => {
            assert!(reason.contains(died::TERMINATED), "{reason}")
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    drop(pool);
    assert_no_children();
}

fn max_tasks_per_child_replaces_workers() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..6)
        .map(|_| result(&pool.submit(pid, ()).unwrap()).unwrap())
        .collect();
    assert_eq!(pids[0], pids[1]);
    assert_eq!(pids[2], pids[3]);
    assert_eq!(pids[4], pids[5]);
    assert_ne!(pids[0], pids[2]);
    assert_ne!(pids[2], pids[4]);
    assert_ne!(pids[0], pids[4]);
    drop(pool);
    assert_no_children();
}

fn initializer_runs_in_every_worker() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(init_ok, 41)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    for _ in 0..4 {
        assert_eq!(result(&pool.submit(read_init, ()).unwrap()), Ok(41));
    }
}

fn initializer_failure_breaks_the_pool() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(init_fail, ())
        .build()
        .unwrap();
    // The first submit starts a worker, so it is accepted; later ones may find the pool broken already. Either
    // way each task ends with the initializer's failure, on its future or from `submit`.
    let first = pool.submit(square, 0).unwrap();
    let outcomes = std::iter::once(Ok(first))
        .chain((1..5).map(|i| pool.submit(square, i)))
        .map(|submitted| submitted.and_then(|future| future.result_timeout(LONG).cloned()));
    for outcome in outcomes {
        match outcome {
            Err(Error::Broken { reason }) => assert!(reason.contains("no database"), "{reason}"),
            other => panic!("expected Broken, got {other:?}"),
        }
    }
    match pool.submit(square, 1) {
        Err(Error::Broken { reason }) => assert!(reason.contains("no database"), "{reason}"),
        other => panic!("expected Broken, got {other:?}"),
    }
    drop(pool);
    assert_no_children();
}

fn unknown_and_unnameable_tasks_are_refused() {
    let pool = pool(1);
    assert!(matches!(
        pool.submit(not_registered, 1),
        Err(Error::UnknownTask(name)) if name.contains("not_registered")
    ));
    let pointer: fn(u64) -> u64 = square;
    assert!(matches!(
        pool.submit(pointer, 1),
        Err(Error::InvalidArgument(_))
    ));
    let offset = 5u64;
    assert!(matches!(
        pool.submit(move |x: u64| x + offset, 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        pool.map(not_registered, [1, 2]).map(|_| ()),
        Err(Error::UnknownTask(_))
    ));
    // The same through the `Executor` trait, which has no serde bounds and finds codecs in the registry.
    match Executor::submit(&pool, not_registered, 1) {
        Err(error @ Error::UnknownTask(_)) => {
            let message = error.to_string();
            assert!(message.contains("not_registered"), "{message}");
            assert!(message.contains("process_main!"), "{message}");
        }
        other => panic!("expected UnknownTask, got {other:?}"),
    }
    assert!(matches!(
        Executor::map(&pool, not_registered, [1, 2]).map(|_| ()),
        Err(Error::UnknownTask(_))
    ));
    assert!(matches!(
        Executor::submit(&pool, pointer, 1),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(
        Executor::submit(&pool, square, 3)
            .unwrap()
            .result_timeout(LONG)
            .cloned(),
        Ok(9)
    );
    assert_eq!(result(&pool.submit(square, 2).unwrap()), Ok(4));
    assert!(pool.worker_pids().len() <= 1);
}

fn registry_refuses_duplicates_and_pointers() {
    let twice = Registry::new().register(square).register(square).serve();
    assert!(matches!(twice, Err(Error::InvalidArgument(_))));
    let pointer: fn(u64) -> u64 = square;
    let refused = Registry::new().register(pointer).serve();
    assert!(matches!(refused, Err(Error::InvalidArgument(_))));
    // This process already installed its registry.
    assert!(matches!(
        Registry::new().register(square).serve(),
        Err(Error::InvalidState(_))
    ));
}

fn undecodable_result_is_a_serialization_error() {
    let pool = pool(1);
    let worker = result(&pool.submit(pid, ()).unwrap()).unwrap();
    match pool.submit(bad_result, ()).unwrap().result_timeout(LONG) {
        Err(Error::Serialization(what)) => assert!(what.contains("bad_result"), "{what}"),
        other => panic!("expected Serialization, got {other:?}"),
    }
    // Same worker, still in step.
    assert_eq!(result(&pool.submit(pid, ()).unwrap()), Ok(worker));
    match pool
        .submit(panicking_decode, ())
        .unwrap()
        .result_timeout(LONG)
    {
        Err(Error::Serialization(what)) => assert!(what.contains("decoder exploded"), "{what}"),
        other => panic!("expected Serialization, got {other:?}"),
    }
    match pool
        .submit(panicking_encode, ())
        .unwrap()
        .result_timeout(LONG)
    {
        Err(Error::Panicked { message }) => {
            assert!(message.contains("encoder exploded"), "{message}")
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(result(&pool.submit(pid, ()).unwrap()), Ok(worker));
}

fn payloads_of_64_mib_round_trip() {
    let pool = pool(1);
    let input: Vec<u8> = (0..64 << 20).map(|i: usize| (i % 251) as u8).collect();
    let future = pool.submit(flip, input.clone()).unwrap();
    let output = future
        .into_result_timeout(Duration::from_secs(300))
        .unwrap();
    assert_eq!(output.len(), input.len());
    assert!(output.iter().zip(&input).all(|(o, i)| *o == !*i));
}

fn oversized_frames_are_protocol_errors() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_frame_size(1 << 20)
        .build()
        .unwrap();
    match pool
        .submit(flip, vec![0u8; 2 << 20])
        .unwrap()
        .result_timeout(LONG)
    {
        Err(Error::Protocol(what)) => assert!(what.contains("maximum frame size"), "{what}"),
        other => panic!("expected Protocol, got {other:?}"),
    }
    match pool
        .submit(make_bytes, 2 << 20)
        .unwrap()
        .result_timeout(LONG)
    {
        Err(Error::Protocol(what)) => assert!(what.contains("maximum frame size"), "{what}"),
        other => panic!("expected Protocol, got {other:?}"),
    }
    assert_eq!(
        result(&pool.submit(make_bytes, 1000).unwrap()).map(|v| v.len()),
        Ok(1000)
    );
}

fn malformed_frames_from_a_worker_are_protocol_errors() {
    let pool = pool(1);
    let expected = ["malformed frame", "maximum frame size"];
    for (kind, what) in (0u8..).zip(expected) {
        match pool
            .submit(corrupt_protocol, kind)
            .unwrap()
            .result_timeout(LONG)
        {
            Err(Error::Protocol(message)) => assert!(message.contains(what), "{message}"),
            other => panic!("expected Protocol, got {other:?}"),
        }
        assert_eq!(result(&pool.submit(square, 6).unwrap()), Ok(36));
    }
    // A well-formed reply to a task the worker is not running is dropped: the task's own reply follows, in step.
    let worker = result(&pool.submit(pid, ()).unwrap()).unwrap();
    assert_eq!(result(&pool.submit(corrupt_protocol, 2).unwrap()), Ok(()));
    assert_eq!(result(&pool.submit(pid, ()).unwrap()), Ok(worker));
    drop(pool);
    assert_no_children();
}

/// A task handed to a worker that cannot take its frame goes back to the queue and runs on another worker,
/// instead of failing with the worker's death.
#[cfg(target_os = "linux")]
fn a_task_a_worker_cannot_take_runs_elsewhere() {
    let pool = pool(1);
    let first = pool.submit(shut_my_reads, ()).unwrap();
    let next = pool.submit(pid, ()).unwrap();
    let first = result(&first).unwrap();
    let next = result(&next).unwrap();
    assert_ne!(first, next, "the next task ran in a new worker");
    drop(pool);
    assert_no_children();
}

/// With tasks sent ahead, results still come in order, a crash or a timeout fails only the task that was
/// running (the ones sent ahead run on the replacement), and `kill_workers` cancels what had not started.
fn tasks_ahead_pipeline_and_survive_crashes() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .tasks_ahead(1)
        .build()
        .unwrap();
    let expected: Vec<u64> = (0..2000u64).map(|x| x * x).collect();
    let got: Vec<u64> = pool
        .map(square, 0..2000u64)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, expected);

    let crashes: Vec<Future<()>> = (0..3)
        .map(|_| pool.submit(abort_task, ()).unwrap())
        .collect();
    let others: Vec<Future<u64>> = (0..50).map(|i| pool.submit(square, i).unwrap()).collect();
    for crash in &crashes {
        assert!(matches!(
            crash.result_timeout(LONG),
            Err(Error::WorkerDied { .. })
        ));
    }
    for (i, future) in (0..).zip(&others) {
        assert_eq!(result(future), Ok(i * i));
    }

    let slow = pool
        .submit_with_timeout(sleep_ms, 60_000, Duration::from_millis(500))
        .unwrap();
    let after: Vec<Future<u64>> = (0..10).map(|i| pool.submit(square, i).unwrap()).collect();
    assert!(matches!(
        slow.result_timeout(LONG),
        Err(Error::TaskTimeout { .. })
    ));
    for (i, future) in (0..).zip(&after) {
        assert_eq!(result(future), Ok(i * i));
    }
    drop(pool);
    assert_no_children();

    let rendezvous = Rendezvous::new();
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .tasks_ahead(1)
        .build()
        .unwrap();
    let running = pool.submit(report_and_block, rendezvous.path()).unwrap();
    let (_connection, _) = rendezvous.accept();
    let ahead = pool.submit(square, 2).unwrap();
    let queued = pool.submit(square, 3).unwrap();
    pool.kill_workers();
    assert!(matches!(
        running.result_timeout(LONG),
        Err(Error::WorkerDied { .. })
    ));
    assert_eq!(ahead.result_timeout(LONG), Err(Error::Cancelled));
    assert_eq!(queued.result_timeout(LONG), Err(Error::Cancelled));
    drop(pool);
    assert_no_children();
}

/// Runs this test binary with `args` and returns its stdout.
fn run_self(args: &[&str]) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn worker_prints_reach_stdout() {
    let stdout = run_self(&["--scenario-print"]);
    for n in 0..3 {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with("hello from worker")
                    && line.ends_with(&format!("task {n}"))),
            "{stdout}"
        );
    }
    assert!(stdout.contains("print scenario: [0, 1, 2]"), "{stdout}");
}

fn scenario_print() {
    let pool = pool(2);
    let results: Vec<u32> = pool
        .map(print_task, 0..3)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    pool.shutdown(true);
    println!("print scenario: {results:?}");
}

fn build_mismatch_is_a_protocol_error() {
    let stdout = run_self(&["--mismatch-parent"]);
    assert!(stdout.contains("mismatch scenario: Protocol"), "{stdout}");
    assert!(stdout.contains("different build"), "{stdout}");
}

fn scenario_mismatch() {
    let pool = pool(1);
    let outcome = pool
        .submit(square, 3)
        .unwrap()
        .result_timeout(LONG)
        .cloned();
    match outcome {
        Err(Error::Protocol(what)) => println!("mismatch scenario: Protocol: {what}"),
        other => println!("mismatch scenario: unexpected {other:?}"),
    }
    match pool.submit(square, 3) {
        Err(error) => println!("later submit: {error}"),
        Ok(_) => println!("later submit: accepted"),
    }
}

/// The parent is killed (`SIGKILL`, `TerminateProcess`) while its worker runs a task: the worker must not outlive
/// it (Linux: `PR_SET_PDEATHSIG`; every Unix: the worker's lifeline; Windows: the pool's job object). The worker
/// holds a connection to this test; its end of stream is the worker's death.
fn workers_die_with_their_parent() {
    let rendezvous = Rendezvous::new();
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .args(["--scenario-orphan", &rendezvous.path()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("start the parent scenario");
    let (mut connection, worker) = rendezvous.accept();
    assert_ne!(worker, parent.id());
    parent.kill().expect("kill the parent");
    parent.wait().expect("reap the parent");
    // A guard against hanging if the worker survives, not a synchronisation.
    connection
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    match connection.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(error) => panic!("worker {worker} outlived its parent ({error})"),
    }
}

fn scenario_orphan(path: String) {
    let pool = pool(1);
    let _task = pool.submit(report_and_block, path).unwrap();
    // Wait to be killed by the test (stdin is a pipe the test never writes to).
    let mut buf = [0u8; 1];
    let _ = std::io::stdin().read(&mut buf);
    std::process::exit(0);
}

/// An invitation that does not name this process's parent (inherited by accident, or typed by hand) never
/// enters worker mode: the program runs normally.
fn stray_invitation_does_not_enter_worker_mode() {
    let output = Command::new(std::env::current_exe().unwrap())
        .arg("--scenario-print")
        .env("CONCURRENT_FUTURES_WORKER", "1:3:1048576:0123456789abcdef")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("print scenario: [0, 1, 2]"), "{stdout}");
}

/// A worker started by hand, as the pool starts one (but without Linux's parent-death signal): our end of its
/// protocol socket, and the write end of its lifeline pipe.
#[cfg(unix)]
fn worker_by_hand() -> (std::process::Child, UnixStream, std::io::PipeWriter) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let (ours, theirs) = UnixStream::pair().unwrap();
    let (lifeline, lifeline_writer) = std::io::pipe().unwrap();
    let (fd, lifeline_fd) = (theirs.as_raw_fd(), lifeline.as_raw_fd());
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env(
        "CONCURRENT_FUTURES_WORKER",
        format!(
            "{}:{fd}:1048576:test-token:{lifeline_fd}",
            std::process::id()
        ),
    );
    // SAFETY: runs in the forked child before exec and only calls fcntl (async-signal-safe, no allocation) on
    // fds that are open there, because `theirs` and `lifeline` are alive in the parent until `spawn` returns.
    unsafe {
        command.pre_exec(move || {
            for fd in [fd, lifeline_fd] {
                let borrowed = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    let child = command.spawn().expect("start a worker by hand");
    (child, ours, lifeline_writer)
}

/// A worker started by hand, as the pool starts one (but outside any job object): our end of its connection.
#[cfg(windows)]
fn worker_by_hand() -> (std::process::Child, TcpStream, ()) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let child = Command::new(std::env::current_exe().unwrap())
        .env(
            "CONCURRENT_FUTURES_WORKER",
            format!("{}:{port}:1048576:test-token", std::process::id()),
        )
        .spawn()
        .expect("start a worker by hand");
    let (ours, _) = listener.accept().expect("the worker connects");
    (child, ours, ())
}

fn read_raw_frame(stream: &mut impl Read) -> Vec<u8> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("a frame");
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    stream.read_exact(&mut body).expect("a frame body");
    body
}

/// Speaks the wire protocol by hand to a worker started like the pool starts one: it says hello first, and
/// answers a call of an unknown name with `UnknownTask` (the pool itself refuses such a submit earlier).
fn worker_answers_unknown_names_with_unknown_task() {
    let (mut child, mut ours, _lifeline) = worker_by_hand();
    let hello = read_raw_frame(&mut ours);
    assert_eq!(hello[0], 0, "the first frame is a hello");
    assert_eq!(&hello[1..9], b"cfpool\0\x01", "with the protocol's magic");

    // Call { id: 5, name: "nope", chunk: false }, and an empty argument.
    let call = [5, 4, b'n', b'o', b'p', b'e', 0];
    let mut frame = (call.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&call);
    ours.write_all(&frame).unwrap();
    // Done { id: 5, status: UnknownTask("nope") }
    assert_eq!(
        read_raw_frame(&mut ours),
        [1, 5, 2, 4, b'n', b'o', b'p', b'e']
    );

    drop(ours);
    let status = within(BOUND, "the worker's exit", move || child.wait().unwrap());
    assert!(
        status.success(),
        "the worker exits cleanly at end of stream: {status}"
    );
}

/// A worker whose pool's process is gone exits even while its socket stays open (here: held by the test), through
/// its lifeline: what replaces Linux's parent-death signal on macOS, checked here without that signal.
#[cfg(unix)]
fn worker_exits_when_its_lifeline_breaks() {
    let (mut child, mut ours, lifeline) = worker_by_hand();
    let hello = read_raw_frame(&mut ours);
    assert_eq!(hello[0], 0, "the first frame is a hello");
    drop(lifeline);
    let status = within(BOUND, "the orphaned worker's exit", move || {
        child.wait().unwrap()
    });
    assert_eq!(status.code(), Some(71), "{status}");
    drop(ours);
}

/// Workers that never reach the worker-mode line are killed after the startup timeout, and the pool reports
/// why instead of hanging.
fn silent_workers_break_the_pool_with_a_reason() {
    let output = Command::new(std::env::current_exe().unwrap())
        .arg("--scenario-slow-start")
        .env("CF_TEST_SLOW_START", "1")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("slow start scenario: Broken"), "{stdout}");
    assert!(stdout.contains("did not start serving"), "{stdout}");
}

fn scenario_slow_start() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .startup_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let outcome = pool
        .submit(square, 3)
        .unwrap()
        .result_timeout(LONG)
        .cloned();
    match outcome {
        Err(Error::Broken { reason }) => println!("slow start scenario: Broken: {reason}"),
        other => println!("slow start scenario: unexpected {other:?}"),
    }
    drop(pool);
    assert_no_children();
}

fn a_worker_can_run_a_pool_of_its_own() {
    let pool = pool(1);
    let worker = result(&pool.submit(pid, ()).unwrap()).unwrap();
    let (value, grandchild) = result(&pool.submit(nested_square, 11).unwrap()).unwrap();
    assert_eq!(value, 121);
    assert_ne!(grandchild, worker);
    assert_ne!(grandchild, std::process::id());
    drop(pool);
    assert_no_children();
}

fn async_await_a_process_future() {
    let pool = pool(1);
    let future = pool.submit(square, 9).unwrap();
    assert_eq!(pollster::block_on(future), Ok(81));
}

fn no_children_left_at_the_end() {
    assert_no_children();
}

/// The fds this process had open before the first test (Linux).
static FDS_AT_START: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// This process's open fds and what they are, from `/proc/self/fd` (empty elsewhere: under Wine, that directory
/// lists Wine's own descriptors, not the program's handles).
fn open_fds() -> Vec<String> {
    if !cfg!(target_os = "linux") {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<String> = dir
        .filter_map(Result::ok)
        .map(|entry| {
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            format!(
                "{} -> {}",
                entry.file_name().to_string_lossy(),
                target.display()
            )
        })
        // The directory being listed.
        .filter(|fd| !fd.ends_with("/fd"))
        .collect();
    fds.sort();
    fds
}

/// Every pool was dropped by now: none of their sockets, pipes or listeners may be left open.
fn no_fds_left_at_the_end() {
    let Some(start) = FDS_AT_START.get() else {
        return;
    };
    let now = open_fds();
    let leaked: Vec<&String> = now.iter().filter(|fd| !start.contains(fd)).collect();
    assert!(
        leaked.is_empty(),
        "fds left open (at the start: {start:?}): {leaked:?}"
    );
}

/// A done-callback runs on a pool thread; one that submits a task to the same pool and waits for it must not
/// deadlock, even though its worker went back to the idle list first and is the one the new task goes to
/// (issue 12.1).
fn done_callback_that_submits_and_waits_does_not_deadlock() {
    let rendezvous = Rendezvous::new();
    let pool = pool(4);
    // Idle workers to spare.
    let warm: Vec<Future<u64>> = (0..4).map(|i| pool.submit(square, i).unwrap()).collect();
    for future in &warm {
        result(future).unwrap();
    }
    let running = pool.submit(report_and_block, rendezvous.path()).unwrap();
    let (connection, _) = rendezvous.accept();
    let handle = pool.clone();
    let (tx, rx) = mpsc::channel();
    running.add_done_callback(move |_| {
        let inner = handle.submit(square, 5).unwrap();
        let outcome = inner.result_timeout(BOUND).cloned();
        // Not the last handle: dropping that on a pool thread could not wait for the pool to finish.
        drop(handle);
        let _ = tx.send(outcome);
    });
    drop(connection);
    let inner = rx
        .recv_timeout(LONG)
        .expect("the callback ran and sent its result");
    assert_eq!(inner, Ok(25), "the callback's own task finished");
    assert!(result(&running).is_ok());
    within(BOUND, "dropping the pool", move || drop(pool));
    assert_no_children();
}

/// Callbacks that block do not hold up the delivery of other results, nor each other.
fn blocked_callbacks_do_not_hold_up_results() {
    let pool = pool(2);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
    let (ran_tx, ran_rx) = mpsc::channel();
    let firsts: Vec<Future<u64>> = (0..8).map(|i| pool.submit(square, i).unwrap()).collect();
    for future in &firsts {
        let release_rx = release_rx.clone();
        let ran_tx = ran_tx.clone();
        future.add_done_callback(move |_| {
            let _ = ran_tx.send(());
            // Blocks until the test releases it (or the test ends).
            let _ = release_rx.lock().unwrap().recv_timeout(LONG);
        });
    }
    for _ in 0..8 {
        ran_rx
            .recv_timeout(BOUND)
            .expect("every callback started, none waits for another");
    }
    let more: Vec<Future<u64>> = (10..30).map(|i| pool.submit(square, i).unwrap()).collect();
    for (i, future) in (10..).zip(&more) {
        assert_eq!(future.result_timeout(BOUND).cloned(), Ok(i * i));
    }
    for _ in 0..8 {
        release_tx.send(()).unwrap();
    }
    within(BOUND, "dropping the pool", move || drop(pool));
    assert_no_children();
}

/// A worker that writes a frame header and only part of its body is broken: its task fails with `Protocol`
/// within a bounded time, the worker is replaced, and shutdown does not hang on it (issue 12.2).
fn truncated_frame_fails_its_task_and_shutdown_does_not_hang() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .stall_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let before = result(&pool.submit(pid, ()).unwrap()).unwrap();
    let broken = pool.submit(truncated_frame, ()).unwrap();
    match broken.result_timeout(BOUND) {
        Err(Error::Protocol(what)) => assert!(what.contains("middle of a frame"), "{what}"),
        other => panic!("expected Protocol, got {other:?}"),
    }
    let after = pool.submit(pid, ()).unwrap().result_timeout(BOUND).cloned();
    assert!(matches!(after, Ok(pid) if pid != before), "{after:?}");
    // The same again, this time dropping the pool while the frame hangs.
    let broken = pool.submit(truncated_frame, ()).unwrap();
    within(BOUND, "dropping the pool", move || drop(pool));
    assert!(matches!(broken.result(), Err(Error::Protocol(_))));
    assert_no_children();
}

/// A reply to a task the worker is not running (written by a thread an earlier task left behind) does not fail
/// the task the worker is running: it is logged and dropped (issue 12.3).
fn a_stray_reply_does_not_blame_an_innocent_task() {
    let stray = Rendezvous::new();
    let innocent = Rendezvous::new();
    let pool = pool(1);
    let worker = result(&pool.submit(stray_reply_later, stray.path()).unwrap()).unwrap();
    let (mut trigger, _) = stray.accept();
    let running = pool.submit(report_and_block, innocent.path()).unwrap();
    let (connection, reported) = innocent.accept();
    assert_eq!(reported, worker);
    trigger.write_all(&[1]).unwrap();
    let mut written = [0u8; 1];
    trigger
        .read_exact(&mut written)
        .expect("the stray reply was written");
    // The stray frame is in the stream before the running task's reply.
    drop(connection);
    assert_eq!(running.result_timeout(BOUND).cloned(), Ok(worker));
    assert_eq!(
        result(&pool.submit(pid, ()).unwrap()),
        Ok(worker),
        "the worker was kept"
    );
    within(BOUND, "dropping the pool", move || drop(pool));
    assert_no_children();
}

/// A task that closed (or shut down) its worker's protocol socket and keeps running is still killed by its
/// timeout (issue 12.4).
fn timeout_kills_a_task_that_lost_its_socket() {
    let pool = pool(1);
    for how in [0u8, 1] {
        let started = Instant::now();
        let lost = pool
            .submit_with_timeout(
                lose_socket_then_sleep,
                (how, 30_000),
                Duration::from_secs(1),
            )
            .unwrap();
        assert!(
            matches!(
                lost.result_timeout(BOUND).cloned(),
                Err(Error::TaskTimeout { timeout, .. }) if timeout == Duration::from_secs(1)
            ),
            "how = {how}: {:?}",
            lost.result_timeout(BOUND)
        );
        assert!(started.elapsed() < BOUND);
        assert_eq!(result(&pool.submit(square, 3).unwrap()), Ok(9));
    }
    within(BOUND, "dropping the pool", move || drop(pool));
    assert_no_children();
}

/// A worker that forks (without exec) and aborts fails its task at once, although the forked copy still holds
/// the protocol socket open (issue 12.5).
#[cfg(unix)]
fn fork_then_abort_fails_at_once() {
    let rendezvous = Rendezvous::new();
    let pool = pool(1);
    let crashed = pool.submit(fork_then_abort, rendezvous.path()).unwrap();
    // Held open until the end: the forked copy lives while it is.
    let (forked, _) = rendezvous.accept();
    match crashed.result_timeout(BOUND) {
        Err(Error::WorkerDied { reason, .. }) => assert!(reason.contains("SIGABRT"), "{reason}"),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_eq!(
        pool.submit(square, 4)
            .unwrap()
            .result_timeout(BOUND)
            .cloned(),
        Ok(16)
    );
    drop(forked);
    within(BOUND, "dropping the pool", move || drop(pool));
    assert_no_children();
}

/// A task handed to a worker that dies before reading it (stopped, then killed) runs on another worker instead
/// of failing with the death of a worker that never saw it.
#[cfg(unix)]
fn a_task_a_dead_worker_never_read_runs_elsewhere() {
    use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process, waitid};
    let pool = pool(1);
    let worker = result(&pool.submit(pid, ()).unwrap()).unwrap();
    let raw = Pid::from_raw(worker as i32).unwrap();
    kill_process(raw, Signal::STOP).unwrap();
    // Wait (without reaping) until it is stopped: from now on it reads nothing.
    waitid(
        WaitId::Pid(raw),
        WaitIdOptions::STOPPED | WaitIdOptions::NOWAIT,
    )
    .unwrap();
    let handed = pool.submit(pid, ()).unwrap();
    kill_process(raw, Signal::KILL).unwrap();
    let ran = handed.result_timeout(BOUND).cloned();
    assert!(matches!(ran, Ok(pid) if pid != worker), "{ran:?}");
    within(BOUND, "dropping the pool", move || drop(pool));
    assert_no_children();
}

// ---------------------------------------------------------------------------------------------------------------
// Runner

const TESTS: &[(&str, fn())] = &[
    ("generic_work_on_thread_pool", generic_work_on_thread_pool),
    ("generic_work_on_process_pool", generic_work_on_process_pool),
    (
        "shared_generic_work_on_process_pool",
        shared_generic_work_on_process_pool,
    ),
    (
        "map_10000_in_order_with_chunk_sizes",
        map_10000_in_order_with_chunk_sizes,
    ),
    (
        "map_panic_in_a_chunk_keeps_the_items_before_it",
        map_panic_in_a_chunk_keeps_the_items_before_it,
    ),
    (
        "concurrent_submitters_lose_nothing",
        concurrent_submitters_lose_nothing,
    ),
    ("abort_fails_only_its_task", abort_fails_only_its_task),
    ("exit_fails_only_its_task", exit_fails_only_its_task),
    (
        "sigkill_from_outside_fails_only_its_task",
        sigkill_from_outside_fails_only_its_task,
    ),
    (
        "panic_is_an_error_with_message_and_location",
        panic_is_an_error_with_message_and_location,
    ),
    (
        "timeout_kills_and_replaces_the_worker",
        timeout_kills_and_replaces_the_worker,
    ),
    ("per_submit_timeout", per_submit_timeout),
    ("cancel_a_pending_task", cancel_a_pending_task),
    (
        "shutdown_cancels_queued_futures",
        shutdown_cancels_queued_futures,
    ),
    (
        "shutdown_from_a_done_callback_does_not_deadlock",
        shutdown_from_a_done_callback_does_not_deadlock,
    ),
    (
        "shutdown_without_cancel_runs_queued_tasks",
        shutdown_without_cancel_runs_queued_tasks,
    ),
    (
        "kill_workers_fails_running_and_cancels_queued",
        kill_workers_fails_running_and_cancels_queued,
    ),
    (
        "terminate_workers_sends_sigterm",
        terminate_workers_sends_sigterm,
    ),
    (
        "max_tasks_per_child_replaces_workers",
        max_tasks_per_child_replaces_workers,
    ),
    (
        "initializer_runs_in_every_worker",
        initializer_runs_in_every_worker,
    ),
    (
        "initializer_failure_breaks_the_pool",
        initializer_failure_breaks_the_pool,
    ),
    (
        "unknown_and_unnameable_tasks_are_refused",
        unknown_and_unnameable_tasks_are_refused,
    ),
    (
        "registry_refuses_duplicates_and_pointers",
        registry_refuses_duplicates_and_pointers,
    ),
    (
        "undecodable_result_is_a_serialization_error",
        undecodable_result_is_a_serialization_error,
    ),
    (
        "payloads_of_64_mib_round_trip",
        payloads_of_64_mib_round_trip,
    ),
    (
        "oversized_frames_are_protocol_errors",
        oversized_frames_are_protocol_errors,
    ),
    (
        "malformed_frames_from_a_worker_are_protocol_errors",
        malformed_frames_from_a_worker_are_protocol_errors,
    ),
    #[cfg(target_os = "linux")]
    (
        "a_task_a_worker_cannot_take_runs_elsewhere",
        a_task_a_worker_cannot_take_runs_elsewhere,
    ),
    (
        "tasks_ahead_pipeline_and_survive_crashes",
        tasks_ahead_pipeline_and_survive_crashes,
    ),
    ("worker_prints_reach_stdout", worker_prints_reach_stdout),
    (
        "build_mismatch_is_a_protocol_error",
        build_mismatch_is_a_protocol_error,
    ),
    (
        "workers_die_with_their_parent",
        workers_die_with_their_parent,
    ),
    (
        "stray_invitation_does_not_enter_worker_mode",
        stray_invitation_does_not_enter_worker_mode,
    ),
    (
        "worker_answers_unknown_names_with_unknown_task",
        worker_answers_unknown_names_with_unknown_task,
    ),
    #[cfg(unix)]
    (
        "worker_exits_when_its_lifeline_breaks",
        worker_exits_when_its_lifeline_breaks,
    ),
    (
        "silent_workers_break_the_pool_with_a_reason",
        silent_workers_break_the_pool_with_a_reason,
    ),
    (
        "a_worker_can_run_a_pool_of_its_own",
        a_worker_can_run_a_pool_of_its_own,
    ),
    ("async_await_a_process_future", async_await_a_process_future),
    (
        "done_callback_that_submits_and_waits_does_not_deadlock",
        done_callback_that_submits_and_waits_does_not_deadlock,
    ),
    (
        "blocked_callbacks_do_not_hold_up_results",
        blocked_callbacks_do_not_hold_up_results,
    ),
    (
        "truncated_frame_fails_its_task_and_shutdown_does_not_hang",
        truncated_frame_fails_its_task_and_shutdown_does_not_hang,
    ),
    (
        "a_stray_reply_does_not_blame_an_innocent_task",
        a_stray_reply_does_not_blame_an_innocent_task,
    ),
    (
        "timeout_kills_a_task_that_lost_its_socket",
        timeout_kills_a_task_that_lost_its_socket,
    ),
    #[cfg(unix)]
    (
        "fork_then_abort_fails_at_once",
        fork_then_abort_fails_at_once,
    ),
    #[cfg(unix)]
    (
        "a_task_a_dead_worker_never_read_runs_elsewhere",
        a_task_a_dead_worker_never_read_runs_elsewhere,
    ),
    ("no_children_left_at_the_end", no_children_left_at_the_end),
    ("no_fds_left_at_the_end", no_fds_left_at_the_end),
];

/// How long one test may take before the run is declared hung.
const HANG: Duration = Duration::from_secs(300);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mismatch = args.iter().any(|a| a == "--mismatch-parent");
    if args.is_empty() && std::env::var_os("CF_TEST_SLOW_START").is_some() {
        // The slow-start scenario's workers (run without arguments): never reach the worker-mode line.
        loop {
            std::thread::park();
        }
    }

    // The worker-mode line. (A parent started with `--mismatch-parent` registers one more task than its
    // workers, which run without arguments: that is the build-mismatch scenario.)
    let registry = Registry::new()
        .register(square)
        .register(square_or_panic_at_4)
        .register(pid)
        .register(abort_task)
        .register(exit_task)
        .register(panic_task)
        .register(sleep_ms)
        .register(report_and_block)
        .register(flip)
        .register(make_bytes)
        .register(print_task)
        .register(init_ok)
        .register(init_fail)
        .register(read_init)
        .register(bad_result)
        .register(panicking_decode)
        .register(panicking_encode)
        .register(nested_square)
        .register(common::generic::square)
        .register(common::generic::describe)
        .register(common::generic::fail);
    let registry = registry
        .register(corrupt_protocol)
        .register(truncated_frame)
        .register(stray_reply_later)
        .register(lose_socket_then_sleep);
    #[cfg(unix)]
    let registry = registry.register(shut_my_reads).register(fork_then_abort);
    let registry = if mismatch {
        registry.register(only_in_parent)
    } else {
        registry
    };
    registry.serve().expect("the test registry is valid");

    if mismatch {
        scenario_mismatch();
        return;
    }
    if std::env::var_os("CONCURRENT_FUTURES_WORKER").is_some()
        && !args.iter().any(|a| a.starts_with("--scenario"))
    {
        // Started as a worker but not let into worker mode: running the whole suite here would start pools,
        // whose workers would do the same, without end.
        eprintln!("process_pool: invited into worker mode but refused; not running the tests");
        std::process::exit(3);
    }
    if let Some(at) = args.iter().position(|a| a == "--scenario-orphan") {
        scenario_orphan(args.get(at + 1).cloned().unwrap_or_default());
        return;
    }
    if args.iter().any(|a| a == "--scenario-slow-start") {
        scenario_slow_start();
        return;
    }
    if args.iter().any(|a| a == "--scenario-print") {
        scenario_print();
        return;
    }

    // libtest-style: positional arguments filter by substring; flags are ignored.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<_> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let _ = FDS_AT_START.set(open_fds());
    println!("\nrunning {} tests", selected.len());
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, test) in &selected {
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let watched = name.to_string();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(HANG) {
                eprintln!("test {watched} has not finished after {HANG:?}: giving up");
                std::process::exit(101);
            }
        });
        let outcome = catch_unwind(AssertUnwindSafe(test));
        let _ = done_tx.send(());
        match outcome {
            Ok(()) => println!("ok"),
            Err(_) => {
                println!("FAILED");
                failed.push(*name);
            }
        }
    }
    let passed = selected.len() - failed.len();
    if failed.is_empty() {
        println!(
            "\ntest result: ok. {passed} passed; 0 failed; finished in {:.2}s\n",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
        println!(
            "\ntest result: FAILED. {passed} passed; {} failed; finished in {:.2}s\n",
            failed.len(),
            started.elapsed().as_secs_f64()
        );
        std::process::exit(101);
    }
}
