//! `ripcord schedule run` and `ripcord schedule install`.

use anyhow::Result;
use ripcord_ops::schedule::units::{self, Invocation};

use crate::cli::ScheduleCommand;
use crate::ctx::Ctx;
use crate::{output, CliError};

pub fn run(ctx: &Ctx, cmd: ScheduleCommand) -> Result<()> {
    match cmd {
        ScheduleCommand::Run => pass(ctx),
        ScheduleCommand::Install { systemd, cron } => install(ctx, systemd, cron),
    }
}

/// One pass. Audited when it did or tried something: a timer starts one a
/// minute, and passes with nothing due would bury the audit trail.
fn pass(ctx: &Ctx) -> Result<()> {
    let report = match ripcord_ops::schedule::run(ctx) {
        Ok(r) => r,
        Err(e) => {
            let result = Err(e.into());
            super::audit(ctx, "schedule run", &result);
            return result;
        }
    };
    if ctx.json {
        output::print_json(&report);
    } else if !report.skipped && report.actions.is_empty() {
        ctx.say("nothing is due");
    }
    let failed = report.actions.iter().filter(|a| !a.ok).count();
    let result = if failed == 0 {
        Ok(())
    } else {
        if !ctx.json {
            for a in report.actions.iter().filter(|a| !a.ok) {
                if let Some(h) = &a.hint {
                    eprintln!("{} {h}", output::bold("hint:"));
                }
            }
        }
        Err(CliError::Failed {
            message: format!(
                "{} of this schedule pass failed; the others were done",
                output::count(failed as u64, "action", "actions")
            ),
        }
        .into())
    };
    if !report.actions.is_empty() {
        super::audit(ctx, "schedule run", &result);
    }
    result
}

fn install(ctx: &Ctx, systemd: bool, cron: bool) -> Result<()> {
    let config = ctx.config.source.clone().ok_or_else(|| {
        crate::usage(
            "no ripcord.toml was found: the units name the configuration file they run with",
            "run this where ripcord.toml is, or pass --config PATH",
        )
    })?;
    let config = std::path::absolute(&config)?;
    let binary = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| CliError::failed(format!("cannot tell where this ripcord binary is: {e}")))?;
    let out = units::install(&ctx.config, &Invocation { binary, config }, systemd, cron);
    if ctx.json {
        output::print_json(&out);
        return Ok(());
    }
    let mut first = true;
    for f in &out.files {
        if !first {
            println!();
        }
        first = false;
        println!("# ---- {} ----", f.file);
        print!("{}", f.text);
    }
    if let Some(line) = &out.cron {
        if !first {
            println!();
        }
        print!("{line}");
    }
    Ok(())
}
