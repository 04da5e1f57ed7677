//! `migrate up`.

use std::collections::BTreeSet;
use std::time::Instant;

use ripcord_core::failpoint;

use super::capture::{self, Capture};
use super::db::{self, execute, execute_each, Database};
use super::deadline::Deadline;
use super::down::revert_one;
use super::net::SafetyNet;
use super::prepare::{self, Prepared};
use super::resolve::{asks_server, clean_session, qualified, CLEAN};
use super::schema;
use super::undo::{self, Undo};
use super::{Note, Scope, UpChange, UpOptions, UpReport};
use crate::analyze::{Analysis, Dialect, TableName};
use crate::tracking::{ChangeState, EventKind, RecordState};
use crate::{Error, Plan, Result};

/// Applies the pending changes of `plan` up to `opts.to`. Every check runs
/// before the first change: a refusal changes nothing.
pub fn up(
    db: &mut dyn Database,
    net: &mut dyn SafetyNet,
    plan: &Plan,
    opts: &UpOptions,
    note: &mut dyn FnMut(Note<'_>),
) -> Result<UpReport> {
    let order = plan.order()?;
    let target = opts
        .to
        .as_deref()
        .map(|to| plan.resolve_target(to))
        .transpose()?;
    let _lock = db.lock()?;
    let applied = prepare::recorded(db)?;
    let status = prepare::status(plan, &applied);
    prepare::check_history(plan, &status, opts.allow_drift, false)?;

    let last = match &target {
        Some(t) => order
            .iter()
            .position(|c| c.name == t.change())
            .unwrap_or(order.len() - 1),
        None => order.len().saturating_sub(1),
    };
    let options = prepare::options(db);
    let mut pending: Vec<Prepared> = order
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            let state = status.change(&c.name).map(|s| s.state);
            let runs = state == Some(ChangeState::Pending)
                || c.repeatable && state == Some(ChangeState::Drifted)
                || c.run_always;
            // Repeatable changes run after the versioned ones, whatever the target.
            runs && (*i <= last || c.repeatable && target.is_none())
        })
        .map(|(i, c)| Prepared::new(c, i as i32, &options))
        .collect();
    // Tables as the server resolves them, each change from a clean session;
    // again at each change's turn, once the changes before it have run.
    // Resolving leaves the session clean (what it replays is rolled back),
    // and nothing runs in between: one reset serves them all.
    let originals: Vec<Analysis> = pending.iter().map(|p| p.analysis.clone()).collect();
    clean_session(db)?;
    for p in pending.iter_mut() {
        p.analysis = qualified(db, &p.analysis)?;
    }

    let checks: Vec<_> = pending
        .iter()
        .flat_map(|p| {
            let mut v = vec![(p.change, &p.change.up, p.analysis.unparsed.as_slice())];
            if let Some(script) = &p.change.verify {
                v.push((p.change, script, p.verify_unparsed.as_slice()));
            }
            v
        })
        .collect();
    prepare::check_scripts(db, &checks)?;
    // A change whose way back would be a schema-only snapshot that cannot
    // record all it changes is refused before anything runs: a whole-
    // database data snapshot is not the way back for definitions.
    for p in &pending {
        if let Some(why) = p.schema_refusal(options.dialect) {
            return Err(Error::Refused {
                message: format!(
                    "change {} has no down script, and its statements change no rows, so its \
                     way back is a schema-only snapshot; but {why}; nothing was applied",
                    p.name()
                ),
                hint: format!(
                    "write a down script for {} (it then needs no snapshot at all)",
                    p.name()
                ),
            });
        }
    }

    let mut report = UpReport {
        dry_run: opts.dry_run,
        target: target.as_ref().map(|t| t.change().to_string()),
        changes: pending
            .iter()
            .map(|p| planned(p, opts.snapshot_always))
            .collect(),
    };
    // The repository must take the snapshots, and they must fit: all
    // touched tables, or the whole database. A run that needs none does not
    // touch the repository.
    let mut all: BTreeSet<TableName> = BTreeSet::new();
    let mut whole = false;
    let mut needed = false;
    for (p, out) in pending.iter().zip(&report.changes) {
        match out.snapshot_scope {
            Scope::Tables(_) => all.extend(p.analysis.tables.iter().cloned()),
            Scope::Database => whole = true,
            Scope::None | Scope::DownScript(_) | Scope::Schema(_) => continue,
        }
        needed = true;
    }
    if needed {
        net.preflight(if whole { None } else { Some(&all) })?;
    }
    if opts.dry_run || pending.is_empty() {
        return Ok(report);
    }
    db.ensure_schema()?;
    capture::resume(db, net, note);
    capture::clear(db, opts.lock_timeout())?;
    for ((p, out), original) in pending
        .iter_mut()
        .zip(report.changes.iter_mut())
        .zip(&originals)
    {
        // A change whose names need no server starts its transaction and
        // cleans its session in one round trip.
        let clean_later = !asks_server(db, original);
        if !clean_later {
            clean_session(db)?;
        }
        p.analysis = qualified(db, original)?;
        *out = planned(p, opts.snapshot_always);
        apply_one(db, net, p, out, opts, clean_later, note)?;
        note(Note::Applied(out));
    }
    Ok(report)
}

/// The step name of a change whose schema-only snapshot cannot be taken.
const SCHEMA_REFUSED: &str = "schema-only snapshot";

fn planned(p: &Prepared, snapshot_always: bool) -> UpChange {
    let scope = p.scope(snapshot_always);
    UpChange {
        name: p.name().to_string(),
        transactional: p.transactional,
        snapshot_scope: scope,
        uncertain: p.uncertain(),
        verify: p.verify.is_some(),
        snapshot: None,
        unprotected: Vec::new(),
        schema_snapshot: Vec::new(),
        duration_ms: None,
        fingerprint_ms: None,
        snapshot_tables: None,
    }
}

fn apply_one(
    db: &mut dyn Database,
    net: &mut dyn SafetyNet,
    p: &Prepared,
    out: &mut UpChange,
    opts: &UpOptions,
    clean_later: bool,
    note: &mut dyn FnMut(Note<'_>),
) -> Result<()> {
    let name = p.name();
    let timeout = opts.lock_timeout();
    let plain = matches!(out.snapshot_scope, Scope::None | Scope::DownScript(_));
    if clean_later && !(plain && p.transactional && db.dialect() == Dialect::Postgres) {
        clean_session(db)?;
    }
    // Writes during the snapshot are logged from before it starts, and
    // copied under a short lock once the change's transaction has begun.
    let mut cap = match &out.snapshot_scope {
        Scope::None | Scope::DownScript(_) | Scope::Schema(_) => Capture::default(),
        Scope::Tables(_) => capture::install(db, Some(&p.analysis.tables), timeout)?,
        Scope::Database => capture::install(db, None, timeout)?,
    };
    failpoint::hit("migrate-capture-installed");
    let snapshot = match &out.snapshot_scope {
        Scope::None | Scope::DownScript(_) | Scope::Schema(_) => Ok(None),
        Scope::Tables(_) => net.snapshot(name, Some(&p.analysis.tables)).map(Some),
        Scope::Database => {
            // The snapshot waits for every session's statistics to be
            // flushed; this one's are, once this statement ends.
            if let db::Conn::Postgres(client) = db.conn() {
                let _ = client.batch_execute(ripcord_core::pg_stats::FLUSH_MARKER);
            }
            net.snapshot(name, None).map(Some)
        }
    };
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(e) => {
            capture::finish(db, &cap, timeout);
            return Err(e);
        }
    };
    if snapshot.is_some() {
        out.snapshot_tables = net.tables_taken();
    }
    if let Some(id) = &snapshot {
        note(Note::Snapshot {
            change: name,
            id,
            scope: &out.snapshot_scope,
            uncertain: out.uncertain.as_deref(),
            tables: out.snapshot_tables,
        });
    }
    out.snapshot = snapshot.clone();
    out.unprotected = net.unprotected();
    failpoint::hit("migrate-snapshot-taken");
    let started = Instant::now();
    let checksum = &p.change.up.checksum;
    // Recorded with the change: `down` follows it, whatever the files say later.
    let mut revert_plan = undo::revert_plan(p, &p.analysis.tables);
    let schema_only = matches!(out.snapshot_scope, Scope::Schema(_));

    if p.transactional {
        let mut watched = Vec::new();
        let mut schema_objects = Vec::new();
        let result = (|| -> Result<std::result::Result<bool, (String, String)>> {
            if clean_later && plain && db.dialect() == Dialect::Postgres {
                db::clean_and_begin(db, CLEAN)?;
            } else {
                db::begin_change(db, timeout)?;
            }
            capture::seal(db, name, &cap, timeout)?;
            let before = if schema_only {
                Some(schema::facts(db)?)
            } else {
                None
            };
            let deadline = Deadline::arm(db.conn(), opts.change_timeout);
            let ran = execute(db, &p.up);
            if let Some(d) = deadline {
                if d.disarm() {
                    return Ok(Err(("up".into(), d.message())));
                }
            }
            if let Err(e) = ran {
                return Ok(Err(("up".into(), e.to_string())));
            }
            // What the change did to the definitions, read in its own
            // transaction: nothing else can have changed them in between.
            if let Some(before) = before {
                let after = schema::facts(db)?;
                match schema::undo(&before, &after) {
                    Ok(undo) => {
                        schema_objects = undo.objects.clone();
                        revert_plan.schema = Some(undo);
                    }
                    Err(what) => return Ok(Err((SCHEMA_REFUSED.into(), what))),
                }
            }
            failpoint::hit("migrate-change-ran");
            // What the change left is fingerprinted after the commit, for a
            // three-way merge on rollback; writes from then on are logged.
            if let (Scope::Tables(_), Some(_)) = (&out.snapshot_scope, &snapshot) {
                watched = capture::watch(db, name, &mut cap, &p.analysis.tables, timeout)?;
            }
            let record = db
                .applied_sql(
                    name,
                    p.order,
                    checksum,
                    &opts.actor,
                    snapshot.as_deref(),
                    started.elapsed(),
                    &deploy_detail(out),
                )
                .map(|record| match db.plan_sql(name, &revert_plan) {
                    Some(plan) => format!("{record};\n{plan}"),
                    None => record,
                });
            if let Some(record) = record {
                // Verify, the tracking row and COMMIT in one round trip; an
                // error stops the batch before COMMIT.
                let (batch, step) = match &p.verify {
                    Some(verify) => (format!("{verify}\n;\n{record};\nCOMMIT"), "verify"),
                    None => (format!("{record};\nCOMMIT"), "recording"),
                };
                return Ok(match execute(db, &batch) {
                    Ok(()) => Ok(true),
                    Err(e) => Err((step.into(), e.to_string())),
                });
            }
            if let Some(verify) = &p.verify {
                if let Err(e) = execute(db, verify) {
                    return Ok(Err(("verify".into(), e.to_string())));
                }
            }
            db.record_applied(
                name,
                p.order,
                checksum,
                &opts.actor,
                snapshot.clone(),
                started.elapsed(),
                &deploy_detail(out),
            )?;
            db.record_plan(name, &revert_plan)?;
            Ok(Ok(false))
        })();
        let mut result = match result {
            Ok(Ok(false)) => db::commit(db).map(|_| Ok(false)),
            other => other,
        };
        if !matches!(result, Ok(Ok(_))) && db.lost() {
            // The session ended under the change: the server rolled its
            // transaction back, unless the COMMIT got through first. The
            // tracking row, written in the same transaction, tells which.
            db.reconnect()?;
            let committed = db.applied()?.iter().any(|c| {
                c.name == name && c.state == RecordState::Applied && c.checksum == *checksum
            });
            if !committed {
                capture::finish(db, &cap, timeout);
                return Err(Error::ChangeFailed {
                    change: name.into(),
                    step: "up".into(),
                    detail: "the connection to the database was lost while it ran".into(),
                    undone: "the server rolled its transaction back when the session ended: \
                             reconnected, ripcord found no trace of it, so the database is as it \
                             was before it"
                        .into(),
                    hint: "find out why the connection dropped, then run `ripcord migrate up` \
                           again"
                        .into(),
                });
            }
            note(Note::Warning(&format!(
                "the connection to the database was lost as {name} committed; reconnected, \
                 ripcord found it recorded as applied"
            )));
            result = Ok(Ok(true));
        }
        let rolled_back = match &result {
            Ok(Ok(_)) => Ok(()),
            _ => db::rollback(db),
        };
        if matches!(result, Ok(Ok(_))) && !watched.is_empty() {
            failpoint::hit("migrate-change-committed");
            // The change stands: without a fingerprint a rollback merges
            // two ways, as for a change applied by an older version.
            let fingerprinted = Instant::now();
            let recorded = net.fingerprint(db.conn(), name, &watched);
            out.fingerprint_ms = Some(fingerprinted.elapsed().as_millis() as u64);
            if let Err(e) = recorded {
                note(Note::Warning(&format!(
                    "{name} is applied, but its post-change fingerprint was not recorded \
                     ({e}); a rollback of it compares with the snapshot only (see \
                     \"Without a fingerprint\" in docs/migrations.md)"
                )));
            }
            failpoint::hit("migrate-fingerprint-taken");
        }
        capture::finish(db, &cap, timeout);
        out.schema_snapshot = schema_objects;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err((step, what))) if step == SCHEMA_REFUSED => {
                rolled_back?;
                return Err(Error::Refused {
                    message: format!(
                        "change {name} has no down script, and its schema-only snapshot cannot \
                         put back what it changed ({what}); its transaction was rolled back, so \
                         the database is as it was before it"
                    ),
                    hint: format!("write a down script for {name}, then run up again"),
                });
            }
            Ok(Err((step, detail))) => {
                rolled_back?;
                let _ = db.record_event(name, EventKind::Fail, &opts.actor, &detail);
                return Err(Error::ChangeFailed {
                    change: name.into(),
                    step,
                    detail,
                    undone: "its transaction was rolled back, so the database is as it was \
                             before it"
                        .into(),
                    hint: "fix the change and run `ripcord migrate up` again".into(),
                });
            }
            Err(e) => return Err(e),
        }
    } else {
        // The delta is taken in a transaction of its own: writes between it
        // and the first statement are not captured.
        if !cap.is_empty() {
            let sealed = db::begin_change(db, timeout)
                .and_then(|_| capture::seal(db, name, &cap, timeout))
                .and_then(|_| db::commit(db));
            if sealed.is_err() {
                let _ = db::rollback(db);
            }
            capture::finish(db, &cap, timeout);
            sealed?;
        }
        // Outside a transaction the row goes first, so a crash leaves it
        // dirty; with its plan, in one go.
        db::begin(db)?;
        let row = (|| -> Result<()> {
            db.record_start(name, p.order, checksum, &opts.actor, snapshot.clone())?;
            db.record_non_transactional(name)?;
            db.record_plan(name, &revert_plan)
        })();
        match row {
            Ok(()) => db::commit(db)?,
            Err(e) => {
                let _ = db::rollback(db);
                return Err(e);
            }
        }
        let deadline = Deadline::arm(db.conn(), opts.change_timeout);
        let mut failed = execute_each(db, &p.up, |_| failpoint::hit("migrate-statement-ran"))
            .err()
            .map(|e| ("up", e.to_string()));
        if let Some(d) = deadline {
            if d.disarm() {
                failed = Some(("up", d.message()));
            }
        }
        if failed.is_none() {
            if let Some(verify) = &p.verify {
                failed = verify_apart(db, verify).err().map(|e| ("verify", e));
            }
        }
        failpoint::hit("migrate-change-ran");
        if let Some((step, mut detail)) = failed {
            if db.lost() {
                // Outside a transaction what ran stays: revert it over a new session.
                db.reconnect()?;
                detail = format!("{detail} (the connection was lost; reconnected to revert it)");
            }
            let _ = db.record_event(name, EventKind::Fail, &opts.actor, &detail);
            let undo = Undo::from_files(p);
            let undone = match revert_one(db, net, &undo, snapshot.as_deref(), true, &opts.actor) {
                Ok(done) => {
                    let text = format!(
                        "it ran outside a transaction and was reverted {}",
                        done.how.describe()
                    );
                    note(Note::Reverted(&done));
                    text
                }
                Err(e) => format!(
                    "it ran outside a transaction, and reverting it failed too ({e}); it is \
                     marked dirty"
                ),
            };
            return Err(Error::ChangeFailed {
                change: name.into(),
                step: step.into(),
                detail,
                undone,
                hint: "fix the change and run `ripcord migrate up` again; `ripcord migrate \
                       status` shows where the database stands"
                    .into(),
            });
        }
        db.record_done(name, started.elapsed())?;
        db.record_event(name, EventKind::Deploy, &opts.actor, &deploy_detail(out))?;
    }
    out.duration_ms = Some(started.elapsed().as_millis() as u64);
    Ok(())
}

/// A verify script of a non-transactional change, in a transaction that is
/// rolled back: verify only reads.
fn verify_apart(db: &mut dyn Database, sql: &str) -> std::result::Result<(), String> {
    db::begin(db).map_err(|e| e.to_string())?;
    let result = execute(db, sql).map_err(|e| e.to_string());
    db::rollback(db).map_err(|e| e.to_string())?;
    result
}

fn deploy_detail(out: &UpChange) -> String {
    let tx = if out.transactional {
        "in a transaction"
    } else {
        "outside a transaction"
    };
    let unprotected = if out.unprotected.is_empty() {
        String::new()
    } else {
        format!("; not protected: {}", out.unprotected.join("; "))
    };
    match &out.snapshot {
        Some(id) => format!("{tx}; safety snapshot {id}{unprotected}"),
        None if matches!(out.snapshot_scope, Scope::DownScript(_)) => {
            format!("{tx}; no safety snapshot (its down script undoes it, no data destroyed)")
        }
        None if matches!(out.snapshot_scope, Scope::Schema(_)) => {
            format!("{tx}; schema-only snapshot (changes no rows, no down script)")
        }
        None => format!("{tx}; no safety snapshot (touches no existing table)"),
    }
}
