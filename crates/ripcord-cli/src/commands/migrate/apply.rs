//! `ripcord migrate up`, `migrate down` and `rollback`.

use anyhow::Result;
use ripcord_core::config::{OnConflict, SnapshotWhen, TargetConfig};
use ripcord_migrate::engine::{
    self, Conn, Database, DownChange, DownOptions, DownReport, Note, Scope, UpOptions,
};
use ripcord_migrate::tracking::{PostgresTracker, SqliteTracker};

use super::net::{Repo, RepoNet};
use super::{setup, Setup};
use crate::cli::{DownArgs, UpArgs};
use crate::ctx::Ctx;
use crate::{output, CliError};

pub fn up(ctx: &Ctx, args: &UpArgs) -> Result<()> {
    let s = setup(ctx, &args.common)?;
    let (name, target) = database_target(&s)?;
    let mut db = open(&name, &target, true)?;
    let mut net = RepoNet {
        ctx,
        repo: Repo::Lazy(None, "migrate up"),
        target: name.clone(),
        policy: None,
    };
    let opts = UpOptions {
        to: args.to.clone(),
        dry_run: args.dry_run,
        allow_drift: args.allow_drift,
        actor: actor(),
        snapshot_always: ctx
            .config
            .migrations
            .as_ref()
            .is_some_and(|m| m.snapshot == SnapshotWhen::Always),
    };
    let report = engine::up(&mut *db, &mut net, &s.plan, &opts, &mut |n| say(ctx, n))?;
    if ctx.json {
        output::print_json(&report);
        return Ok(());
    }
    if report.changes.is_empty() {
        ctx.say(format!("target {name} is up to date: nothing to apply"));
    } else if report.dry_run {
        ctx.say(format!(
            "dry run: {} change(s) would be applied to {name}; nothing was changed",
            report.changes.len()
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
            "{} change(s) applied to {name}",
            report.changes.len()
        ));
    }
    Ok(())
}

/// `migrate down` and `rollback` are the same command.
pub fn down(ctx: &Ctx, args: &DownArgs) -> Result<()> {
    let s = setup(ctx, &args.common)?;
    let (name, target) = database_target(&s)?;
    let policy = args
        .on_conflict
        .as_deref()
        .map(|p| p.parse::<OnConflict>())
        .transpose()
        .map_err(|e| crate::usage(e, "--on-conflict takes snapshot, keep-new or review"))?;
    let mut db = open(&name, &target, false)?;
    let mut net = RepoNet {
        ctx,
        repo: Repo::Lazy(None, "migrate down"),
        target: name.clone(),
        policy,
    };
    let opts = DownOptions {
        to: args.to.clone(),
        dry_run: args.dry_run,
        allow_drift: args.allow_drift,
        actor: actor(),
    };
    let report = engine::down(&mut *db, &mut net, &s.plan, &opts, &mut |n| say(ctx, n))?;
    let review = if report.dry_run {
        Vec::new()
    } else {
        review_rows(&mut *db, &report)
    };
    if ctx.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            report: &'a DownReport,
            rows_lost: u64,
            review: &'a [(String, String, String)],
        }
        output::print_json(&Out {
            report: &report,
            rows_lost: report.changes.iter().map(DownChange::rows_lost).sum(),
            review: &review,
        });
        return Ok(());
    }
    summarize_down(ctx, &name, &report, &review);
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
            "dry run: {} change(s) would be reverted on {name}, newest first; nothing was changed",
            report.changes.len()
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
        "{} change(s) reverted on {name}; now at {}",
        report.changes.len(),
        if report.target == "@root" {
            "the start of the plan".to_string()
        } else {
            report.target.clone()
        }
    ));
    if !tables.is_empty() {
        ctx.say(format!(
            "restored from safety snapshots: {} table(s) ({}), {} row(s)",
            tables.len(),
            tables.join(", "),
            sum(|t| t.restored_rows)
        ));
        ctx.say(format!(
            "rows written since the changes: {} kept, {} set aside for review, {} discarded",
            sum(|t| t.kept_rows),
            sum(|t| t.review_rows),
            sum(|t| t.discarded_rows)
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
            "data loss: {lost} row(s) (rows written since that on_conflict = snapshot discarded, \
             and rows of tables the changes had created)"
        ));
    }
}

/// The rows this run set aside for review, to print them.
fn review_rows(db: &mut dyn Database, report: &DownReport) -> Vec<(String, String, String)> {
    let changes: Vec<String> = report
        .changes
        .iter()
        .filter(|c| c.tables.iter().any(|t| t.review_rows > 0))
        .map(|c| c.name.clone())
        .collect();
    if changes.is_empty() {
        return Vec::new();
    }
    const LIMIT: i64 = 50;
    match db.conn() {
        Conn::Postgres(client) => client
            .query(
                "SELECT table_name, change, row_data::text FROM ripcord.review
                 WHERE change = ANY($1) ORDER BY id DESC LIMIT $2",
                &[&changes, &LIMIT],
            )
            .map(|rows| {
                rows.iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2)))
                    .collect()
            })
            .unwrap_or_default(),
        Conn::Sqlite(conn) => {
            // The names travel as one JSON array parameter.
            let names = serde_json::to_string(&changes).unwrap_or_default();
            conn.prepare(
                "SELECT table_name, change, row_data FROM ripcord_review
                 WHERE change IN (SELECT value FROM json_each(?1)) ORDER BY id DESC LIMIT ?2",
            )
            .and_then(|mut st| {
                st.query_map(rusqlite::params![names, LIMIT], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_default()
        }
    }
}

fn say(ctx: &Ctx, note: Note<'_>) {
    match note {
        Note::Snapshot {
            change,
            id,
            scope,
            uncertain,
        } => {
            let short: String = id.chars().take(8).collect();
            ctx.say(format!(
                "safety snapshot {short} of {} before {change}",
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
        Note::Reverted(c) => {
            ctx.say(format!(
                "reverted {} {}{}",
                c.name,
                c.how.describe(),
                if c.was_dirty { " (it was dirty)" } else { "" }
            ));
            for t in &c.tables {
                let mut line = format!("  {}: {} row(s) restored", t.table, t.restored_rows);
                if t.recreated {
                    line.push_str(", table recreated");
                }
                if t.kept_rows > 0 {
                    line.push_str(&format!(", {} newer row(s) kept", t.kept_rows));
                }
                if t.review_rows > 0 {
                    line.push_str(&format!(
                        ", {} newer row(s) set aside for review",
                        t.review_rows
                    ));
                }
                if t.discarded_rows > 0 {
                    line.push_str(&format!(", {} newer row(s) discarded", t.discarded_rows));
                }
                if t.changed_rows > 0 {
                    line.push_str(&format!(
                        ", {} row(s) changed since put back to their values before the change",
                        t.changed_rows
                    ));
                }
                ctx.say(line);
            }
            for t in &c.dropped_tables {
                ctx.say(format!("  dropped {} ({} row(s))", t.table, t.rows));
            }
            for what in &c.down_destroys {
                ctx.say(format!("  its down script, as written, {what}"));
            }
        }
    }
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
        Scope::Database => "the whole database".into(),
    }
}

/// `user@host`, recorded with each change.
pub(crate) fn actor() -> String {
    format!("{}@{}", ripcord_repo::username(), ripcord_repo::hostname())
}

pub(super) fn database_target(s: &Setup) -> Result<(String, TargetConfig)> {
    s.target.clone().ok_or_else(|| {
        crate::usage(
            "[migrations] names no database target",
            "set [migrations] target = \"NAME\" to a configured postgres or sqlite target",
        )
    })
}

/// The database, connected; a failure is a failed pre-flight. A missing
/// SQLite file is created only when `create` is asked for here (by `up`) and
/// allowed by the target's `create = true`.
pub(super) fn open(name: &str, target: &TargetConfig, create: bool) -> Result<Box<dyn Database>> {
    let refused = |e: ripcord_migrate::Error| -> anyhow::Error {
        CliError::Refused {
            message: format!("pre-flight: cannot open target {name}: {e}"),
            hint: "check the target's url or path in ripcord.toml and that the database is up"
                .into(),
        }
        .into()
    };
    match target {
        TargetConfig::Postgres { url, .. } => {
            Ok(Box::new(PostgresTracker::connect(url).map_err(refused)?))
        }
        TargetConfig::Sqlite {
            path,
            create: may_create,
        } => {
            ripcord_targets::sqlite::require_file(path, create && *may_create)?;
            Ok(Box::new(SqliteTracker::open(path).map_err(refused)?))
        }
        TargetConfig::Dir { .. } => Err(crate::usage(
            format!("target {name} is a dir target, not a database"),
            "name a postgres or sqlite target in [migrations] target",
        )),
    }
}
