//! Samples, their summaries, and the interleaved runner that produces them.
//!
//! Every comparison in the report comes from [`interleave`]: all contenders of one group run one sample each, in a
//! fixed order, then the next round starts (A, B, C, A, B, C, ...). Slow drifts of the machine (another process
//! waking up, frequency changes) then hit every contender alike, and ratios are taken per round (see
//! [`paired_ratio`]) before their median is reported.

use std::fmt;

/// Median, minimum and maximum of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// The median (the mean of the two middle samples for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// How many samples were summarised.
    pub count: usize,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            count: n,
        })
    }
}

/// One contender of an interleaved group: a name and a closure that takes one sample.
///
/// The closure returns the measured figure (e.g. nanoseconds per task), or `None` when the contender cannot run
/// here (Python missing, a peer failing); such a sample is recorded as missing and the others go on.
pub struct Contender<'a> {
    /// The row label in the report.
    pub name: String,
    /// Whether this contender gives the caller a handle per task (counts for the "fastest peer with a handle").
    pub kind: Kind,
    run: Box<dyn FnMut() -> Option<f64> + 'a>,
}

/// What a contender is, for picking the comparison baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// This crate's main contender in a group (the one ratios are taken from).
    Ours,
    /// Another way of using this crate in the same group (e.g. reading results by reference).
    OursVariant,
    /// A Rust peer whose submit returns a handle to the task's result (rusty_pool, tokio).
    PeerWithHandle,
    /// A Rust peer without a result handle (a channel stands in for one), or a reference point.
    PeerOther,
    /// Python's concurrent.futures.
    Python,
}

impl<'a> Contender<'a> {
    /// A contender named `name` whose samples come from `run`.
    pub fn new(name: impl Into<String>, kind: Kind, run: impl FnMut() -> Option<f64> + 'a) -> Self {
        Contender {
            name: name.into(),
            kind,
            run: Box::new(run),
        }
    }
}

/// The samples one contender produced, one slot per round (`None`: that round's sample failed).
#[derive(Clone, Debug)]
pub struct Series {
    /// The contender's name.
    pub name: String,
    /// The contender's kind.
    pub kind: Kind,
    /// One entry per recorded round.
    pub samples: Vec<Option<f64>>,
}

impl Series {
    /// The summary of the samples that succeeded.
    pub fn summary(&self) -> Option<Summary> {
        let ok: Vec<f64> = self.samples.iter().flatten().copied().collect();
        Summary::of(&ok)
    }
}

/// Runs `warmup` discarded rounds, then `rounds` recorded rounds, each round taking one sample of every contender
/// in order. Prints a dot per round on stderr so a long run shows progress.
pub fn interleave(contenders: Vec<Contender<'_>>, warmup: usize, rounds: usize) -> Vec<Series> {
    let mut contenders = contenders;
    let mut series: Vec<Series> = contenders
        .iter()
        .map(|c| Series {
            name: c.name.clone(),
            kind: c.kind,
            samples: Vec::with_capacity(rounds),
        })
        .collect();
    for round in 0..warmup + rounds {
        for (c, s) in contenders.iter_mut().zip(series.iter_mut()) {
            let sample = (c.run)();
            if round >= warmup {
                s.samples.push(sample);
            }
        }
        eprint!(".");
    }
    eprintln!();
    series
}

/// The per-round ratios `a / b` (rounds where either failed are skipped), summarised.
///
/// Pairing by round keeps the ratio honest on a noisy machine: both figures of a pair were taken moments apart.
pub fn paired_ratio(a: &Series, b: &Series) -> Option<Summary> {
    let ratios: Vec<f64> = a
        .samples
        .iter()
        .zip(&b.samples)
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect();
    Summary::of(&ratios)
}

/// The series of `kind` with the lowest median, if any ran.
pub fn fastest_of(series: &[Series], kind: Kind) -> Option<&Series> {
    series
        .iter()
        .filter(|s| s.kind == kind)
        .filter_map(|s| s.summary().map(|sum| (s, sum.median)))
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(s, _)| s)
}

/// A figure with its unit, printed compactly (`312 ns`, `21.4 us`, `1.52 ms`; `88 B`, `1.2 KiB`).
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    /// The value in the base unit (nanoseconds or bytes).
    pub value: f64,
    /// The base unit.
    pub unit: Unit,
}

/// The base unit of a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds.
    Nanos,
    /// Bytes.
    Bytes,
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value;
        match self.unit {
            Unit::Nanos if v >= 1e6 => write!(f, "{:.2} ms", v / 1e6),
            Unit::Nanos if v >= 1e4 => write!(f, "{:.1} us", v / 1e3),
            Unit::Nanos if v >= 1e3 => write!(f, "{:.2} us", v / 1e3),
            Unit::Nanos if v >= 10.0 => write!(f, "{v:.0} ns"),
            Unit::Nanos => write!(f, "{v:.1} ns"),
            Unit::Bytes if v >= 10.0 * 1024.0 => write!(f, "{:.1} KiB", v / 1024.0),
            Unit::Bytes => write!(f, "{v:.0} B"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn ratio_is_paired_by_round_and_skips_failures() {
        let a = Series {
            name: "a".into(),
            kind: Kind::Ours,
            samples: vec![Some(2.0), None, Some(9.0)],
        };
        let b = Series {
            name: "b".into(),
            kind: Kind::PeerWithHandle,
            samples: vec![Some(4.0), Some(1.0), Some(3.0)],
        };
        let r = paired_ratio(&a, &b).unwrap();
        assert_eq!((r.min, r.max, r.count), (0.5, 3.0, 2));
    }

    #[test]
    fn interleaves_in_order() {
        use std::cell::RefCell;
        let log = RefCell::new(Vec::new());
        let cs = vec![
            Contender::new("a", Kind::Ours, || {
                log.borrow_mut().push('a');
                Some(1.0)
            }),
            Contender::new("b", Kind::Python, || {
                log.borrow_mut().push('b');
                None
            }),
        ];
        let s = interleave(cs, 1, 2);
        assert_eq!(log.borrow().iter().collect::<String>(), "ababab");
        assert_eq!(s[0].samples, vec![Some(1.0), Some(1.0)]);
        assert_eq!(s[1].samples, vec![None, None]);
    }

    #[test]
    fn figures_print_compactly() {
        let ns = |value| Figure {
            value,
            unit: Unit::Nanos,
        };
        assert_eq!(ns(312.4).to_string(), "312 ns");
        assert_eq!(ns(21_400.0).to_string(), "21.4 us");
        assert_eq!(ns(1_520_000.0).to_string(), "1.52 ms");
    }
}
