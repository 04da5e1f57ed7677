//! Judging a rule over a probe's samples.
//!
//! The guard rolls back by itself, so a verdict must never be a guess:
//! each comparison is healthy, breached, or inconclusive when the samples
//! cannot say (too few of them in the window, none at all, or no number
//! where a number is needed). `and` and `or` combine the three with
//! Kleene's logic, so an inconclusive part decides nothing that the other
//! parts do not already decide. What to do with an inconclusive verdict
//! is the rule's `missing` setting, the caller's business.
//!
//! Every comparison leaves one line of evidence that says what was
//! measured, over how many samples, against what, and the outcome; those
//! lines are what an operator reads after a rollback.

use crate::ast::{Call, Comparison, DurationText, Expr, Function, Kind};
use std::collections::HashMap;
use std::fmt;

/// One probe sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When it was taken, in Unix milliseconds.
    pub at_ms: i64,
    /// Whether the probe passed.
    pub ok: bool,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// The probe's number; `None` when it had none (an empty result, no
    /// row, text). Callers store NaN as `None`; a NaN here is read as
    /// `None` all the same.
    pub value: Option<f64>,
}

/// Where the samples of a probe come from. Any `Fn(&str) -> Vec<Sample>`
/// is one. The order of the samples does not matter; evaluation asks once
/// per probe.
pub trait SampleSource {
    fn samples(&self, probe: &str) -> Vec<Sample>;
}

impl<F> SampleSource for F
where
    F: Fn(&str) -> Vec<Sample>,
{
    fn samples(&self, probe: &str) -> Vec<Sample> {
        self(probe)
    }
}

/// A rule's verdict. The rule describes the bad case: `Breached` is true.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Healthy,
    Breached,
    Inconclusive,
}

impl Verdict {
    /// Kleene's `and`: healthy with anything is healthy; breached needs
    /// both breached; otherwise inconclusive.
    pub fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Healthy, _) | (_, Verdict::Healthy) => Verdict::Healthy,
            (Verdict::Breached, Verdict::Breached) => Verdict::Breached,
            _ => Verdict::Inconclusive,
        }
    }

    /// Kleene's `or`: breached with anything is breached; healthy needs
    /// both healthy; otherwise inconclusive.
    pub fn or(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Breached, _) | (_, Verdict::Breached) => Verdict::Breached,
            (Verdict::Healthy, Verdict::Healthy) => Verdict::Healthy,
            _ => Verdict::Inconclusive,
        }
    }

    fn of(breached: bool) -> Verdict {
        if breached {
            Verdict::Breached
        } else {
            Verdict::Healthy
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Healthy => "healthy",
            Verdict::Breached => "breached",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// A rule's verdict and one line of evidence per comparison, left to right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub evidence: Vec<String>,
}

/// Judges `expr` at `now_ms` over the samples `source` gives.
///
/// A window covers the samples with `at_ms` in `(now - window, now]`;
/// samples after `now` are not read at all. A comparison over a window
/// needs `min_samples` of the samples it reads (at least one, so 0 and 1
/// mean the same): availability and error_rate read every sample in the
/// window, p50/p95/p99 those with a latency (not NaN), last/avg/min/max
/// those with a number. `value(p)` reads the newest sample and needs only
/// that one.
///
/// Percentiles are nearest-rank over every sample in the window, passed
/// or failed (a timeout is slow too): the `ceil(p/100 × n)`-th smallest
/// latency. A measure within floating point's rounding of the threshold
/// counts as equal to it (1998 of 2000 is 99.9%).
///
/// Every comparison is judged, even when the verdict is settled early, so
/// the evidence is complete.
pub fn evaluate(
    expr: &Expr,
    source: &dyn SampleSource,
    now_ms: i64,
    min_samples: u32,
) -> Evaluation {
    let mut judge = Judge {
        source,
        now_ms,
        need: usize::try_from(min_samples.max(1)).unwrap_or(usize::MAX),
        samples: HashMap::new(),
        evidence: Vec::new(),
    };
    let verdict = judge.expr(expr);
    Evaluation {
        verdict,
        evidence: judge.evidence,
    }
}

struct Judge<'e, 's> {
    source: &'s dyn SampleSource,
    now_ms: i64,
    need: usize,
    /// Each probe's samples, oldest first, asked for once.
    samples: HashMap<&'e str, Vec<Sample>>,
    evidence: Vec<String>,
}

impl<'e> Judge<'e, '_> {
    fn expr(&mut self, expr: &'e Expr) -> Verdict {
        match expr {
            Expr::Compare(c) => {
                let (verdict, line) = self.compare(c);
                self.evidence.push(line);
                verdict
            }
            // Not short-circuited: every comparison leaves its evidence.
            // The parser builds no empty list; one that is built by hand
            // says nothing.
            Expr::And(items) => items
                .iter()
                .map(|e| self.expr(e))
                .reduce(Verdict::and)
                .unwrap_or(Verdict::Inconclusive),
            Expr::Or(items) => items
                .iter()
                .map(|e| self.expr(e))
                .reduce(Verdict::or)
                .unwrap_or(Verdict::Inconclusive),
        }
    }

    fn compare(&mut self, c: &'e Comparison) -> (Verdict, String) {
        let call = &c.call;
        let (now, need) = (self.now_ms, self.need);
        let source = self.source;
        let samples = self.samples.entry(call.probe()).or_insert_with(|| {
            let mut samples = source.samples(call.probe());
            samples.sort_by_key(|s| s.at_ms);
            samples
        });
        match measure(call, samples, now, need) {
            Ok(m) if m.value.is_nan() => (
                Verdict::Inconclusive,
                format!("{call} is not a number ({}): inconclusive", m.shown),
            ),
            Ok(m) => {
                let threshold = c.threshold.value();
                let measured = if nearly(m.value, threshold) {
                    threshold
                } else {
                    m.value
                };
                let verdict = Verdict::of(c.op.holds(measured, threshold));
                let line = format!("{call} = {} {} {}: {verdict}", m.shown, c.op, c.threshold);
                (verdict, line)
            }
            Err(why) => (Verdict::Inconclusive, format!("{why}: inconclusive")),
        }
    }
}

/// Whether `a` and `b` are equal but for floating point's rounding: within
/// a relative 1e-12. A comparison takes such a measure for the threshold
/// itself, so 1998 of 2000 samples is 99.9% and an average of 0.1 and 0.2
/// is 0.15, as a person reads them; values that truly differ are much
/// further apart than that.
fn nearly(a: f64, b: f64) -> bool {
    a.is_finite() && b.is_finite() && (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// What a function measured, and how the evidence shows it.
struct Measured {
    value: f64,
    shown: String,
}

/// Measures `call` over `samples` (oldest first); the error is why it
/// cannot, as the start of an evidence line.
fn measure(call: &Call, samples: &[Sample], now: i64, need: usize) -> Result<Measured, String> {
    // Samples up to now; the window's start is exclusive.
    let end = samples.partition_point(|s| s.at_ms <= now);
    let start = match call.window() {
        Some(window) => {
            let ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
            let from = now.saturating_sub(ms);
            samples[..end].partition_point(|s| s.at_ms <= from)
        }
        None => 0,
    };
    let window = &samples[start..end];
    if call.function() == Function::Value {
        return newest_value(call, window, now);
    }
    if window.is_empty() {
        let span = call
            .window()
            .map(|w| format!(" in the last {}", DurationText(w)));
        return Err(format!("{call}: no samples{}", span.unwrap_or_default()));
    }
    let n = window.len();
    match call.function().kind() {
        Kind::Share => {
            if n < need {
                return Err(too_few(call, n, "", need));
            }
            let passed = window.iter().filter(|s| s.ok).count();
            Ok(if call.function() == Function::Availability {
                let share = passed as f64 / n as f64;
                Measured {
                    value: share,
                    shown: format!("{} ({passed} of {})", percent(share), samples_word(n)),
                }
            } else {
                let failed = n - passed;
                let share = failed as f64 / n as f64;
                Measured {
                    value: share,
                    shown: format!(
                        "{} ({failed} of {} failed)",
                        percent(share),
                        samples_word(n)
                    ),
                }
            })
        }
        Kind::Latency => {
            let mut latencies: Vec<f64> = window
                .iter()
                .map(|s| s.latency_ms)
                .filter(|l| !l.is_nan())
                .collect();
            let k = latencies.len();
            if k == 0 {
                return Err(format!("{call}: {}, none with a latency", samples_word(n)));
            }
            if k < need {
                let with = if k < n { " with a latency" } else { "" };
                return Err(too_few(call, k, with, need));
            }
            latencies.sort_by(f64::total_cmp);
            let p = usize::from(call.function().percentile().unwrap_or(100));
            let value = nearest_rank(&latencies, p);
            Ok(Measured {
                value,
                shown: format!("{} ms over {}", number(value), samples_word(k)),
            })
        }
        Kind::Number => {
            let numbers: Vec<f64> = window.iter().filter_map(number_of).collect();
            let k = numbers.len();
            if k == 0 {
                return Err(format!(
                    "{call} has no number ({} in the window, none with one)",
                    samples_word(n)
                ));
            }
            if k < need {
                return Err(too_few(call, k, " with a number", need));
            }
            let (value, over) = match call.function() {
                Function::Last => (numbers[k - 1], None),
                Function::Min => (
                    numbers.iter().copied().fold(f64::INFINITY, f64::min),
                    Some(k),
                ),
                Function::Max => (
                    numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    Some(k),
                ),
                _ => (numbers.iter().sum::<f64>() / k as f64, Some(k)),
            };
            let shown = match over {
                Some(k) => format!("{} over {}", number(value), samples_word(k)),
                None => number(value),
            };
            Ok(Measured { value, shown })
        }
    }
}

/// `value(p)`: the newest sample's number, however old the sample.
fn newest_value(call: &Call, samples: &[Sample], now: i64) -> Result<Measured, String> {
    let Some(newest) = samples.last() else {
        return Err(format!("{call}: no samples"));
    };
    let age = age(now.saturating_sub(newest.at_ms));
    match newest.value {
        None => Err(format!(
            "{call} has no number (the newest sample, {age} old, has none: an empty result, no row or not a number)"
        )),
        Some(v) if v.is_nan() => Err(format!(
            "{call} has no number (the newest sample's, {age} old, is NaN)"
        )),
        Some(v) => Ok(Measured {
            value: v,
            shown: format!("{} (newest sample, {age} old)", number(v)),
        }),
    }
}

/// An age, rounded down: `4s`, `12m`, `3h`.
fn age(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

fn number_of(s: &Sample) -> Option<f64> {
    s.value.filter(|v| !v.is_nan())
}

/// Nearest rank: the smallest sample with at least `p`% of the samples at
/// or below it, the `ceil(p/100 × n)`-th of `sorted`.
fn nearest_rank(sorted: &[f64], p: usize) -> f64 {
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn too_few(call: &Call, have: usize, with: &str, need: usize) -> String {
    format!(
        "{call}: {}{with}, fewer than the {need} required",
        samples_word(have)
    )
}

fn samples_word(n: usize) -> String {
    if n == 1 {
        "1 sample".into()
    } else {
        format!("{n} samples")
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// A number with at most three decimals and no trailing zeros.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}
