//! A restore: to another place (`into`), or in place, where dir and SQLite
//! targets are staged and checked first, the current state is kept in a
//! safety snapshot, and only then is the staged copy swapped in.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ripcord_core::config::TargetConfig;
use ripcord_repo::manifest::{Content, TargetSnapshot};
use ripcord_repo::{Id, Repository};
use ripcord_targets::{dir, place, sqlite, RestoreStats};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::migration_state::{self, MigrationCheck};
use crate::{Context as _, Error, Result};

/// What to restore, and where.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// A snapshot id, a prefix of one, or `latest`.
    pub snapshot: String,
    /// Target names (a name may hold several, comma-separated); empty: all in the snapshot.
    pub targets: Vec<String>,
    /// `latest` means the newest snapshot with all these tags; a snapshot
    /// named by id must have them.
    pub tags: Vec<String>,
    /// Somewhere else than the configured place: a folder, a file or a postgres:// URL.
    pub into: Option<PathBuf>,
    /// Only these tables of the one PostgreSQL target.
    pub tables: Vec<String>,
    /// Restore what is intact and skip damaged files instead of refusing.
    pub partial: bool,
    /// Create the PostgreSQL database first.
    pub create: bool,
    /// Drop the PostgreSQL objects first.
    pub clean: bool,
    /// Parallel table loads of a PostgreSQL target; 0: the default.
    pub jobs: usize,
    /// Check everything and say what would be restored where; change nothing.
    pub dry_run: bool,
}

#[derive(Serialize, Default, schemars::JsonSchema)]
pub struct RestoreResult {
    pub snapshot: Id,
    /// Nothing was restored: `targets` says what would have been, and where.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub safety_snapshot: Option<Id>,
    pub targets: Vec<TargetRestore>,
    /// Per-table checks of PostgreSQL restores.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<ripcord_targets::postgres::PgRestoreStats>,
    pub seconds: f64,
    /// In place, per database target: the migration state the snapshot
    /// holds, the live database's before, and the database's after.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<MigrationCheck>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct TargetRestore {
    #[serde(rename = "target")]
    pub name: String,
    pub kind: &'static str,
    pub destination: PathBuf,
    /// Over the live target (after a safety snapshot), not `--into`.
    pub in_place: bool,
    #[serde(flatten)]
    pub stats: RestoreStats,
    /// In place: live entries left as they were (excluded, protected, or
    /// not held by the safety snapshot).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
}

/// `ripcord restore`: opens and locks the repository and restores.
pub fn run(ctx: &Ctx, opts: &RestoreOptions) -> Result<RestoreResult> {
    let repo = ctx.open_repo()?;
    let _lock = ctx.lock(&repo, false, "restore")?;
    restore(ctx, &repo, opts)
}

pub fn restore(ctx: &Ctx, repo: &Repository, args: &RestoreOptions) -> Result<RestoreResult> {
    let start = Instant::now();
    let wanted: Vec<String> = args
        .targets
        .iter()
        .flat_map(|t| t.split(','))
        .map(str::to_string)
        .collect();
    let selection = crate::select::Selection {
        targets: wanted.clone(),
        tags: args.tags.clone(),
    };
    let (snap_id, snap) = selection.find(ctx, repo, &args.snapshot)?;
    for w in &wanted {
        if snap.target(w).is_none() {
            return Err(Error::usage(
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
    let opts = ripcord_targets::RestoreOptions {
        partial: args.partial,
        max_entries: None,
    };
    // Each tree may expand only to the entries its snapshot recorded.
    let opts_for = |t: &TargetSnapshot| ripcord_targets::RestoreOptions {
        max_entries: Some(ripcord_repo::walk::TreeLimits::of(t).max_entries),
        ..opts
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
                    // The name comes from the manifest: join it only as
                    // one plain path component.
                    into.join(plain_name(&t.name)?)
                };
                let dest = match &t.content {
                    Content::Sqlite { .. } if selected.len() > 1 || base.is_dir() => {
                        base.join(file_name(&t.source))
                    }
                    Content::Postgres(_) if !is_url(into) => {
                        return Err(Error::usage(
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
        return Err(Error::usage(
            "--tables, --create and --clean apply to one PostgreSQL target",
            "select it with --target NAME",
        ));
    }
    // Unknown tables are refused before the safety snapshot, so that a typo
    // leaves nothing behind.
    if let (Some(names), Content::Postgres(pg)) = (&tables, &plan[0].0.content) {
        for n in names {
            let wanted = ripcord_core::table_name::TableRef::parse(n).ok();
            if !wanted.is_some_and(|w| pg.tables.iter().any(|t| w.matches(&t.schema, &t.name))) {
                return Err(ripcord_targets::Error::UnknownTable {
                    name: n.clone(),
                    target: format!("snapshot {}", snap_id.short()),
                }
                .into());
            }
        }
    }

    if args.dry_run {
        result.dry_run = true;
        result.targets = plan
            .iter()
            .map(|(t, dest, in_place)| TargetRestore {
                name: t.name.clone(),
                kind: t.content.kind(),
                destination: PathBuf::from(ripcord_targets::postgres::redact(
                    &dest.to_string_lossy(),
                )),
                stats: RestoreStats::default(),
                kept: Vec::new(),
                in_place: *in_place,
            })
            .collect();
        return Ok(result);
    }

    // In place: a snapshot at another migration state than the live
    // database is said before anything changes.
    let mut migrations: Vec<MigrationCheck> = Vec::new();
    let mut migration_locks = Vec::new();
    for (t, _, in_place) in &plan {
        let (true, Some(config)) = (*in_place, ctx.config.targets.get(&t.name)) else {
            continue;
        };
        let restored: Option<Vec<(String, String)>> = match (&t.content, &tables) {
            (Content::Dir { .. }, _) => continue,
            (Content::Postgres(pg), None) if pg.partial => Some(
                pg.tables
                    .iter()
                    .map(|pt| (pt.schema.clone(), pt.name.clone()))
                    .collect(),
            ),
            (Content::Postgres(pg), Some(names)) => Some(
                pg.tables
                    .iter()
                    .filter(|pt| {
                        names.iter().any(|n| {
                            ripcord_core::table_name::TableRef::parse(n)
                                .is_ok_and(|w| w.matches(&pt.schema, &pt.name))
                        })
                    })
                    .map(|pt| (pt.schema.clone(), pt.name.clone()))
                    .collect(),
            ),
            _ => None,
        };
        migrations.push(migration_state::before_restore(
            ctx,
            t,
            config,
            restored.as_deref(),
        ));
        // Held until the restore ends: no migration runs meanwhile.
        if let Some(guard) = ripcord_migrate::tracking::restore_lock(config)
            .with_context(|| format!("restore of {} in place", t.name))?
        {
            migration_locks.push(guard);
        }
    }

    // --into: every destination must be new or empty before anything is
    // written, and a failure removes what this run created.
    let mut created = Created::default();
    if let Some(into) = &args.into {
        if !is_url(into) {
            for (t, dest, _) in &plan {
                if matches!(t.content, Content::Dir { .. }) && dest.is_dir() {
                    let mut it = std::fs::read_dir(dest)?;
                    if it.next().is_some() {
                        return Err(ripcord_targets::Error::NotEmpty { path: dest.clone() }.into());
                    }
                }
            }
            if !into.exists() {
                created.0.push(into.clone());
            }
            for (_, dest, _) in &plan {
                if !dest.exists() {
                    created.0.push(dest.clone());
                }
            }
        }
    }

    // Finish or undo what killed restores left, before looking at the
    // target; then set up the in-place dir restores.
    let protected = ctx.config.protected_paths();
    let mut in_place_dirs: Vec<Option<place::InPlace>> = Vec::new();
    for (t, path, in_place) in &plan {
        let mut ip = None;
        if *in_place && matches!(t.content, Content::Dir { .. }) {
            for msg in place::recover_legacy(path, &excludes_of(ctx, &t.name)?)? {
                ctx.warn(msg);
            }
            if path.exists() {
                let (begun, msgs) = place::InPlace::begin(path, &protected)?;
                for msg in msgs {
                    ctx.warn(msg);
                }
                ip = Some(begun);
            }
        }
        in_place_dirs.push(ip);
    }
    let staging: Vec<Option<PathBuf>> = in_place_dirs
        .iter()
        .map(|ip| ip.as_ref().map(|ip| ip.staged()))
        .collect();

    // In place, stage dir and SQLite restores first: damaged data is found
    // before the safety snapshot is taken and before anything live changes.
    // Targets are restored side by side: one may be I/O-bound while another
    // decompresses.
    let total: u64 = plan.iter().map(|(t, _, _)| t.size).sum();
    let bar = ctx.bar(Some(total), "restore");
    let items: Vec<_> = plan.iter().zip(&staging).collect();
    let staged: Vec<Option<Staged>> = each(&items, |((t, dest, in_place), staging)| {
        Ok(match (&t.content, in_place) {
            (Content::Dir { tree }, true) => match staging {
                Some(staging) => {
                    let stats =
                        dir::restore_fresh(repo, &index, *tree, staging, opts_for(t), &bar)?;
                    Some(Staged::Dir(stats))
                }
                None => None,
            },
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
    let mut held = std::collections::HashMap::new();
    if !live.is_empty() {
        let tag = format!("before-restore-{}", snap_id.short());
        let take = crate::snapshot::TakeOptions {
            tables: tables.clone(),
            jobs: args.jobs,
            skip_missing: true,
            allow_unprotected: false,
        };
        let safety =
            crate::snapshot::take_with(ctx, repo, &live, &["safety".into(), tag], None, &take)?;
        result.safety_snapshot = Some(safety.id);
        // What the safety snapshot holds decides what the swap may replace.
        let snap = repo.load_snapshot(&safety.id)?;
        for t in &snap.targets {
            if let Content::Dir { tree } = t.content {
                held.insert(t.name.clone(), tree);
            }
        }
    }
    let index_now = if held.is_empty() {
        None
    } else {
        Some(repo.load_index()?)
    };

    let work: Vec<_> = plan
        .into_iter()
        .zip(staged.into_iter().map(Mutex::new))
        .zip(in_place_dirs.into_iter().map(Mutex::new))
        .collect();
    let done = each(&work, |(((t, dest, in_place), staged), ip)| {
        let staged = staged.lock().expect("staged").take();
        let ip = ip.lock().expect("in place").take();
        let mut database = None;
        let mut kept = Vec::new();
        let stats = match (&t.content, staged, ip) {
            (Content::Dir { .. }, Some(Staged::Dir(stats)), Some(ip)) => {
                // What ripcord does not manage, and what the safety
                // snapshot does not hold, stays where it was.
                let tree = held.get(&t.name).ok_or_else(|| {
                    Error::failed(format!("the safety snapshot has no copy of {}", t.name))
                })?;
                let index_now = index_now.as_ref().expect("index after the safety snapshot");
                kept = ip.swap(repo, index_now, *tree)?.kept;
                stats
            }
            (Content::Sqlite { image, tables, .. }, Some(Staged::Sqlite(db)), _) => RestoreStats {
                files: 1,
                bytes: image.size,
                skipped: vec![],
                tables_verified: db.apply(dest, tables)?,
            },
            (Content::Dir { tree }, _, _) => {
                dir::restore(repo, &index, *tree, dest, opts_for(t), &bar)?
            }
            (Content::Sqlite { image, tables, .. }, _, _) => RestoreStats {
                files: 1,
                bytes: image.size,
                skipped: vec![],
                tables_verified: sqlite::restore_to_file(repo, &index, image, tables, dest, &bar)?,
            },
            (Content::Postgres(pg), _, _) => {
                let opts = ripcord_targets::postgres::PgRestoreOptions {
                    jobs: args.jobs,
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
                kept,
                in_place: *in_place,
            },
            database,
        ))
    });
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            created.remove();
            return Err(e);
        }
    };
    bar.finish();
    for (target, database) in done {
        result.targets.push(target);
        result.databases.extend(database);
    }
    for check in &mut migrations {
        match ctx.config.targets.get(&check.target) {
            // Selected tables: the tracking tables were not restored.
            _ if !check.tracking_restored => check.after = check.live.clone(),
            Some(config) => migration_state::after_restore(ctx, check, config),
            None => {}
        }
    }
    result.migrations = migrations;
    drop(migration_locks);
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
                    .unwrap_or_else(|_| Err(Error::failed("a restore thread panicked")))
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
    Dir(RestoreStats),
    Sqlite(sqlite::Staged),
}

/// Destinations of `--into` that did not exist before this restore.
#[derive(Default)]
struct Created(Vec<PathBuf>);

impl Created {
    /// Removes them again, deepest first (after a failure).
    fn remove(&self) {
        for p in self.0.iter().rev() {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// A target name from a manifest, checked to be one plain path component
/// (letters, digits, `-`, `_`), so that joining it stays inside `--into`.
fn plain_name(name: &str) -> Result<&str> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !plain {
        return Err(ripcord_targets::Error::Unsafe {
            entry: name.to_string(),
            why: "is not a plain target name (letters, digits, - and _, at most 64)".into(),
        }
        .into());
    }
    Ok(name)
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
        Error::usage(
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
        | (TargetConfig::Sqlite { path, .. }, Content::Sqlite { .. }) => Ok(path.clone()),
        _ => Err(Error::usage(
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
