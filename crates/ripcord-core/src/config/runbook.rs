//! `[objectives]`, `[notify.NAME]`, `[runbooks.LEVEL]` and `[catalog]`:
//! what a recovery run does, and against which objectives it is measured.
//!
//! Steps are inline tables whose keys depend on their `kind`, so they are
//! read here rather than by serde: every problem names its key
//! (`runbooks.emergency.steps[2].kind`) and the nearest valid word.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

/// `[objectives]`: the recovery time and point a run is measured against.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectivesConfig {
    pub rto: Option<String>,
    pub rpo: Option<String>,
}

impl ObjectivesConfig {
    pub fn rto(&self) -> Option<Duration> {
        self.rto
            .as_deref()
            .and_then(|t| crate::duration::parse(t).ok())
    }
    pub fn rpo(&self) -> Option<Duration> {
        self.rpo
            .as_deref()
            .and_then(|t| crate::duration::parse(t).ok())
    }
}

/// `[notify.NAME]`: a webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub url: String,
    #[serde(default)]
    pub format: NotifyFormat,
    /// Which events it receives; all of them when not set.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// How long one delivery may take (`10s` when not set).
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    #[default]
    Json,
    /// `{"text": …}`, which Slack and many chat tools take.
    Slack,
}

/// The events a webhook may ask for.
/// `check-failed`: `ripcord check` found a failed item; `schedule-failed`:
/// a pass of `ripcord schedule run` could not do something that was due.
pub const NOTIFY_EVENTS: &[&str] = &[
    "start",
    "failure",
    "escalation",
    "success",
    "safe-mode",
    "check-failed",
    "schedule-failed",
];

/// `[catalog]`: where ripcord keeps its own state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Relative to the configuration file's folder; `.ripcord/catalog.db`
    /// when not set.
    pub path: Option<std::path::PathBuf>,
    /// A PostgreSQL database shared by several hosts
    /// (`postgres://user:password@host/db`), instead of the SQLite file.
    pub url: Option<String>,
}

/// `[runbooks.LEVEL]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookConfig {
    pub steps: Vec<toml::Table>,
    /// The level a failure of this one escalates to.
    pub escalate_to: Option<String>,
}

/// One step, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: StepKind,
    /// How long one attempt may take.
    pub timeout: Option<Duration>,
    /// Attempts after the first that fails.
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Snapshot {
        /// Empty: every target.
        targets: Vec<String>,
        tag: Option<String>,
    },
    Restore {
        target: String,
        /// `ID`, `latest`, `latest:TAG` or `before:TIME`.
        snapshot: String,
        tables: Vec<String>,
    },
    MigrateDown {
        /// A change, `@phase`, or `@last-good`.
        to: String,
    },
    Check(Probe),
    Wait {
        duration: Option<Duration>,
        until: Option<Probe>,
    },
    Http {
        method: String,
        url: String,
        headers: BTreeMap<String, String>,
        body: Option<String>,
        expect: u16,
    },
    Command {
        run: String,
        /// Safe to run again when a crash interrupted it.
        idempotent: bool,
    },
    Notify {
        message: String,
    },
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Snapshot { .. } => "snapshot",
            StepKind::Restore { .. } => "restore",
            StepKind::MigrateDown { .. } => "migrate-down",
            StepKind::Check(_) => "check",
            StepKind::Wait { .. } => "wait",
            StepKind::Http { .. } => "http",
            StepKind::Command { .. } => "command",
            StepKind::Notify { .. } => "notify",
        }
    }

    /// Snapshot, restore and migrate-down: ripcord's own work, done in its
    /// own process (the others wait on something outside it).
    pub fn is_builtin(&self) -> bool {
        matches!(
            self,
            StepKind::Snapshot { .. } | StepKind::Restore { .. } | StepKind::MigrateDown { .. }
        )
    }
}

/// A measurement with an expectation: what `check` steps, `wait … until`
/// and the guard run.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub what: ProbeKind,
    /// Attempts after the first that fails.
    pub retries: u32,
    /// The pause between attempts.
    pub every: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    /// An HTTP GET answers with this status.
    Http { url: String, expect: u16 },
    /// A query on a database target returns this value in its first
    /// column of its first row (as text).
    Sql {
        target: String,
        query: String,
        expect: String,
    },
    /// A command exits with this code.
    Command { run: String, expect: i32 },
}

/// The keys every step may have, besides its kind's.
const COMMON: &[&str] = &["kind", "timeout", "retries"];

/// The keys of each kind.
const KINDS: &[(&str, &[&str])] = &[
    ("snapshot", &["targets", "tag"]),
    ("restore", &["target", "snapshot", "tables"]),
    ("migrate-down", &["to"]),
    ("check", PROBE_KEYS),
    ("wait", &["duration", "until"]),
    ("http", &["method", "url", "headers", "body", "expect"]),
    ("command", &["run", "idempotent"]),
    ("notify", &["message"]),
];

const PROBE_KEYS: &[&str] = &[
    "http", "sql", "target", "command", "expect", "retries", "every",
];

/// A problem in the runbooks: the key it is at and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct RunbookError {
    pub key: String,
    pub message: String,
}

pub(super) type Res<T> = std::result::Result<T, RunbookError>;

pub(super) fn at(key: &str, message: impl Into<String>) -> RunbookError {
    RunbookError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// ` (did you mean "X"?)` when a word of `valid` is near `given`.
pub(super) fn near<'a>(given: &str, valid: impl IntoIterator<Item = &'a str>) -> String {
    valid
        .into_iter()
        .map(|v| (strsim::jaro_winkler(given, v), v))
        // Close by letters, or one edit away (`rn` for `run`).
        .filter(|(score, v)| *score > 0.8 || strsim::levenshtein(given, v) <= 1)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(String::new(), |(_, v)| format!(" (did you mean {v:?}?)"))
}

/// Reads and checks every runbook: kinds, keys, fields, the targets named,
/// and the escalation chain (every `escalate_to` a level, no cycle).
pub fn check_runbooks(
    runbooks: &BTreeMap<String, RunbookConfig>,
    targets: &BTreeSet<String>,
) -> Res<BTreeMap<String, Vec<Step>>> {
    let mut out = BTreeMap::new();
    for (level, book) in runbooks {
        crate::names::check_target_name(level)
            .map_err(|e| at(&format!("runbooks.{level}"), e.to_string()))?;
        if book.steps.is_empty() {
            return Err(at(
                &format!("runbooks.{level}.steps"),
                "a level needs at least one step",
            ));
        }
        let steps = book
            .steps
            .iter()
            .enumerate()
            .map(|(i, t)| step(t, &format!("runbooks.{level}.steps[{i}]"), targets))
            .collect::<Res<Vec<_>>>()?;
        if let Some(next) = &book.escalate_to {
            if !runbooks.contains_key(next) {
                return Err(at(
                    &format!("runbooks.{level}.escalate_to"),
                    format!(
                        "no level {next:?}{}; levels: {}",
                        near(next, runbooks.keys().map(String::as_str)),
                        runbooks.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        out.insert(level.clone(), steps);
    }
    for start in runbooks.keys() {
        let mut seen = vec![start.as_str()];
        let mut level = start.as_str();
        while let Some(next) = runbooks[level].escalate_to.as_deref() {
            if seen.contains(&next) {
                seen.push(next);
                return Err(at(
                    &format!("runbooks.{level}.escalate_to"),
                    format!("escalation goes round in a circle: {}", seen.join(" -> ")),
                ));
            }
            seen.push(next);
            level = next;
        }
    }
    Ok(out)
}

fn step(t: &toml::Table, key: &str, targets: &BTreeSet<String>) -> Res<Step> {
    let kind = match t.get("kind") {
        Some(toml::Value::String(k)) => k.as_str(),
        Some(_) => return Err(at(&format!("{key}.kind"), "must be a string")),
        None => {
            return Err(at(
                &format!("{key}.kind"),
                format!("missing; one of {}", kinds()),
            ))
        }
    };
    let Some((_, own)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        return Err(at(
            &format!("{key}.kind"),
            format!(
                "unknown step kind {kind:?}{}; one of {}",
                near(kind, KINDS.iter().map(|(k, _)| *k)),
                kinds()
            ),
        ));
    };
    for k in t.keys() {
        if !COMMON.contains(&k.as_str()) && !own.contains(&k.as_str()) {
            let valid: Vec<&str> = COMMON.iter().chain(own.iter()).copied().collect();
            return Err(at(
                &format!("{key}.{k}"),
                format!(
                    "not a key of a {kind} step{}; its keys: {}",
                    near(k, valid.iter().copied()),
                    valid.join(", ")
                ),
            ));
        }
    }
    let f = Fields { t, key };
    let kind = match kind {
        "snapshot" => {
            let list = f.strings("targets")?;
            for (i, name) in list.iter().enumerate() {
                known_target(name, &format!("{key}.targets[{i}]"), targets)?;
            }
            StepKind::Snapshot {
                targets: list,
                tag: f.string("tag")?,
            }
        }
        "restore" => {
            let target = f.required("target")?;
            known_target(&target, &format!("{key}.target"), targets)?;
            StepKind::Restore {
                target,
                snapshot: f.string("snapshot")?.unwrap_or_else(|| "latest".into()),
                tables: f.strings("tables")?,
            }
        }
        "migrate-down" => StepKind::MigrateDown {
            to: f.required("to")?,
        },
        "check" => StepKind::Check(probe(t, key, targets)?),
        "wait" => {
            let duration = f.duration("duration")?;
            let until = match t.get("until") {
                Some(toml::Value::Table(p)) => Some(probe(p, &format!("{key}.until"), targets)?),
                Some(_) => {
                    return Err(at(
                        &format!("{key}.until"),
                        "must be a check: { http = \"…\", expect = 200 }",
                    ))
                }
                None => None,
            };
            if duration.is_none() && until.is_none() {
                return Err(at(key, "a wait step needs `duration` or `until`"));
            }
            StepKind::Wait { duration, until }
        }
        "http" => StepKind::Http {
            method: f
                .string("method")?
                .unwrap_or_else(|| "POST".into())
                .to_ascii_uppercase(),
            url: f.required("url")?,
            headers: f.string_map("headers")?,
            body: f.string("body")?,
            expect: f.status("expect")?.unwrap_or(200),
        },
        "command" => StepKind::Command {
            run: f.required("run")?,
            idempotent: f.bool("idempotent")?.unwrap_or(false),
        },
        "notify" => StepKind::Notify {
            message: f.required("message")?,
        },
        _ => unreachable!("kinds are listed in KINDS"),
    };
    // A check's retries and interval are its own.
    let retries = if matches!(kind, StepKind::Check(_)) {
        0
    } else {
        f.count("retries")?.unwrap_or(0)
    };
    Ok(Step {
        kind,
        timeout: f.duration("timeout")?,
        retries,
    })
}

fn kinds() -> String {
    KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

pub(super) fn known_target(name: &str, key: &str, targets: &BTreeSet<String>) -> Res<()> {
    if targets.contains(name) {
        return Ok(());
    }
    Err(at(
        key,
        unknown("target", name, targets.iter().map(String::as_str), "(none)"),
    ))
}

/// `no KIND "NAME" (did you mean …?); KINDs: a, b` for a name not among
/// `known`; `none` stands in for an empty list.
pub(super) fn unknown<'a>(
    kind: &str,
    name: &str,
    known: impl Iterator<Item = &'a str> + Clone,
    none: &str,
) -> String {
    let list: Vec<&str> = known.clone().collect();
    format!(
        "no {kind} {name:?}{}; {kind}s: {}",
        near(name, known),
        if list.is_empty() {
            none.to_string()
        } else {
            list.join(", ")
        }
    )
}

fn probe(t: &toml::Table, key: &str, targets: &BTreeSet<String>) -> Res<Probe> {
    let f = Fields { t, key };
    let given: Vec<&str> = ["http", "sql", "command"]
        .into_iter()
        .filter(|k| t.contains_key(*k))
        .collect();
    if given.len() != 1 {
        return Err(at(
            key,
            "a check needs exactly one of `http` (a URL), `sql` (a query) or `command`",
        ));
    }
    if let Some(k) = t
        .keys()
        .find(|k| !PROBE_KEYS.contains(&k.as_str()) && !COMMON.contains(&k.as_str()))
    {
        return Err(at(
            &format!("{key}.{k}"),
            format!(
                "not a key of a check{}; its keys: {}",
                near(k, PROBE_KEYS.iter().copied()),
                PROBE_KEYS.join(", ")
            ),
        ));
    }
    let what = match given[0] {
        "http" => ProbeKind::Http {
            url: f.required("http")?,
            expect: f.status("expect")?.unwrap_or(200),
        },
        "sql" => {
            let target = f.required("target")?;
            known_target(&target, &format!("{key}.target"), targets)?;
            let expect = match t.get("expect") {
                None => "1".to_string(),
                Some(toml::Value::String(s)) => s.clone(),
                Some(toml::Value::Integer(i)) => i.to_string(),
                Some(toml::Value::Boolean(b)) => if *b { "t" } else { "f" }.to_string(),
                Some(_) => return Err(at(&format!("{key}.expect"), "must be a string or number")),
            };
            ProbeKind::Sql {
                target,
                query: f.required("sql")?,
                expect,
            }
        }
        _ => ProbeKind::Command {
            run: f.required("command")?,
            expect: match t.get("expect") {
                None => 0,
                Some(toml::Value::Integer(i)) if (0..=255).contains(i) => *i as i32,
                Some(_) => {
                    return Err(at(
                        &format!("{key}.expect"),
                        "must be an exit code, 0 to 255",
                    ))
                }
            },
        },
    };
    Ok(Probe {
        what,
        retries: f.count("retries")?.unwrap_or(0),
        every: f.duration("every")?.unwrap_or(Duration::from_secs(1)),
    })
}

/// Typed reads of a step's keys, each error at its key.
pub(super) struct Fields<'a> {
    pub(super) t: &'a toml::Table,
    pub(super) key: &'a str,
}

impl Fields<'_> {
    pub(super) fn at(&self, k: &str, message: impl Into<String>) -> RunbookError {
        at(&format!("{}.{k}", self.key), message)
    }

    pub(super) fn string(&self, k: &str) -> Res<Option<String>> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(toml::Value::String(_)) => Err(self.at(k, "must not be empty")),
            Some(_) => Err(self.at(k, "must be a string")),
        }
    }

    pub(super) fn required(&self, k: &str) -> Res<String> {
        self.string(k)?
            .ok_or_else(|| at(self.key, format!("missing `{k}`")))
    }

    pub(super) fn strings(&self, k: &str) -> Res<Vec<String>> {
        match self.t.get(k) {
            None => Ok(Vec::new()),
            Some(toml::Value::String(s)) => Ok(s
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.at(k, "must be a list of strings"))
                })
                .collect(),
            Some(_) => Err(self.at(k, "must be a list of strings")),
        }
    }

    pub(super) fn string_map(&self, k: &str) -> Res<BTreeMap<String, String>> {
        match self.t.get(k) {
            None => Ok(BTreeMap::new()),
            Some(toml::Value::Table(m)) => m
                .iter()
                .map(|(name, v)| {
                    v.as_str()
                        .map(|s| (name.clone(), s.to_string()))
                        .ok_or_else(|| self.at(&format!("{k}.{name}"), "must be a string"))
                })
                .collect(),
            Some(_) => Err(self.at(k, "must be a table of strings")),
        }
    }

    pub(super) fn bool(&self, k: &str) -> Res<Option<bool>> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(self.at(k, "must be true or false")),
        }
    }

    pub(super) fn count(&self, k: &str) -> Res<Option<u32>> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if (0..=1000).contains(i) => Ok(Some(*i as u32)),
            Some(_) => Err(self.at(k, "must be a whole number from 0 to 1000")),
        }
    }

    pub(super) fn status(&self, k: &str) -> Res<Option<u16>> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if (100..=599).contains(i) => Ok(Some(*i as u16)),
            Some(_) => Err(self.at(k, "must be an HTTP status, 100 to 599")),
        }
    }

    pub(super) fn duration(&self, k: &str) -> Res<Option<Duration>> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => match crate::duration::parse(s) {
                Ok(d) if !d.is_zero() => Ok(Some(d)),
                Ok(_) => Err(self.at(k, "must be more than 0s")),
                Err(e) => Err(self.at(k, e.to_string())),
            },
            Some(_) => Err(self.at(k, "must be a duration such as \"30s\" or \"5m\"")),
        }
    }
}
