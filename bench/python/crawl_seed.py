#!/usr/bin/env python3
"""The seed program (ThreadPoolExecutor + submit + add_done_callback), grown into a small crawler.

Standard library only: concurrent.futures, urllib, html.parser. It is the Python side of the crawler benchmark
(`cargo run --release --example crawler_bench`), so it crawls like the Rust example: same host only, breadth of
links followed up to --depth, at most --max-pages fetches, no URL fetched twice (after normalisation). Unlike the
Rust crawler it lets urllib follow redirects and does not read robots.txt.

    python3 bench/python/crawl_seed.py http://127.0.0.1:PORT/ --workers 8 --max-pages 400

prints one JSON object: pages, elapsed_s, pages_per_s, statuses, errors.
"""

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit


class LinkParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag in ("a", "area"):
            for name, value in attrs:
                if name == "href" and value:
                    self.links.append(value)


def normalise(base, href):
    url, _ = urldefrag(urljoin(base, href.strip()))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))


# No proxies: the benchmark's site is on 127.0.0.1.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url, timeout):
    """The task: fetch one URL (the seed's `get`)."""
    try:
        with OPENER.open(url, timeout=timeout) as response:
            body = response.read()
            return url, response.status, response.headers.get_content_type(), body, None
    except urllib.error.HTTPError as e:
        return url, e.code, None, b"", None
    except Exception as e:  # timeouts, refused connections, redirect loops...
        return url, None, None, b"", type(e).__name__


class Crawl:
    def __init__(self, start, workers, depth, max_pages, timeout):
        self.start = start
        self.host = urlsplit(start).netloc
        self.depth = depth
        self.max_pages = max_pages
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(workers)
        self.lock = threading.Lock()
        self.seen = set()
        self.submitted = 0
        self.outstanding = 0
        self.done = threading.Event()
        self.statuses = {}
        self.errors = {}
        self.pages = 0

    def submit(self, url, depth):
        """Called with the lock held."""
        if url in self.seen or self.submitted >= self.max_pages:
            return
        self.seen.add(url)
        self.submitted += 1
        self.outstanding += 1
        future = self.pool.submit(get, url, self.timeout)
        future.add_done_callback(lambda f: self.parse(f, depth))

    def parse(self, future, depth):
        """The done-callback (the seed's `parse`): runs in the worker thread, submits the links it finds."""
        url, status, content_type, body, error = future.result()
        links = []
        try:
            if status == 200 and content_type == "text/html" and depth < self.depth:
                parser = LinkParser()
                parser.feed(body.decode("utf-8", "replace"))
                for href in parser.links:
                    link = normalise(url, href)
                    if link and urlsplit(link).netloc == self.host:
                        links.append(link)
        except Exception as e:
            error = error or type(e).__name__
        with self.lock:
            self.pages += 1
            key = "%dxx" % (status // 100) if status else "none"
            self.statuses[key] = self.statuses.get(key, 0) + 1
            if error:
                self.errors[error] = self.errors.get(error, 0) + 1
            for link in links:
                self.submit(link, depth + 1)
            self.outstanding -= 1
            if self.outstanding == 0:
                self.done.set()

    def run(self):
        started = time.perf_counter()
        with self.lock:
            self.submit(normalise(self.start, self.start), 0)
        self.done.wait()
        elapsed = time.perf_counter() - started
        self.pool.shutdown(wait=True)
        return {
            "pages": self.pages,
            "elapsed_s": elapsed,
            "pages_per_s": self.pages / elapsed if elapsed > 0 else 0.0,
            "statuses": self.statuses,
            "errors": self.errors,
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--max-pages", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if args.workers < 1 or args.max_pages < 1 or args.depth < 0:
        parser.error("--workers and --max-pages must be at least 1, --depth at least 0")
    result = Crawl(args.url, args.workers, args.depth, args.max_pages, args.timeout).run()
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
