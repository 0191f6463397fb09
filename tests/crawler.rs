//! The crawler example, run as a process (`target/<profile>/examples/crawler`, built on first use) against its
//! built-in demo site and against small sites served by the tests themselves.
//!
//! The crawler's modules are also compiled in here (`crawler::...`): their unit tests run with this file, and the
//! demo site's pages feed a one-page-at-a-time reference BFS that the concurrent crawl must match exactly.

#[path = "../examples/crawler/main.rs"]
mod crawler;
#[path = "common/examples.rs"]
mod examples;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crawler::demo::{DemoOptions, respond};
use crawler::links;
use crawler::serve::{Request, Response, Server};
use examples::Run;

/// The per-request timeout of crawls whose pages must all answer: the loopback sites answer in milliseconds, so
/// only a hang comes near it (and the watchdog catches a hang first). No test depends on the machine's speed.
const SURE: &str = "120s";
/// The per-request timeout of demo crawls that reach the demo's slow page, which answers only when the site stops
/// (a latch, not a delay): it times out by construction, while every other page still has a thousand times what
/// it needs. (The crawl waits this long for the slow page, so it is not `SURE`.)
const SLOW: &str = "20s";
/// If a crawler process runs longer than this, the test fails (a safety net, not a synchronisation).
const WATCHDOG: Duration = Duration::from_secs(100);

/// The arguments of a demo run that does not reach the slow page (depth at most 1), then `extra`.
fn demo<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [
        "--demo-latency-ms",
        "1",
        "--timeout",
        SURE,
        "--workers",
        "8",
    ]
    .iter()
    .chain(extra)
    .copied()
    .collect()
}

/// The arguments of a demo run that may reach the slow page, then `extra`.
fn demo_slow<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [
        "--demo-latency-ms",
        "1",
        "--timeout",
        SLOW,
        "--workers",
        "8",
    ]
    .iter()
    .chain(extra)
    .copied()
    .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Running the binary

/// `target/<profile>/examples/crawler`, built (or found up to date) by cargo on first use.
fn crawler_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| examples::build_example("crawler"))
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Waits for `child` with the watchdog; kills it and fails if it runs too long.
fn finish(child: std::process::Child) -> Run {
    examples::finish(child, "the crawler", WATCHDOG)
}

fn crawl(args: &[&str]) -> Run {
    let child = examples::spawn(Command::new(crawler_bin()).args(args), "the crawler");
    finish(child)
}

/// Runs the crawler with `--json` (and the `SURE` timeout unless `args` give one), checks it succeeded, returns
/// the document.
fn crawl_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    if !all.contains(&"--timeout") {
        all.extend(["--timeout", SURE]);
    }
    all.push("--json");
    let run = crawl(&all);
    assert_eq!(
        run.code,
        Some(0),
        "exit code of crawler {args:?}; stderr:\n{}",
        run.stderr
    );
    run.json()
}

/// The pages of a `--json` document, keyed by path (with query), or by full URL for another origin.
fn pages(doc: &Value) -> BTreeMap<String, Value> {
    let start = Url::parse(doc["start_url"].as_str().expect("start_url")).expect("a URL");
    let mut pages = BTreeMap::new();
    for page in doc["pages"].as_array().expect("a pages array") {
        let key = key_of(&start, page["url"].as_str().expect("url"));
        assert!(
            pages.insert(key.clone(), page.clone()).is_none(),
            "{key} fetched twice"
        );
    }
    pages
}

/// BFS order, as `(path, depth)`.
fn order(doc: &Value) -> Vec<(String, u64)> {
    let start = Url::parse(doc["start_url"].as_str().unwrap()).unwrap();
    doc["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                key_of(&start, p["url"].as_str().unwrap()),
                p["depth"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn key_of(start: &Url, url: &str) -> String {
    let url = Url::parse(url).expect("a URL");
    if url.origin() == start.origin() {
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    } else {
        url.to_string()
    }
}

fn keys(pages: &BTreeMap<String, Value>) -> Vec<&str> {
    pages.keys().map(String::as_str).collect()
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------------------------
// A site served by the test

#[derive(Clone)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    location: Option<String>,
}

fn html(body: &str) -> Reply {
    Reply {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: body.to_owned(),
        location: None,
    }
}

fn redirect(status: u16, to: &str) -> Reply {
    Reply {
        status,
        content_type: "text/html",
        body: String::new(),
        location: Some(to.to_owned()),
    }
}

fn not_found() -> Reply {
    Reply {
        status: 404,
        content_type: "text/html",
        body: "<h1>not found</h1>".into(),
        location: None,
    }
}

enum Action {
    Reply(Reply),
    /// Answer only when the test releases held requests.
    Hold,
}

/// What the test site saw, and the requests it holds.
#[derive(Default)]
struct Seen {
    /// Every request, in arrival order: (path, user agent).
    requests: Vec<(String, String)>,
    held: usize,
    released: bool,
}

/// A site served by the test, with `crawler::serve::Server` (a connection per pool task, like the demo site).
struct TestSite {
    url: Url,
    seen: Arc<(Mutex<Seen>, Condvar)>,
    /// Receives the number of requests held so far, each time one more is held.
    held_rx: mpsc::Receiver<usize>,
    server: Option<Server>,
}

impl TestSite {
    fn start(handler: impl Fn(&str) -> Action + Send + Sync + 'static) -> TestSite {
        let seen = Arc::new((Mutex::new(Seen::default()), Condvar::new()));
        let (held_tx, held_rx) = mpsc::channel();
        let held_tx = Mutex::new(held_tx);
        let server = {
            let seen = seen.clone();
            Server::start("test-site", move |request: &Request| {
                let agent = request.header("User-Agent").unwrap_or_default().to_owned();
                let (lock, wake) = &*seen;
                lock.lock()
                    .unwrap()
                    .requests
                    .push((request.path.clone(), agent));
                let reply = match handler(&request.path) {
                    Action::Reply(reply) => reply,
                    Action::Hold => {
                        let mut state = lock.lock().unwrap();
                        state.held += 1;
                        let _ = held_tx.lock().unwrap().send(state.held);
                        let _state = wake.wait_while(state, |s| !s.released).unwrap();
                        html("<p>late</p>")
                    }
                };
                let response = Response::new(reply.status, reply.content_type, reply.body);
                match reply.location {
                    Some(location) => response.with_header("Location", &location),
                    None => response,
                }
            })
            .expect("a loopback port")
        };
        TestSite {
            url: Url::parse(&format!("http://{}/", server.addr())).unwrap(),
            seen,
            held_rx,
            server: Some(server),
        }
    }

    fn at(&self, path: &str) -> String {
        self.url.join(path).unwrap().to_string()
    }

    /// Paths requested, with how many times.
    fn hits(&self) -> BTreeMap<String, usize> {
        let mut hits = BTreeMap::new();
        for (path, _) in &self.seen.0.lock().unwrap().requests {
            *hits.entry(path.clone()).or_insert(0) += 1;
        }
        hits
    }

    fn user_agents(&self) -> HashSet<String> {
        self.seen
            .0
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(_, agent)| agent.clone())
            .collect()
    }

    /// Answers every held request (and every later one that would be held).
    fn release(&self) {
        self.seen.0.lock().unwrap().released = true;
        self.seen.1.notify_all();
    }
}

impl Drop for TestSite {
    fn drop(&mut self) {
        self.release();
        drop(self.server.take());
    }
}

/// A TCP port that answers anything with a plain-HTTP error and hangs up: a TLS handshake fails there.
struct NotTls {
    addr: std::net::SocketAddr,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NotTls {
    fn start() -> NotTls {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stopping = stopping.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(mut stream) = stream {
                        let _ = stream
                            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                    }
                }
            })
        };
        NotTls {
            addr,
            stopping,
            thread: Some(thread),
        }
    }
}

impl Drop for NotTls {
    fn drop(&mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A small site exercising link normalisation, robots.txt, redirects and content types.
fn small_site() -> TestSite {
    TestSite::start(|path| {
        Action::Reply(match path {
            "/robots.txt" => Reply {
                status: 200,
                content_type: "text/plain",
                body: "User-agent: *\nDisallow: /secret\n".into(),
                location: None,
            },
            "/" => html(
                r#"<a href="a">a</a> <a href="/a#frag">a again</a> <a href="./a">and again</a>
                   <a href="/./x/../a?">and again</a> <a href="b">b</a> <a href="/secret/x">hidden</a>
                   <a href="mailto:me@example.invalid">mail</a> <a href="javascript:void(0)">js</a>
                   <a href="http://offsite.invalid/">elsewhere</a> <a href="/moved">moved</a>
                   <a href="/img.png">image</a> <a href="/gone">gone</a> <a href="/deep/1">deep</a>"#,
            ),
            "/a" => html(r#"<a href="/">home</a> <a href="/b">b</a> <a href="c">c</a>"#),
            "/b" => html(r#"<a href="/a">a</a> <a href="/c">c</a> <a href="/d#x">d</a>"#),
            "/c" => html(r#"<a href="/e">e</a>"#),
            "/d" => html("<p>a leaf</p>"),
            "/e" => html(r#"<a href="/f">f</a>"#),
            "/f" => html("<p>far away</p>"),
            "/deep/1" => html(r#"<a href="2">2</a>"#),
            "/deep/2" => html(r#"<a href="3">3</a>"#),
            "/deep/3" => html(r#"<a href="4">4</a>"#),
            "/deep/4" => html("<p>bottom</p>"),
            "/moved" => redirect(301, "/a"),
            "/img.png" => Reply {
                status: 200,
                content_type: "image/png",
                body: "\u{89}PNG not really".into(),
                location: None,
            },
            "/secret/x" => html("<p>you should not be here</p>"),
            _ => not_found(),
        })
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The demo site

#[test]
fn demo_depth_1_reaches_exactly_the_home_page_its_links_and_their_redirects() {
    let doc = crawl_json(&demo(&["--depth", "1"]));
    let pages = pages(&doc);
    let expected = [
        "/",
        "/page/0",
        "/page/1",
        "/page/2",
        "/page/3",
        "/page/4",
        "/page/5",
        "/page/6",
        "/page/7",
        "/about",
        "/redirect/1",
        "/redirect/2",
        "/redirect/3",
        "/landing",
        "/loop/a",
        "/loop/b",
        "/files/report.pdf",
        "/large",
        "/bad-encoding",
        "/flaky",
        "/missing",
    ];
    assert_eq!(keys(&pages), sorted(&expected));
    for page in pages.values() {
        let depth = page["depth"].as_u64().unwrap();
        let expected_depth = if page["url"] == doc["start_url"] {
            0
        } else {
            1
        };
        assert_eq!(depth, expected_depth, "{page}");
    }
    assert_eq!(doc["max_depth"], 1);
    assert_eq!(doc["pages_fetched"], expected.len());
    assert_eq!(doc["interrupted"], false);
}

#[test]
fn demo_traps_are_reported_as_what_they_are() {
    // Depth 2: the slow page hangs off /about.
    let doc = crawl_json(&demo_slow(&["--depth", "2"]));
    let pages = pages(&doc);
    let page = |key: &str| {
        pages
            .get(key)
            .unwrap_or_else(|| panic!("{key} not crawled"))
    };

    assert_eq!(page("/missing")["status"], 404);
    assert_eq!(page("/missing")["error"], Value::Null);
    assert_eq!(page("/flaky")["status"], 503);

    assert_eq!(page("/slow")["error"], "timeout");
    assert_eq!(page("/slow")["status"], Value::Null);

    assert_eq!(page("/loop/a")["status"], 302);
    assert_eq!(page("/loop/b")["status"], 302);
    assert_eq!(page("/loop/b")["error"], "redirect-loop");
    assert!(
        page("/loop/a")["redirect"]
            .as_str()
            .unwrap()
            .ends_with("/loop/b")
    );

    for hop in ["/redirect/1", "/redirect/2", "/redirect/3"] {
        assert!(
            page(hop)["status"]
                .as_u64()
                .is_some_and(|s| (300..400).contains(&s)),
            "{hop}"
        );
        assert_eq!(page(hop)["error"], Value::Null, "{hop}");
    }
    assert!(
        page("/redirect/3")["redirect"]
            .as_str()
            .unwrap()
            .ends_with("/landing")
    );
    assert_eq!(page("/landing")["status"], 200);

    let pdf = page("/files/report.pdf");
    assert_eq!(
        (pdf["status"].as_u64(), pdf["content_type"].as_str()),
        (Some(200), Some("application/pdf"))
    );
    assert_eq!(pdf["links"], 0);
    assert_eq!(pdf["bytes"], 20_000);
    assert_eq!(doc["non_html"], 1);

    assert_eq!(page("/bad-encoding")["error"], "encoding");
    assert_eq!(
        page("/bad-encoding")["links"],
        1,
        "links are still read from a badly encoded page"
    );
    assert!(page("/large")["bytes"].as_u64().unwrap() > 1_000_000);

    // robots.txt: /private/ (linked from the home page) and /private/7 (from /page/7) are never fetched.
    assert!(pages.keys().all(|k| !k.starts_with("/private")));
    let start = Url::parse(doc["start_url"].as_str().unwrap()).unwrap();
    let blocked: Vec<String> = doc["robots_blocked_urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| key_of(&start, u.as_str().unwrap()))
        .collect();
    assert_eq!(blocked, ["/private/", "/private/7"]);

    let errors: BTreeMap<String, u64> = serde_json::from_value(doc["errors"].clone()).unwrap();
    assert_eq!(
        errors,
        BTreeMap::from([
            ("encoding".into(), 1),
            ("redirect-loop".into(), 1),
            ("timeout".into(), 1)
        ])
    );
    let classes: BTreeMap<String, u64> =
        serde_json::from_value(doc["status_classes"].clone()).unwrap();
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for page in pages.values() {
        if let Some(status) = page["status"].as_u64() {
            *counted.entry(format!("{}xx", status / 100)).or_default() += 1;
        }
    }
    assert_eq!(classes, counted);
    assert_eq!((classes["3xx"], classes["5xx"]), (5, 1));
    assert_eq!(doc["pages_fetched"], pages.len());
    // The server on the other port is off-site without --all-hosts.
    assert_eq!(doc["offsite_links_skipped"], 1);
}

/// What a one-page-at-a-time BFS over the demo site reaches, in order: `(path, depth)`.
fn reference_bfs(options: &DemoOptions, depth_limit: u32, max_pages: usize) -> Vec<(String, u64)> {
    let base = Url::parse("http://127.0.0.1:1/").unwrap();
    let refused = "http://127.0.0.1:2/";
    let mut queue: Vec<(Url, u32)> = vec![(base.clone(), 0)];
    let mut seen: HashSet<Url> = HashSet::from([base.clone()]);
    let mut redirects: HashMap<Url, Url> = HashMap::new();
    let accept = |queue: &mut Vec<(Url, u32)>, seen: &mut HashSet<Url>, url: Url, depth: u32| {
        if url.origin() != base.origin() || seen.contains(&url) {
            return;
        }
        if url.path().starts_with("/private/") {
            seen.insert(url);
            return;
        }
        if queue.len() < max_pages {
            seen.insert(url.clone());
            queue.push((url, depth));
        }
    };
    let mut i = 0;
    while i < queue.len() {
        let (url, depth) = queue[i].clone();
        let reply = respond(options, refused, url.path());
        if let (300..=399, Some(location)) = (reply.status, &reply.location) {
            let target = links::resolve(&url, location).unwrap();
            let mut cursor = Some(target.clone());
            let mut is_loop = false;
            while let Some(at) = cursor {
                if at == url {
                    is_loop = true;
                    break;
                }
                cursor = redirects.get(&at).cloned();
            }
            redirects.insert(url.clone(), target.clone());
            if !is_loop {
                accept(&mut queue, &mut seen, target, depth);
            }
        } else if reply.status == 200
            && reply.content_type.starts_with("text/html")
            && !reply.hold
            && depth < depth_limit
        {
            let text = String::from_utf8_lossy(&reply.body);
            for link in links::dom::extract_text(&url, &text).links {
                accept(&mut queue, &mut seen, link, depth + 1);
            }
        }
        i += 1;
    }
    queue
        .into_iter()
        .map(|(url, depth)| (key_of(&base, url.as_str()), u64::from(depth)))
        .collect()
}

/// The streaming extractor (lol_html) finds exactly the links, `nofollow` and encoding errors of the DOM
/// extractor it replaced (scraper, html5ever), for every page of the demo site and for tricky HTML, whole and in
/// small chunks.
#[test]
fn streaming_extractor_finds_exactly_what_the_dom_extractor_found() {
    let check = |page: &Url, content_type: Option<&str>, body: &[u8], what: &str| {
        let expected = links::dom::extract(page, content_type, body);
        assert_eq!(
            links::extract(page, content_type, body),
            expected,
            "{what}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        let mut chunked = links::LinkExtractor::new(page, content_type);
        for chunk in body.chunks(7) {
            chunked.write(chunk);
        }
        assert_eq!(chunked.finish(), expected, "{what}, in chunks of 7");
        expected
    };

    // Every page of the demo site.
    let options = DemoOptions::default();
    let base = Url::parse("http://127.0.0.1:1/").unwrap();
    let mut paths: Vec<String> = (0..options.pages).map(|i| format!("/page/{i}")).collect();
    paths.extend(
        [
            "/",
            "/about",
            "/landing",
            "/redirect/1",
            "/loop/a",
            "/slow",
            "/large",
            "/bad-encoding",
            "/flaky",
            "/missing",
            "/private/7",
            "/files/report.pdf",
        ]
        .map(String::from),
    );
    let mut total = 0;
    for path in &paths {
        let reply = respond(&options, "http://127.0.0.1:2/", path);
        let page = base.join(path).unwrap();
        let found = check(&page, Some(reply.content_type), &reply.body, path);
        total += found.0.links.len();
    }
    assert!(total > 900, "only {total} links on the demo site");

    // Tricky HTML.
    let page = Url::parse("http://example.com/dir/page.html").unwrap();
    let utf8 = Some("text/html; charset=utf-8");
    let cases: &[(&str, Option<&str>, &[u8])] = &[
        ("base href, relative", utf8, b"<base href=\"../other/\"><a href=x>x</a><a href=/abs>a</a><a href=//host.example/p>p</a>"),
        ("base after the links", utf8, b"<a href=before>b</a><base href=\"/late/\"><base href=\"/second/\"><a href=after>a</a>"),
        ("base in the body", utf8, b"<body><p><a href=one>1</a><base href=\"http://b.example/\"></p>"),
        ("relative forms", utf8, b"<a href=\"../up\">.</a><a href=\"./same\">.</a><a href=\"?q=1\">.</a><a href=\"#f\">.</a><a href=\"\">.</a><a href=\"   \">.</a><a href=\" sp ace \">.</a>"),
        ("entities", utf8, b"<a href=\"x?a=1&amp;b=2\">1</a><a href=\"y?a=1&#38;b=2&#x26;c=3\">2</a><a href=\"&quot;q&quot;\">3</a><a href=\"caf&eacute;\">4</a><a href=\"?a&copy=2\">5</a><a href=\"?a&copy2\">6</a><a href=\"&not;&notin;&not\">7</a><a href=\"n&#0;ul\">8</a><a href=\"e&#x80;ur\">9</a><a href=\"s&#xD800;ur\">10</a><a href=\"big&#x110000;\">11</a><a href=\"&amp\">12</a><a href=\"&unknown;\">13</a>"),
        ("uppercase", utf8, b"<HTML><HEAD><BASE HREF=\"/Up/\"><META NAME=\"Robots\" CONTENT=\"NoIndex\"></HEAD><BODY><A HREF=\"X\">x</A><AREA HREF=\"Y\"><IFRAME SRC=\"Z\"></IFRAME></BODY></HTML>"),
        ("comments", utf8, b"<!-- <a href=c1> --><!--> <a href=after-empty>1</a><!---> <a href=after-dash>2</a> --><!----><a href=real>3</a><! a href=bogus><?php <a href=pi> ?><a href=last>4</a><!-- unterminated <a href=never>"),
        ("scripts and raw text", utf8, b"<script>var s = \"<a href='s1'>\";</script><a href=k1>1</a><script><!-- <script> </script> <a href=esc> --></script><a href=k2>2</a><style><a href=st></style><textarea><a href=ta></textarea><title><a href=ti></title><noscript><a href=ns></noscript><xmp><a href=xm></xmp><noembed><a href=ne></noembed><noframes><a href=nf></noframes><iframe src=fr><a href=inside-iframe></iframe><a href=k3>3</a><plaintext><a href=pt>"),
        ("attributes", utf8, b"<a download href=dl>d</a><area download href=dl2><iframe src=i1 href=i2></iframe><a href=first href=second>f</a><a href='single'>s</a><a href=unquoted/>u</a><a\nhref=\"new\nline\"\n>n</a><a href=\"tab\there\">t</a><a href=mailto:x@example.com>m</a><a href=javascript:go()>j</a><a name=no-href>n</a><iframe></iframe>"),
        ("cdata and foreign content", utf8, b"<![CDATA[<a href=cd>]]><svg><a href=\"svg-link\"><text>t</text></a></svg><math><mi><a href=math-link>m</a></mi></math><a href=after-foreign>a</a>"),
        ("frameset", utf8, b"<html><head><title>f</title></head><frameset cols=\"50%,50%\"><frame src=left.html><frame src=right.html><noframes><a href=nf>n</a></noframes></frameset></html>"),
        ("frame in a body", utf8, b"<body><a href=x>x</a><frame src=ignored.html><frameset><frame src=also-ignored.html></frameset></body>"),
        ("meta robots none", utf8, b"<meta name=robots content=\"none\"><a href=x>x</a>"),
        ("meta robots reversed", utf8, b"<meta content=\"index, NOFOLLOW\" name=ROBOTS><a href=x>x</a>"),
        ("meta robots with an entity", utf8, b"<meta name=robots content=\"no&#102;ollow\"><a href=x>x</a>"),
        ("meta other", utf8, b"<meta name=googlebot content=nofollow><meta name=robots><a href=x>x</a>"),
        ("non-ASCII, declared UTF-8", utf8, "<a href=\"caf\u{e9}/\u{fc}ber?q=\u{2713}\">c</a>".as_bytes()),
        ("non-ASCII, undeclared, UTF-8", Some("text/html"), "<a href=\"caf\u{e9}\">c</a>".as_bytes()),
        ("non-ASCII, undeclared, not UTF-8", Some("text/html"), b"<a href=\"caf\xe9\">c</a><a href=\"\x80\x81\x9f\">d</a>"),
        ("non-ASCII, declared latin-1", Some("text/html; charset=ISO-8859-1"), b"<a href=\"caf\xe9\">c</a>"),
        ("declared UTF-8, invalid", utf8, b"<a href=\"ok\">o</a><a href=\"bad\xff\">b</a>"),
        ("declared Shift_JIS", Some("text/html; charset=shift_jis"), b"<a href=\"\x82\xa0\">a</a>"),
        ("unknown charset", Some("text/html; charset=klingon"), b"<a href=k>k</a>"),
        ("UTF-8 byte-order mark, declared latin-1", Some("text/html; charset=latin1"), b"\xef\xbb\xbf<a href=\"caf\xc3\xa9\">c</a>"),
        ("UTF-8 byte-order mark, undeclared, invalid", Some("text/html"), b"\xef\xbb\xbf<a href=\"caf\xe9\">c</a><a href=\"\xc3\xa9t\xc3\xa9\">e</a>"),
        ("UTF-8 byte-order mark, unknown charset", Some("text/html; charset=klingon"), b"\xef\xbb\xbf<a href=\"caf\xc3\xa9\">c</a>"),
        ("UTF-16BE byte-order mark, declared UTF-8", utf8, b"\xfe\xff\x00<\x00a\x00 \x00h\x00r\x00e\x00f\x00=\x00x\x00>"),
        ("declared UTF-16", Some("text/html; charset=utf-16le"), b"<\x00a\x00 \x00h\x00r\x00e\x00f\x00=\x00y\x00>\x00"),
        ("no content type", None, b"<!DOCTYPE html><a href=x>x</a>"),
        ("empty", utf8, b""),
        ("template", utf8, b"<template><a href=in-template>t</a></template><a href=after>a</a>"),
        ("table", utf8, b"<table><a href=foster>f</a><tr><td><a href=cell>c</a></td></tr></table>"),
    ];
    for (what, content_type, body) in cases {
        check(&page, *content_type, body, what);
    }
    // The cases above are not vacuous.
    let (found, _) = links::extract(&page, utf8, cases[6].2);
    assert_eq!(found.links.len(), 4, "comments: {:?}", found.links);
    let (found, _) = links::extract(&page, utf8, cases[7].2);
    assert_eq!(found.links.len(), 4, "scripts: {:?}", found.links);
}

#[test]
fn demo_crawl_is_exactly_the_sequential_bfs_for_depth_and_max_pages() {
    let options = DemoOptions {
        pages: 300,
        latency: Duration::ZERO,
        slow: true,
    };
    let cases = [(3, 10_000), (3, 57), (4, 130), (2, 1)];
    // The crawls run at the same time: those that reach the slow page each wait out its timeout.
    let children: Vec<_> = cases
        .iter()
        .map(|(depth, max_pages)| {
            let (depth, max_pages) = (depth.to_string(), max_pages.to_string());
            let args = demo_slow(&["--depth", &depth, "--max-pages", &max_pages, "--json"]);
            examples::spawn(Command::new(crawler_bin()).args(args), "the crawler")
        })
        .collect();
    for ((depth, max_pages), child) in cases.into_iter().zip(children) {
        let run = finish(child);
        assert_eq!(run.code, Some(0), "--depth {depth}: {}", run.stderr);
        let doc = run.json();
        let expected = reference_bfs(&options, depth, max_pages);
        assert!(expected.len() <= max_pages);
        let got = order(&doc);
        assert_eq!(
            got.len(),
            expected.len(),
            "--depth {depth} --max-pages {max_pages}: errors {}, elapsed {}",
            doc["errors"],
            doc["elapsed_s"]
        );
        assert_eq!(got, expected, "--depth {depth} --max-pages {max_pages}");
        pages(&doc); // no URL twice
    }
    // The full crawl at depth 3 reaches every generated page.
    let all = reference_bfs(&options, 3, 10_000);
    for i in 0..300 {
        assert!(
            all.iter().any(|(p, _)| *p == format!("/page/{i}")),
            "/page/{i}"
        );
    }
}

#[test]
fn demo_summary_table_is_printed_without_a_url() {
    let run = crawl(&demo(&["--depth", "1"]));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for row in [
        "Crawl finished",
        "pages fetched",
        "2xx",
        "4xx",
        "errors",
        "redirect-loop",
        "bytes",
        "elapsed",
        "pages/s",
        "max depth reached",
    ] {
        assert!(run.stdout.contains(row), "no {row:?} in\n{}", run.stdout);
    }
    assert!(
        run.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pages", "fetched", "21"]),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("built-in demo site"), "{}", run.stderr);
    // stderr is not a terminal here: no progress bar drawing.
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'),
        "{:?}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------------------------
// A site served by the test

#[test]
fn own_site_exact_pages_for_each_depth_and_max_pages_without_refetching() {
    let cases: [(&str, &str, &[&str]); 6] = [
        ("0", "1000", &["/"]),
        (
            "1",
            "1000",
            &["/", "/a", "/b", "/moved", "/img.png", "/gone", "/deep/1"],
        ),
        (
            "2",
            "1000",
            &[
                "/", "/a", "/b", "/moved", "/img.png", "/gone", "/deep/1", "/c", "/d", "/deep/2",
            ],
        ),
        (
            "3",
            "1000",
            &[
                "/", "/a", "/b", "/moved", "/img.png", "/gone", "/deep/1", "/c", "/d", "/deep/2",
                "/e", "/deep/3",
            ],
        ),
        // BFS order: /, then the home page's links in document order.
        ("3", "4", &["/", "/a", "/b", "/moved"]),
        ("9", "1", &["/"]),
    ];
    for (depth, max_pages, expected) in cases {
        let site = small_site();
        let doc = crawl_json(&[
            site.url.as_str(),
            "--depth",
            depth,
            "--max-pages",
            max_pages,
            "--workers",
            "4",
        ]);
        let pages = pages(&doc);
        assert_eq!(
            keys(&pages),
            sorted(expected),
            "--depth {depth} --max-pages {max_pages}"
        );

        // The server saw each of those once, robots.txt once, and nothing else.
        let mut expected_hits: BTreeMap<String, usize> =
            expected.iter().map(|p| (p.to_string(), 1)).collect();
        expected_hits.insert("/robots.txt".into(), 1);
        assert_eq!(
            site.hits(),
            expected_hits,
            "--depth {depth} --max-pages {max_pages}"
        );

        let agents = site.user_agents();
        assert_eq!(agents.len(), 1);
        assert!(
            agents
                .iter()
                .all(|a| a.starts_with("concurrent-futures-crawler/")),
            "{agents:?}"
        );
    }
}

#[test]
fn own_site_pages_are_reported_as_what_they_are() {
    let site = small_site();
    let doc = crawl_json(&[site.url.as_str(), "--depth", "2"]);
    let pages = pages(&doc);
    assert_eq!(pages["/gone"]["status"], 404);
    assert_eq!(pages["/img.png"]["content_type"], "image/png");
    assert_eq!(pages["/img.png"]["links"], 0);
    // A redirect to a page already crawled is not followed again.
    assert_eq!(pages["/moved"]["status"], 301);
    assert_eq!(pages["/moved"]["redirect"], site.at("/a"));
    // The home page's 13 links normalise to 8 distinct http(s) URLs (mailto: and javascript: are not links).
    assert_eq!(pages["/"]["links"], 8);
    assert_eq!(pages["/"]["depth"], 0);
    assert_eq!(pages["/c"]["depth"], 2);
    assert_eq!(
        doc["robots_blocked_urls"],
        serde_json::json!([site.at("/secret/x")])
    );
    assert_eq!(doc["offsite_links_skipped"], 1);
    assert_eq!(doc["errors"], serde_json::json!({}));
    assert!(site.hits().keys().all(|p| !p.starts_with("/secret")));
}

#[test]
fn ignore_robots_fetches_disallowed_pages_and_not_robots_txt() {
    let site = small_site();
    let doc = crawl_json(&[site.url.as_str(), "--depth", "1", "--ignore-robots"]);
    let pages = pages(&doc);
    assert!(pages.contains_key("/secret/x"));
    assert!(!site.hits().contains_key("/robots.txt"));
    assert_eq!(doc["robots_blocked"], 0);
}

#[test]
fn a_start_url_disallowed_by_robots_txt_is_not_fetched() {
    let site = small_site();
    let run = crawl(&[&site.at("/secret/x"), "--timeout", SURE, "--json"]);
    // Nothing was fetched: a failure, with the reason on stderr.
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("error: nothing was fetched")
            && run.stderr.contains("robots.txt")
            && run.stderr.contains("--ignore-robots"),
        "{}",
        run.stderr
    );
    let doc = run.json();
    assert_eq!(doc["pages"], serde_json::json!([]));
    assert_eq!(
        doc["robots_blocked_urls"],
        serde_json::json!([site.at("/secret/x")])
    );
    assert_eq!(site.hits(), BTreeMap::from([("/robots.txt".to_owned(), 1)]));
}

#[test]
fn a_redirect_chain_stops_after_ten_hops() {
    let site = TestSite::start(|path| {
        match path.strip_prefix("/r/").and_then(|n| n.parse::<u32>().ok()) {
            Some(n) => Action::Reply(redirect(302, &format!("/r/{}", n + 1))),
            None if path == "/" => Action::Reply(html(r#"<a href="/r/0">go</a>"#)),
            None => Action::Reply(not_found()),
        }
    });
    let doc = crawl_json(&[site.url.as_str(), "--depth", "1"]);
    let got: Vec<String> = order(&doc).into_iter().map(|(path, _)| path).collect();
    let mut expected = vec!["/".to_owned()];
    expected.extend((0..=10).map(|n| format!("/r/{n}")));
    assert_eq!(got, expected);
    let pages = pages(&doc);
    assert_eq!(pages["/r/10"]["error"], "too-many-redirects");
    assert!((0..10).all(|n| pages[&format!("/r/{n}")]["error"].is_null()));
    assert!(!site.hits().contains_key("/r/11"));
}

#[test]
fn all_hosts_honours_each_hosts_robots_txt() {
    let other = small_site(); // robots.txt: Disallow: /secret
    let links = format!(
        r#"<a href="{}">ok</a> <a href="{}">secret</a>"#,
        other.at("/d"),
        other.at("/secret/x")
    );
    let site = TestSite::start(move |path| match path {
        "/" => Action::Reply(html(&links)),
        _ => Action::Reply(not_found()),
    });
    let doc = crawl_json(&[site.url.as_str(), "--all-hosts", "--depth", "1"]);
    let pages = pages(&doc);
    assert_eq!(pages[&other.at("/d")]["status"], 200);
    assert!(!pages.contains_key(&other.at("/secret/x")));
    assert_eq!(
        doc["robots_blocked_urls"],
        serde_json::json!([other.at("/secret/x")])
    );
    // The other host's robots.txt was fetched once, its disallowed page never.
    assert_eq!(
        other.hits(),
        BTreeMap::from([("/d".to_owned(), 1), ("/robots.txt".to_owned(), 1)])
    );
}

#[test]
fn network_errors_are_counted_by_kind_and_the_crawl_goes_on() {
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("http://127.0.0.1:{refused_port}/down");
    // The home page needs the site's own port (for an https link to this plain-HTTP server): set once started.
    let home: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let site = {
        let home = home.clone();
        TestSite::start(move |path| match path {
            "/" => Action::Reply(html(home.get().map_or("", String::as_str))),
            "/ok" => Action::Reply(html(r#"<a href="/ok2">next</a>"#)),
            "/ok2" => Action::Reply(html("<p>fine</p>")),
            _ => Action::Reply(not_found()),
        })
    };
    let not_tls = NotTls::start();
    let tls = format!("https://{}/secure", not_tls.addr);
    home.set(format!(
        r#"<a href="{refused}">down</a> <a href="{tls}">tls</a> <a href="/ok">ok</a>"#
    ))
    .unwrap();

    let doc = crawl_json(&[site.url.as_str(), "--all-hosts"]);
    let errors: BTreeMap<String, u64> = serde_json::from_value(doc["errors"].clone()).unwrap();
    assert_eq!(
        errors,
        BTreeMap::from([("connection-refused".into(), 1), ("tls".into(), 1)]),
        "{doc}"
    );
    let pages = pages(&doc);
    assert_eq!(pages[&refused]["error"], "connection-refused");
    assert_eq!(pages[&refused]["status"], Value::Null);
    assert_eq!(pages[&tls]["error"], "tls");
    // ... and the rest of the crawl went on.
    assert_eq!(pages["/ok2"]["status"], 200);
    assert_eq!(pages["/ok2"]["depth"], 2);
}

// ---------------------------------------------------------------------------------------------------------------
// A start URL that cannot be fetched at all

/// Runs the crawler on `url`, which cannot be fetched, and checks the failure: exit code 1, the reason on stderr
/// (naming the error kind), and a summary without a rate (stdout, in the table and in `--json`).
fn assert_nothing_fetched(url: &str, kind: &str) {
    let run = crawl(&[url, "--timeout", SURE]);
    assert_eq!(run.code, Some(1), "{url}: {}{}", run.stdout, run.stderr);
    let reason = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error: nothing was fetched: "))
        .unwrap_or_else(|| panic!("{url}: no reason on stderr: {}", run.stderr));
    assert!(reason.contains(&format!(": {kind}: ")), "{url}: {reason}");
    assert!(reason.contains(url), "{url}: {reason}");
    assert!(run.stdout.contains("Crawl finished"), "{}", run.stdout);
    let rate = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("pages/s"))
        .unwrap_or_else(|| panic!("no pages/s row in {}", run.stdout));
    assert_eq!(
        rate.split_whitespace().collect::<Vec<_>>(),
        ["pages/s", "-"]
    );

    let run = crawl(&[url, "--timeout", SURE, "--json"]);
    assert_eq!(run.code, Some(1), "{url} --json: {}", run.stderr);
    assert!(run.stderr.contains(kind), "{url} --json: {}", run.stderr);
    let doc = run.json();
    assert_eq!(doc["pages_per_s"], Value::Null);
    assert_eq!(doc["pages"][0]["error"], kind);
}

#[test]
fn a_closed_port_fails_with_connection_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_nothing_fetched(&format!("http://127.0.0.1:{port}/"), "connection-refused");
}

#[test]
fn an_unresolvable_host_fails_with_dns() {
    // `.invalid` never resolves (RFC 6761).
    assert_nothing_fetched("http://no-such-host.invalid/", "dns");
}

#[test]
fn tls_to_a_plain_http_port_fails_with_tls() {
    let not_tls = NotTls::start();
    assert_nothing_fetched(&format!("https://{}/", not_tls.addr), "tls");
}

#[test]
fn a_start_page_with_an_error_status_was_still_fetched() {
    let site = TestSite::start(|_| Action::Reply(not_found()));
    let run = crawl(&[site.url.as_str(), "--timeout", SURE]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("error"), "{}", run.stderr);
}

#[test]
fn one_worker_is_one_worker() {
    let run = crawl(&[
        "--demo-latency-ms",
        "1",
        "--timeout",
        SURE,
        "--depth",
        "0",
        "--workers",
        "1",
        "--max-pages",
        "1",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("  1 worker, depth <= 0, at most 1 page\n"),
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Bad input, help, Ctrl-C

#[test]
fn bad_input_exits_2_with_a_message() {
    let cases: [(&[&str], &str); 14] = [
        (&["not a url"], "invalid URL"),
        (&[""], "the URL is empty"),
        (&["example.com"], "did you mean http://example.com"),
        (&["ftp://example.com/"], "only http and https"),
        (&["http://"], "invalid URL"),
        (
            &["--depth", "-1"],
            "invalid value '-1' for '--depth <DEPTH>': expected a whole number, 0 or more",
        ),
        (
            &["--workers", "-3"],
            "expected a whole number from 1 to 1024",
        ),
        (&["--max-pages", "-1"], "--max-pages"),
        (&["--timeout", "-1"], "--timeout"),
        (&["--workers", "0"], "--workers"),
        (&["--max-pages", "zero"], "--max-pages"),
        (&["--timeout", "soon"], "--timeout"),
        (&["--timeout", "0"], "--timeout"),
        (&["--frobnicate"], "--frobnicate"),
    ];
    for (args, message) in cases {
        let run = crawl(args);
        assert_eq!(
            run.code,
            Some(2),
            "{args:?}: stdout {} stderr {}",
            run.stdout,
            run.stderr
        );
        assert!(run.stderr.starts_with("error:"), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(message),
            "{args:?}: {message:?} not in {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        // A negative number is a bad value, not an unknown option: clap's tip to pass it after `--` (which would
        // make `-1` the start URL) is never given.
        if args
            .iter()
            .any(|a| a.starts_with("-1") || a.starts_with("-3"))
        {
            assert!(!run.stderr.contains("tip:"), "{args:?}: {}", run.stderr);
        }
    }
}

#[test]
fn help_exits_0_and_describes_the_options() {
    let run = crawl(&["--help"]);
    assert_eq!(run.code, Some(0));
    for option in [
        "--depth",
        "--max-pages",
        "--workers",
        "--timeout",
        "--all-hosts",
        "--ignore-robots",
        "--json",
        "--demo-latency-ms",
    ] {
        assert!(run.stdout.contains(option), "{option} not in --help");
    }
}

/// Ctrl-C with two fetches running and two queued: the queued ones are cancelled, the partial summary is printed,
/// the exit code is 130.
#[cfg(unix)]
#[test]
fn ctrl_c_cancels_queued_fetches_and_prints_the_partial_summary() {
    let home: String = (0..100)
        .map(|i| format!("<a href=\"/p/{i}\">{i}</a>\n"))
        .collect();
    let site = TestSite::start(move |path| match path {
        "/" => Action::Reply(html(&home)),
        "/robots.txt" => Action::Reply(not_found()),
        _ => Action::Hold,
    });
    // Two workers: after the home page, 4 fetches are submitted (twice the workers), 2 run and 2 wait in the queue.
    let mut child = examples::spawn(
        Command::new(crawler_bin()).args([
            site.url.as_str(),
            "--workers",
            "2",
            "--json",
            "--timeout",
            SURE,
        ]),
        "the crawler",
    );
    // Both workers are inside a fetch when the server holds two requests.
    loop {
        let held = site
            .held_rx
            .recv_timeout(WATCHDOG)
            .expect("two requests reach the server");
        if held == 2 {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The crawler prints the summary, then waits for the two running fetches: answer them once it says so.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut err_text = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        err_text.push_str(&line);
        if line.contains("Interrupted") {
            site.release();
            break;
        }
    }
    stderr.read_to_string(&mut err_text).unwrap();
    child.stderr = None;
    let run = finish(child);
    assert_eq!(run.code, Some(130), "stderr: {err_text}");
    let doc = run.json();
    assert_eq!(doc["interrupted"], true);
    assert_eq!(doc["cancelled"], 2, "{doc}");
    assert_eq!(order(&doc), [("/".to_owned(), 0)]);
    // Nothing was requested after the interruption: robots.txt, the home page, the two fetches that were running.
    let hits = site.hits();
    assert_eq!(hits.values().sum::<usize>(), 4, "{hits:?}");
}

/// On a terminal the progress bar draws on stderr from other threads while the crawl runs; it must neither block
/// the crawl nor end up in the report. (Linux: `script` from util-linux gives the crawler a pseudo-terminal.)
#[cfg(target_os = "linux")]
#[test]
fn progress_bar_on_a_terminal_does_not_block_the_crawl() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` command to run the crawler on a pseudo-terminal");
        return;
    }
    let command = format!(
        "{} --demo-latency-ms 1 --timeout {SURE} --depth 1",
        crawler_bin().display()
    );
    let child = examples::spawn(
        Command::new("script").args(["-qec", &command, "/dev/null"]),
        "script",
    );
    let run = finish(child);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("pages fetched in"),
        "no progress bar drawn:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("Crawl finished"), "{}", run.stdout);
}
