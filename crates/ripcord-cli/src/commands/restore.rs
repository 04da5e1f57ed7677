//! `ripcord restore`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use ripcord_core::config::TargetConfig;
use ripcord_repo::manifest::{Content, TargetSnapshot};
use ripcord_repo::{Id, Repository};
use ripcord_targets::{dir, place, sqlite, RestoreOptions, RestoreStats};
use serde::Serialize;

use crate::cli::RestoreArgs;
use crate::ctx::Ctx;
use crate::output::{self, Bar};

#[derive(Serialize, Default)]
pub struct RestoreResult {
    pub snapshot: Id,
    pub safety_snapshot: Option<Id>,
    pub targets: Vec<TargetRestore>,
    /// Per-table checks of PostgreSQL restores.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<ripcord_targets::postgres::PgRestoreStats>,
    pub seconds: f64,
}

#[derive(Serialize)]
pub struct TargetRestore {
    pub name: String,
    pub kind: &'static str,
    pub destination: PathBuf,
    #[serde(flatten)]
    pub stats: RestoreStats,
}

pub fn run(ctx: &Ctx, args: &RestoreArgs) -> Result<()> {
    let repo = ctx.open_repo()?;
    let _lock = ctx.lock(&repo, false, "restore")?;
    let result = restore(ctx, &repo, args)?;
    if ctx.json {
        output::print_json(&result);
        return complete(&result);
    }
    if let Some(s) = result.safety_snapshot {
        ctx.say(format!(
            "safety snapshot {} holds the state before this restore",
            s.short()
        ));
    }
    for t in &result.targets {
        let mut line = format!(
            "restored {} to {}: {} {}, {}",
            t.name,
            t.destination.display(),
            t.stats.files,
            if t.kind == "postgres" {
                "tables"
            } else {
                "files"
            },
            output::bytes(t.stats.bytes)
        );
        if t.stats.tables_verified > 0 {
            line.push_str(&format!(
                ", {} tables match the snapshot's row counts and checksums",
                t.stats.tables_verified
            ));
        }
        ctx.say(line);
        for s in &t.stats.skipped {
            ctx.warn(format!("not restored (damaged): {s}"));
        }
    }
    for db in &result.databases {
        for c in &db.checks {
            ctx.say(format!(
                "  {} {:<40} {:>12} rows (snapshot: {})",
                if c.checksum_matches && c.rows == c.expected_rows {
                    "ok"
                } else {
                    "MISMATCH"
                },
                c.table,
                c.rows,
                c.expected_rows
            ));
        }
    }
    ctx.say(format!(
        "restore of {} finished in {:.2}s",
        result.snapshot.short(),
        result.seconds
    ));
    complete(&result)
}

/// A partial restore is a failure, with --json as without.
fn complete(result: &RestoreResult) -> Result<()> {
    if result.targets.iter().any(|t| !t.stats.skipped.is_empty()) {
        return Err(crate::CliError::Failed {
            message: "the restore is partial: damaged files were skipped".into(),
        }
        .into());
    }
    Ok(())
}

pub fn restore(ctx: &Ctx, repo: &Repository, args: &RestoreArgs) -> Result<RestoreResult> {
    let start = Instant::now();
    let (snap_id, snap) = repo.find_snapshot(&args.snapshot)?;
    let wanted: Vec<String> = args
        .targets
        .iter()
        .flat_map(|t| t.split(','))
        .map(str::to_string)
        .collect();
    for w in &wanted {
        if snap.target(w).is_none() {
            return Err(crate::usage(
                format!("snapshot {} has no target {w:?}", snap_id.short()),
                format!("it has: {}", snap.target_names().join(", ")),
            ));
        }
    }
    let selected: Vec<&TargetSnapshot> = snap
        .targets
        .iter()
        .filter(|t| wanted.is_empty() || wanted.contains(&t.name))
        .collect();
    let index = repo.load_index()?;

    // Refuse a damaged snapshot before anything changes.
    let mut problems = Vec::new();
    for t in &selected {
        problems.extend(ripcord_repo::walk::missing(repo, &index, t)?);
    }
    if !problems.is_empty() && !args.partial {
        let shown: Vec<_> = problems.iter().take(10).cloned().collect();
        let more = problems.len().saturating_sub(10);
        return Err(ripcord_repo::Error::Damaged {
            snapshot: snap_id.short(),
            problems: format!(
                "{}{}",
                shown.join("; "),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            ),
        }
        .into());
    }
    let opts = RestoreOptions {
        partial: args.partial,
    };
    let mut result = RestoreResult {
        snapshot: snap_id,
        ..Default::default()
    };

    // Where each target goes.
    let mut plan: Vec<(&TargetSnapshot, PathBuf, bool)> = Vec::new();
    for t in &selected {
        match &args.into {
            Some(into) => {
                let base = if selected.len() == 1 {
                    into.clone()
                } else {
                    into.join(&t.name)
                };
                let dest = match &t.content {
                    Content::Sqlite { .. } if selected.len() > 1 || base.is_dir() => {
                        base.join(file_name(&t.source))
                    }
                    Content::Postgres(_) if !is_url(into) => {
                        return Err(crate::usage(
                            format!("target {:?} is a PostgreSQL database; --into must be a postgres:// URL", t.name),
                            "restore it on its own: --target NAME --into postgres://user@host/db (add --create for a new database)",
                        ))
                    }
                    _ => base,
                };
                plan.push((t, dest, false));
            }
            None => plan.push((t, live_path(ctx, t)?, true)),
        }
    }

    let tables = (!args.tables.is_empty()).then(|| args.tables.clone());
    let is_pg = |t: &TargetSnapshot| matches!(t.content, Content::Postgres(_));
    if (tables.is_some() || args.create || args.clean) && !(plan.len() == 1 && is_pg(plan[0].0)) {
        return Err(crate::usage(
            "--tables, --create and --clean apply to one PostgreSQL target",
            "select it with --target NAME",
        ));
    }
    // Unknown tables are refused before the safety snapshot, so that a typo
    // leaves nothing behind.
    if let (Some(names), Content::Postgres(pg)) = (&tables, &plan[0].0.content) {
        for n in names {
            let (schema, name) = match n.split_once('.') {
                Some((s, t)) => (Some(s), t),
                None => (None, n.as_str()),
            };
            if !pg
                .tables
                .iter()
                .any(|t| t.name == name && schema.is_none_or(|s| t.schema == s))
            {
                return Err(ripcord_targets::Error::UnknownTable {
                    name: n.clone(),
                    target: format!("snapshot {}", snap_id.short()),
                }
                .into());
            }
        }
    }

    // Finish or undo what killed restores left, before looking at the target.
    for (t, path, in_place) in &plan {
        if *in_place && matches!(t.content, Content::Dir { .. }) {
            for msg in place::recover(path, &excludes_of(ctx, &t.name)?)? {
                ctx.warn(msg);
            }
        }
    }

    // In place, stage dir and SQLite restores first: damaged data is found
    // before the safety snapshot is taken and before anything live changes.
    // Targets are restored side by side: one may be I/O-bound while another
    // decompresses.
    let total: u64 = plan.iter().map(|(t, _, _)| t.size).sum();
    let bar = Bar::new(Some(total), "restore", ctx.quiet || ctx.json);
    let staged: Vec<Option<Staged>> = each(&plan, |(t, dest, in_place)| {
        Ok(match (&t.content, in_place) {
            (Content::Dir { tree }, true) => {
                let dir = StagedDir(place::staging_path(dest, "restore"));
                let _ = std::fs::remove_dir_all(&dir.0);
                let stats = dir::restore_fresh(repo, &index, *tree, &dir.0, opts, &bar)?;
                Some(Staged::Dir(dir, stats))
            }
            (Content::Sqlite { image, .. }, true) => Some(Staged::Sqlite(sqlite::stage(
                repo, &index, image, dest, &bar,
            )?)),
            _ => None,
        })
    })?;

    // In place: keep the current state before it changes.
    let live: Vec<String> = plan
        .iter()
        .filter(|(t, path, in_place)| *in_place && (is_pg(t) || path.exists()))
        .map(|(t, _, _)| t.name.clone())
        .collect();
    if !live.is_empty() {
        let tag = format!("before-restore-{}", snap_id.short());
        let take = super::snapshot::TakeOptions {
            tables: tables.clone(),
            jobs: args.jobs.unwrap_or(0),
            skip_missing: true,
        };
        let safety =
            super::snapshot::take_with(ctx, repo, &live, &["safety".into(), tag], None, &take)?;
        result.safety_snapshot = Some(safety.id);
    }

    let work: Vec<_> = plan
        .into_iter()
        .zip(staged.into_iter().map(Mutex::new))
        .collect();
    let done = each(&work, |((t, dest, in_place), staged)| {
        let staged = staged.lock().expect("staged").take();
        let mut database = None;
        let stats = match (&t.content, staged) {
            (Content::Dir { .. }, Some(Staged::Dir(dir, stats))) => {
                // What ripcord does not manage stays where it was.
                place::swap_in(&dir.0, dest, &excludes_of(ctx, &t.name)?)?;
                stats
            }
            (Content::Sqlite { image, tables, .. }, Some(Staged::Sqlite(db))) => RestoreStats {
                files: 1,
                bytes: image.size,
                skipped: vec![],
                tables_verified: db.apply(dest, tables)?,
            },
            (Content::Dir { tree }, _) => dir::restore(repo, &index, *tree, dest, opts, &bar)?,
            (Content::Sqlite { image, tables, .. }, _) => RestoreStats {
                files: 1,
                bytes: image.size,
                skipped: vec![],
                tables_verified: sqlite::restore_to_file(repo, &index, image, tables, dest, &bar)?,
            },
            (Content::Postgres(pg), _) => {
                let opts = ripcord_targets::postgres::PgRestoreOptions {
                    jobs: args.jobs.unwrap_or(0),
                    tables: tables.clone(),
                    // In place, the safety snapshot was taken: replace what is there.
                    clean: args.clean || *in_place,
                    create: args.create,
                };
                let url = dest.to_string_lossy().into_owned();
                let pg_stats =
                    ripcord_targets::postgres::restore(repo, &index, pg, &url, &opts, &bar)?;
                let stats = RestoreStats {
                    files: pg_stats.tables as u64,
                    bytes: pg_stats.bytes,
                    skipped: vec![],
                    tables_verified: pg_stats.checks.len() as u64,
                };
                database = Some(pg_stats);
                stats
            }
        };
        Ok((
            TargetRestore {
                name: t.name.clone(),
                kind: t.content.kind(),
                // A database URL is shown and reported without its password.
                destination: match &t.content {
                    Content::Postgres(_) => {
                        PathBuf::from(ripcord_targets::postgres::redact(&dest.to_string_lossy()))
                    }
                    _ => dest.clone(),
                },
                stats,
            },
            database,
        ))
    })?;
    bar.finish();
    for (target, database) in done {
        result.targets.push(target);
        result.databases.extend(database);
    }
    result.seconds = start.elapsed().as_secs_f64();
    Ok(result)
}

/// Runs `f` on every item at once, one thread each; results in item order,
/// or the first error once all have finished.
fn each<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|item| s.spawn(|| f(item))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a restore thread panicked")))
            })
            .collect()
    })
}

/// The exclude globs of a dir target.
fn excludes_of(ctx: &Ctx, name: &str) -> Result<globset::GlobSet> {
    let patterns = match ctx.config.targets.get(name) {
        Some(TargetConfig::Dir { exclude, .. }) => exclude.as_slice(),
        _ => &[],
    };
    Ok(dir::build_excludes(patterns)?)
}

/// An in-place restore, complete but not yet applied.
enum Staged {
    Dir(StagedDir, RestoreStats),
    Sqlite(sqlite::Staged),
}

/// A staged folder, removed if it is never swapped in.
struct StagedDir(PathBuf);

impl Drop for StagedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_url(p: &Path) -> bool {
    p.to_str()
        .is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

fn file_name(source: &str) -> std::ffi::OsString {
    Path::new(source)
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "database.db".into())
}

/// The configured location of a target, for an in-place restore.
fn live_path(ctx: &Ctx, t: &TargetSnapshot) -> Result<PathBuf> {
    let hint = "pass --into PATH to restore somewhere else";
    let cfg = ctx.config.targets.get(&t.name).ok_or_else(|| {
        crate::usage(
            format!(
                "target {:?} is not in the configuration, so there is no place to restore it to",
                t.name
            ),
            hint,
        )
    })?;
    match (cfg, &t.content) {
        (TargetConfig::Postgres { url, .. }, Content::Postgres(_)) => Ok(PathBuf::from(url)),
        (TargetConfig::Dir { path, .. }, Content::Dir { .. })
        | (TargetConfig::Sqlite { path }, Content::Sqlite { .. }) => Ok(path.clone()),
        _ => Err(crate::usage(
            format!(
                "target {:?} is a {} target now but the snapshot holds {}",
                t.name,
                cfg.kind(),
                t.content.kind()
            ),
            hint,
        )),
    }
}
