//! `[guard]`: the probes the guard samples and the rules it judges them by.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::runbook::{at, known_target, near, unknown, Fields, Res};

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
    /// A `failure` event to the webhooks.
    Alert,
    /// A recovery run at the rule's `level`.
    Rollback,
    /// An `escalation` event to the webhooks: a person must decide.
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
    /// The runbook level a rollback starts.
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

/// `[guard]` as written: probes and rules are read key by key in [`check`].
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    #[serde(default)]
    pub probes: BTreeMap<String, toml::Table>,
    #[serde(default)]
    pub rules: Vec<toml::Table>,
    pub retention: Option<String>,
}

const PROBE_KEYS: &[&str] = &[
    "http",
    "json",
    "expect",
    "sql",
    "target",
    "command",
    "prometheus",
    "query",
    "interval",
    "timeout",
];

const RULE_KEYS: &[&str] = &[
    "name",
    "when",
    "severity",
    "for",
    "min_samples",
    "missing",
    "wait",
    "action",
    "level",
    "mode",
];

/// How a rule's `when` is checked when the configuration loads: the
/// probes it names, or where it does not parse (column, message).
pub type WhenCheck = fn(&str) -> Result<Vec<String>, (usize, String)>;

/// Reads and checks `[guard]`: every probe's kind and keys, every rule's
/// fields, its `when` (through `when`), the probes it names and the level
/// it starts.
pub fn check(
    raw: &GuardConfig,
    targets: &BTreeSet<String>,
    levels: &BTreeSet<String>,
    when: WhenCheck,
) -> Res<Guard> {
    let mut probes = BTreeMap::new();
    for (name, t) in &raw.probes {
        let key = format!("guard.probes.{name}");
        crate::names::check_target_name(name).map_err(|e| at(&key, e.to_string()))?;
        probes.insert(name.clone(), probe(name, t, &key, targets)?);
    }
    let mut rules: Vec<GuardRule> = Vec::new();
    for (i, t) in raw.rules.iter().enumerate() {
        let key = format!("guard.rules[{i}]");
        let r = rule(t, &key, &probes, levels, when)?;
        if rules.iter().any(|o| o.name == r.name) {
            return Err(at(
                &format!("{key}.name"),
                format!("a second rule named {:?}", r.name),
            ));
        }
        rules.push(r);
    }
    let retention = match &raw.retention {
        None => Duration::from_secs(24 * 3600),
        Some(s) => match crate::duration::parse(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => return Err(at("guard.retention", "must be more than 0s")),
            Err(e) => return Err(at("guard.retention", e.to_string())),
        },
    };
    Ok(Guard {
        probes,
        rules,
        retention,
    })
}

fn probe(name: &str, t: &toml::Table, key: &str, targets: &BTreeSet<String>) -> Res<GuardProbe> {
    let f = Fields { t, key };
    if let Some(k) = t.keys().find(|k| !PROBE_KEYS.contains(&k.as_str())) {
        return Err(at(
            &format!("{key}.{k}"),
            format!(
                "not a key of a probe{}; its keys: {}",
                near(k, PROBE_KEYS.iter().copied()),
                PROBE_KEYS.join(", ")
            ),
        ));
    }
    let given: Vec<&str> = ["http", "sql", "command", "prometheus"]
        .into_iter()
        .filter(|k| t.contains_key(*k))
        .collect();
    if given.len() != 1 {
        return Err(at(
            key,
            "a probe needs exactly one of `http` (a URL), `sql` (a query, with `target`), \
             `command`, or `prometheus` (a server's URL, with `query`)",
        ));
    }
    let only = |allowed: &[&str]| -> Res<()> {
        for k in ["json", "expect", "target", "query"] {
            if t.contains_key(k) && !allowed.contains(&k) {
                return Err(at(
                    &format!("{key}.{k}"),
                    format!("not a key of a {} probe", given[0]),
                ));
            }
        }
        Ok(())
    };
    let measure = match given[0] {
        "http" => {
            only(&["json", "expect"])?;
            let json = f.string("json")?;
            if let Some(p) = &json {
                if !p.starts_with('/') {
                    return Err(at(
                        &format!("{key}.json"),
                        "a JSON pointer starts with / (\"/status\", \"/checks/0/ok\")",
                    ));
                }
            }
            Measure::Http {
                url: f.required("http")?,
                json,
                expect: f.status("expect")?,
            }
        }
        "sql" => {
            only(&["target"])?;
            let target = f.required("target")?;
            known_target(&target, &format!("{key}.target"), targets)?;
            Measure::Sql {
                target,
                query: f.required("sql")?,
            }
        }
        "command" => {
            only(&[])?;
            Measure::Command {
                run: f.required("command")?,
            }
        }
        _ => {
            only(&["query"])?;
            Measure::Prometheus {
                url: f.required("prometheus")?,
                query: f.required("query")?,
            }
        }
    };
    Ok(GuardProbe {
        name: name.to_string(),
        measure,
        interval: f.duration("interval")?.unwrap_or(Duration::from_secs(10)),
        timeout: f.duration("timeout")?.unwrap_or(Duration::from_secs(5)),
    })
}

fn choice<T: Copy>(f: &Fields<'_>, k: &str, options: &[(&str, T)], default: T) -> Res<T> {
    match f.string(k)? {
        None => Ok(default),
        Some(v) => options
            .iter()
            .find(|(name, _)| *name == v)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                f.at(
                    k,
                    format!(
                        "{v:?} is not one of {}{}",
                        options
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", "),
                        near(&v, options.iter().map(|(n, _)| *n))
                    ),
                )
            }),
    }
}

fn rule(
    t: &toml::Table,
    key: &str,
    probes: &BTreeMap<String, GuardProbe>,
    levels: &BTreeSet<String>,
    when: WhenCheck,
) -> Res<GuardRule> {
    let f = Fields { t, key };
    if let Some(k) = t.keys().find(|k| !RULE_KEYS.contains(&k.as_str())) {
        return Err(at(
            &format!("{key}.{k}"),
            format!(
                "not a key of a rule{}; its keys: {}",
                near(k, RULE_KEYS.iter().copied()),
                RULE_KEYS.join(", ")
            ),
        ));
    }
    let name = f.required("name")?;
    let expr = f.required("when")?;
    let named = when(&expr).map_err(|(column, message)| {
        f.at(
            "when",
            format!(
                "{message}\n    {expr}\n    {}^ column {column}",
                " ".repeat(column.saturating_sub(1))
            ),
        )
    })?;
    for p in &named {
        if !probes.contains_key(p) {
            return Err(f.at(
                "when",
                unknown(
                    "probe",
                    p,
                    probes.keys().map(String::as_str),
                    "none (define them under [guard.probes.NAME])",
                ),
            ));
        }
    }
    let action = choice(
        &f,
        "action",
        &[
            ("alert", Action::Alert),
            ("rollback", Action::Rollback),
            ("escalate", Action::Escalate),
        ],
        Action::Alert,
    )?;
    let level = f.string("level")?;
    match (&level, action) {
        (Some(l), _) if !levels.contains(l) => {
            return Err(f.at(
                "level",
                unknown(
                    "runbook level",
                    l,
                    levels.iter().map(String::as_str),
                    "none (define them under [runbooks.LEVEL])",
                ),
            ))
        }
        (None, Action::Rollback) => {
            return Err(at(
                key,
                "missing `level`: the runbook level a rollback runs",
            ))
        }
        _ => {}
    }
    let for_count = f.count("for")?.unwrap_or(1).max(1);
    Ok(GuardRule {
        name,
        when: expr,
        severity: choice(
            &f,
            "severity",
            &[
                ("warning", Severity::Warning),
                ("critical", Severity::Critical),
            ],
            Severity::Critical,
        )?,
        for_count,
        min_samples: f.count("min_samples")?.unwrap_or(1),
        missing: choice(
            &f,
            "missing",
            &[
                ("inconclusive", Missing::Inconclusive),
                ("critical", Missing::Critical),
                ("ok", Missing::Ok),
            ],
            Missing::Inconclusive,
        )?,
        wait: f.duration("wait")?,
        action,
        level,
        mode: choice(
            &f,
            "mode",
            &[("enforce", Mode::Enforce), ("observe", Mode::Observe)],
            Mode::Enforce,
        )?,
    })
}
