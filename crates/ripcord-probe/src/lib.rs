//! Probes: a measurement and what it must show. An HTTP GET answers with a
//! status, a query on a database target returns a value, a command exits
//! with a code. Recovery runs check health with them (`check` steps,
//! `wait … until`) through [`run`] and [`attempt`]; the guard samples
//! with [`measure`], which also reads Prometheus and gives each sample a
//! number where it has one. Both go through the same HTTP client, the same
//! read-only query path and the same command runner.

use std::time::{Duration, Instant};

use ripcord_core::config::runbook::{Probe, ProbeKind};
use ripcord_core::config::Config;
use serde::Serialize;

mod http;
mod measure;
mod sql;

pub use measure::{measure, Measurement};

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
            match http::send(&http::Request::get(url), timeout) {
                Ok(resp) => (
                    format!("HTTP {}", resp.status),
                    expected,
                    resp.status == *expect,
                ),
                Err(e) => (format!("no answer: {}", e.detail), expected, false),
            }
        }
        ProbeKind::Sql {
            target,
            query,
            expect,
        } => {
            let expected = format!("{expect:?}");
            match sql::first_value(config, target, query, timeout) {
                Ok(v) => (
                    format!("returned {:?}", v.text()),
                    expected,
                    v.text() == expect,
                ),
                Err(e) => (format!("failed: {e}"), expected, false),
            }
        }
        ProbeKind::Command { run, expect } => {
            let expected = format!("exit {expect}");
            match command(run, timeout) {
                Ok(f) => {
                    let (code, out) = (f.status.code(), f.output);
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

/// Runs `run` with `sh -c` in its own process group, killed with its
/// children after `timeout`.
fn command(run: &str, timeout: Duration) -> Result<ripcord_core::shell::Finished, String> {
    ripcord_core::shell::run(run, timeout, OUTPUT_TAIL).map_err(|e| e.to_string())
}

/// One HTTP request (an `http` step, a webhook): the status it got back.
pub fn request(
    method: &str,
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    body: Option<&str>,
    timeout: Duration,
) -> Result<u16, String> {
    let req = http::Request {
        method,
        headers: Some(headers),
        body,
        follow_redirects: true,
        ..http::Request::get(url)
    };
    http::send(&req, timeout)
        .map(|resp| resp.status)
        .map_err(|e| e.detail)
}
