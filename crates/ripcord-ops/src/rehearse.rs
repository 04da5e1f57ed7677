//! `ripcord migrate rehearse`: the pending changes on a scratch copy of the
//! database: up (with verify), down, a comparison with the state before,
//! then up again. A change whose revert does not give back what was there
//! is reported before it reaches production.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ripcord_core::config::{OnConflict, TargetConfig};
use ripcord_core::interrupt::{self, Cleanup};
use ripcord_migrate::analyze::{self, Dialect, Options};
use ripcord_migrate::engine::{self, Database, DownOptions, How, UpOptions};
use ripcord_migrate::tracking::{self, ChangeState};
use ripcord_repo::backend::LocalBackend;
use ripcord_repo::Repository;
use ripcord_targets::postgres::conn::ident;
use ripcord_targets::postgres::{self, tools, tools::Tools};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::migrate::{database_target, open, setup_with};
use crate::net::{Repo, RepoNet};
use crate::report::Silent;
use crate::snapshot::{take_with, TakeOptions};
use crate::{Context as _, Error, Result};

/// `migrate rehearse`.
#[derive(Clone, Debug, Default)]
pub struct RehearseOptions {
    /// The plan's format, when not detected.
    pub format: Option<String>,
    /// Rehearse up to this change, version or `@phase`; `None`: all pending.
    pub to: Option<String>,
    /// Keep the scratch copy.
    pub keep: bool,
    /// psql variables and Flyway placeholders (`--set name=value`).
    pub set: Vec<(String, String)>,
}

/// Schema and contents of a database, to compare two points in time.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    /// The schema object by object, the ripcord tracking left out: each
    /// compared with the same object at the other point in time, so that
    /// two tables with the same column never hide each other's changes.
    objects: BTreeMap<String, SchemaObject>,
    /// Table: (rows, checksum).
    tables: BTreeMap<String, (u64, String)>,
    /// What the schema comparison does not see of the objects depending on
    /// the tables (grants, owners of views, whether a materialized view
    /// holds its rows): label to (relation, value).
    dependents: BTreeMap<String, (String, String)>,
}

/// One object of a schema: a table, index, constraint, view, function…
#[derive(Debug, PartialEq)]
struct SchemaObject {
    /// The table it belongs to, when it belongs to one.
    table: Option<String>,
    /// Its definition, one item per line, whitespace normalised.
    lines: Vec<String>,
}

impl Fingerprint {
    /// Adds an object; a second one under the same label gets a number.
    fn add(&mut self, label: String, object: SchemaObject) {
        let mut key = label.clone();
        let mut n = 1;
        while self.objects.contains_key(&key) {
            n += 1;
            key = format!("{label} (#{n})");
        }
        self.objects.insert(key, object);
    }
}

/// A change that does not give back what was there, and how.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Irreversible {
    pub change: String,
    pub reasons: Vec<String>,
}

/// One change of a rehearsal, and how the rehearsal reverted it.
#[derive(Serialize, schemars::JsonSchema)]
pub struct RehearsedChange {
    pub change: String,
    /// None when the rehearsal did not revert it.
    pub reverted: Option<How>,
    /// Whether a verify script checked it after up; false when it has none.
    pub verified: bool,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct RehearseReport {
    pub target: String,
    /// The scratch copy: where it was, or where it is kept.
    pub scratch: String,
    /// The changes rehearsed, in the order they were applied.
    pub changes: Vec<RehearsedChange>,
    pub change_count: usize,
    pub reapplied: bool,
    /// Empty when the rehearsal passed.
    pub irreversible: Vec<Irreversible>,
}

impl RehearseReport {
    /// How many of the changes a verify script checked, in words.
    pub fn verified_note(&self) -> String {
        let verified = self.changes.iter().filter(|c| c.verified).count();
        verified_note(self.changes.len(), verified)
    }
}

/// "2 verified by their verify scripts", "none has a verify script": a
/// change without one is applied, not verified.
fn verified_note(changes: usize, verified: usize) -> String {
    match (changes, verified) {
        (0, _) => "nothing to verify".into(),
        (_, 0) if changes == 1 => "it has no verify script".into(),
        (_, 0) => "none has a verify script".into(),
        (1, 1) => "verified by its verify script".into(),
        _ if verified == changes => "all verified by their verify scripts".into(),
        _ if verified == 1 => "1 of them verified by its verify script".into(),
        _ => format!("{verified} of them verified by their verify scripts"),
    }
}

/// The scratch copy and how to get rid of it. Its guard removes it when the
/// process is interrupted (Ctrl-C, SIGTERM) or the rehearsal ends early.
enum Scratch {
    Sqlite {
        path: PathBuf,
        dir: tempfile::TempDir,
        guard: Cleanup,
    },
    Postgres {
        url: String,
        admin: String,
        db: String,
        guard: Cleanup,
    },
}

impl Scratch {
    fn config(&self) -> TargetConfig {
        match self {
            Scratch::Sqlite { path, .. } => TargetConfig::Sqlite {
                path: path.clone(),
                create: false,
            },
            Scratch::Postgres { url, .. } => TargetConfig::Postgres {
                url: url.clone(),
                split_mb: None,
            },
        }
    }

    fn shown(&self) -> String {
        match self {
            Scratch::Sqlite { path, .. } => path.display().to_string(),
            Scratch::Postgres { db, .. } => format!("database {db}"),
        }
    }

    fn remove(self, keep: bool) -> Result<Option<String>> {
        match self {
            Scratch::Sqlite { path, dir, guard } if keep => {
                guard.dismiss();
                let kept = dir.keep();
                Ok(Some(
                    kept.join(path.file_name().unwrap_or_default())
                        .display()
                        .to_string(),
                ))
            }
            Scratch::Sqlite { dir, guard, .. } => {
                guard.dismiss();
                dir.close()
                    .context("removing the scratch copy")
                    .map(|()| None)
            }
            Scratch::Postgres { db, guard, .. } if keep => {
                guard.dismiss();
                Ok(Some(db))
            }
            Scratch::Postgres {
                admin, db, guard, ..
            } => interrupt::critical(|| {
                guard.dismiss();
                drop_database(&admin, &db)
            })
            .map(|()| None),
        }
    }
}

/// Drops a scratch database, its sessions disconnected.
fn drop_database(admin: &str, db: &str) -> Result<()> {
    (|| -> Result<()> {
        postgres::Target::parse(admin)?
            .connect()?
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(db)
            ))?;
        Ok(())
    })()
    .with_context(|| {
        format!(
            "cannot drop the scratch database {db}; drop it by hand: DROP DATABASE {} WITH (FORCE)",
            ident(db)
        )
    })
}

/// Registers `drop_database` to run if the rehearsal is interrupted or ends
/// early; a failure then can only be printed.
fn drop_database_on_exit(admin: &str, db: &str) -> Cleanup {
    let (admin, db) = (admin.to_string(), db.to_string());
    interrupt::on_interrupt(move || {
        if let Err(e) = drop_database(&admin, &db) {
            eprintln!("warning: {}", postgres::redact(&e.chain()));
        }
    })
}

/// Registers the removal of a temporary folder on interruption (a TempDir
/// is only removed when its destructor runs, which a signal skips).
fn remove_on_exit(dir: &Path) -> Cleanup {
    let dir = dir.to_path_buf();
    interrupt::on_interrupt(move || {
        let _ = std::fs::remove_dir_all(&dir);
    })
}

/// The rehearsal failed, and so did removing its scratch copy: both are
/// reported, the rehearsal's error first, and its exit code and hint kept
/// (it stays the source).
fn cleanup_also_failed(real: Error, cleanup: Error) -> Error {
    Error::Context {
        context: format!("{real}; cleaning up failed too: {}", cleanup.chain()),
        source: Box::new(real),
    }
}

/// Rehearses the pending changes; `None` when nothing is pending.
pub fn run(ctx: &Ctx, args: &RehearseOptions) -> Result<Option<RehearseReport>> {
    let s = setup_with(ctx, args.format.as_deref(), &args.set)?;
    let (name, target) = database_target(&s)?;
    let mut live = open(&name, &target, false)?;
    let applied = if live.has_schema()? {
        live.applied()?
    } else {
        Vec::new()
    };
    let status = tracking::status(&s.plan, &applied);
    let pending: Vec<String> = status
        .changes
        .iter()
        .filter(|c| c.state == ChangeState::Pending)
        .map(|c| c.name.clone())
        .collect();
    let last_applied = status
        .changes
        .iter()
        .rev()
        .find(|c| {
            matches!(c.state, ChangeState::Applied | ChangeState::Drifted)
                && s.plan.change(&c.name).is_some_and(|c| !c.repeatable)
        })
        .map(|c| c.name.clone());
    drop(live);
    if pending.is_empty() {
        ctx.say(format!("target {name} is up to date: nothing to rehearse"));
        return Ok(None);
    }

    // Safety snapshots of the scratch copy go to a repository of their own,
    // removed afterwards: the real one only ever holds real data.
    let repo_dir = tempfile::Builder::new()
        .prefix("ripcord-rehearse-")
        .tempdir()
        .context("creating a scratch repository")?;
    let repo_guard = remove_on_exit(repo_dir.path());
    let scratch_repo = Repository::init(
        Arc::new(LocalBackend::new(repo_dir.path())),
        Some("rehearse"),
    )?;

    let scratch = clone(ctx, &name, &target)?;
    ctx.say(format!("rehearsing on a scratch copy: {}", scratch.shown()));
    let mut config = ctx.config.clone();
    config.targets.insert(name.clone(), scratch.config());
    config.repository.url = Some(repo_dir.path().display().to_string());
    let mut migrations = config.migrations.clone().unwrap_or_default();
    migrations.on_conflict = OnConflict::Snapshot;
    migrations.tables.clear();
    config.migrations = Some(migrations);
    let scratch_ctx = Ctx::new(config, ctx.config_path.clone(), Arc::new(Silent));
    // The scripts again, for the copy: psql's `:DBNAME` names the copy there,
    // so an `ALTER DATABASE :"DBNAME"` never reaches the real database.
    let result = setup_with(&scratch_ctx, args.format.as_deref(), &args.set).and_then(|copy| {
        rehearse(
            ctx,
            &scratch_ctx,
            &scratch_repo,
            &copy.plan,
            &name,
            &scratch,
            args,
            last_applied,
        )
    });
    let cleanup = scratch.remove(args.keep);
    repo_guard.run();
    // A cleanup error never hides the rehearsal's own.
    let (mut report, kept) = match (result, cleanup) {
        (Ok(report), Ok(kept)) => (report, kept),
        (Err(real), Ok(_)) => return Err(real),
        (Ok(_), Err(cleanup)) => return Err(cleanup),
        (Err(real), Err(cleanup)) => return Err(cleanup_also_failed(real, cleanup)),
    };
    if let Some(kept) = kept {
        ctx.say(format!("scratch copy kept: {kept}"));
        report.scratch = kept;
    }
    Ok(Some(report))
}

#[allow(clippy::too_many_arguments)]
fn rehearse(
    ctx: &Ctx,
    scratch_ctx: &Ctx,
    repo: &Repository,
    plan: &ripcord_migrate::Plan,
    name: &str,
    scratch: &Scratch,
    args: &RehearseOptions,
    last_applied: Option<String>,
) -> Result<RehearseReport> {
    let target = scratch.config();
    let mut db = open(name, &target, false)?;
    let before = fingerprint(&mut *db, &target)?;
    let mut net = RepoNet {
        ctx: scratch_ctx,
        repo: Repo::Open(repo),
        target: name.to_string(),
        policy: Some(OnConflict::Snapshot),

        allow_unprotected: false,
        unprotected: Vec::new(),
        taken: None,
    };
    let actor = format!("{} (rehearsal)", ctx.actor());
    let up_opts = UpOptions {
        to: args.to.clone(),
        dry_run: false,
        allow_drift: false,
        actor: actor.clone(),
        snapshot_always: false,
        lock_timeout: None,
        change_timeout: None,
    };
    let up = engine::up(&mut *db, &mut net, plan, &up_opts, &mut |_| {})
        .context("rehearsal: up failed on the scratch copy")?;
    let changes: Vec<String> = up.changes.iter().map(|c| c.name.clone()).collect();
    let verified: Vec<bool> = up.changes.iter().map(|c| c.verify).collect();
    ctx.say(format!(
        "up: {} applied; {}",
        crate::report::counted(changes.len() as u64, "change"),
        verified_note(changes.len(), verified.iter().filter(|v| **v).count())
    ));
    let down_opts = DownOptions {
        to: last_applied.unwrap_or_else(|| "@root".into()),
        dry_run: false,
        allow_drift: false,
        actor: actor.clone(),
        lock_timeout: None,
    };
    let down = engine::down(&mut *db, &mut net, plan, &down_opts, &mut |_| {})
        .context("rehearsal: down failed on the scratch copy")?;
    ctx.say(format!(
        "down: {} reverted",
        crate::report::counted(down.changes.len() as u64, "change")
    ));
    let after = fingerprint(&mut *db, &target)?;
    let mut irreversible = compare(plan, &changes, &before, &after, db.dialect());
    // What down left behind can also stop the changes from applying again.
    let reapplied = match engine::up(&mut *db, &mut net, plan, &up_opts, &mut |_| {}) {
        Ok(_) => {
            ctx.say("up again: applied");
            true
        }
        Err(ripcord_migrate::Error::ChangeFailed {
            change,
            step,
            detail,
            ..
        }) => {
            let reason = format!("applying it again after down fails ({step}): {detail}");
            match irreversible.iter_mut().find(|c| c.change == change) {
                Some(c) => c.reasons.push(reason),
                None => irreversible.push(Irreversible {
                    change,
                    reasons: vec![reason],
                }),
            }
            false
        }
        Err(e) => return Err(e).context("rehearsal: up after down failed on the scratch copy"),
    };
    Ok(RehearseReport {
        target: name.to_string(),
        scratch: scratch.shown(),
        change_count: changes.len(),
        changes: changes
            .iter()
            .zip(&verified)
            .map(|(name, verified)| RehearsedChange {
                change: name.clone(),
                reverted: down.changes.iter().find(|c| &c.name == name).map(|c| c.how),
                verified: *verified,
            })
            .collect(),
        reapplied,
        irreversible,
    })
}

/// Which changes leave a difference behind, and what it is. A difference is
/// laid at the changes whose SQL touches or creates the table it is in.
fn compare(
    plan: &ripcord_migrate::Plan,
    changes: &[String],
    before: &Fingerprint,
    after: &Fingerprint,
    dialect: Dialect,
) -> Vec<Irreversible> {
    let mut problems: Vec<(Option<String>, String)> = Vec::new();
    // A table that is gone or left behind is a schema object that is; here
    // only the rows of tables on both sides are compared.
    for (table, (r0, c0)) in &before.tables {
        if let Some((r1, c1)) = after.tables.get(table) {
            if r0 != r1 || c0 != c1 {
                problems.push((
                    Some(table.clone()),
                    format!(
                        "table {table} holds different rows after down ({r0} before, {r1} after)"
                    ),
                ));
            }
        }
    }
    for (label, (relation, value)) in &before.dependents {
        let table = Some(relation.replace('"', ""));
        match after.dependents.get(label) {
            None => problems.push((table, format!("{label} did not come back after down"))),
            Some((_, v)) if v != value => problems.push((
                table,
                format!("{label} differs after down: {value} before, {v} after"),
            )),
            _ => {}
        }
    }
    let labels: BTreeSet<&String> = before.objects.keys().chain(after.objects.keys()).collect();
    for label in labels {
        match (before.objects.get(label), after.objects.get(label)) {
            (Some(o), None) => {
                problems.push((o.table.clone(), format!("{label} is gone after down")))
            }
            (None, Some(o)) => problems.push((
                o.table.clone(),
                format!("{label} is left behind after down"),
            )),
            (Some(o0), Some(o1)) if o0.lines != o1.lines => problems.push((
                o1.table.clone().or_else(|| o0.table.clone()),
                format!(
                    "{label} differs after down: {}",
                    line_diff(&o0.lines, &o1.lines)
                ),
            )),
            _ => {}
        }
    }

    let options = Options {
        dialect,
        server_version: None,
    };
    let touched: Vec<(String, BTreeSet<String>)> = changes
        .iter()
        .filter_map(|c| plan.change(c))
        .map(|c| {
            let a = analyze::analyze(&c.up.sql, &options);
            let set = a
                .tables
                .iter()
                .chain(a.created.iter())
                .map(|t| t.name.clone())
                .collect();
            (c.name.clone(), set)
        })
        .collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, reason) in problems {
        let bare = table
            .as_deref()
            .map(|t| t.rsplit('.').next().unwrap_or(t).to_string());
        let mut owners: Vec<&String> = touched
            .iter()
            .filter(|(_, set)| bare.as_ref().is_some_and(|b| set.contains(b)))
            .map(|(c, _)| c)
            .collect();
        if owners.is_empty() {
            // Views and other objects the analysis does not follow: the
            // changes whose SQL names them.
            owners = changes
                .iter()
                .filter(|c| {
                    let sql = plan.change(c).map(|c| c.up.sql.to_lowercase());
                    bare.as_deref()
                        .zip(sql)
                        .is_some_and(|(b, sql)| names_word(&sql, &b.to_lowercase()))
                })
                .collect();
        }
        if owners.is_empty() {
            out.entry("(the plan as a whole)".into())
                .or_default()
                .push(reason);
        } else {
            for c in owners {
                out.entry(c.clone()).or_default().push(reason.clone());
            }
        }
    }
    out.into_iter()
        .map(|(change, reasons)| Irreversible { change, reasons })
        .collect()
}

/// What changed inside one object's definition: the lines only one side
/// has, counted (a line twice in one definition counts twice).
fn line_diff(before: &[String], after: &[String]) -> String {
    let count = |lines: &[String]| {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for l in lines {
            // "a int," and "a int" are the same column, last or not.
            *m.entry(l.trim_end_matches(',').to_string()).or_default() += 1;
        }
        m
    };
    let (b, a) = (count(before), count(after));
    let mut left = Vec::new();
    let mut gone = Vec::new();
    for (line, n) in &a {
        for _ in 0..(n - b.get(line).copied().unwrap_or(0)).max(0) {
            left.push(line.as_str());
        }
    }
    for (line, n) in &b {
        for _ in 0..(n - a.get(line).copied().unwrap_or(0)).max(0) {
            gone.push(line.as_str());
        }
    }
    let mut parts = Vec::new();
    if !left.is_empty() {
        parts.push(format!("left behind: {}", left.join(" | ")));
    }
    if !gone.is_empty() {
        parts.push(format!("gone: {}", gone.join(" | ")));
    }
    if parts.is_empty() {
        // Same lines in another order (columns reordered).
        parts.push("the same items in another order".into());
    }
    parts.join("; ")
}

/// Whether `word` appears in `text` as a whole identifier.
fn names_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The table or view a schema line is about, when it names one: `CREATE
/// TABLE x`, `ALTER TABLE ONLY public.x`, `CREATE VIEW public.v`, `CREATE
/// INDEX … ON public.x`.
fn table_in(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| {
        words
            .iter()
            .position(|x| x.eq_ignore_ascii_case(w))
            .and_then(|i| words.get(i + 1))
    };
    let name = match after("TABLE") {
        Some(&"ONLY") => after("ONLY"),
        Some(n) => Some(n),
        None => after("VIEW").or_else(|| after("ON")),
    }?;
    Some(
        name.trim_matches(|c: char| c == '(' || c == '"' || c == ';')
            .to_string(),
    )
}

fn fingerprint(db: &mut dyn Database, target: &TargetConfig) -> Result<Fingerprint> {
    match target {
        TargetConfig::Sqlite { path, .. } => sqlite_fingerprint(path),
        TargetConfig::Postgres { url, .. } => pg_fingerprint(db, url),
        TargetConfig::Dir { .. } => unreachable!("database targets only"),
    }
}

fn sqlite_fingerprint(path: &Path) -> Result<Fingerprint> {
    let conn = ripcord_targets::sqlite::open_to_read(path)?;
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master
         WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE 'ripcord_%' AND tbl_name NOT LIKE 'ripcord_%'
         ORDER BY type, name",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut fp = Fingerprint {
        objects: BTreeMap::new(),
        tables: BTreeMap::new(),
        dependents: BTreeMap::new(),
    };
    for (kind, name, table, sql) in rows {
        fp.add(
            format!("{kind} {name}"),
            SchemaObject {
                table: Some(table),
                lines: sqlite_items(&sql),
            },
        );
    }
    fp.tables = ripcord_targets::sqlite::table_stats(&conn, path)?
        .into_iter()
        .filter(|t| !t.name.starts_with("ripcord_"))
        .map(|t| (t.name, (t.rows, t.checksum)))
        .collect();
    Ok(fp)
}

/// A SQLite definition split into its items: the part before the column
/// list, each column or constraint, the part after, whitespace normalised.
/// SQLite keeps the text as written, and `ALTER TABLE ADD COLUMN` appends
/// to it, so commas at depth one separate the items.
fn sqlite_items(sql: &str) -> Vec<String> {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut current = String::new();
    for c in sql.chars() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
                continue;
            }
            None if matches!(c, '\'' | '"' | '`' | '[') => {
                quote = Some(if c == '[' { ']' } else { c });
                current.push(c);
                continue;
            }
            None => {}
        }
        match c {
            '(' => {
                depth += 1;
                current.push(c);
                if depth == 1 {
                    items.push(norm(&current));
                    current.clear();
                }
            }
            ')' => {
                if depth == 1 {
                    items.push(norm(&current));
                    current.clear();
                }
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            ',' if depth == 1 => {
                items.push(norm(&current));
                current.clear();
            }
            c => current.push(c),
        }
    }
    items.push(norm(&current));
    items.retain(|i| !i.is_empty());
    items
}

/// The schema from `pg_dump --schema-only`, split at the header pg_dump
/// writes before each object ("-- Name: x; Type: TABLE; Schema: public;
/// Owner: -"), so each object is compared with itself.
fn pg_objects(dump: &str) -> Vec<(String, SchemaObject)> {
    let mut out: Vec<(String, SchemaObject)> = Vec::new();
    for line in dump.lines() {
        if let Some(header) = line.strip_prefix("-- Name: ") {
            let field = |key: &str| {
                header
                    .split("; ")
                    .find_map(|f| f.strip_prefix(key))
                    .map(str::to_string)
            };
            let name = header.split("; ").next().unwrap_or_default().to_string();
            let kind = field("Type: ").unwrap_or_default();
            let schema = field("Schema: ").filter(|s| s != "-");
            let label = match &schema {
                Some(schema) => format!("{} {schema}.{name}", kind.to_lowercase()),
                None => format!("{} {name}", kind.to_lowercase()),
            };
            let table = match kind.as_str() {
                "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "FOREIGN TABLE" => Some(match &schema {
                    Some(schema) => format!("{schema}.{name}"),
                    None => name.clone(),
                }),
                _ => None,
            };
            out.push((
                label,
                SchemaObject {
                    table,
                    lines: Vec::new(),
                },
            ));
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with("--") || line.starts_with('\\') {
            continue;
        }
        if let Some((_, object)) = out.last_mut() {
            object
                .lines
                .push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    // Objects that name no table of their own (indexes, constraints,
    // defaults, triggers) belong to the table their definition names.
    for (_, object) in &mut out {
        if object.table.is_none() {
            object.table = object.lines.first().and_then(|l| table_in(l));
        }
    }
    out
}

fn pg_fingerprint(db: &mut dyn Database, url: &str) -> Result<Fingerprint> {
    let major = db.server_version().unwrap_or(0);
    let tools = Tools::find(major)?;
    let pg_target = postgres::Target::parse(url)?;
    // The password goes in the environment, never on the command line.
    let mut cmd = tools::command(&tools.pg_dump);
    cmd.arg("--schema-only")
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg("--no-password")
        .arg("--exclude-schema=ripcord")
        .arg(format!("--dbname={}", pg_target.tool_conninfo()))
        .envs(pg_target.tool_env());
    let out = tools::run(cmd, "pg_dump --schema-only on the scratch copy")?;
    let mut fp = Fingerprint {
        objects: BTreeMap::new(),
        tables: BTreeMap::new(),
        dependents: BTreeMap::new(),
    };
    for (label, object) in pg_objects(&String::from_utf8_lossy(&out)) {
        fp.add(label, object);
    }
    let mut client = pg_target.connect()?;
    fp.dependents = pg_dependents(&mut client)?;
    let rows = client.query(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
           AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
         ORDER BY 1",
        &[],
    )?;
    for r in rows {
        let table: String = r.get(0);
        let row = client.query_one(
            &format!(
                "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text \
                 FROM {table} t"
            ),
            &[],
        )?;
        let (n, sum): (i64, String) = (row.get(0), row.get(1));
        fp.tables.insert(table.replace('"', ""), (n as u64, sum));
    }
    Ok(fp)
}

/// The objects depending on the tables, as far as `pg_dump --schema-only
/// --no-owner --no-privileges` leaves them out: grants, the owners of views
/// (a view reads with its owner's rights) and whether a materialized view
/// holds rows. The rest of them is compared with the schema.
fn pg_dependents(client: &mut ::postgres::Client) -> Result<BTreeMap<String, (String, String)>> {
    use ripcord_targets::postgres::dependents::{
        self as deps, GRANT, MATERIALIZED_VIEW, REFRESH, VIEW,
    };
    let mut out = BTreeMap::new();
    for d in deps::of_database(client)? {
        let value = match d.kind.as_str() {
            GRANT => d.definition.clone(),
            REFRESH => "holds its rows".to_string(),
            VIEW | MATERIALIZED_VIEW => {
                let owner = d.owner.clone().unwrap_or_default();
                out.insert(
                    format!("the owner of {}", deps::describe(&d)),
                    (d.relation.clone(), owner),
                );
                continue;
            }
            _ => continue,
        };
        out.insert(deps::describe(&d), (d.relation.clone(), value));
    }
    Ok(out)
}

/// A scratch copy: the SQLite file through the backup API; a PostgreSQL
/// database from `CREATE DATABASE … TEMPLATE`, or, when other sessions use
/// the database (TEMPLATE needs it idle), from a snapshot restored into a
/// new database.
fn clone(ctx: &Ctx, name: &str, target: &TargetConfig) -> Result<Scratch> {
    match target {
        TargetConfig::Sqlite { path, .. } => {
            let dir = tempfile::Builder::new()
                .prefix("ripcord-rehearse-")
                .tempdir()?;
            let guard = remove_on_exit(dir.path());
            let copy = dir.path().join(path.file_name().unwrap_or_default());
            ripcord_targets::sqlite::copy_file(path, &copy)
                .with_context(|| format!("copying {} for the rehearsal", path.display()))?;
            Ok(Scratch::Sqlite {
                path: copy,
                dir,
                guard,
            })
        }
        TargetConfig::Postgres { url, .. } => {
            let live = postgres::Target::parse(url)?;
            let db = format!("{}_rehearse_{}", live.dbname(), std::process::id());
            let admin = postgres::conn::url_with_dbname(url, "postgres");
            let scratch_url = postgres::conn::url_with_dbname(url, &db);
            let mut client = postgres::Target::parse(&admin)?.connect()?;
            // From here on an interruption, or an error, drops the copy; the
            // CREATE itself is not cut short, so no copy outlives the drop.
            let guard = drop_database_on_exit(&admin, &db);
            let sql = format!(
                "CREATE DATABASE {} TEMPLATE {}",
                ident(&db),
                ident(&live.dbname())
            );
            match interrupt::critical(|| client.batch_execute(&sql)) {
                Ok(()) => {}
                Err(e) if e.code().is_some_and(|c| c.code() == "55006") => {
                    ctx.say("the database is in use, so TEMPLATE cannot copy it: copying it from a fresh snapshot instead");
                    interrupt::critical(|| {
                        client.batch_execute(&format!("CREATE DATABASE {}", ident(&db)))
                    })
                    .with_context(|| format!("creating the scratch database {db}"))?;
                    copy_through_snapshot(ctx, name, url, &scratch_url)?;
                }
                Err(e) => return Err(e).context(format!("creating the scratch database {db}")),
            }
            copy_settings(ctx, &mut client, &live.dbname(), &db)?;
            Ok(Scratch::Postgres {
                url: scratch_url,
                admin,
                db,
                guard,
            })
        }
        TargetConfig::Dir { .. } => unreachable!("database targets only"),
    }
}

/// `CREATE DATABASE` copies no `ALTER DATABASE … SET` nor `ALTER ROLE … IN
/// DATABASE … SET` (they live in the shared pg_db_role_setting): they are
/// carried over, so that names resolve on the copy as on the live database.
/// A role setting that cannot be copied (it needs CREATEROLE) is warned
/// about; a database setting that cannot be copied fails the rehearsal.
fn copy_settings(ctx: &Ctx, client: &mut ::postgres::Client, live: &str, db: &str) -> Result<()> {
    let rows = client
        .query(
            "SELECT r.rolname::text, s.setconfig::text[]
             FROM pg_catalog.pg_db_role_setting s
             JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
             LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
             WHERE d.datname = $1 ORDER BY 1 NULLS FIRST",
            &[&live],
        )
        .with_context(|| format!("reading the settings of database {live}"))?;
    for row in rows {
        let role: Option<String> = row.get(0);
        let config: Vec<String> = row.get::<_, Option<Vec<String>>>(1).unwrap_or_default();
        let on = match &role {
            None => format!("DATABASE {}", ident(db)),
            Some(role) => format!("ROLE {} IN DATABASE {}", ident(role), ident(db)),
        };
        for item in config {
            let Some((name, value)) = item.split_once('=') else {
                continue;
            };
            let name_sql: Vec<String> = name.split('.').map(ident).collect();
            let sql = format!(
                "ALTER {on} SET {} TO {}",
                name_sql.join("."),
                setting_value(value)
            );
            if let Err(e) = client.batch_execute(&sql) {
                match &role {
                    None => {
                        return Err(e).context(format!(
                            "copying the setting {name} of database {live} to the scratch copy"
                        ))
                    }
                    Some(role) => ctx.warn(format!(
                        "the setting {name} of role {role} in database {live} could not be \
                         copied to the scratch copy ({e}); the rehearsal runs without it"
                    )),
                }
            }
        }
    }
    Ok(())
}

/// A setting's value as pg_db_role_setting holds it, as SQL: a list of
/// names (search_path's `"$user", public`) as it is, for a single literal
/// would be one element; anything else as a string literal.
fn setting_value(value: &str) -> String {
    let name_list = !value.trim().is_empty()
        && value.split(',').all(|item| {
            let item = item.trim();
            let plain = !item.is_empty()
                && item
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
            let quoted = item.len() >= 2
                && item.starts_with('"')
                && item.ends_with('"')
                && !item[1..item.len() - 1].replace("\"\"", "").contains('"');
            plain || quoted
        });
    if name_list && value.contains([',', '"']) {
        value.to_string()
    } else {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

fn copy_through_snapshot(ctx: &Ctx, name: &str, url: &str, scratch_url: &str) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("ripcord-rehearse-copy-")
        .tempdir()?;
    let _removed = remove_on_exit(dir.path());
    let repo = Repository::init(Arc::new(LocalBackend::new(dir.path())), Some("rehearse"))?;
    let mut config = ctx.config.clone();
    config.targets.insert(
        name.to_string(),
        TargetConfig::Postgres {
            url: url.to_string(),
            split_mb: None,
        },
    );
    let quiet = Ctx::new(config, None, Arc::new(Silent));
    let taken = take_with(
        &quiet,
        &repo,
        &[name.to_string()],
        &[],
        None,
        &TakeOptions::default(),
    )?;
    let (_, snap) = repo.find_snapshot(&taken.id.to_string())?;
    let index = repo.load_index()?;
    let Some(ripcord_repo::manifest::Content::Postgres(pg)) =
        snap.targets.first().map(|t| &t.content)
    else {
        return Err(Error::failed(
            "the copy snapshot holds no PostgreSQL database",
        ));
    };
    // The scratch database exists (and is empty): it was made where an
    // interruption cannot cut its creation short.
    let opts = postgres::PgRestoreOptions::default();
    postgres::restore(
        &repo,
        &index,
        pg,
        scratch_url,
        &opts,
        &ripcord_targets::Quiet,
    )?;
    Ok(())
}
