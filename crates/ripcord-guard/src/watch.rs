//! `ripcord guard watch`: every probe sampled on its own thread at its
//! interval; each sample goes into the catalog and each rule that reads
//! its probe is evaluated at once, so the time from a bad sample to the
//! action is the rule's own (`for` samples, `wait`), not a polling period.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ripcord_catalog::samples::Sample;
use ripcord_catalog::Catalog;
use ripcord_core::config::guard::GuardRule;
use ripcord_ops::notify::{self, Event};
use ripcord_ops::{Ctx, Error, Result};
use serde::Serialize;

use crate::judge::{decide, Decision, RuleState, Verdict};
use crate::rules::{evaluate, parse_all, Rule, Samples};
use crate::sample::{keep_taking, now_ms};

#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// Stop after this long; `None`: until the process is stopped.
    pub duration: Option<Duration>,
    /// Rules whose action is `rollback` start recovery runs; without it they
    /// alert and say what they would have done.
    pub auto_rollback: bool,
    /// Stop after the first rollback (`migrate up --bake`).
    pub stop_after_rollback: bool,
}

/// Something a rule did, or would have done.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct GuardEvent {
    /// RFC 3339, UTC.
    pub time: String,
    pub rule: String,
    pub verdict: Verdict,
    pub decision: Decision,
    pub evidence: Vec<String>,
    /// The run a rollback started.
    pub run: Option<String>,
    /// Why an action did not happen, or what went wrong with it.
    pub note: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct WatchReport {
    pub samples: u64,
    pub evaluations: u64,
    pub events: Vec<GuardEvent>,
    /// Runs started by rollbacks.
    pub runs: Vec<String>,
    pub seconds: f64,
}

/// What a rollback is, for the caller: the watch starts a recovery run at
/// the rule's level; `migrate up --bake` reverts the changes it applied.
/// Returns the run's id.
pub type RollbackFn<'a> = dyn FnMut(&GuardRule, &[String]) -> Result<String> + 'a;

/// The recovery run a rule's rollback starts: at its level, triggered by
/// the rule, with its evidence as the reason.
pub fn recovery_run(ctx: &Ctx) -> impl FnMut(&GuardRule, &[String]) -> Result<String> + '_ {
    move |rule, evidence| {
        let report = ripcord_ops::recover::recover(
            ctx,
            &ripcord_ops::recover::RecoverOptions {
                level: rule.level.clone().unwrap_or_default(),
                reason: format!("guard rule {}: {}", rule.name, evidence.join("; ")),
                trigger: format!("guard:{}", rule.name),
                ..Default::default()
            },
        )?;
        Ok(report.run)
    }
}

/// The longest a watch keeps samples in memory: rules look back no further.
const MEMORY: Duration = Duration::from_secs(3600);
/// How often old samples leave the catalog.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Watches `rules` (the configured ones, or as `--bake` adapts them).
pub fn watch(
    ctx: &Ctx,
    rules: &[GuardRule],
    opts: &WatchOptions,
    rollback: &mut RollbackFn<'_>,
) -> Result<WatchReport> {
    let spec = &ctx.config.guard_spec;
    if rules.is_empty() {
        return Err(Error::usage(
            "ripcord.toml has no guard rules",
            "add [guard.probes.NAME] and [[guard.rules]] (docs/guard.md)",
        ));
    }
    let start = Instant::now();
    let rules = parse_all(rules);
    let mut catalog = ctx.catalog()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Sample>();
    for probe in spec.probes.values() {
        let (probe, config, tx, stop) = (
            probe.clone(),
            ctx.config.clone(),
            tx.clone(),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            keep_taking(probe, config, tx, move || stop.load(Ordering::Relaxed))
        });
    }
    drop(tx);
    ctx.say(format!(
        "watching {} with {}{}",
        ripcord_core::text::counted(spec.probes.len() as u64, "probe"),
        ripcord_core::text::counted(rules.len() as u64, "rule"),
        opts.duration.map_or(String::new(), |d| format!(
            " for {}",
            ripcord_core::duration::short(d)
        ))
    ));

    let mut w = Watcher {
        ctx,
        opts,
        rules,
        states: BTreeMap::new(),
        rechecks: BTreeMap::new(),
        memory: Samples::new(),
        report: WatchReport::default(),
        stopped: false,
    };
    let mut unsaved: Vec<Sample> = Vec::new();
    let mut saved_at = Instant::now();
    let mut forgot_at = Instant::now();
    let deadline = opts.duration.map(|d| start + d);
    while !w.stopped {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let next_recheck = w.rechecks.values().min().copied();
        let wake = [deadline, next_recheck, Some(now + Duration::from_secs(1))]
            .into_iter()
            .flatten()
            .min()
            .expect("one is always set");
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(sample) => {
                w.report.samples += 1;
                let probe = sample.probe.clone();
                unsaved.push(sample.clone());
                let q = w.memory.entry(probe.clone()).or_default();
                q.push_back(sample);
                let oldest = now_ms() - MEMORY.as_millis() as i64;
                while q.front().is_some_and(|s| s.at_ms < oldest) {
                    q.pop_front();
                }
                // The sample goes to the catalog before anything acts on it.
                flush(ctx, &mut *catalog, &mut unsaved);
                saved_at = Instant::now();
                w.evaluate_reading(&probe, rollback);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        w.run_due_rechecks(rollback);
        if saved_at.elapsed() > Duration::from_secs(1) {
            flush(ctx, &mut *catalog, &mut unsaved);
            saved_at = Instant::now();
        }
        if forgot_at.elapsed() > RETENTION_EVERY {
            let before = now_ms() - ctx.config.guard_spec.retention.as_millis() as i64;
            if let Err(e) = catalog.forget_samples(before) {
                ctx.warn(format!("old samples stay in the catalog: {e}"));
            }
            forgot_at = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    flush(ctx, &mut *catalog, &mut unsaved);
    w.report.seconds = start.elapsed().as_secs_f64();
    Ok(w.report)
}

fn flush(ctx: &Ctx, catalog: &mut dyn Catalog, unsaved: &mut Vec<Sample>) {
    if unsaved.is_empty() {
        return;
    }
    if let Err(e) = catalog.add_samples(unsaved) {
        ctx.warn(format!("samples not kept in the catalog: {e}"));
    }
    unsaved.clear();
}

struct Watcher<'a> {
    ctx: &'a Ctx,
    opts: &'a WatchOptions,
    rules: Vec<Rule>,
    states: BTreeMap<String, RuleState>,
    /// Rules waiting out their `wait` before the re-check.
    rechecks: BTreeMap<String, Instant>,
    memory: Samples,
    report: WatchReport,
    stopped: bool,
}

impl Watcher<'_> {
    /// Evaluates every rule that reads `probe`.
    fn evaluate_reading(&mut self, probe: &str, rollback: &mut RollbackFn<'_>) {
        for i in 0..self.rules.len() {
            let reads = self.rules[i].expr.probes().contains(&probe);
            if reads && !self.rechecks.contains_key(&self.rules[i].config.name) {
                self.judge(i, false, rollback);
            }
        }
    }

    fn run_due_rechecks(&mut self, rollback: &mut RollbackFn<'_>) {
        let now = Instant::now();
        let due: Vec<String> = self
            .rechecks
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(r, _)| r.clone())
            .collect();
        for name in due {
            self.rechecks.remove(&name);
            if let Some(i) = self.rules.iter().position(|r| r.config.name == name) {
                self.judge(i, true, rollback);
            }
        }
    }

    fn judge(&mut self, i: usize, rechecked: bool, rollback: &mut RollbackFn<'_>) {
        let rule = &self.rules[i];
        let e = evaluate(rule, &self.memory, now_ms());
        self.report.evaluations += 1;
        let state = self.states.entry(rule.config.name.clone()).or_default();
        let was = state.streak;
        let decision = decide(&rule.config, state, e.verdict, rechecked);
        let config = rule.config.clone();
        let mut event = GuardEvent {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            rule: config.name.clone(),
            verdict: e.verdict,
            decision,
            evidence: e.evidence,
            run: None,
            note: None,
        };
        match decision {
            Decision::Nothing => {
                if was > 0 && e.verdict == Verdict::Healthy {
                    self.ctx.say(format!("rule {}: healthy again", config.name));
                }
                return;
            }
            Decision::Holding => {
                self.ctx.say(format!(
                    "rule {}: breached ({} of {}): {}",
                    config.name,
                    self.states[&config.name].streak,
                    config.for_count,
                    event.evidence.join("; ")
                ));
                return;
            }
            Decision::Recheck => {
                let wait = config.wait.unwrap_or_default();
                self.ctx.say(format!(
                    "rule {}: breached {} times; re-checking in {}",
                    config.name,
                    config.for_count,
                    ripcord_core::duration::short(wait)
                ));
                self.rechecks
                    .insert(config.name.clone(), Instant::now() + wait);
                return;
            }
            Decision::Alert | Decision::Escalate => {
                let kind = if decision == Decision::Escalate {
                    "escalation"
                } else {
                    "failure"
                };
                let failed = alert(self.ctx, &config, kind, &event);
                event.note = (!failed.is_empty()).then(|| failed.join("; "));
            }
            Decision::Rollback if !self.opts.auto_rollback => {
                event.note = Some(
                    "would roll back: `guard watch` runs without --auto-rollback, so it alerts"
                        .into(),
                );
                alert(self.ctx, &config, "failure", &event);
            }
            Decision::Rollback => {
                self.ctx.warn(format!(
                    "rule {} is breached: rolling back{}: {}",
                    config.name,
                    config
                        .level
                        .as_ref()
                        .map_or(String::new(), |l| format!(" (level {l})")),
                    event.evidence.join("; ")
                ));
                match rollback(&config, &event.evidence) {
                    Ok(run) => {
                        self.report.runs.push(run.clone());
                        event.run = Some(run);
                    }
                    Err(e) => {
                        event.note = Some(e.chain());
                        alert(self.ctx, &config, "failure", &event);
                    }
                }
                if self.opts.stop_after_rollback {
                    self.stopped = true;
                }
            }
            Decision::WouldAlert | Decision::WouldEscalate | Decision::WouldRollback => {
                event.note = Some("observe mode: nothing was done".into());
            }
        }
        self.ctx.say(format!(
            "rule {}: {} ({}){}{}",
            config.name,
            match e.verdict {
                Verdict::Healthy => "healthy",
                Verdict::Breached => "breached",
                Verdict::Inconclusive => "inconclusive",
            },
            event.evidence.join("; "),
            match decision {
                Decision::WouldRollback => " -> would roll back (observe)".to_string(),
                Decision::WouldAlert => " -> would alert (observe)".to_string(),
                Decision::WouldEscalate => " -> would escalate (observe)".to_string(),
                Decision::Rollback => format!(
                    " -> rollback run {}",
                    event.run.as_deref().unwrap_or("not started")
                ),
                Decision::Alert => " -> alert".to_string(),
                Decision::Escalate => " -> escalation".to_string(),
                _ => String::new(),
            },
            event
                .note
                .as_ref()
                .map_or(String::new(), |n| format!(" [{n}]"))
        ));
        self.report.events.push(event);
    }
}

/// Sends a rule's alert to the webhooks; returns the deliveries that failed.
fn alert(ctx: &Ctx, rule: &GuardRule, kind: &str, event: &GuardEvent) -> Vec<String> {
    notify::send(
        &ctx.config,
        &Event {
            event: kind.into(),
            run: event.run.clone(),
            level: rule.level.clone(),
            text: format!(
                "guard rule {} is {}: {}{}",
                rule.name,
                match event.verdict {
                    Verdict::Healthy => "healthy",
                    Verdict::Breached => "breached",
                    Verdict::Inconclusive => "inconclusive",
                },
                event.evidence.join("; "),
                event
                    .note
                    .as_ref()
                    .map_or(String::new(), |n| format!(" ({n})"))
            ),
            time: event.time.clone(),
            items: Vec::new(),
        },
    )
}

/// Samples from the catalog, by probe, taken after `since_ms`.
pub fn stored(catalog: &mut dyn Catalog, probes: &[String], since_ms: i64) -> Result<Samples> {
    let mut out = Samples::new();
    for p in probes {
        out.insert(p.clone(), VecDeque::from(catalog.samples(p, since_ms)?));
    }
    Ok(out)
}
