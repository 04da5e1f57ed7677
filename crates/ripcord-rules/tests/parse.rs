//! The language as written: every function, units, precedence, the
//! canonical spelling, and errors that point at the right column.

use std::time::Duration;

use ripcord_rules::{parse, Comparison, Expr, Function, Op, ParseError, Unit, MAX_DEPTH};

fn comparison(src: &str) -> Comparison {
    match parse(src) {
        Ok(Expr::Compare(c)) => c,
        other => panic!("{src:?} is not one comparison: {other:?}"),
    }
}

fn error(src: &str) -> ParseError {
    match parse(src) {
        Ok(e) => panic!("{src:?} parsed as {e}"),
        Err(e) => e,
    }
}

#[test]
fn every_function_parses_with_its_probe_and_window() {
    let cases: [(&str, Function, &str, Option<u64>); 10] = [
        (
            "availability(api, 30s) < 95%",
            Function::Availability,
            "api",
            Some(30_000),
        ),
        (
            "error_rate(api, 1m) > 5%",
            Function::ErrorRate,
            "api",
            Some(60_000),
        ),
        (
            "p50(api.latency, 1m) > 100ms",
            Function::P50,
            "api",
            Some(60_000),
        ),
        (
            "p95(api.latency, 1m) > 250ms",
            Function::P95,
            "api",
            Some(60_000),
        ),
        (
            "p99(web-1.latency, 1h) > 2s",
            Function::P99,
            "web-1",
            Some(3_600_000),
        ),
        ("value(orders) > 0", Function::Value, "orders", None),
        (
            "last(queue_depth, 5m) >= 100",
            Function::Last,
            "queue_depth",
            Some(300_000),
        ),
        ("avg(Q, 500ms) < 1", Function::Avg, "Q", Some(500)),
        ("min(q, 5m) < 1", Function::Min, "q", Some(300_000)),
        ("max(q, 5m) > 1", Function::Max, "q", Some(300_000)),
    ];
    for (src, function, probe, window) in cases {
        let c = comparison(src);
        assert_eq!(c.call.function(), function, "{src}");
        assert_eq!(c.call.probe(), probe, "{src}");
        assert_eq!(c.call.window(), window.map(Duration::from_millis), "{src}");
        assert_eq!(c.to_string(), src, "already canonical");
    }
}

#[test]
fn every_operator() {
    for (symbol, op) in [
        ("<", Op::Lt),
        ("<=", Op::Le),
        (">", Op::Gt),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
    ] {
        assert_eq!(comparison(&format!("value(x) {symbol} 1")).op, op);
        assert_eq!(
            comparison(&format!("value(x){symbol}1")).op,
            op,
            "no spaces"
        );
    }
}

#[test]
fn thresholds_and_their_units() {
    let cases: [(&str, f64, Unit, f64); 10] = [
        ("availability(a, 1m) < 95%", 95.0, Unit::Percent, 0.95),
        ("availability(a, 1m) < 99.9%", 99.9, Unit::Percent, 0.999),
        ("availability(a, 1m) < 0.95", 0.95, Unit::None, 0.95),
        ("error_rate(a, 1m) > 0", 0.0, Unit::None, 0.0),
        ("p95(a.latency, 1m) > 250ms", 250.0, Unit::Millis, 250.0),
        ("p95(a.latency, 1m) > 2s", 2.0, Unit::Seconds, 2000.0),
        ("p95(a.latency, 1m) > 1.5s", 1.5, Unit::Seconds, 1500.0),
        ("value(a) > -3", -3.0, Unit::None, -3.0),
        ("avg(a, 1m) > 1.5", 1.5, Unit::None, 1.5),
        ("max(a, 1m) > 0", 0.0, Unit::None, 0.0),
    ];
    for (src, number, unit, value) in cases {
        let t = comparison(src).threshold;
        assert_eq!((t.number, t.unit), (number, unit), "{src}");
        assert!((t.value() - value).abs() < 1e-12, "{src}: {}", t.value());
    }
}

#[test]
fn windows_in_every_unit() {
    for (window, ms) in [
        ("500ms", 500),
        ("30s", 30_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("90S", 90_000),
        ("2H", 7_200_000),
    ] {
        let c = comparison(&format!("avg(a, {window}) > 1"));
        assert_eq!(c.call.window(), Some(Duration::from_millis(ms)), "{window}");
    }
}

#[test]
fn keywords_and_functions_in_any_case() {
    let e =
        parse("AVAILABILITY(api, 30S) < 95% AND Value(x) >= -3 Or P99(a-b.LATENCY, 500MS) != 2.5S")
            .unwrap();
    assert_eq!(
        e.to_string(),
        "availability(api, 30s) < 95% and value(x) >= -3 or p99(a-b.latency, 500ms) != 2.5s"
    );
}

#[test]
fn and_binds_tighter_than_or() {
    let a = || parse("value(a) > 0").unwrap();
    let b = || parse("value(b) > 0").unwrap();
    let c = || parse("value(c) > 0").unwrap();
    assert_eq!(
        parse("value(a) > 0 or value(b) > 0 and value(c) > 0").unwrap(),
        Expr::Or(vec![a(), Expr::And(vec![b(), c()])])
    );
    assert_eq!(
        parse("value(a) > 0 and value(b) > 0 or value(c) > 0").unwrap(),
        Expr::Or(vec![Expr::And(vec![a(), b()]), c()])
    );
}

#[test]
fn parentheses_group() {
    let a = || parse("value(a) > 0").unwrap();
    let b = || parse("value(b) > 0").unwrap();
    let c = || parse("value(c) > 0").unwrap();
    assert_eq!(
        parse("(value(a) > 0 or value(b) > 0) and value(c) > 0").unwrap(),
        Expr::And(vec![Expr::Or(vec![a(), b()]), c()])
    );
    assert_eq!(
        parse("value(a) > 0 and ( value(b) > 0 or value(c) > 0 )").unwrap(),
        Expr::And(vec![a(), Expr::Or(vec![b(), c()])])
    );
    // Redundant parentheses and nested lists of the same kind flatten.
    assert_eq!(parse("((value(a) > 0))").unwrap(), a());
    assert_eq!(
        parse("value(a) > 0 and (value(b) > 0 and value(c) > 0)").unwrap(),
        Expr::And(vec![a(), b(), c()])
    );
    assert_eq!(
        parse("(value(a) > 0 or value(b) > 0) or value(c) > 0").unwrap(),
        Expr::Or(vec![a(), b(), c()])
    );
}

#[test]
fn display_is_canonical_and_reads_back() {
    let cases = [
        ("availability(api,30s)<95%", "availability(api, 30s) < 95%"),
        (
            "  error_rate( api , 60s )>=5%  ",
            "error_rate(api, 1m) >= 5%",
        ),
        (
            "p95(api.latency, 60000ms) <= 500ms",
            "p95(api.latency, 1m) <= 500ms",
        ),
        (
            "p50(api.latency, 90s) > 0.25s",
            "p50(api.latency, 90s) > 0.25s",
        ),
        ("avg(q, 120m) > 1.50", "avg(q, 2h) > 1.5"),
        ("value(x) == -0.0", "value(x) == -0"),
        ("value(x) != 007", "value(x) != 7"),
        (
            "(value(a) > 0 or value(b) > 0) and value(c) > 0",
            "(value(a) > 0 or value(b) > 0) and value(c) > 0",
        ),
        (
            "((value(a) > 0) and value(b) > 0) or (value(c) > 0)",
            "value(a) > 0 and value(b) > 0 or value(c) > 0",
        ),
        (
            "value(a) > 0 and (value(b) > 0 or value(c) > 0 and value(d) > 0)",
            "value(a) > 0 and (value(b) > 0 or value(c) > 0 and value(d) > 0)",
        ),
    ];
    for (src, canonical) in cases {
        let e = parse(src).unwrap();
        assert_eq!(e.to_string(), canonical, "{src}");
        assert_eq!(parse(canonical).unwrap(), e, "{canonical} reads back");
    }
}

#[test]
fn probes_are_listed_once_in_order_of_appearance() {
    let e = parse(
        "availability(web, 30s) < 95% and (p95(api.latency, 1m) > 2s or value(orders) > 0) or error_rate(web, 1m) > 1%",
    )
    .unwrap();
    assert_eq!(e.probes(), ["web", "api", "orders"]);
    assert_eq!(e.comparisons().len(), 4);
}

#[test]
fn errors_point_at_the_column_and_say_what_was_expected_and_found() {
    // (text, column, words the message must hold)
    let cases: &[(&str, usize, &[&str])] = &[
        // Empty.
        ("", 1, &["the rule is empty", "expected a comparison"]),
        ("   ", 4, &["the rule is empty"]),
        // Missing comparison.
        (
            "availability(api, 30s)",
            23,
            &["expected a comparison (<, <=, >, >=, ==, !=) after availability(api, 30s), found the end"],
        ),
        ("value(x) = 3", 10, &["expected a comparison", "found `=` (equal is `==`)"]),
        ("value(x) > ", 12, &["expected a number after >", "found the end"]),
        // Units that do not fit.
        (
            "p95(api.latency, 1m) < 95%",
            24,
            &["p95 is a latency", "expected a threshold in ms or s", "found `95%`"],
        ),
        ("p95(api.latency, 1m) < 250", 24, &["ms or s", "found `250`"]),
        ("availability(api, 30s) < 250ms", 26, &["share", "found `250ms`"]),
        ("availability(api, 30s) < 95", 26, &["between 0 and 1", "did you mean `95%`?"]),
        ("availability(api, 30s) < 120%", 26, &["between 0% and 100%", "found `120%`"]),
        ("avg(q, 1m) > 5ms", 14, &["expected a plain number", "found `5ms`"]),
        ("value(q) > 5%", 12, &["expected a plain number", "found `5%`"]),
        ("availability(api, 30s) < 95xs", 28, &["expected a unit (%, ms or s) or none after 95, found `xs`"]),
        // Unknown functions, with suggestions.
        (
            "availabilty(api, 30s) < 95%",
            1,
            &["expected a function (availability, error_rate,", "found `availabilty`", "did you mean `availability`?"],
        ),
        ("  p90(api.latency, 1m) < 1s", 3, &["did you mean `p50`, `p95` or `p99`?"]),
        ("average(q, 1m) > 1", 1, &["did you mean `avg`?"]),
        ("error-rate(api, 1m) > 1%", 1, &["did you mean `error_rate`?"]),
        ("frobnicate(api, 1m) > 1", 1, &["found `frobnicate`"]),
        // Missing window, window on value, missing .latency.
        (
            "availability(api) < 95%",
            17,
            &["expected `,` and a window after api, as in availability(api, 30s), found `)`"],
        ),
        ("avg(q) > 1", 6, &["expected `,` and a window", "found `)`"]),
        ("value(q, 5m) > 1", 8, &["value takes no window", "found `,`"]),
        ("p95(api, 1m) < 2s", 8, &["expected `.latency` after api", "found `,`"]),
        ("availability(api.latency, 1m) < 95%", 17, &["p50, p95 and p99 only", "found `.latency`"]),
        ("availability(, 30s) < 95%", 14, &["expected a probe name", "found `,`"]),
        ("availability api < 95%", 14, &["expected `(` after availability", "found `api`"]),
        ("avg(q, 1m > 1", 11, &["expected `)`", "found `>`"]),
        // Parentheses.
        (
            "(availability(api, 30s) < 95%",
            30,
            &["expected `and`, `or` or `)`, found the end", "the `(` at column 1 is not closed"],
        ),
        (
            "value(a) > 1 and ((value(b) > 1) or value(c) > 1",
            49,
            &["found the end", "the `(` at column 18 is not closed"],
        ),
        ("availability(api, 30s) < 95%)", 29, &["found `)` with no `(` open"]),
        ("()", 2, &["expected a comparison", "found `)`"]),
        // Trailing garbage.
        (
            "availability(api, 30s) < 95% foo",
            30,
            &["expected `and`, `or` or the end of the rule, found `foo`"],
        ),
        ("value(a) > 1 && value(b) > 1", 14, &["found `&&` (write `and`)"]),
        // Bad durations.
        ("availability(api, 30x) < 95%", 21, &["expected a window unit (ms, s, m or h) after 30, found `x`"]),
        ("availability(api, 30) < 95%", 21, &["needs a unit", "found `)`"]),
        ("availability(api, 1.5m) < 95%", 19, &["whole number", "found `1.5m`"]),
        ("availability(api, 0s) < 95%", 19, &["longer than 0", "found `0s`"]),
        ("availability(api, s) < 95%", 19, &["expected a window such as 500ms, 30s, 5m or 1h, found `s`"]),
        ("avg(q, 99999999999999999999h) > 1", 8, &["too long"]),
        // Dangling keywords.
        ("value(a) > 1 and", 17, &["expected a comparison", "after `and`", "found the end"]),
        ("value(a) > 1 or or value(b) > 1", 17, &["after `or`", "found `or`"]),
        // Columns count characters, not bytes.
        ("value(é) > 1", 7, &["expected a probe name", "found `é`"]),
        ("\u{e9}\u{e9} value(a) > 1", 1, &["found `éé`"]),
        ("value(a) > 1 and µ", 18, &["found `µ`"]),
    ];
    for (src, column, words) in cases {
        let e = error(src);
        assert_eq!(e.column, *column, "{src:?}: {e}");
        for word in *words {
            assert!(e.message.contains(word), "{src:?}: {e}\n  lacks {word:?}");
        }
        assert_eq!(e.to_string(), format!("column {}: {}", e.column, e.message));
    }
}

#[test]
fn render_puts_a_caret_under_the_column() {
    let src = "availability(api,\t30s) < 95ms";
    let e = error(src);
    assert_eq!(e.column, 26);
    assert_eq!(
        e.render(src),
        "availability(api, 30s) < 95ms\n                         ^"
    );
    let e = error("");
    assert_eq!(e.render(""), "\n^");
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let nested = |depth: usize| format!("{}value(a) > 1{}", "(".repeat(depth), ")".repeat(depth));
    assert!(parse(&nested(MAX_DEPTH)).is_ok());
    let e = error(&nested(MAX_DEPTH + 1));
    assert_eq!(e.column, MAX_DEPTH + 1);
    assert!(e.message.contains("nest deeper"), "{e}");
    let e = error(&"(".repeat(100_000));
    assert!(e.message.contains("nest deeper"), "{e}");
}

#[test]
fn from_str_is_parse() {
    let e: Expr = "value(a) > 1".parse().unwrap();
    assert_eq!(e, parse("value(a) > 1").unwrap());
    assert!("value(a)".parse::<Expr>().is_err());
}
