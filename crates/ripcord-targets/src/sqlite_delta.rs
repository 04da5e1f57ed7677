//! The writes captured between a SQLite safety snapshot and its change
//! (`ripcord_safety_delta`, one `ripcord_delta_N` table per change and
//! table, written by `migrate up` in the change's transaction), put over
//! the snapshot's rows of a restored table so that it holds what the table
//! held the moment the change began.
//!
//! A delta table has the logged keys (`ripcord_k0…`: the rowid, or the
//! primary key of a WITHOUT ROWID table), `ripcord_gone` when the row was
//! deleted, and the row's columns as they were.

use rusqlite::{Connection, OptionalExtension};

/// Rows (inserted, deleted) by the delta of `change` on `table`.
pub(crate) fn apply(conn: &Connection, table: &str, change: &str) -> rusqlite::Result<(u64, u64)> {
    let has = conn
        .query_row(
            "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'ripcord_safety_delta'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !has {
        return Ok((0, 0));
    }
    let deltas: Vec<(String, String)> = conn
        .prepare(
            "SELECT delta, keys FROM ripcord_safety_delta
             WHERE change = ?1 AND tbl = ?2 COLLATE NOCASE ORDER BY rowid",
        )?
        .query_map([change, table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let q = quote(table);
    let mut inserted = 0;
    let mut deleted = 0;
    for (delta, keys) in deltas {
        let d = quote(&delta);
        // Columns that take values: not hidden, not generated.
        let cols: Vec<String> = conn
            .prepare(&format!("PRAGMA main.table_xinfo({q})"))?
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(6)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .filter(|(_, hidden)| *hidden == 0)
            .map(|(c, _)| c)
            .collect();
        let list: Vec<String> = cols.iter().map(|c| quote(c)).collect();
        let list = list.join(", ");
        if keys.is_empty() {
            let rid = ["rowid", "_rowid_", "oid"]
                .into_iter()
                .find(|a| !cols.iter().any(|c| c.eq_ignore_ascii_case(a)))
                .unwrap_or("rowid");
            deleted += conn.execute(
                &format!("DELETE FROM main.{q} WHERE {rid} IN (SELECT ripcord_k0 FROM main.{d})"),
                [],
            )? as u64;
            inserted += conn.execute(
                &format!(
                    "INSERT INTO main.{q} ({rid}, {list}) SELECT ripcord_k0, {list} FROM main.{d}
                     WHERE NOT ripcord_gone ORDER BY ripcord_k0"
                ),
                [],
            )? as u64;
        } else {
            let on: Vec<String> = keys
                .split('\u{1f}')
                .enumerate()
                .map(|(j, k)| format!("{q}.{} IS x.ripcord_k{j}", quote(k)))
                .collect();
            deleted += conn.execute(
                &format!(
                    "DELETE FROM main.{q} WHERE EXISTS (SELECT 1 FROM main.{d} AS x WHERE {})",
                    on.join(" AND ")
                ),
                [],
            )? as u64;
            inserted += conn.execute(
                &format!(
                    "INSERT INTO main.{q} ({list}) SELECT {list} FROM main.{d} WHERE NOT ripcord_gone"
                ),
                [],
            )? as u64;
        }
    }
    Ok((inserted, deleted))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
