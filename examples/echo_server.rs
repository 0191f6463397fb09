//! A TCP server that sends back, upper-cased, whatever each client sends; every connection is a task on a
//! `ThreadPoolExecutor` with a bounded queue. The Rust version of the gevent echo server and its 500 clients:
//!
//! ```python
//! def talk(conn):
//!     while True:
//!         data = conn.recv(1024)
//!         if not data: break
//!         conn.send(data.upper())
//!     conn.close()
//! ```
//!
//! `cargo run --release --example echo_server -- --self-test` starts the server and 500 client threads, each
//! exchanging `--messages` messages, checks every reply and prints the totals (exit code 1 on any mismatch).
//! Without `--self-test` it serves on `--addr` (loopback only) until Ctrl-C; try `nc 127.0.0.1 7777`.
//!
//! When all workers are busy, accepted connections wait in the pool's queue; when the queue is full too, the
//! acceptor waits in `submit` and new clients wait in the kernel's listen backlog: back-pressure, not failure.

#![allow(dead_code)] // tests/echo_server.rs compiles this file as a module and uses parts the binary does not.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use concurrent_futures::ThreadPoolExecutor;

/// Where the server listens without `--addr` (with `--self-test`: 127.0.0.1 and a free port).
const DEFAULT_ADDR: &str = "127.0.0.1:7777";

/// An echo server on a thread pool: each connection is a task, the queue is bounded.
#[derive(Parser, Debug)]
#[command(name = "echo_server", version)]
pub struct Args {
    /// Address to listen on, loopback only [default: 127.0.0.1:7777; with --self-test: 127.0.0.1 and a free
    /// port].
    #[arg(long)]
    pub addr: Option<SocketAddr>,

    /// Worker threads: connections served at the same time.
    #[arg(long, default_value_t = 64, allow_negative_numbers = true, value_parser = whole_number::<1, 4096>)]
    pub workers: u64,

    /// Accepted connections that may wait for a worker; beyond that the acceptor waits.
    #[arg(long, default_value_t = 128, allow_negative_numbers = true, value_parser = whole_number::<1, 100_000>)]
    pub queue: u64,

    /// Start the server and N client threads, verify every reply, print the totals.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "500",
          allow_negative_numbers = true, value_parser = whole_number::<1, 10_000>)]
    pub self_test: Option<u64>,

    /// Messages each self-test client sends.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = whole_number::<1, 100_000>)]
    pub messages: u64,

    /// A self-test client that waits this long for a reply gives up (and the self-test fails), e.g. `60s`.
    /// Clients wait in line while every worker is busy, so give a slow machine more.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub client_timeout: Duration,
}

/// A whole number from `MIN` to `MAX` (negative numbers reach this parser, so `-1` gets a clear message).
fn whole_number<const MIN: u64, const MAX: u64>(s: &str) -> Result<u64, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if (i128::from(MIN)..=i128::from(MAX)).contains(&n) => Ok(n as u64),
        _ => Err(format!("expected a whole number from {MIN} to {MAX}")),
    }
}

/// `1 worker`, `2 workers`: a count and the noun that agrees with it.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What the server did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServerStats {
    pub connections: u64,
    pub bytes: u64,
    pub errors: u64,
    /// The most connections served at the same time.
    pub peak_concurrent: usize,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    active: AtomicUsize,
    peak: AtomicUsize,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, TcpStream>>,
}

/// The running server; `stop` (or dropping it) closes it.
pub struct EchoServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    counters: Arc<Counters>,
    acceptor: Option<JoinHandle<()>>,
    pool: ThreadPoolExecutor,
}

/// Upper-cases what comes in until the client closes its side (the seed's `talk`).
fn talk(mut conn: TcpStream, counters: &Counters) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        buf[..n].make_ascii_uppercase();
        conn.write_all(&buf[..n])?;
        counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?; // SO_REUSEADDR, as in the seed
    socket.bind(&addr.into())?;
    // A deep backlog: hundreds of clients connect at once while the acceptor may be waiting for queue room.
    socket.listen(1024)?;
    Ok(socket.into())
}

impl EchoServer {
    /// Binds `addr` (which must be a loopback address) and serves on a pool of `workers` threads whose queue
    /// holds at most `queue` waiting connections.
    pub fn start(addr: SocketAddr, workers: usize, queue: usize) -> Result<EchoServer, String> {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{addr} is not a loopback address: this example serves 127.0.0.1 or ::1 only"
            ));
        }
        let listener = listen(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let pool = ThreadPoolExecutor::builder()
            .max_workers(workers)
            .queue_bound(queue)
            .thread_name_prefix("echo")
            .build()
            .map_err(|e| format!("cannot start the pool: {e}"))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let acceptor = {
            let (pool, stopping, counters) = (pool.clone(), stopping.clone(), counters.clone());
            std::thread::Builder::new()
                .name("echo-accept".into())
                .spawn(move || accept_loop(&listener, &pool, &stopping, &counters))
                .map_err(|e| format!("cannot start the acceptor: {e}"))?
        };
        Ok(EchoServer {
            addr,
            stopping,
            counters,
            acceptor: Some(acceptor),
            pool,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes open connections, waits for every task; returns the totals.
    pub fn stop(mut self) -> ServerStats {
        self.shutdown();
        self.stats()
    }

    fn stats(&self) -> ServerStats {
        ServerStats {
            connections: self.counters.connections.load(Ordering::SeqCst),
            bytes: self.counters.bytes.load(Ordering::SeqCst),
            errors: self.counters.errors.load(Ordering::SeqCst),
            peak_concurrent: self.counters.peak.load(Ordering::SeqCst),
        }
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor (blocked in accept) with a connection of our own.
        let _ = TcpStream::connect(self.addr);
        let _ = acceptor.join();
        for conn in self
            .counters
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            let _ = conn.shutdown(Shutdown::Both);
        }
        self.pool.shutdown(true);
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(
    listener: &TcpListener,
    pool: &ThreadPoolExecutor,
    stopping: &AtomicBool,
    counters: &Arc<Counters>,
) {
    for conn in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let conn = match conn {
            Ok(conn) => conn,
            Err(_) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let id = counters.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = conn.try_clone() {
            counters
                .open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, clone);
        }
        let task_counters = counters.clone();
        // Waits while the queue is full: the back-pressure of the bounded queue.
        let submitted = pool.submit(move || {
            let counters = &*task_counters;
            counters.connections.fetch_add(1, Ordering::Relaxed);
            let now = counters.active.fetch_add(1, Ordering::SeqCst) + 1;
            counters.peak.fetch_max(now, Ordering::SeqCst);
            if talk(conn, counters).is_err() {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            counters.active.fetch_sub(1, Ordering::SeqCst);
            counters
                .open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
        if submitted.is_err() {
            // The pool is shutting down: the connection closes unanswered.
            counters
                .open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return;
        }
    }
}

/// What the clients saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientStats {
    pub clients: u64,
    pub messages: u64,
    pub verified: u64,
    pub mismatches: u64,
    /// Clients that failed to connect, send or receive.
    pub failed_clients: u64,
    pub bytes: u64,
    /// The first few problems, for the report.
    pub problems: Vec<String>,
}

/// One client: connects, sends `messages` lines `client-{id} say hello {n}`, checks each reply is the same line
/// upper-cased; gives up on a read or write that takes longer than `timeout`.
fn client(addr: SocketAddr, id: u64, messages: u64, timeout: Duration) -> ClientStats {
    let mut stats = ClientStats {
        clients: 1,
        ..ClientStats::default()
    };
    let result = (|| -> io::Result<()> {
        let mut conn = TcpStream::connect(addr)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        conn.set_nodelay(true)?;
        let mut reply = Vec::new();
        for n in 0..messages {
            let message = format!("client-{id} say hello {n}\n");
            conn.write_all(message.as_bytes())?;
            stats.messages += 1;
            reply.resize(message.len(), 0);
            conn.read_exact(&mut reply)?;
            stats.bytes += reply.len() as u64;
            if reply == message.to_ascii_uppercase().as_bytes() {
                stats.verified += 1;
            } else {
                stats.mismatches += 1;
                if stats.problems.is_empty() {
                    stats.problems.push(format!(
                        "client {id}: sent {:?}, got {:?}",
                        message.trim_end(),
                        String::from_utf8_lossy(&reply).trim_end()
                    ));
                }
            }
        }
        conn.shutdown(Shutdown::Write)?;
        // The server closes its side once it has seen ours: nothing more may come.
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest)?;
        if !rest.is_empty() {
            stats.mismatches += 1;
            stats.problems.push(format!(
                "client {id}: {} unexpected bytes after the last reply",
                rest.len()
            ));
        }
        Ok(())
    })();
    if let Err(e) = result {
        stats.failed_clients += 1;
        stats.problems.push(format!("client {id}: {e}"));
    }
    stats
}

/// Runs `clients` client threads against `addr` at once, each sending `messages` messages (and giving up on a
/// reply that takes longer than `timeout`); adds up what they saw.
pub fn run_clients(
    addr: SocketAddr,
    clients: u64,
    messages: u64,
    timeout: Duration,
) -> ClientStats {
    let threads: Vec<_> = (0..clients)
        .map(|id| {
            std::thread::Builder::new()
                .name(format!("client-{id}"))
                .stack_size(128 * 1024)
                .spawn(move || client(addr, id, messages, timeout))
        })
        .collect();
    let mut total = ClientStats::default();
    for (id, thread) in threads.into_iter().enumerate() {
        let stats = match thread
            .map_err(|e| e.to_string())
            .and_then(|t| t.join().map_err(|_| "panicked".to_owned()))
        {
            Ok(stats) => stats,
            Err(e) => ClientStats {
                clients: 1,
                failed_clients: 1,
                problems: vec![format!("client {id}: thread: {e}")],
                ..ClientStats::default()
            },
        };
        total.clients += stats.clients;
        total.messages += stats.messages;
        total.verified += stats.verified;
        total.mismatches += stats.mismatches;
        total.failed_clients += stats.failed_clients;
        total.bytes += stats.bytes;
        if total.problems.len() < 5 {
            total
                .problems
                .extend(stats.problems.into_iter().take(5 - total.problems.len()));
        }
    }
    total
}

/// Server and clients in one process; the exit code is 0 only if every reply was verified.
fn self_test(args: &Args, clients: u64, out: &mut dyn Write) -> io::Result<i32> {
    let addr = args.addr.unwrap_or(([127, 0, 0, 1], 0).into());
    let server = match EchoServer::start(addr, args.workers as usize, args.queue as usize) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    writeln!(
        out,
        "echo server on {} ({}, queue of {}); {} x {}",
        server.addr(),
        counted(args.workers, "worker", "workers"),
        args.queue,
        counted(clients, "client", "clients"),
        counted(args.messages, "message", "messages"),
    )?;
    let started = Instant::now();
    let stats = run_clients(server.addr(), clients, args.messages, args.client_timeout);
    let elapsed = started.elapsed();
    let server_stats = server.stop();
    writeln!(out, "clients          {:>10}", stats.clients)?;
    writeln!(out, "messages sent    {:>10}", stats.messages)?;
    writeln!(out, "replies verified {:>10}", stats.verified)?;
    writeln!(out, "mismatches       {:>10}", stats.mismatches)?;
    writeln!(out, "failed clients   {:>10}", stats.failed_clients)?;
    writeln!(out, "bytes echoed     {:>10}", server_stats.bytes)?;
    writeln!(out, "connections      {:>10}", server_stats.connections)?;
    writeln!(out, "peak concurrent  {:>10}", server_stats.peak_concurrent)?;
    writeln!(out, "elapsed          {:>10.3} s", elapsed.as_secs_f64())?;
    writeln!(
        out,
        "messages/s       {:>10.0}",
        stats.verified as f64 / elapsed.as_secs_f64().max(1e-9)
    )?;
    for problem in &stats.problems {
        writeln!(out, "problem: {problem}")?;
    }
    let expected = clients * args.messages;
    let ok = stats.verified == expected
        && stats.mismatches == 0
        && stats.failed_clients == 0
        && server_stats.connections == clients
        && server_stats.bytes == stats.bytes;
    writeln!(
        out,
        "{}",
        if ok {
            "OK: every reply verified"
        } else {
            "FAILED"
        }
    )?;
    Ok(if ok { 0 } else { 1 })
}

/// Serves until Ctrl-C.
fn serve(args: &Args, out: &mut dyn Write) -> io::Result<i32> {
    let addr = args
        .addr
        .unwrap_or_else(|| DEFAULT_ADDR.parse().expect("a valid address"));
    let server = match EchoServer::start(addr, args.workers as usize, args.queue as usize) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(io::Error::other)?;
    writeln!(
        out,
        "echo server on {} (Ctrl-C to stop); try: nc {} {}",
        server.addr(),
        server.addr().ip(),
        server.addr().port()
    )?;
    out.flush()?;
    let _ = rx.recv();
    let stats = server.stop();
    writeln!(
        out,
        "served {}, {}, {}",
        counted(stats.connections, "connection", "connections"),
        counted(stats.bytes, "byte", "bytes"),
        counted(stats.errors, "error", "errors"),
    )?;
    Ok(0)
}

fn main() {
    let args = Args::parse(); // usage errors exit with 2
    if let Some(addr) = args.addr.filter(|addr| !addr.ip().is_loopback()) {
        eprintln!(
            "error: {addr} is not a loopback address: this example serves 127.0.0.1 or ::1 only"
        );
        std::process::exit(2);
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let code = match args.self_test {
        Some(clients) => self_test(&args, clients, &mut out),
        None => serve(&args, &mut out),
    };
    let code = code.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        1
    });
    drop(out);
    std::process::exit(code);
}
