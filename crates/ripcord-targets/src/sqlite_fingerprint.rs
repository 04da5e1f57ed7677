//! The post-change fingerprint on SQLite: right after a change ran, inside
//! its transaction, each table it touched is recorded as a hash of every
//! row's key and of the whole row, in `ripcord_fingerprint`. On rollback it
//! tells what the change did from what the application did since (see
//! [`crate::sqlite_merge3`]). It commits with the change, and is forgotten
//! with the change's tracking row.
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

/// Records the fingerprint of `tables` for `change`, on `conn` inside the
/// change's transaction; a table the change dropped is left out. Returns
/// each recorded table with its rows.
pub fn record(conn: &Connection, change: &str, tables: &[String]) -> Result<Vec<(String, u64)>> {
    register(conn)?;
    // A change applied again (repeatable, or after a revert) replaces it.
    conn.execute(
        "DELETE FROM ripcord_fingerprint WHERE tab IN
             (SELECT id FROM ripcord_fingerprint_tables WHERE change = ?1)",
        [change],
    )
    .and_then(|_| {
        conn.execute(
            "DELETE FROM ripcord_fingerprint_tables WHERE change = ?1",
            [change],
        )
    })
    .map_err(err(conn))?;
    let mut out: Vec<(String, u64)> = Vec::new();
    for wanted in tables {
        // Found the way SQLite finds names (any case).
        let name: Option<String> = conn
            .query_row(
                "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                [wanted],
                |r| r.get(0),
            )
            .optional()
            .map_err(err(conn))?;
        let Some(name) = name.filter(|n| !out.iter().any(|(o, _)| o == n)) else {
            continue;
        };
        let (cols, key) = columns(conn, "main", &name)?;
        let to_json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        conn.execute(
            "INSERT INTO ripcord_fingerprint_tables (change, table_name, key_columns, columns, rows)
             VALUES (?1, ?2, ?3, ?4, 0)",
            rusqlite::params![change, name, to_json(&key), to_json(&cols)],
        )
        .map_err(err(conn))?;
        let id = conn.last_insert_rowid();
        let h = hash("t", &cols);
        let q = quote(&name);
        let sql = if key.is_empty() {
            format!(
                "INSERT INTO ripcord_fingerprint (tab, k, h, n)
                 SELECT {id}, h, h, count(*) FROM (SELECT {h} AS h FROM main.{q} AS t) GROUP BY h"
            )
        } else {
            format!(
                "INSERT INTO ripcord_fingerprint (tab, k, h, n)
                 SELECT {id}, {}, {h}, 1 FROM main.{q} AS t",
                hash("t", &key)
            )
        };
        conn.execute(&sql, []).map_err(err(conn))?;
        let rows: i64 = conn
            .query_row(
                "UPDATE ripcord_fingerprint_tables
                 SET rows = (SELECT coalesce(sum(n), 0) FROM ripcord_fingerprint WHERE tab = ?1)
                 WHERE id = ?1 RETURNING rows",
                [id],
                |r| r.get(0),
            )
            .map_err(err(conn))?;
        out.push((name, rows as u64));
    }
    Ok(out)
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
             WHERE change = ?1 AND table_name = ?2 COLLATE NOCASE ORDER BY id DESC LIMIT 1",
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
