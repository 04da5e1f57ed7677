//! Putting selected tables back to a table-level safety snapshot, schema and
//! rows, inside the caller's transaction (what `migrate down` uses).
//!
//! A table that still exists is moved into a schema of its own (instant, and
//! its index, constraint and sequence names cannot collide with the ones
//! created again), the snapshot's table is created and loaded in its place,
//! and the moved copy is compared with it to resolve the rows written since.

use std::io::Write;
use std::path::Path;

use postgres::types::Oid;
use postgres::Client;
use ripcord_core::config::OnConflict;
use ripcord_core::revert::TableRevert;
use ripcord_repo::index::Index;
use ripcord_repo::manifest::{PgContent, PgDependent, PgTable};
use ripcord_repo::Repository;

use super::catalog;
use super::conn::{ident, pg_err};
use super::dependents;
use super::restore::{copy_in, quoted, write_archive};
use super::tools::{self, Tools};
use super::{fingerprint, merge3};
use crate::error::{Error, Result};
use crate::Progress;

/// One table to put back, and what happens to rows written since.
pub struct RevertTable<'a> {
    pub table: &'a PgTable,
    pub policy: OnConflict,
}

/// Puts `tables` back to their state in `content` (a table-level snapshot).
///
/// Caller has run `BEGIN` on `client` (via batch_execute); this function never commits or rolls back
/// the outer transaction (it may use SAVEPOINTs). On error the caller rolls back, so nothing changes.
/// Session settings (search_path etc.) are as before when it returns Ok.
pub fn revert_tables(
    repo: &Repository,
    index: &Index,
    content: &PgContent,
    client: &mut Client,
    tables: &[RevertTable<'_>],
    change: &str,
    progress: &dyn Progress,
) -> Result<Vec<TableRevert>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    // SAVEPOINT fails outside a transaction block: never run in autocommit.
    client
        .batch_execute("SAVEPOINT ripcord_revert_check; RELEASE SAVEPOINT ripcord_revert_check")
        .map_err(pg_err("reverting tables (run BEGIN first)"))?;
    let mut session = Session::default();
    session.remember(client, ["search_path", "row_security"])?;
    // Everything below, and every definition read from the catalog, is
    // schema-qualified: the same text means the same object throughout.
    // Rows that row-level security would hide are an error, not skipped.
    client
        .batch_execute(
            "SELECT pg_catalog.set_config('search_path', '', false);
             SELECT pg_catalog.set_config('row_security', 'off', false)",
        )
        .map_err(pg_err("preparing the revert"))?;
    let (_, major) = catalog::server_version(client)?;
    let tools = Tools::find(major)?;
    let archive = write_archive(repo, index, &content.schema)?;
    let listing = list(&tools, archive.path())?;
    let row = client
        .query_one(
            "SELECT txid_current(), current_setting('session_replication_role')",
            &[],
        )
        .map_err(pg_err("preparing the revert"))?;
    let (xid, replication_role): (i64, String) = (row.get(0), row.get(1));
    let mut cx = Cx {
        repo,
        index,
        content,
        client,
        tools: &tools,
        archive: archive.path(),
        listing: &listing,
        change,
        progress,
        session: &mut session,
        replication_role,
        review_ready: false,
    };
    let mut out = Vec::with_capacity(tables.len());
    let members = with_members(content, tables);
    for (i, group) in trees(&members).iter().enumerate() {
        let stash_prefix = format!("ripcord_stash_{xid}_{i}");
        out.extend(cx.revert_group(group, &stash_prefix)?);
    }
    let reverted: Vec<&str> = out.iter().map(|r| r.table.as_str()).collect();
    cx.restore_dependents(&reverted)?;
    session.restore(client)?;
    Ok(out)
}

/// `tables` and the snapshot's partitions and inheritance children of each,
/// recursively, with the policy of the table they belong to: a tree is put
/// back whole.
fn with_members<'a>(content: &'a PgContent, tables: &[RevertTable<'a>]) -> Vec<RevertTable<'a>> {
    let mut out: Vec<RevertTable<'a>> = tables
        .iter()
        .map(|rt| RevertTable {
            table: rt.table,
            policy: rt.policy,
        })
        .collect();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].table.qualified();
        let policy = out[i].policy;
        for t in content
            .tables
            .iter()
            .filter(|t| t.parents.contains(&parent))
        {
            if !out.iter().any(|rt| std::ptr::eq(rt.table, t)) {
                out.push(RevertTable { table: t, policy });
            }
        }
        i += 1;
    }
    out
}

/// The tables in groups linked by partitioning or inheritance, each group
/// ordered parents first.
fn trees<'a, 'b>(tables: &'b [RevertTable<'a>]) -> Vec<Vec<&'b RevertTable<'a>>> {
    let linked = |a: &PgTable, b: &PgTable| {
        a.parents.contains(&b.qualified()) || b.parents.contains(&a.qualified())
    };
    let mut group_of: Vec<Option<usize>> = vec![None; tables.len()];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for start in 0..tables.len() {
        if group_of[start].is_some() {
            continue;
        }
        let g = groups.len();
        let mut members = vec![start];
        group_of[start] = Some(g);
        let mut k = 0;
        while k < members.len() {
            for j in 0..tables.len() {
                if group_of[j].is_none() && linked(tables[members[k]].table, tables[j].table) {
                    group_of[j] = Some(g);
                    members.push(j);
                }
            }
            k += 1;
        }
        // Parents first: a table goes once every parent in the group has.
        let mut ordered: Vec<usize> = Vec::with_capacity(members.len());
        while ordered.len() < members.len() {
            let before = ordered.len();
            for &m in &members {
                if ordered.contains(&m) {
                    continue;
                }
                let ready = tables[m].table.parents.iter().all(|p| {
                    !members.iter().any(|&o| tables[o].table.qualified() == *p)
                        || ordered.iter().any(|&o| tables[o].table.qualified() == *p)
                });
                if ready {
                    ordered.push(m);
                }
            }
            if ordered.len() == before {
                // A cycle cannot happen in a catalog; keep what is left as it is.
                let rest: Vec<usize> = members
                    .iter()
                    .filter(|m| !ordered.contains(m))
                    .copied()
                    .collect();
                ordered.extend(rest);
            }
        }
        groups.push(ordered);
    }
    groups
        .into_iter()
        .map(|g| g.into_iter().map(|i| &tables[i]).collect())
        .collect()
}

/// Settings changed on the way (pg_restore's scripts set several), with
/// their values before, to put back.
#[derive(Default)]
struct Session {
    saved: Vec<(String, Option<String>)>,
}

impl Session {
    fn remember<'s>(
        &mut self,
        client: &mut Client,
        names: impl IntoIterator<Item = &'s str>,
    ) -> Result<()> {
        for name in names {
            if self.saved.iter().any(|(n, _)| n == name) {
                continue;
            }
            let value: Option<String> = client
                .query_one("SELECT pg_catalog.current_setting($1, true)", &[&name])
                .map_err(pg_err(format!("reading setting {name}")))?
                .get(0);
            self.saved.push((name.to_string(), value));
        }
        Ok(())
    }

    fn restore(&self, client: &mut Client) -> Result<()> {
        for (name, value) in &self.saved {
            let context = format!("restoring setting {name}");
            match value {
                Some(v) => client
                    .execute("SELECT pg_catalog.set_config($1, $2, false)", &[name, v])
                    .map(drop),
                None => client.batch_execute(&format!("RESET {}", ident(name))),
            }
            .map_err(pg_err(context))?;
        }
        Ok(())
    }
}

/// Names of the settings a pg_restore script changes.
fn settings_in(sql: &str) -> Vec<&str> {
    let valid = |n: &&str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    sql.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            if let Some(rest) = line.strip_prefix("SET ") {
                rest.split([' ', '=']).next()
            } else {
                let at = line.find("set_config('")?;
                line[at + "set_config('".len()..].split('\'').next()
            }
        })
        .filter(valid)
        .collect()
}

/// One entry of `pg_restore --list`: the line and its words after the ids
/// ("<DESC WORDS…> <schema> <tag…> <owner>").
struct Entry {
    line: String,
    words: Vec<String>,
}

fn list(tools: &Tools, archive: &Path) -> Result<Vec<Entry>> {
    let mut cmd = tools::command(&tools.pg_restore);
    cmd.arg("--list").arg(archive);
    let out = String::from_utf8_lossy(&tools::run(cmd, "pg_restore --list")?).into_owned();
    Ok(out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| {
            let (_, rest) = l.split_once("; ")?;
            Some(Entry {
                line: l.to_string(),
                words: rest
                    .split_whitespace()
                    .skip(2)
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect())
}

#[derive(PartialEq)]
enum Part {
    /// Table, owned sequences, defaults, comments, grants.
    Pre,
    /// Indexes, constraints but foreign keys, triggers, rules, policies.
    Post,
    /// A foreign key from the table, added on its own so that one that no
    /// longer holds can be put back NOT VALID.
    ForeignKey,
    /// A partition joining its parent, and its indexes the parent's.
    Attach,
}

/// What `e` is to table `t`, whose owned sequences are `owned` and whose
/// constraints are `constraints`.
fn part_of(e: &Entry, t: &PgTable, owned: &[&str], constraints: &[&str]) -> Option<Part> {
    let words = rejoin(&e.words, t, owned);
    let pos = words.iter().position(|w| *w == t.schema)?;
    let desc = words[..pos].join(" ");
    let tag: Vec<&str> = words[pos + 1..words.len().saturating_sub(1).max(pos + 1)]
        .iter()
        .map(String::as_str)
        .collect();
    let first = tag.first().copied().unwrap_or("");
    let column_prefix = format!("{}.", t.name);
    match desc.as_str() {
        "TABLE" if tag == [t.name.as_str()] => Some(Part::Pre),
        "TABLE ATTACH" if tag == [t.name.as_str()] => Some(Part::Attach),
        "INDEX ATTACH" if t.indexes.iter().any(|i| i == first) || constraints.contains(&first) => {
            Some(Part::Attach)
        }
        "SEQUENCE" | "SEQUENCE OWNED BY" if owned.contains(&first) => Some(Part::Pre),
        "DEFAULT" if first == t.name => Some(Part::Pre),
        "COMMENT" | "ACL" => match tag.as_slice() {
            ["TABLE", n] if *n == t.name => Some(Part::Pre),
            ["COLUMN", c] if c.starts_with(&column_prefix) => Some(Part::Pre),
            ["SEQUENCE", s] if owned.contains(s) => Some(Part::Pre),
            _ => None,
        },
        // ripcord's own change capture, there while the snapshot was taken.
        "TRIGGER" if super::restore::is_capture_trigger(&e.words) => None,
        "CONSTRAINT" | "TRIGGER" | "RULE" | "POLICY" | "ROW SECURITY" if first == t.name => {
            Some(Part::Post)
        }
        "INDEX" if t.indexes.iter().any(|i| i == first) => Some(Part::Post),
        "FK CONSTRAINT" if first == t.name => Some(Part::ForeignKey),
        _ => None,
    }
}

/// The entry's words with the names of `t` that hold spaces (schema, table,
/// owned sequences, indexes) made one word again: `pg_restore --list`
/// writes names unquoted.
fn rejoin(words: &[String], t: &PgTable, owned: &[&str]) -> Vec<String> {
    let mut names: Vec<Vec<&str>> = [t.schema.as_str(), t.name.as_str()]
        .into_iter()
        .chain(owned.iter().copied())
        .chain(t.indexes.iter().map(String::as_str))
        .filter(|n| n.contains(char::is_whitespace))
        .map(|n| n.split_whitespace().collect())
        .collect();
    if names.is_empty() {
        return words.to_vec();
    }
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        match names
            .iter()
            .find(|n| words.len() - i >= n.len() && words[i..i + n.len()] == n[..])
        {
            Some(n) => {
                out.push(n.join(" "));
                i += n.len();
            }
            None => {
                out.push(words[i].clone());
                i += 1;
            }
        }
    }
    out
}

/// SQL for the listed entries, without psql's meta-commands (`\restrict`).
fn script(tools: &Tools, archive: &Path, lines: &[&str], what: &str) -> Result<String> {
    if lines.is_empty() {
        return Ok(String::new());
    }
    let mut f = tempfile::Builder::new()
        .prefix("ripcord-toc-")
        .tempfile()
        .map_err(|e| Error::io("cannot create a temporary file", e))?;
    for l in lines {
        writeln!(f, "{l}").map_err(|e| Error::io("cannot write the restore list", e))?;
    }
    f.flush()
        .map_err(|e| Error::io("cannot write the restore list", e))?;
    let mut cmd = tools::command(&tools.pg_restore);
    cmd.arg(format!("--use-list={}", f.path().display()))
        .arg("--file=-")
        .arg(archive);
    let out = tools::run(cmd, &format!("pg_restore ({what})"))?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The table as it is now, read before it is moved aside.
struct Live {
    primary_key: Vec<String>,
    /// Columns COPY would see: (name, type).
    columns: Vec<(String, String)>,
    /// Owned sequences: (schema, name, last_value, is_called).
    sequences: Vec<(String, String, i64, bool)>,
    /// Foreign keys of other tables to it: (table, name, definition, validated).
    incoming: Vec<(String, String, String, bool)>,
    /// Views reading it: (view, options, definition).
    views: Vec<(String, String, String)>,
    /// The partitioned table it is a partition of: (schema, name).
    partition_of: Option<(String, String)>,
}

/// A table added to a tree after the change, detached from the replaced
/// tree.
struct Newcomer {
    /// The group member it was added to.
    parent: usize,
    /// Quoted.
    table: String,
    /// `schema.name`.
    shown: String,
    /// A partition's bounds (`FOR VALUES …`); None: an inheritance child.
    bound: Option<String>,
}

struct Cx<'a> {
    repo: &'a Repository,
    index: &'a Index,
    content: &'a PgContent,
    client: &'a mut Client,
    tools: &'a Tools,
    archive: &'a Path,
    listing: &'a [Entry],
    change: &'a str,
    progress: &'a dyn Progress,
    session: &'a mut Session,
    /// session_replication_role before, put back after each load.
    replication_role: String,
    review_ready: bool,
}

/// Revokes every privilege on the table just created from `t`, and on the
/// sequences it owns, but its owner's: what the schema's and role's
/// default privileges gave it.
fn revoke_default_privileges(client: &mut Client, t: &PgTable) -> Result<()> {
    let what = format!("taking the default privileges off {}", t.qualified());
    let revokes: Vec<String> = client
        .query(
            "WITH rel AS (
                 SELECT pg_catalog.to_regclass($1)::pg_catalog.oid AS oid
                 UNION
                 SELECT d.objid FROM pg_catalog.pg_depend d
                 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                   AND d.refobjid = pg_catalog.to_regclass($1) AND d.deptype IN ('a', 'i')
                   AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) = 'S')
             SELECT DISTINCT pg_catalog.format('REVOKE ALL ON %s %s FROM %s',
                        CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, c.oid::pg_catalog.regclass,
                        CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END)
             FROM rel JOIN pg_catalog.pg_class c ON c.oid = rel.oid,
                  pg_catalog.aclexplode(c.relacl) a
             WHERE a.grantee <> c.relowner",
            &[&format!("{}.{}", ident(&t.schema), ident(&t.name))],
        )
        .map_err(pg_err(&what))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if revokes.is_empty() {
        return Ok(());
    }
    run(client, &revokes.join(";\n"), what)
}

fn run(client: &mut Client, sql: &str, context: impl Into<String>) -> Result<()> {
    client.batch_execute(sql).map_err(pg_err(context))
}

fn db_message(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

impl Cx<'_> {
    /// Puts back one table, or a whole partition or inheritance tree
    /// (`group`, parents before children), in the same shape: each table
    /// that still exists moves aside, the tree is created again and loaded
    /// table by table, then attached; rows written since are resolved
    /// through a partitioned table and table by table otherwise.
    fn revert_group(
        &mut self,
        group: &[&RevertTable<'_>],
        stash_prefix: &str,
    ) -> Result<Vec<TableRevert>> {
        let tables: Vec<&PgTable> = group.iter().map(|rt| rt.table).collect();
        let (mut pre, mut post, mut attach, mut fks) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut acl = Vec::new();
        let mut has_table = vec![false; tables.len()];
        let owned: Vec<Vec<&str>> = tables
            .iter()
            .map(|t| {
                let what = t.qualified();
                self.content
                    .sequences
                    .iter()
                    .filter(|s| s.schema == t.schema && s.owner.as_deref() == Some(what.as_str()))
                    .map(|s| s.name.as_str())
                    .collect()
            })
            .collect();
        // Indexes of constraints, attached to a partitioned table's by name.
        let constraints: Vec<Vec<&str>> = tables
            .iter()
            .map(|t| {
                self.listing
                    .iter()
                    .filter_map(|e| match e.words.as_slice() {
                        [d, s, n, c, ..] if d == "CONSTRAINT" && *s == t.schema && *n == t.name => {
                            Some(c.as_str())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        for e in self.listing {
            for (j, t) in tables.iter().enumerate() {
                match part_of(e, t, &owned[j], &constraints[j]) {
                    Some(Part::Pre) if e.words.first().is_some_and(|w| w == "ACL") => {
                        acl.push(e.line.as_str())
                    }
                    Some(Part::Pre) => {
                        has_table[j] |= e.words.first().is_some_and(|w| w == "TABLE");
                        pre.push(e.line.as_str())
                    }
                    Some(Part::Post) => post.push(e.line.as_str()),
                    Some(Part::Attach) => attach.push(e.line.as_str()),
                    Some(Part::ForeignKey) => fks.push((j, e.line.as_str())),
                    None => continue,
                }
                break;
            }
        }
        if let Some(j) = has_table.iter().position(|h| !h) {
            return Err(Error::Mismatch {
                detail: format!(
                    "the snapshot's schema has no table {}",
                    tables[j].qualified()
                ),
            });
        }
        for t in &tables {
            self.progress.item(&t.qualified());
        }
        let mut lives = Vec::with_capacity(tables.len());
        for t in &tables {
            lives.push(self.inspect(t)?);
        }
        let member = |schema: &str, name: &str| {
            tables
                .iter()
                .position(|t| t.schema == schema && t.name == name)
        };
        let mut stashes: Vec<Option<(String, String)>> = Vec::with_capacity(tables.len());
        for (j, (t, live)) in tables.iter().zip(&lives).enumerate() {
            let Some(live) = live else {
                stashes.push(None);
                continue;
            };
            let schema = format!("{stash_prefix}_{j}");
            let stash = self.move_aside(t, live, &schema)?;
            // A partition of a table not put back with it leaves its
            // parent, which takes the restored one in its place.
            if let Some((ps, pn)) = &live.partition_of {
                if member(ps, pn).is_none() {
                    run(
                        self.client,
                        &format!(
                            "ALTER TABLE {}.{} DETACH PARTITION {stash}",
                            ident(ps),
                            ident(pn)
                        ),
                        format!("detaching {} from {ps}.{pn}", t.qualified()),
                    )?;
                }
            }
            stashes.push(Some((stash, schema)));
        }
        let what = tables[0].qualified();

        let sql = script(self.tools, self.archive, &pre, "pre-data")?;
        self.exec_script(&sql, format!("creating {what} from the snapshot"))?;
        // A new table gets what `ALTER DEFAULT PRIVILEGES` grants today on
        // top of the snapshot's privileges, which pg_dump writes as changes
        // from the built-in defaults: take those off first.
        for t in &tables {
            revoke_default_privileges(self.client, t)?;
        }
        if !acl.is_empty() {
            let sql = script(self.tools, self.archive, &acl, "privileges")?;
            self.exec_script(&sql, format!("granting the privileges on {what}"))?;
        }

        // Triggers (user ones and foreign-key checks) stay quiet while the
        // snapshot's rows, and rows kept from before, go in.
        run(
            self.client,
            "SET LOCAL session_replication_role = replica",
            "pausing triggers (needs a superuser)",
        )?;
        for t in &tables {
            let mut rows = 0;
            for part in &t.parts {
                rows += copy_in(self.repo, self.index, self.client, t, part, self.progress)?;
            }
            if rows != t.rows {
                return Err(Error::Mismatch {
                    detail: format!(
                        "{}: {rows} rows loaded, the snapshot has {}",
                        t.qualified(),
                        t.rows
                    ),
                });
            }
        }
        let sql = script(self.tools, self.archive, &post, "post-data")?;
        self.exec_script(&sql, format!("indexing {what}"))?;
        // Partitions join their parents once loaded and indexed: their
        // indexes then attach to the parent's instead of being built again.
        let sql = script(self.tools, self.archive, &attach, "partitions")?;
        self.exec_script(&sql, format!("attaching the partitions of {what}"))?;
        // The writes made while the snapshot was taken: the tables are now
        // as they were when the change began. After attaching, so that rows
        // kept by a partitioned table reach their partitions.
        let mut deltas = Vec::with_capacity(tables.len());
        for t in &tables {
            let what = t.qualified();
            let oid = live_oid_of(self.client, t)?;
            let cols = columns(self.client, oid, &what)?;
            deltas.push(super::delta::apply(
                self.client,
                self.content,
                t,
                &quoted(t),
                &cols,
                self.change,
            )?);
        }
        for t in &tables {
            run(
                self.client,
                &format!("ANALYZE {}", quoted(t)),
                format!("analyzing {}", t.qualified()),
            )?;
        }

        // Tables the application added to the tree after the change leave
        // the replaced one before its rows are compared, so that theirs are
        // not taken for rows of the tree.
        let mut newcomers = Vec::new();
        for (j, stash) in stashes.iter().enumerate() {
            if let Some((stash, _)) = stash {
                newcomers.extend(self.detach_newcomers(j, tables[j], stash, &stashes)?);
            }
        }
        let mut reports = Vec::with_capacity(tables.len());
        for (j, rt) in group.iter().enumerate() {
            let t = tables[j];
            let mut report = TableRevert {
                table: t.qualified(),
                policy: Some(rt.policy),
                restored_rows: (t.rows + deltas[j].inserted).saturating_sub(deltas[j].deleted),
                recreated: lives[j].is_none(),
                ..TableRevert::default()
            };
            if let (Some(live), Some((stash, _))) = (&lives[j], &stashes[j]) {
                // Rows of a partition that stayed attached to a moved-aside
                // partitioned table are resolved through that table.
                let through_parent = live.partition_of.as_ref().is_some_and(|(ps, pn)| {
                    member(ps, pn).is_some_and(|p| stashes[p].is_some() && tables[p].partitioned)
                });
                // The three-way merge reads a partitioned table through
                // its partitions (rows move between them) and any other
                // table without its inheritance children, as the
                // fingerprint hashed them.
                let merged =
                    !through_parent && self.merge3(t, live, stash, rt.policy, &mut report)?;
                if !merged && !through_parent {
                    self.merge(t, live, stash, rt.policy, &mut report)?;
                }
            }
            reports.push(report);
        }
        self.client
            .execute(
                "SELECT pg_catalog.set_config('session_replication_role', $1, true)",
                &[&self.replication_role],
            )
            .map_err(pg_err("resuming triggers"))?;

        for (j, fk) in &fks {
            self.add_foreign_key(fk, &tables[*j].qualified())?;
        }
        for (t, live) in tables.iter().zip(&lives) {
            let what = t.qualified();
            if let Some(live) = live {
                for (table, fk, def, validated) in &live.incoming {
                    self.readd_incoming(table, fk, def, *validated)?;
                }
                for (view, options, def) in &live.views {
                    let with = if options.is_empty() {
                        String::new()
                    } else {
                        format!(" WITH ({options})")
                    };
                    let def = def.trim().trim_end_matches(';');
                    run(
                        self.client,
                        &format!("CREATE OR REPLACE VIEW {view}{with} AS {def}"),
                        format!("recreating view {view} on the reverted {what}"),
                    )?;
                }
            }
            self.set_sequences(t, live.as_ref())?;
        }
        for n in newcomers {
            let j = n.parent;
            reports.push(self.adopt(n, tables[j], group[j].policy)?);
        }
        let moved: Vec<&(String, String)> = stashes.iter().flatten().collect();
        if !moved.is_empty() {
            // No CASCADE: anything still depending on the old tables is the
            // user's and must not disappear silently. One statement, so that
            // a tree goes at once.
            let drop = format!(
                "DROP TABLE {}; DROP SCHEMA {}",
                moved
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                moved
                    .iter()
                    .map(|(_, s)| ident(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.client
                .batch_execute(&drop)
                .map_err(|e| match e.as_db_error() {
                    // The detail names what depends on it.
                    Some(d) => Error::Pg {
                        context: format!("dropping the replaced copy of {what}"),
                        detail: match d.detail() {
                            Some(x) => format!("{} ({x})", d.message()),
                            None => d.message().to_string(),
                        },
                    },
                    None => pg_err(format!("dropping the replaced copy of {what}"))(e),
                })?;
        }
        Ok(reports)
    }

    /// Partitions and inheritance children created after the change (the
    /// snapshot has no such table) are still in the tree of the replaced
    /// `t`, moved aside as `stash`: each leaves it, with its rows.
    fn detach_newcomers(
        &mut self,
        parent: usize,
        t: &PgTable,
        stash: &str,
        stashes: &[Option<(String, String)>],
    ) -> Result<Vec<Newcomer>> {
        let what = t.qualified();
        let found = self
            .client
            .query(
                "SELECT n.nspname::text, c.relname::text,
                        CASE WHEN c.relispartition
                             THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END
                 FROM pg_catalog.pg_inherits i
                 JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE i.inhparent = $1::text::regclass ORDER BY 1, 2",
                &[&stash],
            )
            .map_err(pg_err(format!("reading the children of {what}")))?;
        let mut out = Vec::new();
        for r in found {
            let (schema, name, bound): (String, String, Option<String>) =
                (r.get(0), r.get(1), r.get(2));
            // A table put back with the tree was moved aside too.
            if stashes.iter().flatten().any(|(_, s)| *s == schema) {
                continue;
            }
            let table = format!("{}.{}", ident(&schema), ident(&name));
            let sql = match bound {
                Some(_) => format!("ALTER TABLE {stash} DETACH PARTITION {table}"),
                None => format!("ALTER TABLE {table} NO INHERIT {stash}"),
            };
            run(
                self.client,
                &sql,
                format!("detaching {schema}.{name}, created after the change, from {what}"),
            )?;
            out.push(Newcomer {
                parent,
                table,
                shown: format!("{schema}.{name}"),
                bound,
            });
        }
        Ok(out)
    }

    /// A table the application added to the tree of `t` after the change
    /// (see [`Self::detach_newcomers`]). Under `keep-new` it joins the
    /// restored `t` again (as a partition with its bounds, or inheriting),
    /// given the columns the revert brought back (NULL in its rows); where
    /// it cannot (a column it lacks must be NOT NULL, a type differs, a
    /// column the restored table lacks, bounds that overlap), and under
    /// `snapshot` and `review`, whose tree is the snapshot's, it stays a
    /// table of its own, with a warning. Its rows are counted as kept.
    fn adopt(&mut self, n: Newcomer, t: &PgTable, policy: OnConflict) -> Result<TableRevert> {
        let what = t.qualified();
        let (child, shown) = (&n.table, &n.shown);
        let context = format!("keeping {shown}, added to {what} after the change");
        let rows: i64 = self
            .client
            .query_one(&format!("SELECT count(*) FROM {child}"), &[])
            .map_err(pg_err(&context))?
            .get(0);
        let alone = if policy == OnConflict::KeepNew {
            let missing: Vec<String> = self
                .client
                .query(
                    "SELECT pg_catalog.quote_ident(a.attname) || ' '
                            || pg_catalog.format_type(a.atttypid, a.atttypmod)
                     FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = $1::text::regclass AND a.attnum > 0
                       AND NOT a.attisdropped
                       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute b
                                       WHERE b.attrelid = $2::text::regclass
                                         AND b.attname = a.attname AND NOT b.attisdropped)
                     ORDER BY a.attnum",
                    &[&quoted(t), child],
                )
                .map_err(pg_err(&context))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut sql = String::new();
            if !missing.is_empty() {
                sql = format!(
                    "ALTER TABLE {child} {};\n",
                    missing
                        .iter()
                        .map(|c| format!("ADD COLUMN {c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            sql.push_str(&match &n.bound {
                Some(bound) => {
                    format!("ALTER TABLE {} ATTACH PARTITION {child} {bound}", quoted(t))
                }
                None => format!("ALTER TABLE {child} INHERIT {}", quoted(t)),
            });
            self.try_in_savepoint(&sql, &context)?
                .map(|why| format!("it cannot join the restored table ({why})"))
        } else {
            Some(format!(
                "the snapshot's tree has no such table (on_conflict {})",
                policy.name()
            ))
        };
        if let Some(why) = alone {
            let kind = if n.bound.is_some() {
                "a partition"
            } else {
                "a child"
            };
            self.progress.warn(format!(
                "{shown}, created after the change as {kind} of {what}, stays a table of its \
                 own with its {}: {why}",
                ripcord_core::text::counted(rows.max(0) as u64, "row")
            ));
        }
        Ok(TableRevert {
            table: shown.clone(),
            policy: Some(policy),
            kept_rows: rows.max(0) as u64,
            ..TableRevert::default()
        })
    }

    fn exec_script(&mut self, sql: &str, context: String) -> Result<()> {
        if sql.is_empty() {
            return Ok(());
        }
        self.session.remember(self.client, settings_in(sql))?;
        run(self.client, sql, context)
    }

    fn inspect(&mut self, t: &PgTable) -> Result<Option<Live>> {
        let what = t.qualified();
        let name = quoted(t);
        let c = &mut *self.client;
        let row = c
            .query_opt(
                "SELECT c.oid, c.relkind::text, pn.nspname::text, p.relname::text
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 LEFT JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid AND c.relispartition
                 LEFT JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
                 LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&t.schema, &t.name],
            )
            .map_err(pg_err(format!("looking up {what}")))?;
        let Some(row) = row else { return Ok(None) };
        let (oid, kind): (Oid, String) = (row.get(0), row.get(1));
        let partition_of = match (
            row.get::<_, Option<String>>(2),
            row.get::<_, Option<String>>(3),
        ) {
            (Some(schema), Some(name)) => Some((schema, name)),
            _ => None,
        };
        let refuse = |detail: String| Error::Pg {
            context: format!("reverting {what}"),
            detail,
        };
        if kind != "r" && kind != "p" {
            return Err(refuse(format!(
                "{what} is now a relation of kind '{kind}', not a table; drop it first"
            )));
        }
        run(
            c,
            &format!("LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE"),
            format!("locking {what}"),
        )?;
        let primary_key = c
            .query(
                "SELECT a.attname::text FROM pg_catalog.pg_constraint k
                 CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY u(attnum, n)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
                 WHERE k.conrelid = $1 AND k.contype = 'p' ORDER BY u.n",
                &[&oid],
            )
            .map_err(pg_err(format!("reading the primary key of {what}")))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let columns = columns(c, oid, &what)?;
        let mut sequences = Vec::new();
        for r in c
            .query(
                "SELECT n.nspname::text, s.relname::text FROM pg_catalog.pg_depend d
                 JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                 JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
                 WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1
                   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')",
                &[&oid],
            )
            .map_err(pg_err(format!("reading the sequences of {what}")))?
        {
            let (schema, seq): (String, String) = (r.get(0), r.get(1));
            let v = c
                .query_one(
                    &format!(
                        "SELECT last_value, is_called FROM {}.{}",
                        ident(&schema),
                        ident(&seq)
                    ),
                    &[],
                )
                .map_err(pg_err(format!("reading sequence {schema}.{seq}")))?;
            sequences.push((schema, seq, v.get(0), v.get(1)));
        }
        let incoming = c
            .query(
                "SELECT conrelid::regclass::text, conname::text, pg_catalog.pg_get_constraintdef(oid), convalidated
                 FROM pg_catalog.pg_constraint
                 WHERE contype = 'f' AND confrelid = $1 AND conrelid <> confrelid
                   AND conparentid = 0 ORDER BY 1, 2",
                &[&oid],
            )
            .map_err(pg_err(format!("reading foreign keys to {what}")))?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        let mut views = Vec::new();
        for r in c
            .query(
                "SELECT DISTINCT v.oid::regclass::text, v.relkind::text,
                        pg_catalog.pg_get_viewdef(v.oid),
                        coalesce(array_to_string(v.reloptions, ', '), '')
                 FROM pg_catalog.pg_depend d
                 JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid
                 JOIN pg_catalog.pg_class v ON v.oid = w.ev_class
                 WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refobjid = $1
                   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND v.oid <> $1
                 ORDER BY 1",
                &[&oid],
            )
            .map_err(pg_err(format!("reading views on {what}")))?
        {
            let (view, kind, def, options): (String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            match kind.as_str() {
                "v" => {}
                // Replacing its query in place would lose its rows and indexes.
                "m" => {
                    return Err(refuse(format!(
                        "materialized view {view} reads {what}; drop it before the revert and create it again after"
                    )))
                }
                _ => {
                    return Err(refuse(format!(
                        "a rule on {view} reads {what}; drop it before the revert and create it again after"
                    )))
                }
            }
            views.push((view, options, def));
        }
        Ok(Some(Live {
            primary_key,
            columns,
            sequences,
            incoming,
            views,
            partition_of,
        }))
    }

    /// Moves the live table, with its indexes, constraints and owned
    /// sequences, into a new schema; returns its new qualified name.
    fn move_aside(&mut self, t: &PgTable, live: &Live, stash_schema: &str) -> Result<String> {
        let what = t.qualified();
        for (table, fk, _, _) in &live.incoming {
            run(
                self.client,
                &format!("ALTER TABLE {table} DROP CONSTRAINT {}", ident(fk)),
                format!("detaching foreign key {fk} on {table}"),
            )?;
        }
        run(
            self.client,
            &format!(
                "CREATE SCHEMA {s}; ALTER TABLE {} SET SCHEMA {s}",
                quoted(t),
                s = ident(stash_schema)
            ),
            format!("moving {what} aside"),
        )?;
        Ok(format!("{}.{}", ident(stash_schema), ident(&t.name)))
    }

    /// Resolves the rows of the replaced table by a three-way comparison
    /// with the fingerprint the change recorded; `false` when it has none
    /// that fits (a change applied by an older version).
    fn merge3(
        &mut self,
        t: &PgTable,
        live: &Live,
        stash: &str,
        policy: OnConflict,
        report: &mut TableRevert,
    ) -> Result<bool> {
        let what = t.qualified();
        let Some(fp) = fingerprint::load(self.client, self.change, &what)? else {
            return Ok(false);
        };
        let unwritten = fingerprint::unwritten_since(self.client, self.change, stash)?;
        let merging = merge3::Merging {
            what: &what,
            name: &quoted(t),
            stash,
            live_columns: &live.columns,
            partitioned: t.partitioned,
            change: self.change,
            unwritten,
        };
        merge3::merge(self.client, self.progress, &merging, &fp, policy, report)
    }

    /// Resolves the rows of the replaced table that the snapshot lacks.
    fn merge(
        &mut self,
        t: &PgTable,
        live: &Live,
        stash: &str,
        policy: OnConflict,
        report: &mut TableRevert,
    ) -> Result<()> {
        let what = t.qualified();
        let name = quoted(t);
        // A partitioned table is read through its partitions; any other
        // table by itself, without inheritance children of its own.
        let (read, stash) = if t.partitioned {
            (name.clone(), stash.to_string())
        } else {
            (format!("ONLY {name}"), format!("ONLY {stash}"))
        };
        let stash = stash.as_str();
        let oid = live_oid_of(self.client, t)?;
        let restored = columns(self.client, oid, &what)?;
        // Columns both versions have, cast to the restored table's types.
        let common: Vec<(String, String)> = restored
            .iter()
            .filter_map(|(col, ty)| {
                let (_, old_ty) = live.columns.iter().find(|(c, _)| c == col)?;
                let s = if old_ty == ty {
                    format!("s.{}", ident(col))
                } else {
                    format!("CAST(s.{} AS {ty})", ident(col))
                };
                Some((col.clone(), s))
            })
            .collect();
        let keyed = !live.primary_key.is_empty()
            && live
                .primary_key
                .iter()
                .all(|k| common.iter().any(|(c, _)| c == k));
        // A kept row gets no value for columns only the snapshot has: one
        // that must be set and has no default makes such rows unkeepable,
        // so they are set aside for review instead, as without a key.
        let unfillable: Vec<String> = self
            .client
            .query(
                "SELECT attname::text FROM pg_catalog.pg_attribute
                 WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attnotnull
                   AND NOT atthasdef AND attidentity = '' AND attgenerated = ''
                 ORDER BY attnum",
                &[&oid],
            )
            .map_err(pg_err(format!("reading the columns of {what}")))?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|c| !common.iter().any(|(k, _)| k == c))
            .collect();
        let policy = if policy == OnConflict::KeepNew && (!keyed || !unfillable.is_empty()) {
            if keyed {
                self.progress.warn(format!(
                    "rows written to {what} since the snapshot lack {}, which the restored table \
                     requires: they are set aside for review instead of kept",
                    unfillable.join(", ")
                ));
            }
            OnConflict::Review
        } else {
            policy
        };
        let cols = common
            .iter()
            .map(|(c, _)| ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let select = common
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        // Matching rows on the key.
        let on = live
            .primary_key
            .iter()
            .filter(|_| keyed)
            .map(|k| {
                let s = &common
                    .iter()
                    .find(|(c, _)| c == k)
                    .expect("keyed: every key column is common")
                    .1;
                format!("r.{} = {s}", ident(k))
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        // A row the snapshot lacks, or one changed since, was written by
        // the snapshot's xmin transaction or a later one. Those few row
        // versions are copied aside with their statistics, so the lookups
        // below probe the restored key's index instead of hashing the whole
        // table. age() compares xids modulo 2^32 as the server does; a
        // misjudged ancient xid only costs a lookup.
        let source = match (keyed, self.content.xmin) {
            (true, Some(xmin)) => {
                let recent = format!("pg_temp.ripcord_recent_{oid}");
                run(
                    self.client,
                    &format!(
                        "CREATE TEMP TABLE {recent} ON COMMIT DROP AS SELECT * FROM {stash} s
                         WHERE pg_catalog.age(s.xmin) <= pg_catalog.age('{}'::xid);
                         ANALYZE {recent}",
                        xmin & 0xffff_ffff
                    ),
                    format!("finding the rows of {what} written since the snapshot"),
                )?;
                recent
            }
            _ => stash.to_string(),
        };
        // Comparing rows needs equality: columns of a type without a default
        // btree operator class (json, point, xml, arrays, …) are compared by
        // their text form.
        let comparable = self.comparable_columns(oid, &what)?;
        // The new rows, as "FROM … " with `s` their alias.
        let (from, reason) = if keyed {
            (
                format!("FROM {source} s WHERE NOT EXISTS (SELECT 1 FROM {read} r WHERE {on})"),
                "inserted after the snapshot",
            )
        } else if common.is_empty() {
            (
                format!("FROM {stash} s"),
                "written after the snapshot (no common columns to compare)",
            )
        } else {
            let side = |alias: &str| {
                common
                    .iter()
                    .map(|(c, stash_expr)| {
                        let expr = if alias == "s" {
                            stash_expr.clone()
                        } else {
                            format!("r.{}", ident(c))
                        };
                        format!("{} AS {}", compared(&expr, c, &comparable), ident(c))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (
                format!(
                    "FROM (SELECT {} FROM {stash} s EXCEPT ALL SELECT {} FROM {read} r) s",
                    side("s"),
                    side("r")
                ),
                "not in the snapshot (the table has no primary key to match rows)",
            )
        };
        let context = format!("resolving rows written to {what} since the snapshot");
        if policy == OnConflict::KeepNew {
            let sql = format!(
                "INSERT INTO {name} ({cols}) OVERRIDING SYSTEM VALUE SELECT {select} {from}"
            );
            // A row the snapshot's constraints still reject (a unique value
            // taken, a CHECK) fails the revert: the caller rolls back, and
            // another policy can be chosen.
            report.kept_rows = self.client.execute(&sql, &[]).map_err(|e| Error::Pg {
                context: format!(
                    "keeping rows written to {what} since the snapshot (on_conflict review or snapshot for this table avoids this)"
                ),
                detail: db_message(&e),
            })?;
        }
        match policy {
            OnConflict::KeepNew => {}
            OnConflict::Review => {
                self.review_table()?;
                let sql = format!(
                    "INSERT INTO ripcord.review (change, table_name, row_data, reason)
                     SELECT $1, $2, pg_catalog.to_jsonb(s), $3 {from}"
                );
                report.review_rows = self
                    .client
                    .execute(&sql, &[&self.change, &what, &reason])
                    .map_err(pg_err(context))?;
            }
            OnConflict::Snapshot => {
                let n: i64 = self
                    .client
                    .query_one(&format!("SELECT count(*) {from}"), &[])
                    .map_err(pg_err(context))?
                    .get(0);
                report.discarded_rows = n as u64;
            }
        }
        if keyed && !common.is_empty() {
            self.changed_rows(
                &read,
                &what,
                &source,
                &on,
                &common,
                &comparable,
                policy,
                report,
            )?;
        }
        report.policy = Some(policy);
        Ok(())
    }

    /// Rows that were there before and hold other values now (changed by
    /// the change itself or written since): the snapshot's values were put
    /// back. Counted for the report, and set aside under `review`. A table
    /// whose columns cannot be compared (json, point) is left uncounted.
    #[allow(clippy::too_many_arguments)]
    fn changed_rows(
        &mut self,
        name: &str,
        what: &str,
        source: &str,
        on: &str,
        common: &[(String, String)],
        comparable: &[String],
        policy: OnConflict,
        report: &mut TableRevert,
    ) -> Result<()> {
        let then = common
            .iter()
            .map(|(c, _)| compared(&format!("r.{}", ident(c)), c, comparable))
            .collect::<Vec<_>>()
            .join(", ");
        let now = common
            .iter()
            .map(|(c, s)| compared(s, c, comparable))
            .collect::<Vec<_>>()
            .join(", ");
        let from = format!(
            "FROM {source} s JOIN {name} r ON {on} WHERE ROW({now}) IS DISTINCT FROM ROW({then})"
        );
        let context = format!("comparing the rows of {what} with the snapshot");
        run(self.client, "SAVEPOINT ripcord_changed_rows", &context)?;
        let counted = self
            .client
            .query_one(&format!("SELECT count(*) {from}"), &[]);
        let n: i64 = match counted {
            Ok(row) => row.get(0),
            Err(_) => {
                run(
                    self.client,
                    "ROLLBACK TO SAVEPOINT ripcord_changed_rows",
                    &context,
                )?;
                return Ok(());
            }
        };
        run(
            self.client,
            "RELEASE SAVEPOINT ripcord_changed_rows",
            &context,
        )?;
        report.changed_rows = n as u64;
        if n > 0 && policy == OnConflict::Review {
            self.review_table()?;
            let sql = format!(
                "INSERT INTO ripcord.review (change, table_name, row_data, reason)
                 SELECT $1, $2, pg_catalog.to_jsonb(s), $3 {from}"
            );
            let reason = "changed since the snapshot; the snapshot's values were put back";
            self.client
                .execute(&sql, &[&self.change, &what, &reason])
                .map_err(pg_err(context))?;
        }
        Ok(())
    }

    /// The columns of `oid` whose type has a default btree operator class,
    /// so that rows can be compared on them as they are.
    fn comparable_columns(&mut self, oid: Oid, what: &str) -> Result<Vec<String>> {
        Ok(self
            .client
            .query(
                "SELECT a.attname::text FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                   AND EXISTS (SELECT 1 FROM pg_catalog.pg_opclass o
                               JOIN pg_catalog.pg_am m ON m.oid = o.opcmethod
                               WHERE m.amname = 'btree' AND o.opcdefault
                                 AND o.opcintype = a.atttypid)",
                &[&oid],
            )
            .map_err(pg_err(format!("reading the column types of {what}")))?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn review_table(&mut self) -> Result<()> {
        if !self.review_ready {
            run(self.client, merge3::REVIEW_DDL, "creating ripcord.review")?;
            self.review_ready = true;
        }
        Ok(())
    }

    /// A foreign key of the snapshot's table; rows may no longer match
    /// (parents deleted since), then it goes back NOT VALID with a warning.
    fn add_foreign_key(&mut self, entry: &str, what: &str) -> Result<()> {
        let sql = script(self.tools, self.archive, &[entry], "foreign key")?;
        self.session.remember(self.client, settings_in(&sql))?;
        let context = format!("restoring a foreign key of {what}");
        if let Some(why) = self.try_in_savepoint(&sql, &context)? {
            let Some(at) = sql.find("ADD CONSTRAINT") else {
                return Err(Error::Pg {
                    context,
                    detail: why,
                });
            };
            let end = at + sql[at..].find(";\n").unwrap_or(sql.len() - at);
            let lax = format!("{} NOT VALID{}", &sql[..end], &sql[end..]);
            run(self.client, &lax, context)?;
            self.progress.warn(format!(
                "a foreign key of {what} was restored NOT VALID: {why}"
            ));
        }
        Ok(())
    }

    fn readd_incoming(&mut self, table: &str, fk: &str, def: &str, validated: bool) -> Result<()> {
        let add = format!("ALTER TABLE {table} ADD CONSTRAINT {} {def}", ident(fk));
        let context = format!("restoring foreign key {fk} on {table}");
        if !validated {
            return run(self.client, &add, context);
        }
        if let Some(why) = self.try_in_savepoint(&add, &context)? {
            run(self.client, &format!("{add} NOT VALID"), context)?;
            self.progress.warn(format!(
                "foreign key {fk} on {table} no longer holds after the revert and is now NOT VALID: {why}"
            ));
        }
        Ok(())
    }

    /// What depended on the reverted tables and is gone now (a `CASCADE`
    /// took it, or the change dropped it) comes back from the snapshot's
    /// record, kind by kind in [`dependents::ORDER`]; each kind is retried
    /// while some succeed, for views on views. What is there is left alone.
    /// A foreign key that no longer holds comes back `NOT VALID` with a
    /// warning; anything else that cannot come back fails the revert, which
    /// the caller rolls back.
    fn restore_dependents(&mut self, reverted: &[&str]) -> Result<()> {
        let content = self.content;
        let mut seen = std::collections::HashSet::new();
        let wanted: Vec<&PgDependent> = content
            .dependents
            .iter()
            .filter(|d| reverted.contains(&d.on.as_str()))
            .filter(|d| seen.insert((&d.kind, &d.relation, &d.name)))
            .collect();
        for group in dependents::ORDER {
            let mut todo = Vec::new();
            for d in wanted
                .iter()
                .copied()
                .filter(|d| group.contains(&d.kind.as_str()))
            {
                if dependents::exists(self.client, d)? {
                    continue;
                }
                let relation =
                    [dependents::VIEW, dependents::MATERIALIZED_VIEW].contains(&d.kind.as_str());
                if !relation && !dependents::holder_exists(self.client, d)? {
                    // The table holding it is gone, which is not this
                    // revert's doing (rehearse reports it).
                    self.progress.warn(format!(
                        "{} was not put back: {} no longer exists",
                        dependents::describe(d),
                        d.relation
                    ));
                    continue;
                }
                todo.push(d);
            }
            if group == [dependents::FOREIGN_KEY] {
                for d in todo {
                    self.readd_incoming(&d.relation, &d.name, &d.definition, true)?;
                }
                continue;
            }
            let mut failed = Vec::new();
            while !todo.is_empty() {
                let before = todo.len();
                let mut left = Vec::new();
                failed.clear();
                for d in todo {
                    let context = format!("recreating {}", dependents::describe(d));
                    if let Some(why) =
                        self.try_in_savepoint(&dependents::create_sql(d), &context)?
                    {
                        left.push(d);
                        failed.push((d, why));
                    }
                }
                todo = left;
                if todo.len() == before {
                    break;
                }
            }
            if let Some((d, why)) = failed.into_iter().next() {
                return Err(Error::DependentLost {
                    what: dependents::describe(d),
                    on: d.on.clone(),
                    detail: why,
                });
            }
        }
        Ok(())
    }

    /// Runs `sql` in a savepoint; returns why it failed, with the savepoint
    /// rolled back, or None.
    fn try_in_savepoint(&mut self, sql: &str, context: &str) -> Result<Option<String>> {
        run(self.client, "SAVEPOINT ripcord_revert", context)?;
        match self.client.batch_execute(sql) {
            Ok(()) => {
                run(self.client, "RELEASE SAVEPOINT ripcord_revert", context)?;
                Ok(None)
            }
            Err(e) if e.as_db_error().is_some() => {
                run(
                    self.client,
                    "ROLLBACK TO SAVEPOINT ripcord_revert; RELEASE SAVEPOINT ripcord_revert",
                    context,
                )?;
                Ok(Some(db_message(&e)))
            }
            Err(e) => Err(pg_err(context)(e)),
        }
    }

    /// Owned sequences never go back: the larger of the snapshot's and the
    /// replaced table's value, so ids are not handed out twice.
    fn set_sequences(&mut self, t: &PgTable, live: Option<&Live>) -> Result<()> {
        let what = t.qualified();
        for s in self
            .content
            .sequences
            .iter()
            .filter(|s| s.owner.as_deref() == Some(what.as_str()))
        {
            let seq = format!("{}.{}", ident(&s.schema), ident(&s.name));
            let context = format!("setting sequence {}.{}", s.schema, s.name);
            let exists: bool = self
                .client
                .query_one("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[&seq])
                .map_err(pg_err(&context))?
                .get(0);
            if !exists {
                continue;
            }
            let mut value = (s.last_value, s.is_called);
            if let Some((_, _, v, called)) = live.and_then(|l| {
                l.sequences
                    .iter()
                    .find(|(sc, n, _, _)| *sc == s.schema && *n == s.name)
            }) {
                value = value.max((*v, *called));
            }
            self.client
                .execute(
                    "SELECT pg_catalog.setval($1::text::regclass, $2, $3)",
                    &[&seq, &value.0, &value.1],
                )
                .map_err(pg_err(context))?;
        }
        Ok(())
    }
}

/// `expr` (of column `column`) as rows are compared on it: as it is, or by
/// its text form when its type has no equality.
fn compared(expr: &str, column: &str, comparable: &[String]) -> String {
    if comparable.iter().any(|c| c == column) {
        expr.to_string()
    } else {
        format!("({expr})::text")
    }
}

fn live_oid_of(client: &mut Client, t: &PgTable) -> Result<Oid> {
    Ok(client
        .query_one("SELECT $1::text::regclass::oid", &[&quoted(t)])
        .map_err(pg_err(format!("looking up {}", t.qualified())))?
        .get(0))
}

/// Columns COPY sees (generated ones excluded), with their types.
fn columns(client: &mut Client, oid: Oid, what: &str) -> Result<Vec<(String, String)>> {
    Ok(client
        .query(
            "SELECT attname::text, pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
             ORDER BY attnum",
            &[&oid],
        )
        .map_err(pg_err(format!("reading the columns of {what}")))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
