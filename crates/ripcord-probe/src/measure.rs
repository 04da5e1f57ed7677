//! The guard's samples: a [`Measure`] taken once, as whether it passed, how
//! long it took and, where it has one, a number. A number is always
//! finite: NaN, infinities, an empty result or text are no number, and the
//! guard's rules decide what missing data means.

use std::time::{Duration, Instant};

use ripcord_core::config::guard::Measure;
use ripcord_core::config::Config;
use serde::Serialize;
use serde_json::Value as Json;

use crate::http::{self, Request};
use crate::sql;

/// The most of a body an HTTP or Prometheus sample reads.
const BODY_LIMIT: usize = 4 << 20;

/// The longest piece of someone else's text (a JSON value, a command's
/// output, an error) that an `observed` line quotes.
const QUOTE_LIMIT: usize = 120;

/// One sample.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Measurement {
    /// HTTP: the status was the expected one (any 2xx when none is set);
    /// SQL and Prometheus: the query answered; command: it exited 0.
    pub ok: bool,
    /// How long the sample took.
    pub latency_ms: f64,
    /// The number, when there is one. Never NaN nor infinite.
    pub value: Option<f64>,
    /// What was seen, on one line, for a person: `HTTP 200 in 12 ms,
    /// /status = 1`, `no answer: connection refused`, `returned 42`,
    /// `empty result`, `NaN`, `exit 1`.
    pub observed: String,
}

/// Takes one sample of `m`, within `timeout`.
pub fn measure(m: &Measure, config: &Config, timeout: Duration) -> Measurement {
    let start = Instant::now();
    let (ok, value, observed) = match m {
        Measure::Http { url, json, expect } => {
            measure_http(url, json.as_deref(), *expect, timeout, start)
        }
        Measure::Sql { target, query } => measure_sql(config, target, query, timeout),
        Measure::Command { run } => measure_command(run, timeout),
        Measure::Prometheus { url, query } => measure_prometheus(url, query, timeout),
    };
    Measurement {
        ok,
        latency_ms: millis(start.elapsed()),
        value: value.filter(|v| v.is_finite()),
        observed,
    }
}

type Sample = (bool, Option<f64>, String);

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn measure_http(
    url: &str,
    pointer: Option<&str>,
    expect: Option<u16>,
    timeout: Duration,
    start: Instant,
) -> Sample {
    let mut req = Request::get(url);
    if pointer.is_some() {
        req.read_body = Some(BODY_LIMIT);
    }
    let resp = match http::send(&req, timeout) {
        Ok(resp) => resp,
        Err(e) => return (false, None, format!("no answer: {}", e.cause)),
    };
    let ok = match expect {
        Some(status) => resp.status == status,
        None => (200..300).contains(&resp.status),
    };
    let mut observed = format!("HTTP {} in {} ms", resp.status, start.elapsed().as_millis());
    let Some(pointer) = pointer else {
        return (ok, Some(f64::from(resp.status)), observed);
    };
    let value = if resp.truncated {
        observed.push_str(&format!(", body over {} MiB: no number", BODY_LIMIT >> 20));
        None
    } else {
        match serde_json::from_slice::<Json>(&resp.body) {
            Err(_) => {
                observed.push_str(", body is not JSON");
                None
            }
            Ok(body) => match body.pointer(pointer) {
                None => {
                    observed.push_str(&format!(", {pointer} not found"));
                    None
                }
                Some(v) => {
                    let n = json_number(v);
                    match n {
                        Some(n) => observed.push_str(&format!(", {pointer} = {n}")),
                        None => observed.push_str(&format!(
                            ", {pointer} = {}, not a number",
                            quote(&v.to_string())
                        )),
                    }
                    n
                }
            },
        }
    };
    (ok, value, observed)
}

/// A JSON number, a boolean as 1 or 0, a string that is one number.
fn json_number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Json::String(s) => sql::number(s),
        _ => None,
    }
    .filter(|n| n.is_finite())
}

fn measure_sql(config: &Config, target: &str, query: &str, timeout: Duration) -> Sample {
    match sql::first_value(config, target, query, timeout) {
        Err(e) => (false, None, format!("failed: {}", quote(&e))),
        Ok(sql::Value::NoRow) => (true, None, "no row".into()),
        Ok(sql::Value::Null) => (true, None, "NULL".into()),
        Ok(sql::Value::Some {
            number: Some(n), ..
        }) => (true, Some(n), format!("returned {n}")),
        Ok(sql::Value::Some { text, number: None }) => (
            true,
            None,
            format!("returned {}, not a number", quote(&format!("{text:?}"))),
        ),
    }
}

fn measure_command(run: &str, timeout: Duration) -> Sample {
    let f = match crate::command(run, timeout) {
        Ok(f) => f,
        Err(e) => return (false, None, format!("failed: {}", quote(&e))),
    };
    let code = f.status.code();
    let ok = code == Some(0);
    // Output at the limit may have been cut: a number's tail is not the number.
    let value = if f.stdout.len() < crate::OUTPUT_TAIL {
        sql::number(&f.stdout)
    } else {
        None
    };
    let mut observed = match code {
        Some(c) => format!("exit {c}"),
        None => {
            use std::os::unix::process::ExitStatusExt;
            match f.status.signal() {
                Some(s) => format!("killed by signal {s}"),
                None => "killed by a signal".to_string(),
            }
        }
    };
    if let Some(n) = value {
        observed.push_str(&format!(", printed {n}"));
    } else if !ok {
        if let Some(line) = f.output.lines().rev().find(|l| !l.trim().is_empty()) {
            observed.push_str(&format!(": {}", quote(line.trim())));
        }
    }
    (ok, value, observed)
}

fn measure_prometheus(url: &str, query: &str, timeout: Duration) -> Sample {
    let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
    // The server gives up evaluating when the sample would.
    let eval_timeout = format!("{}ms", timeout.as_millis().max(1));
    let req = Request {
        query: &[("query", query), ("timeout", &eval_timeout)],
        read_body: Some(BODY_LIMIT),
        ..Request::get(&endpoint)
    };
    let resp = match http::send(&req, timeout) {
        Ok(resp) => resp,
        Err(e) => return (false, None, format!("no answer: {}", e.cause)),
    };
    if resp.truncated {
        return (
            false,
            None,
            format!("an answer over {} MiB", BODY_LIMIT >> 20),
        );
    }
    let Ok(body) = serde_json::from_slice::<Json>(&resp.body) else {
        return (
            false,
            None,
            format!("HTTP {}, not a Prometheus answer", resp.status),
        );
    };
    match body.get("status").and_then(Json::as_str) {
        Some("success") => {}
        Some("error") => {
            let kind = body.get("errorType").and_then(Json::as_str);
            let error = body.get("error").and_then(Json::as_str).unwrap_or("");
            let text = match kind {
                Some(k) => format!("{k}: {error}"),
                None => error.to_string(),
            };
            return (false, None, format!("query failed: {}", quote(&text)));
        }
        _ => {
            return (
                false,
                None,
                format!("HTTP {}, not a Prometheus answer", resp.status),
            )
        }
    }
    let data = body.get("data");
    let result = data.and_then(|d| d.get("result"));
    match data
        .and_then(|d| d.get("resultType"))
        .and_then(Json::as_str)
    {
        Some("vector") => {
            let series = result
                .and_then(Json::as_array)
                .map_or(&[][..], Vec::as_slice);
            match series {
                [] => (true, None, "empty result".into()),
                [one] => prometheus_sample(one.get("value")),
                many => (
                    true,
                    None,
                    format!("{} series: ambiguous, the query must give one", many.len()),
                ),
            }
        }
        Some("scalar") => prometheus_sample(result),
        Some("matrix") => (
            true,
            None,
            "a range vector: no single value, the query must give one".into(),
        ),
        Some(other) => (true, None, format!("a {other} result: no number")),
        None => (
            false,
            None,
            format!("HTTP {}, not a Prometheus answer", resp.status),
        ),
    }
}

/// `[timestamp, "value"]`: Prometheus writes values as strings, and NaN
/// and the infinities as `NaN`, `+Inf`, `-Inf`.
fn prometheus_sample(pair: Option<&Json>) -> Sample {
    let text = pair
        .and_then(Json::as_array)
        .and_then(|p| p.get(1))
        .and_then(Json::as_str);
    match text {
        None => (true, None, "a sample without a value".into()),
        Some(t) => match sql::number(t) {
            Some(n) => (true, Some(n), format!("returned {n}")),
            None if ["NaN", "+Inf", "-Inf", "Inf"].contains(&t) => (true, None, t.to_string()),
            None => (
                true,
                None,
                format!("returned {}, not a number", quote(&format!("{t:?}"))),
            ),
        },
    }
}

/// `text` on one line and at most [`QUOTE_LIMIT`] characters.
fn quote(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= QUOTE_LIMIT {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(QUOTE_LIMIT - 1).collect();
    cut.push('…');
    cut
}
