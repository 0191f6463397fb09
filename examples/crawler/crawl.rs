//! The crawl itself: each fetch is a task on a `ThreadPoolExecutor`, which reads the page's links as its body
//! streams in (`links::LinkExtractor`); a done-callback on its future records the page and submits the links found.
//!
//! The crawl is breadth-first and deterministic, whatever the order in which fetches finish. Every URL the crawl
//! accepts gets the next place in one BFS queue (`State::entries`). Fetches run ahead, up to twice as many as there
//! are workers, but a page's links join the queue only when every page before it in the queue has been processed
//! (the "commit" pointer). So the pages reached for a given `--depth` and `--max-pages` are exactly those a
//! one-page-at-a-time BFS would reach, while up to `--workers` fetches are in flight.
//!
//! Redirects are not followed by the HTTP client: a redirect's target joins the queue like a link (at the same
//! depth), so no URL is ever fetched twice, not even the target of a redirect that was already crawled.
//!
//! The end of the crawl is known without polling: the callback that commits the last entry of the queue, with
//! nothing left to add, sends `Event::Done` on a channel the main thread waits on. Ctrl-C sends `Event::Interrupted`
//! on the same channel.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use concurrent_futures::{Error as PoolError, Future, ThreadPoolExecutor};
use indicatif::ProgressBar;
use serde::Serialize;
use url::Url;

use super::fetch::{ErrorKind, Fetched, Fetcher};
use super::links::{self, PageLinks};
use super::robots::RobotsCache;

/// At most this many redirects in a row.
pub const MAX_REDIRECTS: u32 = 10;

/// What the main thread waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Every accepted URL has been fetched and processed.
    Done,
    /// Ctrl-C: stop submitting, cancel what is queued, report what is done.
    Interrupted,
}

/// What to crawl, and how.
#[derive(Debug, Clone)]
pub struct Config {
    pub start: Url,
    pub depth: u32,
    pub max_pages: usize,
    pub workers: usize,
    pub timeout: Duration,
    pub all_hosts: bool,
    pub ignore_robots: bool,
}

/// One fetched URL, as reported.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PageRecord {
    pub url: String,
    pub depth: u32,
    /// The HTTP status; `None` when no response came (see `error`).
    pub status: Option<u16>,
    /// Body bytes read.
    pub bytes: u64,
    /// Distinct http(s) links found on the page.
    pub links: usize,
    /// What went wrong, if anything (an HTTP error status is a status, not an error).
    pub error: Option<ErrorKind>,
    /// The error in words.
    pub detail: Option<String>,
    pub content_type: Option<String>,
    /// Where a redirect points (resolved).
    pub redirect: Option<String>,
    pub elapsed_ms: f64,
}

/// Everything the crawl found, for the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub config: Config,
    /// In BFS order.
    pub pages: Vec<PageRecord>,
    pub robots_blocked: Vec<String>,
    /// Distinct links not followed because they lead to another host (without `--all-hosts`).
    pub offsite_skipped: usize,
    /// Distinct links not followed because `--max-pages` was reached.
    pub budget_skipped: usize,
    /// Fetches cancelled by Ctrl-C before they started.
    pub cancelled: usize,
    pub interrupted: bool,
    pub elapsed: Duration,
}

/// One place in the BFS queue.
struct Entry {
    url: Url,
    depth: u32,
    /// Redirect hops that led here.
    hops: u32,
    /// Set when the fetch finished (`None` inside: nothing to report, e.g. cancelled or blocked by robots.txt).
    done: Option<Processed>,
}

/// What the callback made of a finished fetch.
struct Processed {
    record: Option<PageRecord>,
    /// Links to follow (already resolved and normalised); `None` for `nofollow` pages and non-pages.
    links: Option<Arc<PageLinks>>,
    redirect: Option<Url>,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    /// Normalised URLs that have a place in the queue (or were blocked by robots.txt): never fetched again.
    seen: HashSet<String>,
    /// Committed redirects, source -> target, to recognise loops.
    redirects: HashMap<String, Url>,
    next_submit: usize,
    next_commit: usize,
    in_flight: usize,
    robots_blocked: Vec<String>,
    offsite: HashSet<String>,
    over_budget: HashSet<String>,
    cancelled: usize,
    finished: bool,
}

/// The crawl's shared state; tasks and callbacks hold an `Arc` of it.
pub struct Crawl {
    config: Config,
    pool: ThreadPoolExecutor,
    fetcher: Fetcher,
    robots: RobotsCache,
    state: Mutex<State>,
    events: Mutex<Sender<Event>>,
    stopping: AtomicBool,
    progress: ProgressBar,
    started: Instant,
}

/// A finished (or interrupted) crawl whose pool may still be winding down.
pub struct Finished {
    crawl: Arc<Crawl>,
}

impl Finished {
    /// Waits for fetches still running (after Ctrl-C: at most `--timeout`), then releases the pool. (Dropping a
    /// `Finished` does the same.)
    pub fn wait(self) {}
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.crawl.pool.shutdown(true);
    }
}

/// Runs a crawl until it is done or `events` says `Interrupted`. Returns what was found, and a handle to wait for
/// fetches still running after an interruption.
pub fn run(
    config: Config,
    events_tx: Sender<Event>,
    events: &Receiver<Event>,
    progress: ProgressBar,
) -> Result<(Outcome, Finished), String> {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(config.workers)
        .thread_name_prefix("fetch")
        .build()
        .map_err(|e| format!("cannot start the thread pool: {e}"))?;
    let loopback = match config.start.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    let fetcher = Fetcher::new(config.timeout, config.workers, !loopback)?;
    let crawl = Arc::new(Crawl {
        config,
        pool,
        fetcher,
        robots: RobotsCache::default(),
        state: Mutex::new(State::default()),
        events: Mutex::new(events_tx),
        stopping: AtomicBool::new(false),
        progress,
        started: Instant::now(),
    });
    let finished = Finished {
        crawl: Arc::clone(&crawl),
    };
    crawl.begin();
    let interrupted = match events.recv() {
        Ok(Event::Done) => false,
        Ok(Event::Interrupted) | Err(_) => true,
    };
    if interrupted {
        // Stop committing and submitting, and cancel every fetch still waiting in the pool's queue.
        crawl.stopping.store(true, Ordering::SeqCst);
        crawl.pool.shutdown_with(false, true);
    } else {
        crawl.pool.shutdown(true);
    }
    crawl.progress.finish_and_clear();
    Ok((crawl.outcome(interrupted), finished))
}

thread_local! {
    /// Set while this thread is inside `Crawl::pump`: a callback that runs inline (its future was already done when
    /// the callback was added) asks the running pump for another round instead of recursing.
    static PUMPING: std::cell::Cell<(bool, bool)> = const { std::cell::Cell::new((false, false)) };
}

impl Crawl {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn signal(&self, event: Event) {
        let _ = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(event);
    }

    fn begin(self: &Arc<Self>) {
        let start = self.config.start.clone();
        // The start origin's robots.txt is fetched before anything else, so every later check is instant.
        let allowed = self.config.ignore_robots || self.robots.check(&start, &self.fetcher);
        {
            let mut st = self.lock();
            st.seen.insert(start.as_str().to_owned());
            if !allowed {
                st.robots_blocked.push(start.to_string());
                st.finished = true;
                drop(st);
                self.signal(Event::Done);
                return;
            }
            st.entries.push(Entry {
                url: start,
                depth: 0,
                hops: 0,
                done: None,
            });
        }
        self.pump();
    }

    /// Submits queued entries while fewer than twice the worker count are in flight.
    fn pump(self: &Arc<Self>) {
        let nested = PUMPING.with(|p| {
            let (active, _) = p.get();
            if active {
                p.set((true, true));
            }
            active
        });
        if nested {
            return;
        }
        PUMPING.with(|p| p.set((true, false)));
        loop {
            self.pump_once();
            let again = PUMPING.with(|p| {
                let (_, again) = p.get();
                p.set((true, false));
                again
            });
            if !again {
                break;
            }
        }
        PUMPING.with(|p| p.set((false, false)));
    }

    fn pump_once(self: &Arc<Self>) {
        let window = self.config.workers * 2;
        let batch: Vec<(usize, Url, u32)> = {
            let mut st = self.lock();
            let mut batch = Vec::new();
            while !self.stopping.load(Ordering::SeqCst)
                && st.next_submit < st.entries.len()
                && st.in_flight < window
            {
                let i = st.next_submit;
                batch.push((i, st.entries[i].url.clone(), st.entries[i].depth));
                st.next_submit += 1;
                st.in_flight += 1;
            }
            batch
        };
        for (index, url, depth) in batch {
            self.submit(index, url, depth);
        }
    }

    /// One fetch as a task on the pool, and the callback that processes it.
    fn submit(self: &Arc<Self>, index: usize, url: Url, depth: u32) {
        let task_url = url.clone();
        let me = Arc::clone(self);
        let future: Result<Future<Fetched>, PoolError> = self.pool.submit(move || {
            let started = Instant::now();
            // Another host's robots.txt (with --all-hosts) is fetched by the first task that needs it.
            if !me.config.ignore_robots && !me.robots.check(&task_url, &me.fetcher) {
                return Fetched::failed(ErrorKind::Robots, "disallowed by robots.txt", started);
            }
            me.fetcher.fetch(&task_url)
        });
        match future {
            Ok(future) => {
                let me = Arc::clone(self);
                future.add_done_callback(move |f: &Future<Fetched>| {
                    me.on_done(index, &url, depth, f)
                });
            }
            // The pool is shutting down (Ctrl-C): this one will not run.
            Err(_) => self.finish_entry(index, None, true),
        }
    }

    /// The done-callback: runs on the worker thread that finished the fetch.
    fn on_done(self: &Arc<Self>, index: usize, url: &Url, depth: u32, future: &Future<Fetched>) {
        let processed = match future.result() {
            Ok(fetched)
                if fetched
                    .error
                    .as_ref()
                    .is_some_and(|(kind, _)| *kind == ErrorKind::Robots) =>
            {
                self.lock().robots_blocked.push(url.to_string());
                Processed {
                    record: None,
                    links: None,
                    redirect: None,
                }
            }
            Ok(fetched) => examine(url, depth, fetched),
            Err(PoolError::Cancelled) => {
                self.finish_entry(index, None, true);
                return;
            }
            Err(e) => {
                let record = PageRecord {
                    url: url.to_string(),
                    depth,
                    status: None,
                    bytes: 0,
                    links: 0,
                    error: Some(ErrorKind::Panicked),
                    detail: Some(e.to_string()),
                    content_type: None,
                    redirect: None,
                    elapsed_ms: 0.0,
                };
                Processed {
                    record: Some(record),
                    links: None,
                    redirect: None,
                }
            }
        };
        self.progress.inc(1);
        self.finish_entry(index, Some(processed), false);
    }

    /// Stores what a fetch produced, commits every entry that can now be committed, and submits more.
    fn finish_entry(self: &Arc<Self>, index: usize, processed: Option<Processed>, cancelled: bool) {
        let mut done = false;
        {
            let mut st = self.lock();
            st.in_flight -= 1;
            if cancelled {
                st.cancelled += 1;
            }
            st.entries[index].done = Some(processed.unwrap_or(Processed {
                record: None,
                links: None,
                redirect: None,
            }));
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            while st.next_commit < st.entries.len() {
                let i = st.next_commit;
                if st.entries[i].done.is_none() {
                    break;
                }
                self.commit(&mut st, i);
                st.next_commit += 1;
            }
            let queued = st.entries.len() - st.next_submit;
            if !self.progress.is_hidden() {
                self.progress
                    .set_message(format!("· {} in flight · {queued} waiting", st.in_flight));
            }
            if st.next_commit == st.entries.len() && !st.finished {
                st.finished = true;
                done = true;
            }
        }
        if done {
            self.signal(Event::Done);
        } else {
            self.pump();
        }
    }

    /// Processes entry `i` in BFS order: its links (or its redirect target) join the queue.
    fn commit(&self, st: &mut State, i: usize) {
        let (url, depth, hops) = (
            st.entries[i].url.clone(),
            st.entries[i].depth,
            st.entries[i].hops,
        );
        let Some(processed) = st.entries[i].done.as_mut() else {
            return;
        };
        let links = processed.links.take();
        let redirect = processed.redirect.take();
        if let Some(target) = redirect {
            // A loop: following the committed redirects from the target leads back here.
            let mut cursor = Some(target.clone());
            let mut steps = 0;
            let mut is_loop = false;
            while let Some(at) = cursor {
                if at == url {
                    is_loop = true;
                    break;
                }
                steps += 1;
                if steps > MAX_REDIRECTS * 4 {
                    break;
                }
                cursor = st.redirects.get(at.as_str()).cloned();
            }
            st.redirects.insert(url.as_str().to_owned(), target.clone());
            let error = if is_loop {
                Some((
                    ErrorKind::RedirectLoop,
                    format!("redirects back to {target}"),
                ))
            } else if hops >= MAX_REDIRECTS {
                Some((
                    ErrorKind::TooManyRedirects,
                    format!("more than {MAX_REDIRECTS} redirects in a row"),
                ))
            } else {
                None
            };
            if let Some((kind, detail)) = error {
                if let Some(record) = st.entries[i].done.as_mut().and_then(|p| p.record.as_mut()) {
                    record.error = Some(kind);
                    record.detail = Some(detail);
                }
            } else {
                self.accept(st, target, depth, hops + 1);
            }
        } else if depth < self.config.depth {
            for link in links.iter().flat_map(|found| &found.links) {
                self.accept_link(st, link, depth + 1);
            }
        }
    }

    /// [`accept`](Self::accept) for a link of a page, copied only if it is new.
    fn accept_link(&self, st: &mut State, url: &Url, depth: u32) {
        if !st.seen.contains(url.as_str()) {
            self.accept(st, url.clone(), depth, 0);
        }
    }

    /// Gives `url` a place in the queue unless it is off-site, already seen, disallowed, or over budget.
    fn accept(&self, st: &mut State, url: Url, depth: u32, hops: u32) {
        if st.seen.contains(url.as_str()) {
            return;
        }
        if !self.config.all_hosts && !same_site(&url, &self.config.start) {
            st.offsite.insert(url.into());
            return;
        }
        if !self.config.ignore_robots && self.robots.check_known(&url) == Some(false) {
            st.seen.insert(url.as_str().to_owned());
            st.robots_blocked.push(url.into());
            return;
        }
        if st.entries.len() >= self.config.max_pages {
            st.over_budget.insert(url.into());
            return;
        }
        st.seen.insert(url.as_str().to_owned());
        st.entries.push(Entry {
            url,
            depth,
            hops,
            done: None,
        });
    }

    fn outcome(&self, interrupted: bool) -> Outcome {
        let st = self.lock();
        Outcome {
            config: self.config.clone(),
            pages: st
                .entries
                .iter()
                .filter_map(|e| e.done.as_ref().and_then(|p| p.record.clone()))
                .collect(),
            robots_blocked: st.robots_blocked.clone(),
            offsite_skipped: st.offsite.len(),
            budget_skipped: st.over_budget.len(),
            cancelled: st.cancelled,
            interrupted,
            elapsed: self.started.elapsed(),
        }
    }
}

/// Same host and port (the scheme may differ: http and https of one site are one site).
fn same_site(a: &Url, b: &Url) -> bool {
    a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// The callback's work on a finished fetch: the record, and the page's links (parsed here, on the worker thread).
fn examine(url: &Url, depth: u32, fetched: &Fetched) -> Processed {
    let mut record = PageRecord {
        url: url.to_string(),
        depth,
        status: fetched.status,
        bytes: fetched.bytes,
        links: 0,
        error: fetched.error.as_ref().map(|(kind, _)| *kind),
        detail: fetched.error.as_ref().map(|(_, detail)| detail.clone()),
        content_type: fetched.content_type.clone(),
        redirect: None,
        elapsed_ms: fetched.elapsed.as_secs_f64() * 1000.0,
    };
    let mut processed = Processed {
        record: None,
        links: None,
        redirect: None,
    };
    if let Some(status @ (301 | 302 | 303 | 307 | 308)) = fetched.status {
        match fetched
            .location
            .as_deref()
            .and_then(|location| links::resolve(url, location))
        {
            Some(target) => {
                record.redirect = Some(target.to_string());
                processed.redirect = Some(target);
            }
            None if record.error.is_none() => {
                record.error = Some(ErrorKind::BadRedirect);
                record.detail = Some(match &fetched.location {
                    Some(location) => format!("{status} to an unusable Location: {location:?}"),
                    None => format!("{status} without a Location header"),
                });
            }
            None => {}
        }
    }
    if let Some(found) = &fetched.links {
        if let Some(detail) = &fetched.encoding_error {
            record.error.get_or_insert(ErrorKind::Encoding);
            record.detail.get_or_insert_with(|| detail.clone());
        }
        record.links = found.links.len();
        if !found.nofollow {
            processed.links = Some(Arc::clone(found));
        }
    }
    processed.record = Some(record);
    processed
}
