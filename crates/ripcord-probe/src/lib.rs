//! Probes: a measurement and what it must show. An HTTP GET answers with a
//! status, a query on a database target returns a value, a command exits
//! with a code. Recovery runs check health with them (`check` steps,
//! `wait … until`), and the guard watches with the same ones.

use std::time::{Duration, Instant};

use ripcord_core::config::runbook::{Probe, ProbeKind};
use ripcord_core::config::{Config, TargetConfig};
use serde::Serialize;

/// How long one attempt may take when its step sets no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a command's output an outcome keeps.
const OUTPUT_TAIL: usize = 2000;

/// What one attempt saw.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Attempt {
    pub ok: bool,
    /// What was measured, as a person reads it: `HTTP 503`, `exit 1`,
    /// `returned "0"`, `no answer: connection refused`.
    pub observed: String,
    /// What was expected: `HTTP 200`, `exit 0`, `returned "1"`.
    pub expected: String,
    pub millis: u64,
}

/// Every attempt of a probe, up to the first that passed or the last.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub attempts: Vec<Attempt>,
}

impl Outcome {
    /// The last attempt: what the probe finally saw.
    pub fn last(&self) -> &Attempt {
        self.attempts.last().expect("a probe runs at least once")
    }
}

/// Runs `probe` until it passes or its retries are spent, waiting `every`
/// between attempts. `timeout` bounds each attempt. `stop` is asked
/// between attempts: a run being interrupted does not wait out the retries.
pub fn run(
    probe: &Probe,
    config: &Config,
    timeout: Option<Duration>,
    stop: &dyn Fn() -> bool,
) -> Outcome {
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let mut attempts = Vec::new();
    for i in 0..=probe.retries {
        if i > 0 {
            if stop() {
                break;
            }
            std::thread::sleep(probe.every);
        }
        let a = attempt(&probe.what, config, timeout);
        let ok = a.ok;
        attempts.push(a);
        if ok {
            break;
        }
    }
    Outcome {
        ok: attempts.last().is_some_and(|a| a.ok),
        attempts,
    }
}

/// One measurement.
pub fn attempt(what: &ProbeKind, config: &Config, timeout: Duration) -> Attempt {
    let start = Instant::now();
    let (observed, expected, ok) = match what {
        ProbeKind::Http { url, expect } => {
            let expected = format!("HTTP {expect}");
            match http_status(url, timeout) {
                Ok(status) => (format!("HTTP {status}"), expected, status == *expect),
                Err(e) => (format!("no answer: {e}"), expected, false),
            }
        }
        ProbeKind::Sql {
            target,
            query,
            expect,
        } => {
            let expected = format!("{expect:?}");
            match sql_value(config, target, query, timeout) {
                Ok(v) => (format!("returned {v:?}"), expected, v == *expect),
                Err(e) => (format!("failed: {e}"), expected, false),
            }
        }
        ProbeKind::Command { run, expect } => {
            let expected = format!("exit {expect}");
            match command_exit(run, timeout) {
                Ok((code, out)) => {
                    let mut observed = match code {
                        Some(c) => format!("exit {c}"),
                        None => "killed by a signal".to_string(),
                    };
                    if code != Some(*expect) && !out.trim().is_empty() {
                        observed.push_str(&format!(": {}", out.trim()));
                    }
                    (observed, expected, code == Some(*expect))
                }
                Err(e) => (format!("failed: {e}"), expected, false),
            }
        }
    };
    Attempt {
        ok,
        observed,
        expected,
        millis: start.elapsed().as_millis() as u64,
    }
}

fn http_status(url: &str, timeout: Duration) -> Result<u16, String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A health check measures the endpoint itself, not where it points.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client.get(url).send().map_err(|e| describe(&e))?;
    Ok(resp.status().as_u16())
}

/// reqwest's error with its causes, which say what actually happened
/// (`connection refused`, `timed out`).
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    ripcord_targets::postgres::redact(&text)
}

/// The first column of the first row, as text (`NULL` for null, none for
/// no row).
fn sql_value(
    config: &Config,
    target: &str,
    query: &str,
    timeout: Duration,
) -> Result<String, String> {
    match config.target(target).map_err(|e| e.to_string())? {
        TargetConfig::Sqlite { path, .. } => {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            conn.busy_timeout(timeout).map_err(|e| e.to_string())?;
            let mut stmt = conn.prepare(query).map_err(|e| e.to_string())?;
            let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
            let Some(row) = rows.next().map_err(|e| e.to_string())? else {
                return Ok("(no row)".into());
            };
            use rusqlite::types::ValueRef;
            Ok(match row.get_ref(0).map_err(|e| e.to_string())? {
                ValueRef::Null => "NULL".into(),
                ValueRef::Integer(i) => i.to_string(),
                ValueRef::Real(f) => f.to_string(),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Blob(b) => format!("({} byte blob)", b.len()),
            })
        }
        TargetConfig::Postgres { url, .. } => {
            let target =
                ripcord_targets::postgres::Target::parse(url).map_err(|e| e.to_string())?;
            let mut client = target.connect().map_err(|e| e.to_string())?;
            // Read-only, and bounded: a probe never writes and never hangs.
            client
                .batch_execute(&format!(
                    "SET default_transaction_read_only = on; SET statement_timeout = {}",
                    timeout.as_millis().max(1)
                ))
                .map_err(|e| e.to_string())?;
            let messages = client.simple_query(query).map_err(|e| {
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            })?;
            for m in messages {
                if let postgres::SimpleQueryMessage::Row(row) = m {
                    return Ok(row.get(0).unwrap_or("NULL").to_string());
                }
            }
            Ok("(no row)".into())
        }
        TargetConfig::Dir { .. } => Err(format!(
            "{target} is a dir target: a query needs a database"
        )),
    }
}

/// Runs `run` with `sh -c`: its exit code (none when a signal ended it)
/// and the tail of what it printed.
fn command_exit(run: &str, timeout: Duration) -> Result<(Option<i32>, String), String> {
    let f = ripcord_core::shell::run(run, timeout, OUTPUT_TAIL).map_err(|e| e.to_string())?;
    Ok((f.status.code(), f.output))
}

/// One HTTP request (an `http` step, a webhook): the status it got back.
pub fn request(
    method: &str,
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    body: Option<&str>,
    timeout: Duration,
) -> Result<u16, String> {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().map_err(|e| describe(&e))?;
    Ok(resp.status().as_u16())
}
