//! Putting selected tables of a live SQLite database back to their state in
//! a safety snapshot, schema and data, inside the caller's transaction.
//!
//! `ATTACH` is refused inside a transaction, so the snapshot's image is
//! written to a temporary file and read through a second, read-only
//! connection; every write goes through the caller's connection, so the
//! caller's `COMMIT` or `ROLLBACK` decides everything.
//!
//! Rows written since the snapshot are found by comparing a stash of the
//! table taken just before the drop with the restored rows:
//! - with a primary key, a stash row is new when its key is not restored;
//! - without one, the stash minus the restored rows as multisets (each
//!   duplicate counts), which cannot tell an update from an insert, so
//!   `keep-new` is turned into `review` there.

use std::path::{Path, PathBuf};

use ripcord_core::config::OnConflict;
use ripcord_core::revert::TableRevert;
use ripcord_repo::index::Index;
use ripcord_repo::manifest::{Stream, TableStat};
use ripcord_repo::Repository;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};
use crate::sqlite::write_image;
use crate::sqlite_merge3;
use crate::Progress;

/// The review table, in the reverted database.
pub const REVIEW_TABLE: &str = "ripcord_review";

/// Creates the review table when it is missing.
pub(crate) const REVIEW_DDL: &str = "CREATE TABLE IF NOT EXISTS main.ripcord_review (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    change TEXT NOT NULL,
    table_name TEXT NOT NULL,
    row_data TEXT NOT NULL,
    reason TEXT NOT NULL)";

const SAVEPOINT: &str = "ripcord_revert";

/// Puts `tables` back to their state in the snapshot `image` (with its
/// `stats`), each with its `OnConflict` policy for rows written since.
///
/// `conn` is inside a transaction the caller opened (`BEGIN`); this never
/// commits or rolls it back. Its work runs in a savepoint that is rolled
/// back on error, so an error leaves the transaction as it was; the caller
/// rolls back anyway. `change` names the migration in the review table.
#[allow(clippy::too_many_arguments)]
pub fn revert_tables(
    repo: &Repository,
    index: &Index,
    image: &Stream,
    stats: &[TableStat],
    conn: &Connection,
    tables: &[(String, OnConflict)],
    change: &str,
    progress: &dyn Progress,
) -> Result<Vec<TableRevert>> {
    if conn.is_autocommit() {
        // Outside a transaction every statement here would commit by itself.
        return Err(Error::Tool {
            message: "reverting tables needs an open transaction on the connection".into(),
            hint: "run BEGIN on the connection first".into(),
        });
    }
    let mut wanted = Vec::with_capacity(tables.len());
    for (name, policy) in tables {
        let stat = stats
            .iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| not_in_snapshot(name))?;
        wanted.push((stat, *policy));
    }

    let tmp = tempfile::Builder::new()
        .prefix("ripcord-revert-")
        .tempdir()
        .map_err(|e| Error::io("cannot create a temporary folder", e))?;
    let image_path = tmp.path().join("image.db");
    write_image(repo, index, image, &image_path, progress)?;
    let snap = Connection::open_with_flags(
        &image_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| Error::Sqlite {
        path: image_path.clone(),
        source,
    })?;
    let snap = Db {
        conn: &snap,
        path: image_path.clone(),
    };
    let live = Db {
        conn,
        path: conn
            .path()
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from("database"), PathBuf::from),
    };

    live.exec(&format!("SAVEPOINT {SAVEPOINT}"))?;
    let result = revert_all(&snap, &live, &wanted, change, progress);
    match result {
        Ok(reports) => {
            live.exec(&format!("RELEASE {SAVEPOINT}"))?;
            Ok(reports)
        }
        Err(e) => {
            // Undo our part so the caller's transaction is as it was.
            let _ = live.exec(&format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}"));
            Err(e)
        }
    }
}

/// `restore --tables` over a live SQLite database: puts `tables` back as
/// the snapshot's image (already written to `image` and checked) holds
/// them, schema, rows, indexes and triggers, in one transaction. Rows
/// written since are discarded. Foreign keys stay off meanwhile, so that
/// dropping a table runs no `ON DELETE` action of another; then every key
/// of the restored tables, and every key pointing at them, must find its
/// row, or everything is rolled back. Returns the tables checked against
/// the snapshot's row counts and checksums.
pub fn restore_tables(
    image: &Path,
    stats: &[TableStat],
    live_path: &Path,
    tables: &[String],
) -> Result<u64> {
    let wanted: Vec<&TableStat> = tables
        .iter()
        .map(|name| {
            stats
                .iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| not_in_snapshot(name))
        })
        .collect::<Result<_>>()?;
    let open_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Sqlite {
            path: path.clone(),
            source,
        }
    };
    let conn = Connection::open(live_path).map_err(open_err(live_path))?;
    conn.busy_timeout(crate::sqlite::lock_timeout())
        .map_err(open_err(live_path))?;
    let snap_conn = Connection::open_with_flags(
        image,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err(image))?;
    let snap = Db {
        conn: &snap_conn,
        path: image.to_path_buf(),
    };
    let live = Db {
        conn: &conn,
        path: live_path.to_path_buf(),
    };
    live.exec("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE")?;
    let result = (|| {
        let mut fk = ForeignKeys {
            on: false,
            helpers: Vec::new(),
        };
        for (n, stat) in wanted.iter().enumerate() {
            // No change: no captured writes or fingerprints apply, and the
            // snapshot wins over rows written since.
            revert_one(
                &snap,
                &live,
                stat,
                OnConflict::Snapshot,
                n,
                &mut fk,
                "",
                &crate::Quiet,
            )?;
        }
        let names: Vec<&str> = wanted.iter().map(|s| s.name.as_str()).collect();
        check_foreign_keys(&live, &names)
    })();
    match result {
        Ok(()) => live.exec("COMMIT")?,
        Err(e) => {
            let _ = live.exec("ROLLBACK");
            return Err(match e {
                Error::ForeignKeys { detail } => Error::InPlaceConflict {
                    detail: format!("the restored tables would break foreign keys: {detail}"),
                    hint: "nothing was changed; restore the tables they point at (or that point at them) together, e.g. --tables orders,customers".into(),
                },
                e => e,
            });
        }
    }
    drop(snap_conn);
    drop(conn);
    let owned: Vec<TableStat> = wanted.into_iter().cloned().collect();
    crate::sqlite::check_some_tables(live_path, &owned)
}

fn not_in_snapshot(name: &str) -> Error {
    Error::UnknownTable {
        name: name.to_string(),
        target: "the safety snapshot".into(),
    }
}

/// A connection and the path its errors name.
struct Db<'a> {
    conn: &'a Connection,
    path: PathBuf,
}

impl Db<'_> {
    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
    fn exec(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(|e| self.err(e))
    }
    fn strings(&self, sql: &str, param: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([param], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
    fn count(&self, sql: &str) -> Result<u64> {
        self.conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
    /// Columns of `schema.table`, from `PRAGMA table_xinfo`.
    fn columns(&self, schema: &str, table: &str) -> Result<Vec<Column>> {
        let sql = format!("PRAGMA {schema}.table_xinfo({})", quote(table));
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Column {
                    name: r.get(1)?,
                    notnull: r.get::<_, i64>(3)? != 0,
                    has_default: r.get::<_, Option<String>>(4)?.is_some(),
                    pk: r.get(5)?,
                    // 0 is an ordinary column; others are hidden or generated.
                    plain: r.get::<_, i64>(6)? == 0,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
    /// `sqlite_sequence`'s counter for `table`, when it has one.
    fn sequence(&self, table: &str) -> Result<Option<i64>> {
        let has = self
            .conn
            .query_row(
                "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
                [],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .is_some();
        if !has {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT seq FROM main.sqlite_sequence WHERE name = ?1",
                [table],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    notnull: bool,
    has_default: bool,
    pk: i64,
    plain: bool,
}

/// What the snapshot holds for one table.
struct SnapTable {
    create: String,
    /// Indexes and triggers, recreated after the rows are in.
    indexes: Vec<String>,
    triggers: Vec<String>,
    seq: Option<i64>,
}

fn read_snap_table(snap: &Db, name: &str) -> Result<SnapTable> {
    let create = snap
        .strings(
            "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
            name,
        )?
        .into_iter()
        .next()
        .ok_or_else(|| not_in_snapshot(name))?;
    // Automatic indexes (UNIQUE, PRIMARY KEY) have no SQL: CREATE TABLE makes them.
    let indexes = snap.strings(
        "SELECT sql FROM main.sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL ORDER BY rowid",
        name,
    )?;
    let triggers = snap.strings(
        "SELECT sql FROM main.sqlite_master WHERE type = 'trigger' AND tbl_name = ?1 AND sql IS NOT NULL \
         AND name NOT LIKE 'ripcord\\_capture\\_%' ESCAPE '\\' ORDER BY rowid",
        name,
    )?;
    Ok(SnapTable {
        create,
        indexes,
        triggers,
        seq: snap.sequence(name)?,
    })
}

fn revert_all(
    snap: &Db,
    live: &Db,
    wanted: &[(&TableStat, OnConflict)],
    change: &str,
    progress: &dyn Progress,
) -> Result<Vec<TableRevert>> {
    let fk_on = live
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get::<_, i64>(0))
        .map_err(|e| live.err(e))?
        != 0;
    let mut fk = ForeignKeys {
        on: fk_on,
        helpers: Vec::new(),
    };
    if fk_on {
        // `foreign_keys` cannot change inside a transaction; deferring lets
        // the drop and reload pass, and violations left are found by the
        // check below (and would still be refused at COMMIT). SQLite
        // switches it off again at COMMIT or ROLLBACK.
        live.exec("PRAGMA defer_foreign_keys = ON")?;
    }
    let mut out = Vec::with_capacity(wanted.len());
    for (n, (stat, policy)) in wanted.iter().enumerate() {
        progress.item(&stat.name);
        out.push(revert_one(
            snap, live, stat, *policy, n, &mut fk, change, progress,
        )?);
    }
    if fk_on {
        for index in &fk.helpers {
            // Gone already when its table was put back after it was made.
            live.exec(&format!("DROP INDEX IF EXISTS main.{}", quote(index)))?;
        }
        let names: Vec<&str> = wanted.iter().map(|(s, _)| s.name.as_str()).collect();
        check_foreign_keys(live, &names)?;
    }
    Ok(out)
}

/// Foreign-key enforcement during a revert, and the indexes made for it.
struct ForeignKeys {
    on: bool,
    /// Indexes made on child columns, dropped before the revert ends.
    helpers: Vec<String>,
}

impl ForeignKeys {
    /// With enforcement on, dropping a parent table deletes its rows one by
    /// one, and each deleted (and each reloaded) parent row looks for the
    /// child rows pointing at it: a scan of the child table for every
    /// parent row when the child column has no index (20k parents × 300k
    /// children: 6·10⁹ rows read). An index on each such child column,
    /// made inside the transaction and dropped before it ends, makes each
    /// look-up a seek.
    fn index_children(&mut self, live: &Db, parent: &str) -> Result<()> {
        if !self.on {
            return Ok(());
        }
        let mut stmt = live
            .conn
            .prepare(
                "SELECT m.name, f.id, f.\"from\"
                   FROM main.sqlite_master AS m, pragma_foreign_key_list(m.name) AS f
                  WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE
                  ORDER BY m.name, f.id, f.seq",
            )
            .map_err(|e| live.err(e))?;
        let rows = stmt
            .query_map([parent], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| live.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| live.err(e))?;
        // (child, key id) -> its columns, in key order.
        let mut keys: Vec<(String, i64, Vec<String>)> = Vec::new();
        for (child, id, column) in rows {
            match keys.last_mut() {
                Some((c, i, cols)) if *c == child && *i == id => cols.push(column),
                _ => keys.push((child, id, vec![column])),
            }
        }
        for (child, _, columns) in keys {
            let covered = live
                .conn
                .query_row(
                    "SELECT count(*) FROM pragma_index_list(?1) AS l, pragma_index_info(l.name) AS i
                      WHERE l.partial = 0 AND i.seqno = 0 AND i.name = ?2 COLLATE NOCASE",
                    [&child, &columns[0]],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| live.err(e))?
                > 0;
            if covered {
                continue;
            }
            let name = format!("ripcord_fk_helper_{}", self.helpers.len());
            let list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
            live.exec(&format!(
                "CREATE INDEX main.{} ON {} ({})",
                quote(&name),
                quote(&child),
                list.join(", ")
            ))?;
            self.helpers.push(name);
        }
        Ok(())
    }
}

/// Before the caller commits: every foreign key of the reverted tables, and
/// every foreign key pointing at them, still finds its row. A violation
/// fails the revert (the savepoint is rolled back) naming the rows, where
/// COMMIT would only say "FOREIGN KEY constraint failed".
fn check_foreign_keys(live: &Db, tables: &[&str]) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let mut total = 0u64;
    let mut seen = std::collections::BTreeSet::new();
    for table in tables {
        // The table's own keys, then those of tables pointing at it.
        let mut children = vec![(table.to_string(), None)];
        children.extend(
            live.strings(
                "SELECT DISTINCT m.name
                   FROM main.sqlite_master AS m, pragma_foreign_key_list(m.name) AS f
                  WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE
                    AND m.name <> ?1 COLLATE NOCASE",
                table,
            )?
            .into_iter()
            .map(|c| (c, Some(table.to_string()))),
        );
        for (child, parent) in children {
            if !seen.insert((child.clone(), parent.clone())) {
                continue;
            }
            let mut stmt = live
                .conn
                .prepare(
                    "SELECT count(*), min(rowid), parent FROM pragma_foreign_key_check(?1)
                      WHERE ?2 IS NULL OR parent = ?2 COLLATE NOCASE
                      GROUP BY parent ORDER BY parent",
                )
                .map_err(|e| live.err(e))?;
            let found = stmt
                .query_map(rusqlite::params![child, parent], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(|e| live.err(e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| live.err(e))?;
            for (n, rowid, parent) in found {
                total += n as u64;
                let first = rowid.map_or(String::new(), |r| format!(" (first: rowid {r})"));
                problems.push(format!(
                    "{} of {child} {} at rows of {parent} that do not exist{first}",
                    ripcord_core::text::counted(n as u64, "row"),
                    if n == 1 { "points" } else { "point" }
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::ForeignKeys {
        detail: format!(
            "{}: {}",
            ripcord_core::text::counted(total, "violation"),
            problems.join("; ")
        ),
    })
}

#[allow(clippy::too_many_arguments)]
fn revert_one(
    snap: &Db,
    live: &Db,
    stat: &TableStat,
    policy: OnConflict,
    n: usize,
    fk: &mut ForeignKeys,
    change: &str,
    progress: &dyn Progress,
) -> Result<TableRevert> {
    let name = stat.name.as_str();
    let snap_table = read_snap_table(snap, name)?;
    let stash = format!("ripcord_stash_{n}");

    // The table as it is now, found the way SQLite finds names (any case).
    let current: Option<String> = live
        .conn
        .query_row(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| live.err(e))?;

    let mut before_seq = None;
    let mut current_pk = Vec::new();
    if let Some(cur) = &current {
        if fk.on {
            refuse_fk_actions(live, cur)?;
        }
        fk.index_children(live, cur)?;
        let mut pk: Vec<&Column> = Vec::new();
        let cols = live.columns("main", cur)?;
        pk.extend(cols.iter().filter(|c| c.pk > 0));
        pk.sort_by_key(|c| c.pk);
        current_pk = pk.into_iter().map(|c| c.name.clone()).collect();
        before_seq = live.sequence(cur)?;
        live.exec(&format!(
            "DROP TABLE IF EXISTS temp.{stash};
             CREATE TEMP TABLE {stash} AS SELECT * FROM main.{cq};
             DROP TABLE main.{cq};",
            cq = quote(cur)
        ))?;
    }

    live.exec(&snap_table.create)?;
    // Its rows are about to go in: children pointing at it (itself
    // included) are looked up for each.
    fk.index_children(live, name)?;
    let loaded = load_rows(snap, live, name)?;
    if loaded != stat.rows {
        return Err(Error::Mismatch {
            detail: format!(
                "table {name}: {loaded} rows loaded, the snapshot recorded {}",
                stat.rows
            ),
        });
    }
    // The writes made while the snapshot was taken: the table is now as it
    // was when the change began.
    let (inserted, deleted) =
        crate::sqlite_delta::apply(live.conn, name, change).map_err(|e| live.err(e))?;
    let restored_rows = (loaded + inserted).saturating_sub(deleted);
    for sql in &snap_table.indexes {
        live.exec(sql)?;
    }

    let mut report = TableRevert {
        table: name.to_string(),
        policy: None,
        restored_rows,
        recreated: current.is_none(),
        ..TableRevert::default()
    };
    if current.is_some()
        && !sqlite_merge3::merge(
            live.conn,
            name,
            &stash,
            change,
            policy,
            progress,
            &mut report,
        )?
    {
        merge_new_rows(live, name, &stash, &current_pk, policy, change, &mut report)?;
    }

    // After the rows: triggers already ran when those rows were first written.
    for sql in &snap_table.triggers {
        live.exec(sql)?;
    }

    // Ids handed out before the revert are never handed out again.
    let floor = [before_seq, snap_table.seq].into_iter().flatten().max();
    if let Some(floor) = floor {
        let autoinc = live
            .count(
                "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
            )?
            > 0;
        if autoinc {
            let updated = live
                .conn
                .execute(
                    "UPDATE main.sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
                    rusqlite::params![name, floor],
                )
                .map_err(|e| live.err(e))?;
            if updated == 0 && is_autoincrement(&snap_table.create) {
                live.conn
                    .execute(
                        "INSERT INTO main.sqlite_sequence (name, seq) VALUES (?1, ?2)",
                        rusqlite::params![name, floor],
                    )
                    .map_err(|e| live.err(e))?;
            }
        }
    }

    if current.is_some() {
        live.exec(&format!("DROP TABLE temp.{stash}"))?;
    }
    Ok(report)
}

fn is_autoincrement(create: &str) -> bool {
    create.to_ascii_uppercase().contains("AUTOINCREMENT")
}

/// With foreign keys on, `DROP TABLE` deletes every row first, which runs
/// the `ON DELETE` actions of child tables: CASCADE would delete their rows,
/// SET NULL/DEFAULT change them, RESTRICT fails even when deferred.
fn refuse_fk_actions(live: &Db, table: &str) -> Result<()> {
    let children = live.strings(
        "SELECT m.name || ' (ON DELETE ' || f.on_delete || ')'
           FROM main.sqlite_master AS m, pragma_foreign_key_list(m.name) AS f
          WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE
            AND f.on_delete <> 'NO ACTION'
            AND (m.name <> ?1 COLLATE NOCASE OR f.on_delete = 'RESTRICT')",
        table,
    )?;
    if children.is_empty() {
        return Ok(());
    }
    Err(Error::Unsafe {
        entry: table.to_string(),
        why: format!(
            "foreign keys are on and dropping it would run the delete actions of {}",
            children.join(", ")
        ),
    })
}

/// Streams the snapshot's rows of `name` into the new live table and
/// returns how many went in. Rowids are kept, so row order and ids match.
fn load_rows(snap: &Db, live: &Db, name: &str) -> Result<u64> {
    let q = quote(name);
    let cols: Vec<String> = snap
        .columns("main", name)?
        .into_iter()
        // Generated columns compute themselves and refuse values.
        .filter(|c| c.plain)
        .map(|c| c.name)
        .collect();
    let rowid = rowid_name(snap, name, &cols);
    let mut names: Vec<String> = rowid.iter().map(|r| r.to_string()).collect();
    names.extend(cols.iter().map(|c| quote(c)));
    let list = names.join(", ");
    let order = if rowid.is_some() { " ORDER BY 1" } else { "" };
    let mut read = snap
        .conn
        .prepare(&format!("SELECT {list} FROM main.{q}{order}"))
        .map_err(|e| snap.err(e))?;
    let marks = vec!["?"; names.len()].join(", ");
    let mut write = live
        .conn
        .prepare(&format!("INSERT INTO main.{q} ({list}) VALUES ({marks})"))
        .map_err(|e| live.err(e))?;
    let mut rows = read.query([]).map_err(|e| snap.err(e))?;
    let mut count = 0u64;
    let mut values: Vec<Value> = Vec::with_capacity(names.len());
    while let Some(row) = rows.next().map_err(|e| snap.err(e))? {
        values.clear();
        for i in 0..names.len() {
            values.push(row.get::<_, Value>(i).map_err(|e| snap.err(e))?);
        }
        write
            .execute(rusqlite::params_from_iter(values.iter()))
            .map_err(|e| live.err(e))?;
        count += 1;
    }
    Ok(count)
}

/// A name for the rowid not taken by a column, or `None` for a WITHOUT
/// ROWID table (or one whose columns take all three names).
fn rowid_name(snap: &Db, table: &str, cols: &[String]) -> Option<&'static str> {
    let alias = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|a| !cols.iter().any(|c| c.eq_ignore_ascii_case(a)))?;
    // Preparing it fails exactly on WITHOUT ROWID tables.
    snap.conn
        .prepare(&format!(
            "SELECT {alias} FROM main.{} LIMIT 0",
            quote(table)
        ))
        .ok()
        .map(|_| alias)
}

/// Resolves the rows of the stash that the restored table lacks.
fn merge_new_rows(
    live: &Db,
    name: &str,
    stash: &str,
    current_pk: &[String],
    policy: OnConflict,
    change: &str,
    report: &mut TableRevert,
) -> Result<()> {
    let q = quote(name);
    let restored = live.columns("main", name)?;
    let stash_cols = live.columns("temp", stash)?;
    let in_stash = |c: &str| stash_cols.iter().any(|s| s.name.eq_ignore_ascii_case(c));
    // Compared and carried over on the columns both sides have.
    let common: Vec<&Column> = restored
        .iter()
        .filter(|c| c.plain && in_stash(&c.name))
        .collect();
    let key_usable = !current_pk.is_empty()
        && current_pk
            .iter()
            .all(|k| common.iter().any(|c| c.name.eq_ignore_ascii_case(k)));
    let cols: Vec<String> = common.iter().map(|c| quote(&c.name)).collect();
    let list = cols.join(", ");

    // The new rows as `{with} ... {select}`, selecting `list`.
    let (with, select) = if key_usable {
        let matches: Vec<String> = current_pk
            .iter()
            .map(|k| format!("r.{0} IS s.{0}", quote(k)))
            .collect();
        (
            String::new(),
            format!(
                "SELECT {sl} FROM temp.{stash} AS s WHERE NOT EXISTS (SELECT 1 FROM main.{q} AS r WHERE {m})",
                sl = prefixed("s", &cols),
                m = matches.join(" AND ")
            ),
        )
    } else {
        // Multiset difference: the k-th copy of a row is new when the
        // restored table has fewer than k copies.
        let matches: Vec<String> = cols
            .iter()
            .map(|c| format!("r.{c} IS s.{c}"))
            .chain(std::iter::once("r.ripcord_n = s.ripcord_n".to_string()))
            .collect();
        (
            format!(
                "WITH s AS MATERIALIZED (SELECT {list}, row_number() OVER (PARTITION BY {list}) AS ripcord_n FROM temp.{stash}),
                      r AS MATERIALIZED (SELECT {list}, row_number() OVER (PARTITION BY {list}) AS ripcord_n FROM main.{q}) "
            ),
            format!(
                "SELECT {sl} FROM s WHERE NOT EXISTS (SELECT 1 FROM r WHERE {m})",
                sl = prefixed("s", &cols),
                m = matches.join(" AND ")
            ),
        )
    };
    if cols.is_empty() {
        // Nothing in common: rows written since can be neither matched nor
        // carried over, and dropping them silently would lose data.
        let stashed = live.count(&format!("SELECT count(*) FROM temp.{stash}"))?;
        if stashed > 0 && policy != OnConflict::Snapshot {
            return Err(Error::Unsafe {
                entry: name.to_string(),
                why: "the table shares no column with its snapshot, so rows written since cannot be kept".into(),
            });
        }
        report.policy = Some(policy);
        report.discarded_rows = stashed;
        return Ok(());
    }

    // A kept row has no value for columns the snapshot has and the stash
    // lacks: one that must be set and has no default makes it unkeepable.
    let unfillable: Vec<&str> = restored
        .iter()
        .filter(|c| c.plain && c.notnull && !c.has_default && !in_stash(&c.name))
        .map(|c| c.name.as_str())
        .collect();
    let (applied, reason) = match policy {
        OnConflict::KeepNew if !key_usable => (
            OnConflict::Review,
            "written after the safety snapshot to a table without a primary key: it cannot be told from a changed row".to_string(),
        ),
        OnConflict::KeepNew if !unfillable.is_empty() => (
            OnConflict::Review,
            format!(
                "written after the safety snapshot; the restored table needs {} which the row lacks",
                unfillable.join(", ")
            ),
        ),
        other => (
            other,
            "written after the safety snapshot, under the review policy".to_string(),
        ),
    };
    report.policy = Some(applied);
    match applied {
        OnConflict::KeepNew => {
            let sql = format!("{with}INSERT INTO main.{q} ({list}) {select}");
            report.kept_rows = live.conn.execute(&sql, []).map_err(|e| live.err(e))? as u64;
        }
        OnConflict::Snapshot => {
            report.discarded_rows =
                live.count(&format!("{with}SELECT count(*) FROM ({select})"))?;
        }
        OnConflict::Review => {
            live.exec(REVIEW_DDL)?;
            let names: Vec<&str> = common.iter().map(|c| c.name.as_str()).collect();
            let sql = format!(
                "{with}INSERT INTO main.{REVIEW_TABLE} (at, change, table_name, row_data, reason)
                 SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?1, ?2, {json}, ?3 FROM ({select}) AS n",
                json = json_row("n", &names)
            );
            report.review_rows = live
                .conn
                .execute(&sql, rusqlite::params![change, name, reason])
                .map_err(|e| live.err(e))? as u64;
        }
    }
    if key_usable {
        // Rows there before that hold other values now (changed by the
        // change itself, or updated since): the snapshot's values were put
        // back. Counted, and set aside under review.
        let on: Vec<String> = current_pk
            .iter()
            .map(|k| format!("r.{0} IS s.{0}", quote(k)))
            .collect();
        let differs: Vec<String> = cols.iter().map(|c| format!("r.{c} IS NOT s.{c}")).collect();
        let from = format!(
            "FROM temp.{stash} AS s JOIN main.{q} AS r ON {} WHERE {}",
            on.join(" AND "),
            differs.join(" OR ")
        );
        report.changed_rows = live.count(&format!("SELECT count(*) {from}"))?;
        if report.changed_rows > 0 && applied == OnConflict::Review {
            let names: Vec<&str> = common.iter().map(|c| c.name.as_str()).collect();
            let sql = format!(
                "INSERT INTO main.{REVIEW_TABLE} (at, change, table_name, row_data, reason)
                 SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?1, ?2, {json}, ?3 {from}",
                json = json_row("s", &names)
            );
            live.conn
                .execute(
                    &sql,
                    rusqlite::params![
                        change,
                        name,
                        "changed since the safety snapshot; the snapshot's values were put back"
                    ],
                )
                .map_err(|e| live.err(e))?;
        }
    }
    Ok(())
}

/// A JSON object of the row's columns. JSON has no bytes, so a BLOB becomes
/// `{"$blob": "<hex>"}`. Built in pieces because SQL functions take a
/// limited number of arguments.
pub(crate) fn json_row(alias: &str, names: &[&str]) -> String {
    let value = |c: &str| {
        let col = format!("{alias}.{}", quote(c));
        format!(
            "CASE WHEN typeof({col}) = 'blob' THEN json_object('$blob', hex({col})) ELSE {col} END"
        )
    };
    let mut chunks = names.chunks(40);
    let first = chunks.next().unwrap_or(&[]);
    let mut expr = format!(
        "json_object({})",
        first
            .iter()
            .map(|c| format!("{}, {}", sql_string(c), value(c)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for chunk in chunks {
        let pairs: Vec<String> = chunk
            .iter()
            .map(|c| format!("{}, {}", sql_string(&json_path(c)), value(c)))
            .collect();
        expr = format!("json_insert({expr}, {})", pairs.join(", "));
    }
    expr
}

fn json_path(key: &str) -> String {
    format!("$.\"{key}\"")
}

fn prefixed(alias: &str, cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An SQL identifier, double-quoted.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
