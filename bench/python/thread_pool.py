"""ThreadPoolExecutor side of the concurrent-futures benchmark harness.

Run by the Rust harness (bench/src/python.rs) once per round, interleaved with the Rust contenders. Prints one JSON
object on stdout: {"ns_per_item": float, "python": "3.x.y", ...}. Pool start-up and warm-up are not timed.

Modes (same shapes as the Rust side):
  submit     submit N no-op tasks keeping the futures, then result() each in order
  producers  P threads each submit N/P no-op tasks, then result() their own futures
  map        list(ex.map(f, range(N))) with optional --buffersize (Python 3.14+ only)
  callback   one worker blocked by a gate; N tasks return perf_counter_ns() as their last act, each future gets a
             done-callback that records perf_counter_ns() - result; ns_per_item is the median latency
"""

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def noop():
    pass


def inc(x):
    return x + 1


def warm(ex, workers):
    for f in [ex.submit(noop) for _ in range(16 * workers)]:
        f.result()


def submit(workers, n, _args):
    with ThreadPoolExecutor(max_workers=workers) as ex:
        warm(ex, workers)
        start = time.perf_counter_ns()
        futs = [ex.submit(noop) for _ in range(n)]
        for f in futs:
            f.result()
        return (time.perf_counter_ns() - start) / n, {}


def producers(workers, n, args):
    p = args.producers
    each = n // p
    with ThreadPoolExecutor(max_workers=workers) as ex:
        warm(ex, workers)
        barrier = threading.Barrier(p)
        spans = []

        def produce():
            barrier.wait()
            start = time.perf_counter_ns()
            futs = [ex.submit(noop) for _ in range(each)]
            for f in futs:
                f.result()
            spans.append((start, time.perf_counter_ns()))

        threads = [threading.Thread(target=produce) for _ in range(p)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = max(e for _, e in spans) - min(s for s, _ in spans)
        return elapsed / (each * p), {}


def map_(workers, n, args):
    kwargs = {}
    if args.buffersize:
        if sys.version_info < (3, 14):
            return None, {"skipped": "buffersize needs Python 3.14"}
        kwargs["buffersize"] = args.buffersize
    with ThreadPoolExecutor(max_workers=workers) as ex:
        warm(ex, workers)
        start = time.perf_counter_ns()
        out = list(ex.map(inc, range(n), **kwargs))
        elapsed = time.perf_counter_ns() - start
        assert len(out) == n
        return elapsed / n, {}


def callback(_workers, n, _args):
    latencies = []
    lock = threading.Lock()

    def stamp():
        return time.perf_counter_ns()

    def on_done(f):
        end = time.perf_counter_ns()
        with lock:
            latencies.append(end - f.result())

    with ThreadPoolExecutor(max_workers=1) as ex:
        warm(ex, 1)
        gate = threading.Event()
        ex.submit(gate.wait)
        futs = [ex.submit(stamp) for _ in range(n)]
        for f in futs:
            f.add_done_callback(on_done)
        gate.set()
        for f in futs:
            f.result()
    latencies.sort()
    return float(latencies[len(latencies) // 2]), {}


MODES = {"submit": submit, "producers": producers, "map": map_, "callback": callback}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--buffersize", type=int, default=0)
    args = ap.parse_args()
    ns, extra = MODES[args.mode](args.workers, args.tasks, args)
    out = {"ns_per_item": ns, "python": sys.version.split()[0]}
    out.update(extra)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
