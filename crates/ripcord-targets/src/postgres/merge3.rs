//! Three-way merge on rollback: the snapshot (before the change, now loaded
//! in the restored table), the fingerprint recorded right after the change
//! (what the change did) and the replaced live table (what the application
//! did since). Per key:
//!
//! - live hash = fingerprint hash: the application left it alone; the
//!   restored table already holds it as before the change (or lacks it, when
//!   the change inserted it);
//! - live key not in the fingerprint: inserted by the application;
//! - live hash ≠ fingerprint hash: updated by the application;
//! - fingerprint key not live: deleted by the application.
//!
//! A row the application wrote is a conflict when the change had changed it
//! too: the snapshot's row differs from the post-change one (also when the
//! change altered the table's columns), or one of them is missing.
//! `keep-new` applies the application's writes to the restored table,
//! `snapshot` leaves it as the snapshot, `review` leaves it as the snapshot
//! and sets every application write aside. A table without a primary key is
//! a multiset of whole rows: per distinct row, copies added or removed.

use postgres::types::Oid;
use postgres::Client;
use ripcord_core::config::OnConflict;
use ripcord_core::revert::TableRevert;

use super::conn::{ident, pg_err};
use super::fingerprint::{self, hash, Fingerprint};
use crate::error::{Error, Result};
use crate::Progress;

/// The review table, created on first use.
pub(super) const REVIEW_DDL: &str = "CREATE SCHEMA IF NOT EXISTS ripcord;
     CREATE TABLE IF NOT EXISTS ripcord.review (
         id bigserial PRIMARY KEY,
         at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
         change text NOT NULL,
         table_name text NOT NULL,
         row_data jsonb NOT NULL,
         reason text NOT NULL)";

/// The table being put back.
pub(super) struct Merging<'a> {
    /// `schema.name`, for messages and the review table.
    pub what: &'a str,
    /// The restored table, quoted.
    pub name: &'a str,
    /// The replaced live table, moved aside, quoted.
    pub stash: &'a str,
    /// Its columns as COPY sees them, with their types.
    pub live_columns: &'a [(String, String)],
    /// A partitioned table, read (and written) through its partitions;
    /// any other table is read without its inheritance children.
    pub partitioned: bool,
    pub change: &'a str,
    /// Nothing was written to the live table since the change
    /// ([`fingerprint::unwritten_since`]): it holds the fingerprint's rows,
    /// and is not read.
    pub unwritten: bool,
}

/// Resolves the rows of the replaced table by a three-way comparison.
/// `Ok(false)`, with nothing changed, when the fingerprint does not fit the
/// tables (a column it hashed is gone): the caller compares two ways.
pub(super) fn merge(
    client: &mut Client,
    progress: &dyn Progress,
    m: &Merging<'_>,
    fp: &Fingerprint,
    policy: OnConflict,
    report: &mut TableRevert,
) -> Result<bool> {
    fingerprint::pinned(client, |c| merge_pinned(c, progress, m, fp, policy, report))
}

fn cast(expr: String, from: &str, to: &str) -> String {
    if from == to {
        expr
    } else {
        format!("CAST({expr} AS {to})")
    }
}

fn count(client: &mut Client, sql: &str, context: &str) -> Result<Vec<u64>> {
    let row = client.query_one(sql, &[]).map_err(pg_err(context))?;
    Ok((0..row.len())
        .map(|i| row.get::<_, i64>(i).max(0) as u64)
        .collect())
}

fn run(client: &mut Client, sql: &str, context: &str) -> Result<u64> {
    client.execute(sql, &[]).map_err(pg_err(context))
}

fn merge_pinned(
    client: &mut Client,
    progress: &dyn Progress,
    mg: &Merging<'_>,
    fp: &Fingerprint,
    policy: OnConflict,
    report: &mut TableRevert,
) -> Result<bool> {
    let what = mg.what;
    // The tables as rows are read, updated and deleted; rows go in through
    // `mg.name` (INSERT has no ONLY). A row is known by its table and ctid:
    // a partitioned table's partitions reuse ctids.
    let only = fingerprint::only(mg.partitioned);
    let name = &format!("{only}{}", mg.name);
    let stash = &format!("{only}{}", mg.stash);
    let ctx = format!("comparing {what} with its snapshot and its post-change fingerprint");
    let oid: Oid = client
        .query_one("SELECT $1::text::regclass::oid", &[&mg.name])
        .map_err(pg_err(&ctx))?
        .get(0);
    let restored = fingerprint::hashed_columns(client, oid, what)?;
    let live_ty = |c: &str| {
        mg.live_columns
            .iter()
            .find(|(n, _)| n == c)
            .map(|(_, t)| t.as_str())
    };
    let rest_ty = |c: &str| {
        restored
            .iter()
            .find(|(n, _)| n == c)
            .map(|(_, t)| t.as_str())
    };
    let fallback = |why: String| -> Result<bool> {
        progress.warn(format!(
            "{what}: {why}; rows written since the change are compared with the snapshot only"
        ));
        Ok(false)
    };

    // The live rows as the fingerprint hashed them.
    let mut lexprs = Vec::new();
    for (c, ty) in &fp.columns {
        let Some(lt) = live_ty(c) else {
            return fallback(format!("column {c}, hashed after the change, is gone"));
        };
        lexprs.push(cast(format!("s.{}", ident(c)), lt, ty));
    }
    // The snapshot's rows on the same columns: one it lacks is NULL. When
    // the columns differ the change altered every row.
    let mut same_shape = restored.len() == fp.columns.len();
    let mut comparable = true;
    let mut rexprs = Vec::new();
    for (c, ty) in &fp.columns {
        match rest_ty(c) {
            Some(rt) if rt == ty.as_str() => rexprs.push(format!("r.{}", ident(c))),
            Some(_) => {
                same_shape = false;
                comparable = false;
            }
            None => {
                same_shape = false;
                rexprs.push(format!("NULL::{ty}"));
            }
        }
    }
    let lh = fp.row_hash.of(&lexprs);
    let keyed = !fp.key_columns.is_empty();
    // Keyed, a row of an altered table counts as changed whatever its hash:
    // the snapshot's rows are not hashed then (a multiset still needs them).
    let rh = if comparable && (same_shape || !keyed) {
        fp.row_hash.of(&rexprs)
    } else {
        "NULL::bigint".to_string()
    };
    let altered = if same_shape { "false" } else { "true" };
    let mut lkey = Vec::new();
    let mut rkey = Vec::new();
    for k in &fp.key_columns {
        let ty = fp
            .columns
            .iter()
            .find(|(c, _)| c == k)
            .map(|(_, t)| t.as_str());
        let (Some(ty), Some(lt)) = (ty, live_ty(k)) else {
            return fallback(format!("key column {k} is gone"));
        };
        if rest_ty(k) != Some(ty) {
            return fallback(format!(
                "key column {k} is not in the snapshot with the same type"
            ));
        }
        lkey.push(cast(format!("s.{}", ident(k)), lt, ty));
        rkey.push(format!("r.{}", ident(k)));
    }
    // What a kept row carries: the columns both tables have, as the
    // restored table types them; the others keep the snapshot's values.
    let carry: Vec<(String, String)> = restored
        .iter()
        .filter_map(|(c, ty)| {
            let lt = live_ty(c)?;
            Some((c.clone(), cast(format!("s.{}", ident(c)), lt, ty)))
        })
        .collect();
    if carry.is_empty() {
        return fallback("it shares no column with its snapshot".into());
    }
    let cols = carry
        .iter()
        .map(|(c, _)| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let select = carry
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    // Columns a new row must have and the live rows lack.
    let unfillable: Vec<String> = client
        .query(
            "SELECT attname::text FROM pg_catalog.pg_attribute
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attnotnull
               AND NOT atthasdef AND attidentity = '' AND attgenerated = ''
             ORDER BY attnum",
            &[&oid],
        )
        .map_err(pg_err(&ctx))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|c| !carry.iter().any(|(k, _)| k == c))
        .collect();
    let always: Vec<String> = client
        .query(
            "SELECT attname::text FROM pg_catalog.pg_attribute
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attidentity = 'a'",
            &[&oid],
        )
        .map_err(pg_err(&ctx))?
        .iter()
        .map(|r| r.get(0))
        .collect();

    let m = format!("pg_temp.ripcord_merge_{oid}");
    let f = format!("(SELECT k, h, n FROM {})", fp.rows_from());
    report.three_way = true;
    report.unwritten_since = mg.unwritten;
    report.policy = Some(policy);
    // Unwritten, the live rows are the fingerprint's: the application's
    // writes (rows where they differ) are none, and the live table is not
    // read at all.
    let app_wrote = if mg.unwritten { "false" } else { "true" };
    let keep = policy == OnConflict::KeepNew;
    if keyed {
        let (lk, rk) = (hash(&lkey), hash(&rkey));
        // Unwritten, the application wrote nothing: no rows to resolve, so
        // no work table to fill, analyze and count.
        let c = if mg.unwritten {
            vec![0; 6]
        } else {
            client
            .batch_execute(&format!(
                "CREATE TEMP TABLE {m} ON COMMIT DROP AS
                 SELECT coalesce(l.k, f.k) AS k, l.ltab, l.lid, l.h AS lh, f.h AS fh,
                        NULL::oid AS rtab, NULL::tid AS rid, NULL::bigint AS rh, false AS conflict
                 FROM (SELECT {lk} AS k, {lh} AS h, s.tableoid AS ltab, s.ctid AS lid
                       FROM {stash} s) l
                 FULL JOIN {f} f ON f.k = l.k
                 WHERE l.h IS DISTINCT FROM f.h;
                 ANALYZE {m};
                 UPDATE {m} m SET rtab = r.tableoid, rid = r.ctid, rh = {rh} FROM {name} r WHERE {rk} = m.k;
                 UPDATE {m} SET conflict = CASE
                     WHEN fh IS NULL THEN rid IS NOT NULL
                     WHEN lid IS NULL THEN rid IS NOT NULL AND ({altered} OR rh IS DISTINCT FROM fh)
                     ELSE {altered} OR rid IS NULL OR rh IS DISTINCT FROM fh END"
            ))
            .map_err(pg_err(&ctx))?;
            count(
                client,
                &format!(
                    "SELECT count(*) FILTER (WHERE lid IS NOT NULL AND fh IS NULL),
                        count(*) FILTER (WHERE lid IS NOT NULL AND fh IS NOT NULL),
                        count(*) FILTER (WHERE lid IS NULL),
                        count(*) FILTER (WHERE conflict),
                        count(*) FILTER (WHERE lid IS NULL AND rid IS NULL),
                        count(*) FILTER (WHERE lid IS NOT NULL AND rid IS NOT NULL)
                 FROM {m}"
                ),
                &ctx,
            )?
        };
        let (written_over, deleted_absent) = (c[5], c[4]);
        report.inserted_since = c[0];
        report.updated_since = c[1];
        report.deleted_since = c[2];
        report.conflicts = c[3];
        // The change's own work, on the rows the application left alone
        // (all of them when unwritten). Altered, every row both have
        // changed: the keys alone tell. Altered and unwritten, the live
        // table holds the fingerprint's keys: they are compared with the
        // snapshot's as they are, with no text form to hash, through the
        // keys' indexes.
        let (rsrc, fsrc, on, differs) = if mg.unwritten && !same_shape {
            let ks = |e: &[String]| {
                e.iter()
                    .enumerate()
                    .map(|(i, e)| format!("{e} AS k{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let on = (0..rkey.len())
                .map(|i| format!("r.k{i} = f.k{i}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            (
                format!("SELECT {}, true AS p FROM {name} r", ks(&rkey)),
                format!("SELECT {}, true AS p FROM {stash} s", ks(&lkey)),
                on,
                "true",
            )
        } else {
            let (r_h, f_h, differs) = if same_shape {
                (rh.as_str(), "f.h", "r.h IS DISTINCT FROM f.h")
            } else {
                ("NULL::bigint", "NULL::bigint", "true")
            };
            (
                format!("SELECT {rk} AS k, {r_h} AS h, true AS p FROM {name} r"),
                format!("SELECT k, {f_h} AS h, true AS p FROM {f} f"),
                "f.k = r.k".to_string(),
                differs,
            )
        };
        let left_alone = if mg.unwritten {
            String::new()
        } else {
            format!("WHERE NOT EXISTS (SELECT 1 FROM {m} m WHERE m.k = coalesce(r.k, f.k))")
        };
        let u = if mg.unwritten && !same_shape && unique_key(client, oid, &fp.key_columns, &ctx)? {
            // Each side's keys unique (the live table's: its primary key,
            // unwritten since), the pairs are the rows both have: an
            // inner join, cheaper than the full one.
            let c = count(
                client,
                &format!(
                    "SELECT (SELECT count(*) FROM ({rsrc}) r),
                            (SELECT count(*) FROM ({fsrc}) f),
                            (SELECT count(*) FROM ({rsrc}) r JOIN ({fsrc}) f ON {on})"
                ),
                &ctx,
            )?;
            vec![c[0] - c[2], c[1] - c[2], c[2]]
        } else {
            count(
                client,
                &format!(
                    "SELECT count(*) FILTER (WHERE f.p IS NULL),
                        count(*) FILTER (WHERE r.p IS NULL),
                        count(*) FILTER (WHERE r.p AND f.p AND {differs})
                 FROM ({rsrc}) r FULL JOIN ({fsrc}) f ON {on}
                 {left_alone}"
                ),
                &ctx,
            )?
        };
        report.undone_rows = u[0] + u[2];
        report.removed_rows = u[1];
        report.changed_rows = u[2] + if keep { 0 } else { written_over };
        let written = "CASE WHEN m.fh IS NULL THEN 'inserted' ELSE 'updated' END \
                       || ' by the application after the change' \
                       || CASE WHEN m.conflict THEN ', which had changed this row too (conflict)' ELSE '' END";
        match policy {
            // No application writes: nothing to keep, discard or set aside.
            _ if mg.unwritten => {}
            OnConflict::KeepNew => {
                let deleted = run(
                    client,
                    &format!(
                        "DELETE FROM {name} WHERE (tableoid, ctid) IN
                         (SELECT rtab, rid FROM {m} WHERE lid IS NULL AND rid IS NOT NULL)"
                    ),
                    &ctx,
                )?;
                report.deleted_kept = deleted + deleted_absent;
                let set: Vec<String> = carry
                    .iter()
                    .filter(|(c, _)| !fp.key_columns.contains(c) && !always.contains(c))
                    .map(|(c, e)| format!("{} = {e}", ident(c)))
                    .collect();
                let updated = if set.is_empty() {
                    written_over
                } else {
                    client
                        .execute(
                            &format!(
                                "UPDATE {name} r SET {} FROM {m} m JOIN {stash} s
                                     ON s.tableoid = m.ltab AND s.ctid = m.lid
                                 WHERE m.lid IS NOT NULL AND r.tableoid = m.rtab AND r.ctid = m.rid",
                                set.join(", ")
                            ),
                            &[],
                        )
                        .map_err(|e| kept_failed(what, &e))?
                };
                let new_rows = format!(
                    "FROM {m} m JOIN {stash} s ON s.tableoid = m.ltab AND s.ctid = m.lid
                     WHERE m.lid IS NOT NULL AND m.rid IS NULL"
                );
                let inserted = insert_or_review(
                    client,
                    progress,
                    mg,
                    &unfillable,
                    (cols.as_str(), select.as_str()),
                    "",
                    &new_rows,
                    &format!(
                        "{written} || ', and not kept: the restored table needs ' || {} || ', which the row lacks'",
                        sql_text(&unfillable.join(", "))
                    ),
                    report,
                )?;
                report.kept_rows = updated + inserted;
            }
            OnConflict::Snapshot => {
                report.discarded_rows = report.inserted_since + report.updated_since;
            }
            OnConflict::Review => {
                client.batch_execute(REVIEW_DDL).map_err(pg_err(&ctx))?;
                let n = client
                    .execute(
                        &format!(
                            "INSERT INTO ripcord.review (change, table_name, row_data, reason)
                             SELECT $1, $2, pg_catalog.to_jsonb(s), {written}
                                    || CASE WHEN m.rid IS NULL THEN '; it is not in the table'
                                       ELSE '; the table holds the snapshot''s row' END
                             FROM {m} m JOIN {stash} s ON s.tableoid = m.ltab AND s.ctid = m.lid WHERE m.lid IS NOT NULL"
                        ),
                        &[&mg.change, &what],
                    )
                    .map_err(pg_err(&ctx))?;
                let d = client
                    .execute(
                        &format!(
                            "INSERT INTO ripcord.review (change, table_name, row_data, reason)
                             SELECT $1, $2, pg_catalog.to_jsonb(r),
                                    'deleted by the application after the change'
                                    || CASE WHEN m.conflict THEN ', which had changed this row too (conflict)' ELSE '' END
                                    || '; the snapshot''s row is back in the table'
                             FROM {m} m JOIN {name} r ON r.tableoid = m.rtab AND r.ctid = m.rid WHERE m.lid IS NULL"
                        ),
                        &[&mg.change, &what],
                    )
                    .map_err(pg_err(&ctx))?;
                report.review_rows = n + d;
            }
        }
    } else {
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE {m} ON COMMIT DROP AS
                 SELECT h, sum(nl)::bigint AS nl, sum(nf)::bigint AS nf, sum(nr)::bigint AS nr
                 FROM (SELECT {lh} AS h, 1::bigint AS nl, 0::bigint AS nf, 0::bigint AS nr FROM {stash} s
                       WHERE {app_wrote}
                       UNION ALL SELECT h, n, 0, 0 FROM {f} f WHERE NOT {app_wrote}
                       UNION ALL SELECT h, 0, n, 0 FROM {f} f
                       UNION ALL SELECT {rh}, 0, 0, 1 FROM {name} r) x
                 GROUP BY h HAVING sum(nl) <> sum(nf) OR sum(nr) <> sum(nf);
                 ANALYZE {m}"
            ))
            .map_err(pg_err(&ctx))?;
        let c = count(
            client,
            &format!(
                "SELECT coalesce(sum(greatest(nl - nf, 0)), 0)::bigint,
                        coalesce(sum(greatest(nf - nl, 0)), 0)::bigint,
                        coalesce(sum(greatest(nr - nf, 0)), 0)::bigint,
                        coalesce(sum(greatest(nf - nr, 0)), 0)::bigint,
                        coalesce(sum(least(greatest(nf - nl, 0), nr)), 0)::bigint,
                        (SELECT count(*) FROM {name})
                 FROM {m}"
            ),
            &ctx,
        )?;
        report.inserted_since = c[0];
        report.deleted_since = c[1];
        report.undone_rows = if same_shape { c[2] } else { c[5] };
        report.removed_rows = c[3];
        let written = "'inserted by the application after the change (without a primary key an \
                       update shows as a delete and an insert)'";
        // The copies of a row the application added, and the restored
        // copies its deletes take away.
        let added = format!(
            "WITH x AS (SELECT s.tableoid AS ltab, s.ctid AS lid, {lh} AS h FROM {stash} s),
                  y AS (SELECT ltab, lid, h, row_number() OVER (PARTITION BY h) AS rn FROM x
                        WHERE h IN (SELECT h FROM {m} WHERE nl > nf))"
        );
        let added_from = format!(
            "FROM y JOIN {m} m ON m.h = y.h JOIN {stash} s ON s.tableoid = y.ltab AND s.ctid = y.lid
             WHERE y.rn <= m.nl - m.nf"
        );
        let taken = format!(
            "WITH x AS (SELECT r.tableoid AS rtab, r.ctid AS rid, {rh} AS h FROM {name} r),
                  y AS (SELECT rtab, rid, h, row_number() OVER (PARTITION BY h) AS rn FROM x
                        WHERE h IN (SELECT h FROM {m} WHERE nf > nl))"
        );
        let taken_ids = format!(
            "SELECT y.rtab, y.rid FROM y JOIN {m} m ON m.h = y.h WHERE y.rn <= m.nf - m.nl"
        );
        match policy {
            // No application writes: nothing to keep, discard or set aside.
            _ if mg.unwritten => {}
            OnConflict::KeepNew => {
                if c[4] > 0 {
                    run(
                        client,
                        &format!(
                            "{taken} DELETE FROM {name} WHERE (tableoid, ctid) IN ({taken_ids})"
                        ),
                        &ctx,
                    )?;
                }
                report.deleted_kept = report.deleted_since;
                report.kept_rows = if report.inserted_since > 0 {
                    insert_or_review(
                        client,
                        progress,
                        mg,
                        &unfillable,
                        (cols.as_str(), select.as_str()),
                        &added,
                        &added_from,
                        &format!(
                            "{written} || ', and not kept: the restored table needs ' || {} || ', which the row lacks'",
                            sql_text(&unfillable.join(", "))
                        ),
                        report,
                    )?
                } else {
                    0
                };
            }
            OnConflict::Snapshot => report.discarded_rows = report.inserted_since,
            OnConflict::Review => {
                client.batch_execute(REVIEW_DDL).map_err(pg_err(&ctx))?;
                let n = client
                    .execute(
                        &format!(
                            "{added} INSERT INTO ripcord.review (change, table_name, row_data, reason)
                             SELECT $1, $2, pg_catalog.to_jsonb(s), {written} || '; it is not in the table'
                             {added_from}"
                        ),
                        &[&mg.change, &what],
                    )
                    .map_err(pg_err(&ctx))?;
                let d = client
                    .execute(
                        &format!(
                            "{taken} INSERT INTO ripcord.review (change, table_name, row_data, reason)
                             SELECT $1, $2, pg_catalog.to_jsonb(r),
                                    'deleted by the application after the change; it is back in the table'
                             FROM {name} r WHERE (r.tableoid, r.ctid) IN ({taken_ids})"
                        ),
                        &[&mg.change, &what],
                    )
                    .map_err(pg_err(&ctx))?;
                report.review_rows = n + d;
            }
        }
    }
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {m}"))
        .map_err(pg_err(&ctx))?;
    Ok(true)
}

/// Whether a valid unique index of table `oid`, without predicate or
/// expressions, has only columns of `key`: no two of its rows share a key.
fn unique_key(client: &mut Client, oid: Oid, key: &[String], ctx: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (
                 SELECT 1 FROM pg_catalog.pg_index i
                 WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid
                   AND i.indpred IS NULL AND i.indexprs IS NULL
                   AND ARRAY(SELECT a.attname::text
                             FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) k(n)
                             JOIN pg_catalog.pg_attribute a
                               ON a.attrelid = i.indrelid AND a.attnum = k.n) <@ $2::text[])",
            &[&oid, &key],
        )
        .map_err(pg_err(ctx))?
        .get(0))
}

/// Inserts the application's new rows (`{with} SELECT … {from}`, `s` the
/// live row) into the restored table; when it needs columns they lack, sets
/// them aside for review instead. Returns the rows inserted.
#[allow(clippy::too_many_arguments)]
fn insert_or_review(
    client: &mut Client,
    progress: &dyn Progress,
    mg: &Merging<'_>,
    unfillable: &[String],
    (cols, select): (&str, &str),
    with: &str,
    from: &str,
    reason: &str,
    report: &mut TableRevert,
) -> Result<u64> {
    let (name, what) = (mg.name, mg.what);
    if unfillable.is_empty() {
        // A row the snapshot's constraints still reject (a unique value
        // taken, a CHECK) fails the revert: the caller rolls back, and
        // another policy can be chosen.
        return client
            .execute(
                &format!(
                    "{with} INSERT INTO {name} ({cols}) OVERRIDING SYSTEM VALUE SELECT {select} {from}"
                ),
                &[],
            )
            .map_err(|e| kept_failed(what, &e));
    }
    let ctx = format!("setting rows of {what} aside for review");
    client.batch_execute(REVIEW_DDL).map_err(pg_err(&ctx))?;
    let n = client
        .execute(
            &format!(
                "{with} INSERT INTO ripcord.review (change, table_name, row_data, reason)
                 SELECT $1, $2, pg_catalog.to_jsonb(s), {reason} {from}"
            ),
            &[&mg.change, &what],
        )
        .map_err(pg_err(&ctx))?;
    if n > 0 {
        progress.warn(format!(
            "{} inserted into {what} since the change {} {}, which the restored table \
             requires: {} set aside for review instead of kept",
            ripcord_core::text::counted(n as u64, "row"),
            if n == 1 { "lacks" } else { "lack" },
            unfillable.join(", "),
            if n == 1 { "it is" } else { "they are" }
        ));
    }
    report.review_rows += n;
    Ok(0)
}

fn kept_failed(what: &str, e: &postgres::Error) -> Error {
    Error::Pg {
        context: format!(
            "keeping rows written to {what} since the change (on_conflict review or snapshot \
             for this table avoids this)"
        ),
        detail: e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string()),
    }
}

/// A string as an SQL literal.
fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
