//! `ripcord recover`, `runs` and `ack`.

use anyhow::Result;
use ripcord_catalog::{Catalog, SqliteCatalog};
use ripcord_ops::json::AckOutput;
use ripcord_ops::recover::RecoverOptions;

use crate::cli::RecoverArgs;
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
        },
    )?;
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
    let path = ctx.config.catalog_path();
    let runs = match SqliteCatalog::open_existing(&path).map_err(CliError::from)? {
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
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| output::time(&t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| rfc3339.to_string())
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
