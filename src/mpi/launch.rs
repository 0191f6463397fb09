//! How this process takes part in MPI: its role (decided from its arguments and environment, before any MPI
//! call), the program's one MPI thread, and the exit hook that ends the worker ranks and finalises MPI.
//!
//! MPI is initialised only in a process started by `mpirun` (or another MPI launcher) or spawned as a worker,
//! or when the program builds its first [`MpiPoolExecutor`](super::MpiPoolExecutor): never in a plain program
//! that does not use the pool, and never in a process-pool worker (which inherits `OMPI_*` variables from its
//! rank but is recognised first, by its invitation).

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::{Installed, WORKER_ENV, installed};
use crate::sync::{
    Arc, AtomicBool, Condvar, Mutex, OnceLock, Ordering, Pop, Queue, thread, thread_local,
};

use super::comm;
use super::manager::{Command, Manager};
use super::rank::{self, Link};
use super::shared::Shared;
use super::watchdog::Watchdog;
use super::wire::build_of;

/// The argument a spawned worker rank is started with (`MPI_Comm_spawn` cannot set its environment portably;
/// mpi4py passes `-m mpi4py.futures.server` the same way).
pub(crate) const MARKER: &str = "--concurrent-futures-mpi-worker";

/// How this process takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Not started by MPI: MPI starts only if the program builds a pool (which then spawns its workers).
    Plain,
    /// Rank 0 of an MPI job (or its only rank): runs `main`; MPI starts at once.
    Main,
    /// Rank 1..N-1 of an `mpirun` job: serves rank 0's pool.
    WorkerRank,
    /// Started by a pool's `MPI_Comm_spawn`: serves that pool.
    Spawned,
}

fn env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| std::env::var(name).ok())
}

/// Whether an MPI launcher started this process (Open MPI, or a PMI-based launcher such as MPICH's or Slurm's).
fn launched_by_mpi() -> bool {
    env(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]).is_some()
}

/// Whether this process was started with the worker marker.
fn marked() -> bool {
    std::env::args_os().nth(1).is_some_and(|arg| arg == MARKER)
}

/// This process's role.
pub(crate) fn role() -> Role {
    // A process-pool worker's descendant inherits its rank's MPI variables: it is not an MPI process.
    if std::env::var_os(WORKER_ENV).is_some() || !launched_by_mpi() {
        return Role::Plain;
    }
    if marked() {
        return Role::Spawned;
    }
    let size: Option<u64> = env(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]).and_then(|s| s.parse().ok());
    let rank: Option<u64> =
        env(&["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]).and_then(|s| s.parse().ok());
    match (size, rank) {
        (Some(size), Some(rank)) if size > 1 && rank > 0 => Role::WorkerRank,
        _ => Role::Main,
    }
}

/// Whether this process runs inside an MPI job's worker: a worker rank, or a local worker process of one
/// (where building another MPI pool would spawn workers from workers).
pub(crate) fn inside_worker() -> bool {
    matches!(role(), Role::WorkerRank | Role::Spawned)
        || (std::env::var_os(WORKER_ENV).is_some() && launched_by_mpi())
}

/// In a worker rank, serves the pool and exits; never returns.
pub(crate) fn serve_rank(installed: Result<&'static Installed, Error>, role: Role) -> ! {
    let linked = comm::init().and_then(|()| match role {
        Role::Spawned => comm::parent().map(|parent| {
            parent.map(|comm| Link {
                comm,
                manager: 0,
                spawned: true,
            })
        }),
        _ => comm::dup(comm::world()).map(|comm| {
            Some(Link {
                comm,
                manager: 0,
                spawned: false,
            })
        }),
    });
    match linked {
        Ok(Some(link)) => rank::serve(installed, link),
        Ok(None) => {
            eprintln!(
                "concurrent_futures: started with {MARKER} but not spawned by an MpiPoolExecutor; exiting"
            );
            let _ = comm::finalize();
            std::process::exit(2)
        }
        Err(error) => {
            eprintln!("concurrent_futures MPI worker: {error}");
            std::process::exit(70)
        }
    }
}

/// After the registry is installed in a program's own process: on rank 0 of an MPI job, starts MPI now (every
/// rank's `MPI_Init` waits for all of them); elsewhere nothing.
pub(crate) fn main_started() -> Result<(), Error> {
    match role() {
        Role::Main => service().map(|_| ()),
        _ if marked() && std::env::var_os(WORKER_ENV).is_none() => {
            Err(Error::InvalidState(format!(
                "this program was started with {MARKER}, which only an MpiPoolExecutor's MPI_Comm_spawn passes"
            )))
        }
        _ => Ok(()),
    }
}

/// A one-shot flag to wait on.
pub(crate) struct Latch {
    set: Mutex<bool>,
    changed: Condvar,
}

impl Latch {
    pub(crate) fn new() -> Self {
        Latch {
            set: Mutex::new(false),
            changed: Condvar::new(),
        }
    }

    pub(crate) fn set(&self) {
        *self.set.lock() = true;
        self.changed.notify_all();
    }

    /// Waits until set or `deadline`; whether it was set.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        let mut set = self.set.lock();
        while !*set {
            if self.changed.wait_until(&mut set, deadline) {
                return *set;
            }
        }
        true
    }
}

thread_local! {
    /// Whether this thread is the MPI thread (done-callbacks run there; it must not wait for itself).
    #[allow(clippy::missing_const_for_thread_local)] // loom's thread_local! takes no `const` initializer
    static ON_MPI_THREAD: Cell<bool> = Cell::new(false);
}

/// Whether the calling thread is the program's MPI thread.
pub(crate) fn on_mpi_thread() -> bool {
    ON_MPI_THREAD.with(Cell::get)
}

/// The handle pools use to reach the MPI thread.
pub(crate) struct Service {
    commands: Arc<Queue<Command>>,
    wake: Arc<AtomicBool>,
    /// The size of `MPI_COMM_WORLD`: above 1, the ranks 1..N-1 are this program's shared worker ranks.
    pub(crate) world_size: usize,
    /// A pool is using the shared worker ranks.
    pub(crate) shared_claimed: Arc<AtomicBool>,
    /// Breaks every pool if a blocking MPI call hangs.
    pub(crate) watchdog: Arc<Watchdog>,
}

static SERVICE: OnceLock<Result<Service, Error>> = OnceLock::new();

/// The program's MPI service, started (and MPI initialised) on first use.
pub(crate) fn service() -> Result<&'static Service, Error> {
    SERVICE
        .get_or_init(Service::start)
        .as_ref()
        .map_err(Clone::clone)
}

impl Service {
    fn start() -> Result<Service, Error> {
        let installed = installed()?;
        let build = build_of(installed.identity.tasks, installed.identity.names_hash);
        let commands = Arc::new(Queue::new(None));
        let wake = Arc::new(AtomicBool::new(false));
        let shared_claimed = Arc::new(AtomicBool::new(false));
        let watchdog = Watchdog::start()?;
        let started: Arc<Queue<Result<usize, Error>>> = Arc::new(Queue::new(None));
        let (queue, flag, claimed, report, watch) = (
            commands.clone(),
            wake.clone(),
            shared_claimed.clone(),
            started.clone(),
            watchdog.clone(),
        );
        thread::spawn_named("mpi-pool-manager".into(), move || {
            ON_MPI_THREAD.with(|on| on.set(true));
            match setup() {
                Ok((world_size, shared, owns_mpi)) => {
                    let _ = report.push(Ok(world_size));
                    Manager::new(queue, flag, claimed, watch, build, shared, owns_mpi).run();
                }
                Err(error) => {
                    let _ = report.push(Err(error));
                }
            }
        })
        .map_err(|error| Error::Broken {
            reason: format!("could not start the MPI thread: {error}"),
        })?;
        let world_size = match started.pop_until(None) {
            Pop::Item(result) => result?,
            _ => {
                return Err(Error::Broken {
                    reason: "the MPI thread ended before MPI started".into(),
                });
            }
        };
        register_exit_hook();
        Ok(Service {
            commands,
            wake,
            world_size,
            shared_claimed,
            watchdog,
        })
    }

    /// Hands a new pool to the MPI thread; fails once MPI is finalised (the program is exiting).
    pub(crate) fn open(&self, pool: Arc<Shared>) -> Result<(), Error> {
        self.watchdog.watch(&pool);
        self.commands
            .push(Command::Open(pool))
            .map_err(|_| Error::Broken {
                reason: "MPI is finalised: the program is exiting".into(),
            })
    }

    /// Tells the MPI thread that a pool has work or closed.
    pub(crate) fn wake(&self) {
        // ORDERING: SeqCst, paired with the MPI thread's store of `false` before it reads the pools' queues
        // (see `Manager::run`): either it reads after our job was queued, or our swap sees `false` and we push.
        if !self.wake.swap(true, Ordering::SeqCst) {
            let _ = self.commands.push(Command::Wake);
        }
    }

    /// At exit: asks the MPI thread to end every rank and finalise MPI, waiting at most `limit` for it.
    fn finalize(&self, limit: Duration) {
        if on_mpi_thread() {
            return;
        }
        let latch = Arc::new(Latch::new());
        if self.commands.push(Command::Finalize(latch.clone())).is_ok()
            && !latch.wait_until(Instant::now() + limit)
        {
            eprintln!(
                "concurrent_futures: MPI did not finalise within {limit:?} at exit (a worker rank is still busy?)"
            );
        }
    }
}

/// Initialises MPI on this (the MPI) thread, unless the program already did with `MPI_THREAD_MULTIPLE`. Returns
/// the world size, the shared ranks' private communicator (if the world has worker ranks) and whether this thread
/// owns MPI (and finalises it).
type Setup = (usize, Option<(comm::Comm, usize)>, bool);

fn setup() -> Result<Setup, Error> {
    let broken = |error: comm::MpiError| Error::Broken {
        reason: error.to_string(),
    };
    let owns_mpi = if comm::is_initialized() {
        if !comm::thread_level_is_multiple() {
            return Err(Error::InvalidState(
                "MPI was initialised by the program below MPI_THREAD_MULTIPLE; let the pool initialise it, \
                 or initialise it with MPI_THREAD_MULTIPLE"
                    .into(),
            ));
        }
        false
    } else {
        comm::init().map_err(broken)?;
        true
    };
    let size = comm::size(comm::world()).map_err(broken)? as usize;
    let shared = if size > 1 {
        Some((comm::dup(comm::world()).map_err(broken)?, size - 1))
    } else {
        None
    };
    Ok((size, shared, owns_mpi))
}

unsafe extern "C" {
    /// The C library's `atexit` (std links it on every Unix).
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

/// Runs at process exit: ends the worker ranks and finalises MPI (a job whose rank exits without
/// `MPI_Finalize` is reported as failed by `mpirun`).
extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(service)) = SERVICE.get() {
            service.finalize(Duration::from_secs(60));
        }
    });
}

fn register_exit_hook() {
    // SAFETY: `at_exit` is a plain function that never unwinds (it catches panics); registering it has no other
    // precondition.
    if unsafe { atexit(at_exit) } != 0 {
        log::warn!(target: "concurrent_futures", "could not register the MPI exit hook; MPI will not be finalised at exit");
    }
}
