//! The post-change fingerprint on SQLite: right after a change committed,
//! each table it touched is recorded as a hash of every row's key and of
//! the whole row, in `ripcord_fingerprint`. On rollback it tells what the
//! change did from what the application did since (see
//! [`crate::sqlite_merge3`]). Writers never wait for the hashing, only for
//! short batches of the copy (see [`record`]). It is forgotten with the
//! change's tracking row.
//!
//! The hash is `ripcord_hash(v1, v2, …)`, a function registered on the
//! connection: BLAKE3 over each value's storage class and bytes, cut to 16
//! bytes.

use std::path::PathBuf;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

/// One table's fingerprint, as recorded.
#[derive(Clone, Debug)]
pub struct Fingerprint {
    pub id: i64,
    /// The primary key after the change; empty: the rows are a multiset.
    pub key_columns: Vec<String>,
    /// The hashed columns, in order.
    pub columns: Vec<String>,
    pub rows: i64,
}

fn err(conn: &Connection) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Sqlite {
        path: conn
            .path()
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from("database"), PathBuf::from),
        source,
    }
}

/// Registers `ripcord_hash` on `conn`.
pub fn register(conn: &Connection) -> Result<()> {
    conn.create_scalar_function(
        "ripcord_hash",
        -1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let mut h = blake3::Hasher::new();
            for i in 0..ctx.len() {
                match ctx.get_raw(i) {
                    ValueRef::Null => {
                        h.update(&[0]);
                    }
                    ValueRef::Integer(v) => {
                        h.update(&[1]);
                        h.update(&v.to_le_bytes());
                    }
                    ValueRef::Real(v) => {
                        h.update(&[2]);
                        h.update(&v.to_bits().to_le_bytes());
                    }
                    ValueRef::Text(t) => {
                        h.update(&[3]);
                        h.update(&(t.len() as u64).to_le_bytes());
                        h.update(t);
                    }
                    ValueRef::Blob(b) => {
                        h.update(&[4]);
                        h.update(&(b.len() as u64).to_le_bytes());
                        h.update(b);
                    }
                }
            }
            Ok(h.finalize().as_bytes()[..16].to_vec())
        },
    )
    .map_err(err(conn))
}

/// An SQL identifier, double-quoted.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `ripcord_hash` of `cols`, each prefixed by `alias.`.
pub(crate) fn hash(alias: &str, cols: &[String]) -> String {
    let args: Vec<String> = cols
        .iter()
        .map(|c| format!("{alias}.{}", quote(c)))
        .collect();
    format!("ripcord_hash({})", args.join(", "))
}

/// Stored columns of `schema.table` (generated and hidden ones follow from
/// them), in order, and the primary key in key order.
pub(crate) fn columns(
    conn: &Connection,
    schema: &str,
    table: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let sql = format!("PRAGMA {schema}.table_xinfo({})", quote(table));
    let mut stmt = conn.prepare(&sql).map_err(err(conn))?;
    let rows: Vec<(String, i64, bool)> = stmt
        .query_map([], |r| {
            Ok((r.get(1)?, r.get::<_, i64>(5)?, r.get::<_, i64>(6)? == 0))
        })
        .map_err(err(conn))?
        .collect::<rusqlite::Result<_>>()
        .map_err(err(conn))?;
    let cols = rows
        .iter()
        .filter(|(_, _, plain)| *plain)
        .map(|(n, _, _)| n.clone())
        .collect();
    let mut pk: Vec<&(String, i64, bool)> = rows.iter().filter(|(_, k, _)| *k > 0).collect();
    pk.sort_by_key(|(_, k, _)| *k);
    Ok((cols, pk.into_iter().map(|(n, _, _)| n.clone()).collect()))
}

/// Rows copied per write transaction: writers wait at most for one batch.
const BATCH: i64 = 10_000;

/// Records the fingerprint of `tables` for `change`, right after the change
/// committed: each table by name, with the log its writes since the commit
/// went to (see `Watched` in the migration engine). The hashes are worked
/// out in one read transaction (in WAL mode writers go on) into a temporary
/// table, with each logged write undone (a row written since counts -1, a
/// row gone +1), then copied in batches of short write transactions. A
/// fingerprint is complete once its `rows` is set; until then it counts -1
/// and is not used. A table dropped since is left out. Returns each
/// recorded table with its rows.
pub fn record(
    conn: &Connection,
    change: &str,
    tables: &[(&str, &str)],
) -> Result<Vec<(String, u64)>> {
    register(conn)?;
    conn.execute_batch(
        "DROP TABLE IF EXISTS temp.ripcord_fp;
         CREATE TEMP TABLE ripcord_fp (tab INTEGER NOT NULL, k BLOB, h BLOB, n INTEGER);",
    )
    .map_err(err(conn))?;
    let result = compute(conn, tables).and_then(|found| store(conn, change, &found));
    let _ = conn.execute_batch(
        "DROP TABLE IF EXISTS temp.ripcord_fp; DROP TABLE IF EXISTS temp.ripcord_fp_sorted",
    );
    result
}

/// A table as it was hashed: its name, stored columns and key.
struct Hashed {
    name: String,
    cols: Vec<String>,
    key: Vec<String>,
}

/// Hashes `tables` into `temp.ripcord_fp` (`tab` = index into the result),
/// in one read transaction.
fn compute(conn: &Connection, tables: &[(&str, &str)]) -> Result<Vec<Hashed>> {
    conn.execute_batch("BEGIN").map_err(err(conn))?;
    let result = (|| {
        let mut out: Vec<Hashed> = Vec::new();
        for (wanted, log) in tables {
            // Found the way SQLite finds names (any case).
            let name: Option<String> = conn
                .query_row(
                    "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                    [wanted],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err(conn))?;
            let Some(name) = name.filter(|n| !out.iter().any(|o| &o.name == n)) else {
                continue;
            };
            let (cols, key) = columns(conn, "main", &name)?;
            let tab = out.len();
            let (k, h) = (
                hash("t", if key.is_empty() { &cols } else { &key }),
                hash("t", &cols),
            );
            let logged: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM main.{}", quote(log)),
                    [],
                    |r| r.get(0),
                )
                .map_err(err(conn))?;
            let sql = if logged == 0 && !key.is_empty() {
                format!(
                    "INSERT INTO temp.ripcord_fp SELECT {tab}, {k}, {h}, 1 FROM main.{} AS t",
                    quote(&name)
                )
            } else {
                // A multiset, or rows worked back: counted per hash pair.
                format!(
                    "INSERT INTO temp.ripcord_fp
                     SELECT {tab}, k, h, sum(n) FROM (
                         SELECT {k} AS k, {h} AS h, 1 AS n FROM main.{} AS t
                         UNION ALL
                         SELECT {k}, {h}, t.ripcord_window_n FROM main.{} AS t)
                     GROUP BY k, h HAVING sum(n) <> 0",
                    quote(&name),
                    quote(log)
                )
            };
            conn.execute(&sql, []).map_err(err(conn))?;
            out.push(Hashed { name, cols, key });
        }
        Ok(out)
    })();
    // Only read on main: ending it cannot fail in a way that matters.
    let _ = conn.execute_batch("COMMIT");
    result
}

/// Copies the hashes of `found` from `temp.ripcord_fp` into
/// `ripcord_fingerprint`, in short write transactions.
fn store(conn: &Connection, change: &str, found: &[Hashed]) -> Result<Vec<(String, u64)>> {
    // A change applied again (repeatable, or after a revert) replaces it;
    // the tables go in incomplete (`rows` -1).
    let ids = in_write(conn, || {
        conn.execute(
            "DELETE FROM ripcord_fingerprint WHERE tab IN
                 (SELECT id FROM ripcord_fingerprint_tables WHERE change = ?1)",
            [change],
        )?;
        conn.execute(
            "DELETE FROM ripcord_fingerprint_tables WHERE change = ?1",
            [change],
        )?;
        let to_json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let mut ids = Vec::with_capacity(found.len());
        for t in found {
            conn.execute(
                "INSERT INTO ripcord_fingerprint_tables (change, table_name, key_columns, columns, rows)
                 VALUES (?1, ?2, ?3, ?4, -1)",
                rusqlite::params![change, t.name, to_json(&t.key), to_json(&t.cols)],
            )?;
            ids.push(conn.last_insert_rowid());
        }
        Ok(ids)
    })?;
    // In the index's order: each batch then appends to the index instead of
    // touching pages all over it, which keeps the batches (and what a
    // checkpoint copies) short.
    conn.execute_batch(
        "DROP TABLE IF EXISTS temp.ripcord_fp_sorted;
         CREATE TEMP TABLE ripcord_fp_sorted AS SELECT tab, k, h, n FROM temp.ripcord_fp ORDER BY tab, k;",
    )
    .map_err(err(conn))?;
    let last: i64 = conn
        .query_row(
            "SELECT coalesce(max(rowid), 0) FROM temp.ripcord_fp_sorted",
            [],
            |r| r.get(0),
        )
        .map_err(err(conn))?;
    let map: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("WHEN {i} THEN {id}"))
        .collect();
    let mut from = 1;
    while from <= last {
        let to = from + BATCH - 1;
        // Each batch checkpointed at once, by us: otherwise a writer's
        // commit that finds the WAL long does it, and waits for it.
        let _ = conn.query_row("PRAGMA main.wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        let started = std::time::Instant::now();
        in_write(conn, || {
            conn.execute(
                &format!(
                    "INSERT INTO ripcord_fingerprint (tab, k, h, n)
                     SELECT CASE tab {} END, k, h, n FROM temp.ripcord_fp_sorted
                     WHERE rowid BETWEEN ?1 AND ?2",
                    map.join(" ")
                ),
                [from, to],
            )
        })?;
        from = to + 1;
        // As long again without the lock: a writer's busy handler polls
        // (every 100 ms at worst), and back-to-back batches would leave it
        // only instants to get in.
        std::thread::sleep(started.elapsed().max(std::time::Duration::from_millis(1)));
    }
    // Counted on the temporary copy, which needs no lock; set in one go,
    // which makes the fingerprints complete.
    let mut out = Vec::new();
    for (tab, t) in found.iter().enumerate() {
        let rows: i64 = conn
            .query_row(
                "SELECT coalesce(sum(n), 0) FROM temp.ripcord_fp WHERE tab = ?1",
                [tab as i64],
                |r| r.get(0),
            )
            .map_err(err(conn))?;
        out.push((t.name.clone(), rows as u64));
    }
    in_write(conn, || {
        for ((_, rows), id) in out.iter().zip(&ids) {
            conn.execute(
                "UPDATE ripcord_fingerprint_tables SET rows = ?2 WHERE id = ?1",
                rusqlite::params![id, *rows as i64],
            )?;
        }
        Ok(())
    })?;
    Ok(out)
}

/// Runs `f` in a write transaction of its own.
fn in_write<T>(conn: &Connection, f: impl FnOnce() -> rusqlite::Result<T>) -> Result<T> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(err(conn))?;
    match f() {
        Ok(v) => {
            conn.execute_batch("COMMIT").map_err(err(conn))?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err(conn)(e))
        }
    }
}

/// The fingerprint `change` recorded of `table`, if any: a change applied
/// by an older version has none.
pub fn load(conn: &Connection, change: &str, table: &str) -> Result<Option<Fingerprint>> {
    let exists: i64 = conn
        .query_row(
            "SELECT count(*) FROM main.sqlite_master WHERE type = 'table'
             AND name = 'ripcord_fingerprint_tables'",
            [],
            |r| r.get(0),
        )
        .map_err(err(conn))?;
    if exists == 0 {
        return Ok(None);
    }
    let row: Option<(i64, String, String, i64)> = conn
        .query_row(
            "SELECT id, key_columns, columns, rows FROM ripcord_fingerprint_tables
             WHERE change = ?1 AND table_name = ?2 COLLATE NOCASE AND rows >= 0
             ORDER BY id DESC LIMIT 1",
            [change, table],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(err(conn))?;
    let Some((id, key, cols, rows)) = row else {
        return Ok(None);
    };
    let parse = |s: &str| -> Result<Vec<String>> {
        serde_json::from_str(s).map_err(|e| Error::Mismatch {
            detail: format!("the fingerprint of {table} is damaged: {e}"),
        })
    };
    Ok(Some(Fingerprint {
        id,
        key_columns: parse(&key)?,
        columns: parse(&cols)?,
        rows,
    }))
}

pub(crate) fn sqlite_err(conn: &Connection) -> impl Fn(rusqlite::Error) -> Error + '_ {
    err(conn)
}
