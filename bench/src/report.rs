//! Turning series into the Markdown report: one table per workload, and a table of the issue's targets.

use std::fmt::Write as _;

use crate::stats::{Figure, Kind, Series, Summary, Unit, paired_ratio};

/// One workload's results.
pub struct Section {
    /// Heading, e.g. `1. submit + wait, no-op task, 2 workers`.
    pub title: String,
    /// How it was measured (shape and counts), one paragraph.
    pub how: String,
    /// The unit of every series in it.
    pub unit: Unit,
    /// The interleaved series, in run order.
    pub series: Vec<Series>,
    /// Rows that could not run at all, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// One of the issue's targets, with what was measured against it.
pub struct Target {
    /// What is compared, e.g. `1 worker: ours / fastest Rust peer with a handle (tokio)`.
    pub what: String,
    /// The measured figure (a ratio or an absolute), or `None` if it could not be measured.
    pub measured: Option<Summary>,
    /// How `measured` is printed.
    pub shown_as: Shown,
    /// The target, as text, e.g. `<= 0.8x`.
    pub target: String,
    /// Whether the median meets the target (`None`: not measured).
    pub met: Option<bool>,
    /// Why it is missing, when it is.
    pub note: String,
}

/// How a target's figure is printed.
#[derive(Clone, Copy)]
pub enum Shown {
    /// A ratio (`1.12x`).
    Ratio,
    /// An absolute figure in this unit.
    Absolute(Unit),
}

fn fig(value: f64, unit: Unit) -> String {
    Figure { value, unit }.to_string()
}

fn ratio(r: &Summary) -> String {
    format!("{:.2}x ({:.2}-{:.2})", r.median, r.min, r.max)
}

impl Section {
    /// The series of this crate's main contender (the first `Kind::Ours`).
    pub fn ours(&self) -> Option<&Series> {
        self.series.iter().find(|s| s.kind == Kind::Ours)
    }

    /// The section as Markdown: heading, how, table, skipped rows.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n\n{}\n", self.title, self.how);
        let ours = self.ours();
        let _ = writeln!(
            out,
            "| contender | median | min | max | runs | ours / this (paired, median and range) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
        for s in &self.series {
            let (median, min, max, runs) = match s.summary() {
                Some(sum) => (
                    fig(sum.median, self.unit),
                    fig(sum.min, self.unit),
                    fig(sum.max, self.unit),
                    sum.count.to_string(),
                ),
                None => ("failed".into(), "-".into(), "-".into(), "0".into()),
            };
            let vs = match ours {
                Some(o) if o.name != s.name => paired_ratio(o, s)
                    .map(|r| ratio(&r))
                    .unwrap_or_else(|| "-".into()),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {median} | {min} | {max} | {runs} | {vs} |",
                s.name
            );
        }
        for (name, why) in &self.skipped {
            let _ = writeln!(out, "| {name} | {why} | | | | |");
        }
        out
    }
}

impl Target {
    /// A target on a paired ratio `a / b` of two series: met when the median satisfies `ok`.
    pub fn ratio(
        what: String,
        a: Option<&Series>,
        b: Option<&Series>,
        target: &str,
        ok: impl Fn(f64) -> bool,
    ) -> Target {
        let measured = match (a, b) {
            (Some(a), Some(b)) => paired_ratio(a, b),
            _ => None,
        };
        Target {
            what,
            met: measured.map(|m| ok(m.median)),
            note: if measured.is_none() {
                "not measured".into()
            } else {
                String::new()
            },
            measured,
            shown_as: Shown::Ratio,
            target: target.into(),
        }
    }

    /// A target on the absolute figure of one series (its median must satisfy `ok`).
    pub fn absolute(
        what: String,
        series: Option<&Series>,
        unit: Unit,
        target: &str,
        ok: impl Fn(f64) -> bool,
    ) -> Target {
        let measured = series.and_then(Series::summary);
        Target {
            what,
            met: measured.map(|m| ok(m.median)),
            note: if measured.is_none() {
                "not measured".into()
            } else {
                String::new()
            },
            measured,
            shown_as: Shown::Absolute(unit),
            target: target.into(),
        }
    }
}

/// The targets as a Markdown table.
pub fn targets_markdown(targets: &[Target]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| what | measured: median (min-max) | target | met |");
    let _ = writeln!(out, "|---|---|---|---|");
    for t in targets {
        let measured = match (&t.measured, t.shown_as) {
            (Some(m), Shown::Ratio) => ratio(m),
            (Some(m), Shown::Absolute(u)) => {
                format!("{} ({}-{})", fig(m.median, u), fig(m.min, u), fig(m.max, u))
            }
            (None, _) => t.note.clone(),
        };
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        let _ = writeln!(out, "| {} | {measured} | {} | {met} |", t.what, t.target);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, kind: Kind, samples: &[f64]) -> Series {
        Series {
            name: name.into(),
            kind,
            samples: samples.iter().copied().map(Some).collect(),
        }
    }

    #[test]
    fn section_rows_carry_paired_ratios_against_ours() {
        let section = Section {
            title: "t".into(),
            how: "h".into(),
            unit: Unit::Nanos,
            series: vec![
                series("ours", Kind::Ours, &[100.0, 200.0]),
                series("peer", Kind::PeerWithHandle, &[200.0, 400.0]),
            ],
            skipped: vec![("later".into(), "not built yet".into())],
        };
        let md = section.markdown();
        assert!(
            md.contains("| ours | 150 ns | 100 ns | 200 ns | 2 | - |"),
            "{md}"
        );
        assert!(
            md.contains("| peer | 300 ns | 200 ns | 400 ns | 2 | 0.50x (0.50-0.50) |"),
            "{md}"
        );
        assert!(md.contains("| later | not built yet |"), "{md}");
    }

    #[test]
    fn targets_say_whether_they_are_met() {
        let ours = series("ours", Kind::Ours, &[90.0]);
        let peer = series("peer", Kind::PeerWithHandle, &[100.0]);
        let md = targets_markdown(&[
            Target::ratio("r".into(), Some(&ours), Some(&peer), "<= 0.8x", |r| {
                r <= 0.8
            }),
            Target::absolute("a".into(), Some(&ours), Unit::Bytes, "<= 96 B", |b| {
                b <= 96.0
            }),
        ]);
        assert!(
            md.contains("| r | 0.90x (0.90-0.90) | <= 0.8x | **no** |"),
            "{md}"
        );
        assert!(
            md.contains("| a | 90 B (90 B-90 B) | <= 96 B | yes |"),
            "{md}"
        );
    }
}
