//! The command line: clap parses it, `Options::resolve` checks what clap cannot.

use std::time::Duration;

use clap::Parser;
use url::Url;

/// Default per-request timeout for a URL given on the command line.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default per-request timeout against the built-in demo site (its slow page is slower than this).
pub const DEFAULT_DEMO_TIMEOUT: Duration = Duration::from_millis(500);

/// A concurrent web crawler: every fetch is a task on a `concurrent_futures::ThreadPoolExecutor` that reads the
/// page's links as it arrives, and a done-callback on each task's future submits the links it found.
///
/// With no URL it starts a built-in demo site on 127.0.0.1 and crawls that (no network needed).
#[derive(Parser, Debug, Clone)]
#[command(name = "crawler", version)]
pub struct Args {
    /// Start URL (http or https). Omit it to crawl the built-in demo site.
    pub url: Option<String>,

    /// Follow links up to this many hops from the start page (the start page is depth 0).
    #[arg(short, long, default_value_t = 3, allow_negative_numbers = true, value_parser = whole_number::<0, { u32::MAX as u64 }>)]
    pub depth: u64,

    /// Fetch at most this many URLs (redirect hops count as fetches).
    #[arg(short = 'n', long, default_value_t = 1000, allow_negative_numbers = true, value_parser = whole_number::<1, 10_000_000>)]
    pub max_pages: u64,

    /// Worker threads fetching at the same time.
    #[arg(short, long, default_value_t = 16, allow_negative_numbers = true, value_parser = whole_number::<1, 1024>)]
    pub workers: u64,

    /// Per-request timeout, e.g. `10s`, `500ms` or `2.5` (seconds) [default: 10s, 500ms for the demo site].
    #[arg(short, long, allow_negative_numbers = true, value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Follow links to other hosts too (by default only the start URL's host and port are crawled).
    #[arg(long)]
    pub all_hosts: bool,

    /// Do not fetch or honour robots.txt.
    #[arg(long)]
    pub ignore_robots: bool,

    /// Print one JSON document on stdout instead of the summary table (and no progress bar).
    #[arg(long)]
    pub json: bool,

    /// Do not show the progress bar.
    #[arg(short, long)]
    pub quiet: bool,

    /// Demo site: latency added to every response, in milliseconds.
    #[arg(long, default_value_t = 20, allow_negative_numbers = true, value_parser = whole_number::<0, 60_000>)]
    pub demo_latency_ms: u64,

    /// Demo site: number of generated pages.
    #[arg(long, default_value_t = 300, allow_negative_numbers = true, value_parser = whole_number::<1, 1_000_000>)]
    pub demo_pages: u64,

    /// Serve the demo site and print its URL, without crawling it, until Ctrl-C.
    #[arg(long, conflicts_with = "url")]
    pub serve_demo: bool,
}

/// A whole number from `MIN` to `MAX`. (Negative numbers reach this parser, `allow_negative_numbers`, so that
/// `--depth -1` is told what is wrong rather than clap's tip to pass `-1` after `--`, which would make it the URL.)
pub fn whole_number<const MIN: u64, const MAX: u64>(s: &str) -> Result<u64, String> {
    let wanted = if MAX == u64::MAX || MAX == u64::from(u32::MAX) {
        format!("a whole number, {MIN} or more")
    } else {
        format!("a whole number from {MIN} to {MAX}")
    };
    match s.trim().parse::<i128>() {
        Ok(n) if (i128::from(MIN)..=i128::from(MAX)).contains(&n) => Ok(n as u64),
        Ok(_) | Err(_) => Err(format!("expected {wanted}")),
    }
}

/// `10s`, `500ms`, `1m 30s` (humantime), or a plain number of seconds (`2`, `0.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let duration = if let Ok(secs) = s.parse::<f64>() {
        Duration::try_from_secs_f64(secs).map_err(|e| format!("{s}: {e}"))?
    } else {
        humantime::parse_duration(s).map_err(|e| format!("{s}: {e} (try `10s` or `500ms`)"))?
    };
    if duration.is_zero() {
        return Err("the timeout must be greater than zero".into());
    }
    if duration > Duration::from_secs(24 * 3600) {
        return Err(format!("{s}: at most a day, please"));
    }
    Ok(duration)
}

/// Parses and checks a start URL: absolute, http or https, with a host.
pub fn parse_start_url(s: &str) -> Result<Url, String> {
    if s.trim().is_empty() {
        return Err("the URL is empty (omit it to crawl the built-in demo site)".into());
    }
    let url = match Url::parse(s) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            return Err(format!(
                "invalid URL '{s}': it has no scheme (did you mean http://{s} ?)"
            ));
        }
        Err(e) => return Err(format!("invalid URL '{s}': {e}")),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid URL '{s}': only http and https URLs can be crawled, not {}:",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("invalid URL '{s}': it has no host"));
    }
    Ok(super::links::normalise(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("1e19").is_err());
        assert!(parse_duration("NaN").is_err());
    }

    #[test]
    fn whole_numbers() {
        assert_eq!(whole_number::<0, 10>("3"), Ok(3));
        assert_eq!(whole_number::<0, 10>(" 0 "), Ok(0));
        assert!(
            whole_number::<0, 10>("-1")
                .unwrap_err()
                .contains("from 0 to 10")
        );
        assert!(whole_number::<1, 10>("0").is_err());
        assert!(whole_number::<1, 10>("11").is_err());
        assert!(
            whole_number::<0, { u32::MAX as u64 }>("x")
                .unwrap_err()
                .contains("0 or more")
        );
    }

    #[test]
    fn start_urls() {
        assert!(parse_start_url("http://127.0.0.1:8000/").is_ok());
        assert!(
            parse_start_url("example.com")
                .unwrap_err()
                .contains("no scheme")
        );
        assert!(
            parse_start_url("ftp://example.com/")
                .unwrap_err()
                .contains("only http")
        );
        assert!(parse_start_url("http://").is_err());
    }
}
