//! The change capture on SQLite: a log table per captured table, the seal
//! under `BEGIN IMMEDIATE`, the watch before the commit.

use super::*;

/// The fingerprints [`watch`] left to take, on SQLite.
pub(super) const SQLITE_PENDING: &str = "CREATE TABLE IF NOT EXISTS ripcord_fingerprint_pending (
    change TEXT NOT NULL,
    tbl TEXT NOT NULL,
    log TEXT NOT NULL)";

pub(super) const SQLITE_SETUP: &str = "CREATE TABLE IF NOT EXISTS ripcord_safety_delta (
    change TEXT NOT NULL,
    tbl TEXT NOT NULL,
    delta TEXT NOT NULL,
    keys TEXT NOT NULL)";

pub(super) fn sqlite_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

pub(super) fn sqlite_lock_refused(timeout: Duration, doing: &str) -> Error {
    lock_refused("the SQLite database", timeout, doing)
}

pub(super) fn sqlite_has_table(conn: &rusqlite::Connection, name: &str) -> rusqlite::Result<bool> {
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
pub(super) const SQLITE_BUSY: Duration = Duration::from_secs(5);

pub(super) fn sqlite_install(
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

pub(super) fn sqlite_seal(conn: &rusqlite::Connection, change: &str, cap: &Capture) -> Result<()> {
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
pub(super) fn sqlite_watch(
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
pub(super) fn sqlite_clear(conn: &rusqlite::Connection, timeout: Duration) -> rusqlite::Result<()> {
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
