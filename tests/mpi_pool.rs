//! MPI pool tests (`cargo test --features mpi --test mpi_pool [FILTER]`; needs Open MPI: `apt-get install -y
//! openmpi-bin libopenmpi-dev libclang-dev`). A `harness = false` test binary: its `main` holds the worker-mode
//! line, then, run by cargo, relaunches itself once per case and mode:
//!
//! - `mpirun`: `mpirun --oversubscribe -n 3 ... <this test> --case NAME --mode mpirun`: rank 0 runs the case,
//!   ranks 1 and 2 serve it;
//! - `spawn`: `<this test> --case NAME --mode spawn` as a singleton that spawns its 2 worker ranks
//!   (`OMPI_MCA_rmaps_base_oversubscribe=1`).
//!
//! Every launch has a wall-clock deadline: a hang fails the case and kills the whole launch (its process group).
//! Nothing synchronises with sleeps: blocking tasks wait on a Unix socket that the case holds open.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concurrent_futures::{
    Error, Executor, MapOptions, MpiPoolExecutor, ProcessPoolExecutor, Registry,
};

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

fn panic_task(message: String) -> u32 {
    panic!("{message}");
}

fn abort_task(_: ()) {
    std::process::abort();
}

fn segfault_task(_: ()) {
    // SAFETY: none: this deliberately writes through a null pointer to crash the process with SIGSEGV.
    unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Tells the case (on its socket) that it runs, then blocks until the case closes the connection.
fn report_and_block(path: String) -> u32 {
    let mut stream = UnixStream::connect(&path).expect("the case listens");
    stream
        .write_all(&std::process::id().to_le_bytes())
        .expect("the case reads");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    std::process::id()
}

/// The number of threads of the process running the task: 1 in a process that never initialised MPI (Open MPI
/// starts threads of its own).
fn thread_count(_: ()) -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |dir| dir.count())
}

/// Where the task runs: the MPI rank variable it inherited.
fn rank_of(_: ()) -> String {
    std::env::var("OMPI_COMM_WORLD_RANK").unwrap_or_default()
}

fn make_bytes(len: usize) -> Vec<u8> {
    vec![7; len]
}

fn byte_len(bytes: Vec<u8>) -> usize {
    bytes.len()
}

/// A task that tries to build a pool of its own: must be refused (workers do not spawn workers).
fn nested_pool(_: ()) -> String {
    match MpiPoolExecutor::new(1) {
        Ok(_) => "built".into(),
        Err(error) => error.to_string(),
    }
}

static INIT_VALUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn init_ok(value: u64) -> Result<(), String> {
    INIT_VALUE.store(value, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

fn init_fail(level: u8) -> Result<(), String> {
    Err(format!("no level {level}"))
}

fn read_init(_: ()) -> u64 {
    INIT_VALUE.load(std::sync::atomic::Ordering::SeqCst)
}

/// Never registered.
fn not_registered(x: u64) -> u64 {
    x
}

/// Registered only by a rank 0 started with `--mismatch`: its workers register one task fewer.
fn only_in_main(_: ()) {}

// ---------------------------------------------------------------------------------------------------------------
// Cases: each runs on rank 0 (mpirun) or in the spawning singleton, and returns Err(why) on failure.

type Case = fn(&Mode) -> Result<(), String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Mpirun,
    Spawn,
}

const WORKERS: usize = 2;

/// How long the test's pools give their ranks to start (spawning on saturated cores can take over a minute).
const STARTUP: Duration = Duration::from_secs(300);

/// A pool of `WORKERS` ranks, given 5 minutes to start (spawning on saturated cores can take over a minute).
fn pool() -> Result<MpiPoolExecutor, String> {
    MpiPoolExecutor::builder()
        .max_workers(WORKERS)
        .startup_timeout(STARTUP)
        .startup_timeout(STARTUP)
        .build()
        .map_err(|e| format!("build: {e}"))
}

fn check(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

fn submit_result(mode: &Mode) -> Result<(), String> {
    let pool = pool()?;
    check(pool.spawned() == (*mode == Mode::Spawn), || {
        "wrong mode".into()
    })?;
    let future = pool.submit(square, 7).map_err(|e| e.to_string())?;
    check(future.result() == Ok(&49), || {
        format!("{:?}", future.result())
    })?;
    // Through the trait, as generic code would.
    let generic = Executor::submit(&pool, square, 9).map_err(|e| e.to_string())?;
    check(generic.into_result() == Ok(81), || "trait submit".into())?;
    let mapped: Vec<u64> =
        Executor::map_with(&pool, square, 0..20u64, MapOptions::new().chunksize(3))
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
    check(
        mapped == (0..20u64).map(|x| x * x).collect::<Vec<_>>(),
        || "trait map".into(),
    )?;
    let unknown = Executor::submit(&pool, not_registered, 1);
    check(matches!(unknown, Err(Error::UnknownTask(_))), || {
        format!("{unknown:?}")
    })?;
    // A done-callback may submit to the pool and wait for that result: callbacks run on threads of their own,
    // never on the MPI thread that delivers results.
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = pool.clone();
    pool.submit(square, 2)
        .map_err(|e| e.to_string())?
        .add_done_callback(move |_| {
            let _ = tx.send(inner.submit(square, 3).and_then(|f| f.into_result()));
        });
    let nested = rx.recv_timeout(Duration::from_secs(300));
    check(nested == Ok(Ok(9)), || {
        format!("a callback's own task: {nested:?}")
    })?;
    let workers = pool.workers();
    check(workers.len() == WORKERS, || format!("workers: {workers:?}"))?;
    // Every rank serves: with two in flight at once, both ranks get one.
    let ranks: std::collections::BTreeSet<String> = (0..20)
        .map(|_| pool.submit(rank_of, ()).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|f| f.into_result().unwrap_or_default())
        .collect();
    check(ranks.len() == WORKERS, || format!("ranks seen: {ranks:?}"))?;
    pool.shutdown(true);
    check(
        matches!(pool.submit(square, 1), Err(Error::Shutdown)),
        || "submit after shutdown".into(),
    )
}

fn map_order(_: &Mode) -> Result<(), String> {
    let pool = pool()?;
    let expected: Vec<u64> = (0..1000u64).map(|x| x * x).collect();
    for options in [
        MapOptions::new(),
        MapOptions::new().chunksize(7),
        MapOptions::new().buffersize(3),
        MapOptions::new().chunksize(10).buffersize(2),
    ] {
        let got: Vec<u64> = pool
            .map_with(square, 0..1000u64, options)
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        check(got == expected, || {
            format!("map with {options:?} out of order")
        })?;
    }
    // A chunk yields its values up to its first failed item, then that error, then the map ends.
    let items: Vec<Result<u64, Error>> = pool
        .map_with(
            square_or_panic_at_4,
            0..10u64,
            MapOptions::new().chunksize(3),
        )
        .map_err(|e| e.to_string())?
        .collect();
    check(items.len() == 5, || format!("{items:?}"))?;
    check(
        items[..4]
            .iter()
            .map(|r| r.clone().ok())
            .collect::<Vec<_>>()
            == [Some(0), Some(1), Some(4), Some(9)],
        || format!("{items:?}"),
    )?;
    check(
        matches!(&items[4], Err(Error::Panicked { message }) if message.contains("item 4")),
        || format!("{:?}", items[4]),
    )?;
    drop(pool);
    // With tasks sent ahead to busy ranks, the order holds too.
    let ahead = MpiPoolExecutor::builder()
        .max_workers(WORKERS)
        .startup_timeout(STARTUP)
        .tasks_ahead(2)
        .build()
        .map_err(|e| e.to_string())?;
    let got: Vec<u64> = ahead
        .map(square, 0..1000u64)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    check(got == expected, || {
        "map with tasks_ahead(2) out of order".into()
    })?;
    Ok(())
}

fn panics(_: &Mode) -> Result<(), String> {
    let pool = pool()?;
    let boom = pool
        .submit(panic_task, "boom".to_string())
        .map_err(|e| e.to_string())?;
    match boom.result() {
        Err(Error::Panicked { message }) => check(
            message.contains("boom")
                && message.contains("mpi_pool.rs")
                && message.contains("MPI rank"),
            || format!("message lacks the text, location or rank: {message}"),
        )?,
        other => return Err(format!("expected a panic, got {other:?}")),
    }
    // The rank lives on.
    check(
        pool.submit(square, 3)
            .map_err(|e| e.to_string())?
            .into_result()
            == Ok(9),
        || "after the panic".into(),
    )
}

fn task_timeout(_: &Mode) -> Result<(), String> {
    let pool = pool()?;
    let late = pool
        .submit_with_timeout(sleep_ms, 120_000, Duration::from_millis(300))
        .map_err(|e| e.to_string())?;
    check(
        matches!(late.result(), Err(Error::TaskTimeout { timeout, worker })
            if timeout == Duration::from_millis(300) && worker.contains("MPI rank") && worker.contains("local worker process")),
        || format!("{:?}", late.result()),
    )?;
    let fine = pool
        .submit_with_timeout(sleep_ms, 1, Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    check(fine.into_result() == Ok(1), || {
        "a short task under a timeout".into()
    })?;
    let after: Vec<u64> = pool
        .map(square, 0..10u64)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    check(after.len() == 10, || "after the timeout".into())
}

fn crash_isolated(_: &Mode) -> Result<(), String> {
    let pool = pool()?;
    let mut ok = Vec::new();
    for i in 0..25u64 {
        ok.push((i, pool.submit(square, i).map_err(|e| e.to_string())?));
    }
    let aborted = pool.submit(abort_task, ()).map_err(|e| e.to_string())?;
    let segfault = pool.submit(segfault_task, ()).map_err(|e| e.to_string())?;
    for i in 25..50u64 {
        ok.push((i, pool.submit(square, i).map_err(|e| e.to_string())?));
    }
    for (i, future) in ok {
        check(future.result() == Ok(&(i * i)), || {
            format!("task {i}: {:?}", future.result())
        })?;
    }
    for (future, signal) in [(aborted, "SIGABRT"), (segfault, "SIGSEGV")] {
        match future.result() {
            Err(Error::WorkerDied { reason, .. }) => check(
                reason.contains(signal) && reason.contains("MPI rank"),
                || format!("the reason lacks the signal or rank: {reason}"),
            )?,
            other => return Err(format!("expected WorkerDied ({signal}), got {other:?}")),
        }
    }
    check(
        pool.submit(square, 5)
            .map_err(|e| e.to_string())?
            .into_result()
            == Ok(25),
        || "after the crashes".into(),
    )
}

fn initializer(_: &Mode) -> Result<(), String> {
    let good = MpiPoolExecutor::builder()
        .max_workers(WORKERS)
        .startup_timeout(STARTUP)
        .initializer(init_ok, 42)
        .build()
        .map_err(|e| e.to_string())?;
    let values: Vec<u64> = good
        .map(read_init, vec![(); 10])
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    check(values.iter().all(|&v| v == 42), || format!("{values:?}"))?;
    let first_workers = good.workers();
    good.shutdown(true);
    drop(good);

    let bad = MpiPoolExecutor::builder()
        .max_workers(WORKERS)
        .startup_timeout(STARTUP)
        .initializer(init_fail, 3)
        .build()
        .map_err(|e| e.to_string())?;
    let outcome = bad.submit(square, 2).and_then(|f| f.into_result());
    check(
        matches!(&outcome, Err(Error::Broken { reason }) if reason.contains("initializer failed")
            && reason.contains("no level 3") && reason.contains("MPI rank")),
        || format!("{outcome:?}"),
    )?;
    check(
        matches!(bad.submit(square, 2), Err(Error::Broken { .. })),
        || "submit on a broken pool".into(),
    )?;
    bad.shutdown(true);
    drop(bad);
    // The same ranks serve the next pool (spawned ones are not spawned again).
    let again = pool()?;
    check(
        again
            .submit(square, 4)
            .map_err(|e| e.to_string())?
            .into_result()
            == Ok(16),
        || "a pool after the broken one".into(),
    )?;
    check(again.workers() == first_workers, || {
        format!("other ranks: {:?} then {first_workers:?}", again.workers())
    })
}

fn spawn_failure(mode: &Mode) -> Result<(), String> {
    if *mode == Mode::Mpirun {
        // The job's ranks are taken by one pool at a time; a second is refused clearly.
        let first = pool()?;
        let second = MpiPoolExecutor::new(1);
        check(matches!(second, Err(Error::InvalidState(_))), || {
            format!("{second:?}")
        })?;
        drop(first);
        return check(pool().is_ok(), || "a pool after the first".into());
    }
    // More ranks than this machine has slots, with oversubscription refused: MPI_Comm_spawn fails.
    let pool = MpiPoolExecutor::builder()
        .max_workers(4096)
        .spawn_info("map_by", "core:NOOVERSUBSCRIBE")
        .build()
        .map_err(|e| e.to_string())?;
    let outcome = pool.submit(square, 2).and_then(|f| f.into_result());
    check(
        matches!(&outcome, Err(Error::Broken { reason }) if reason.contains("MPI_Comm_spawn")),
        || format!("{outcome:?}"),
    )?;
    drop(pool);
    // After a failed spawn Open MPI 4's runtime may be unusable (its daemon exits): the next pool then fails
    // the same way, as an error, never a hang or an abort.
    let next = MpiPoolExecutor::new(1).map_err(|e| e.to_string())?;
    let outcome = next.submit(square, 6).and_then(|f| f.into_result());
    eprintln!("a pool after the failed spawn: {outcome:?}");
    check(
        matches!(&outcome, Ok(36))
            || matches!(&outcome, Err(Error::Broken { reason }) if reason.contains("MPI_Comm_spawn")),
        || format!("a pool after the failed spawn: {outcome:?}"),
    )
}

fn cancel_futures(_: &Mode) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("cf-mpi-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let listener = UnixListener::bind(&dir).map_err(|e| e.to_string())?;
    let pool = MpiPoolExecutor::new(1).map_err(|e| e.to_string())?;
    let running = pool
        .submit(report_and_block, dir.display().to_string())
        .map_err(|e| e.to_string())?;
    let (mut conn, _) = listener.accept().map_err(|e| e.to_string())?;
    let mut pid = [0u8; 4];
    conn.read_exact(&mut pid).map_err(|e| e.to_string())?;
    let queued: Vec<_> = (0..5u64)
        .map(|i| pool.submit(square, i).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    pool.shutdown_with(false, true);
    check(queued.iter().all(|f| f.cancelled()), || {
        "queued tasks were not cancelled".into()
    })?;
    check(!running.cancelled(), || {
        "the running task was cancelled".into()
    })?;
    drop(conn);
    check(running.result() == Ok(&u32::from_le_bytes(pid)), || {
        format!("{:?}", running.result())
    })?;
    pool.shutdown(true);
    let _ = std::fs::remove_file(&dir);
    Ok(())
}

fn ten_thousand(_: &Mode) -> Result<(), String> {
    let pool = pool()?;
    let futures: Vec<_> = (0..10_000u64)
        .map(|i| pool.submit(square, i).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    for (i, future) in futures.into_iter().enumerate() {
        let i = i as u64;
        check(future.into_result() == Ok(i * i), || {
            format!("task {i} lost or wrong")
        })?;
    }
    let sum: u64 = pool
        .map_with(square, 0..10_000u64, MapOptions::new().chunksize(100))
        .map_err(|e| e.to_string())?
        .sum::<Result<u64, _>>()
        .map_err(|e| e.to_string())?;
    check(sum == (0..10_000u64).map(|i| i * i).sum::<u64>(), || {
        "map sum".into()
    })
}

fn in_rank_mode(_: &Mode) -> Result<(), String> {
    let refused = MpiPoolExecutor::builder()
        .isolate(false)
        .timeout(Duration::from_secs(1))
        .build();
    check(matches!(refused, Err(Error::InvalidArgument(_))), || {
        format!("{refused:?}")
    })?;
    let pool = MpiPoolExecutor::builder()
        .max_workers(WORKERS)
        .startup_timeout(STARTUP)
        .isolate(false)
        .initializer(init_ok, 7)
        .build()
        .map_err(|e| e.to_string())?;
    let values: Vec<u64> = pool
        .map_with(read_init, vec![(); 20], MapOptions::new().chunksize(3))
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    check(values.iter().all(|&v| v == 7), || format!("{values:?}"))?;
    let boom = pool
        .submit(panic_task, "in rank".into())
        .map_err(|e| e.to_string())?;
    check(
        matches!(boom.result(), Err(Error::Panicked { message }) if message.contains("in rank") && message.contains("mpi_pool.rs")),
        || format!("{:?}", boom.result()),
    )?;
    check(
        pool.submit(square, 8)
            .map_err(|e| e.to_string())?
            .into_result()
            == Ok(64),
        || "after".into(),
    )
}

fn sizes_and_guards(_: &Mode) -> Result<(), String> {
    let too_big = MpiPoolExecutor::builder().max_frame_size(3 << 30).build();
    check(
        matches!(&too_big, Err(Error::InvalidArgument(m)) if m.contains("2 GiB")),
        || format!("{too_big:?}"),
    )?;
    let pool = MpiPoolExecutor::builder()
        .max_workers(WORKERS)
        .startup_timeout(STARTUP)
        .max_frame_size(64 * 1024)
        .build()
        .map_err(|e| e.to_string())?;
    let big_arg = pool
        .submit(byte_len, vec![1u8; 100_000])
        .map_err(|e| e.to_string())?;
    check(matches!(big_arg.result(), Err(Error::Protocol(_))), || {
        format!("{:?}", big_arg.result())
    })?;
    let big_result = pool
        .submit(make_bytes, 100_000)
        .map_err(|e| e.to_string())?;
    check(
        matches!(big_result.result(), Err(Error::Protocol(_))),
        || format!("{:?}", big_result.result()),
    )?;
    let fits = pool.submit(make_bytes, 60_000).map_err(|e| e.to_string())?;
    check(fits.result().map(Vec::len) == Ok(60_000), || {
        "a result that fits".into()
    })?;
    // A task cannot build a pool of its own, and its local worker process never started MPI.
    let nested = pool
        .submit(nested_pool, ())
        .map_err(|e| e.to_string())?
        .into_result();
    check(
        matches!(&nested, Ok(text) if text.contains("workers do not spawn workers")),
        || format!("{nested:?}"),
    )?;
    let threads = pool
        .submit(thread_count, ())
        .map_err(|e| e.to_string())?
        .into_result();
    // As many threads as a process-pool worker of a plain program (the launcher measured one): MPI would add its
    // own.
    let plain: usize = std::env::args()
        .skip_while(|a| a != "--worker-threads")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .ok_or("no --worker-threads argument")?;
    check(threads == Ok(plain), || {
        format!(
            "a local worker process has {threads:?} threads, a plain process-pool worker {plain}: MPI started there?"
        )
    })
}

fn build_mismatch(_: &Mode) -> Result<(), String> {
    let pool = pool()?;
    let outcome = pool.submit(square, 2).and_then(|f| f.into_result());
    check(
        matches!(&outcome, Err(Error::Protocol(m)) if m.contains("different build")),
        || format!("{outcome:?}"),
    )
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may contain spaces).
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// An idle pool costs almost no CPU in the program: its MPI thread waits without polling when nothing is in
/// flight (also once the startup timeout has passed). This measures idleness itself, so it sleeps.
fn idle_costs_no_cpu(_: &Mode) -> Result<(), String> {
    // Long enough to start on saturated cores, short enough to wait out: the MPI thread once spun after it.
    let startup = Duration::from_secs(30);
    let pool = MpiPoolExecutor::builder()
        .max_workers(WORKERS)
        .startup_timeout(STARTUP)
        .startup_timeout(startup)
        .build()
        .map_err(|e| e.to_string())?;
    check(
        pool.submit(square, 2)
            .map_err(|e| e.to_string())?
            .into_result()
            == Ok(4),
        || "first task".into(),
    )?;
    // The startup deadline counts from before the first task's end: it has passed after this.
    std::thread::sleep(startup + Duration::from_millis(500));
    let before = cpu_time();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_time().saturating_sub(before);
    check(used < Duration::from_millis(300), || {
        format!("an idle pool used {used:?} of CPU in 2 s")
    })?;
    check(
        pool.submit(square, 3)
            .map_err(|e| e.to_string())?
            .into_result()
            == Ok(9),
        || "after idling".into(),
    )
}

/// Many pools one after another (as a benchmark builds them): spawned ranks serve each next pool of the same
/// size (a long series of spawns once hung Open MPI's singleton); a pool of another size gets ranks of its own,
/// and the first ones still serve a pool of their size after it.
fn many_pools(mode: &Mode) -> Result<(), String> {
    let mut seen = Vec::new();
    for i in 0..12u64 {
        let pool = pool()?;
        let got = pool
            .submit(square, i)
            .map_err(|e| e.to_string())?
            .into_result();
        check(got == Ok(i * i), || format!("pool {i}: {got:?}"))?;
        seen.push(pool.workers());
    }
    check(seen.windows(2).all(|w| w[0] == w[1]), || {
        format!("the ranks changed: {seen:?}")
    })?;
    let one = MpiPoolExecutor::new(1).map_err(|e| e.to_string())?;
    let got = one
        .submit(square, 5)
        .map_err(|e| e.to_string())?
        .into_result();
    check(got == Ok(25), || format!("a pool of 1: {got:?}"))?;
    check(one.workers().len() == 1, || format!("{:?}", one.workers()))?;
    drop(one);
    let again = pool()?;
    let got = again
        .submit(square, 6)
        .map_err(|e| e.to_string())?
        .into_result();
    check(got == Ok(36), || format!("a pool of 2 again: {got:?}"))?;
    check(again.workers().len() == WORKERS, || {
        format!("{:?}", again.workers())
    })?;
    // The ranks of size 2 served the pool of 2 again (under mpirun they are the job's ranks anyway).
    check(again.workers() == seen[0], || {
        format!(
            "the ranks of size 2 were not reused: {:?} then {:?}",
            seen[0],
            again.workers()
        )
    })?;
    let _ = mode;
    Ok(())
}

const CASES: &[(&str, Case)] = &[
    ("submit_result", submit_result),
    ("map_order", map_order),
    ("panics", panics),
    ("task_timeout", task_timeout),
    ("crash_isolated", crash_isolated),
    ("initializer", initializer),
    ("spawn_failure", spawn_failure),
    ("cancel_futures", cancel_futures),
    ("ten_thousand", ten_thousand),
    ("in_rank_mode", in_rank_mode),
    ("sizes_and_guards", sizes_and_guards),
    ("idle_costs_no_cpu", idle_costs_no_cpu),
    ("many_pools", many_pools),
];

// ---------------------------------------------------------------------------------------------------------------
// The launcher

/// A launch's wall-clock limit: a hang fails the case instead of stalling CI (generous: on saturated cores
/// ten_thousand takes a minute or two, against 2-4 s on a quiet machine).
const DEADLINE: Duration = Duration::from_secs(600);

const MPIRUN_FLAGS: &[&str] = &[
    "--oversubscribe",
    "--allow-run-as-root",
    "--mca",
    "btl",
    "tcp,self",
    "--mca",
    "btl_tcp_if_include",
    "lo",
    "--mca",
    "oob_tcp_if_include",
    "lo",
];

unsafe extern "C" {
    /// The C library's `kill` (to signal a whole process group).
    fn kill(pid: i32, signal: i32) -> i32;
}

/// Runs `command` in its own process group with the deadline, its output in a file; kills the whole group on
/// timeout. Returns whether it succeeded and its output.
fn launch(mut command: Command) -> (bool, String) {
    static LAUNCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = std::env::temp_dir().join(format!("cf-mpi-test-{}-{n}.log", std::process::id()));
    let file = match std::fs::File::create(&log) {
        Ok(file) => file,
        Err(error) => {
            return (
                false,
                format!("could not create {}: {error}", log.display()),
            );
        }
    };
    let (out, err) = match (file.try_clone(), file.try_clone()) {
        (Ok(out), Ok(err)) => (out, err),
        _ => return (false, "could not duplicate the log file".into()),
    };
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return (false, format!("could not start {command:?}: {error}")),
    };
    let pgid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let outcome = rx.recv_timeout(DEADLINE);
    let timed_out = outcome.is_err();
    if timed_out {
        // The whole launch: mpirun (or the singleton), its ranks and their local workers.
        // SAFETY: signals a process group this test created; no memory is involved.
        unsafe { kill(-pgid, 9) };
        let _ = waiter.join();
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    match outcome {
        Ok(Ok(status)) => (status.success() && text.contains("CASE PASSED"), text),
        Ok(Err(error)) => (false, format!("{error}\n{text}")),
        Err(_) => (
            false,
            format!("timed out after {DEADLINE:?} (killed)\n{text}"),
        ),
    }
}

/// The threads of a process-pool worker of this (plain) program, for `sizes_and_guards`.
static WORKER_THREADS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn worker_threads() -> &'static str {
    WORKER_THREADS.get_or_init(|| {
        let pool = ProcessPoolExecutor::new(1).expect("a process pool");
        let threads = pool.submit(thread_count, ()).and_then(|f| f.into_result());
        threads.map_or_else(|e| format!("unknown: {e}"), |n| n.to_string())
    })
}

fn mpirun_command(exe: &Path, case: &str) -> Command {
    let mut command = Command::new("mpirun");
    command
        .args(MPIRUN_FLAGS)
        .args(["-n", "3"])
        .arg(exe)
        .args(["--case", case, "--mode", "mpirun"])
        .args(["--worker-threads", worker_threads()]);
    command
}

fn spawn_command(exe: &Path, case: &str) -> Command {
    let mut command = Command::new(exe);
    command
        .args(["--case", case, "--mode", "spawn"])
        .args(["--worker-threads", worker_threads()])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl", "tcp,self")
        .env("OMPI_MCA_btl_tcp_if_include", "lo")
        .env("OMPI_MCA_oob_tcp_if_include", "lo");
    command
}

/// The build-identity checks, in an MPMD job whose worker ranks run a copy of this executable: the same bytes
/// with another file time must be accepted; one byte more must be refused. Returns (name, passed, output).
fn identity_launches(exe: &Path) -> Vec<(String, bool, String)> {
    let dir = std::env::temp_dir().join(format!("cf-mpi-ident-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let same = dir.join("same");
    let other = dir.join("other");
    let mut results = Vec::new();
    let copy = std::fs::copy(exe, &same)
        .and_then(|_| std::fs::copy(exe, &other))
        .and_then(|_| {
            // Another modification time (as on another node), same bytes.
            let file = std::fs::File::options().write(true).open(&same)?;
            file.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(86_400))?;
            let mut file = std::fs::OpenOptions::new().append(true).open(&other)?;
            file.write_all(&[0])
        });
    if let Err(error) = copy {
        return vec![(
            "identity".into(),
            false,
            format!("could not prepare the copies: {error}"),
        )];
    }
    for (name, workers, case) in [
        ("same_bytes_other_time", &same, "submit_result"),
        ("other_bytes", &other, "build_mismatch"),
    ] {
        let mut command = Command::new("mpirun");
        command
            .args(MPIRUN_FLAGS)
            .args(["-n", "1"])
            .arg(exe)
            .args(["--case", case, "--mode", "mpirun", ":", "-n", "2"])
            .arg(workers);
        let (passed, output) = launch(command);
        results.push((format!("mpirun::{name}"), passed, output));
    }
    let _ = std::fs::remove_dir_all(&dir);
    results
}

fn run_case(name: &str, mode: Mode) -> ! {
    let case = match name {
        "build_mismatch" => build_mismatch as Case,
        _ => match CASES.iter().find(|(n, _)| *n == name) {
            Some((_, case)) => *case,
            None => {
                eprintln!("no case {name}");
                std::process::exit(2)
            }
        },
    };
    let outcome = std::panic::catch_unwind(|| case(&mode));
    match outcome {
        Ok(Ok(())) => {
            println!("CASE PASSED {name}");
            std::process::exit(0)
        }
        Ok(Err(why)) => {
            println!("CASE FAILED {name}: {why}");
            std::process::exit(1)
        }
        Err(_) => {
            println!("CASE FAILED {name}: panicked");
            std::process::exit(1)
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mismatch = args.iter().any(|a| a == "--mismatch");
    let registry = Registry::new()
        .register(square)
        .register(square_or_panic_at_4)
        .register(panic_task)
        .register(abort_task)
        .register(segfault_task)
        .register(sleep_ms)
        .register(report_and_block)
        .register(thread_count)
        .register(rank_of)
        .register(make_bytes)
        .register(byte_len)
        .register(nested_pool)
        .register(init_ok)
        .register(init_fail)
        .register(read_init);
    let registry = if mismatch {
        registry.register(only_in_main)
    } else {
        registry
    };
    registry.serve().expect("the test registry is valid");

    if let Some(at) = args.iter().position(|a| a == "--case") {
        let name = args.get(at + 1).cloned().unwrap_or_default();
        let mode = if args.iter().any(|a| a == "spawn") {
            Mode::Spawn
        } else {
            Mode::Mpirun
        };
        run_case(&name, mode);
    }

    // The launcher: a plain program that never built a pool has not started MPI (a single thread).
    let threads = thread_count(());
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let exe = std::env::current_exe().expect("the test executable");
    let mut results: Vec<(String, bool, String)> = Vec::new();
    if wanted("plain_program_does_not_start_mpi") {
        results.push((
            "plain_program_does_not_start_mpi".into(),
            threads == 1,
            format!("the launcher has {threads} threads"),
        ));
    }
    if Command::new("mpirun").arg("--version").output().is_err() {
        eprintln!(
            "mpirun not found: install Open MPI (apt-get install -y openmpi-bin libopenmpi-dev libclang-dev)"
        );
        std::process::exit(1);
    }
    let started = Instant::now();
    for (name, _) in CASES {
        for mode in [Mode::Mpirun, Mode::Spawn] {
            let label = format!(
                "{}::{name}",
                if mode == Mode::Mpirun {
                    "mpirun"
                } else {
                    "spawn"
                }
            );
            if !wanted(&label) {
                continue;
            }
            let command = match mode {
                Mode::Mpirun => mpirun_command(&exe, name),
                Mode::Spawn => spawn_command(&exe, name),
            };
            let t = Instant::now();
            let (passed, output) = launch(command);
            println!(
                "test {label} ... {} ({:.1} s)",
                if passed { "ok" } else { "FAILED" },
                t.elapsed().as_secs_f64()
            );
            results.push((label, passed, output));
        }
    }
    // Rank 0 with one task more than its workers: a build mismatch.
    if wanted("spawn::build_mismatch_names") {
        let mut command = spawn_command(&exe, "build_mismatch");
        command.arg("--mismatch");
        let (passed, output) = launch(command);
        println!(
            "test spawn::build_mismatch_names ... {}",
            if passed { "ok" } else { "FAILED" }
        );
        results.push(("spawn::build_mismatch_names".into(), passed, output));
    }
    if wanted("mpirun::same_bytes_other_time") || wanted("mpirun::other_bytes") {
        for (label, passed, output) in identity_launches(&exe) {
            println!("test {label} ... {}", if passed { "ok" } else { "FAILED" });
            results.push((label, passed, output));
        }
    }
    let failed: Vec<&(String, bool, String)> = results.iter().filter(|r| !r.1).collect();
    for (label, _, output) in &failed {
        println!("\n---- {label} output ----\n{output}");
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.1} s",
        if failed.is_empty() { "ok" } else { "FAILED" },
        results.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
