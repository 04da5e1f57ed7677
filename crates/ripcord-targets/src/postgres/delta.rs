//! The writes captured between a safety snapshot and its change
//! (`ripcord.safety_delta`, written by `migrate up` in the change's
//! transaction), put over the snapshot's rows of a restored table so that it
//! holds what the table held the moment the change began.
//!
//! Entries, per change and table:
//! - `K`: a primary key written since the capture began, with the row it
//!   had when the change began (its text form), or none: deleted;
//! - `+`/`-`: a whole row inserted or deleted, for a table without a key;
//!   those of transactions the snapshot saw are left out;
//! - `T`: the table was truncated.

use postgres::Client;
use ripcord_repo::manifest::{PgContent, PgTable};

use super::conn::{ident, pg_err};
use crate::error::Result;

/// Settings the rows' text forms were written under (see the capture
/// trigger): reading them back under the same ones gives the same values.
const TEXT_SETTINGS: [(&str, &str); 5] = [
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
];

/// What the delta did to the restored table.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    pub inserted: u64,
    pub deleted: u64,
}

/// Applies the delta of `change` to `t`, freshly loaded from the snapshot
/// (`name` quoted), with `cols` the columns it may be given values for.
pub fn apply(
    client: &mut Client,
    content: &PgContent,
    t: &PgTable,
    name: &str,
    cols: &[(String, String)],
    change: &str,
) -> Result<Applied> {
    let what = t.qualified();
    let context = format!("putting back the writes to {what} made during the safety snapshot");
    let has: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('ripcord.safety_delta') IS NOT NULL",
            &[],
        )
        .map_err(pg_err(&context))?
        .get(0);
    if !has {
        return Ok(Applied::default());
    }
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM ripcord.safety_delta WHERE change = $1 AND table_name = $2",
            &[&change, &what],
        )
        .map_err(pg_err(&context))?
        .get(0);
    if n == 0 {
        return Ok(Applied::default());
    }
    let mut saved = Vec::new();
    for (setting, value) in TEXT_SETTINGS {
        let old: Option<String> = client
            .query_one("SELECT pg_catalog.current_setting($1, true)", &[&setting])
            .map_err(pg_err(&context))?
            .get(0);
        client
            .execute(
                "SELECT pg_catalog.set_config($1, $2, true)",
                &[&setting, &value],
            )
            .map_err(pg_err(&context))?;
        saved.push((setting, old));
    }
    let result = apply_entries(client, content, name, cols, change, &what, &context);
    for (setting, old) in saved {
        if let Some(old) = old {
            client
                .execute(
                    "SELECT pg_catalog.set_config($1, $2, true)",
                    &[&setting, &old],
                )
                .map_err(pg_err(&context))?;
        }
    }
    result
}

fn apply_entries(
    client: &mut Client,
    content: &PgContent,
    name: &str,
    cols: &[(String, String)],
    change: &str,
    what: &str,
    context: &str,
) -> Result<Applied> {
    // Without the snapshot's transactions, every captured write counts:
    // only snapshots from before capture existed lack them, and those have
    // no delta.
    let unseen = match &content.txid_snapshot {
        Some(s) => format!(
            "NOT pg_catalog.txid_visible_in_snapshot(d.txid, '{}'::pg_catalog.txid_snapshot)",
            s.replace('\'', "")
        ),
        None => "true".into(),
    };
    let mine = "d.change = $1 AND d.table_name = $2";
    let list = cols
        .iter()
        .map(|(c, _)| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let fields = cols
        .iter()
        .map(|(c, _)| format!("(x).{}", ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut applied = Applied::default();

    let truncated: bool = client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM ripcord.safety_delta d
                                WHERE {mine} AND d.kind = 'T' AND {unseen})"
            ),
            &[&change, &what],
        )
        .map_err(pg_err(context))?
        .get(0);
    if truncated {
        applied.deleted += client
            .execute(&format!("DELETE FROM {name}"), &[])
            .map_err(pg_err(context))?;
    }

    // Keyed rows: each logged key takes the row it had, or goes.
    let keys: Vec<String> = client
        .query(
            &format!(
                "SELECT DISTINCT k FROM ripcord.safety_delta d, pg_catalog.jsonb_object_keys(d.key) k
                 WHERE {mine} AND d.kind = 'K' ORDER BY 1"
            ),
            &[&change, &what],
        )
        .map_err(pg_err(context))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !keys.is_empty() {
        let on = keys
            .iter()
            .map(|k| format!("r.{0} = p.{0}", ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        applied.deleted += client
            .execute(
                &format!(
                    "DELETE FROM {name} r USING ripcord.safety_delta d
                     CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{name}, d.key) p
                     WHERE {mine} AND d.kind = 'K' AND {on}"
                ),
                &[&change, &what],
            )
            .map_err(pg_err(context))?;
        applied.inserted += client
            .execute(
                &format!(
                    "INSERT INTO {name} ({list}) OVERRIDING SYSTEM VALUE
                     SELECT {fields} FROM (SELECT d.row_text::{name} AS x FROM ripcord.safety_delta d
                                           WHERE {mine} AND d.kind = 'K' AND d.row_text IS NOT NULL) s"
                ),
                &[&change, &what],
            )
            .map_err(pg_err(context))?;
    }

    // Whole rows of a table without a key, as multisets: per distinct row,
    // copies inserted minus copies deleted.
    let net = format!(
        "SELECT d.row_text, sum(CASE d.kind WHEN '+' THEN 1 ELSE -1 END) AS n
         FROM ripcord.safety_delta d
         WHERE {mine} AND d.kind IN ('+', '-') AND {unseen}
         GROUP BY d.row_text"
    );
    applied.deleted += client
        .execute(
            &format!(
                "WITH net AS ({net})
                 DELETE FROM {name} WHERE ctid IN (
                     SELECT r.ctid FROM (SELECT ctid, r::text AS t,
                                                row_number() OVER (PARTITION BY r::text) AS i
                                         FROM {name} r
                                         WHERE r::text IN (SELECT row_text FROM net WHERE n < 0)) r
                     JOIN net ON net.row_text = r.t AND r.i <= -net.n)"
            ),
            &[&change, &what],
        )
        .map_err(pg_err(context))?;
    applied.inserted += client
        .execute(
            &format!(
                "WITH net AS ({net})
                 INSERT INTO {name} ({list}) OVERRIDING SYSTEM VALUE
                 SELECT {fields} FROM (SELECT net.row_text::{name} AS x
                                       FROM net, pg_catalog.generate_series(1, net.n) WHERE net.n > 0) s"
            ),
            &[&change, &what],
        )
        .map_err(pg_err(context))?;
    Ok(applied)
}
