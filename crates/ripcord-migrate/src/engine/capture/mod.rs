//! Change capture: the writes that land between a change's safety snapshot
//! and the change itself.
//!
//! The snapshot is taken on other connections without blocking writers, so
//! writes go on while it runs. Before it starts, triggers on the tables it
//! covers log every write (PostgreSQL: the row's primary key, or the whole
//! row for a table without one; SQLite: the rowid or primary key) in a
//! transaction of their own; the snapshot begins after they commit, so
//! every write it does not see is logged. The change's transaction then
//! locks the tables against writers (`SHARE ROW EXCLUSIVE`; SQLite:
//! `BEGIN IMMEDIATE`), copies the current row of every logged key into the
//! change's delta, and turns the triggers off. The delta commits with the
//! change; a revert puts it over the snapshot's rows, which gives the tables
//! as they were the moment the change began. Writers wait only for that
//! lock and copy, never for the snapshot.

use std::collections::BTreeSet;
use std::time::Duration;

use rusqlite::OptionalExtension;

use super::db::{Conn, Database};
use super::net::SafetyNet;
use super::Note;
use crate::analyze::TableName;
use crate::{Error, Result};

mod pg;
mod sqlite;

use self::pg::*;
pub(crate) use self::sqlite::sqlite_begin_immediate;
use self::sqlite::*;

/// How long ripcord waits for a lock on a table when `lock_timeout` is not set.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// The trigger, log and delta objects (PostgreSQL: in schema `ripcord`).
const PG_SETUP: &str = "
CREATE TABLE IF NOT EXISTS ripcord.capture_log (
    rel oid NOT NULL,
    txid bigint NOT NULL DEFAULT pg_catalog.txid_current(),
    kind text NOT NULL,
    key jsonb,
    row_text text);
CREATE TABLE IF NOT EXISTS ripcord.safety_delta (
    change text NOT NULL,
    table_name text NOT NULL,
    kind text NOT NULL,
    txid bigint,
    key jsonb,
    row_text text);
CREATE INDEX IF NOT EXISTS safety_delta_change ON ripcord.safety_delta (change, table_name);
CREATE TABLE IF NOT EXISTS ripcord.fingerprint_pending (change text NOT NULL, rel oid NOT NULL);
CREATE TABLE IF NOT EXISTS ripcord.written_watch (
    change text NOT NULL, rel oid NOT NULL, filenode oid NOT NULL, PRIMARY KEY (change, rel));
CREATE TABLE IF NOT EXISTS ripcord.written_since (
    change text NOT NULL, rel oid NOT NULL, PRIMARY KEY (change, rel));
CREATE OR REPLACE FUNCTION ripcord.mark_written() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $ripcord$
BEGIN
    INSERT INTO ripcord.written_since (change, rel)
    SELECT w.change, w.rel FROM ripcord.written_watch w
    WHERE w.rel = TG_RELID AND NOT EXISTS
        (SELECT 1 FROM ripcord.written_since s WHERE s.change = w.change AND s.rel = w.rel)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$ripcord$;
CREATE OR REPLACE FUNCTION ripcord.capture() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET \"DateStyle\" = 'ISO, MDY' SET \"IntervalStyle\" = 'postgres' SET \"TimeZone\" = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex'
AS $ripcord$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO ripcord.capture_log (rel, kind) VALUES (TG_RELID, 'T');
    ELSIF TG_NARGS > 0 THEN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO ripcord.capture_log (rel, kind, key)
            SELECT TG_RELID, 'K', jsonb_object_agg(a, to_jsonb(OLD) -> a) FROM unnest(TG_ARGV) a;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO ripcord.capture_log (rel, kind, key)
            SELECT TG_RELID, 'K', jsonb_object_agg(a, to_jsonb(NEW) -> a) FROM unnest(TG_ARGV) a;
        END IF;
    ELSE
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO ripcord.capture_log (rel, kind, row_text) VALUES (TG_RELID, '-', OLD::text);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO ripcord.capture_log (rel, kind, row_text) VALUES (TG_RELID, '+', NEW::text);
        END IF;
    END IF;
    RETURN NULL;
END
$ripcord$;
";

/// The tables named by `$1` (text[]) with their partitions and inheritance
/// children, at any depth.
const PG_TREES: &str = "WITH RECURSIVE tree(oid) AS (
        SELECT pg_catalog.to_regclass(n)::oid FROM unnest($1::text[]) n
        UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid)
    SELECT oid FROM tree WHERE oid IS NOT NULL";

/// Settings under which rows are written as text and read back: the text
/// form of a row must not depend on the session that wrote it.
const PG_TEXT_SETTINGS: [(&str, &str); 5] = [
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
];

/// Triggers ripcord puts on a table while a change is prepared.
const PG_TRIGGERS: [&str; 2] = ["ripcord_capture", "ripcord_capture_truncate"];

/// The statement trigger that marks a watched table written from its
/// change's commit until the change is reverted (`ripcord.written_since`).
const PG_WRITTEN_TRIGGER: &str = "ripcord_written";

/// The tables whose writes are being logged for one change.
#[derive(Debug, Default)]
pub struct Capture {
    tables: Vec<Captured>,
    /// PostgreSQL: tables [`watch`] put a whole-row trigger on.
    watched_oids: Vec<u32>,
    /// The change [`watch`] was called for: its fingerprint is pending
    /// until [`finish`].
    watching: Option<String>,
}

/// A table whose post-change fingerprint is taken after the change
/// committed, and the log of the writes it had since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    /// PostgreSQL: the table's oid (its partitions and inheritance
    /// children log under their own); SQLite: 0.
    pub oid: u32,
    /// SQLite: the table's name.
    pub name: String,
    /// The log: PostgreSQL `ripcord.capture_log` (`rel`, `kind` `+` for a
    /// row written, `-` for a row gone, `T` for a truncation, `row_text`);
    /// SQLite a table of `ripcord_window_n` (-1 for a row written, +1 for
    /// a row gone) followed by the table's stored columns.
    pub log: String,
}

/// The PostgreSQL log [`Watched`] tables write to.
pub const PG_LOG: &str = "ripcord.capture_log";

#[derive(Debug)]
struct Captured {
    /// As the snapshot names it: `schema.name` on PostgreSQL, the name on
    /// SQLite.
    name: String,
    /// Quoted, for SQL.
    sql: String,
    /// PostgreSQL: the table's oid.
    oid: u32,
    /// Key columns; empty: PostgreSQL logs whole rows, SQLite the rowid
    /// (under `rowid`, a name for it no column takes).
    key: Vec<String>,
    rowid: &'static str,
    /// SQLite: the log table.
    log: String,
}

impl Capture {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn millis(d: Duration) -> u128 {
    d.as_millis().max(1)
}

/// A lock on `what` (`table x`, `the SQLite database`) not granted in time.
fn lock_refused(what: &str, timeout: Duration, doing: &str) -> Error {
    Error::Refused {
        message: format!(
            "could not lock {what} within {} ms to {doing}: another session holds a lock on it; \
             nothing was changed",
            millis(timeout)
        ),
        hint: "find the session that holds it (pg_locks and pg_stat_activity on PostgreSQL, the \
               other writer on SQLite), let it finish, and run again; or give the lock more time \
               with --lock-timeout or [migrations] lock_timeout"
            .into(),
    }
}

fn is_lock_timeout(e: &postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| d.code().code() == "55P03")
}

/// Starts logging the writes to `tables` (`None`: every table), in a
/// transaction of its own that is committed when this returns. Waits at
/// most `timeout` for each table's lock; on timeout nothing is left behind
/// and the error is a refusal.
pub fn install(
    db: &mut dyn Database,
    tables: Option<&BTreeSet<TableName>>,
    timeout: Duration,
) -> Result<Capture> {
    match db.conn() {
        Conn::Postgres(client) => pg_install(client, tables, timeout),
        Conn::Sqlite(conn) => sqlite_install(conn, tables, timeout),
    }
}

/// In the change's transaction, before its script: locks the captured
/// tables against writers, copies the current rows of the logged keys into
/// the change's delta, and stops the logging. The caller rolls back on error.
pub fn seal(db: &mut dyn Database, change: &str, cap: &Capture, timeout: Duration) -> Result<()> {
    if cap.is_empty() {
        return Ok(());
    }
    match db.conn() {
        Conn::Postgres(client) => pg_seal(client, change, cap, timeout),
        Conn::Sqlite(conn) => sqlite_seal(conn, change, cap),
    }
}

/// In the change's transaction, after its script: from the commit on, logs
/// every row written to `tables` as they are now (created or renamed by the
/// change included) until [`finish`], so that their fingerprint can be
/// taken after the commit, without holding writers up, and corrected for
/// the writes that came first. Returns the tables to fingerprint.
///
/// The tables are also written down as the change's pending fingerprint,
/// which commits with the change: if this run is killed before it takes the
/// fingerprint, the next `up` or `down` takes it from the same logs
/// ([`resume`]).
pub fn watch(
    db: &mut dyn Database,
    change: &str,
    cap: &mut Capture,
    tables: &BTreeSet<TableName>,
    timeout: Duration,
) -> Result<Vec<Watched>> {
    cap.watching = Some(change.to_string());
    match db.conn() {
        Conn::Postgres(client) => {
            let watched = pg_watch(client, change, cap, tables, timeout)?;
            let oids: Vec<u32> = watched.iter().map(|w| w.oid).collect();
            client
                .execute(
                    "INSERT INTO ripcord.fingerprint_pending (change, rel)
                     SELECT $1, unnest($2::oid[])",
                    &[&change, &oids],
                )
                .map_err(Error::postgres("write down the pending fingerprint"))?;
            Ok(watched)
        }
        Conn::Sqlite(conn) => (|| {
            let watched = sqlite_watch(conn, tables)?;
            conn.execute_batch(SQLITE_PENDING)?;
            for w in &watched {
                conn.execute(
                    "INSERT INTO ripcord_fingerprint_pending (change, tbl, log) VALUES (?1, ?2, ?3)",
                    rusqlite::params![change, w.name, w.log],
                )?;
            }
            Ok(watched)
        })()
        .map_err(|e| {
            if sqlite_busy(&e) {
                sqlite_lock_refused(timeout, "watch the tables after the change")
            } else {
                Error::sqlite("watch the tables after the change")(e)
            }
        }),
    }
}

/// Takes the fingerprints a killed run left pending (see [`watch`]): the
/// triggers it left have logged every write since its change committed, so
/// the fingerprint is still exact. Call before [`clear`], which drops them.
/// A fingerprint that cannot be taken is warned about; its change's
/// rollback compares two ways.
pub fn resume(db: &mut dyn Database, net: &mut dyn SafetyNet, note: &mut dyn FnMut(Note<'_>)) {
    let pending: Vec<(String, Watched)> = match db.conn() {
        Conn::Postgres(client) => client
            .query(
                "SELECT change, rel FROM ripcord.fingerprint_pending ORDER BY change, rel",
                &[],
            )
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let watched = Watched {
                            oid: r.get(1),
                            name: String::new(),
                            log: PG_LOG.into(),
                        };
                        (r.get(0), watched)
                    })
                    .collect()
            })
            // No such table: nothing was ever pending.
            .unwrap_or_default(),
        Conn::Sqlite(conn) => conn
            .prepare("SELECT change, tbl, log FROM ripcord_fingerprint_pending ORDER BY rowid")
            .and_then(|mut st| {
                st.query_map([], |r| {
                    let watched = Watched {
                        oid: 0,
                        name: r.get(1)?,
                        log: r.get(2)?,
                    };
                    Ok((r.get(0)?, watched))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_default(),
    };
    let mut changes: Vec<(String, Vec<Watched>)> = Vec::new();
    for (change, w) in pending {
        match changes.last_mut() {
            Some((c, ws)) if *c == change => ws.push(w),
            _ => changes.push((change, vec![w])),
        }
    }
    for (change, watched) in changes {
        if let Err(e) = net.fingerprint(db.conn(), &change, &watched) {
            note(Note::Warning(&format!(
                "the post-change fingerprint of {change}, which a killed run left to take, \
                 could not be taken ({e}); a rollback of it compares with the snapshot only"
            )));
        }
        forget_pending(db, &change);
    }
}

/// Drops what [`watch`] wrote down for `change`.
fn forget_pending(db: &mut dyn Database, change: &str) {
    match db.conn() {
        Conn::Postgres(client) => {
            let _ = client.execute(
                "DELETE FROM ripcord.fingerprint_pending WHERE change = $1",
                &[&change],
            );
        }
        Conn::Sqlite(conn) => {
            let _ = conn.execute(
                "DELETE FROM ripcord_fingerprint_pending WHERE change = ?1",
                [change],
            );
        }
    }
}

/// After the change's transaction ended (committed or rolled back): removes
/// the triggers and their log. Best effort: what cannot be removed now (a
/// lock not granted in time) is removed by the next `up` or `down`.
pub fn finish(db: &mut dyn Database, cap: &Capture, timeout: Duration) {
    if let Some(change) = &cap.watching {
        forget_pending(db, change);
    }
    match db.conn() {
        Conn::Postgres(client) => {
            if cap.is_empty() && cap.watched_oids.is_empty() {
                return;
            }
            let mut oids: Vec<u32> = cap.tables.iter().map(|t| t.oid).collect();
            oids.extend(&cap.watched_oids);
            oids.sort_unstable();
            oids.dedup();
            for oid in &oids {
                let _ = pg_drop_triggers(client, *oid, timeout);
            }
            let _ = client.execute(
                "DELETE FROM ripcord.capture_log WHERE rel = ANY($1::oid[])",
                &[&oids],
            );
        }
        Conn::Sqlite(conn) => {
            let _ = sqlite_clear(conn, timeout);
        }
    }
}

/// Removes the triggers and logs a killed run left behind. Refuses (nothing
/// changed) when a table's lock is not granted within `timeout`.
pub fn clear(db: &mut dyn Database, timeout: Duration) -> Result<()> {
    match db.conn() {
        Conn::Postgres(client) => {
            let leftovers: Vec<(u32, String)> = client
                .query(
                    "SELECT DISTINCT t.tgrelid, t.tgrelid::regclass::text FROM pg_catalog.pg_trigger t
                     WHERE t.tgfoid = pg_catalog.to_regprocedure('ripcord.capture()')",
                    &[],
                )
                .map_err(Error::postgres("look for ripcord's capture triggers"))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            for (oid, name) in leftovers {
                pg_drop_triggers(client, oid, timeout).map_err(|e| {
                    if is_lock_timeout(&e) {
                        lock_refused(
                            &format!("table {name}"),
                            timeout,
                            "remove the capture trigger a killed run left on it",
                        )
                    } else {
                        Error::postgres(format!("remove the capture trigger on {name}"))(e)
                    }
                })?;
            }
            // Write marks no change watches any more: the trigger goes.
            let stale: Vec<String> = client
                .query(
                    "SELECT DISTINCT t.tgrelid::regclass::text FROM pg_catalog.pg_trigger t
                     WHERE t.tgname = $1 AND pg_catalog.to_regclass('ripcord.written_watch') IS NOT NULL
                       AND t.tgfoid = pg_catalog.to_regprocedure('ripcord.mark_written()')",
                    &[&PG_WRITTEN_TRIGGER],
                )
                .map_err(Error::postgres("look for ripcord's write-mark triggers"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for name in stale {
                let watched: bool = client
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM ripcord.written_watch WHERE rel = $1::text::regclass)",
                        &[&name],
                    )
                    .map_err(Error::postgres("look for ripcord.written_watch"))?
                    .get(0);
                if !watched {
                    // Best effort: a lock not granted now is tried next time.
                    let _ = client.batch_execute(&format!(
                        "BEGIN; SET LOCAL lock_timeout = '{}ms';
                         DROP TRIGGER IF EXISTS {PG_WRITTEN_TRIGGER} ON {name}; COMMIT",
                        millis(timeout)
                    ));
                    let _ = client.batch_execute("ROLLBACK");
                }
            }
            let has_log: bool = client
                .query_one(
                    "SELECT pg_catalog.to_regclass('ripcord.capture_log') IS NOT NULL",
                    &[],
                )
                .map_err(Error::postgres("look for ripcord.capture_log"))?
                .get(0);
            if has_log {
                client
                    .batch_execute("DELETE FROM ripcord.capture_log")
                    .map_err(Error::postgres("empty ripcord.capture_log"))?;
            }
            Ok(())
        }
        Conn::Sqlite(conn) => sqlite_clear(conn, timeout).map_err(|e| {
            if sqlite_busy(&e) {
                sqlite_lock_refused(timeout, "remove the capture triggers a killed run left")
            } else {
                Error::sqlite("remove ripcord's capture triggers")(e)
            }
        }),
    }
}

/// Drops the delta of `change` (a revert is under way, in the caller's
/// transaction): it is used, or no longer needed.
pub fn forget(db: &mut dyn Database, change: &str) -> Result<()> {
    match db.conn() {
        Conn::Postgres(client) => {
            let has: bool = client
                .query_one(
                    "SELECT pg_catalog.to_regclass('ripcord.safety_delta') IS NOT NULL",
                    &[],
                )
                .map_err(Error::postgres("look for ripcord.safety_delta"))?
                .get(0);
            if has {
                client
                    .execute(
                        "DELETE FROM ripcord.safety_delta WHERE change = $1",
                        &[&change],
                    )
                    .map_err(Error::postgres("drop the change's delta"))?;
            }
            let written: bool = client
                .query_one(
                    "SELECT pg_catalog.to_regclass('ripcord.written_since') IS NOT NULL",
                    &[],
                )
                .map_err(Error::postgres("look for ripcord.written_since"))?
                .get(0);
            if written {
                client
                    .batch_execute(&format!(
                        "DELETE FROM ripcord.written_watch WHERE change = {c};
                         DELETE FROM ripcord.written_since WHERE change = {c}",
                        c = literal(change)
                    ))
                    .map_err(Error::postgres("forget the change's write marks"))?;
            }
            Ok(())
        }
        Conn::Sqlite(conn) => {
            let context = || Error::sqlite("drop the change's delta");
            if !sqlite_has_table(conn, "ripcord_safety_delta").map_err(context())? {
                return Ok(());
            }
            let mut stmt = conn
                .prepare("SELECT delta FROM ripcord_safety_delta WHERE change = ?1")
                .map_err(context())?;
            let deltas: Vec<String> = stmt
                .query_map([change], |r| r.get(0))
                .map_err(context())?
                .collect::<rusqlite::Result<_>>()
                .map_err(context())?;
            for d in deltas {
                conn.execute_batch(&format!("DROP TABLE IF EXISTS main.{}", ident(&d)))
                    .map_err(context())?;
            }
            conn.execute(
                "DELETE FROM ripcord_safety_delta WHERE change = ?1",
                [change],
            )
            .map_err(context())?;
            Ok(())
        }
    }
}
