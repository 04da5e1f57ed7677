//! `ripcord guard check` (one evaluation, with a fresh sample of every
//! probe) and `ripcord guard status` (what the samples in the catalog say
//! now, without sampling).

use ripcord_core::config::guard::Severity;
use ripcord_ops::{Ctx, Error, Result};
use serde::Serialize;

use crate::judge::Verdict;
use crate::rules::{evaluate, parse_all, Evaluation};
use crate::sample::{now_ms, take_all};
use crate::watch::stored;

/// How far back rules read the catalog's samples.
const LOOKBACK_MS: i64 = 3600 * 1000;

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ProbeState {
    pub probe: String,
    pub kind: String,
    /// The newest sample: when (RFC 3339), whether it passed, what it saw.
    pub time: Option<String>,
    pub ok: Option<bool>,
    pub value: Option<f64>,
    pub latency_ms: Option<f64>,
    pub observed: Option<String>,
    /// Samples of the last hour in the catalog.
    pub samples: u64,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct RuleVerdict {
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// `warning` or `critical`.
    pub severity: String,
    /// `alert`, `rollback` or `escalate`.
    pub action: String,
    /// `enforce` or `observe`.
    pub mode: String,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct GuardCheck {
    /// `ok`, `critical` (a critical rule is breached: exit 1) or
    /// `inconclusive` (exit 4).
    pub result: String,
    pub probes: Vec<ProbeState>,
    pub rules: Vec<RuleVerdict>,
}

impl GuardCheck {
    /// The exit code `guard check` documents: 0 ok, 1 critical, 4 inconclusive.
    pub fn exit_code(&self) -> i32 {
        match self.result.as_str() {
            "critical" => 1,
            "inconclusive" => 4,
            _ => 0,
        }
    }
}

/// One evaluation: a fresh sample of every probe, kept in the catalog with
/// the others, then every rule over the samples of its windows.
pub fn check(ctx: &Ctx) -> Result<GuardCheck> {
    judge_now(ctx, true)
}

/// What the catalog's samples say now, without taking any.
pub fn status(ctx: &Ctx) -> Result<GuardCheck> {
    judge_now(ctx, false)
}

fn judge_now(ctx: &Ctx, sample: bool) -> Result<GuardCheck> {
    let spec = &ctx.config.guard_spec;
    if spec.probes.is_empty() {
        return Err(Error::usage(
            "ripcord.toml has no guard probes",
            "add [guard.probes.NAME] and [[guard.rules]] (docs/guard.md)",
        ));
    }
    let mut catalog = ctx.catalog()?;
    if sample {
        let probes: Vec<_> = spec.probes.values().collect();
        catalog.add_samples(&take_all(&probes, &ctx.config))?;
    }
    let now = now_ms();
    let names: Vec<String> = spec.probes.keys().cloned().collect();
    let samples = stored(&mut *catalog, &names, now - LOOKBACK_MS)?;
    let probes = spec
        .probes
        .values()
        .map(|p| {
            let q = samples.get(&p.name);
            let last = q.and_then(|q| q.back());
            ProbeState {
                probe: p.name.clone(),
                kind: p.measure.kind().into(),
                time: last.and_then(|s| {
                    chrono::DateTime::from_timestamp_millis(s.at_ms)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                }),
                ok: last.map(|s| s.ok),
                value: last.and_then(|s| s.value),
                latency_ms: last.map(|s| s.latency_ms),
                observed: last.map(|s| s.observed.clone()),
                samples: q.map_or(0, |q| q.len() as u64),
            }
        })
        .collect();
    let rules: Vec<RuleVerdict> = parse_all(&spec.rules)
        .iter()
        .map(|r| RuleVerdict {
            evaluation: evaluate(r, &samples, now),
            severity: match r.config.severity {
                Severity::Warning => "warning",
                Severity::Critical => "critical",
            }
            .into(),
            action: format!("{:?}", r.config.action).to_lowercase(),
            mode: format!("{:?}", r.config.mode).to_lowercase(),
        })
        .collect();
    let critical = rules
        .iter()
        .any(|r| r.evaluation.verdict == Verdict::Breached && r.severity == "critical");
    let inconclusive = rules
        .iter()
        .any(|r| r.evaluation.verdict == Verdict::Inconclusive);
    Ok(GuardCheck {
        result: if critical {
            "critical"
        } else if inconclusive {
            "inconclusive"
        } else {
            "ok"
        }
        .into(),
        probes,
        rules,
    })
}
