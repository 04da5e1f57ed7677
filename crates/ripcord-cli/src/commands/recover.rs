//! `ripcord recover`, `runs` and `ack`.

use anyhow::{Context as _, Result};
use ripcord_ops::json::{AckOutput, AuditOutput};
use ripcord_ops::recover::RecoverOptions;

use crate::cli::{RecoverArgs, ResumeArgs};
use crate::ctx::Ctx;
use crate::output;
use crate::CliError;

/// Exit 0 when a level recovered, 1 when every level failed (the report
/// is printed first either way).
pub fn recover(ctx: &Ctx, args: &RecoverArgs) -> Result<()> {
    let report = ripcord_ops::recover::recover(
        ctx,
        &RecoverOptions {
            level: args.level.clone(),
            reason: args.reason.clone(),
            trigger: "manual".into(),
            dry_run: args.dry_run,
            overrun: Some(go_on_elsewhere(ctx)),
            run: None,
        },
    )?;
    finish(ctx, report)
}

/// `ripcord resume [RUN] [--rerun | --skip]`: exits as `recover` does.
pub fn resume(ctx: &Ctx, args: &ResumeArgs) -> Result<()> {
    use ripcord_ops::recover::{Interrupted, ResumeOptions};
    let report = ripcord_ops::recover::resume(
        ctx,
        &ResumeOptions {
            run: args.run.clone(),
            interrupted: match (args.rerun, args.skip) {
                (true, _) => Interrupted::Rerun,
                (_, true) => Interrupted::Skip,
                _ => Interrupted::Ask,
            },
            overrun: Some(go_on_elsewhere(ctx)),
        },
    )?;
    finish(ctx, report)
}

/// Prints a run's report; a run that failed at every level is exit 1.
fn finish(ctx: &Ctx, report: ripcord_ops::recover::RecoverReport) -> Result<()> {
    for w in &report.warnings {
        ctx.warn(w);
    }
    if ctx.json {
        output::print_json(&report);
        if report.dry_run {
            return Ok(());
        }
    } else if report.dry_run {
        let mut level = "";
        for s in &report.steps {
            if s.level != level {
                level = &s.level;
                ctx.say(format!("level {level}"));
            }
            ctx.say(format!("  {}. {}", s.seq, s.name));
        }
        ctx.say(format!(
            "dry run: {} in {}; nothing was run",
            output::counted(report.steps.len() as u64, "step"),
            output::counted(report.levels.len() as u64, "level"),
        ));
        return Ok(());
    }
    if report.result == "succeeded" {
        ctx.say(format!(
            "run {} recovered at level {} in {:.1}s",
            report.run,
            report.levels.last().map_or("", String::as_str),
            report.seconds
        ));
        return Ok(());
    }
    Err(CliError::Failed {
        message: format!(
            "run {} failed at every level ({}); ripcord is in safe mode: `migrate up` is \
             refused until `ripcord ack --reason TEXT`",
            report.run,
            report.levels.join(" -> ")
        ),
    }
    .into())
}

pub fn runs(ctx: &Ctx) -> Result<()> {
    let runs = match ctx.catalog_if_exists().map_err(CliError::from)? {
        Some(mut c) => c.runs().map_err(CliError::from)?,
        None => Vec::new(),
    };
    if ctx.json {
        output::print_json(&runs);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run.clone(),
                local(&r.started),
                r.kind.clone(),
                r.level.clone().unwrap_or_default(),
                r.result.as_str().to_string(),
                r.reason.clone(),
            ]
        })
        .collect();
    output::table(
        &["RUN", "STARTED", "KIND", "LEVEL", "RESULT", "REASON"],
        &rows,
    );
    ctx.say(output::counted(runs.len() as u64, "run"));
    Ok(())
}

/// An RFC 3339 time from the catalog as text output shows times.
fn local(rfc3339: &str) -> String {
    output::rfc3339(rfc3339)
}

pub fn ack(ctx: &Ctx, reason: &str) -> Result<()> {
    let left = ripcord_ops::recover::ack(ctx, reason)?;
    if ctx.json {
        output::print_json(&AckOutput {
            left_safe_mode: left.is_some(),
            run: left.as_ref().and_then(|m| m.run.clone()),
            since: left.as_ref().map(|m| m.since.clone()),
        });
        return Ok(());
    }
    match left {
        Some(m) => ctx.say(format!(
            "left safe mode (since {}{}); migrations and automatic runs are allowed again",
            local(&m.since),
            m.run.map_or(String::new(), |r| format!(", run {r}"))
        )),
        None => ctx.say("ripcord was not in safe mode; the acknowledgement is in the audit"),
    }
    Ok(())
}

/// `ripcord audit [--since WHEN] [--verify]`.
pub fn audit(ctx: &Ctx, since: Option<&str>, verify: bool) -> Result<()> {
    if verify {
        let v = ripcord_ops::audit::verify(ctx)?;
        if ctx.json {
            output::print_json(&AuditOutput::Verdict(v.clone()));
        }
        if let Some(note) = &v.repository_note {
            ctx.warn(format!("not compared with the repository: {note}"));
        }
        return match &v.chain.first_bad {
            None => {
                ctx.say(format!(
                    "audit chain intact: {}{}; {}",
                    output::count(v.chain.entries, "entry", "entries"),
                    v.chain
                        .head
                        .as_ref()
                        .map_or(String::new(), |h| format!(", head {}", &h[..16])),
                    if v.sealed_snapshots == 0 {
                        "no snapshot has sealed it yet".to_string()
                    } else {
                        format!(
                            "it matches what {} sealed",
                            output::count(v.sealed_snapshots, "snapshot", "snapshots")
                        )
                    }
                ));
                Ok(())
            }
            Some(bad) => Err(CliError::Failed {
                message: format!(
                    "the audit chain is broken at entry {}: {}",
                    bad.seq, bad.problem
                ),
            }
            .into()),
        };
    }
    let since = since.map(parse_since).transpose()?;
    let entries = ripcord_ops::audit::entries(ctx, since)?;
    if ctx.json {
        output::print_json(&AuditOutput::Entries(entries));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                local(&e.time),
                e.input.actor.clone(),
                e.input.command.clone(),
                e.input.result.clone(),
                e.input.run.clone().unwrap_or_default(),
                e.input.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table_indented(
        0,
        &["SEQ", "TIME", "ACTOR", "COMMAND", "RESULT", "RUN", "REASON"],
        &[true, false, false, false, false, false, false],
        &rows,
    );
    ctx.say(output::count(entries.len() as u64, "entry", "entries"));
    Ok(())
}

/// `--since`: a duration back from now, or an RFC 3339 time.
fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = ripcord_core::duration::parse(text).map_err(|e| {
        crate::usage(
            format!("--since {text:?}: {e}"),
            "give a duration back from now (24h, 7d) or a time like 2026-12-01T09:00:00Z",
        )
    })?;
    Ok(chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
}

/// `ripcord report RUN [--format md|json] [--out FILE]`.
pub fn report(ctx: &Ctx, run: &str, format: &str, out: Option<&std::path::Path>) -> Result<()> {
    let r = ripcord_ops::incident::report(ctx, run)?;
    let json = ctx.json || format == "json";
    let text = if json {
        serde_json::to_string_pretty(&r)? + "\n"
    } else {
        ripcord_ops::incident::to_markdown(&r)
    };
    match out {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| {
                crate::usage(
                    format!("cannot write {}: {e}", path.display()),
                    "give a file in a folder that exists and that you may write to",
                )
            })?;
            ctx.say(format!(
                "report of run {} written to {}",
                r.run.run,
                path.display()
            ));
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `ripcord status [--watch]`.
pub fn status(ctx: &Ctx, watch: bool) -> Result<()> {
    loop {
        let s = ripcord_ops::recover::status(ctx)?;
        if ctx.json {
            output::print_json(&s);
            return Ok(());
        }
        let secs = |v: Option<f64>| {
            v.map_or("-".to_string(), |v| {
                ripcord_core::duration::short(std::time::Duration::from_secs(v.max(0.0) as u64))
            })
        };
        match &s.run {
            Some(r) if s.alive == Some(false) => ctx.say(format!(
                "run {} (level {}) stopped without finishing at: {}; `ripcord resume {}` goes on",
                r.run,
                r.level.as_deref().unwrap_or("-"),
                s.step.as_deref().unwrap_or("its start"),
                r.run
            )),
            Some(r) => ctx.say(format!(
                "run {} (level {}, pid {} on {}): {} — running for {}, about {} left",
                r.run,
                r.level.as_deref().unwrap_or("-"),
                r.pid,
                r.host,
                s.step.as_deref().unwrap_or("starting"),
                secs(s.elapsed_seconds),
                secs(s.eta_seconds)
            )),
            None => ctx.say("no recovery run in progress"),
        }
        if let Some(m) = &s.safe_mode {
            ctx.say(format!(
                "SAFE MODE since {}{}: migrate up and automatic runs are refused until `ripcord ack`",
                local(&m.since),
                m.run.as_ref().map_or(String::new(), |r| format!(" (run {r} failed)"))
            ));
        }
        if !watch || s.run.is_none() || s.alive == Some(false) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// `ripcord check`: one line per thing checked; exit 1 when one failed.
pub fn check(ctx: &Ctx) -> Result<()> {
    use ripcord_ops::check::CheckState;
    let report = ripcord_ops::check::check(ctx)?;
    if ctx.json {
        output::print_json(&report);
    } else {
        let rows: Vec<Vec<String>> = report
            .items
            .iter()
            .map(|i| {
                vec![
                    match i.state {
                        CheckState::Ok => "ok".to_string(),
                        CheckState::Warning => "WARN".to_string(),
                        CheckState::Failed => "FAIL".to_string(),
                    },
                    i.what.clone(),
                    i.detail.clone(),
                ]
            })
            .collect();
        output::table_indented(
            0,
            &["STATE", "CHECK", "DETAIL"],
            &[false, false, false],
            &rows,
        );
        for i in report.items.iter().filter(|i| i.state != CheckState::Ok) {
            if let Some(h) = &i.hint {
                ctx.say(format!("{}: {h}", i.what));
            }
        }
    }
    let failed = report
        .items
        .iter()
        .filter(|i| i.state == CheckState::Failed)
        .count();
    if failed > 0 {
        // A delivery that fails is a warning: the check's verdict stands.
        for w in ripcord_ops::check::notify_failed(ctx, &report) {
            ctx.warn(format!("check-failed not delivered: {w}"));
        }
        return Err(CliError::Failed {
            message: format!("{} failed", output::count(failed as u64, "check", "checks")),
        }
        .into());
    }
    Ok(())
}

/// A built-in step overran its timeout: this process becomes `ripcord
/// resume RUN` with the same configuration and output, which goes on from
/// the failed step (`ripcord_ops::overrun`).
fn go_on_elsewhere(ctx: &Ctx) -> ripcord_ops::overrun::Overrun {
    let config = ctx.config_path.clone();
    let (json, quiet) = (ctx.json, ctx.quiet);
    std::sync::Arc::new(move |run: &str| {
        use std::os::unix::process::CommandExt;
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut cmd = std::process::Command::new(exe);
        if let Some(c) = &config {
            cmd.arg("--config").arg(c);
        }
        if json {
            cmd.arg("--json");
        }
        if quiet {
            cmd.arg("--quiet");
        }
        cmd.args(["resume", run]);
        // The passphrase left the environment when ripcord started.
        for (i, var) in ripcord_targets::postgres::redact::SECRET_VARS
            .iter()
            .enumerate()
        {
            if let Some(v) = ripcord_ops::ctx::secret_env(i) {
                cmd.env(var, v.as_str());
            }
        }
        let e = cmd.exec();
        eprintln!("warning: cannot go on with run {run} in a new process: {e}");
    })
}

/// `ripcord drill [TARGET…] [--report FILE]`: exit 1 when a target failed.
pub fn drill(ctx: &Ctx, targets: &[String], report: Option<&std::path::Path>) -> Result<()> {
    let r = ripcord_ops::drill::drill(
        ctx,
        &ripcord_ops::drill::DrillOptions {
            targets: targets.to_vec(),
        },
    )?;
    if let Some(path) = report {
        std::fs::write(path, ripcord_ops::drill::to_markdown(&r))
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    if ctx.json {
        output::print_json(&r);
    } else {
        let rows: Vec<Vec<String>> = r
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.target.clone(),
                    t.kind.clone(),
                    t.result.to_uppercase(),
                    format!("{:.2}s", t.rto_seconds),
                    match t.rto_met {
                        Some(true) => "met".into(),
                        Some(false) => "MISSED".into(),
                        None => "-".into(),
                    },
                    t.error.clone().unwrap_or_else(|| t.checked.clone()),
                ]
            })
            .collect();
        output::table_indented(
            0,
            &["TARGET", "KIND", "RESULT", "RTO", "OBJECTIVE", "CHECKED"],
            &[false, false, false, true, false, false],
            &rows,
        );
        ctx.say(format!("drill {} in {:.1}s", r.result, r.seconds));
    }
    if r.result != "passed" {
        let failed: Vec<&str> = r
            .targets
            .iter()
            .filter(|t| t.result != "passed")
            .map(|t| t.target.as_str())
            .collect();
        return Err(CliError::Failed {
            message: format!("the drill failed: {} did not restore", failed.join(", ")),
        }
        .into());
    }
    Ok(())
}
