//! The summary: a table for people, one JSON document for programs.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use super::crawl::{Outcome, PageRecord};

/// The figures of a crawl.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub start_url: String,
    pub interrupted: bool,
    pub workers: usize,
    pub depth_limit: u32,
    pub max_pages: usize,
    /// URLs fetched (with or without a response).
    pub pages_fetched: usize,
    /// "2xx", "3xx", "4xx", "5xx" -> pages.
    pub status_classes: BTreeMap<String, usize>,
    /// Error kind -> pages.
    pub errors: BTreeMap<String, usize>,
    /// 2xx responses that are not HTML (not parsed).
    pub non_html: usize,
    pub bytes: u64,
    pub elapsed_s: f64,
    /// `None` (JSON `null`) when no URL answered: a rate of failures means nothing.
    pub pages_per_s: Option<f64>,
    pub max_depth: u32,
    pub robots_blocked: usize,
    pub offsite_links_skipped: usize,
    pub links_over_max_pages: usize,
    pub cancelled: usize,
}

impl Summary {
    pub fn of(outcome: &Outcome) -> Summary {
        let mut status_classes = BTreeMap::new();
        let mut errors = BTreeMap::new();
        let mut non_html = 0;
        for page in &outcome.pages {
            if let Some(status) = page.status {
                *status_classes
                    .entry(format!("{}xx", status / 100))
                    .or_insert(0) += 1;
                if (200..300).contains(&status) && !is_html(page) {
                    non_html += 1;
                }
            }
            if let Some(kind) = page.error {
                *errors.entry(kind.as_str().to_owned()).or_insert(0) += 1;
            }
        }
        let elapsed_s = outcome.elapsed.as_secs_f64();
        let pages_fetched = outcome.pages.len();
        let answered = outcome.pages.iter().filter(|p| p.status.is_some()).count();
        Summary {
            start_url: outcome.config.start.to_string(),
            interrupted: outcome.interrupted,
            workers: outcome.config.workers,
            depth_limit: outcome.config.depth,
            max_pages: outcome.config.max_pages,
            pages_fetched,
            status_classes,
            errors,
            non_html,
            bytes: outcome.pages.iter().map(|p| p.bytes).sum(),
            elapsed_s,
            pages_per_s: (elapsed_s > 0.0 && answered > 0)
                .then(|| pages_fetched as f64 / elapsed_s),
            max_depth: outcome.pages.iter().map(|p| p.depth).max().unwrap_or(0),
            robots_blocked: outcome.robots_blocked.len(),
            offsite_links_skipped: outcome.offsite_skipped,
            links_over_max_pages: outcome.budget_skipped,
            cancelled: outcome.cancelled,
        }
    }
}

fn is_html(page: &PageRecord) -> bool {
    page.content_type.as_deref().is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.starts_with("text/html") || ct.starts_with("application/xhtml+xml")
    })
}

/// The `--json` document.
#[derive(Serialize)]
struct Document<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    pages: &'a [PageRecord],
    robots_blocked_urls: &'a [String],
}

pub fn write_json(out: &mut dyn Write, outcome: &Outcome) -> io::Result<()> {
    let summary = Summary::of(outcome);
    let document = Document {
        summary: &summary,
        pages: &outcome.pages,
        robots_blocked_urls: &outcome.robots_blocked,
    };
    let text = serde_json::to_string_pretty(&document).map_err(io::Error::other)?;
    writeln!(out, "{text}")
}

/// `1 worker`, `2 workers`: a count and the noun that agrees with it.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn write_table(out: &mut dyn Write, outcome: &Outcome) -> io::Result<()> {
    let s = Summary::of(outcome);
    let title = if s.interrupted {
        "Crawl interrupted (partial summary)"
    } else {
        "Crawl finished"
    };
    writeln!(out, "{title}: {}", s.start_url)?;
    writeln!(
        out,
        "  {}, depth <= {}, at most {}",
        counted(s.workers as u64, "worker", "workers"),
        s.depth_limit,
        counted(s.max_pages as u64, "page", "pages")
    )?;
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push(("pages fetched".into(), s.pages_fetched.to_string()));
    for class in ["2xx", "3xx", "4xx", "5xx"] {
        rows.push((
            format!("  {class}"),
            s.status_classes
                .get(class)
                .copied()
                .unwrap_or(0)
                .to_string(),
        ));
    }
    for (class, count) in s
        .status_classes
        .iter()
        .filter(|(c, _)| !["2xx", "3xx", "4xx", "5xx"].contains(&c.as_str()))
    {
        rows.push((format!("  {class}"), count.to_string()));
    }
    rows.push((
        "  no response".into(),
        outcome
            .pages
            .iter()
            .filter(|p| p.status.is_none())
            .count()
            .to_string(),
    ));
    let error_total: usize = s.errors.values().sum();
    rows.push(("errors".into(), error_total.to_string()));
    for (kind, count) in &s.errors {
        rows.push((format!("  {kind}"), count.to_string()));
    }
    rows.push(("non-HTML (not parsed)".into(), s.non_html.to_string()));
    rows.push(("blocked by robots.txt".into(), s.robots_blocked.to_string()));
    rows.push((
        "off-site links skipped".into(),
        s.offsite_links_skipped.to_string(),
    ));
    rows.push((
        "links over --max-pages".into(),
        s.links_over_max_pages.to_string(),
    ));
    if s.cancelled > 0 || s.interrupted {
        rows.push(("cancelled (Ctrl-C)".into(), s.cancelled.to_string()));
    }
    rows.push(("bytes".into(), human_bytes(s.bytes)));
    rows.push(("elapsed".into(), format!("{:.2} s", s.elapsed_s)));
    rows.push((
        "pages/s".into(),
        s.pages_per_s
            .map_or_else(|| "-".to_owned(), |rate| format!("{rate:.1}")),
    ));
    rows.push(("max depth reached".into(), s.max_depth.to_string()));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    for (key, value) in rows {
        writeln!(out, "  {key:<width$}  {value:>value_width$}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(counted(0, "worker", "workers"), "0 workers");
        assert_eq!(counted(1, "worker", "workers"), "1 worker");
        assert_eq!(counted(2, "page", "pages"), "2 pages");
    }
}
