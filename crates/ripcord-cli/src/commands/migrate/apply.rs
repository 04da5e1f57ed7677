//! `ripcord migrate up`, `migrate down` and `rollback`.

use anyhow::Result;
use ripcord_core::config::OnConflict;
use ripcord_core::revert::TableRevert;
use ripcord_migrate::engine::{DownChange, DownReport, Note, Scope};
use ripcord_ops::migrate::{Applied, DownRequest, Reverted, UpRequest};

use crate::cli::{DownArgs, UpArgs};
use crate::ctx::Ctx;
use crate::output;

pub fn up(ctx: &Ctx, args: &UpArgs) -> Result<()> {
    let req = UpRequest {
        format: args.common.format.clone(),
        to: args.to.clone(),
        dry_run: args.dry_run,
        allow_drift: args.allow_drift,
        allow_unprotected: args.allow_unprotected,
        lock_timeout: lock_timeout(args.lock_timeout.as_deref())?,
        set: super::sets(&args.common.set)?,
    };
    let bake = args
        .bake
        .as_deref()
        .map(|d| match ripcord_core::duration::parse(d) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(crate::usage(
                "--bake 0s watches nothing",
                "give a duration such as 10m",
            )),
            Err(e) => Err(crate::usage(
                format!("--bake {d:?}: {e}"),
                "give a duration such as 10m or 1h",
            )),
        })
        .transpose()?;
    let (applied, baked) = match bake {
        Some(d) => ripcord_guard::bake::up_and_bake(ctx, &req, d, &mut |n| say(ctx, n))?,
        None => (
            ripcord_ops::migrate::up(ctx, &req, &mut |n| say(ctx, n))?,
            None,
        ),
    };
    let Applied {
        target: name,
        report,
        messages,
    } = applied;
    if !report.dry_run {
        for c in &report.changes {
            echo(ctx, &messages, &c.name, &["up", "verify"]);
        }
    }
    if ctx.json {
        output::print_json(&ripcord_guard::json::BakedUpOutput {
            up: ripcord_ops::json::UpOutput {
                target: name.clone(),
                change_count: report.changes.len(),
                report,
            },
            bake: baked.clone(),
        });
        return match baked.and_then(|b| b.reverted_run) {
            Some(run) => Err(not_baked(&run)),
            None => Ok(()),
        };
    }
    if report.changes.is_empty() {
        ctx.say(format!("target {name} is up to date: nothing to apply"));
    } else if report.dry_run {
        ctx.say(format!(
            "dry run: {} would be applied to {name}; nothing was changed",
            output::counted(report.changes.len() as u64, "change")
        ));
        for c in &report.changes {
            ctx.say(format!(
                "  {}: {}, safety snapshot {}{}",
                c.name,
                if c.transactional {
                    "in a transaction"
                } else {
                    "outside a transaction"
                },
                scope_text(&c.snapshot_scope),
                if c.verify { ", then verify" } else { "" }
            ));
        }
    } else {
        ctx.say(format!(
            "{} applied to {name}",
            output::counted(report.changes.len() as u64, "change")
        ));
    }
    if let Some(b) = baked {
        match &b.reverted_run {
            Some(run) => {
                ctx.say(format!(
                    "the guard saw a critical rule breached while baking: {name} is back at {} \
                     with its data; run {run} (`ripcord report {run}`)",
                    b.revert_to
                ));
                return Err(not_baked(run));
            }
            None => ctx.say(format!(
                "baked for {}: no critical rule was breached; the changes stay",
                ripcord_core::duration::short(std::time::Duration::from_secs_f64(b.bake_seconds))
            )),
        }
    }
    Ok(())
}

/// `migrate up --bake` whose changes the guard reverted: exit 1.
fn not_baked(run: &str) -> anyhow::Error {
    crate::CliError::Failed {
        message: format!("the changes did not bake: the guard reverted them (run {run})"),
    }
    .into()
}

/// What a change's scripts print with `\echo`, `\qecho` and `\warn`.
fn echo(ctx: &Ctx, messages: &ripcord_migrate::psql::Messages, change: &str, steps: &[&str]) {
    for step in steps {
        let key = (change.to_string(), *step);
        for line in messages.get(&key).into_iter().flatten() {
            ctx.warn(format!("{change}: {line}"));
        }
    }
}

fn lock_timeout(text: Option<&str>) -> Result<Option<std::time::Duration>> {
    let Some(text) = text else { return Ok(None) };
    match ripcord_core::duration::parse(text) {
        Ok(d) if !d.is_zero() => Ok(Some(d)),
        Ok(_) => Err(crate::usage(
            "--lock-timeout must be more than 0s",
            "give a duration such as 5s or 1m",
        )),
        Err(e) => Err(crate::usage(
            format!("--lock-timeout: {e}"),
            "give a duration such as 5s or 1m",
        )),
    }
}

/// `migrate down` and `rollback` are the same command (`command` names it).
pub fn down(ctx: &Ctx, args: &DownArgs, command: &str) -> Result<()> {
    let on_conflict = args
        .on_conflict
        .as_deref()
        .map(|p| p.parse::<OnConflict>())
        .transpose()
        .map_err(|e| crate::usage(e, "--on-conflict takes snapshot, keep-new or review"))?;
    let req = DownRequest {
        format: args.common.format.clone(),
        to: args.destination().to_string(),
        dry_run: args.dry_run,
        allow_drift: args.allow_drift,
        on_conflict,
        lock_timeout: lock_timeout(args.lock_timeout.as_deref())?,
        set: super::sets(&args.common.set)?,
    };
    let argv = crate::commands::argv(command);
    let call = ripcord_ops::way_back::Call {
        command,
        args: &argv,
        reason: args.reason.as_deref(),
        trigger: None,
        run: None,
    };
    let Reverted {
        target: name,
        run,
        report,
        review,
        messages,
    } = ripcord_ops::way_back::down(ctx, &req, &mut |n| say(ctx, n), &call)?;
    if !report.dry_run {
        for c in &report.changes {
            if c.how != ripcord_migrate::engine::How::Snapshot {
                echo(ctx, &messages, &c.name, &["down"]);
            }
        }
    }
    if ctx.json {
        let mut out = ripcord_ops::json::DownOutput::new(&name, report, &review);
        out.run = run;
        output::print_json(&out);
        return Ok(());
    }
    summarize_down(ctx, &name, &report, &review);
    if let Some(r) = run {
        ctx.say(format!(
            "run {r}: `ripcord report {r}` tells what was restored and kept"
        ));
    }
    Ok(())
}

fn summarize_down(ctx: &Ctx, name: &str, report: &DownReport, review: &[(String, String, String)]) {
    if report.changes.is_empty() {
        ctx.say(format!(
            "nothing to revert: no change after {} is applied to {name}",
            report.target
        ));
        return;
    }
    if report.dry_run {
        ctx.say(format!(
            "dry run: {} would be reverted on {name}, newest first; nothing was changed",
            output::counted(report.changes.len() as u64, "change")
        ));
        for c in &report.changes {
            ctx.say(format!("  {}: {}", c.name, c.how.describe()));
        }
        return;
    }
    let tables: Vec<&str> = report
        .changes
        .iter()
        .flat_map(|c| c.tables.iter().map(|t| t.table.as_str()))
        .collect();
    let sum = |f: fn(&ripcord_core::revert::TableRevert) -> u64| -> u64 {
        report
            .changes
            .iter()
            .flat_map(|c| c.tables.iter())
            .map(f)
            .sum()
    };
    let lost: u64 = report.changes.iter().map(DownChange::rows_lost).sum();
    ctx.say(format!(
        "{} reverted on {name}; now at {}",
        output::counted(report.changes.len() as u64, "change"),
        if report.target == "@root" {
            "the start of the plan".to_string()
        } else {
            report.target.clone()
        }
    ));
    if !tables.is_empty() {
        ctx.say(format!(
            "restored from safety snapshots: {} ({}), {}",
            output::counted(tables.len() as u64, "table"),
            tables.join(", "),
            output::counted(sum(|t| t.restored_rows), "row")
        ));
        ctx.say(format!(
            "rows written since the changes: {} kept, {} set aside for review, {} discarded",
            sum(|t| t.kept_rows),
            sum(|t| t.review_rows),
            sum(|t| t.discarded_rows)
        ));
    }
    if report
        .changes
        .iter()
        .flat_map(|c| c.tables.iter())
        .any(|t| t.three_way)
    {
        ctx.say(format!(
            "written by the application after the changes: {} inserted, {} updated, {} deleted \
             ({} kept); {} with the changes",
            sum(|t| t.inserted_since),
            sum(|t| t.updated_since),
            sum(|t| t.deleted_since),
            output::counted(sum(|t| t.deleted_kept), "deletion"),
            output::counted(sum(|t| t.conflicts), "conflict")
        ));
    }
    let changed = sum(|t| t.changed_rows);
    if changed > 0 {
        ctx.say(format!(
            "rows that existed before the changes and were changed since (by the changes \
             themselves or after them): {changed}, put back to their values before the changes"
        ));
    }
    for (table, change, row) in review {
        ctx.say(format!("  review ({change}) {table}: {row}"));
    }
    if lost == 0 {
        ctx.say("data loss: none");
    } else {
        ctx.warn(format!(
            "data loss: {} (rows written since that on_conflict = snapshot discarded, \
             and rows of tables the changes had created)",
            output::counted(lost, "row")
        ));
    }
}

fn say(ctx: &Ctx, note: Note<'_>) {
    match note {
        Note::Snapshot {
            change,
            id,
            scope,
            uncertain,
            tables,
        } => {
            let short: String = id.chars().take(8).collect();
            // Tables taken over unread from the previous snapshot are named:
            // the whole database was not read again.
            let reused = match tables {
                Some(t) if t.reused > 0 => format!(
                    " ({} tables read, {} unchanged since the previous snapshot)",
                    t.read, t.reused
                ),
                _ => String::new(),
            };
            ctx.say(format!(
                "safety snapshot {short} of {} before {change}{reused}",
                scope_text(scope)
            ));
            if let Some(why) = uncertain {
                ctx.warn(format!(
                    "{change}: the tables it changes cannot be told from its SQL ({why}), so \
                     the whole database was snapshotted"
                ));
            }
        }
        Note::Applied(c) => ctx.say(format!(
            "applied {} in {} ({}{})",
            c.name,
            millis(c.duration_ms),
            if c.transactional {
                "in a transaction"
            } else {
                "outside a transaction"
            },
            if c.verify { ", verified" } else { "" }
        )),
        Note::Warning(text) => ctx.warn(text),
        Note::Reverted(c) => {
            ctx.say(format!(
                "reverted {} {}{}",
                c.name,
                c.how.describe(),
                if c.was_dirty { " (it was dirty)" } else { "" }
            ));
            for t in c.tables.iter().filter(|t| t.three_way) {
                say_three_way(ctx, t);
            }
            for t in c.tables.iter().filter(|t| !t.three_way) {
                let mut line = format!(
                    "  {}: {} restored",
                    t.table,
                    output::counted(t.restored_rows, "row")
                );
                if t.recreated {
                    line.push_str(", table recreated");
                }
                if t.kept_rows > 0 {
                    line.push_str(&format!(
                        ", {} kept",
                        output::count(t.kept_rows, "newer row", "newer rows")
                    ));
                }
                if t.review_rows > 0 {
                    line.push_str(&format!(
                        ", {} set aside for review",
                        output::count(t.review_rows, "newer row", "newer rows")
                    ));
                }
                if t.discarded_rows > 0 {
                    line.push_str(&format!(
                        ", {} discarded",
                        output::count(t.discarded_rows, "newer row", "newer rows")
                    ));
                }
                if t.changed_rows > 0 {
                    line.push_str(&format!(
                        ", {} changed since put back to their values before the change",
                        output::counted(t.changed_rows, "row")
                    ));
                }
                ctx.say(line);
            }
            for t in &c.dropped_tables {
                ctx.say(format!(
                    "  dropped {} ({})",
                    t.table,
                    output::counted(t.rows, "row")
                ));
            }
            for what in &c.down_destroys {
                ctx.say(format!("  its down script, as written, {what}"));
            }
        }
    }
}

/// A table put back by a three-way merge: what the change did and is
/// undone, what the application did since and where it went.
fn say_three_way(ctx: &Ctx, t: &TableRevert) {
    let policy = t.policy.map_or("keep-new", |p| p.name());
    ctx.say(format!(
        "  {}: {} loaded from the snapshot{}",
        t.table,
        output::counted(t.restored_rows, "row"),
        if t.recreated { ", table recreated" } else { "" }
    ));
    ctx.say(format!(
        "    undone: {} the change deleted or rewrote back as before it, {} it inserted \
         removed",
        output::counted(t.undone_rows, "row"),
        output::counted(t.removed_rows, "row")
    ));
    ctx.say(format!(
        "    written by the application since: {} inserted, {} updated, {} deleted; {} \
         with the change, decided by {policy}",
        t.inserted_since,
        t.updated_since,
        t.deleted_since,
        output::counted(t.conflicts, "conflict")
    ));
    let back = t.deleted_since - t.deleted_kept.min(t.deleted_since);
    ctx.say(format!(
        "    kept as the application left them: {} and {}; {} back; {} set aside for \
         review; {} discarded",
        output::counted(t.kept_rows, "row"),
        output::counted(t.deleted_kept, "deletion"),
        output::count(back, "deleted row", "deleted rows"),
        t.review_rows,
        t.discarded_rows
    ));
}

/// A change's duration: "12 ms", or "<1 ms".
pub(crate) fn millis(ms: Option<u64>) -> String {
    match ms {
        Some(0) | None => "<1 ms".into(),
        Some(ms) => format!("{ms} ms"),
    }
}

fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::None => "not needed (it touches no existing table)".into(),
        Scope::DownScript(t) => format!(
            "not needed for {} (no data destroyed; its down script undoes it)",
            t.join(", ")
        ),
        Scope::Tables(t) => t.join(", "),
        Scope::Schema(what) => format!("schema-only, of {}", what.join(", ")),
        Scope::Database => "the whole database".into(),
    }
}
