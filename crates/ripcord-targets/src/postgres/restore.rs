//! Restores: whole databases (pre-data, parallel data, parallel post-data,
//! sequences) and selected tables, then a check of every restored table.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use postgres::error::SqlState;
use postgres::{Client, GenericClient};
use ripcord_core::table_name::TableRef;
use ripcord_repo::index::Index;
use ripcord_repo::manifest::{PgContent, PgTable, Stream};
use ripcord_repo::Repository;
use serde::Serialize;

use super::catalog::{self, column_list, TableInfo};
use super::conn::{ident, pg_err, Target};
use super::copy::{RowStats, Scanner};
use super::load;
use super::parallel::{copy_out, plan};
use super::tools::{self, Tools};
use super::SPLIT_BYTES;
use crate::error::{Error, Result};
use crate::Progress;

#[derive(Clone, Debug, Default)]
pub struct PgRestoreOptions {
    /// Parallel workers; 0 means one per core.
    pub jobs: usize,
    /// Only these tables of the snapshot.
    pub tables: Option<Vec<String>>,
    /// Replace what the destination holds.
    pub clean: bool,
    /// Create the destination database first.
    pub create: bool,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TableCheck {
    pub table: String,
    pub rows: u64,
    pub expected_rows: u64,
    pub checksum_matches: bool,
}

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct PgRestoreStats {
    pub database: String,
    pub created: bool,
    #[serde(rename = "table_count")]
    pub tables: usize,
    pub rows: u64,
    pub bytes: u64,
    pub checks: Vec<TableCheck>,
    /// Where the time went, in order.
    pub phases: Vec<Phase>,
}

/// One step of a restore and its wall-clock seconds.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Phase {
    #[serde(rename = "phase")]
    pub name: &'static str,
    pub seconds: f64,
}

/// Records the time since the previous lap under a phase name.
struct Laps {
    last: Instant,
    phases: Vec<Phase>,
}

impl Laps {
    fn new() -> Laps {
        Laps {
            last: Instant::now(),
            phases: Vec::new(),
        }
    }
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        let seconds = (now - self.last).as_secs_f64();
        self.phases.push(Phase { name, seconds });
        self.last = now;
    }
}

pub(super) fn quoted(t: &PgTable) -> String {
    format!("{}.{}", ident(&t.schema), ident(&t.name))
}

pub fn restore(
    repo: &Repository,
    index: &Index,
    content: &PgContent,
    url: &str,
    opts: &PgRestoreOptions,
    progress: &dyn Progress,
) -> Result<PgRestoreStats> {
    let mut laps = Laps::new();
    let target = Target::parse(url)?;
    let shown = target.redacted();
    let selected: Vec<&PgTable> = match &opts.tables {
        None => content.tables.iter().collect(),
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                let wanted = TableRef::parse(n).map_err(|e| Error::UnknownTable {
                    name: format!("{n} ({})", e.reason),
                    target: "the snapshot".into(),
                })?;
                let t = content
                    .tables
                    .iter()
                    .find(|t| wanted.matches(&t.schema, &t.name))
                    .ok_or_else(|| Error::UnknownTable {
                        name: n.clone(),
                        target: "the snapshot".into(),
                    })?;
                out.push(t);
            }
            // A partitioned or inheritance parent comes back with its tree.
            let mut i = 0;
            while i < out.len() {
                let parent = out[i].qualified();
                for t in content
                    .tables
                    .iter()
                    .filter(|t| t.parents.contains(&parent))
                {
                    if !out.iter().any(|o| std::ptr::eq(*o, t)) {
                        out.push(t);
                    }
                }
                i += 1;
            }
            out
        }
    };
    let mut created = false;
    if opts.create {
        let admin = target.with_dbname("postgres");
        let mut c = admin.connect()?;
        let db = target.dbname();
        match c.batch_execute(&format!("CREATE DATABASE {}", ident(&db))) {
            Ok(()) => created = true,
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {
                return Err(Error::NotEmptyDatabase {
                    target: format!("{shown} (it already exists; --create makes a new one)"),
                    tables: -1,
                })
            }
            Err(e) => return Err(pg_err(format!("creating database {db}"))(e)),
        }
    }
    laps.lap("create");
    let mut client = target.connect()?;
    let (_, major) = catalog::server_version(&mut client)?;
    let tools = Tools::find(major)?;
    let jobs = match opts.jobs {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let archive = write_archive(repo, index, &content.schema)?;
    laps.lap("connect");
    let table_level = opts.tables.is_some() || content.partial;
    let mut checks = None;

    if table_level {
        restore_tables(
            repo,
            index,
            &mut client,
            &tools,
            &target,
            archive.path(),
            &selected,
            content,
            progress,
        )?;
        laps.lap("tables");
    } else {
        let existing = catalog::user_table_count(&mut client)?;
        if existing > 0 && !opts.clean {
            return Err(Error::NotEmptyDatabase {
                target: shown,
                tables: existing,
            });
        }
        if opts.clean {
            drop_extra_relations(&mut client, &tools, &target, archive.path(), progress)?;
        }
        // Every step below commits without waiting for the disk; the
        // durable commit at the end covers them all.
        let mut options = std::env::var("PGOPTIONS").unwrap_or_default();
        options.push_str(" -c synchronous_commit=off");
        let mut pre = pg_restore(&tools, &target, archive.path());
        pre.arg("--section=pre-data").env("PGOPTIONS", &options);
        if opts.clean {
            // All or nothing: a drop that fails leaves the database as it was.
            pre.arg("--clean")
                .arg("--if-exists")
                .arg("--single-transaction");
        }
        if created {
            pre.arg("--no-owner").arg("--no-privileges");
        }
        tools::run(pre, "pg_restore --section=pre-data")?;
        laps.lap("schema");
        if index_memory_is_low(&mut client)? {
            options.push_str(&format!(" -c maintenance_work_mem={INDEX_MEMORY}"));
        }
        let post_data = |list: &std::path::Path, jobs: usize| {
            let mut post = pg_restore(&tools, &target, archive.path());
            post.arg("--section=post-data")
                .arg(format!("--use-list={}", list.display()))
                .arg(format!("--jobs={jobs}"))
                .env("PGOPTIONS", &options);
            if created {
                post.arg("--no-owner").arg("--no-privileges");
            }
            post
        };
        // A large table's indexes are built as soon as it is loaded and
        // checked, while the other tables load; the rest of the post-data
        // (foreign keys first of all, which need the indexes of two tables)
        // comes after every table.
        let listing = toc_listing(&tools, &target, archive.path())?;
        let (early, rest) = early_index_lists(&listing, &selected);
        let early: Vec<Option<tempfile::NamedTempFile>> = early
            .iter()
            .map(|l| l.as_deref().map(list_file).transpose())
            .collect::<Result<_>>()?;
        let build = |i: usize| match &early[i] {
            Some(list) => tools::run(
                post_data(list.path(), 1),
                &format!(
                    "pg_restore --section=post-data ({})",
                    selected[i].qualified()
                ),
            )
            .map(drop),
            None => Ok(()),
        };
        let has_early: Vec<bool> = early.iter().map(Option::is_some).collect();
        checks = Some(load::load_and_check(
            repo, index, &target, &selected, jobs, &has_early, &build, progress,
        )?);
        laps.lap("load");
        let list = list_file(&rest)?;
        tools::run(
            post_data(list.path(), jobs),
            "pg_restore --section=post-data",
        )?;
        laps.lap("indexes");
        set_sequences(&mut client, content)?;
        // The loads committed without waiting for the disk; one durable
        // commit after them makes them all durable.
        client
            .batch_execute("SELECT txid_current()")
            .map_err(pg_err("committing the restore"))?;
    }
    let checks = match checks {
        Some(c) => c,
        None => check_tables(&target, &selected, jobs)?,
    };
    laps.lap("check");
    let bad: Vec<&TableCheck> = checks
        .iter()
        .filter(|c| !c.checksum_matches || c.rows != c.expected_rows)
        .collect();
    if !bad.is_empty() {
        return Err(Error::Mismatch {
            detail: bad
                .iter()
                .map(|c| format!("{}: {} rows, expected {}", c.table, c.rows, c.expected_rows))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(PgRestoreStats {
        database: shown,
        created,
        tables: selected.len(),
        rows: selected.iter().map(|t| t.rows).sum(),
        bytes: selected.iter().map(|t| t.size).sum(),
        checks,
        phases: laps.phases,
    })
}

fn pg_restore(tools: &Tools, target: &Target, archive: &std::path::Path) -> Command {
    let mut cmd = tools::command(&tools.pg_restore);
    cmd.arg("--exit-on-error")
        .arg("--no-password")
        .arg(format!("--dbname={}", target.tool_conninfo()))
        .envs(target.tool_env())
        .arg(archive);
    cmd
}

/// Before a clean restore of a whole database: drops the tables and views
/// that the snapshot does not have. The database is to equal the snapshot,
/// and their foreign keys or view definitions that depend on the snapshot's
/// tables would make pg_restore's drops fail. Extension members stay.
fn drop_extra_relations(
    client: &mut Client,
    tools: &Tools,
    target: &Target,
    archive: &std::path::Path,
    progress: &dyn Progress,
) -> Result<()> {
    let mut cmd = tools::command(&tools.pg_restore);
    cmd.arg("--list").arg(archive).envs(target.tool_env());
    let listing = String::from_utf8_lossy(&tools::run(cmd, "pg_restore --list")?).into_owned();
    // "<id>; <tableoid> <oid> <DESC> <schema> <name> <owner>"
    let entries: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| l.split_once("; "))
        .filter_map(|(_, rest)| rest.splitn(3, ' ').nth(2))
        .collect();
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text,
                    CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                   WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                               AND d.objid = c.oid AND d.deptype = 'e')
             ORDER BY 1, 2",
            &[],
        )
        .map_err(pg_err("listing tables and views"))?;
    let extra: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| {
            let (schema, name, kind): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let entry = format!("{kind} {schema} {name} ");
            (!entries.iter().any(|e| e.starts_with(&entry)))
                .then(|| (kind, format!("{}.{}", ident(&schema), ident(&name))))
        })
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    let mut tx = client
        .transaction()
        .map_err(pg_err("dropping what the snapshot does not have"))?;
    for (kind, name) in &extra {
        tx.batch_execute(&format!("DROP {kind} IF EXISTS {name} CASCADE"))
            .map_err(pg_err(format!("dropping {} {name}", kind.to_lowercase())))?;
    }
    tx.commit()
        .map_err(pg_err("dropping what the snapshot does not have"))?;
    for (kind, name) in extra {
        progress.warn(format!(
            "dropped {} {name}: the snapshot does not have it",
            kind.to_lowercase()
        ));
    }
    Ok(())
}

/// pg_restore needs a seekable file for parallel work; the schema is small.
pub(super) fn write_archive(
    repo: &Repository,
    index: &Index,
    schema: &Stream,
) -> Result<tempfile::NamedTempFile> {
    let mut f = tempfile::Builder::new()
        .prefix("ripcord-schema-")
        .tempfile()
        .map_err(|e| Error::io("cannot create a temporary file", e))?;
    for id in &schema.chunks {
        f.write_all(&repo.read_blob(index, id)?)
            .map_err(|e| Error::io("cannot write the schema archive", e))?;
    }
    f.flush()
        .map_err(|e| Error::io("cannot write the schema archive", e))?;
    Ok(f)
}

/// Streams one part into `COPY … FROM STDIN`; returns the rows loaded.
pub(super) fn copy_in(
    repo: &Repository,
    index: &Index,
    client: &mut impl GenericClient,
    t: &PgTable,
    part: &Stream,
    progress: &dyn Progress,
) -> Result<u64> {
    copy_in_with(repo, index, client, t, part, false, progress)
}

/// [`copy_in`], with `FREEZE` where the table was created or emptied in
/// the same transaction.
pub(super) fn copy_in_with(
    repo: &Repository,
    index: &Index,
    client: &mut impl GenericClient,
    t: &PgTable,
    part: &Stream,
    freeze: bool,
    progress: &dyn Progress,
) -> Result<u64> {
    let what = t.qualified();
    let sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary{})",
        quoted(t),
        column_list(&t.columns),
        if freeze { ", FREEZE" } else { "" }
    );
    // A reader thread fetches, decrypts and decompresses the next chunks
    // while the server digests the current one.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(PREFETCH);
        scope.spawn(move || {
            for id in &part.chunks {
                let blob = repo.read_blob(index, id);
                let failed = blob.is_err();
                // A closed channel: the load stopped; so does the reader.
                if tx.send(blob).is_err() || failed {
                    break;
                }
            }
        });
        let mut w = client
            .copy_in(&sql)
            .map_err(pg_err(format!("loading {what}")))?;
        for blob in rx {
            let data = blob?;
            w.write_all(&data).map_err(|e| Error::PgUnreachable {
                target: format!("loading {what}"),
                detail: e.to_string(),
            })?;
            progress.bytes(data.len() as u64);
        }
        w.finish().map_err(pg_err(format!("loading {what}")))
    })
}

/// Chunks read ahead of a COPY: a few MiB.
const PREFETCH: usize = 4;

/// Memory for each index build of a whole-database restore: enough to
/// sort ten million keys in memory, which the server's default (64MB) is
/// not: it spills them to disk and merges.
const INDEX_MEMORY: &str = "512MB";

/// Whether the session's `maintenance_work_mem` is below [`INDEX_MEMORY`]
/// (a larger one, set by the administrator, is kept).
fn index_memory_is_low(client: &mut Client) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes($1)",
            &[&INDEX_MEMORY],
        )
        .map_err(pg_err("reading maintenance_work_mem"))?
        .get(0))
}

fn set_sequences(client: &mut Client, content: &PgContent) -> Result<()> {
    for s in &content.sequences {
        let name = format!("{}.{}", ident(&s.schema), ident(&s.name));
        client
            .execute(
                "SELECT setval($1::text::regclass, $2, $3)",
                &[&name, &s.last_value, &s.is_called],
            )
            .map_err(pg_err(format!("setting sequence {}.{}", s.schema, s.name)))?;
    }
    Ok(())
}

/// Restores selected tables into a database that may hold other tables
/// referencing them. Existing tables with the same columns have their rows
/// replaced in one transaction (foreign-key triggers paused, so referencing
/// tables are untouched); missing tables, or tables whose columns changed,
/// are (re)created from the snapshot's schema with their indexes and
/// constraints, and foreign keys from other tables are put back.
#[allow(clippy::too_many_arguments)]
fn restore_tables(
    repo: &Repository,
    index: &Index,
    client: &mut Client,
    tools: &Tools,
    target: &Target,
    archive: &std::path::Path,
    tables: &[&PgTable],
    content: &PgContent,
    progress: &dyn Progress,
) -> Result<()> {
    let live = catalog::tables(client, None, &target.redacted())?;
    let mut replace = Vec::new();
    let mut recreate = Vec::new();
    for t in tables {
        match live
            .iter()
            .find(|l| l.schema == t.schema && l.name == t.name)
        {
            Some(l) if l.columns == t.columns => replace.push(*t),
            Some(_) => recreate.push((*t, true)),
            None => recreate.push((*t, false)),
        }
    }
    // Dropping a parent drops its partitions: a tree is recreated whole.
    loop {
        let names: Vec<String> = recreate.iter().map(|(t, _)| t.qualified()).collect();
        let Some(at) = replace
            .iter()
            .position(|t| t.parents.iter().any(|p| names.contains(p)))
        else {
            break;
        };
        recreate.push((replace.remove(at), true));
    }
    // Foreign keys from other tables to tables about to be dropped.
    let mut foreign_keys: Vec<(String, String, String)> = Vec::new();
    for (t, exists) in &recreate {
        if !exists {
            continue;
        }
        let rows = client
            .query(
                "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid) FROM pg_constraint
                 WHERE contype = 'f' AND confrelid = $1::text::regclass AND conrelid <> confrelid",
                &[&quoted(t)],
            )
            .map_err(pg_err("reading foreign keys"))?;
        for r in rows {
            foreign_keys.push((r.get(0), r.get(1), r.get(2)));
        }
    }
    let mut tx = client
        .transaction()
        .map_err(pg_err("starting the restore"))?;
    tx.batch_execute("SET LOCAL session_replication_role = replica")
        .map_err(pg_err(
            "pausing triggers (needs a superuser or the table owner with replication rights)",
        ))?;
    for (t, exists) in &recreate {
        if *exists {
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {} CASCADE", quoted(t)))
                .map_err(pg_err(format!("dropping {}", t.qualified())))?;
        }
    }
    tx.commit().map_err(pg_err("dropping changed tables"))?;

    if !recreate.is_empty() {
        let names: Vec<&PgTable> = recreate.iter().map(|(t, _)| *t).collect();
        let list = toc_for(tools, target, archive, &names, content)?;
        let mut pre = pg_restore(tools, target, archive);
        pre.arg("--section=pre-data")
            .arg(format!("--use-list={}", list.path().display()));
        tools::run(pre, "pg_restore --section=pre-data (selected tables)")?;
    }

    let mut tx = client
        .transaction()
        .map_err(pg_err("starting the restore"))?;
    tx.batch_execute("SET LOCAL session_replication_role = replica")
        .map_err(pg_err("pausing triggers"))?;
    // ONLY: an inheritance parent's own rows; its children are tables of
    // their own, and a partitioned table has no rows.
    for t in replace.iter().filter(|t| !t.partitioned) {
        tx.batch_execute(&format!("DELETE FROM ONLY {}", quoted(t)))
            .map_err(pg_err(format!("clearing {}", t.qualified())))?;
    }
    for t in replace.iter().chain(recreate.iter().map(|(t, _)| t)) {
        for part in &t.parts {
            copy_in(repo, index, &mut tx, t, part, progress)?;
        }
    }
    let broken = recheck_foreign_keys(&mut tx, &replace)?;
    let owned: Vec<_> = content
        .sequences
        .iter()
        .filter(|s| {
            tables
                .iter()
                .any(|t| s.owner.as_deref() == Some(t.qualified().as_str()))
        })
        .collect();
    for s in owned {
        let name = format!("{}.{}", ident(&s.schema), ident(&s.name));
        let exists: bool = tx
            .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&name])
            .map_err(pg_err("checking sequences"))?
            .get(0);
        if exists {
            tx.execute(
                "SELECT setval($1::text::regclass, $2, $3)",
                &[&name, &s.last_value, &s.is_called],
            )
            .map_err(pg_err(format!("setting sequence {}.{}", s.schema, s.name)))?;
        }
    }
    tx.commit()
        .map_err(pg_err("committing the restored rows"))?;
    for (table, name, why) in broken {
        progress.warn(format!(
            "foreign key {name} on {table} no longer holds after the restore and is now NOT VALID: {why}"
        ));
    }

    if !recreate.is_empty() {
        let names: Vec<&PgTable> = recreate.iter().map(|(t, _)| *t).collect();
        let list = toc_for(tools, target, archive, &names, content)?;
        let mut post = pg_restore(tools, target, archive);
        post.arg("--section=post-data")
            .arg(format!("--use-list={}", list.path().display()));
        tools::run(post, "pg_restore --section=post-data (selected tables)")?;
        for (table, name, def) in foreign_keys {
            let sql = format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} {def} NOT VALID",
                ident(&name)
            );
            client
                .batch_execute(&sql)
                .map_err(pg_err(format!("restoring foreign key {name} on {table}")))?;
            // Rows written since the snapshot may no longer match; then the key stays NOT VALID.
            let validate = format!("ALTER TABLE {table} VALIDATE CONSTRAINT {}", ident(&name));
            if let Err(e) = client.batch_execute(&validate) {
                progress.warn(format!(
                    "foreign key {name} on {table} was restored NOT VALID: {}",
                    e.as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| e.to_string())
                ));
            }
        }
    }
    Ok(())
}

/// Triggers were paused while rows were replaced: rows of other tables may
/// now reference rows the snapshot does not have, or restored rows reference
/// rows deleted since. Every foreign key into or out of the replaced tables
/// is checked again; one that no longer holds is put back NOT VALID.
/// Returns those, with the reason, for a warning after the commit.
fn recheck_foreign_keys(
    tx: &mut postgres::Transaction<'_>,
    replaced: &[&PgTable],
) -> Result<Vec<(String, String, String)>> {
    let mut broken = Vec::new();
    if replaced.is_empty() {
        return Ok(broken);
    }
    let names: Vec<String> = replaced.iter().map(|t| quoted(t)).collect();
    let keys = tx
        .query(
            "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid)
             FROM pg_constraint WHERE contype = 'f' AND convalidated
               AND (conrelid IN (SELECT unnest($1::text[])::regclass)
                    OR confrelid IN (SELECT unnest($1::text[])::regclass))
             ORDER BY 1, 2",
            &[&names],
        )
        .map_err(pg_err("reading foreign keys"))?;
    for key in keys {
        let (table, name, def): (String, String, String) = (key.get(0), key.get(1), key.get(2));
        let readd = format!(
            "ALTER TABLE {table} DROP CONSTRAINT {c}; ALTER TABLE {table} ADD CONSTRAINT {c} {def}",
            c = ident(&name)
        );
        let context = format!("checking foreign key {name} on {table}");
        let mut savepoint = tx.transaction().map_err(pg_err(&context))?;
        match savepoint.batch_execute(&readd) {
            Ok(()) => savepoint.commit().map_err(pg_err(&context))?,
            Err(e) => {
                let why = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                savepoint.rollback().map_err(pg_err(&context))?;
                tx.batch_execute(&format!("{readd} NOT VALID"))
                    .map_err(pg_err(&context))?;
                broken.push((table, name, why));
            }
        }
    }
    Ok(broken)
}

/// Whether a `pg_restore --list` entry (its words after the ids) is one of
/// the triggers that log writes while a change is prepared: a migration's
/// safety snapshot is taken with them on its tables, and they never come
/// back with it.
/// The trigger's name is the word before the owner's (schema and table
/// names may hold spaces, the list writes them unquoted; ours have none).
pub(super) fn is_capture_trigger<S: AsRef<str>>(words: &[S]) -> bool {
    matches!(words, [d, .., n, _] if d.as_ref() == "TRIGGER"
        && (n.as_ref().starts_with(CAPTURE_TRIGGER_PREFIX) || n.as_ref() == WRITTEN_TRIGGER))
}

/// The name every capture trigger starts with.
const CAPTURE_TRIGGER_PREFIX: &str = "ripcord_capture";

/// The statement trigger that marks a table written since a change (kept
/// while the change is applied): it belongs to that change, not to the
/// table.
const WRITTEN_TRIGGER: &str = "ripcord_written";

/// The archive's list (`pg_restore --list`).
fn toc_listing(tools: &Tools, target: &Target, archive: &std::path::Path) -> Result<String> {
    let mut cmd = tools::command(&tools.pg_restore);
    cmd.arg("--list").arg(archive).envs(target.tool_env());
    Ok(String::from_utf8_lossy(&tools::run(cmd, "pg_restore --list")?).into_owned())
}

/// Tables of at least this many bytes have their indexes built as soon as
/// they are loaded: one pg_restore each is worth it only where the build
/// takes a while.
const EARLY_INDEX_BYTES: u64 = 8 << 20;

/// Splits the archive's list (the capture triggers left out) into, per
/// table, the entries that build its own indexes and key, unique and
/// exclusion constraints (for large plain tables that have any), and the
/// rest.
fn early_index_lists(listing: &str, tables: &[&PgTable]) -> (Vec<Option<String>>, String) {
    let parents: HashSet<&str> = tables
        .iter()
        .flat_map(|t| t.parents.iter().map(String::as_str))
        .collect();
    // A partition's or child's index may belong to its parent's: trees
    // are left to the end.
    let mut by_table: HashMap<(&str, &str), usize> = HashMap::new();
    let mut by_index: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, t) in tables.iter().enumerate() {
        if t.partitioned
            || !t.parents.is_empty()
            || t.size < EARLY_INDEX_BYTES
            || parents.contains(t.qualified().as_str())
        {
            continue;
        }
        by_table.insert((&t.schema, &t.name), i);
        for name in &t.indexes {
            by_index.insert((&t.schema, name), i);
        }
    }
    let mut early: Vec<Option<String>> = vec![None; tables.len()];
    let mut rest = String::new();
    for line in listing.lines() {
        // "<id>; <tableoid> <oid> <DESC WORDS…> <schema> <tag…> <owner>"
        let words: Vec<&str> = line
            .split_once("; ")
            .map(|(_, rest)| rest.split_whitespace().skip(2).collect())
            .unwrap_or_default();
        if is_capture_trigger(&words) {
            continue;
        }
        let owner = match words.as_slice() {
            ["INDEX", schema, name, _] => by_index.get(&(*schema, *name)),
            ["CONSTRAINT", schema, table, _, _] => by_table.get(&(*schema, *table)),
            _ => None,
        };
        let out = match owner {
            Some(&i) => early[i].get_or_insert_with(String::new),
            None => &mut rest,
        };
        out.push_str(line);
        out.push('\n');
    }
    (early, rest)
}

/// A pg_restore list (`--use-list`) in a temporary file.
fn list_file(lines: &str) -> Result<tempfile::NamedTempFile> {
    let mut f = tempfile::Builder::new()
        .prefix("ripcord-toc-")
        .tempfile()
        .map_err(|e| Error::io("cannot create a temporary file", e))?;
    f.write_all(lines.as_bytes())
        .map_err(|e| Error::io("cannot write the restore list", e))?;
    Ok(f)
}

/// A pg_restore list selecting the given tables, their sequences, indexes,
/// constraints and triggers.
fn toc_for(
    tools: &Tools,
    target: &Target,
    archive: &std::path::Path,
    tables: &[&PgTable],
    content: &PgContent,
) -> Result<tempfile::NamedTempFile> {
    let mut cmd = tools::command(&tools.pg_restore);
    cmd.arg("--list").arg(archive).envs(target.tool_env());
    let listing = String::from_utf8_lossy(&tools::run(cmd, "pg_restore --list")?).into_owned();
    // Indexes of constraints, which partitions attach to their parent's.
    let constraint_indexes: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_once("; "))
        .filter_map(|(_, rest)| {
            let w: Vec<&str> = rest.split_whitespace().skip(2).collect();
            match w.as_slice() {
                ["CONSTRAINT", s, t, c, ..] => tables
                    .iter()
                    .any(|x| x.schema == *s && x.name == *t)
                    .then_some(*c),
                _ => None,
            }
        })
        .collect();
    let mut keep = String::new();
    for line in listing.lines() {
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        // "<id>; <tableoid> <oid> <DESC WORDS…> <schema> <tag…> <owner>"
        let Some((_, rest)) = line.split_once("; ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().skip(2).collect();
        let wanted = !is_capture_trigger(&words)
            && tables.iter().any(|t| {
                let pos = words.iter().position(|w| *w == t.schema);
                let Some(pos) = pos else { return false };
                let desc = words[..pos].join(" ");
                let tag = &words[pos + 1..words.len().saturating_sub(1)];
                match desc.as_str() {
                    "TABLE" | "TABLE ATTACH" => tag.first() == Some(&t.name.as_str()),
                    "INDEX ATTACH" => tag.first().is_some_and(|i| {
                        t.indexes.iter().any(|x| x == i) || constraint_indexes.contains(i)
                    }),
                    "INDEX" => tag
                        .first()
                        .is_some_and(|i| t.indexes.iter().any(|x| x == i)),
                    "CONSTRAINT" | "FK CONSTRAINT" | "TRIGGER" | "RULE" | "POLICY" | "COMMENT" => {
                        tag.first() == Some(&t.name.as_str())
                    }
                    "SEQUENCE" | "SEQUENCE OWNED BY" | "DEFAULT" => {
                        tag.first().is_some_and(|s| {
                            content.sequences.iter().any(|q| {
                                q.schema == t.schema && q.name == *s && s.starts_with(&t.name)
                            })
                        }) || (desc == "DEFAULT" && tag.first() == Some(&t.name.as_str()))
                    }
                    _ => false,
                }
            });
        if wanted {
            keep.push_str(line);
            keep.push('\n');
        }
    }
    list_file(&keep)
}

/// Reads every restored table back, in parallel block ranges, and compares
/// it with the manifest.
pub fn check_tables(target: &Target, tables: &[&PgTable], jobs: usize) -> Result<Vec<TableCheck>> {
    let mut client = target.connect()?;
    let mut infos = Vec::with_capacity(tables.len());
    for t in tables {
        let size: i64 = client
            .query_one(
                "SELECT pg_relation_size($1::text::regclass)::int8",
                &[&quoted(t)],
            )
            .map_err(pg_err(format!("sizing {}", t.qualified())))?
            .get(0);
        infos.push(TableInfo {
            schema: t.schema.clone(),
            name: t.name.clone(),
            oid: 0,
            kind: if t.partitioned { 'p' } else { 'r' },
            parents: t.parents.clone(),
            relation_size: size as u64,
            columns: t.columns.clone(),
            indexes: vec![],
        });
    }
    drop(client);
    let sums: Mutex<Vec<RowStats>> = Mutex::new(vec![RowStats::default(); tables.len()]);
    copy_out(
        target,
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        &infos,
        plan(&infos, SPLIT_BYTES),
        jobs,
        &|_| Scanner::new(),
        &|scanner, block| {
            scanner.feed(block);
            Ok(())
        },
        &|job, scanner| {
            let stats = scanner.finish().map_err(|detail| Error::Pg {
                context: format!("reading {}", tables[job.table].qualified()),
                detail,
            })?;
            sums.lock().expect("sums")[job.table].add(stats);
            Ok(())
        },
    )?;
    Ok(checks(tables, sums.into_inner().expect("sums")))
}

/// What was read back from each table, against what its snapshot says.
pub(super) fn checks(tables: &[&PgTable], sums: Vec<RowStats>) -> Vec<TableCheck> {
    tables
        .iter()
        .zip(sums)
        .map(|(t, stats)| TableCheck {
            table: t.qualified(),
            rows: stats.rows,
            expected_rows: t.rows,
            checksum_matches: stats.checksum() == t.checksum,
        })
        .collect()
}
