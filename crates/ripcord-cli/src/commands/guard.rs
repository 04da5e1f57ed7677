//! `ripcord guard check|watch|status`.

use anyhow::Result;
use ripcord_guard::check::GuardCheck;
use ripcord_guard::judge::Verdict;
use ripcord_guard::watch::{recovery_run, watch, WatchOptions};

use crate::cli::GuardCommand;
use crate::ctx::Ctx;
use crate::output;

pub fn run(ctx: &Ctx, cmd: GuardCommand) -> Result<()> {
    match cmd {
        GuardCommand::Check => {
            let c = ripcord_guard::check::check(ctx)?;
            show(ctx, &c);
            outcome(&c)
        }
        GuardCommand::Status => {
            let c = ripcord_guard::check::status(ctx)?;
            show(ctx, &c);
            Ok(())
        }
        GuardCommand::Watch {
            auto_rollback,
            duration,
        } => {
            let duration = duration
                .as_deref()
                .map(|d| {
                    ripcord_core::duration::parse(d).map_err(|e| {
                        crate::usage(
                            format!("--for {d:?}: {e}"),
                            "give a duration such as 10m or 1h",
                        )
                    })
                })
                .transpose()?;
            let report = watch(
                ctx,
                &ctx.config.guard_spec.rules,
                &WatchOptions {
                    duration,
                    auto_rollback,
                    stop_after_rollback: false,
                },
                &mut recovery_run(ctx),
            )?;
            if ctx.json {
                output::print_json(&report);
            } else {
                ctx.say(format!(
                    "watched for {:.0}s: {}, {}, {}",
                    report.seconds,
                    output::counted(report.samples, "sample"),
                    output::counted(report.evaluations, "evaluation"),
                    if report.runs.is_empty() {
                        "no rollback".to_string()
                    } else {
                        format!("rollback runs {}", report.runs.join(", "))
                    }
                ));
            }
            Ok(())
        }
    }
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Healthy => "healthy",
        Verdict::Breached => "BREACHED",
        Verdict::Inconclusive => "inconclusive",
    }
}

fn show(ctx: &Ctx, c: &GuardCheck) {
    if ctx.json {
        output::print_json(c);
        return;
    }
    let rows: Vec<Vec<String>> = c
        .probes
        .iter()
        .map(|p| {
            vec![
                p.probe.clone(),
                p.kind.clone(),
                match p.ok {
                    Some(true) => "ok".into(),
                    Some(false) => "FAILED".into(),
                    None => "-".into(),
                },
                p.observed.clone().unwrap_or_else(|| "no sample yet".into()),
                p.samples.to_string(),
            ]
        })
        .collect();
    output::table_indented(
        0,
        &["PROBE", "KIND", "LAST", "OBSERVED", "SAMPLES (1H)"],
        &[false, false, false, false, true],
        &rows,
    );
    ctx.say("");
    let rows: Vec<Vec<String>> = c
        .rules
        .iter()
        .map(|r| {
            vec![
                r.evaluation.rule.clone(),
                r.severity.clone(),
                verdict(r.evaluation.verdict).into(),
                r.evaluation.evidence.join("; "),
            ]
        })
        .collect();
    output::table_indented(
        0,
        &["RULE", "SEVERITY", "VERDICT", "EVIDENCE"],
        &[false, false, false, false],
        &rows,
    );
    ctx.say(format!("guard: {}", c.result));
}

/// `guard check`'s exit code: 1 on a critical breach, 4 when inconclusive.
fn outcome(c: &GuardCheck) -> Result<()> {
    match c.exit_code() {
        0 => Ok(()),
        1 => Err(crate::CliError::Failed {
            message: "a critical guard rule is breached".into(),
        }
        .into()),
        _ => Err(crate::CliError::Inconclusive {
            message:
                "a guard rule is inconclusive: too few samples, no data, an empty result or NaN"
                    .into(),
        }
        .into()),
    }
}
