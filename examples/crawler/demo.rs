//! The built-in demo site: a few hundred generated pages on 127.0.0.1, with the traps a crawler must survive.
//!
//! It is served by `serve::Server`, where every connection is a task on a `ThreadPoolExecutor` (the library on the
//! server side too); every response waits an artificial latency (`--demo-latency-ms`) so that concurrency shows.
//!
//! | path | what it is |
//! |---|---|
//! | `/` | home: links to `/page/0`..`/page/7`, to every trap below, and last to `/about` |
//! | `/about` | links to `/slow` |
//! | `/page/{i}` | `i` < pages: links to its 8 children `8i+8..8i+15`, its parent, one "random" page, some 404s |
//! | `/redirect/1` | 301 → `/redirect/2` 302 → `/redirect/3` 307 → `/landing` |
//! | `/loop/a`, `/loop/b` | redirect to each other |
//! | `/slow` | answers only when the site stops: slower than any timeout, by construction |
//! | `/files/report.pdf` | `application/pdf` |
//! | `/large` | a 1.5 MB HTML page |
//! | `/bad-encoding` | declared UTF-8, is not |
//! | `/flaky` | 503 |
//! | `/private/...` | disallowed by `/robots.txt` |
//! | anything else | 404 |

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use url::Url;

use super::serve::{Request, Response, Server};

/// The shape of the site.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Generated `/page/{i}` pages.
    pub pages: usize,
    /// Added to every response.
    pub latency: Duration,
    /// Whether there is a `/slow` page (linked from `/about`) that answers only when the site stops.
    pub slow: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            pages: 300,
            latency: Duration::from_millis(20),
            slow: true,
        }
    }
}

/// One response of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub location: Option<String>,
    pub body: Vec<u8>,
    /// Answer only when the site stops (the slow page).
    pub hold: bool,
}

impl Reply {
    fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            location: None,
            body: body.into_bytes(),
            hold: false,
        }
    }

    fn redirect(status: u16, to: &str) -> Reply {
        let mut reply = Reply::html(status, format!("<a href=\"{to}\">moved</a>"));
        reply.location = Some(to.to_owned());
        reply
    }
}

pub const ROBOTS_TXT: &str = "# The demo site's rules\nUser-agent: *\nDisallow: /private/\n";

/// The children of page `i`: `8i+8 ..= 8i+15`, those that exist.
pub fn children(i: usize, pages: usize) -> impl Iterator<Item = usize> {
    (8 * i + 8..8 * i + 16).filter(move |&c| c < pages)
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n"
    )
}

const FILLER: &str = "Futures are placeholders for results that are not there yet. A pool runs the tasks; \
                      a callback runs when a future is done. ";

/// What the site answers to `path` (a path with an optional query). `refused` is a loopback URL nothing listens
/// on, linked from the home page (off-site: followed only with `--all-hosts`).
pub fn respond(options: &DemoOptions, refused: &str, path: &str) -> Reply {
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let n = options.pages;
    match path {
        "/" => {
            let mut body = String::from("<p>A generated site to crawl.</p><ul>\n");
            for i in 0..n.min(8) {
                let _ = writeln!(body, "<li><a href=\"/page/{i}\">section {i}</a></li>");
            }
            body.push_str("</ul><ul>\n");
            for trap in [
                "/redirect/1",
                "/loop/a",
                "/files/report.pdf",
                "/large",
                "/bad-encoding",
                "/flaky",
                "/missing",
                "/private/",
            ] {
                let _ = writeln!(body, "<li><a href=\"{trap}\">{trap}</a></li>");
            }
            // The slow page hangs off /about, listed last: its wait then holds back no other page's links.
            body.push_str("<li><a href=\"/about#team\">about (and a slow page)</a></li>\n");
            let _ = writeln!(
                body,
                "<li><a href=\"{refused}\">a server that is down</a></li>"
            );
            body.push_str("<li><a href=\"mailto:demo@example.invalid\">mail us</a></li>\n</ul>");
            Reply::html(200, page("Demo site", &body))
        }
        "/about" => {
            let slow = if options.slow {
                "<a href=\"/slow\">a slow page</a>"
            } else {
                ""
            };
            Reply::html(
                200,
                page(
                    "About",
                    &format!("<a href=\"/\">home</a> <a href=\"page/0#top\">start here</a> {slow}"),
                ),
            )
        }
        "/robots.txt" => Reply {
            status: 200,
            content_type: "text/plain",
            location: None,
            body: ROBOTS_TXT.as_bytes().to_vec(),
            hold: false,
        },
        "/redirect/1" => Reply::redirect(301, "/redirect/2"),
        "/redirect/2" => Reply::redirect(302, "/redirect/3"),
        "/redirect/3" => Reply::redirect(307, "/landing"),
        "/landing" => Reply::html(
            200,
            page(
                "Landing",
                "<p>Three redirects later.</p><a href=\"/\">home</a>",
            ),
        ),
        "/loop/a" => Reply::redirect(302, "/loop/b"),
        "/loop/b" => Reply::redirect(302, "/loop/a"),
        "/slow" if options.slow => {
            let mut reply = Reply::html(
                200,
                page(
                    "Slow",
                    "<p>Worth the wait?</p><a href=\"/slow-child\">x</a>",
                ),
            );
            reply.hold = true;
            reply
        }
        "/files/report.pdf" => {
            let mut body = b"%PDF-1.4\n% not really a PDF, but labelled as one\n".to_vec();
            body.resize(20_000, b'.');
            Reply {
                status: 200,
                content_type: "application/pdf",
                location: None,
                body,
                hold: false,
            }
        }
        "/large" => {
            let mut body = String::with_capacity(1_600_000);
            while body.len() < 1_500_000 {
                body.push_str("<p>");
                body.push_str(FILLER);
                body.push_str("</p>\n");
            }
            let _ = write!(
                body,
                "<a href=\"/page/{}\">the end</a>",
                n.saturating_sub(1)
            );
            Reply::html(200, page("A large page", &body))
        }
        "/bad-encoding" => {
            let mut body = page(
                "Bad encoding",
                "<p>caf\u{e9}? <a href=\"/page/1\">one</a></p>",
            )
            .into_bytes();
            // Latin-1 bytes in a page declared as UTF-8.
            body.extend_from_slice(b"<p>caf\xe9 cr\xe8me br\xfbl\xe9e</p>");
            Reply {
                status: 200,
                content_type: "text/html; charset=utf-8",
                location: None,
                body,
                hold: false,
            }
        }
        "/flaky" => Reply::html(503, page("Service unavailable", "<p>Try again later.</p>")),
        _ => {
            if let Some(rest) = path.strip_prefix("/private/") {
                return Reply::html(
                    200,
                    page("Private", &format!("<p>robots.txt says no: {rest}</p>")),
                );
            }
            match path
                .strip_prefix("/page/")
                .and_then(|i| i.parse::<usize>().ok())
            {
                Some(i) if i < n && path == format!("/page/{i}") => {
                    Reply::html(200, generated_page(i, n))
                }
                _ => not_found(path),
            }
        }
    }
}

fn not_found(path: &str) -> Reply {
    Reply::html(
        404,
        page(
            "Not found",
            &format!("<p>No page at {path}.</p><a href=\"/\">home</a>"),
        ),
    )
}

/// `/page/{i}`: links to its children, its parent, one pseudo-random page; every tenth page has a dead link, and
/// every fiftieth a link into `/private/`. Links come in several spellings that normalise to the same URL.
fn generated_page(i: usize, n: usize) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "<p>Page {i} of {n}. {FILLER}</p><ul>");
    for c in children(i, n) {
        // Relative, absolute-path and "../" spellings of /page/{c}.
        let href = match c % 3 {
            0 => format!("{c}"),
            1 => format!("/page/{c}"),
            _ => format!("../page/{c}#section"),
        };
        let _ = writeln!(body, "<li><a href=\"{href}\">page {c}</a></li>");
    }
    body.push_str("</ul>\n");
    let parent = if i < 8 {
        "/".to_owned()
    } else {
        format!("/page/{}", (i - 8) / 8)
    };
    let _ = writeln!(body, "<a href=\"{parent}\">up</a>");
    let random = (i * 7919 + 13) % n;
    let _ = writeln!(body, "<a href=\"/page/{random}?\">see also</a>");
    if i % 10 == 3 {
        let _ = writeln!(body, "<a href=\"/missing/{i}\">a dead link</a>");
    }
    if i % 50 == 7 {
        let _ = writeln!(body, "<a href=\"/private/{i}\">private</a>");
    }
    page(&format!("Page {i}"), &body)
}

/// A running demo site; dropping it stops the server.
pub struct DemoSite {
    url: Url,
    stop: Arc<(Mutex<bool>, Condvar)>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    // Dropped after `stop` is set (see `Drop`), so the slow page lets go at once.
    server: Option<Server>,
}

impl DemoSite {
    /// Starts the site on 127.0.0.1 and a free port.
    pub fn start(options: DemoOptions) -> Result<DemoSite, String> {
        // A loopback port nothing listens on: bind one, note it, close it.
        let refused = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| format!("http://127.0.0.1:{}/", a.port()))
            .map_err(|e| format!("cannot pick a closed port: {e}"))?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let server = {
            let (stop, hits) = (stop.clone(), hits.clone());
            Server::start("demo-site", move |request: &Request| {
                serve(request, &options, &refused, &stop, &hits)
            })
            .map_err(|e| format!("cannot start the demo site: {e}"))?
        };
        let url = Url::parse(&format!("http://{}/", server.addr())).map_err(|e| e.to_string())?;
        Ok(DemoSite {
            url,
            stop,
            hits,
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:{port}/`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// How many times each path (with its query) was requested.
    pub fn hits(&self) -> HashMap<String, usize> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for DemoSite {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        drop(self.server.take());
    }
}

/// Waits until the site is stopping (the slow page: a latch, not a delay, so that it is slower than any timeout
/// however slow the machine).
fn hold(stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
    drop(wake.wait_while(guard, |stopped| !*stopped));
}

/// Waits `delay`, or less if the site is stopping. (Simulated server latency, not synchronisation.)
fn pause(stop: &(Mutex<bool>, Condvar), delay: Duration) {
    if delay.is_zero() {
        return;
    }
    let (stopped, wake) = stop;
    let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
    let _ = wake.wait_timeout_while(guard, delay, |stopped| !*stopped);
}

fn serve(
    request: &Request,
    options: &DemoOptions,
    refused: &str,
    stop: &(Mutex<bool>, Condvar),
    hits: &Mutex<HashMap<String, usize>>,
) -> Response {
    if let Ok(mut hits) = hits.lock() {
        *hits.entry(request.path.clone()).or_default() += 1;
    }
    let reply = respond(options, refused, &request.path);
    if reply.hold {
        hold(stop);
    }
    pause(stop, options.latency);
    let response = Response::new(reply.status, reply.content_type, reply.body);
    match reply.location {
        Some(location) => response.with_header("Location", &location),
        None => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_shape() {
        let options = DemoOptions {
            pages: 20,
            ..DemoOptions::default()
        };
        let get = |p: &str| respond(&options, "http://127.0.0.1:9/", p);
        assert_eq!(get("/").status, 200);
        assert_eq!(get("/page/19").status, 200);
        assert_eq!(get("/page/20").status, 404);
        assert_eq!(get("/page/01").status, 404);
        assert_eq!(get("/loop/a").location.as_deref(), Some("/loop/b"));
        assert_eq!(get("/files/report.pdf").content_type, "application/pdf");
        assert!(get("/large").body.len() > 1_000_000);
        assert!(std::str::from_utf8(&get("/bad-encoding").body).is_err());
        assert!(get("/slow").hold);
        assert_eq!(children(1, 20).collect::<Vec<_>>(), [16, 17, 18, 19]);
    }
}
