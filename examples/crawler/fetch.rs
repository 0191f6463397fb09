//! One HTTP GET with the shared reqwest blocking client, and what can go wrong with it, by kind.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde::Serialize;
use url::Url;

use super::links::{LinkExtractor, PageLinks};

/// The crate's name and version, as the crawler introduces itself to servers and robots.txt files.
pub const USER_AGENT: &str = concat!(
    "concurrent-futures-crawler/",
    env!("CARGO_PKG_VERSION"),
    " (+https://crates.io/crates/concurrent-futures)"
);
/// The product token robots.txt groups are matched against.
pub const ROBOTS_AGENT: &str = "concurrent-futures-crawler";
/// Bodies larger than this are not read to the end (and their links are not followed).
pub const MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;

/// How much of an untyped body is looked at to tell whether it is HTML.
const SNIFF_BYTES: usize = 512;

/// Why a URL produced no usable page. HTTP error statuses (404, 500, ...) are not errors here: they are statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The name did not resolve.
    Dns,
    /// Nothing listens on that port.
    ConnectionRefused,
    /// Another failure to connect (unreachable network, reset during connect, ...).
    Connect,
    /// The TLS handshake failed (bad certificate, wrong protocol, ...).
    Tls,
    /// No complete answer within `--timeout`.
    Timeout,
    /// The body could not be read (connection reset midway, bad chunked encoding, ...).
    Body,
    /// The body is larger than the crawler reads.
    TooLarge,
    /// The page is not valid in the character encoding it declares.
    Encoding,
    /// A redirect with no usable `Location`.
    BadRedirect,
    /// A redirect back to a URL earlier in the same redirect chain.
    RedirectLoop,
    /// More than `MAX_REDIRECTS` redirects in a row.
    TooManyRedirects,
    /// robots.txt of that host disallows the URL (found out when the host's robots.txt was first fetched).
    Robots,
    /// The fetch was cancelled before it started (Ctrl-C).
    Cancelled,
    /// The task panicked.
    Panicked,
    /// Anything else.
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Dns => "dns",
            ErrorKind::ConnectionRefused => "connection-refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Body => "body",
            ErrorKind::TooLarge => "too-large",
            ErrorKind::Encoding => "encoding",
            ErrorKind::BadRedirect => "bad-redirect",
            ErrorKind::RedirectLoop => "redirect-loop",
            ErrorKind::TooManyRedirects => "too-many-redirects",
            ErrorKind::Robots => "robots",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Panicked => "panicked",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one GET produced. The body itself is never kept: the links of an HTML page with a 2xx status are read
/// from it as it streams in.
#[derive(Debug, Default)]
pub struct Fetched {
    pub status: Option<u16>,
    pub content_type: Option<String>,
    /// The raw `Location` header of a redirect.
    pub location: Option<String>,
    pub bytes: u64,
    /// The links of an HTML page with a 2xx status read to its end (shared, not copied, with the callback).
    pub links: Option<Arc<PageLinks>>,
    /// What is wrong with such a page's character encoding (its links are still read).
    pub encoding_error: Option<String>,
    pub error: Option<(ErrorKind, String)>,
    pub elapsed: Duration,
}

impl Fetched {
    pub fn failed(kind: ErrorKind, message: impl Into<String>, started: Instant) -> Fetched {
        Fetched {
            error: Some((kind, message.into())),
            elapsed: started.elapsed(),
            ..Fetched::default()
        }
    }

    /// `text/html` or `application/xhtml+xml` (or no content type at all and a body whose first `SNIFF_BYTES` look
    /// like HTML).
    pub fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
        match content_type.and_then(|ct| ct.parse::<mime::Mime>().ok()) {
            Some(m) => {
                (m.type_() == mime::TEXT && m.subtype() == mime::HTML)
                    || m.essence_str() == "application/xhtml+xml"
            }
            None if content_type.is_some() => false,
            None => {
                let head = String::from_utf8_lossy(&body[..body.len().min(SNIFF_BYTES)])
                    .to_ascii_lowercase();
                let head = head.trim_start();
                head.starts_with("<!doctype html") || head.starts_with("<html")
            }
        }
    }
}

/// The one HTTP client every fetch shares (connection pool, TLS configuration, user agent).
#[derive(Clone)]
pub struct Fetcher {
    client: Client,
}

impl Fetcher {
    /// `use_env_proxy`: honour `HTTP_PROXY` and friends (off when the start URL is a loopback address, so a
    /// configured proxy never sees the demo site).
    pub fn new(timeout: Duration, workers: usize, use_env_proxy: bool) -> Result<Fetcher, String> {
        // reqwest is built with `rustls-no-provider`: pick rustls's ring provider once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout)
            // Redirects are followed by the crawler itself, one fetch per hop, so that no URL is fetched twice.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(workers)
            .tcp_nodelay(true);
        if !use_env_proxy {
            builder = builder.no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Fetcher { client })
    }

    /// GETs `url` (no redirects followed) and reads at most `MAX_BODY_BYTES` of its body, extracting the links of
    /// an HTML page with a 2xx status as the body streams in.
    pub fn fetch(&self, url: &Url) -> Fetched {
        let started = Instant::now();
        let response = match self.client.get(url.as_str()).send() {
            Ok(response) => response,
            Err(e) => return Fetched::failed(classify(&e), error_chain(&e), started),
        };
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                })
        };
        let content_type = header(CONTENT_TYPE);
        let location = if status.is_redirection() {
            header(LOCATION)
        } else {
            None
        };
        let mut reader = response.take(MAX_BODY_BYTES + 1);
        let mut buffer = [0u8; 32 * 1024];
        // The first bytes, until there are enough to tell whether an untyped body is HTML.
        let mut head = Vec::new();
        let mut extractor: Option<Option<LinkExtractor>> = None;
        let mut bytes = 0u64;
        let decide = |head: &[u8]| {
            (status.is_success() && Fetched::is_html(content_type.as_deref(), head))
                .then(|| LinkExtractor::new(url, content_type.as_deref()))
        };
        let read = loop {
            match reader.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    bytes += n as u64;
                    let chunk = &buffer[..n];
                    match &mut extractor {
                        Some(Some(links)) => links.write(chunk),
                        Some(None) => {}
                        None => {
                            head.extend_from_slice(chunk);
                            if head.len() >= SNIFF_BYTES {
                                let mut chosen = decide(&head);
                                if let Some(links) = &mut chosen {
                                    links.write(&head);
                                }
                                head = Vec::new();
                                extractor = Some(chosen);
                            }
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let extractor = extractor.unwrap_or_else(|| {
            let mut chosen = decide(&head);
            if let Some(links) = &mut chosen {
                links.write(&head);
            }
            chosen
        });
        let mut fetched = Fetched {
            status: Some(status.as_u16()),
            bytes,
            content_type: content_type.clone(),
            location,
            ..Fetched::default()
        };
        match read {
            Err(e) => {
                let kind = if is_timeout_io(&e) {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Body
                };
                fetched.error = Some((kind, error_chain(&e)));
            }
            Ok(()) if bytes > MAX_BODY_BYTES => {
                fetched.bytes = MAX_BODY_BYTES;
                fetched.error = Some((
                    ErrorKind::TooLarge,
                    format!("body larger than {MAX_BODY_BYTES} bytes, not read to the end"),
                ));
            }
            Ok(()) => {
                if let Some(extractor) = extractor {
                    let (links, encoding_error) = extractor.finish();
                    fetched.links = Some(Arc::new(links));
                    fetched.encoding_error = encoding_error;
                }
            }
        }
        fetched.elapsed = started.elapsed();
        fetched
    }

    /// A small GET for robots.txt: status, `Location` and body (at most 512 KiB, as RFC 9309 allows); `None` if
    /// no complete response came.
    pub fn fetch_small(&self, url: &Url) -> Option<SmallResponse> {
        let response = self.client.get(url.as_str()).send().ok()?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        response.take(512 * 1024).read_to_end(&mut body).ok()?;
        Some(SmallResponse {
            status,
            location,
            body,
        })
    }
}

/// What `Fetcher::fetch_small` got.
pub struct SmallResponse {
    pub status: u16,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// Sorts a reqwest error into a kind by looking at what it says it is and at its chain of causes.
pub fn classify(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut any_tls = false;
    let mut any_dns = false;
    let mut refused = false;
    let mut timed_out = false;
    while let Some(err) = source {
        if err.downcast_ref::<rustls::Error>().is_some() {
            any_tls = true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => refused = true,
                std::io::ErrorKind::TimedOut => timed_out = true,
                _ => {}
            }
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                any_tls = true;
            }
        }
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            any_dns = true;
        }
        if text.contains("certificate")
            || text.contains("tls handshake")
            || text.contains("invalidcontenttype")
        {
            any_tls = true;
        }
        source = err.source();
    }
    if timed_out {
        ErrorKind::Timeout
    } else if any_dns {
        ErrorKind::Dns
    } else if refused {
        ErrorKind::ConnectionRefused
    } else if any_tls {
        ErrorKind::Tls
    } else if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_body() || e.is_decode() {
        ErrorKind::Body
    } else {
        ErrorKind::Other
    }
}

fn is_timeout_io(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

/// "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        let next = err.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_detection() {
        assert!(Fetched::is_html(Some("text/html; charset=utf-8"), b""));
        assert!(Fetched::is_html(Some("TEXT/HTML"), b""));
        assert!(Fetched::is_html(Some("application/xhtml+xml"), b""));
        assert!(!Fetched::is_html(Some("application/pdf"), b"<html>"));
        assert!(!Fetched::is_html(Some("text/plain"), b"<html>"));
        assert!(Fetched::is_html(None, b"  <!DOCTYPE html><p>"));
        assert!(!Fetched::is_html(None, b"%PDF-1.4"));
    }
}
