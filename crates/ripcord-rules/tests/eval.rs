//! Judging rules over samples: every function healthy, breached and
//! inconclusive, windows, min_samples, missing numbers, and Kleene logic.

use std::cell::RefCell;
use std::collections::HashMap;

use ripcord_rules::{evaluate, parse, Evaluation, Sample, Verdict};

const NOW: i64 = 1_700_000_000_000;

/// A sample `ago_ms` before NOW.
fn at(ago_ms: i64, ok: bool, latency_ms: f64, value: Option<f64>) -> Sample {
    Sample {
        at_ms: NOW - ago_ms,
        ok,
        latency_ms,
        value,
    }
}

/// `passed` passing and `failed` failing samples, one a second, newest now.
fn passes(passed: usize, failed: usize) -> Vec<Sample> {
    (0..passed + failed)
        .map(|i| at(i as i64 * 1000, i >= failed, 100.0, None))
        .collect()
}

/// Samples one a second with these latencies, newest first.
fn latencies(ms: &[f64]) -> Vec<Sample> {
    ms.iter()
        .enumerate()
        .map(|(i, l)| at(i as i64 * 1000, true, *l, None))
        .collect()
}

/// Samples one a second with these numbers, newest first.
fn numbers(values: &[Option<f64>]) -> Vec<Sample> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| at(i as i64 * 1000, true, 10.0, *v))
        .collect()
}

fn judge(rule: &str, samples: Vec<Sample>, min_samples: u32) -> Evaluation {
    let expr = parse(rule).unwrap();
    let source = move |_: &str| samples.clone();
    evaluate(&expr, &source, NOW, min_samples)
}

fn one_line(rule: &str, samples: Vec<Sample>, min_samples: u32) -> (Verdict, String) {
    let e = judge(rule, samples, min_samples);
    assert_eq!(e.evidence.len(), 1, "{:?}", e.evidence);
    (e.verdict, e.evidence[0].clone())
}

#[test]
fn availability() {
    assert_eq!(
        one_line("availability(api, 30s) < 95%", passes(8, 2), 5),
        (
            Verdict::Breached,
            "availability(api, 30s) = 80.0% (8 of 10 samples) < 95%: breached".into()
        )
    );
    assert_eq!(
        one_line("availability(api, 30s) < 0.75", passes(8, 2), 5),
        (
            Verdict::Healthy,
            "availability(api, 30s) = 80.0% (8 of 10 samples) < 0.75: healthy".into()
        )
    );
    assert_eq!(
        one_line("availability(api, 30s) < 95%", passes(2, 1), 5),
        (
            Verdict::Inconclusive,
            "availability(api, 30s): 3 samples, fewer than the 5 required: inconclusive".into()
        )
    );
    assert_eq!(
        one_line("availability(api, 30s) < 95%", vec![], 1),
        (
            Verdict::Inconclusive,
            "availability(api, 30s): no samples in the last 30s: inconclusive".into()
        )
    );
}

#[test]
fn error_rate() {
    assert_eq!(
        one_line("error_rate(api, 1m) > 5%", passes(8, 2), 1),
        (
            Verdict::Breached,
            "error_rate(api, 1m) = 20.0% (2 of 10 samples failed) > 5%: breached".into()
        )
    );
    assert_eq!(
        one_line("error_rate(api, 1m) > 25%", passes(8, 2), 1).0,
        Verdict::Healthy
    );
    assert_eq!(
        one_line("error_rate(api, 1m) > 0", passes(10, 0), 1).0,
        Verdict::Healthy
    );
    assert_eq!(
        one_line("error_rate(api, 1m) > 5%", passes(1, 1), 3).0,
        Verdict::Inconclusive
    );
}

#[test]
fn a_measure_equal_to_the_threshold_but_for_rounding_is_equal() {
    // 1 - 0.8 is 0.19999999999999996 and 99.9 / 100 is not 1998 / 2000 in
    // floating point; neither may decide a verdict.
    assert_eq!(
        one_line("error_rate(a, 1m) >= 20%", passes(8, 2), 1).0,
        Verdict::Breached
    );
    assert_eq!(
        one_line("error_rate(a, 1m) < 0.2", passes(8, 2), 1).0,
        Verdict::Healthy
    );
    let many = passes(1998, 2);
    let (verdict, line) = one_line("availability(a, 1h) < 99.9%", many.clone(), 1);
    assert_eq!(verdict, Verdict::Healthy, "{line}");
    assert_eq!(
        line,
        "availability(a, 1h) = 99.9% (1998 of 2000 samples) < 99.9%: healthy"
    );
    assert_eq!(
        one_line("availability(a, 1h) <= 99.9%", many, 1).0,
        Verdict::Breached
    );
    assert_eq!(
        one_line("avg(q, 1m) == 0.15", numbers(&[Some(0.1), Some(0.2)]), 1).0,
        Verdict::Breached
    );
    // Values that do differ still do, however small.
    assert_eq!(
        one_line("value(q) > 0", numbers(&[Some(1e-300)]), 1).0,
        Verdict::Breached
    );
    assert_eq!(
        one_line("value(q) == 1", numbers(&[Some(1.000_000_001)]), 1).0,
        Verdict::Healthy
    );
    // Infinity is not near anything.
    assert_eq!(
        one_line("value(q) < 1", numbers(&[Some(f64::INFINITY)]), 1).0,
        Verdict::Healthy
    );
}

#[test]
fn percentiles_are_nearest_rank() {
    // 1..=100 ms: the p-th percentile is p.
    let hundred: Vec<f64> = (1..=100).rev().map(f64::from).collect();
    for (f, expect) in [("p50", 50.0), ("p95", 95.0), ("p99", 99.0)] {
        let (verdict, line) = one_line(
            &format!("{f}(api.latency, 5m) > {expect}ms"),
            latencies(&hundred),
            1,
        );
        assert_eq!(verdict, Verdict::Healthy, "{line}");
        let (verdict, line) = one_line(
            &format!("{f}(api.latency, 5m) >= {expect}ms"),
            latencies(&hundred),
            1,
        );
        assert_eq!(verdict, Verdict::Breached, "{line}");
        assert_eq!(
            line,
            format!("{f}(api.latency, 5m) = {expect} ms over 100 samples >= {expect}ms: breached")
        );
    }
    // Ten samples: ranks ceil(5) = 5, ceil(9.5) = 10, ceil(9.9) = 10.
    let ten = [70.0, 10.0, 100.0, 40.0, 20.0, 90.0, 30.0, 60.0, 80.0, 50.0];
    assert!(one_line("p50(a.latency, 1m) == 50ms", latencies(&ten), 1)
        .1
        .contains("= 50 ms over 10"));
    assert!(one_line("p95(a.latency, 1m) == 100ms", latencies(&ten), 1)
        .1
        .contains("= 100 ms"));
    assert_eq!(
        one_line("p99(a.latency, 1m) == 0.1s", latencies(&ten), 1).0,
        Verdict::Breached
    );
    // One sample is every percentile.
    assert_eq!(
        one_line("p50(a.latency, 1m) <= 500ms", latencies(&[312.0]), 1),
        (
            Verdict::Breached,
            "p50(a.latency, 1m) = 312 ms over 1 sample <= 500ms: breached".into()
        )
    );
    assert_eq!(
        one_line("p95(api.latency, 1m) > 500ms", latencies(&[312.0; 58]), 1),
        (
            Verdict::Healthy,
            "p95(api.latency, 1m) = 312 ms over 58 samples > 500ms: healthy".into()
        )
    );
    assert_eq!(
        one_line("p95(api.latency, 1m) > 2s", latencies(&[2500.0, 10.0]), 1).0,
        Verdict::Breached,
        "2s is 2000 ms"
    );
}

#[test]
fn percentiles_skip_nan_latencies_and_count_only_real_ones() {
    let mixed = latencies(&[f64::NAN, 300.0, f64::NAN, 100.0]);
    let (verdict, line) = one_line("p99(a.latency, 1m) > 250ms", mixed.clone(), 2);
    assert_eq!(verdict, Verdict::Breached, "{line}");
    assert!(line.contains("= 300 ms over 2 samples"), "{line}");
    assert_eq!(
        one_line("p99(a.latency, 1m) > 250ms", mixed, 3).1,
        "p99(a.latency, 1m): 2 samples with a latency, fewer than the 3 required: inconclusive"
    );
    assert_eq!(
        one_line("p50(a.latency, 1m) > 250ms", latencies(&[f64::NAN]), 1),
        (
            Verdict::Inconclusive,
            "p50(a.latency, 1m): 1 sample, none with a latency: inconclusive".into()
        )
    );
    assert_eq!(
        one_line("p50(a.latency, 1m) > 250ms", vec![], 0).0,
        Verdict::Inconclusive
    );
}

#[test]
fn value_is_the_newest_samples_number() {
    let samples = numbers(&[Some(3.0), Some(0.0), None]);
    assert_eq!(
        one_line("value(orders) > 0", samples.clone(), 1),
        (
            Verdict::Breached,
            "value(orders) = 3 (newest sample, 0s old) > 0: breached".into()
        )
    );
    assert_eq!(
        one_line("value(orders) > 3", samples, 1).0,
        Verdict::Healthy
    );
    // The newest has no number: an older one does not stand in for it.
    let (verdict, line) = one_line("value(orders) > 0", numbers(&[None, Some(3.0)]), 1);
    assert_eq!(verdict, Verdict::Inconclusive);
    assert!(
        line.starts_with("value(orders) has no number (the newest sample, 0s old, has none"),
        "{line}"
    );
    assert!(line.ends_with(": inconclusive"), "{line}");
    let (verdict, line) = one_line(
        "value(orders) > 0",
        numbers(&[Some(f64::NAN), Some(3.0)]),
        1,
    );
    assert_eq!(verdict, Verdict::Inconclusive);
    assert!(line.contains("is NaN"), "{line}");
    assert_eq!(
        one_line("value(orders) > 0", vec![], 1),
        (
            Verdict::Inconclusive,
            "value(orders): no samples: inconclusive".into()
        )
    );
    // However old the newest sample is; never one from after now.
    let old_and_future = vec![
        at(7_200_000, true, 1.0, Some(5.0)),
        at(-1000, true, 1.0, Some(-5.0)),
    ];
    assert_eq!(
        one_line("value(orders) > 0", old_and_future, 1),
        (
            Verdict::Breached,
            "value(orders) = 5 (newest sample, 2h old) > 0: breached".into()
        )
    );
    // min_samples is about windows; value needs its one sample.
    assert_eq!(
        one_line("value(orders) > 0", numbers(&[Some(1.0)]), 5).0,
        Verdict::Breached
    );
}

#[test]
fn last_avg_min_max_read_the_numbers_in_the_window() {
    // Newest first: 4, none, NaN, 1, 7. Numbers: 4, 1, 7.
    let samples = numbers(&[Some(4.0), None, Some(f64::NAN), Some(1.0), Some(7.0)]);
    let cases = [
        ("last(q, 1m) == 4", "last(q, 1m) = 4 == 4: breached"),
        (
            "avg(q, 1m) == 4",
            "avg(q, 1m) = 4 over 3 samples == 4: breached",
        ),
        (
            "min(q, 1m) == 1",
            "min(q, 1m) = 1 over 3 samples == 1: breached",
        ),
        (
            "max(q, 1m) == 7",
            "max(q, 1m) = 7 over 3 samples == 7: breached",
        ),
        ("last(q, 1m) > 4", "last(q, 1m) = 4 > 4: healthy"),
        (
            "avg(q, 1m) != 4",
            "avg(q, 1m) = 4 over 3 samples != 4: healthy",
        ),
        (
            "min(q, 1m) < 1",
            "min(q, 1m) = 1 over 3 samples < 1: healthy",
        ),
        (
            "max(q, 1m) > 7",
            "max(q, 1m) = 7 over 3 samples > 7: healthy",
        ),
    ];
    for (rule, line) in cases {
        let (verdict, got) = one_line(rule, samples.clone(), 3);
        assert_eq!(got, line);
        assert_eq!(verdict.to_string(), line.rsplit(": ").next().unwrap());
    }
    // min_samples counts the samples with a number: 3 of the 5.
    for f in ["last", "avg", "min", "max"] {
        assert_eq!(
            one_line(&format!("{f}(q, 1m) > 0"), samples.clone(), 4),
            (
                Verdict::Inconclusive,
                format!(
                    "{f}(q, 1m): 3 samples with a number, fewer than the 4 required: inconclusive"
                )
            )
        );
        assert_eq!(
            one_line(&format!("{f}(q, 1m) > 0"), numbers(&[None, Some(f64::NAN)]), 1),
            (
                Verdict::Inconclusive,
                format!("{f}(q, 1m) has no number (2 samples in the window, none with one): inconclusive")
            )
        );
        assert_eq!(
            one_line(&format!("{f}(q, 1m) > 0"), vec![], 1),
            (
                Verdict::Inconclusive,
                format!("{f}(q, 1m): no samples in the last 1m: inconclusive")
            )
        );
    }
    assert_eq!(
        one_line("avg(q, 1m) > 1.25", numbers(&[Some(1.0), Some(2.0)]), 1).1,
        "avg(q, 1m) = 1.5 over 2 samples > 1.25: breached"
    );
}

#[test]
fn a_window_is_now_minus_window_exclusive_to_now_inclusive() {
    let samples = vec![
        at(30_000, false, 1.0, Some(100.0)), // exactly 30s old: out
        at(29_999, true, 1.0, Some(1.0)),    // in
        at(0, true, 1.0, Some(2.0)),         // now: in
        at(-1, false, 1.0, Some(100.0)),     // after now: out
        at(3_600_000, false, 1.0, Some(100.0)),
    ];
    let (verdict, line) = one_line("availability(api, 30s) < 100%", samples.clone(), 1);
    assert_eq!(verdict, Verdict::Healthy, "{line}");
    assert!(line.contains("(2 of 2 samples)"), "{line}");
    assert_eq!(
        one_line("max(q, 30s) > 2", samples.clone(), 1).0,
        Verdict::Healthy
    );
    assert_eq!(
        one_line("last(q, 30s) == 2", samples.clone(), 1).0,
        Verdict::Breached
    );
    // A longer window takes the old ones in.
    let (verdict, line) = one_line("availability(api, 2h) < 100%", samples, 1);
    assert_eq!(verdict, Verdict::Breached);
    assert!(line.contains("50.0% (2 of 4 samples)"), "{line}");
    // Only old samples: nothing in the window.
    assert_eq!(
        one_line(
            "availability(api, 500ms) < 95%",
            vec![at(500, true, 1.0, None)],
            1
        )
        .1,
        "availability(api, 500ms): no samples in the last 500ms: inconclusive"
    );
}

#[test]
fn min_samples_zero_and_one_both_mean_one() {
    for min in [0, 1] {
        assert_eq!(
            one_line("availability(a, 1m) < 95%", passes(0, 1), min).0,
            Verdict::Breached
        );
        assert_eq!(
            one_line("availability(a, 1m) < 95%", vec![], min).0,
            Verdict::Inconclusive
        );
    }
    assert_eq!(
        one_line("availability(a, 1m) < 95%", passes(0, 2), 2).0,
        Verdict::Breached
    );
    assert_eq!(
        one_line("availability(a, 1m) < 95%", passes(0, 2), 3).0,
        Verdict::Inconclusive
    );
}

#[test]
fn samples_in_any_order() {
    let mut samples = numbers(&[Some(9.0), Some(1.0), Some(2.0)]);
    samples.reverse();
    assert_eq!(
        one_line("last(q, 1m) == 9", samples.clone(), 1).0,
        Verdict::Breached
    );
    assert_eq!(one_line("value(q) == 9", samples, 1).0, Verdict::Breached);
}

const H: Verdict = Verdict::Healthy;
const B: Verdict = Verdict::Breached;
const I: Verdict = Verdict::Inconclusive;

#[test]
fn kleene_tables() {
    let and = [
        (H, H, H),
        (H, B, H),
        (H, I, H),
        (B, H, H),
        (B, B, B),
        (B, I, I),
        (I, H, H),
        (I, B, I),
        (I, I, I),
    ];
    let or = [
        (H, H, H),
        (H, B, B),
        (H, I, I),
        (B, H, B),
        (B, B, B),
        (B, I, B),
        (I, H, I),
        (I, B, B),
        (I, I, I),
    ];
    for (a, b, expect) in and {
        assert_eq!(a.and(b), expect, "{a} and {b}");
    }
    for (a, b, expect) in or {
        assert_eq!(a.or(b), expect, "{a} or {b}");
    }
}

/// Probes h, b and i whose `value(_) > 0` is healthy, breached and
/// inconclusive.
fn three_valued(probe: &str) -> Vec<Sample> {
    match probe {
        "h" => vec![at(0, true, 1.0, Some(0.0))],
        "b" => vec![at(0, true, 1.0, Some(1.0))],
        _ => vec![],
    }
}

fn probe_for(v: Verdict) -> &'static str {
    match v {
        Verdict::Healthy => "h",
        Verdict::Breached => "b",
        Verdict::Inconclusive => "i",
    }
}

#[test]
fn rules_combine_with_kleene_logic_and_keep_all_evidence() {
    for a in [H, B, I] {
        for b in [H, B, I] {
            for (word, expect) in [("and", a.and(b)), ("or", a.or(b))] {
                let rule = format!(
                    "value({}) > 0 {word} value({}) > 0",
                    probe_for(a),
                    probe_for(b)
                );
                let e = evaluate(&parse(&rule).unwrap(), &three_valued, NOW, 1);
                assert_eq!(e.verdict, expect, "{rule}");
                assert_eq!(e.evidence.len(), 2, "{rule}: not short-circuited");
                assert!(
                    e.evidence[0].ends_with(&format!(": {a}")),
                    "{rule}: {:?}",
                    e.evidence
                );
                assert!(
                    e.evidence[1].ends_with(&format!(": {b}")),
                    "{rule}: {:?}",
                    e.evidence
                );
            }
        }
    }
    // Precedence carries into the verdict: b or (i and h) is breached;
    // (b or i) and h is healthy.
    let e = evaluate(
        &parse("value(b) > 0 or value(i) > 0 and value(h) > 0").unwrap(),
        &three_valued,
        NOW,
        1,
    );
    assert_eq!(e.verdict, B);
    let e = evaluate(
        &parse("(value(b) > 0 or value(i) > 0) and value(h) > 0").unwrap(),
        &three_valued,
        NOW,
        1,
    );
    assert_eq!(e.verdict, H);
    let e = evaluate(
        &parse("(value(b) > 0 or value(i) > 0) and value(i) > 0").unwrap(),
        &three_valued,
        NOW,
        1,
    );
    assert_eq!(e.verdict, I);
}

#[test]
fn each_probe_is_asked_for_once() {
    let asked: RefCell<HashMap<String, usize>> = RefCell::default();
    let source = |probe: &str| {
        *asked.borrow_mut().entry(probe.to_string()).or_default() += 1;
        passes(5, 0)
    };
    let expr = parse("availability(a, 1m) < 95% or error_rate(a, 5m) > 1% or p95(a.latency, 1m) > 1s and value(b) > 0").unwrap();
    let e = evaluate(&expr, &source, NOW, 1);
    assert_eq!(e.evidence.len(), 4);
    let asked = asked.into_inner();
    assert_eq!(asked.get("a"), Some(&1));
    assert_eq!(asked.get("b"), Some(&1));
}
