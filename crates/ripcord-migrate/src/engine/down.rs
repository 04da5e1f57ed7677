//! `migrate down` / `rollback`, and the revert of one change that `up` also
//! uses when a change outside a transaction fails.

use std::time::Instant;

use ripcord_core::failpoint;

use super::capture;
use super::db::{self, drop_tables, execute, execute_each, Conn, Database};
use super::net::{SafetyNet, Unusable};
use super::prepare::{self, Prepared};
use super::resolve::clean_session;
use super::revert_lock;
use super::undo::Undo;
use super::{DownChange, DownOptions, DownReport, DroppedTable, How, Note, DEFAULT_LOCK_TIMEOUT};
use crate::analyze::{Dialect, Kind};
use crate::tracking::{AppliedChange, ChangeState, EventKind, RecordState, RevertPlan};
use crate::{Change, Error, Plan, Result};

/// Reverts the changes applied after `opts.to`, newest first. Every check
/// runs before the first revert: a refusal changes nothing.
pub fn down(
    db: &mut dyn Database,
    net: &mut dyn SafetyNet,
    plan: &Plan,
    opts: &DownOptions,
    note: &mut dyn FnMut(Note<'_>),
) -> Result<DownReport> {
    let order = plan.order()?;
    let root = opts.to.eq_ignore_ascii_case("@root");
    let target = if root {
        None
    } else {
        Some(plan.resolve_target(&opts.to)?)
    };
    let _lock = db.lock()?;
    let applied = prepare::recorded(db)?;
    let status = prepare::status(plan, &applied);
    prepare::check_history(plan, &status, opts.allow_drift, true)?;

    // The versioned history, oldest first; repeatable changes stay.
    let history: Vec<_> = applied
        .iter()
        .filter(|a| plan.change(&a.name).is_some_and(|c| !c.repeatable))
        .collect();
    let keep = match &target {
        None => 0,
        Some(t) => history
            .iter()
            .position(|a| a.name == t.change())
            .map_or(history.len(), |i| i + 1),
    };
    let options = prepare::options(db);
    let mut work = Vec::new();
    for record in history[keep..].iter().rev() {
        let (i, change) = order
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == record.name)
            .ok_or_else(|| Error::NotRecorded {
                change: record.name.clone(),
            })?;
        let drifted = status
            .change(&record.name)
            .is_some_and(|s| s.state == ChangeState::Drifted);
        let p = undo_for(change, i as i32, record, drifted, &options, note)?;
        let dirty = record.state == RecordState::Dirty;
        let how = decide(&p, record.safety_snapshot.as_deref(), dirty)?;
        work.push((p, record.safety_snapshot.clone(), dirty, how));
    }
    let checks: Vec<_> = work
        .iter()
        .filter(|(_, _, _, how)| matches!(how, How::DownScript | How::DownScriptAndSnapshot))
        .filter_map(|(p, ..)| {
            let unparsed = p.down_analysis.as_ref()?.unparsed.as_slice();
            Some((p.change, p.down.as_ref()?, unparsed))
        })
        .collect();
    prepare::check_scripts(db, &checks)?;
    // Only reverts from a snapshot need the repository, and every snapshot
    // they need must be there and readable: finding one gone half-way would
    // leave the database half rolled back.
    let needed: Vec<(&str, &str)> = work
        .iter()
        .filter(|(_, _, _, how)| matches!(how, How::Snapshot | How::DownScriptAndSnapshot))
        .filter_map(|(p, snapshot, ..)| Some((p.name(), snapshot.as_deref()?)))
        .collect();
    if !needed.is_empty() {
        net.preflight(Some(&std::collections::BTreeSet::new()))?;
        let unusable = net.check(&needed)?;
        if !unusable.is_empty() {
            return Err(unusable_snapshots(&unusable));
        }
    }

    let mut report = DownReport {
        dry_run: opts.dry_run,
        target: match &target {
            None => "@root".into(),
            Some(t) => t.change().into(),
        },
        changes: work
            .iter()
            .map(|(p, snapshot, dirty, how)| DownChange {
                name: p.name().into(),
                how: *how,
                snapshot: snapshot.clone(),
                was_dirty: *dirty,
                tables: Vec::new(),
                dropped_tables: Vec::new(),
                schema_restored: Vec::new(),
                down_destroys: down_destroys(p, *how),
                recorded_plan: p.recorded,
                duration_ms: None,
            })
            .collect(),
    };
    if opts.dry_run {
        return Ok(report);
    }
    capture::resume(db, net, note);
    capture::clear(db, opts.lock_timeout())?;
    for ((p, snapshot, dirty, _), out) in work.iter().zip(report.changes.iter_mut()) {
        *out = revert_one_waiting(
            db,
            net,
            p,
            snapshot.as_deref(),
            *dirty,
            &opts.actor,
            opts.lock_timeout(),
        )?;
        note(Note::Reverted(out));
    }
    Ok(report)
}

/// How to undo a recorded change: by the plan recorded when it was applied;
/// for a change recorded without one, by its files as they are now, with a
/// warning (and a louder one when they were edited since).
fn undo_for<'p>(
    change: &'p Change,
    order: i32,
    record: &AppliedChange,
    drifted: bool,
    options: &crate::analyze::Options,
    note: &mut dyn FnMut(Note<'_>),
) -> Result<Undo<'p>> {
    if let Some(text) = &record.revert_plan {
        let plan = RevertPlan::parse(text).map_err(|e| Error::Refused {
            message: format!(
                "change {}: how to revert it was recorded when it was applied, and that record \
                 cannot be read: {e}",
                change.name
            ),
            hint: "run `down` with the ripcord version that applied it; nothing was reverted"
                .into(),
        })?;
        return Ok(Undo::from_record(
            change,
            order,
            &record.checksum,
            plan,
            options,
        ));
    }
    let edited = if drifted {
        ", which were edited after it was applied: the revert may not match what was applied"
    } else {
        ""
    };
    let text = format!(
        "change {} was applied by a ripcord that did not record how to revert it; its revert \
         follows its files as they are now{edited}",
        change.name
    );
    note(Note::Warning(&text));
    let mut undo = Undo::from_files(&Prepared::new(change, order, options));
    undo.checksum = record.checksum.clone();
    Ok(undo)
}

/// The refusal when safety snapshots a revert needs cannot be used.
fn unusable_snapshots(unusable: &[Unusable]) -> Error {
    let lines: Vec<String> = unusable
        .iter()
        .map(|u| {
            format!(
                "change {} needs safety snapshot {}, which {}",
                u.change, u.snapshot, u.reason
            )
        })
        .collect();
    // The newest change that cannot be reverted (they are listed newest
    // first): stopping there reverts every change after it, all of which can.
    let stop = &unusable.first().expect("not empty").change;
    Error::Refused {
        message: format!("pre-flight: nothing was reverted: {}", lines.join("; ")),
        hint: format!(
            "`migrate down --to {stop}` reverts only the changes after it; to undo {stop} too, \
             restore the database from an older snapshot with `ripcord restore`, or bring the \
             snapshot back (`ripcord verify` tells what is damaged)"
        ),
    }
}

/// How a change can be undone, or why it cannot.
fn decide(p: &Undo, snapshot: Option<&str>, dirty: bool) -> Result<How> {
    let has_down = p.down.is_some();
    let destructive = p.destructive;
    Ok(match (snapshot.is_some(), has_down) {
        // A half-applied change may not match what its down script expects;
        // the snapshot puts its tables back whatever state they are in.
        (true, _) if dirty => How::Snapshot,
        (true, true) if destructive => How::DownScriptAndSnapshot,
        (_, true) => How::DownScript,
        (true, false) => How::Snapshot,
        (false, false) if p.schema.is_some() => How::SchemaSnapshot,
        (false, false) if p.certain && p.tables.is_empty() => How::DropCreated,
        (false, false) => {
            return Err(Error::Irreversible {
                change: p.name().into(),
                reason: "it has no down script and no safety snapshot".into(),
            })
        }
    })
}

/// Reverts one recorded change and forgets it in the tracking table,
/// waiting the default lock timeout for other writers.
pub(crate) fn revert_one(
    db: &mut dyn Database,
    net: &mut dyn SafetyNet,
    p: &Undo,
    snapshot: Option<&str>,
    dirty: bool,
    actor: &str,
) -> Result<DownChange> {
    revert_one_waiting(db, net, p, snapshot, dirty, actor, DEFAULT_LOCK_TIMEOUT)
}

/// Reverts one recorded change and forgets it in the tracking table. On
/// SQLite its transaction takes the write lock at once, waiting at most
/// `timeout` for other writers: a deferred one that read the tables first
/// could not write once a writer had committed since (`database is
/// locked`, whatever the busy timeout).
fn revert_one_waiting(
    db: &mut dyn Database,
    net: &mut dyn SafetyNet,
    p: &Undo,
    snapshot: Option<&str>,
    dirty: bool,
    actor: &str,
    timeout: std::time::Duration,
) -> Result<DownChange> {
    let name = p.name();
    let how = decide(p, snapshot, dirty)?;
    let started = Instant::now();
    let run_down = matches!(how, How::DownScript | How::DownScriptAndSnapshot);
    let use_snapshot = matches!(how, How::DownScriptAndSnapshot | How::Snapshot);
    let drop_created = matches!(how, How::Snapshot | How::DropCreated | How::SchemaSnapshot);
    // A clean session, as the change had.
    clean_session(db)?;
    // A PostgreSQL safety snapshot holds just the tables the change touched,
    // resolved when it was applied: all of them go back. Resolving the
    // names again now could find another table (one the change dropped
    // shadowed by a same-named one later in the search_path).
    let tables = (p.certain && db.dialect() != Dialect::Postgres).then_some(&p.tables);
    let mut out = DownChange {
        name: name.into(),
        how,
        snapshot: snapshot.map(str::to_owned),
        was_dirty: dirty,
        tables: Vec::new(),
        dropped_tables: Vec::new(),
        schema_restored: Vec::new(),
        down_destroys: down_destroys(p, how),
        recorded_plan: p.recorded,
        duration_ms: None,
    };
    let failed = |detail: String| Error::Revert {
        change: name.into(),
        detail,
    };

    let down_sql = p.down.as_ref().map(|s| s.sql.as_str()).filter(|_| run_down);
    if let (Some(sql), false) = (down_sql, p.down_transactional) {
        // Outside a transaction: the row says dirty until the end.
        // The row keeps its recorded checksum and plan.
        db.record_start(
            name,
            p.order,
            &p.checksum,
            actor,
            snapshot.map(str::to_owned),
        )?;
        execute_each(db, sql, |_| failpoint::hit("migrate-statement-ran"))
            .map_err(|e| failed(format!("down script: {e}; the change is marked dirty")))?;
        failpoint::hit("migrate-down-script-ran");
    }

    // The tables the revert drops or puts back, locked first (PostgreSQL).
    let locks: Vec<&crate::analyze::TableName> = match (use_snapshot, drop_created) {
        (true, true) => p.tables.iter().chain(&p.created).collect(),
        (true, false) => p.tables.iter().collect(),
        (false, true) => p.created.iter().collect(),
        (false, false) => Vec::new(),
    };
    failpoint::hit("migrate-revert-starting");
    let result = (|| -> Result<bool> {
        match (down_sql, p.down_transactional, db.dialect()) {
            // BEGIN rides along with the script: one round trip less.
            (Some(sql), true, Dialect::Postgres) if locks.is_empty() => {
                execute(db, &format!("BEGIN;{sql}"))
                    .map_err(|e| failed(format!("down script: {e}")))?
            }
            (sql, transactional, _) => {
                begin_revert(db, timeout)?;
                revert_lock::lock(db, &locks, timeout)?;
                if let (Some(sql), true) = (sql, transactional) {
                    execute(db, sql).map_err(|e| failed(format!("down script: {e}")))?
                }
            }
        }
        if drop_created {
            out.dropped_tables = drop_tables(db, name, &p.created)?
                .into_iter()
                .map(|(table, rows)| DroppedTable { table, rows })
                .collect();
        }
        // Its definitions back, after the tables it created (and what hung
        // on them) are gone.
        if let (How::SchemaSnapshot, Some(schema)) = (how, &p.schema) {
            for statement in &schema.statements {
                execute(db, statement)
                    .map_err(|e| failed(format!("schema-only snapshot: {statement}: {e}")))?;
            }
            out.schema_restored = schema.objects.clone();
        }
        if let (true, Some(id)) = (use_snapshot, snapshot) {
            out.tables = net.revert(db.conn(), id, tables, name)?;
        }
        capture::forget(db, name)?;
        failpoint::hit("migrate-revert-ran");
        let detail = revert_detail(&out);
        if let Some(record) = db.reverted_sql(name, actor, &detail) {
            // The tracking rows and COMMIT in one round trip.
            execute(db, &format!("{record};\nCOMMIT"))
                .map_err(|e| failed(format!("recording the revert: {e}")))?;
            return Ok(true);
        }
        db.record_reverted(name)?;
        db.record_event(name, EventKind::Revert, actor, &detail)?;
        Ok(false)
    })();
    match result {
        Ok(true) => {}
        Ok(false) => db::commit(db)?,
        Err(e) => {
            let _ = db::rollback(db);
            return Err(e);
        }
    }
    out.duration_ms = Some(started.elapsed().as_millis() as u64);
    Ok(out)
}

/// Begins the transaction of a revert; on SQLite with the write lock.
fn begin_revert(db: &mut dyn Database, timeout: std::time::Duration) -> Result<()> {
    match db.conn() {
        Conn::Postgres(_) => db::begin(db),
        Conn::Sqlite(conn) => capture::sqlite_begin_immediate(conn, timeout, "start the revert"),
    }
}

/// The destructive statements of the down script, when it runs.
fn down_destroys(p: &Undo, how: How) -> Vec<String> {
    let runs = matches!(how, How::DownScript | How::DownScriptAndSnapshot);
    match (&p.down_analysis, runs) {
        (Some(analysis), true) => analysis
            .of_kind(Kind::Destructive)
            .map(|f| format!("line {}: {}", f.line, f.detail))
            .collect(),
        _ => Vec::new(),
    }
}

fn revert_detail(out: &DownChange) -> String {
    let mut text = format!("reverted {}", out.how.describe());
    if let Some(id) = &out.snapshot {
        text.push_str(&format!("; safety snapshot {id}"));
    }
    for t in &out.tables {
        text.push_str(&format!(
            "; {}: {} rows restored, {} kept, {} to review, {} discarded",
            t.table, t.restored_rows, t.kept_rows, t.review_rows, t.discarded_rows
        ));
        if t.three_way {
            text.push_str(&format!(
                " ({} inserted, {} updated, {} deleted since, {} deletions kept, {} conflicts)",
                t.inserted_since, t.updated_since, t.deleted_since, t.deleted_kept, t.conflicts
            ));
        }
    }
    for t in &out.dropped_tables {
        text.push_str(&format!("; dropped {} ({} rows)", t.table, t.rows));
    }
    text
}
