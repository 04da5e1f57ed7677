//! The post-change fingerprint: right after a change committed, each table
//! it touched is recorded as a hash of every row's key and of the whole
//! row, in `ripcord.fingerprint`. On rollback it tells what the change did
//! from what the application did since (see [`super::merge3`]). It is taken
//! outside the change's transaction, so writers never wait for it; the
//! writes that came between the commit and its snapshot are logged, and
//! worked back. It is forgotten with the change's tracking row.
//!
//! Each table's rows live in a table of their own, `ripcord.fingerprint_<id>`
//! (`<id>` its `ripcord.fingerprint_tables` row), so that forgetting them
//! is a `DROP TABLE`, not the delete of a row per row of the table. A
//! fingerprint recorded by an older version has no such table: its rows are
//! in the shared `ripcord.fingerprint`, by `tab`.
//!
//! A key's hash is a 64-bit hash of its text form (`ROW(…)::text`), with
//! the settings that change how values print pinned, so that the session of
//! `up` and the session of `down` print the same row the same way. A row's
//! hash combines one such hash per column (see [`RowHash`]); fingerprints
//! recorded by older versions hash the row's text form whole.

use postgres::types::Oid;
use postgres::Client;
use ripcord_core::pg_fingerprint::FORGET;

use super::conn::{ident, pg_err};
use crate::error::Result;

/// Settings that change the text form of values, and the values they are
/// pinned to while hashes are computed. An empty search_path makes
/// `format_type` qualify every type, so the recorded types mean the same in
/// any session. JIT is off too: the queries that hash whole tables spend
/// their time in the hash function, and compiling them costs more than it
/// saves.
const PINNED: [(&str, &str); 7] = [
    ("DateStyle", "ISO, YMD"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("search_path", ""),
    ("jit", "off"),
];

/// How a fingerprint hashes a whole row, recorded with it
/// (`fingerprint_tables.row_hash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowHash {
    /// `row-text`: the hash of `ROW(…)::text`, as older versions recorded.
    RowText,
    /// `columns`: each column's text form hashed apart, seeded by its
    /// position, the hashes combined by XOR. Several times cheaper than
    /// printing the row as one record, which quotes and copies every value
    /// again; a NULL has a value of its own per position.
    Columns,
}

impl RowHash {
    /// How it is named in `fingerprint_tables.row_hash`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RowHash::RowText => "row-text",
            RowHash::Columns => "columns",
        }
    }

    fn from_name(name: &str) -> Option<RowHash> {
        [RowHash::RowText, RowHash::Columns]
            .into_iter()
            .find(|h| h.name() == name)
    }

    /// The hash of a row of values `exprs`, in this form.
    pub(crate) fn of(self, exprs: &[String]) -> String {
        match self {
            RowHash::RowText => hash(exprs),
            RowHash::Columns => columns_hash(exprs),
        }
    }
}

/// [`RowHash::Columns`]. Each value is hashed under the "C" collation: a
/// column with a case-insensitive (nondeterministic) collation would
/// otherwise hash values that differ only in case alike.
fn columns_hash(exprs: &[String]) -> String {
    if exprs.is_empty() {
        return "0::bigint".to_string();
    }
    let parts: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let seed = i as i64 + 1;
            format!(
                "coalesce(pg_catalog.hashtextextended(CAST(({e}) AS text) COLLATE pg_catalog.\"C\", {seed}), -{seed})"
            )
        })
        .collect();
    format!("({})", parts.join(" OPERATOR(pg_catalog.#) "))
}

/// One table's fingerprint, as recorded.
#[derive(Clone, Debug)]
pub struct Fingerprint {
    pub id: i64,
    /// The primary key after the change; empty: the rows are a multiset.
    pub key_columns: Vec<String>,
    /// The hashed columns, in order, with their types.
    pub columns: Vec<(String, String)>,
    pub rows: i64,
    /// Its rows are in `ripcord.fingerprint_<id>`; otherwise (an older
    /// version recorded it) in `ripcord.fingerprint` under `tab = id`.
    pub own_table: bool,
    /// How its rows' hashes were computed.
    pub row_hash: RowHash,
}

impl Fingerprint {
    /// Where its rows (`k`, `h`, `n`) are read from.
    pub(crate) fn rows_from(&self) -> String {
        if self.own_table {
            rows_table(self.id)
        } else {
            format!("ripcord.fingerprint WHERE tab = {}", self.id)
        }
    }
}

/// The table holding the rows of fingerprint `id`.
fn rows_table(id: i64) -> String {
    format!("ripcord.fingerprint_{id}")
}

/// The hash of a row's values `exprs`: 64 bits of the server's own text
/// hash (the one hash partitioning relies on, so it is stable), three times
/// cheaper than MD5 and half the size to store.
pub(crate) fn hash(exprs: &[String]) -> String {
    format!(
        "pg_catalog.hashtextextended(ROW({})::text, 0)",
        exprs.join(", ")
    )
}

/// Runs `f` with [`PINNED`] set for the transaction, then sets them back.
pub(crate) fn pinned<T>(
    client: &mut Client,
    f: impl FnOnce(&mut Client) -> Result<T>,
) -> Result<T> {
    let mut before = Vec::with_capacity(PINNED.len());
    for (name, value) in PINNED {
        let old: String = client
            .query_one("SELECT pg_catalog.current_setting($1)", &[&name])
            .map_err(pg_err(format!("reading setting {name}")))?
            .get(0);
        client
            .execute(
                "SELECT pg_catalog.set_config($1, $2, true)",
                &[&name, &value],
            )
            .map_err(pg_err(format!("pinning setting {name}")))?;
        before.push((name, old));
    }
    // On error the transaction has failed, and the caller rolls it back.
    let value = f(client)?;
    for (name, old) in before {
        client
            .execute("SELECT pg_catalog.set_config($1, $2, true)", &[&name, &old])
            .map_err(pg_err(format!("restoring setting {name}")))?;
    }
    Ok(value)
}

/// Records the fingerprint of `tables` for `change`, right after the
/// change committed, in a `REPEATABLE READ` transaction of its own: each
/// table by oid, with the log its writes since the commit went to (see
/// `Watched` in the migration engine). The table is read as it is now, and
/// each logged write is undone on the hashes: a row written since counts
/// -1, a row gone since +1. A table dropped since is left out, and so is a
/// table truncated since (its fingerprint cannot be worked back). A
/// partitioned table is one fingerprint, through its partitions; a regular
/// table's inheritance children get one each (logging to its log), as its
/// revert puts them back with it. Returns each recorded table
/// (`schema.name`) with its rows.
pub fn record(
    client: &mut Client,
    change: &str,
    tables: &[(Oid, &str)],
) -> Result<Vec<(String, u64)>> {
    let ctx = || format!("recording the fingerprint of {change}");
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .map_err(pg_err(ctx()))?;
    let result = (|| {
        // A change applied again (repeatable, or after a revert) replaces it.
        client
            .execute(
                "SELECT pg_catalog.set_config('ripcord.forget', $1, true)",
                &[&change],
            )
            .map_err(pg_err(ctx()))?;
        client.batch_execute(FORGET).map_err(pg_err(ctx()))?;
        let tables = with_children(client, tables)?;
        pinned(client, |client| {
            let mut out = Vec::new();
            for (oid, log) in &tables {
                if let Some(recorded) = record_one(client, change, *oid, log)? {
                    out.push(recorded);
                }
            }
            Ok(out)
        })
    })();
    match result {
        Ok(out) => {
            client.batch_execute("COMMIT").map_err(pg_err(ctx()))?;
            Ok(out)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

/// `tables` and the inheritance children of each regular table, recursively,
/// with the log of the table they belong to.
fn with_children<'a>(
    client: &mut Client,
    tables: &[(Oid, &'a str)],
) -> Result<Vec<(Oid, &'a str)>> {
    let mut out: Vec<(Oid, &str)> = Vec::with_capacity(tables.len());
    for (oid, log) in tables {
        let members = client
            .query(
                "WITH RECURSIVE d(oid) AS (
                     SELECT $1::oid
                     UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                     JOIN d ON i.inhparent = d.oid
                     JOIN pg_catalog.pg_class p ON p.oid = d.oid AND p.relkind = 'r')
                 SELECT d.oid FROM d JOIN pg_catalog.pg_class c ON c.oid = d.oid
                 WHERE c.relkind IN ('r', 'p')",
                &[oid],
            )
            .map_err(pg_err("reading inheritance children"))?;
        for m in members.iter().map(|r| r.get::<_, Oid>(0)) {
            if !out.iter().any(|(o, _)| *o == m) {
                out.push((m, log));
            }
        }
    }
    Ok(out)
}

/// The row hash new fingerprints are recorded with.
const RECORDED: RowHash = RowHash::Columns;

fn record_one(
    client: &mut Client,
    change: &str,
    oid: Oid,
    log: &str,
) -> Result<Option<(String, u64)>> {
    let row = client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text, c.relkind = 'p' FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )
        .map_err(pg_err("reading a table's name"))?;
    let Some(row) = row else { return Ok(None) };
    let (schema, name, partitioned): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
    let what = format!("{schema}.{name}");
    let ctx = || format!("recording the fingerprint of {what}");
    // The tables whose rows it holds, each logging under its own oid:
    // itself, and a partitioned table's partitions (an inheritance child
    // has a fingerprint of its own).
    let logged: Vec<(Oid, String, String)> = client
        .query(
            &format!(
                "WITH RECURSIVE tree(oid) AS (SELECT $1::oid
                     UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                     JOIN tree ON i.inhparent = tree.oid
                     JOIN pg_catalog.pg_class p ON p.oid = tree.oid AND p.relkind = 'p')
                 SELECT l.rel, pg_catalog.format('%I.%I', n.nspname, c.relname),
                        pg_catalog.string_agg(DISTINCT l.kind, '')
                 FROM {log} l JOIN tree ON tree.oid = l.rel
                 JOIN pg_catalog.pg_class c ON c.oid = l.rel
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 GROUP BY 1, 2"
            ),
            &[&oid],
        )
        .map_err(pg_err(ctx()))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    if logged.iter().any(|(_, _, kinds)| kinds.contains('T')) {
        return Ok(None);
    }
    let key_columns: Vec<String> = client
        .query(
            "SELECT a.attname::text FROM pg_catalog.pg_constraint k
             CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY u(attnum, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
             WHERE k.conrelid = $1 AND k.contype = 'p' ORDER BY u.n",
            &[&oid],
        )
        .map_err(pg_err(ctx()))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let columns = hashed_columns(client, oid, &what)?;
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    let types: Vec<&str> = columns.iter().map(|(_, t)| t.as_str()).collect();
    let id: i64 = client
        .query_one(
            "INSERT INTO ripcord.fingerprint_tables
                 (change, table_name, key_columns, columns, types, rows, row_hash)
             VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING id",
            &[
                &change,
                &what,
                &key_columns,
                &names,
                &types,
                &RECORDED.name(),
            ],
        )
        .map_err(pg_err(ctx()))?
        .get(0);
    let table = format!("{}{}.{}", only(partitioned), ident(&schema), ident(&name));
    let fp = rows_table(id);
    client
        .batch_execute(&format!(
            "CREATE TABLE {fp} (k bigint NOT NULL, h bigint NOT NULL, n bigint NOT NULL)"
        ))
        .map_err(pg_err(ctx()))?;
    // Key and row hashes of the rows of `alias`.
    let hashes = |alias: &str| {
        let row: Vec<String> = names
            .iter()
            .map(|c| format!("{alias}.{}", ident(c)))
            .collect();
        let h = RECORDED.of(&row);
        if key_columns.is_empty() {
            (h.clone(), h)
        } else {
            let key: Vec<String> = key_columns
                .iter()
                .map(|c| format!("{alias}.{}", ident(c)))
                .collect();
            (hash(&key), h)
        }
    };
    let (k, h) = hashes("t");
    let sql = if key_columns.is_empty() {
        format!(
            "INSERT INTO {fp} (k, h, n)
             SELECT h, h, count(*) FROM (SELECT {h} AS h FROM {table} t) x GROUP BY h"
        )
    } else {
        format!("INSERT INTO {fp} (k, h, n) SELECT {k}, {h}, 1 FROM {table} t")
    };
    client.execute(&sql, &[]).map_err(pg_err(ctx()))?;
    if !logged.is_empty() {
        // Each logged row read back as a row of the table that logged it
        // (a partition's columns may lie in another order than its
        // parent's), and hashed by the parent's column names.
        let (wk, wh) = hashes("w");
        let corrections: Vec<String> = logged
            .iter()
            .map(|(rel, leaf, _)| {
                format!(
                    "SELECT {wk} AS k, {wh} AS h,
                            CASE l.kind WHEN '-' THEN 1 ELSE -1 END::bigint AS n
                     FROM {log} l CROSS JOIN LATERAL (SELECT (l.row_text::{leaf}).*) w
                     WHERE l.rel = {rel}"
                )
            })
            .collect();
        client
            .execute(
                &format!(
                    "WITH c AS ({}),
                          touched AS (DELETE FROM {fp} f
                                      WHERE f.k IN (SELECT k FROM c)
                                      RETURNING f.k, f.h, f.n)
                     INSERT INTO {fp} (k, h, n)
                     SELECT k, h, sum(n)::bigint
                     FROM (SELECT k, h, n FROM c UNION ALL SELECT k, h, n FROM touched) x
                     GROUP BY k, h HAVING sum(n) <> 0",
                    corrections.join(" UNION ALL ")
                ),
                &[],
            )
            .map_err(pg_err(ctx()))?;
    }
    let rows: i64 = client
        .query_one(
            &format!(
                "UPDATE ripcord.fingerprint_tables
                 SET rows = (SELECT coalesce(sum(n), 0) FROM {fp})
                 WHERE id = $1 RETURNING rows"
            ),
            &[&id],
        )
        .map_err(pg_err(ctx()))?
        .get(0);
    Ok(Some((what, rows as u64)))
}

/// How a table of a tree is read for its fingerprint and its merge: a
/// partitioned table through its partitions, any other without its
/// inheritance children (each has a fingerprint of its own).
pub(crate) fn only(partitioned: bool) -> &'static str {
    if partitioned {
        ""
    } else {
        "ONLY "
    }
}

/// The columns a fingerprint hashes: stored ones (generated columns
/// follow from them), in order, with their types.
pub(crate) fn hashed_columns(
    client: &mut Client,
    oid: Oid,
    what: &str,
) -> Result<Vec<(String, String)>> {
    Ok(client
        .query(
            "SELECT attname::text, pg_catalog.format_type(atttypid, atttypmod)
             FROM pg_catalog.pg_attribute
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
             ORDER BY attnum",
            &[&oid],
        )
        .map_err(pg_err(format!("reading the columns of {what}")))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// The fingerprint `change` recorded of `table` (`schema.name`), if any: a
/// change applied by an older version has none.
pub fn load(client: &mut Client, change: &str, table: &str) -> Result<Option<Fingerprint>> {
    let ctx = || format!("reading the fingerprint of {table}");
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('ripcord.fingerprint_tables') IS NOT NULL",
            &[],
        )
        .map_err(pg_err(ctx()))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT id, key_columns, columns, types, rows,
                    pg_catalog.to_regclass('ripcord.fingerprint_' || id) IS NOT NULL,
                    coalesce(pg_catalog.to_jsonb(t) ->> 'row_hash', 'row-text')
             FROM ripcord.fingerprint_tables t
             WHERE change = $1 AND table_name = $2 ORDER BY id DESC LIMIT 1",
            &[&change, &table],
        )
        .map_err(pg_err(ctx()))?;
    // A row hash this version does not know (a newer one recorded it) is
    // as good as no fingerprint: the rollback compares two ways.
    Ok(row.and_then(|r| {
        let names: Vec<String> = r.get(2);
        let types: Vec<String> = r.get(3);
        Some(Fingerprint {
            id: r.get(0),
            key_columns: r.get(1),
            columns: names.into_iter().zip(types).collect(),
            rows: r.get(4),
            own_table: r.get(5),
            row_hash: RowHash::from_name(r.get::<_, &str>(6))?,
        })
    }))
}

/// Whether nothing was written to the live table `live` (a quoted name)
/// since `change` committed: the migration engine put a statement trigger
/// on it then (`ripcord_written`, kept until the change is reverted), which
/// marks every INSERT, UPDATE, DELETE and TRUNCATE in
/// `ripcord.written_since`. True only when the table is the one it watched
/// (same oid, same relfilenode: no rewrite since), the trigger is still
/// there and always enabled, the table is in no inheritance tree, and no
/// mark is recorded; the table then holds exactly the rows of its
/// fingerprint, and the three-way merge need not read it.
pub(crate) fn unwritten_since(client: &mut Client, change: &str, live: &str) -> Result<bool> {
    let ctx = || format!("looking for writes to {live} since {change}");
    let has: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('ripcord.written_watch') IS NOT NULL
                AND pg_catalog.to_regclass('ripcord.written_since') IS NOT NULL",
            &[],
        )
        .map_err(pg_err(ctx()))?
        .get(0);
    if !has {
        return Ok(false);
    }
    Ok(client
        .query_one(
            "SELECT EXISTS (
                 SELECT 1 FROM ripcord.written_watch w
                 JOIN pg_catalog.pg_class c ON c.oid = w.rel AND c.relfilenode = w.filenode
                 WHERE w.change = $1 AND w.rel = $2::text::regclass
                   AND c.relkind = 'r'
                   AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid
                               AND t.tgname = 'ripcord_written' AND t.tgenabled = 'A')
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                                   WHERE i.inhrelid = c.oid OR i.inhparent = c.oid)
                   AND NOT EXISTS (SELECT 1 FROM ripcord.written_since s
                                   WHERE s.change = $1 AND s.rel = c.oid))",
            &[&change, &live],
        )
        .map_err(pg_err(ctx()))?
        .get(0))
}
