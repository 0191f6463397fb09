//! Counts the primes below a bound on MPI worker ranks, one range per task, and prints what ran where.
//!
//! ```sh
//! sudo apt-get install -y openmpi-bin libopenmpi-dev libclang-dev
//! cargo build --features mpi --release --example mpi_primes
//! mpirun -n 4 target/release/examples/mpi_primes            # rank 0 runs main, ranks 1-3 serve
//! target/release/examples/mpi_primes --workers 3            # spawns 3 worker ranks (MPI_Comm_spawn)
//! ```
//!
//! As root add `--allow-run-as-root` to `mpirun`; on a machine with fewer cores than ranks add `--oversubscribe`
//! (or, for the spawning form, `OMPI_MCA_rmaps_base_oversubscribe=1`).

use std::collections::BTreeMap;
use std::time::Instant;

use concurrent_futures::{Error, MapOptions, MpiPoolExecutor};
use serde::{Deserialize, Serialize};

/// What one task reports: its range, the primes in it, and where it ran.
#[derive(Debug, Serialize, Deserialize)]
struct Counted {
    start: u64,
    end: u64,
    primes: u64,
    rank: String,
    host: String,
    pid: u32,
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The task: counts the primes in `start..end`.
fn count_primes((start, end): (u64, u64)) -> Counted {
    Counted {
        start,
        end,
        primes: (start..end).filter(|&n| is_prime(n)).count() as u64,
        // A task runs in a local worker process of its rank, which inherits the rank's MPI variables.
        rank: std::env::var("OMPI_COMM_WORLD_RANK")
            .or_else(|_| std::env::var("PMI_RANK"))
            .unwrap_or_else(|_| "?".into()),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "?".into()),
        pid: std::process::id(),
    }
}

fn main() -> Result<(), Error> {
    // On a worker rank (and in each rank's local worker processes) this line serves tasks and never returns.
    concurrent_futures::process_main!(count_primes)?;

    let mut args = std::env::args().skip(1);
    let mut workers = 3;
    let mut limit: u64 = 2_000_000;
    let mut ranges = 16;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("usage: mpi_primes [--workers N] [--limit N] [--ranges N] ({name} needs a number)");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--workers" => workers = value("--workers") as usize,
            "--limit" => limit = value("--limit"),
            "--ranges" => ranges = value("--ranges").max(1),
            _ => {
                eprintln!("usage: mpi_primes [--workers N] [--limit N] [--ranges N]");
                std::process::exit(2);
            }
        }
    }

    let started = Instant::now();
    let pool = MpiPoolExecutor::new(workers)?;
    let step = limit.div_ceil(ranges);
    let tasks: Vec<(u64, u64)> = (0..ranges)
        .map(|i| (i * step, ((i + 1) * step).min(limit)))
        .collect();
    let results: Vec<Counted> = pool
        .map_with(count_primes, tasks, MapOptions::new())?
        .collect::<Result<_, _>>()?;

    let how = if pool.spawned() { "spawned" } else { "mpirun" };
    println!("{} worker rank(s) ({how}):", pool.max_workers());
    for worker in pool.workers() {
        println!(
            "  rank {} on {} (pid {})",
            worker.rank, worker.host, worker.pid
        );
    }
    let mut per_rank: BTreeMap<(String, String), u64> = BTreeMap::new();
    for counted in &results {
        println!(
            "  [{:>9}, {:>9})  {:>6} primes   rank {} on {} (local worker pid {})",
            counted.start, counted.end, counted.primes, counted.rank, counted.host, counted.pid
        );
        *per_rank
            .entry((counted.rank.clone(), counted.host.clone()))
            .or_default() += 1;
    }
    let total: u64 = results.iter().map(|c| c.primes).sum();
    println!("primes below {limit}: {total}");
    for ((rank, host), n) in per_rank {
        println!("  rank {rank} on {host} ran {n} range(s)");
    }
    println!("elapsed {:.2} s", started.elapsed().as_secs_f64());
    pool.shutdown(true);
    Ok(())
}
