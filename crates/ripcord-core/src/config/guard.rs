//! `[guard]`: the probes the guard samples and the rules it judges them by.

use std::collections::BTreeMap;
use std::time::Duration;

/// What a guard probe measures. Every kind gives a sample that passed or
/// not, how long it took, and where it has one, a number.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// An HTTP GET: it passes when the status is `expect` (any 2xx when
    /// none is set); the number is the value at the JSON pointer `json`
    /// of the body when set, else the status.
    Http {
        url: String,
        json: Option<String>,
        expect: Option<u16>,
    },
    /// A read-only query on a database target: the number is its first
    /// column of its first row (a boolean is 1 or 0). No row, NULL or
    /// text that is not a number is no number.
    Sql { target: String, query: String },
    /// A command: it passes when it exits 0; the number is its standard
    /// output when that is one number.
    Command { run: String },
    /// A Prometheus instant query (`/api/v1/query` of the server at
    /// `url`): the number is the single value of the result; an empty
    /// result or NaN is no number.
    Prometheus { url: String, query: String },
}

impl Measure {
    pub fn kind(&self) -> &'static str {
        match self {
            Measure::Http { .. } => "http",
            Measure::Sql { .. } => "sql",
            Measure::Command { .. } => "command",
            Measure::Prometheus { .. } => "prometheus",
        }
    }
}

/// `[guard.probes.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardProbe {
    pub name: String,
    pub measure: Measure,
    /// Time between samples (default 10s).
    pub interval: Duration,
    /// How long one sample may take (default 5s).
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Critical,
}

/// What a rule takes missing data (no sample, an empty result, NaN) for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Inconclusive,
    Critical,
    Ok,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Alert,
    Rollback,
    Escalate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Observe,
}

/// `[[guard.rules]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardRule {
    pub name: String,
    /// The condition that is bad, as written (`availability(api, 30s) < 95%`).
    pub when: String,
    pub severity: Severity,
    /// Consecutive evaluations the condition must hold (default 1).
    pub for_count: u32,
    /// Samples a window needs; fewer is inconclusive (default 1).
    pub min_samples: u32,
    pub missing: Missing,
    /// Re-check once after this long before acting.
    pub wait: Option<Duration>,
    pub action: Action,
    /// The runbook level a rollback or an escalation starts.
    pub level: Option<String>,
    pub mode: Mode,
}

/// `[guard]`, read and checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Guard {
    pub probes: BTreeMap<String, GuardProbe>,
    pub rules: Vec<GuardRule>,
    /// How long samples are kept in the catalog (default 24h).
    pub retention: Duration,
}
