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
            let watched = pg_watch(client, cap, tables, timeout)?;
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

// --- PostgreSQL -----------------------------------------------------------

fn pg_install(
    client: &mut postgres::Client,
    tables: Option<&BTreeSet<TableName>>,
    timeout: Duration,
) -> Result<Capture> {
    let context = "prepare the change capture";
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = '{}ms'; {PG_SETUP}",
            millis(timeout)
        ))
        .map_err(Error::postgres(context))?;
    let result = (|| -> Result<Capture> {
        // Ordinary tables (partitions included, each with its own trigger);
        // not temporary ones, nor ripcord's own.
        let base = "SELECT c.oid, n.nspname::text, c.relname::text,
                           pg_catalog.format('%I.%I', n.nspname, c.relname)
                    FROM pg_catalog.pg_class c
                    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind = 'r' AND c.relpersistence <> 't'
                      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
                      AND n.nspname NOT LIKE 'pg\\_%'";
        let rows = match tables {
            None => client.query(&format!("{base} ORDER BY c.oid"), &[]),
            Some(tables) => {
                let names: Vec<String> = tables
                    .iter()
                    .map(|t| match &t.schema {
                        Some(s) => format!("{}.{}", ident(s), ident(&t.name)),
                        None => ident(&t.name),
                    })
                    .collect();
                // With their partitions and inheritance children: the
                // snapshot takes those too.
                client.query(
                    &format!("{base} AND c.oid IN ({PG_TREES}) ORDER BY c.oid"),
                    &[&names],
                )
            }
        }
        .map_err(Error::postgres("find the tables to capture"))?;
        let mut cap = Capture::default();
        for r in rows {
            let (oid, schema, name, sql): (u32, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let key: Vec<String> = client
                .query(
                    "SELECT a.attname::text FROM pg_catalog.pg_constraint k
                     CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY u(attnum, n)
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
                     WHERE k.conrelid = $1 AND k.contype = 'p' ORDER BY u.n",
                    &[&oid],
                )
                .map_err(Error::postgres(format!("read the primary key of {sql}")))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let args: Vec<String> = key.iter().map(|k| literal(k)).collect();
            let create = format!(
                "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {sql} FOR EACH ROW \
                 EXECUTE PROCEDURE ripcord.capture({});
                 CREATE TRIGGER {} AFTER TRUNCATE ON {sql} FOR EACH STATEMENT \
                 EXECUTE PROCEDURE ripcord.capture()",
                PG_TRIGGERS[0],
                args.join(", "),
                PG_TRIGGERS[1],
            );
            client.batch_execute(&create).map_err(|e| {
                if is_lock_timeout(&e) {
                    lock_refused(
                        &sql,
                        timeout,
                        "install the change capture before the safety snapshot",
                    )
                } else {
                    Error::postgres(format!("install the change capture on {sql}"))(e)
                }
            })?;
            cap.tables.push(Captured {
                name: format!("{schema}.{name}"),
                sql,
                oid,
                key,
                rowid: "",
                log: String::new(),
            });
        }
        Ok(cap)
    })();
    match result {
        Ok(cap) => {
            client
                .batch_execute("COMMIT")
                .map_err(Error::postgres(context))?;
            Ok(cap)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

fn pg_seal(
    client: &mut postgres::Client,
    change: &str,
    cap: &Capture,
    timeout: Duration,
) -> Result<()> {
    let before = pg_settings(client, &["lock_timeout"])?;
    client
        .batch_execute(&format!(
            "SELECT pg_catalog.set_config('lock_timeout', '{}ms', true)",
            millis(timeout)
        ))
        .map_err(Error::postgres("set lock_timeout"))?;
    for t in &cap.tables {
        client
            .batch_execute(&format!(
                "LOCK TABLE ONLY {} IN SHARE ROW EXCLUSIVE MODE",
                t.sql
            ))
            .map_err(|e| {
                if is_lock_timeout(&e) {
                    lock_refused(&format!("table {}", t.sql), timeout, "start the change")
                } else {
                    Error::postgres(format!("lock {}", t.sql))(e)
                }
            })?;
    }
    pg_restore_settings(client, &before)?;
    let names: Vec<&str> = PG_TEXT_SETTINGS.iter().map(|(n, _)| *n).collect();
    let text_before = pg_settings(client, &names)?;
    for (n, v) in PG_TEXT_SETTINGS {
        client
            .execute("SELECT pg_catalog.set_config($1, $2, true)", &[&n, &v])
            .map_err(Error::postgres("set the row text settings"))?;
    }
    for t in &cap.tables {
        let context = format!(
            "capture the rows of {} written during the safety snapshot",
            t.sql
        );
        // Truncations, and whole rows of a table without a key, go as they
        // were logged: the revert leaves out those the snapshot saw.
        client
            .execute(
                "INSERT INTO ripcord.safety_delta (change, table_name, kind, txid, row_text)
                 SELECT $1, $2, kind, txid, row_text FROM ripcord.capture_log
                 WHERE rel = $3 AND kind IN ('T', '+', '-')",
                &[&change, &t.name, &t.oid],
            )
            .map_err(Error::postgres(&context))?;
        if !t.key.is_empty() {
            let on: Vec<String> = t
                .key
                .iter()
                .map(|k| format!("r.{0} = p.{0}", ident(k)))
                .collect();
            // The row now of each logged key, or none: deleted.
            client
                .execute(
                    &format!(
                        "INSERT INTO ripcord.safety_delta (change, table_name, kind, key, row_text)
                         SELECT $1, $2, 'K', k.key,
                                (SELECT r::text FROM {sql} r WHERE {on})
                         FROM (SELECT DISTINCT key FROM ripcord.capture_log
                               WHERE rel = $3 AND kind = 'K') k
                         CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{sql}, k.key) p",
                        sql = t.sql,
                        on = on.join(" AND ")
                    ),
                    &[&change, &t.name, &t.oid],
                )
                .map_err(Error::postgres(&context))?;
        }
        client
            .execute("DELETE FROM ripcord.capture_log WHERE rel = $1", &[&t.oid])
            .map_err(Error::postgres(&context))?;
        // Same lock level as the one held: no wait.
        client
            .batch_execute(&format!(
                "ALTER TABLE ONLY {} DISABLE TRIGGER {}, DISABLE TRIGGER {}",
                t.sql, PG_TRIGGERS[0], PG_TRIGGERS[1]
            ))
            .map_err(Error::postgres(&context))?;
    }
    pg_restore_settings(client, &text_before)
}

fn pg_watch(
    client: &mut postgres::Client,
    cap: &mut Capture,
    tables: &BTreeSet<TableName>,
    timeout: Duration,
) -> Result<Vec<Watched>> {
    let context = "watch the tables after the change";
    let names: Vec<String> = tables
        .iter()
        .map(|t| match &t.schema {
            Some(s) => format!("{}.{}", ident(s), ident(&t.name)),
            None => ident(&t.name),
        })
        .collect();
    // Resolved as the change's session resolves them now.
    let roots: Vec<u32> = client
        .query(
            "SELECT DISTINCT c.oid FROM unnest($1::text[]) n
             JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(n)
             WHERE c.relkind IN ('r', 'p') ORDER BY c.oid",
            &[&names],
        )
        .map_err(Error::postgres(context))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    // Row triggers go on the tables that hold rows: each partition and
    // inheritance child logs under its own oid.
    let leaves: Vec<(u32, String)> = client
        .query(
            &format!(
                "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname)
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'r' AND c.oid IN ({PG_TREES}) ORDER BY c.oid"
            ),
            &[&names],
        )
        .map_err(Error::postgres(context))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    client
        .batch_execute(PG_SETUP)
        .map_err(Error::postgres(context))?;
    let before = pg_settings(client, &["lock_timeout"])?;
    client
        .batch_execute(&format!(
            "SELECT pg_catalog.set_config('lock_timeout', '{}ms', true)",
            millis(timeout)
        ))
        .map_err(Error::postgres("set lock_timeout"))?;
    for (oid, sql) in &leaves {
        // Without arguments the trigger logs whole rows: the fingerprint
        // is of the table as the change left it, key or not.
        client
            .batch_execute(&format!(
                "DROP TRIGGER IF EXISTS {t0} ON {sql}; DROP TRIGGER IF EXISTS {t1} ON {sql};
                 CREATE TRIGGER {t0} AFTER INSERT OR UPDATE OR DELETE ON {sql} FOR EACH ROW \
                 EXECUTE PROCEDURE ripcord.capture();
                 CREATE TRIGGER {t1} AFTER TRUNCATE ON {sql} FOR EACH STATEMENT \
                 EXECUTE PROCEDURE ripcord.capture()",
                t0 = PG_TRIGGERS[0],
                t1 = PG_TRIGGERS[1],
            ))
            .map_err(|e| {
                if is_lock_timeout(&e) {
                    lock_refused(sql, timeout, "watch it after the change")
                } else {
                    Error::postgres(format!("watch {sql} after the change"))(e)
                }
            })?;
        if !cap.watched_oids.contains(oid) {
            cap.watched_oids.push(*oid);
        }
    }
    pg_restore_settings(client, &before)?;
    Ok(roots
        .into_iter()
        .map(|oid| Watched {
            oid,
            name: String::new(),
            log: PG_LOG.into(),
        })
        .collect())
}

fn pg_settings(
    client: &mut postgres::Client,
    names: &[&str],
) -> Result<Vec<(String, Option<String>)>> {
    names
        .iter()
        .map(|n| {
            let v: Option<String> = client
                .query_one("SELECT pg_catalog.current_setting($1, true)", &[n])
                .map_err(Error::postgres(format!("read setting {n}")))?
                .get(0);
            Ok((n.to_string(), v))
        })
        .collect()
}

fn pg_restore_settings(
    client: &mut postgres::Client,
    saved: &[(String, Option<String>)],
) -> Result<()> {
    for (n, v) in saved {
        if let Some(v) = v {
            client
                .execute("SELECT pg_catalog.set_config($1, $2, true)", &[n, v])
                .map_err(Error::postgres(format!("restore setting {n}")))?;
        }
    }
    Ok(())
}

/// Drops ripcord's capture triggers from one table, in a transaction of its
/// own that waits at most `timeout` for the lock.
fn pg_drop_triggers(
    client: &mut postgres::Client,
    oid: u32,
    timeout: Duration,
) -> std::result::Result<(), postgres::Error> {
    let name: Option<String> = client
        .query_opt(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )?
        .map(|r| r.get(0));
    let Some(name) = name else { return Ok(()) };
    let sql = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms';
         DROP TRIGGER IF EXISTS {} ON {name}; DROP TRIGGER IF EXISTS {} ON {name}; COMMIT",
        millis(timeout),
        PG_TRIGGERS[0],
        PG_TRIGGERS[1]
    );
    let result = client.batch_execute(&sql);
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK");
    }
    result
}

// --- SQLite ---------------------------------------------------------------

/// The fingerprints [`watch`] left to take, on SQLite.
const SQLITE_PENDING: &str = "CREATE TABLE IF NOT EXISTS ripcord_fingerprint_pending (
    change TEXT NOT NULL,
    tbl TEXT NOT NULL,
    log TEXT NOT NULL)";

const SQLITE_SETUP: &str = "CREATE TABLE IF NOT EXISTS ripcord_safety_delta (
    change TEXT NOT NULL,
    tbl TEXT NOT NULL,
    delta TEXT NOT NULL,
    keys TEXT NOT NULL)";

fn sqlite_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn sqlite_lock_refused(timeout: Duration, doing: &str) -> Error {
    lock_refused("the SQLite database", timeout, doing)
}

fn sqlite_has_table(conn: &rusqlite::Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Starts a write transaction, waiting at most `timeout` for other writers.
pub(crate) fn sqlite_begin_immediate(
    conn: &rusqlite::Connection,
    timeout: Duration,
    doing: &str,
) -> Result<()> {
    conn.busy_timeout(timeout)
        .map_err(Error::sqlite("set the busy timeout"))?;
    let result = conn.execute_batch("BEGIN IMMEDIATE");
    let _ = conn.busy_timeout(SQLITE_BUSY);
    result.map_err(|e| {
        if sqlite_busy(&e) {
            sqlite_lock_refused(timeout, doing)
        } else {
            Error::sqlite("BEGIN IMMEDIATE")(e)
        }
    })
}

/// The tracker connection's usual busy timeout.
const SQLITE_BUSY: Duration = Duration::from_secs(5);

fn sqlite_install(
    conn: &rusqlite::Connection,
    tables: Option<&BTreeSet<TableName>>,
    timeout: Duration,
) -> Result<Capture> {
    sqlite_begin_immediate(conn, timeout, "install the change capture")?;
    let result = (|| -> rusqlite::Result<Capture> {
        conn.execute_batch(SQLITE_SETUP)?;
        let mut stmt = conn.prepare(
            "SELECT name FROM main.sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'ripcord\\_%' ESCAPE '\\'
             ORDER BY name",
        )?;
        let all: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        let wanted: Vec<&String> = all
            .iter()
            .filter(|n| tables.is_none_or(|t| t.iter().any(|w| w.name.eq_ignore_ascii_case(n))))
            .collect();
        let mut cap = Capture::default();
        for (i, name) in wanted.into_iter().enumerate() {
            let sql = ident(name);
            let cols: Vec<(String, i64)> = conn
                .prepare(&format!("PRAGMA main.table_info({sql})"))?
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let rowid = ["rowid", "_rowid_", "oid"]
                .into_iter()
                .find(|a| !cols.iter().any(|(c, _)| c.eq_ignore_ascii_case(a)))
                .filter(|a| {
                    conn.prepare(&format!("SELECT {a} FROM main.{sql} LIMIT 0"))
                        .is_ok()
                });
            let (key, exprs): (Vec<String>, Vec<String>) = match rowid {
                Some(a) => (Vec::new(), vec![a.to_string()]),
                None => {
                    let mut pk: Vec<&(String, i64)> = cols.iter().filter(|c| c.1 > 0).collect();
                    pk.sort_by_key(|c| c.1);
                    let key: Vec<String> = pk.iter().map(|c| c.0.clone()).collect();
                    let exprs = key.iter().map(|k| ident(k)).collect();
                    (key, exprs)
                }
            };
            let log = format!("ripcord_capture_{i}");
            let log_cols: Vec<String> = (0..exprs.len()).map(|j| format!("ripcord_k{j}")).collect();
            let values = |row: &str| {
                exprs
                    .iter()
                    .map(|e| format!("{row}.{e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            conn.execute_batch(&format!(
                "DROP TABLE IF EXISTS main.{log};
                 CREATE TABLE main.{log} ({lc});
                 CREATE TRIGGER main.{log}_ins AFTER INSERT ON {sql} BEGIN
                   INSERT INTO {log} VALUES ({new}); END;
                 CREATE TRIGGER main.{log}_upd AFTER UPDATE ON {sql} BEGIN
                   INSERT INTO {log} VALUES ({old}); INSERT INTO {log} VALUES ({new}); END;
                 CREATE TRIGGER main.{log}_del AFTER DELETE ON {sql} BEGIN
                   INSERT INTO {log} VALUES ({old}); END;",
                lc = log_cols.join(", "),
                new = values("NEW"),
                old = values("OLD"),
            ))?;
            cap.tables.push(Captured {
                name: name.clone(),
                sql,
                oid: 0,
                key,
                rowid: rowid.unwrap_or(""),
                log,
            });
        }
        Ok(cap)
    })();
    match result {
        Ok(cap) => {
            conn.execute_batch("COMMIT")
                .map_err(Error::sqlite("install the change capture"))?;
            Ok(cap)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(Error::sqlite("install the change capture")(e))
        }
    }
}

fn sqlite_seal(conn: &rusqlite::Connection, change: &str, cap: &Capture) -> Result<()> {
    let context = || Error::sqlite("capture the rows written during the safety snapshot");
    conn.execute_batch(SQLITE_SETUP).map_err(context())?;
    for t in &cap.tables {
        let logged: i64 = conn
            .query_row(&format!("SELECT count(*) FROM main.{}", t.log), [], |r| {
                r.get(0)
            })
            .map_err(context())?;
        if logged > 0 {
            let n: i64 = conn
                .query_row(
                    "SELECT coalesce(max(rowid), 0) + 1 FROM ripcord_safety_delta",
                    [],
                    |r| r.get(0),
                )
                .map_err(context())?;
            let delta = format!("ripcord_delta_{n}");
            let (on, probe) = if t.key.is_empty() {
                (
                    format!("t.{} = l.ripcord_k0", t.rowid),
                    format!("t.{}", t.rowid),
                )
            } else {
                let on: Vec<String> = t
                    .key
                    .iter()
                    .enumerate()
                    .map(|(j, k)| format!("t.{} IS l.ripcord_k{j}", ident(k)))
                    .collect();
                (on.join(" AND "), format!("t.{}", ident(&t.key[0])))
            };
            // No declared types: every value keeps its storage class.
            conn.execute_batch(&format!(
                "CREATE TABLE main.{delta} AS
                 SELECT l.*, {probe} IS NULL AS ripcord_gone, t.*
                 FROM (SELECT DISTINCT * FROM main.{log}) AS l
                 LEFT JOIN main.{sql} AS t ON {on}",
                log = t.log,
                sql = t.sql,
            ))
            .map_err(context())?;
            // Key columns, joined by U+001F; empty: the rowid.
            let keys = t.key.join("\u{1f}");
            conn.execute(
                "INSERT INTO ripcord_safety_delta (change, tbl, delta, keys) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![change, t.name, delta, keys],
            )
            .map_err(context())?;
        }
        conn.execute_batch(&format!(
            "DROP TRIGGER main.{l}_ins; DROP TRIGGER main.{l}_upd; DROP TRIGGER main.{l}_del;
             DROP TABLE main.{l};",
            l = t.log
        ))
        .map_err(context())?;
    }
    Ok(())
}

/// The window logs are `ripcord_capture_w{i}`, so that [`sqlite_clear`]
/// finds them.
fn sqlite_watch(
    conn: &rusqlite::Connection,
    tables: &BTreeSet<TableName>,
) -> rusqlite::Result<Vec<Watched>> {
    let mut out: Vec<Watched> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        // Found the way SQLite finds names (any case).
        let name: Option<String> = conn
            .query_row(
                "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                [&t.name],
                |r| r.get(0),
            )
            .optional()?;
        let Some(name) = name.filter(|n| !out.iter().any(|w| &w.name == n)) else {
            continue;
        };
        let sql = ident(&name);
        // Stored columns, as the fingerprint hashes them.
        let cols: Vec<String> = conn
            .prepare(&format!("PRAGMA main.table_xinfo({sql})"))?
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(6)?)))?
            .filter_map(|c| match c {
                Ok((n, 0)) => Some(Ok(n)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<rusqlite::Result<_>>()?;
        let log = format!("ripcord_capture_w{i}");
        let quoted: Vec<String> = cols.iter().map(|c| ident(c)).collect();
        let values = |sign: i32, row: &str| {
            let v: Vec<String> = quoted.iter().map(|c| format!("{row}.{c}")).collect();
            format!("INSERT INTO {log} VALUES ({sign}, {});", v.join(", "))
        };
        // No declared types: every value keeps its storage class.
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS main.{log};
             CREATE TABLE main.{log} (ripcord_window_n, {cols});
             CREATE TRIGGER main.{log}_ins AFTER INSERT ON {sql} BEGIN {new} END;
             CREATE TRIGGER main.{log}_upd AFTER UPDATE ON {sql} BEGIN {old} {new} END;
             CREATE TRIGGER main.{log}_del AFTER DELETE ON {sql} BEGIN {old} END;",
            cols = quoted.join(", "),
            new = values(-1, "NEW"),
            old = values(1, "OLD"),
        ))?;
        out.push(Watched { oid: 0, name, log });
    }
    Ok(out)
}

/// Drops every capture trigger and log, in a write transaction of its own.
fn sqlite_clear(conn: &rusqlite::Connection, timeout: Duration) -> rusqlite::Result<()> {
    let leftovers = |kind: &str| -> rusqlite::Result<Vec<String>> {
        conn.prepare(
            "SELECT name FROM main.sqlite_master WHERE type = ?1
             AND name LIKE 'ripcord\\_capture\\_%' ESCAPE '\\'",
        )?
        .query_map([kind], |r| r.get(0))?
        .collect()
    };
    let triggers = leftovers("trigger")?;
    let logs = leftovers("table")?;
    if triggers.is_empty() && logs.is_empty() {
        return Ok(());
    }
    conn.busy_timeout(timeout)?;
    let begun = conn.execute_batch("BEGIN IMMEDIATE");
    let _ = conn.busy_timeout(SQLITE_BUSY);
    begun?;
    let mut sql = String::new();
    for t in triggers {
        sql.push_str(&format!("DROP TRIGGER IF EXISTS main.{};", ident(&t)));
    }
    for t in logs {
        sql.push_str(&format!("DROP TABLE IF EXISTS main.{};", ident(&t)));
    }
    match conn.execute_batch(&sql) {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
