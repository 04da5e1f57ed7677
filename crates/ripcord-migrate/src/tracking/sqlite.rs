//! Tracking in a SQLite database file.
//!
//! # The lock
//!
//! The lock is SQLite's own file lock: `BEGIN EXCLUSIVE` on a dedicated
//! connection to a sidecar file next to the database (`<db>-ripcord-lock`),
//! kept open until the guard drops. The operating system releases that lock
//! when the process exits or is killed, so a crash never leaves a stale lock
//! for someone to clean up by hand; a lock row alone would need a liveness
//! check, which cannot see processes on another host sharing the file, and
//! which races with pid reuse.
//!
//! The sidecar, not the database itself, carries the lock: an exclusive
//! transaction on the database would also block the holder's own writes to
//! the tracking tables and the migration's own statements.
//!
//! A file lock has no owner that others can ask for, so the holder also
//! writes a row (pid, host, started) to `ripcord_lock` in the database. That
//! row only names the holder in the refusal; it never decides who holds the
//! lock, so a row left behind by a crash is harmless and overwritten by the
//! next holder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

use super::{
    now_text, parse_time, this_process, AppliedChange, EventKind, LockGuard, RecordState,
    RevertPlan, Tracker,
};
use crate::{Error, Result};

/// How long ordinary statements wait for another connection's write.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long recording the migration lock's holder waits for the write lock.
const LABEL_WAIT: Duration = Duration::from_millis(200);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ripcord_changes (
    name TEXT PRIMARY KEY,
    checksum TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('dirty', 'applied')),
    applied_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    duration_ms INTEGER,
    safety_snapshot TEXT,
    plan_order INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ripcord_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    change TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL
);
-- The state of the tables a change touched, right after it ran (one row
-- per table, columns as JSON arrays), and per row a hash of its key and of
-- the whole row (rows without a key: the row's hash and its copies).
CREATE TABLE IF NOT EXISTS ripcord_fingerprint_tables (
    id INTEGER PRIMARY KEY,
    change TEXT NOT NULL,
    table_name TEXT NOT NULL,
    key_columns TEXT NOT NULL,
    columns TEXT NOT NULL,
    rows INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ripcord_fingerprint (
    tab INTEGER NOT NULL,
    k BLOB NOT NULL,
    h BLOB NOT NULL,
    n INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ripcord_fingerprint_tab ON ripcord_fingerprint (tab, k);
";

const LOCK_TABLE: &str = "
CREATE TABLE IF NOT EXISTS ripcord_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started TEXT NOT NULL
);
";

/// Tracks migrations of one SQLite database file.
pub struct SqliteTracker {
    path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for SqliteTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTracker")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteTracker {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteTracker> {
        let conn = open_conn(path)?;
        Ok(SqliteTracker {
            path: path.to_owned(),
            conn,
        })
    }

    /// The connection scripts run on, so that a change and its tracking row
    /// share a transaction.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file whose lock is the migration lock.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push("-ripcord-lock");
        PathBuf::from(name)
    }

    fn holder(&self) -> Result<String> {
        self.conn
            .execute_batch(LOCK_TABLE)
            .map_err(Error::sqlite(format!(
                "create ripcord_lock in {}",
                self.path.display()
            )))?;
        let row = self
            .conn
            .query_row(
                "SELECT pid, host, started FROM ripcord_lock WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(Error::sqlite(format!(
                "read ripcord_lock in {}",
                self.path.display()
            )))?;
        Ok(match row {
            Some((pid, host, started)) => format!("pid {pid} on {host}, since {started}"),
            None => format!(
                "another process (it has not recorded itself yet; the lock file is {})",
                self.lock_path().display()
            ),
        })
    }
}

fn open_conn(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(Error::sqlite(format!("open {}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(Error::sqlite(format!("configure {}", path.display())))?;
    Ok(conn)
}

fn has_transactional_column(conn: &Connection) -> rusqlite::Result<bool> {
    has_column(conn, "transactional")
}

fn has_column(conn: &Connection, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info('ripcord_changes') WHERE name = ?1",
        [column],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl Tracker for SqliteTracker {
    fn ensure_schema(&mut self) -> Result<()> {
        let context = || format!("create the tracking tables in {}", self.path.display());
        self.conn
            .execute_batch(SCHEMA)
            .map_err(Error::sqlite(context()))?;
        // Tables made before the column existed get it, once.
        if !has_transactional_column(&self.conn).map_err(Error::sqlite(context()))? {
            self.conn
                .execute_batch(
                    "ALTER TABLE ripcord_changes ADD COLUMN transactional INTEGER NOT NULL DEFAULT 1",
                )
                .map_err(Error::sqlite(context()))?;
        }
        if !has_column(&self.conn, "revert_plan").map_err(Error::sqlite(context()))? {
            self.conn
                .execute_batch("ALTER TABLE ripcord_changes ADD COLUMN revert_plan TEXT")
                .map_err(Error::sqlite(context()))?;
        }
        Ok(())
    }

    fn lock(&mut self) -> Result<LockGuard> {
        let lock_path = self.lock_path();
        let context = || format!("lock {}", lock_path.display());
        let lock_conn = Connection::open(&lock_path).map_err(Error::sqlite(context()))?;
        // Fail at once rather than queue behind the holder.
        lock_conn
            .busy_timeout(Duration::ZERO)
            .map_err(Error::sqlite(context()))?;
        // A rollback journal: in WAL mode an exclusive transaction does not
        // keep readers out, and the lock must hold against everyone.
        let _: String = lock_conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .or_else(|e| {
                if is_busy(&e) {
                    Ok(String::new())
                } else {
                    Err(e)
                }
            })
            .map_err(Error::sqlite(context()))?;
        match lock_conn.execute_batch(
            "BEGIN EXCLUSIVE;
             CREATE TABLE IF NOT EXISTS ripcord_lock (held INTEGER);
             DELETE FROM ripcord_lock;
             INSERT INTO ripcord_lock VALUES (1);",
        ) {
            Ok(()) => {}
            Err(e) if is_busy(&e) => {
                return Err(Error::Locked {
                    holder: self.holder()?,
                })
            }
            Err(e) => return Err(Error::sqlite(context())(e)),
        }

        let (pid, host) = this_process();
        let started = now_text();
        let record = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(&self.path)?;
            conn.busy_timeout(LABEL_WAIT)?;
            conn.execute_batch(LOCK_TABLE)?;
            conn.execute(
                "INSERT INTO ripcord_lock (id, pid, host, started) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE
                 SET pid = excluded.pid, host = excluded.host, started = excluded.started",
                params![pid, host, started],
            )?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            Ok(conn)
        };
        // The row is only a label. When another session holds the
        // database's write lock, go on without it: the first step that
        // needs that lock waits `lock_timeout` and refuses (exit code 3)
        // with nothing changed. On failure here `lock_conn` drops, which
        // rolls back and unlocks.
        let record_conn = match record() {
            Ok(conn) => Some(conn),
            Err(e) if is_busy(&e) => None,
            Err(e) => {
                return Err(Error::sqlite(format!(
                    "record the lock holder in {}",
                    self.path.display()
                ))(e))
            }
        };
        let holder = format!("pid {pid} on {host}, since {started}");
        Ok(LockGuard::new(holder, move || {
            // Clear our row first, while we still hold the lock, so nobody
            // else's row is removed. Errors are ignored: the row is only a
            // label, and closing the lock connection is what unlocks.
            if let Some(conn) = record_conn {
                let _ = conn.execute(
                    "DELETE FROM ripcord_lock WHERE id = 1 AND pid = ?1 AND started = ?2",
                    params![pid, started],
                );
            }
            let _ = lock_conn.execute_batch("ROLLBACK");
            drop(lock_conn);
        }))
    }

    fn applied(&mut self) -> Result<Vec<AppliedChange>> {
        read_changes(&self.conn, &self.path)
    }

    fn record_start(
        &mut self,
        change: &str,
        plan_order: i32,
        checksum: &str,
        actor: &str,
        snapshot_id: Option<String>,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO ripcord_changes
                     (name, checksum, state, applied_at, actor, duration_ms, safety_snapshot,
                      plan_order)
                 VALUES (?1, ?2, 'dirty', ?3, ?4, NULL, ?5, ?6)
                 ON CONFLICT (name) DO UPDATE SET
                     checksum = excluded.checksum, state = 'dirty',
                     applied_at = excluded.applied_at, actor = excluded.actor,
                     duration_ms = NULL, safety_snapshot = excluded.safety_snapshot,
                     plan_order = excluded.plan_order",
                params![change, checksum, now_text(), actor, snapshot_id, plan_order],
            )
            .map_err(Error::sqlite(format!("record the start of {change}")))?;
        Ok(())
    }

    fn record_done(&mut self, change: &str, duration: Duration) -> Result<()> {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let n = self
            .conn
            .execute(
                "UPDATE ripcord_changes SET state = 'applied', duration_ms = ?2 WHERE name = ?1",
                params![change, ms],
            )
            .map_err(Error::sqlite(format!("record the end of {change}")))?;
        if n == 0 {
            return Err(Error::NotRecorded {
                change: change.into(),
            });
        }
        Ok(())
    }

    fn record_plan(&mut self, change: &str, plan: &RevertPlan) -> Result<()> {
        self.conn
            .execute(
                "UPDATE ripcord_changes SET revert_plan = ?2 WHERE name = ?1",
                params![change, plan.to_json()],
            )
            .map_err(Error::sqlite(format!("record how to revert {change}")))?;
        Ok(())
    }

    fn record_non_transactional(&mut self, change: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE ripcord_changes SET transactional = 0 WHERE name = ?1",
                [change],
            )
            .map_err(Error::sqlite(format!("mark {change} non-transactional")))?;
        Ok(())
    }

    fn record_reverted(&mut self, change: &str) -> Result<()> {
        let n = self
            .conn
            .execute("DELETE FROM ripcord_changes WHERE name = ?1", [change])
            .map_err(Error::sqlite(format!("record the revert of {change}")))?;
        if n == 0 {
            return Err(Error::NotRecorded {
                change: change.into(),
            });
        }
        // Its post-change fingerprint has served; older databases have none.
        let has = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                 AND name = 'ripcord_fingerprint_tables'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(Error::sqlite("look for the fingerprint tables"))?;
        if has > 0 {
            self.conn
                .execute(
                    "DELETE FROM ripcord_fingerprint WHERE tab IN \
                     (SELECT id FROM ripcord_fingerprint_tables WHERE change = ?1)",
                    [change],
                )
                .and_then(|_| {
                    self.conn.execute(
                        "DELETE FROM ripcord_fingerprint_tables WHERE change = ?1",
                        [change],
                    )
                })
                .map_err(Error::sqlite(format!("forget the fingerprint of {change}")))?;
        }
        Ok(())
    }

    fn record_event(
        &mut self,
        change: &str,
        kind: EventKind,
        actor: &str,
        detail: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO ripcord_events (at, change, kind, actor, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![now_text(), change, kind.as_str(), actor, detail],
            )
            .map_err(Error::sqlite(format!(
                "record a {} event for {change}",
                kind.as_str()
            )))?;
        Ok(())
    }
}

/// The rows of `ripcord_changes` in the order they were started, read on
/// `conn` (the database at `path`, named in errors).
pub(super) fn read_changes(conn: &Connection, path: &Path) -> Result<Vec<AppliedChange>> {
    let context = || format!("read ripcord_changes in {}", path.display());
    let mut stmt = conn
        .prepare(&format!(
            "SELECT name, checksum, state, applied_at, actor, duration_ms, safety_snapshot,
                    plan_order, {}, {}
             FROM ripcord_changes ORDER BY applied_at, plan_order, name",
            if has_transactional_column(conn).unwrap_or(false) {
                "transactional"
            } else {
                "1"
            },
            if has_column(conn, "revert_plan").unwrap_or(false) {
                "revert_plan"
            } else {
                "NULL"
            }
        ))
        .map_err(Error::sqlite(context()))?;
    let rows = stmt
        .query_map([], |r| {
            let applied_at: String = r.get(3)?;
            let applied_at = parse_time(&applied_at).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Text,
                    format!("applied_at {applied_at:?} is not an RFC 3339 time").into(),
                )
            })?;
            Ok(AppliedChange {
                name: r.get(0)?,
                checksum: r.get(1)?,
                state: RecordState::parse(&r.get::<_, String>(2)?),
                applied_at,
                actor: r.get(4)?,
                duration_ms: r.get(5)?,
                safety_snapshot: r.get(6)?,
                plan_order: r.get(7)?,
                transactional: r.get::<_, i64>(8)? != 0,
                revert_plan: r.get(9)?,
            })
        })
        .map_err(Error::sqlite(context()))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(Error::sqlite(context()))
}
