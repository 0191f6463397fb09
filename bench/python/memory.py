"""Bytes per pending ThreadPoolExecutor future, for the concurrent-futures benchmark harness.

One worker is blocked by a gate, then N no-op tasks are submitted (the futures kept in a list, as a caller would).
The RSS delta (VmRSS in /proc/self/status) divided by N is printed as {"bytes_per_item": float, ...}. Run in a
fresh interpreter per measurement so the heap starts clean; exits without draining the queue.
"""

import argparse
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def noop():
    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1_000_000)
    args = ap.parse_args()
    n = args.tasks
    ex = ThreadPoolExecutor(max_workers=1)
    gate = threading.Event()
    started = threading.Event()

    def block():
        started.set()
        gate.wait()

    ex.submit(block)
    started.wait()
    futs = []
    before = rss_bytes()
    for _ in range(n):
        futs.append(ex.submit(noop))
    after = rss_bytes()
    print(json.dumps({"bytes_per_item": (after - before) / n, "python": sys.version.split()[0]}))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
