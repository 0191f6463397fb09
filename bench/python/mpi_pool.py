"""mpi4py.futures side of the concurrent-futures benchmark harness (workload 7).

Prints one JSON object: {"ns_per_item": float, "python": "3.x.y"}. Interpreter start-up, MPI start-up and the
spawning of the workers (and warm-up: every worker used) are not timed. Run it as a singleton (not under mpirun):
MPIPoolExecutor spawns its `--workers` worker ranks with MPI_Comm_spawn, as the Rust pool does.

Modes:
  submit  submit N no-op tasks keeping the futures, then result() each in order
  map     list(ex.map(inc, range(N), chunksize=C))
"""

import argparse
import json
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def noop():
    pass


def inc(x):
    return x + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["submit", "map"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--chunksize", type=int, default=1000)
    args = ap.parse_args()
    n = args.tasks
    with MPIPoolExecutor(max_workers=args.workers) as ex:
        for f in [ex.submit(noop) for _ in range(8 * args.workers)]:
            f.result()
        start = time.perf_counter_ns()
        if args.mode == "submit":
            futs = [ex.submit(noop) for _ in range(n)]
            for f in futs:
                f.result()
        else:
            out = list(ex.map(inc, range(n), chunksize=args.chunksize))
            assert len(out) == n
        elapsed = time.perf_counter_ns() - start
    print(json.dumps({"ns_per_item": elapsed / n, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
