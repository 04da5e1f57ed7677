//! Where a database stands in its migrations, as a snapshot records it and a
//! restore compares it. It is read on the caller's connection, so that a
//! snapshot reads it in the transaction it copies the data in, and the two
//! agree.

use std::path::Path;

use ripcord_core::config::TargetConfig;
use serde::Serialize;

use super::{AppliedChange, RecordState, RevertPlan};
use crate::{Error, Plan, Result};

/// The migration state of a database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct State {
    /// The last change recorded as applied, in the order they ran.
    pub change: Option<String>,
    /// How many changes are recorded as applied.
    pub applied: u64,
    /// The last phase whose changes are all applied; only with a plan.
    pub phase: Option<String>,
    /// Changes started and never finished.
    pub dirty: Vec<String>,
}

impl State {
    /// The state the recorded `rows` describe (in the order
    /// [`Tracker::applied`](super::Tracker::applied) returns them); `plan`
    /// names the phase.
    pub fn of(rows: &[AppliedChange], plan: Option<&Plan>) -> State {
        let applied: Vec<&AppliedChange> = rows
            .iter()
            .filter(|r| r.state == RecordState::Applied)
            .collect();
        State {
            change: applied.last().map(|r| r.name.clone()),
            applied: applied.len() as u64,
            phase: plan.and_then(|p| super::status(p, rows).phase),
            dirty: rows
                .iter()
                .filter(|r| r.state == RecordState::Dirty)
                .map(|r| r.name.clone())
                .collect(),
        }
    }
}

/// The changes a PostgreSQL database has recorded, read on `client` in the
/// transaction it has open; `None` when it has no tracking tables. Only
/// reads.
pub fn read_postgres(client: &mut postgres::Client) -> Result<Option<Vec<AppliedChange>>> {
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('ripcord.changes') IS NOT NULL",
            &[],
        )
        .map_err(Error::postgres("look for ripcord.changes"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    super::pg::read_changes(client).map(Some)
}

/// The changes the SQLite database open on `conn` (at `path`, named in
/// errors) has recorded; `None` when it has no tracking tables. Only reads.
pub fn read_sqlite(conn: &rusqlite::Connection, path: &Path) -> Result<Option<Vec<AppliedChange>>> {
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'ripcord_changes'",
            [],
            |r| r.get(0),
        )
        .map_err(Error::sqlite(format!("read {}", path.display())))?;
    if n == 0 {
        return Ok(None);
    }
    super::sqlite::read_changes(conn, path).map(Some)
}

/// The changes `live` records as applied after the last change of `then`
/// (the state a snapshot holds), in the order they ran. `None` when `live`
/// does not continue `then`'s history: it is behind it, or went another way.
pub fn applied_since<'a>(
    live: &'a [AppliedChange],
    then: &State,
) -> Option<Vec<&'a AppliedChange>> {
    let applied: Vec<&AppliedChange> = live
        .iter()
        .filter(|r| r.state == RecordState::Applied)
        .collect();
    let from = match &then.change {
        None => 0,
        Some(c) => applied.iter().position(|r| &r.name == c)? + 1,
    };
    (from as u64 == then.applied).then(|| applied[from..].to_vec())
}

/// Those of `changes` that changed, or may have changed, one of `tables`
/// (`(schema, name)`), by the revert plan recorded with each: the tables it
/// touched or created. A change without a readable plan, or whose tables
/// could not all be told from its SQL, may have changed any.
pub fn touching(changes: &[&AppliedChange], tables: &[(String, String)]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| {
            let plan = c.revert_plan.as_deref().map(RevertPlan::parse);
            match plan {
                Some(Ok(plan)) if plan.certain => {
                    plan.tables.iter().chain(&plan.created).any(|t| {
                        tables.iter().any(|(schema, name)| {
                            t.name == *name && t.schema.as_ref().is_none_or(|s| s == schema)
                        })
                    })
                }
                _ => true,
            }
        })
        .map(|c| c.name.clone())
        .collect()
}

/// After a whole database was restored: forgets the post-change
/// fingerprints a run had left to take. They rely on capture triggers that
/// logged every write since their change, and a restore brings neither the
/// triggers (they are left out) nor those writes back; PostgreSQL also
/// gives the restored tables new oids. Their changes' rollbacks then
/// compare with the snapshot alone, as for a change without a fingerprint.
/// Returns how many were forgotten.
pub fn forget_pending_postgres(client: &mut postgres::Client) -> Result<u64> {
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('ripcord.fingerprint_pending') IS NOT NULL",
            &[],
        )
        .map_err(Error::postgres("look for ripcord.fingerprint_pending"))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    client
        .execute("DELETE FROM ripcord.fingerprint_pending", &[])
        .map_err(Error::postgres("empty ripcord.fingerprint_pending"))
}

/// [`forget_pending_postgres`] for SQLite.
pub fn forget_pending_sqlite(conn: &rusqlite::Connection, path: &Path) -> Result<u64> {
    let context = || format!("empty ripcord_fingerprint_pending in {}", path.display());
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
             AND name = 'ripcord_fingerprint_pending'",
            [],
            |r| r.get(0),
        )
        .map_err(Error::sqlite(context()))?;
    if n == 0 {
        return Ok(0);
    }
    conn.execute("DELETE FROM ripcord_fingerprint_pending", [])
        .map(|n| n as u64)
        .map_err(Error::sqlite(context()))
}

/// After `target`, a whole database, was restored in place: forgets its
/// pending fingerprints (see [`forget_pending_postgres`]) and returns what
/// it records now (`None`: no tracking tables) and how many were forgotten.
pub fn after_restore(target: &TargetConfig) -> Result<(Option<Vec<AppliedChange>>, u64)> {
    match target {
        TargetConfig::Postgres { url, .. } => {
            let mut tracker = super::PostgresTracker::connect(url)?;
            let client = tracker.client_mut();
            let forgotten = forget_pending_postgres(client)?;
            Ok((read_postgres(client)?, forgotten))
        }
        TargetConfig::Sqlite { path, .. } => {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
            )
            .map_err(Error::sqlite(format!("open {}", path.display())))?;
            let forgotten = forget_pending_sqlite(&conn, path)?;
            Ok((read_sqlite(&conn, path)?, forgotten))
        }
        TargetConfig::Dir { .. } => Ok((None, 0)),
    }
}

/// Takes the migration lock of `target` for a restore in place, so that no
/// `migrate up` or `down` records changes in a database while it is
/// replaced. PostgreSQL: the advisory lock, which writes nothing. SQLite:
/// only when the file has tracking tables (the lock labels its holder in
/// the database, which an unmigrated one must not get). `Ok(None)` when
/// there is no lock to take or the database cannot be opened (the restore
/// then reports that itself); [`Error::Locked`] or [`Error::StillRunning`]
/// when a migration holds it.
pub fn restore_lock(target: &TargetConfig) -> Result<Option<super::LockGuard>> {
    use super::Tracker;
    let taken = match target {
        TargetConfig::Postgres { url, .. } => match super::PostgresTracker::connect(url) {
            Ok(mut tracker) => tracker.lock(),
            Err(_) => return Ok(None),
        },
        TargetConfig::Sqlite { path, .. } => {
            if !matches!(super::recorded(target), Ok(Some(_))) {
                return Ok(None);
            }
            super::SqliteTracker::open(path)?.lock()
        }
        TargetConfig::Dir { .. } => return Ok(None),
    };
    match taken {
        Ok(guard) => Ok(Some(guard)),
        Err(e @ (Error::Locked { .. } | Error::StillRunning { .. })) => Err(e),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::TableName;

    fn row(name: &str, state: RecordState, plan: Option<RevertPlan>) -> AppliedChange {
        AppliedChange {
            name: name.into(),
            checksum: String::new(),
            state,
            applied_at: chrono::Utc::now(),
            actor: String::new(),
            duration_ms: None,
            safety_snapshot: None,
            plan_order: 0,
            transactional: true,
            revert_plan: plan.map(|p| p.to_json()),
        }
    }

    fn touches(tables: &[&str], created: &[&str], certain: bool) -> Option<RevertPlan> {
        let names = |v: &[&str]| {
            v.iter()
                .map(|t| TableName::new(Some("public"), t))
                .collect()
        };
        Some(RevertPlan {
            version: RevertPlan::VERSION,
            tables: names(tables),
            created: names(created),
            destructive: false,
            certain,
            transactional: true,
            down: None,
            schema: None,
        })
    }

    #[test]
    fn state_is_the_last_applied_change_with_the_dirty_ones_apart() {
        let rows = [
            row("a", RecordState::Applied, None),
            row("b", RecordState::Applied, None),
            row("c", RecordState::Dirty, None),
        ];
        let s = State::of(&rows, None);
        assert_eq!(s.change.as_deref(), Some("b"));
        assert_eq!(s.applied, 2);
        assert_eq!(s.dirty, ["c"]);
        assert_eq!(State::of(&[], None), State::default());
    }

    #[test]
    fn applied_since_is_what_came_after_the_snapshots_state() {
        let live = [
            row("a", RecordState::Applied, None),
            row("b", RecordState::Applied, None),
            row("c", RecordState::Applied, None),
        ];
        let names = |v: Option<Vec<&AppliedChange>>| {
            v.map(|v| v.iter().map(|c| c.name.clone()).collect::<Vec<_>>())
        };
        let then = State::of(&live[..1], None);
        assert_eq!(
            names(applied_since(&live, &then)),
            Some(vec!["b".into(), "c".into()])
        );
        assert_eq!(
            names(applied_since(&live, &State::default())),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        // The live database is behind the snapshot, or went another way.
        let ahead = State {
            change: Some("d".into()),
            applied: 4,
            ..State::default()
        };
        assert_eq!(names(applied_since(&live, &ahead)), None);
        let other = State {
            change: Some("b".into()),
            applied: 1,
            ..State::default()
        };
        assert_eq!(names(applied_since(&live, &other)), None);
    }

    #[test]
    fn touching_reads_the_recorded_revert_plans() {
        let changes = [
            row(
                "alters_items",
                RecordState::Applied,
                touches(&["items"], &[], true),
            ),
            row(
                "makes_tags",
                RecordState::Applied,
                touches(&[], &["tags"], true),
            ),
            row("uncertain", RecordState::Applied, touches(&[], &[], false)),
            row("no_plan", RecordState::Applied, None),
        ];
        let refs: Vec<&AppliedChange> = changes.iter().collect();
        let items = [("public".to_string(), "items".to_string())];
        assert_eq!(
            touching(&refs, &items),
            ["alters_items", "uncertain", "no_plan"]
        );
        let elsewhere = [("other".to_string(), "items".to_string())];
        assert_eq!(touching(&refs, &elsewhere), ["uncertain", "no_plan"]);
    }
}
