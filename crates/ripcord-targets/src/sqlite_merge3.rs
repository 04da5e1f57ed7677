//! Three-way merge on rollback, on SQLite: the snapshot (now loaded in the
//! restored table), the fingerprint recorded right after the change, and
//! the replaced live table (the stash). The rules are those of the
//! PostgreSQL side (`postgres/merge3.rs`): per key, a live row whose hash is
//! the fingerprint's was left alone by the application; a live key the
//! fingerprint lacks was inserted, a different hash updated, a fingerprint
//! key no longer live deleted. A table without a primary key is a multiset
//! of whole rows.

use ripcord_core::config::OnConflict;
use ripcord_core::revert::TableRevert;
use rusqlite::Connection;

use crate::error::Result;
use crate::sqlite_fingerprint::{self as fp, hash, quote, sqlite_err};
use crate::sqlite_revert::{json_row, REVIEW_DDL, REVIEW_TABLE};
use crate::Progress;

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

fn has(cols: &[String], c: &str) -> bool {
    cols.iter().any(|x| x.eq_ignore_ascii_case(c))
}

fn counts(conn: &Connection, sql: &str) -> Result<Vec<u64>> {
    conn.query_row(sql, [], |r| {
        let n = r.as_ref().column_count();
        (0..n)
            .map(|i| {
                r.get::<_, Option<i64>>(i)
                    .map(|v| v.unwrap_or(0).max(0) as u64)
            })
            .collect::<rusqlite::Result<Vec<u64>>>()
    })
    .map_err(sqlite_err(conn))
}

/// Resolves the rows of `stash` (the replaced table, in `temp`) against
/// the restored table `name` by a three-way comparison. `Ok(false)`, with
/// nothing changed, when `change` recorded no fingerprint of it that fits:
/// the caller compares two ways.
pub(crate) fn merge(
    conn: &Connection,
    name: &str,
    stash: &str,
    change: &str,
    policy: OnConflict,
    progress: &dyn Progress,
    report: &mut TableRevert,
) -> Result<bool> {
    let Some(f) = fp::load(conn, change, name)? else {
        return Ok(false);
    };
    fp::register(conn)?;
    let e = sqlite_err(conn);
    let exec = |sql: &str| conn.execute_batch(sql).map_err(sqlite_err(conn));
    let run = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
        conn.execute(sql, params)
            .map(|n| n as u64)
            .map_err(sqlite_err(conn))
    };
    let q = quote(name);
    let (live_cols, _) = fp::columns(conn, "temp", stash)?;
    let (rest_cols, _) = fp::columns(conn, "main", name)?;
    let fallback = |why: String| -> Result<bool> {
        progress.warn(format!(
            "{name}: {why}; rows written since the change are compared with the snapshot only"
        ));
        Ok(false)
    };
    if let Some(c) = f.columns.iter().find(|c| !has(&live_cols, c)) {
        return fallback(format!("column {c}, hashed after the change, is gone"));
    }
    if let Some(k) = f.key_columns.iter().find(|k| !has(&rest_cols, k)) {
        return fallback(format!("key column {k} is not in the snapshot"));
    }
    let carry: Vec<String> = rest_cols
        .iter()
        .filter(|c| has(&live_cols, c))
        .cloned()
        .collect();
    if carry.is_empty() {
        return fallback("it shares no column with its snapshot".into());
    }
    let same_shape =
        rest_cols.len() == f.columns.len() && f.columns.iter().all(|c| has(&rest_cols, c));
    let altered = if same_shape { "0" } else { "1" };
    let lh = hash("s", &f.columns);
    let rargs: Vec<String> = f
        .columns
        .iter()
        .map(|c| {
            if has(&rest_cols, c) {
                format!("r.{}", quote(c))
            } else {
                "NULL".into()
            }
        })
        .collect();
    let rh = format!("ripcord_hash({})", rargs.join(", "));
    let cols = carry
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let select = carry
        .iter()
        .map(|c| format!("s.{}", quote(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let live_names: Vec<&str> = live_cols.iter().map(String::as_str).collect();
    let rest_names: Vec<&str> = rest_cols.iter().map(String::as_str).collect();
    // Columns a new row must have and the live rows lack.
    let unfillable: Vec<String> = {
        let sql = format!("PRAGMA main.table_xinfo({q})");
        let mut stmt = conn.prepare(&sql).map_err(&e)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(3)? != 0,
                    r.get::<_, Option<String>>(4)?.is_some(),
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        // An INTEGER PRIMARY KEY fills itself.
        let single_pk = rows.iter().filter(|r| r.3 > 0).count() == 1;
        rows.into_iter()
            .filter(|(c, notnull, default, pk)| {
                let fills_itself = *default || (single_pk && *pk > 0);
                *notnull && !fills_itself && !has(&carry, c)
            })
            .map(|r| r.0)
            .collect()
    };
    let review = || exec(REVIEW_DDL);
    let fid = f.id;
    report.three_way = true;
    report.policy = Some(policy);
    let keep = policy == OnConflict::KeepNew;
    exec(
        "DROP TABLE IF EXISTS temp.ripcord_l; DROP TABLE IF EXISTS temp.ripcord_r;
         DROP TABLE IF EXISTS temp.ripcord_m;",
    )?;
    if !f.key_columns.is_empty() {
        let lk = hash("s", &f.key_columns);
        let rk = hash("r", &f.key_columns);
        exec(&format!(
            "CREATE TEMP TABLE ripcord_l AS SELECT {lk} AS k, {lh} AS h, s.rowid AS lid FROM temp.{stash} AS s;
             CREATE INDEX temp.ripcord_l_k ON ripcord_l (k);
             CREATE TEMP TABLE ripcord_r AS SELECT {rk} AS k, {rh} AS h FROM main.{q} AS r;
             CREATE INDEX temp.ripcord_r_k ON ripcord_r (k);
             CREATE TEMP TABLE ripcord_m AS
             SELECT y.*, CASE WHEN fh IS NULL THEN in_r
                              WHEN lid IS NULL THEN in_r AND ({altered} OR rh IS NOT fh)
                              ELSE {altered} OR NOT in_r OR rh IS NOT fh END AS conflict
             FROM (SELECT x.k, x.lid, x.lh, x.fh, r.k IS NOT NULL AS in_r, r.h AS rh
                   FROM (SELECT l.k AS k, l.lid AS lid, l.h AS lh, f.h AS fh
                         FROM ripcord_l l LEFT JOIN main.ripcord_fingerprint f ON f.tab = {fid} AND f.k = l.k
                         WHERE f.h IS NOT l.h
                         UNION ALL
                         SELECT f.k, NULL, NULL, f.h FROM main.ripcord_fingerprint f
                         WHERE f.tab = {fid} AND NOT EXISTS (SELECT 1 FROM ripcord_l l WHERE l.k = f.k)) x
                   LEFT JOIN ripcord_r r ON r.k = x.k) y;
             CREATE INDEX temp.ripcord_m_k ON ripcord_m (k);"
        ))?;
        let c = counts(
            conn,
            "SELECT count(*) FILTER (WHERE lid IS NOT NULL AND fh IS NULL),
                    count(*) FILTER (WHERE lid IS NOT NULL AND fh IS NOT NULL),
                    count(*) FILTER (WHERE lid IS NULL),
                    count(*) FILTER (WHERE conflict),
                    count(*) FILTER (WHERE lid IS NULL AND NOT in_r),
                    count(*) FILTER (WHERE lid IS NOT NULL AND in_r)
             FROM ripcord_m",
        )?;
        let (written_over, deleted_absent) = (c[5], c[4]);
        report.inserted_since = c[0];
        report.updated_since = c[1];
        report.deleted_since = c[2];
        report.conflicts = c[3];
        let u = counts(
            conn,
            &format!(
                // Each side through an index: a FULL JOIN on a subquery
                // compares every row with every row.
                "SELECT (SELECT count(*) FROM ripcord_r r
                         WHERE NOT EXISTS (SELECT 1 FROM main.ripcord_fingerprint f
                                           WHERE f.tab = {fid} AND f.k = r.k)
                           AND NOT EXISTS (SELECT 1 FROM ripcord_m m WHERE m.k = r.k)),
                        (SELECT count(*) FROM main.ripcord_fingerprint f
                         WHERE f.tab = {fid}
                           AND NOT EXISTS (SELECT 1 FROM ripcord_r r WHERE r.k = f.k)
                           AND NOT EXISTS (SELECT 1 FROM ripcord_m m WHERE m.k = f.k)),
                        (SELECT count(*) FROM ripcord_r r
                         JOIN main.ripcord_fingerprint f ON f.tab = {fid} AND f.k = r.k
                         WHERE ({altered} OR r.h IS NOT f.h)
                           AND NOT EXISTS (SELECT 1 FROM ripcord_m m WHERE m.k = r.k))"
            ),
        )?;
        report.undone_rows = u[0] + u[2];
        report.removed_rows = u[1];
        report.changed_rows = u[2] + if keep { 0 } else { written_over };
        let written = "CASE WHEN m.fh IS NULL THEN 'inserted' ELSE 'updated' END \
                       || ' by the application after the change' \
                       || CASE WHEN m.conflict THEN ', which had changed this row too (conflict)' ELSE '' END";
        let new_rows = format!(
            "FROM ripcord_m m JOIN temp.{stash} AS s ON s.rowid = m.lid
             WHERE m.lid IS NOT NULL AND NOT m.in_r"
        );
        match policy {
            OnConflict::KeepNew => {
                let deleted = run(
                    &format!(
                        "DELETE FROM main.{q} AS r WHERE {rk} IN
                         (SELECT k FROM ripcord_m WHERE lid IS NULL AND in_r)"
                    ),
                    &[],
                )?;
                report.deleted_kept = deleted + deleted_absent;
                let set: Vec<String> = carry
                    .iter()
                    .filter(|c| !has(&f.key_columns, c))
                    .map(|c| format!("{0} = s.{0}", quote(c)))
                    .collect();
                let on: Vec<String> = f
                    .key_columns
                    .iter()
                    .map(|k| format!("r.{0} IS s.{0}", quote(k)))
                    .collect();
                let updated = if set.is_empty() {
                    written_over
                } else {
                    run(
                        &format!(
                            "UPDATE main.{q} AS r SET {} FROM
                             (SELECT s.* FROM ripcord_m m JOIN temp.{stash} AS s ON s.rowid = m.lid
                              WHERE m.lid IS NOT NULL AND m.in_r) AS s
                             WHERE {}",
                            set.join(", "),
                            on.join(" AND ")
                        ),
                        &[],
                    )?
                };
                let inserted = if unfillable.is_empty() {
                    run(
                        &format!("INSERT INTO main.{q} ({cols}) SELECT {select} {new_rows}"),
                        &[],
                    )?
                } else {
                    review()?;
                    let n = run(
                        &format!(
                            "INSERT INTO main.{REVIEW_TABLE} (at, change, table_name, row_data, reason)
                             SELECT {NOW}, ?1, ?2, {}, {written} || ', and not kept: the restored table needs ' || ?3 || ', which the row lacks' {new_rows}",
                            json_row("s", &live_names)
                        ),
                        &[&change, &name, &unfillable.join(", ")],
                    )?;
                    unkept(progress, name, n, &unfillable);
                    report.review_rows += n;
                    0
                };
                report.kept_rows = updated + inserted;
            }
            OnConflict::Snapshot => {
                report.discarded_rows = report.inserted_since + report.updated_since;
            }
            OnConflict::Review => {
                review()?;
                let n = run(
                    &format!(
                        "INSERT INTO main.{REVIEW_TABLE} (at, change, table_name, row_data, reason)
                         SELECT {NOW}, ?1, ?2, {}, {written}
                                || CASE WHEN m.in_r THEN '; the table holds the snapshot''s row'
                                   ELSE '; it is not in the table' END
                         FROM ripcord_m m JOIN temp.{stash} AS s ON s.rowid = m.lid
                         WHERE m.lid IS NOT NULL",
                        json_row("s", &live_names)
                    ),
                    &[&change, &name],
                )?;
                let d = run(
                    &format!(
                        "INSERT INTO main.{REVIEW_TABLE} (at, change, table_name, row_data, reason)
                         SELECT {NOW}, ?1, ?2, {}, 'deleted by the application after the change'
                                || CASE WHEN m.conflict THEN ', which had changed this row too (conflict)' ELSE '' END
                                || '; the snapshot''s row is back in the table'
                         FROM main.{q} AS r JOIN ripcord_m m ON m.k = {rk}
                         WHERE m.lid IS NULL",
                        json_row("r", &rest_names)
                    ),
                    &[&change, &name],
                )?;
                report.review_rows = n + d;
            }
        }
    } else {
        exec(&format!(
            "CREATE TEMP TABLE ripcord_l AS SELECT {lh} AS h, s.rowid AS lid FROM temp.{stash} AS s;
             CREATE TEMP TABLE ripcord_r AS SELECT {rh} AS h, r.rowid AS rid FROM main.{q} AS r;
             CREATE TEMP TABLE ripcord_m AS
             SELECT h, sum(nl) AS nl, sum(nf) AS nf, sum(nr) AS nr
             FROM (SELECT h, 1 AS nl, 0 AS nf, 0 AS nr FROM ripcord_l
                   UNION ALL SELECT h, 0, n, 0 FROM main.ripcord_fingerprint WHERE tab = {fid}
                   UNION ALL SELECT h, 0, 0, 1 FROM ripcord_r)
             GROUP BY h HAVING sum(nl) <> sum(nf) OR sum(nr) <> sum(nf);
             CREATE INDEX temp.ripcord_m_h ON ripcord_m (h);"
        ))?;
        let c = counts(
            conn,
            &format!(
                "SELECT sum(max(nl - nf, 0)), sum(max(nf - nl, 0)), sum(max(nr - nf, 0)),
                        sum(max(nf - nr, 0)), sum(min(max(nf - nl, 0), nr)),
                        (SELECT count(*) FROM main.{q})
                 FROM ripcord_m"
            ),
        )?;
        report.inserted_since = c[0];
        report.deleted_since = c[1];
        report.undone_rows = if same_shape { c[2] } else { c[5] };
        report.removed_rows = c[3];
        let written = "'inserted by the application after the change (without a primary key an \
                       update shows as a delete and an insert)'";
        let added_from =
            "FROM (SELECT lid, h, row_number() OVER (PARTITION BY h) AS rn FROM ripcord_l
                                WHERE h IN (SELECT h FROM ripcord_m WHERE nl > nf)) AS y
                          JOIN ripcord_m m ON m.h = y.h";
        let added = format!(
            "{added_from} JOIN temp.{stash} AS s ON s.rowid = y.lid WHERE y.rn <= m.nl - m.nf"
        );
        let taken = "SELECT y.rid FROM (SELECT rid, h, row_number() OVER (PARTITION BY h) AS rn
                                        FROM ripcord_r WHERE h IN (SELECT h FROM ripcord_m WHERE nf > nl)) AS y
                     JOIN ripcord_m m ON m.h = y.h WHERE y.rn <= m.nf - m.nl";
        match policy {
            OnConflict::KeepNew => {
                if c[4] > 0 {
                    run(
                        &format!("DELETE FROM main.{q} WHERE rowid IN ({taken})"),
                        &[],
                    )?;
                }
                report.deleted_kept = report.deleted_since;
                report.kept_rows = if unfillable.is_empty() {
                    run(
                        &format!("INSERT INTO main.{q} ({cols}) SELECT {select} {added}"),
                        &[],
                    )?
                } else {
                    review()?;
                    let n = run(
                        &format!(
                            "INSERT INTO main.{REVIEW_TABLE} (at, change, table_name, row_data, reason)
                             SELECT {NOW}, ?1, ?2, {}, {written} || ', and not kept: the restored table needs ' || ?3 || ', which the row lacks' {added}",
                            json_row("s", &live_names)
                        ),
                        &[&change, &name, &unfillable.join(", ")],
                    )?;
                    unkept(progress, name, n, &unfillable);
                    report.review_rows += n;
                    0
                };
            }
            OnConflict::Snapshot => report.discarded_rows = report.inserted_since,
            OnConflict::Review => {
                review()?;
                let n = run(
                    &format!(
                        "INSERT INTO main.{REVIEW_TABLE} (at, change, table_name, row_data, reason)
                         SELECT {NOW}, ?1, ?2, {}, {written} || '; it is not in the table' {added}",
                        json_row("s", &live_names)
                    ),
                    &[&change, &name],
                )?;
                let d = run(
                    &format!(
                        "INSERT INTO main.{REVIEW_TABLE} (at, change, table_name, row_data, reason)
                         SELECT {NOW}, ?1, ?2, {}, 'deleted by the application after the change; it is back in the table'
                         FROM main.{q} AS r WHERE r.rowid IN ({taken})",
                        json_row("r", &rest_names)
                    ),
                    &[&change, &name],
                )?;
                report.review_rows = n + d;
            }
        }
    }
    exec("DROP TABLE temp.ripcord_l; DROP TABLE temp.ripcord_r; DROP TABLE temp.ripcord_m;")?;
    Ok(true)
}

fn unkept(progress: &dyn Progress, name: &str, n: u64, unfillable: &[String]) {
    if n > 0 {
        progress.warn(format!(
            "{} inserted into {name} since the change {} {}, which the restored table \
             requires: {} set aside for review instead of kept",
            ripcord_core::text::counted(n, "row"),
            if n == 1 { "lacks" } else { "lack" },
            unfillable.join(", "),
            if n == 1 { "it is" } else { "they are" }
        ));
    }
}
