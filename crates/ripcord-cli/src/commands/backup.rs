//! `ripcord snapshot` and `ripcord restore`: arguments to the library's
//! options, its results to the terminal.

use anyhow::Result;
use ripcord_ops::restore::{RestoreOptions, RestoreResult};
use ripcord_ops::snapshot::SnapshotOptions;

use crate::cli::{RestoreArgs, SnapshotArgs};
use crate::ctx::Ctx;
use crate::output;

pub fn snapshot(ctx: &Ctx, args: &SnapshotArgs) -> Result<()> {
    // Targets as arguments and with --target are the same.
    let mut targets = args.targets.clone();
    targets.extend(args.select.targets.iter().cloned());
    let opts = SnapshotOptions {
        targets,
        tags: args.select.tags.clone(),
        tier: args.tier.clone(),
        tables: table_list(&args.tables),
        jobs: args.jobs.unwrap_or(0),
    };
    if args.dry_run {
        let planned = ripcord_ops::snapshot::plan(ctx, &opts)?;
        if ctx.json {
            output::print_json(&planned);
            return Ok(());
        }
        for p in &planned.targets {
            ctx.say(format!(
                "would snapshot {} ({}): {}",
                p.target, p.kind, p.source
            ));
        }
        ctx.say(format!(
            "dry run: would snapshot {}{}; nothing was read or written",
            output::counted(planned.targets.len() as u64, "target"),
            if opts.tags.is_empty() {
                String::new()
            } else {
                format!(", tagged {}", opts.tags.join(","))
            }
        ));
        return Ok(());
    }
    let result = ripcord_ops::snapshot::snapshot(ctx, &opts)?;
    if ctx.json {
        output::print_json(&result);
    } else {
        ctx.say(format!(
            "snapshot {} saved: {} ({}, {} unchanged), {} new, {} stored, in {:.2}s",
            result.short_id,
            output::bytes(result.size),
            output::counted(result.files, "file"),
            result.unchanged_files,
            output::bytes(result.stats.new_bytes),
            output::bytes(result.stats.stored_bytes),
            result.seconds
        ));
        if result.tables_reused > 0 {
            ctx.say(format!(
                "  database tables: {} read, {} unchanged since the previous snapshot (not read)",
                result.tables_read, result.tables_reused
            ));
        }
    }
    Ok(())
}

/// `--tables` values, each a comma-separated list (commas inside quoted
/// names kept).
fn table_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| ripcord_core::table_name::split_list(v))
        .collect()
}

pub fn restore_options(args: &RestoreArgs) -> RestoreOptions {
    RestoreOptions {
        snapshot: args.snapshot.clone(),
        targets: args.select.targets.clone(),
        tags: args.select.tags.clone(),
        dry_run: args.dry_run,
        into: args.into.clone(),
        tables: table_list(&args.tables),
        include: args.include.clone(),
        partial: args.partial,
        create: args.create,
        clean: args.clean,
        jobs: args.jobs.unwrap_or(0),
    }
}

pub fn restore(ctx: &Ctx, args: &RestoreArgs) -> Result<()> {
    let argv = crate::commands::argv("restore");
    let result = ripcord_ops::way_back::restore(
        ctx,
        &restore_options(args),
        &ripcord_ops::way_back::Call {
            command: "restore",
            args: &argv,
            reason: args.reason.as_deref(),
            trigger: None,
            run: None,
        },
    )?;
    if ctx.json {
        output::print_json(&result);
        return complete(&result);
    }
    if result.dry_run {
        for t in &result.targets {
            ctx.say(format!(
                "would restore {} ({}) {} {}",
                t.name,
                t.kind,
                if t.in_place {
                    "in place, after a safety snapshot, at"
                } else {
                    "into"
                },
                t.destination.display()
            ));
        }
        ctx.say(format!(
            "dry run: {} of snapshot {} would be restored; nothing was changed",
            output::counted(result.targets.len() as u64, "target"),
            result.snapshot.short()
        ));
        return Ok(());
    }
    if let Some(s) = result.safety_snapshot {
        ctx.say(format!(
            "safety snapshot {} holds the state before this restore",
            s.short()
        ));
    }
    for t in &result.targets {
        let mut line = if !t.tables.is_empty() {
            format!(
                "restored {} of {} to {}: {}",
                if t.tables.len() == 1 {
                    "table"
                } else {
                    "tables"
                },
                t.name,
                t.destination.display(),
                t.tables
                    .iter()
                    .map(|tb| tb.table.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!(
                "restored {} to {}: {}, {}",
                t.name,
                t.destination.display(),
                output::counted(
                    t.stats.files,
                    if t.kind == "postgres" {
                        "table"
                    } else {
                        "file"
                    }
                ),
                output::bytes(t.stats.bytes)
            )
        };
        if t.stats.tables_verified > 0 {
            line.push_str(&format!(
                ", {} the snapshot's row counts and checksums",
                output::count(t.stats.tables_verified, "table matches", "tables match")
            ));
        }
        ctx.say(line);
        if let Some(inc) = &t.included {
            ctx.say(format!(
                "  {} replaced, {} added; everything not included was left as it was",
                inc.replaced, inc.added
            ));
        }
        if !t.kept.is_empty() {
            let shown: Vec<&str> = t.kept.iter().take(5).map(String::as_str).collect();
            ctx.say(format!(
                "  kept {} that the snapshot does not manage: {}{}",
                output::count(t.kept.len() as u64, "live entry", "live entries"),
                shown.join(", "),
                if t.kept.len() > 5 { ", ..." } else { "" }
            ));
        }
        for s in &t.stats.skipped {
            ctx.warn(format!("not restored (damaged): {s}"));
        }
    }
    for db in &result.databases {
        if ctx.quiet || db.checks.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = db
            .checks
            .iter()
            .map(|c| {
                vec![
                    if c.checksum_matches && c.rows == c.expected_rows {
                        "ok".into()
                    } else {
                        "MISMATCH".into()
                    },
                    c.table.clone(),
                    c.rows.to_string(),
                    c.expected_rows.to_string(),
                ]
            })
            .collect();
        output::table_indented(
            2,
            &["CHECK", "TABLE", "ROWS", "IN SNAPSHOT"],
            &[false, false, true, true],
            &rows,
        );
    }
    for m in &result.migrations {
        if let (true, Some(after)) = (m.differs, &m.after) {
            ctx.say(format!("{} now records migration state {after}", m.target));
        }
    }
    ctx.say(format!(
        "restore of {} finished in {:.2}s{}",
        result.snapshot.short(),
        result.seconds,
        result.run.as_ref().map_or(String::new(), |r| format!(
            "; run {r} (`ripcord report {r}`)"
        ))
    ));
    complete(&result)
}

/// A partial restore is a failure, with --json as without.
fn complete(result: &RestoreResult) -> Result<()> {
    if result.targets.iter().any(|t| !t.stats.skipped.is_empty()) {
        return Err(crate::CliError::Failed {
            message: "the restore is partial: damaged files were skipped".into(),
        }
        .into());
    }
    Ok(())
}
