//! `ripcord recover`: runs a runbook level, step by step, journaled in the
//! catalog before and after each step; a failed level escalates to the
//! next, and when none is left ripcord enters safe mode. One run acts at a
//! time (single flight), and every run is audited.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ripcord_catalog::audit::AuditInput;
use ripcord_catalog::flight::{Acquired, Holder};
use ripcord_catalog::runs::{
    new_run_id, NewRun, RunResult, SafeMode, StepEnd, StepStart, StepState,
};
use ripcord_catalog::Catalog;
use ripcord_core::config::runbook::{Step, StepKind};
use ripcord_core::config::TargetConfig;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::notify::{self, Event};
use crate::overrun::{Overrun, Watchdog};
use crate::{Error, Result};

/// How long a `command` step may run when it sets no `timeout`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// How much of a step's output the journal keeps.
const OUTPUT_TAIL: usize = 4000;

#[derive(Clone, Default)]
pub struct RecoverOptions {
    /// The runbook level to start at.
    pub level: String,
    pub reason: String,
    /// Who or what started it: `manual`, or `guard:RULE` (an automatic
    /// run, refused in safe mode).
    pub trigger: String,
    pub dry_run: bool,
    /// How a built-in step that overruns its `timeout` is stopped; without
    /// it, such a step runs to its end ([`crate::overrun`]).
    pub overrun: Option<Overrun>,
    /// The run's id, when the front end names it before the run begins (the
    /// server answers with it at once); else a new one.
    pub run: Option<String>,
}

/// What a run did.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct RecoverReport {
    pub run: String,
    /// `succeeded`, `failed`, or `planned` for a dry run.
    pub result: String,
    /// The levels run, in order (escalations add to it).
    pub levels: Vec<String>,
    pub steps: Vec<StepReport>,
    /// Every level failed: migrations and automatic runs are refused until
    /// `ripcord ack`.
    pub safe_mode: bool,
    /// Webhook deliveries that failed, and other things a person should know.
    pub warnings: Vec<String>,
    pub seconds: f64,
    pub dry_run: bool,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct StepReport {
    pub seq: u32,
    pub level: String,
    pub kind: String,
    pub name: String,
    /// `succeeded`, `failed`, or `planned`.
    pub state: String,
    pub attempts: u32,
    /// What it saw or did, one line.
    pub detail: String,
    pub seconds: f64,
}

/// The levels a run may go through from `level`, in order.
fn chain(ctx: &Ctx, level: &str) -> Result<Vec<String>> {
    let books = &ctx.config.runbooks;
    if !books.contains_key(level) {
        let known: Vec<&str> = books.keys().map(String::as_str).collect();
        return Err(Error::usage(
            format!(
                "no runbook level {level:?}; {}",
                if known.is_empty() {
                    "ripcord.toml has no [runbooks.LEVEL]".to_string()
                } else {
                    format!("levels: {}", known.join(", "))
                }
            ),
            "define it under [runbooks.LEVEL] in ripcord.toml (docs/recovery.md)",
        ));
    }
    let mut out = vec![level.to_string()];
    let mut at = level;
    // Cycles were refused when the configuration loaded.
    while let Some(next) = books[at].escalate_to.as_deref() {
        out.push(next.to_string());
        at = next;
    }
    Ok(out)
}

/// How a step reads to a person.
pub fn describe(step: &Step) -> String {
    match &step.kind {
        StepKind::Snapshot { targets, tag } => format!(
            "snapshot {}{}",
            if targets.is_empty() {
                "every target".to_string()
            } else {
                targets.join(", ")
            },
            tag.as_ref()
                .map_or(String::new(), |t| format!(" tagged {t}"))
        ),
        StepKind::Restore {
            target,
            snapshot,
            tables,
        } => format!(
            "restore {target}{} from {snapshot}",
            if tables.is_empty() {
                String::new()
            } else {
                format!(" ({})", tables.join(", "))
            }
        ),
        StepKind::MigrateDown { to } => format!("migrate down to {to}"),
        StepKind::Check(p) => format!("check {}", probe_text(&p.what)),
        StepKind::Wait { duration, until } => match (duration, until) {
            (Some(d), _) => format!("wait {}", humantime_short(*d)),
            (None, Some(p)) => format!("wait until {}", probe_text(&p.what)),
            (None, None) => "wait".into(),
        },
        StepKind::Http { method, url, .. } => {
            format!("{method} {}", ripcord_targets::postgres::redact(url))
        }
        StepKind::Command { run, .. } => format!("run `{run}`"),
        StepKind::Notify { message } => format!("notify: {message}"),
    }
}

fn probe_text(p: &ripcord_core::config::runbook::ProbeKind) -> String {
    use ripcord_core::config::runbook::ProbeKind;
    match p {
        ProbeKind::Http { url, expect } => format!("{url} answers {expect}"),
        ProbeKind::Sql {
            target,
            query,
            expect,
        } => format!("{target}: {query} = {expect}"),
        ProbeKind::Command { run, expect } => format!("`{run}` exits {expect}"),
    }
}

fn humantime_short(d: Duration) -> String {
    ripcord_core::duration::short(d)
}

/// `ripcord recover --level L --reason TEXT`.
pub fn recover(ctx: &Ctx, opts: &RecoverOptions) -> Result<RecoverReport> {
    let start = Instant::now();
    let levels = chain(ctx, &opts.level)?;
    if opts.reason.trim().is_empty() {
        return Err(Error::usage(
            "a recovery run needs a reason",
            "say why with --reason TEXT: it goes into the journal, the audit and the report",
        ));
    }
    let mut catalog = ctx.catalog()?;
    if opts.dry_run {
        return Ok(plan(ctx, &mut *catalog, &levels, start));
    }
    // Safe mode leaves the next move to a person: only runs they start go.
    if opts.trigger.starts_with("guard:") {
        refuse_in_safe_mode(ctx, &format!("an automatic run ({})", opts.trigger))?;
    }
    let id = opts.run.clone().unwrap_or_else(new_run_id);
    let _here = crate::local_flight::claim(
        ctx,
        &id,
        "one run acts at a time: wait for it (`ripcord status`), or stop it first",
    )?;
    match catalog.acquire_flight(&Holder::this_process(&id))? {
        Acquired::Taken => {}
        Acquired::TakenOver(dead) => crate::way_back::took_over(ctx, &mut *catalog, &dead),
        Acquired::Held(h) => {
            return Err(in_progress(
                &h,
                "one run acts at a time: wait for it (`ripcord status`), or stop it first",
            ))
        }
    }
    let actor = ctx.actor();
    let run = catalog.begin_run(&NewRun {
        id: id.clone(),
        kind: "recover".into(),
        level: Some(opts.level.clone()),
        reason: opts.reason.clone(),
        trigger: opts.trigger.clone(),
        actor: actor.clone(),
    });
    let result = run
        .map_err(Error::from)
        .and_then(|_| execute(ctx, &mut *catalog, &id, &levels, opts));
    let released = catalog.release_flight(&id);
    let mut report = result?;
    released?;
    report.seconds = start.elapsed().as_secs_f64();
    catalog.append_audit(&AuditInput {
        actor,
        command: "recover".into(),
        args: vec![format!("--level={}", opts.level)],
        reason: Some(opts.reason.clone()),
        result: report.result.clone(),
        run: Some(id),
    })?;
    Ok(report)
}

fn plan(ctx: &Ctx, catalog: &mut dyn Catalog, levels: &[String], start: Instant) -> RecoverReport {
    let mut warnings = Vec::new();
    if let Ok(Some(h)) = catalog.flight_holder() {
        if catalog.holder_alive(&h).ok().flatten() != Some(false) {
            warnings.push(format!(
                "run {} is in progress (pid {} on {}): a real run would be refused",
                h.run, h.pid, h.host
            ));
        }
    }
    let mut steps = Vec::new();
    for level in levels {
        for step in &ctx.config.levels[level] {
            steps.push(StepReport {
                seq: steps.len() as u32 + 1,
                level: level.clone(),
                kind: step.kind.name().into(),
                name: describe(step),
                state: "planned".into(),
                attempts: 0,
                detail: String::new(),
                seconds: 0.0,
            });
        }
    }
    RecoverReport {
        run: String::new(),
        result: "planned".into(),
        levels: levels.to_vec(),
        steps,
        safe_mode: false,
        warnings,
        seconds: start.elapsed().as_secs_f64(),
        dry_run: true,
    }
}

fn execute(
    ctx: &Ctx,
    catalog: &mut dyn Catalog,
    run: &str,
    levels: &[String],
    opts: &RecoverOptions,
) -> Result<RecoverReport> {
    let report = RecoverReport {
        run: run.to_string(),
        result: "failed".into(),
        levels: Vec::new(),
        steps: Vec::new(),
        safe_mode: false,
        warnings: Vec::new(),
        seconds: 0.0,
        dry_run: false,
    };
    let mut report = report;
    report.warnings.extend(notify::send(
        &ctx.config,
        &event(
            run,
            "start",
            &levels[0],
            format!("recovery started at level {}: {}", levels[0], opts.reason),
        ),
    ));
    continue_run(
        ctx,
        catalog,
        run,
        levels,
        (0, 0, false),
        report,
        opts.overrun.as_ref(),
    )
}

fn event(run: &str, kind: &str, level: &str, text: String) -> Event {
    Event {
        event: kind.into(),
        run: Some(run.to_string()),
        level: Some(level.to_string()),
        text,
        time: notify::now(),
        items: Vec::new(),
    }
}

/// Runs the levels from level `from.0`, step `from.1` on; `from.2`: that
/// level has already failed (a crash came between its failure and the
/// escalation), so the run goes on with the next one.
fn continue_run(
    ctx: &Ctx,
    catalog: &mut dyn Catalog,
    run: &str,
    levels: &[String],
    from: (usize, usize, bool),
    mut report: RecoverReport,
    overrun: Option<&Overrun>,
) -> Result<RecoverReport> {
    let send = |report: &mut RecoverReport, e: Event| {
        report.warnings.extend(notify::send(&ctx.config, &e));
    };
    let event = |kind: &str, level: &str, text: String| event(run, kind, level, text);
    for (i, level) in levels.iter().enumerate().skip(from.0) {
        if !report.levels.contains(level) {
            report.levels.push(level.clone());
        }
        ctx.say(format!("level {level}"));
        let all = &ctx.config.levels[level];
        let (mut failed, todo) = match (i == from.0, from.2) {
            // Resumed after this level failed: straight to the escalation.
            (true, true) => (Some(format!("step {} of level {level}", from.1)), &all[..0]),
            (true, false) => (None, &all[from.1.min(all.len())..]),
            _ => (None, &all[..]),
        };
        for step in todo {
            let seq = report.steps.len() as u32 + 1;
            let name = describe(step);
            catalog.start_step(
                run,
                &StepStart {
                    seq,
                    level: Some(level.clone()),
                    kind: step.kind.name().into(),
                    name: name.clone(),
                },
            )?;
            ripcord_core::failpoint::hit("recover-step-started");
            let began = Instant::now();
            let mut data = None;
            let watchdog = match (step.timeout, overrun, step.kind.is_builtin()) {
                (Some(t), Some(f), true) => Some(Watchdog::start(
                    ctx.catalog_location(),
                    run,
                    seq,
                    t,
                    Arc::clone(f),
                )),
                _ => None,
            };
            let (ok, attempts, detail) =
                run_with_retries(ctx, run, step, &mut report.warnings, &mut data);
            if let Some(w) = watchdog {
                w.finished();
            }
            catalog.end_step(
                run,
                seq,
                &StepEnd {
                    state: if ok {
                        StepState::Succeeded
                    } else {
                        StepState::Failed
                    },
                    output: Some(ripcord_core::shell::last_bytes(&detail, OUTPUT_TAIL)),
                    detail: data,
                },
            )?;
            ripcord_core::failpoint::hit("recover-step-ended");
            let line = detail.lines().last().unwrap_or("").to_string();
            ctx.say(format!(
                "  {seq}. {name}: {}{}",
                if ok { "ok" } else { "FAILED" },
                if line.is_empty() {
                    String::new()
                } else {
                    format!(" ({line})")
                }
            ));
            report.steps.push(StepReport {
                seq,
                level: level.clone(),
                kind: step.kind.name().into(),
                name: name.clone(),
                state: if ok { "succeeded" } else { "failed" }.into(),
                attempts,
                detail: line,
                seconds: began.elapsed().as_secs_f64(),
            });
            if !ok {
                failed = Some(name);
                break;
            }
        }
        let Some(step) = failed else {
            report.result = "succeeded".into();
            catalog.finish_run(run, RunResult::Succeeded)?;
            send(
                &mut report,
                event("success", level, format!("recovered at level {level}")),
            );
            return Ok(report);
        };
        send(
            &mut report,
            event("failure", level, format!("level {level} failed at: {step}")),
        );
        if let Some(next) = levels.get(i + 1) {
            ctx.warn(format!("level {level} failed; escalating to {next}"));
            send(
                &mut report,
                event(
                    "escalation",
                    level,
                    format!("level {level} failed; escalating to {next}"),
                ),
            );
        }
    }
    catalog.finish_run(run, RunResult::Failed)?;
    let last = levels.last().expect("a chain has a level");
    catalog.enter_safe_mode(&SafeMode {
        run: Some(run.to_string()),
        since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        reason: format!("every level failed ({})", levels.join(" -> ")),
    })?;
    report.safe_mode = true;
    send(
        &mut report,
        event(
            "safe-mode",
            last,
            "every level failed: safe mode; migrations and automatic runs are refused until `ripcord ack`".into(),
        ),
    );
    Ok(report)
}

/// Runs a step, again up to its `retries`; whether it passed, the
/// attempts made, and what the last one said.
fn run_with_retries(
    ctx: &Ctx,
    run: &str,
    step: &Step,
    warnings: &mut Vec<String>,
    data: &mut Option<serde_json::Value>,
) -> (bool, u32, String) {
    let mut detail = String::new();
    for attempt in 0..=step.retries {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        match run_step(ctx, run, step, warnings, data) {
            Ok(text) => return (true, attempt + 1, text),
            Err(text) => detail = text,
        }
    }
    (false, step.retries + 1, detail)
}

/// One attempt of a step: what it did, or why it failed.
fn run_step(
    ctx: &Ctx,
    run: &str,
    step: &Step,
    warnings: &mut Vec<String>,
    data: &mut Option<serde_json::Value>,
) -> std::result::Result<String, String> {
    let timeout = step.timeout;
    let never = || false;
    match &step.kind {
        StepKind::Command { run: command, .. } => {
            let f =
                ripcord_core::shell::run(command, timeout.unwrap_or(COMMAND_TIMEOUT), OUTPUT_TAIL)
                    .map_err(|e| e.to_string())?;
            match f.status.code() {
                Some(0) => Ok(f.output),
                Some(c) => Err(format!("{}exit {c}", with_newline(&f.output))),
                None => Err(format!("{}killed by a signal", with_newline(&f.output))),
            }
        }
        StepKind::Check(p) => {
            let out = ripcord_probe::run(p, &ctx.config, timeout, &never);
            let last = out.last();
            let text = format!(
                "{} (expected {}), {}",
                last.observed,
                last.expected,
                crate::report::counted(out.attempts.len() as u64, "attempt")
            );
            if out.ok {
                Ok(text)
            } else {
                Err(text)
            }
        }
        StepKind::Wait { duration, until } => {
            if let Some(d) = duration {
                std::thread::sleep(*d);
            }
            match until {
                None => Ok(format!(
                    "waited {}",
                    humantime_short(duration.unwrap_or_default())
                )),
                Some(p) => {
                    let out = ripcord_probe::run(p, &ctx.config, timeout, &never);
                    let last = out.last();
                    let text = format!("{} (expected {})", last.observed, last.expected);
                    if out.ok {
                        Ok(text)
                    } else {
                        Err(text)
                    }
                }
            }
        }
        StepKind::Http {
            method,
            url,
            headers,
            body,
            expect,
        } => {
            let status = ripcord_probe::request(
                method,
                url,
                headers,
                body.as_deref(),
                timeout.unwrap_or(ripcord_probe::DEFAULT_TIMEOUT),
            )?;
            if status == *expect {
                Ok(format!("HTTP {status}"))
            } else {
                Err(format!("HTTP {status} (expected {expect})"))
            }
        }
        StepKind::Notify { message } => {
            let failed = notify::send(
                &ctx.config,
                &Event {
                    event: "message".into(),
                    run: Some(run.to_string()),
                    level: None,
                    text: message.clone(),
                    time: notify::now(),
                    items: Vec::new(),
                },
            );
            // A message that cannot be delivered never fails the run.
            let text = format!(
                "sent to {}",
                crate::report::counted((ctx.config.notify.len() - failed.len()) as u64, "webhook")
            );
            warnings.extend(failed);
            Ok(text)
        }
        StepKind::Snapshot { targets, tag } => {
            let mut tags = vec![format!("run-{run}")];
            tags.extend(tag.iter().cloned());
            let r = crate::snapshot::snapshot(
                ctx,
                &crate::snapshot::SnapshotOptions {
                    targets: targets.clone(),
                    tags,
                    ..Default::default()
                },
            )
            .map_err(|e| e.chain())?;
            Ok(format!("snapshot {}", r.short_id))
        }
        StepKind::Restore {
            target,
            snapshot,
            tables,
        } => {
            let restore = |id: String| {
                crate::restore::run(
                    ctx,
                    &crate::restore::RestoreOptions {
                        snapshot: id,
                        targets: vec![target.clone()],
                        tables: tables.clone(),
                        ..Default::default()
                    },
                )
            };
            // A file target is staged whole, every blob read and
            // authenticated, before anything is replaced: that restore is
            // the check, in one pass. A damaged snapshot leaves the target
            // as it was, and the fallback below finds the one to use.
            if !matches!(ctx.config.target(target), Ok(TargetConfig::Postgres { .. })) {
                match restore(snapshot.clone()) {
                    Ok(r) => {
                        *data = Some(serde_json::json!({
                            "snapshot": r.snapshot.to_string(),
                            "snapshot_time": r.snapshot_time,
                            "fallback": null,
                        }));
                        return Ok(format!("restored {target} from {}", r.snapshot.short()));
                    }
                    Err(e) if damaged(&e) => warnings.push(format!(
                        "the restore from {snapshot} found damage: {}",
                        e.chain()
                    )),
                    Err(e) => return Err(e.chain()),
                }
            }
            let (id, time, note) = verified_snapshot(ctx, target, snapshot)?;
            // What the report needs for the RPO: the data's age.
            *data = Some(serde_json::json!({
                "snapshot": id.to_string(),
                "snapshot_time": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "fallback": note,
            }));
            if let Some(n) = &note {
                warnings.push(n.clone());
            }
            let r = restore(id.to_string()).map_err(|e| e.chain())?;
            Ok(format!(
                "restored {target} from {}{}",
                r.snapshot.short(),
                note.map_or(String::new(), |n| format!("; {n}"))
            ))
        }
        StepKind::MigrateDown { to } => {
            let r = crate::migrate::down(
                ctx,
                &crate::migrate::DownRequest {
                    to: to.clone(),
                    ..Default::default()
                },
                &mut |_| {},
            )
            .map_err(|e| e.chain())?;
            *data = serde_json::to_value(&r.report).ok();
            Ok(format!(
                "{} reverted on {}",
                ripcord_core::text::counted(r.report.changes.len() as u64, "change"),
                r.target
            ))
        }
    }
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// Refuses `what` (exit 3) while ripcord is in safe mode, naming the run
/// that failed; manual restores and recoveries are not refused.
pub fn refuse_in_safe_mode(ctx: &Ctx, what: &str) -> Result<()> {
    let Some(mut catalog) = ctx.catalog_if_exists()? else {
        return Ok(());
    };
    match catalog.safe_mode()? {
        None => Ok(()),
        Some(mode) => Err(Error::Refused {
            message: format!(
                "ripcord is in safe mode since {}{}: {} is refused",
                mode.since,
                mode.run
                    .as_ref()
                    .map_or(String::new(), |r| format!(", after run {r} failed")),
                what
            ),
            hint: "find out what failed (`ripcord report RUN`), then leave safe mode with \
                   `ripcord ack --reason TEXT`"
                .into(),
        }),
    }
}

/// `ripcord ack --reason TEXT`: leaves safe mode, audited. Returns the
/// state that was left, or none when ripcord was not in safe mode.
pub fn ack(ctx: &Ctx, reason: &str) -> Result<Option<SafeMode>> {
    if reason.trim().is_empty() {
        return Err(Error::usage(
            "leaving safe mode needs a reason",
            "say what was checked with --reason TEXT: it goes into the audit",
        ));
    }
    let mut catalog = ctx.catalog()?;
    let left = catalog.leave_safe_mode()?;
    catalog.append_audit(&AuditInput {
        actor: ctx.actor(),
        command: "ack".into(),
        args: Vec::new(),
        reason: Some(reason.to_string()),
        result: if left.is_some() {
            "ok"
        } else {
            "not in safe mode"
        }
        .into(),
        run: left.as_ref().and_then(|m| m.run.clone()),
    })?;
    Ok(left)
}

/// What `resume` does with a `command` step that a crash interrupted and
/// that is not marked idempotent: it may have taken effect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Interrupted {
    /// Stop (exit 3) and ask.
    #[default]
    Ask,
    Rerun,
    Skip,
}

#[derive(Clone, Default)]
pub struct ResumeOptions {
    /// The run; the newest unfinished one when not given.
    pub run: Option<String>,
    pub interrupted: Interrupted,
    /// As [`RecoverOptions::overrun`].
    pub overrun: Option<Overrun>,
}

/// `ripcord resume [RUN]`: goes on with a run that a crash or a kill
/// stopped. Finished steps are skipped; the interrupted step runs again
/// (built-in steps are idempotent), except a non-idempotent command, which
/// needs `--rerun` or `--skip`.
pub fn resume(ctx: &Ctx, opts: &ResumeOptions) -> Result<RecoverReport> {
    let start = Instant::now();
    let Some(mut catalog) = ctx.catalog_if_exists()? else {
        return Err(no_run_to_resume());
    };
    let run = match &opts.run {
        Some(id) => catalog
            .run(id)?
            .ok_or_else(|| ripcord_catalog::Error::UnknownRun(id.clone()))?,
        None => catalog
            .runs()?
            .into_iter()
            .find(|r| r.result == RunResult::Running && r.kind == "recover")
            .ok_or_else(no_run_to_resume)?,
    };
    if run.kind != "recover" {
        return Err(Error::usage(
            format!(
                "run {} is a {} run by hand, not a recovery: it has no runbook to go on with",
                run.run, run.kind
            ),
            "run the same command again: restore and migrate down are safe to repeat",
        ));
    }
    if run.result != RunResult::Running {
        return Err(Error::usage(
            format!("run {} already ended: {}", run.run, run.result.as_str()),
            "only a run that was stopped before it ended can be resumed (`ripcord runs`)",
        ));
    }
    let levels = chain(ctx, run.level.as_deref().unwrap_or_default())?;
    let _here = crate::local_flight::claim(
        ctx,
        &run.run,
        "a run that is still going cannot be resumed; wait for it (`ripcord status`)",
    )?;
    match catalog.acquire_flight(&Holder::this_process(&run.run))? {
        Acquired::Held(h) => {
            return Err(in_progress(
                &h,
                "a run that is still going cannot be resumed; wait for it (`ripcord status`)",
            ))
        }
        Acquired::Taken | Acquired::TakenOver(_) => {}
    }
    let result = resume_held(ctx, &mut *catalog, &run.run, &levels, opts);
    let released = catalog.release_flight(&run.run);
    let mut report = result?;
    released?;
    report.seconds = start.elapsed().as_secs_f64();
    let mut args = vec![run.run.clone()];
    match opts.interrupted {
        Interrupted::Rerun => args.push("--rerun".into()),
        Interrupted::Skip => args.push("--skip".into()),
        Interrupted::Ask => {}
    }
    catalog.append_audit(&AuditInput {
        actor: ctx.actor(),
        command: "resume".into(),
        args,
        reason: Some(run.reason.clone()),
        result: report.result.clone(),
        run: Some(run.run.clone()),
    })?;
    Ok(report)
}

/// The refusal while another live process holds the single-flight lock.
pub(crate) fn in_progress(h: &Holder, hint: &str) -> Error {
    Error::Refused {
        message: format!(
            "run {} is in progress: pid {} on {}, started {}",
            h.run, h.pid, h.host, h.started
        ),
        hint: hint.into(),
    }
}

fn no_run_to_resume() -> Error {
    Error::usage(
        "no run was interrupted: there is nothing to resume",
        "`ripcord runs` lists the runs and how they ended",
    )
}

/// Rebuilds where the run stood from its journal, and goes on from there.
fn resume_held(
    ctx: &Ctx,
    catalog: &mut dyn Catalog,
    run: &str,
    levels: &[String],
    opts: &ResumeOptions,
) -> Result<RecoverReport> {
    let mut report = RecoverReport {
        run: run.to_string(),
        result: "failed".into(),
        levels: Vec::new(),
        steps: Vec::new(),
        safe_mode: false,
        warnings: Vec::new(),
        seconds: 0.0,
        dry_run: false,
    };
    let changed = || Error::Refused {
        message: format!(
            "the runbook changed since run {run} started: its journal no longer matches the steps"
        ),
        hint: "put the runbook back as it was to resume, or start a new run with `ripcord recover`"
            .into(),
    };
    // (level, step in level, level failed)
    let mut at = (0usize, 0usize, false);
    let mut interrupted = None;
    for j in catalog.steps(run)? {
        let level = j.level.clone().unwrap_or_default();
        let li = levels
            .iter()
            .position(|l| *l == level)
            .ok_or_else(changed)?;
        if li != at.0 {
            at = (li, 0, false);
        }
        let step = ctx.config.levels[&level].get(at.1).ok_or_else(changed)?;
        if describe(step) != j.name {
            return Err(changed());
        }
        if !report.levels.contains(&level) {
            report.levels.push(level.clone());
        }
        if j.state == StepState::Started {
            interrupted = Some((j, step.clone()));
            break;
        }
        report.steps.push(StepReport {
            seq: j.seq,
            level,
            kind: j.kind.clone(),
            name: j.name.clone(),
            state: j.state.as_str().into(),
            attempts: j.attempts,
            detail: j
                .output
                .as_deref()
                .and_then(|o| o.lines().last())
                .unwrap_or_default()
                .to_string(),
            seconds: 0.0,
        });
        at.1 += 1;
        at.2 = j.state == StepState::Failed;
    }
    if let Some((j, step)) = interrupted {
        let unsafe_to_repeat = matches!(
            step.kind,
            StepKind::Command {
                idempotent: false,
                ..
            }
        );
        match opts.interrupted {
            Interrupted::Ask if unsafe_to_repeat => {
                return Err(Error::Refused {
                    message: format!(
                        "step {} ({}) of run {run} was interrupted while it ran; it is a command \\
                         not marked idempotent, so running it again may do its work twice",
                        j.seq, j.name
                    ),
                    hint: format!(
                        "check whether it took effect, then `ripcord resume {run} --rerun` to run \\
                         it again or `ripcord resume {run} --skip` to go on without it"
                    ),
                })
            }
            Interrupted::Skip => {
                catalog.end_step(
                    run,
                    j.seq,
                    &StepEnd {
                        state: StepState::Skipped,
                        output: Some("skipped on resume".into()),
                        detail: None,
                    },
                )?;
                report.steps.push(StepReport {
                    seq: j.seq,
                    level: levels[at.0].clone(),
                    kind: j.kind.clone(),
                    name: j.name.clone(),
                    state: "skipped".into(),
                    attempts: j.attempts,
                    detail: "skipped on resume".into(),
                    seconds: 0.0,
                });
                at.1 += 1;
            }
            // Run again: the journal counts the attempt.
            _ => {}
        }
    }
    ctx.say(format!("resuming run {run}"));
    continue_run(ctx, catalog, run, levels, at, report, opts.overrun.as_ref())
}

/// Whether `e` says a snapshot's data is damaged (rather than, say, that
/// the target cannot be written).
fn damaged(e: &Error) -> bool {
    use ripcord_repo::Error as Repo;
    use ripcord_targets::Error as Targets;
    match e {
        Error::Repo(Repo::Corrupt { .. } | Repo::Damaged { .. })
        | Error::Targets(
            Targets::DamagedFile { .. }
            | Targets::Repo(Repo::Corrupt { .. } | Repo::Damaged { .. }),
        ) => true,
        Error::Context { source, .. } => damaged(source),
        _ => false,
    }
}

/// The snapshot a `restore` step uses: the one it names if its data
/// verifies (every blob of it read and re-hashed), else the newest earlier
/// snapshot of the target that does, with a note naming both and the data
/// the fallback gives up.
fn verified_snapshot(
    ctx: &Ctx,
    target: &str,
    wanted: &str,
) -> std::result::Result<
    (
        ripcord_repo::Id,
        chrono::DateTime<chrono::Utc>,
        Option<String>,
    ),
    String,
> {
    let repo = ctx.open_repo().map_err(|e| e.chain())?;
    let (first_id, first) = ctx
        .find_snapshot_holding(&repo, wanted, &[target.to_string()])
        .map_err(|e| e.chain())?;
    let list = repo.snapshot_list().map_err(|e| e.to_string())?;
    let mut candidates = vec![(first_id, first.time)];
    candidates.extend(
        list.snapshots
            .iter()
            .rev()
            .filter(|(id, s)| *id != first_id && s.time < first.time && s.target(target).is_some())
            .map(|(id, s)| (*id, s.time)),
    );
    let mut damaged = Vec::new();
    for (id, time) in candidates {
        let report = ripcord_repo::verify::verify(
            &repo,
            &ripcord_repo::verify::VerifyOptions {
                deep: true,
                subset_percent: None,
                snapshot: Some(id),
            },
            &|_, _| {},
        )
        .map_err(|e| e.to_string())?;
        if report.ok() {
            if damaged.is_empty() {
                return Ok((id, time, None));
            }
            let lost = first.time - time;
            return Ok((
                id,
                time,
                Some(format!(
                    "snapshot {} is damaged ({}); fell back to {}, taken {} earlier",
                    first_id.short(),
                    damaged.join("; "),
                    id.short(),
                    ripcord_core::duration::short(lost.to_std().unwrap_or_default())
                )),
            ));
        }
        damaged.push(format!(
            "{}: {}",
            id.short(),
            report
                .problems
                .first()
                .map_or("damaged", |p| p.detail.as_str())
        ));
    }
    Err(format!(
        "no snapshot of {target} at or before {} verifies: {}",
        first_id.short(),
        damaged.join("; ")
    ))
}

/// `ripcord status`: the run in progress (its step, how long it has run,
/// and when it should end, judged from earlier runs of the same steps),
/// and safe mode.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct StatusReport {
    /// The run holding the single-flight lock, if any.
    pub run: Option<ripcord_catalog::runs::Run>,
    /// Whether that run's process still lives; false means `resume` it.
    pub alive: Option<bool>,
    /// Its step running now (the last journaled).
    pub step: Option<String>,
    pub elapsed_seconds: Option<f64>,
    /// Seconds left, from the mean durations of the same steps in earlier
    /// succeeded runs; none without history.
    pub eta_seconds: Option<f64>,
    pub safe_mode: Option<SafeMode>,
}

pub fn status(ctx: &Ctx) -> Result<StatusReport> {
    let mut out = StatusReport {
        run: None,
        alive: None,
        step: None,
        elapsed_seconds: None,
        eta_seconds: None,
        safe_mode: None,
    };
    let Some(mut catalog) = ctx.catalog_if_exists()? else {
        return Ok(out);
    };
    out.safe_mode = catalog.safe_mode()?;
    let Some(holder) = catalog.flight_holder()? else {
        return Ok(out);
    };
    out.alive = catalog.holder_alive(&holder)?;
    let Some(run) = catalog.run(&holder.run)? else {
        return Ok(out);
    };
    let now = chrono::Utc::now().to_rfc3339();
    let since = |t: &str| crate::incident::seconds(t, &now);
    out.elapsed_seconds = since(&run.started);
    let steps = catalog.steps(&run.run)?;
    out.step = steps.last().map(|s| s.name.clone());
    // Mean duration of each step name over earlier succeeded runs.
    let mut took: std::collections::HashMap<String, (f64, u32)> = Default::default();
    for r in catalog
        .runs()?
        .iter()
        .filter(|r| r.result == RunResult::Succeeded)
    {
        for s in catalog.steps(&r.run)? {
            let Some(secs) = s
                .finished
                .as_deref()
                .and_then(|f| crate::incident::seconds(&s.started, f))
            else {
                continue;
            };
            let e = took.entry(s.name.clone()).or_default();
            e.0 += secs;
            e.1 += 1;
        }
    }
    if let Some(level) = &run.level {
        if let Ok(levels) = chain(ctx, level) {
            // The steps still to come on the first level: the way a run
            // that recovers goes.
            let done = steps.len().saturating_sub(1);
            let mut left = 0.0;
            let mut known = true;
            for step in ctx.config.levels[&levels[0]].iter().skip(done) {
                match took.get(&describe(step)) {
                    Some((sum, n)) => left += sum / *n as f64,
                    None => known = false,
                }
            }
            if known {
                let current = steps.last().and_then(|s| since(&s.started)).unwrap_or(0.0);
                out.eta_seconds = Some((left - current).max(0.0));
            }
        }
    }
    out.run = Some(run);
    Ok(out)
}
