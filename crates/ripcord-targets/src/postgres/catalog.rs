//! Catalog queries: tables, columns, sizes, sequences.

use std::collections::BTreeMap;

use postgres::types::Oid;
use postgres::Client;
use ripcord_core::table_name::TableRef;
use ripcord_repo::manifest::PgColumn;

use super::conn::{ident, pg_err};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct TableInfo {
    pub schema: String,
    pub name: String,
    pub oid: Oid,
    /// `r` a table, `p` a partitioned table (no rows of its own), `f` a
    /// foreign table.
    pub kind: char,
    /// Tables it is a partition of or inherits from, `schema.name`.
    pub parents: Vec<String>,
    pub relation_size: u64,
    /// Generated columns excluded: COPY cannot load them.
    pub columns: Vec<PgColumn>,
    pub indexes: Vec<String>,
}

impl TableInfo {
    pub fn quoted(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }
    pub fn column_list(&self) -> String {
        column_list(&self.columns)
    }
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
    pub fn partitioned(&self) -> bool {
        self.kind == 'p'
    }
}

pub fn column_list(columns: &[PgColumn]) -> String {
    columns
        .iter()
        .map(|c| ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

const USER_TABLES: &str = "SELECT n.nspname, c.relname, pg_relation_size(c.oid)::int8, c.oid
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY 1, 2";

/// Tables, partitioned tables and foreign tables, with what they inherit.
const RELATIONS: &str =
    "SELECT n.nspname, c.relname, pg_relation_size(c.oid)::int8, c.oid, c.relkind::text,
        ARRAY(SELECT pn.nspname || '.' || p.relname FROM pg_inherits i
              JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
              WHERE i.inhrelid = c.oid ORDER BY i.inhseqno)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY 1, 2";

/// User tables (partitioned ones included, foreign ones not), all or the
/// named ones (`table` or `schema.table`) with their partitions and
/// inheritance children.
pub fn tables(
    client: &mut Client,
    only: Option<&[String]>,
    target: &str,
) -> Result<Vec<TableInfo>> {
    let all = listing(client)?;
    match only {
        None => Ok(all.into_iter().filter(|t| t.kind != 'f').collect()),
        Some(only) => {
            let path = search_path(client)?;
            Ok(with_descendants(
                &all,
                tables_from(&all, only, &path, target)?,
            ))
        }
    }
}

/// Every table, partitioned table and foreign table.
pub fn listing(client: &mut Client) -> Result<Vec<TableInfo>> {
    let rows = client
        .query(RELATIONS, &[])
        .map_err(pg_err("listing tables"))?;
    let oids: Vec<Oid> = rows.iter().map(|r| r.get(3)).collect();
    // Columns and indexes of every table in two queries, not two a table.
    let mut columns: BTreeMap<Oid, Vec<PgColumn>> = BTreeMap::new();
    for c in client
        .query(
            "SELECT attrelid, attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = ANY($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
             ORDER BY attrelid, attnum",
            &[&oids],
        )
        .map_err(pg_err("listing columns"))?
    {
        columns.entry(c.get(0)).or_default().push(PgColumn {
            name: c.get(1),
            type_name: c.get(2),
        });
    }
    let mut indexes: BTreeMap<Oid, Vec<String>> = BTreeMap::new();
    for i in client
        .query(
            "SELECT x.indrelid, i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
             WHERE x.indrelid = ANY($1) AND NOT EXISTS
               (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid)
             ORDER BY 1, 2",
            &[&oids],
        )
        .map_err(pg_err("listing indexes"))?
    {
        indexes.entry(i.get(0)).or_default().push(i.get(1));
    }
    let mut all = Vec::new();
    for r in rows {
        let oid: Oid = r.get(3);
        all.push(TableInfo {
            schema: r.get(0),
            name: r.get(1),
            oid,
            kind: r.get::<_, String>(4).chars().next().unwrap_or('r'),
            parents: r.get(5),
            relation_size: r.get::<_, i64>(2) as u64,
            columns: columns.remove(&oid).unwrap_or_default(),
            indexes: indexes.remove(&oid).unwrap_or_default(),
        });
    }
    Ok(all)
}

/// `picked` and, recursively, the partitions and inheritance children of
/// each: a change to a parent reaches them all.
pub fn with_descendants(all: &[TableInfo], mut picked: Vec<TableInfo>) -> Vec<TableInfo> {
    let mut i = 0;
    while i < picked.len() {
        let parent = picked[i].qualified();
        for t in all.iter().filter(|t| t.parents.contains(&parent)) {
            if !picked.iter().any(|p| p.oid == t.oid) {
                picked.push(t.clone());
            }
        }
        i += 1;
    }
    picked
}

/// A selected table that no snapshot can hold in full.
#[derive(Debug, Clone)]
pub struct Unprotected {
    /// `schema.name`.
    pub table: String,
    pub reason: String,
    /// How to make it protectable.
    pub fix: String,
}

/// The tables of `tables` that cannot be read in full by this role, and
/// every table of the same partition or inheritance tree (a tree is put
/// back as a whole or not at all).
pub fn unprotected(client: &mut Client, tables: &[TableInfo]) -> Result<Vec<Unprotected>> {
    let role: String = client
        .query_one("SELECT current_user::text", &[])
        .map_err(pg_err("reading the current role"))?
        .get(0);
    let mut out: Vec<Unprotected> = Vec::new();
    for t in tables {
        let (reason, fix) = if t.kind == 'f' {
            (
                "it is a foreign table: its rows live on another server".to_string(),
                "protect the foreign server's data where it lives".to_string(),
            )
        } else {
            let row = client
                .query_one(
                    "SELECT has_table_privilege($1::oid, 'SELECT'), row_security_active($1::oid)",
                    &[&t.oid],
                )
                .map_err(pg_err(format!("checking the rights on {}", t.qualified())))?;
            let (select, rls): (bool, bool) = (row.get(0), row.get(1));
            if !select {
                (
                    format!("role {role} may not read it (no SELECT privilege)"),
                    format!("GRANT SELECT ON {} TO {}", t.quoted(), ident(&role)),
                )
            } else if rls {
                (
                    format!(
                        "row-level security would hide rows from role {role}, which cannot bypass it"
                    ),
                    "migrate as the table's owner (unless FORCE ROW LEVEL SECURITY is set) or as \
                     a role with BYPASSRLS (ALTER ROLE … BYPASSRLS)"
                        .to_string(),
                )
            } else {
                continue;
            }
        };
        out.push(Unprotected {
            table: t.qualified(),
            reason,
            fix,
        });
    }
    // Whole trees: repeat until no table of the selection is linked to one left out.
    loop {
        let before = out.len();
        for t in tables {
            let q = t.qualified();
            if out.iter().any(|u| u.table == q) {
                continue;
            }
            let linked = out
                .iter()
                .find(|u| {
                    t.parents.contains(&u.table)
                        || tables
                            .iter()
                            .any(|o| o.qualified() == u.table && o.parents.contains(&q))
                })
                .map(|u| (u.table.clone(), u.fix.clone()));
            if let Some((other, fix)) = linked {
                out.push(Unprotected {
                    table: q,
                    reason: format!("it is in the same partition or inheritance tree as {other}"),
                    fix,
                });
            }
        }
        if out.len() == before {
            break;
        }
    }
    Ok(out)
}

/// The schemas unqualified names are looked up in, in order, as the
/// session's search_path (database and role settings included) says.
pub fn search_path(client: &mut Client) -> Result<Vec<String>> {
    let row = client
        .query_one("SELECT pg_catalog.current_schemas(true)::text[]", &[])
        .map_err(pg_err("reading the search_path"))?;
    Ok(row.get(0))
}

/// Picks named tables out of a listing. Names are `table` or
/// `schema.table`, parts plain or in double quotes
/// ([`ripcord_core::table_name`]). An unqualified name is the table the
/// server would find through `path` (see [`search_path`]); one on no
/// schema of the path is taken when it is the only one of that name.
pub fn tables_from(
    all: &[TableInfo],
    only: &[String],
    path: &[String],
    target: &str,
) -> Result<Vec<TableInfo>> {
    let mut picked = Vec::new();
    for want in only {
        let wanted = TableRef::parse(want).map_err(|e| Error::UnknownTable {
            name: format!("{want} ({})", e.reason),
            target: target.to_string(),
        })?;
        let found: Vec<&TableInfo> = all
            .iter()
            .filter(|t| wanted.matches(&t.schema, &t.name))
            .collect();
        // Several: the exact spelling first (`Orders` beside `orders`),
        // then, unqualified, the first on the search_path.
        let exact: Vec<&TableInfo> = found
            .iter()
            .copied()
            .filter(|t| {
                t.name == wanted.name.text
                    && wanted.schema.as_ref().is_none_or(|s| s.text == t.schema)
            })
            .collect();
        let found = if exact.is_empty() || found.len() == 1 {
            found
        } else {
            exact
        };
        let one = match found.as_slice() {
            [] => None,
            [one] => Some(*one),
            many if wanted.schema.is_none() => path
                .iter()
                .find_map(|s| many.iter().find(|t| &t.schema == s))
                .copied(),
            _ => None,
        };
        let Some(one) = one else {
            let name = if found.is_empty() {
                want.clone()
            } else {
                format!("{want} (ambiguous: qualify it with its schema)")
            };
            return Err(Error::UnknownTable {
                name,
                target: target.to_string(),
            });
        };
        if !picked
            .iter()
            .any(|p: &TableInfo| p.schema == one.schema && p.name == one.name)
        {
            picked.push(one.clone());
        }
    }
    Ok(picked)
}

/// Sequences, all or those owned by the given tables.
/// Sequences as (schema, name, owning table as `schema.table`).
pub fn sequences(
    client: &mut Client,
    owned_by: Option<&[TableInfo]>,
) -> Result<Vec<(String, String, Option<String>)>> {
    let rows = client
        .query(
            "SELECT n.nspname, s.relname, tn.nspname, t.relname
             FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace
             LEFT JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
             LEFT JOIN pg_class t ON t.oid = d.refobjid
             LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
             WHERE s.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             ORDER BY 1, 2",
            &[],
        )
        .map_err(pg_err("listing sequences"))?;
    Ok(rows
        .iter()
        .filter(|r| match owned_by {
            None => true,
            Some(tables) => {
                let ts: Option<String> = r.get(2);
                let tn: Option<String> = r.get(3);
                tables
                    .iter()
                    .any(|t| Some(&t.schema) == ts.as_ref() && Some(&t.name) == tn.as_ref())
            }
        })
        .map(|r| {
            let owner = match (r.get::<_, Option<String>>(2), r.get::<_, Option<String>>(3)) {
                (Some(s), Some(t)) => Some(format!("{s}.{t}")),
                _ => None,
            };
            (r.get(0), r.get(1), owner)
        })
        .collect())
}

/// Number of user tables, to refuse restoring over a database by accident.
pub fn user_table_count(client: &mut Client) -> Result<i64> {
    let row = client
        .query_one(&format!("SELECT count(*) FROM ({USER_TABLES}) t"), &[])
        .map_err(pg_err("counting tables"))?;
    Ok(row.get(0))
}

pub fn server_version(client: &mut Client) -> Result<(String, u32)> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .map_err(pg_err("reading the server version"))?;
    let num: i32 = row.get(1);
    Ok((row.get(0), (num / 10000) as u32))
}
