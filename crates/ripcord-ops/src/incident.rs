//! `ripcord report RUN`: the incident report of a run, from its journal.
//! The trigger, the timeline, escalations and fallbacks, the data
//! accounting of its migrate-down steps, RTO and RPO against
//! `[objectives]`, what a person must still do, and KPIs across all runs.

use chrono::{DateTime, Utc};
use ripcord_catalog::runs::{Run, RunResult, StepState};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::{Error, Result};

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct IncidentReport {
    pub run: Run,
    pub timeline: Vec<TimelineStep>,
    /// `emergency -> full`: one entry per escalation.
    pub escalations: Vec<String>,
    /// Restore steps that used an older snapshot than the one named.
    pub fallbacks: Vec<String>,
    pub data: DataAccounting,
    /// From the trigger to the end of the last passing check (or of the
    /// run, when it has no check); none while the run has not recovered.
    pub rto_seconds: Option<f64>,
    pub rto_objective_seconds: Option<f64>,
    /// The age of the restored data when the run started: how much was
    /// lost; 0 when nothing was restored from a snapshot.
    pub rpo_seconds: Option<f64>,
    pub rpo_objective_seconds: Option<f64>,
    /// What a person must still do.
    pub checklist: Vec<String>,
    pub kpis: Kpis,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct TimelineStep {
    pub seq: u32,
    pub level: Option<String>,
    pub kind: String,
    pub name: String,
    pub state: String,
    pub started: String,
    pub finished: Option<String>,
    pub seconds: Option<f64>,
    pub attempts: u32,
    /// The end of what it printed.
    pub output: Option<String>,
}

/// Rows that migrate-down steps put back, kept and set aside.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct DataAccounting {
    pub restored_rows: u64,
    pub kept_rows: u64,
    pub review_rows: u64,
    pub discarded_rows: u64,
}

/// Across every recovery run in the catalog.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Kpis {
    pub run_count: usize,
    pub succeeded_count: usize,
    /// Succeeded runs out of the finished ones, in percent.
    pub success_rate: Option<f64>,
    /// Mean time to recover of succeeded runs, in seconds.
    pub mttr_seconds: Option<f64>,
    /// Runs by the level they started at.
    pub runs_per_level: std::collections::BTreeMap<String, usize>,
    /// Succeeded runs that met `[objectives] rto`, in percent.
    pub rto_met: Option<f64>,
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Seconds between two of the catalog's RFC 3339 times.
pub fn seconds(from: &str, to: &str) -> Option<f64> {
    Some((time(to)? - time(from)?).num_milliseconds() as f64 / 1000.0)
}

/// The report of `run` (an id, or `latest`).
pub fn report(ctx: &Ctx, run: &str) -> Result<IncidentReport> {
    let Some(mut catalog) = ctx.catalog_if_exists()? else {
        return Err(ripcord_catalog::Error::UnknownRun(run.to_string()).into());
    };
    let runs = catalog.runs()?;
    let found = if run == "latest" {
        runs.first().cloned()
    } else {
        let matching: Vec<&Run> = runs.iter().filter(|r| r.run.starts_with(run)).collect();
        if matching.len() > 1 {
            return Err(Error::usage(
                format!("{run:?} is the start of {} run ids", matching.len()),
                "give more of the id (`ripcord runs`)",
            ));
        }
        matching.first().map(|r| (*r).clone())
    };
    let run = found.ok_or_else(|| ripcord_catalog::Error::UnknownRun(run.to_string()))?;
    let steps = catalog.steps(&run.run)?;
    let rto_objective = ctx.config.objectives.rto().map(|d| d.as_secs_f64());
    let rpo_objective = ctx.config.objectives.rpo().map(|d| d.as_secs_f64());

    let mut escalations = Vec::new();
    let mut fallbacks = Vec::new();
    let mut data = DataAccounting::default();
    let mut rpo: Option<f64> = None;
    let mut last_level: Option<String> = None;
    for s in &steps {
        if s.level != last_level {
            if let (Some(from), Some(to)) = (&last_level, &s.level) {
                escalations.push(format!("{from} -> {to}"));
            }
            last_level = s.level.clone();
        }
        let Some(detail) = &s.detail else { continue };
        if let Some(note) = detail.get("fallback").and_then(|f| f.as_str()) {
            fallbacks.push(format!("step {}: {note}", s.seq));
        }
        if s.state == StepState::Succeeded {
            if let Some(t) = detail.get("snapshot_time").and_then(|t| t.as_str()) {
                if let Some(age) = seconds(t, &run.started) {
                    rpo = Some(rpo.map_or(age, |r: f64| r.max(age)));
                }
            }
        }
        add_rows(detail, &mut data);
    }
    let recovered = run.result == RunResult::Succeeded;
    let rto = recovered.then(|| {
        let end = steps
            .iter()
            .rev()
            .find(|s| s.kind == "check" && s.state == StepState::Succeeded)
            .and_then(|s| s.finished.clone())
            .or_else(|| run.finished.clone())?;
        seconds(&run.started, &end)
    });
    let rto = rto.flatten();
    // Nothing restored from a snapshot: no data older than the trigger.
    let rpo = if recovered {
        Some(rpo.unwrap_or(0.0))
    } else {
        rpo
    };

    let mut checklist = Vec::new();
    if let Some(mode) = catalog.safe_mode()? {
        if mode.run.as_deref() == Some(run.run.as_str()) {
            checklist.push(
                "ripcord is in safe mode because of this run: find the cause, then \
                 `ripcord ack --reason TEXT`"
                    .into(),
            );
        }
    }
    if run.result == RunResult::Running {
        checklist.push(if run.kind == "recover" {
            format!(
                "the run did not finish: `ripcord resume {}` goes on where it stopped",
                run.run
            )
        } else {
            format!(
                "the {} did not finish: run the same command again, it is safe to repeat",
                run.kind
            )
        });
    }
    if data.review_rows > 0 {
        checklist.push(format!(
            "{} set aside for review: look at the review tables before they are dropped",
            crate::report::counted(data.review_rows, "row")
        ));
    }
    for f in &fallbacks {
        checklist.push(format!(
            "a damaged snapshot was passed over ({f}): run `ripcord verify --deep`"
        ));
    }
    if let (Some(r), Some(o)) = (rto, rto_objective) {
        if r > o {
            checklist.push("the RTO objective was missed: review the runbook's slow steps".into());
        }
    }
    if let (Some(r), Some(o)) = (rpo, rpo_objective) {
        if r > o {
            checklist.push("the RPO objective was missed: snapshot more often (tiers)".into());
        }
    }

    let kpis = kpis(&runs, rto_objective);
    Ok(IncidentReport {
        run,
        timeline: steps
            .iter()
            .map(|s| TimelineStep {
                seq: s.seq,
                level: s.level.clone(),
                kind: s.kind.clone(),
                name: s.name.clone(),
                state: s.state.as_str().into(),
                started: s.started.clone(),
                finished: s.finished.clone(),
                seconds: s.finished.as_deref().and_then(|f| seconds(&s.started, f)),
                attempts: s.attempts,
                output: s.output.clone(),
            })
            .collect(),
        escalations,
        fallbacks,
        data,
        rto_seconds: rto,
        rto_objective_seconds: rto_objective,
        rpo_seconds: rpo,
        rpo_objective_seconds: rpo_objective,
        checklist,
        kpis,
    })
}

/// Adds the rows of every reverted table found in a migrate-down step's
/// detail.
fn add_rows(v: &serde_json::Value, data: &mut DataAccounting) {
    match v {
        serde_json::Value::Object(m) => {
            if m.contains_key("restored_rows") && m.contains_key("kept_rows") {
                let n = |k: &str| m.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
                data.restored_rows += n("restored_rows");
                data.kept_rows += n("kept_rows");
                data.review_rows += n("review_rows");
                data.discarded_rows += n("discarded_rows");
                return;
            }
            m.values().for_each(|x| add_rows(x, data));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| add_rows(x, data)),
        _ => {}
    }
}

fn kpis(runs: &[Run], rto_objective: Option<f64>) -> Kpis {
    let mut k = Kpis {
        run_count: runs.len(),
        ..Kpis::default()
    };
    let finished: Vec<&Run> = runs
        .iter()
        .filter(|r| r.result != RunResult::Running)
        .collect();
    let succeeded: Vec<&Run> = runs
        .iter()
        .filter(|r| r.result == RunResult::Succeeded)
        .collect();
    k.succeeded_count = succeeded.len();
    if !finished.is_empty() {
        k.success_rate = Some(100.0 * succeeded.len() as f64 / finished.len() as f64);
    }
    let durations: Vec<f64> = succeeded
        .iter()
        .filter_map(|r| seconds(&r.started, r.finished.as_deref()?))
        .collect();
    if !durations.is_empty() {
        k.mttr_seconds = Some(durations.iter().sum::<f64>() / durations.len() as f64);
        if let Some(o) = rto_objective {
            let met = durations.iter().filter(|d| **d <= o).count();
            k.rto_met = Some(100.0 * met as f64 / durations.len() as f64);
        }
    }
    for r in runs {
        *k.runs_per_level
            .entry(r.level.clone().unwrap_or_else(|| r.kind.clone()))
            .or_default() += 1;
    }
    k
}

fn dur(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| {
        ripcord_core::duration::short(std::time::Duration::from_secs_f64(s.max(0.0)))
    })
}

/// The report as Markdown, for a person or an incident ticket.
pub fn to_markdown(r: &IncidentReport) -> String {
    let mut m = String::new();
    let run = &r.run;
    m.push_str(&format!("# Incident report: run {}\n\n", run.run));
    m.push_str(&format!(
        "- Trigger: {} by {} on {}, {}\n- Reason: {}\n- {}\n- Result: **{}**{}\n\n",
        run.trigger,
        run.actor,
        run.host,
        run.started,
        run.reason,
        match &run.level {
            Some(level) => format!("Level: {level}"),
            None => format!("Kind: {} (by hand)", run.kind),
        },
        run.result.as_str(),
        run.finished
            .as_ref()
            .map_or(String::new(), |f| format!(", finished {f}"))
    ));
    m.push_str("## Objectives\n\n| | measured | objective | met |\n|---|---|---|---|\n");
    for (name, got, want) in [
        ("RTO", r.rto_seconds, r.rto_objective_seconds),
        ("RPO", r.rpo_seconds, r.rpo_objective_seconds),
    ] {
        let met = match (got, want) {
            (Some(g), Some(w)) => if g <= w { "yes" } else { "**no**" }.to_string(),
            _ => "-".into(),
        };
        m.push_str(&format!(
            "| {name} | {} | {} | {met} |\n",
            dur(got),
            dur(want)
        ));
    }
    m.push_str("\n## Timeline\n\n| # | level | step | state | started | took | tries |\n|---|---|---|---|---|---|---|\n");
    for s in &r.timeline {
        m.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            s.seq,
            s.level.as_deref().unwrap_or("-"),
            s.name.replace('|', "\\|"),
            s.state,
            s.started,
            dur(s.seconds),
            s.attempts
        ));
    }
    let outputs: Vec<&TimelineStep> = r
        .timeline
        .iter()
        .filter(|s| s.output.as_deref().is_some_and(|o| !o.trim().is_empty()))
        .collect();
    if !outputs.is_empty() {
        m.push_str("\n### Output\n");
        for s in outputs {
            let tail: Vec<&str> = s
                .output
                .as_deref()
                .unwrap_or("")
                .lines()
                .rev()
                .take(10)
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            m.push_str(&format!(
                "\nStep {}:\n\n```\n{}\n```\n",
                s.seq,
                tail.join("\n")
            ));
        }
    }
    m.push_str("\n## Escalations and fallbacks\n\n");
    if r.escalations.is_empty() && r.fallbacks.is_empty() {
        m.push_str("None.\n");
    }
    for e in r.escalations.iter().chain(&r.fallbacks) {
        m.push_str(&format!("- {e}\n"));
    }
    let d = &r.data;
    m.push_str(&format!(
        "\n## Data\n\nRows restored {}, kept {}, set aside for review {}, discarded {}.\n",
        d.restored_rows, d.kept_rows, d.review_rows, d.discarded_rows
    ));
    m.push_str("\n## Checklist\n\n");
    if r.checklist.is_empty() {
        m.push_str("Nothing left to do.\n");
    }
    for c in &r.checklist {
        m.push_str(&format!("- [ ] {c}\n"));
    }
    let k = &r.kpis;
    m.push_str(&format!(
        "\n## Across all runs\n\n- Runs: {} ({} succeeded)\n- Success rate: {}\n- MTTR: {}\n- RTO met: {}\n- Runs per level: {}\n",
        k.run_count,
        k.succeeded_count,
        k.success_rate.map_or("-".into(), |p| format!("{p:.0}%")),
        dur(k.mttr_seconds),
        k.rto_met.map_or("-".into(), |p| format!("{p:.0}%")),
        k.runs_per_level
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    m
}
