//! A restore: to another place (`into`), or in place, where dir and SQLite
//! targets are staged and checked first, the current state is kept in a
//! safety snapshot, and only then is the staged copy swapped in.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ripcord_core::config::TargetConfig;
use ripcord_repo::manifest::{Content, TargetSnapshot};
use ripcord_repo::{Id, Repository};
use ripcord_targets::{dir, dir_include, place, sqlite, RestoreStats};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::json::TableView;
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
    /// Somewhere else than the configured place: a folder that receives
    /// each target as `<into>/<target name>` (see [`destination`]), or a
    /// postgres:// URL for one PostgreSQL target.
    pub into: Option<PathBuf>,
    /// Only these tables of the one database target (PostgreSQL or SQLite).
    pub tables: Vec<String>,
    /// Only the paths these glob patterns match, of the one dir target.
    pub include: Vec<String>,
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
    /// When the snapshot was taken (RFC 3339, UTC): the restored data's age.
    pub snapshot_time: String,
    /// The run that journaled this restore (in place only): `ripcord report RUN`.
    pub run: Option<String>,
    /// Nothing was restored: `targets` says what would have been, and where.
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
    /// Files written: a dir target's, or a SQLite database's one; none for
    /// PostgreSQL, whose tables `databases` counts.
    pub files: Option<u64>,
    #[serde(flatten)]
    pub stats: RestoreStats,
    /// In place: live entries left as they were (excluded, protected, or
    /// not held by the safety snapshot).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// `--tables`: the tables restored, as the snapshot names them, with
    /// the rows it holds (checked after the restore).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableView>,
    /// In place with `--include`: what changed in the live folder (nothing
    /// else did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub included: Option<dir_include::Applied>,
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
    let include = if args.include.is_empty() {
        None
    } else {
        Some(dir_include::Include::new(&args.include)?)
    };
    let opts = ripcord_targets::RestoreOptions {
        partial: args.partial,
        max_entries: None,
        include: include.as_ref(),
    };
    // Each tree may expand only to the entries its snapshot recorded.
    let opts_for = |t: &TargetSnapshot| ripcord_targets::RestoreOptions {
        max_entries: Some(ripcord_repo::walk::TreeLimits::of(t).max_entries),
        ..opts
    };
    let mut result = RestoreResult {
        snapshot: snap_id,
        snapshot_time: snap.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ..Default::default()
    };

    // Where each target goes.
    let mut plan: Vec<(&TargetSnapshot, PathBuf, bool)> = Vec::new();
    for t in &selected {
        match &args.into {
            Some(into) => plan.push((t, destination(into, t, &selected)?, false)),
            None => plan.push((t, live_path(ctx, t)?, true)),
        }
    }

    let is_pg = |t: &TargetSnapshot| matches!(t.content, Content::Postgres(_));
    let is_db = |t: &TargetSnapshot| !matches!(t.content, Content::Dir { .. });
    let one = |what: &str, fits: &dyn Fn(&TargetSnapshot) -> bool| -> Result<()> {
        if plan.len() == 1 && fits(plan[0].0) {
            return Ok(());
        }
        let names: Vec<String> = selected
            .iter()
            .filter(|t| fits(t))
            .map(|t| t.name.clone())
            .collect();
        Err(Error::usage(
            format!(
                "{what}; this restore has {}",
                selected
                    .iter()
                    .map(|t| format!("{} ({})", t.name, t.content.kind()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            match names.as_slice() {
                [] => "select such a target with --target NAME".to_string(),
                _ => format!("select one with --target {}", names.join(" or --target ")),
            },
        ))
    };
    if args.create || args.clean {
        one(
            "--create and --clean apply to one PostgreSQL target",
            &is_pg,
        )?;
    }
    if !args.tables.is_empty() {
        one(
            "--tables applies to one database target (PostgreSQL or SQLite)",
            &is_db,
        )?;
    }
    if include.is_some() {
        one(
            "--include applies to one dir target",
            &|t: &TargetSnapshot| matches!(t.content, Content::Dir { .. }),
        )?;
    }
    // Unknown tables and paths are refused before the safety snapshot, so
    // that a typo leaves nothing behind.
    let tables = match plan.first().map(|p| &p.0.content) {
        _ if args.tables.is_empty() => None,
        Some(Content::Postgres(pg)) => {
            let names: Vec<String> = pg.tables.iter().map(|t| t.qualified()).collect();
            for n in &args.tables {
                let wanted = ripcord_core::table_name::TableRef::parse(n).ok();
                if !wanted.is_some_and(|w| pg.tables.iter().any(|t| w.matches(&t.schema, &t.name)))
                {
                    return Err(unknown_table(n, &snap_id, &names));
                }
            }
            Some(args.tables.clone())
        }
        Some(Content::Sqlite { tables: stats, .. }) => {
            let names: Vec<String> = stats.iter().map(|t| t.name.clone()).collect();
            let mut chosen = Vec::new();
            for n in &args.tables {
                // SQLite finds names in any case; the snapshot's spelling is used.
                let Some(found) = names.iter().find(|t| t.eq_ignore_ascii_case(n)) else {
                    return Err(unknown_table(n, &snap_id, &names));
                };
                if found.starts_with("ripcord_") {
                    return Err(Error::usage(
                        format!("{found} is one of ripcord's own tables"),
                        "they record the migration state and come back only with the whole database: restore without --tables",
                    ));
                }
                if !chosen.contains(found) {
                    chosen.push(found.clone());
                }
            }
            Some(chosen)
        }
        _ => None,
    };
    if let (Some(_), Some((t, path, true))) = (&tables, plan.first()) {
        if matches!(t.content, Content::Sqlite { .. }) && !path.exists() {
            return Err(Error::usage(
                format!(
                    "{} does not exist, so there are no tables of it to replace",
                    path.display()
                ),
                "restore the whole database (without --tables), or the tables into a copy with --into DIR",
            ));
        }
    }
    if let (Some(inc), Content::Dir { tree }) = (&include, &plan[0].0.content) {
        dir_include::check_matches(
            repo,
            &index,
            *tree,
            inc,
            ripcord_repo::walk::TreeLimits::of(plan[0].0).max_entries,
        )?;
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
                files: files_of(t, &RestoreStats::default()),
                stats: RestoreStats::default(),
                kept: Vec::new(),
                in_place: *in_place,
                tables: chosen_tables(t, tables.as_deref()),
                included: None,
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
            (Content::Sqlite { .. }, Some(names)) => Some(
                names
                    .iter()
                    .map(|n| ("main".to_string(), n.clone()))
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
            if into.exists() && !into.is_dir() {
                return Err(Error::usage(
                    format!("--into {} is a file, not a folder", into.display()),
                    "--into names a folder; each target is restored into DIR/<target name> (it is created when missing)",
                ));
            }
            for (t, dest, _) in &plan {
                let taken = match t.content {
                    Content::Dir { .. } if dest.is_dir() => {
                        std::fs::read_dir(dest)?.next().is_some()
                    }
                    _ => std::fs::symlink_metadata(dest).is_ok() && !dest.is_dir(),
                };
                if taken {
                    return Err(ripcord_targets::Error::NotEmpty { path: dest.clone() }.into());
                }
            }
            if !into.exists() {
                created.0.push(into.clone());
            }
            for (t, dest, _) in &plan {
                // A database goes into its own folder, DIR/<name>/<file>.
                let made = match t.content {
                    Content::Sqlite { .. } => dest.parent().unwrap_or(dest),
                    _ => dest.as_path(),
                };
                if !made.exists() {
                    created.0.push(made.to_path_buf());
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
            if path.exists() && include.is_none() {
                let (begun, msgs) = place::InPlace::begin(path, &protected)?;
                for msg in msgs {
                    ctx.warn(msg);
                }
                ip = Some(begun);
            }
        }
        in_place_dirs.push(ip);
    }
    // --include in place: the included entries are staged beside the
    // target and then moved over their live paths one by one.
    let include_stage: Option<Staging> = match plan.first() {
        Some((t, path, true)) if include.is_some() && matches!(t.content, Content::Dir { .. }) => {
            if !path.is_dir() {
                return Err(Error::usage(
                    format!(
                        "{} does not exist, so there is nothing to restore part of",
                        path.display()
                    ),
                    "restore the whole target (without --include), or --into DIR",
                ));
            }
            Some(Staging(place::staging_path(path, "include")))
        }
        _ => None,
    };
    if let Some(s) = &include_stage {
        let _ = std::fs::remove_dir_all(&s.0);
    }
    let staging: Vec<Option<PathBuf>> = in_place_dirs
        .iter()
        .map(|ip| ip.as_ref().map(|ip| ip.staged()))
        .zip(
            std::iter::once(include_stage.as_ref().map(|s| s.0.clone()))
                .chain(std::iter::repeat(None)),
        )
        .map(|(a, b)| a.or(b))
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
            (Content::Dir { tree }, true) if include.is_some() => match staging {
                Some(staging) => {
                    let stats =
                        dir::restore_fresh(repo, &index, *tree, staging, opts_for(t), &bar)?;
                    // Refused before the safety snapshot: nothing changed.
                    dir_include::check_live(staging, dest, &protected)?;
                    Some(Staged::Included(stats))
                }
                None => None,
            },
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
            // A SQLite safety snapshot always holds the whole database.
            tables: tables
                .clone()
                .filter(|_| plan.iter().any(|(t, _, _)| is_pg(t))),
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
        let mut included = None;
        let stats = match (&t.content, staged, ip) {
            (Content::Dir { .. }, Some(Staged::Included(stats)), _) => {
                let staging = include_stage.as_ref().expect("include staging");
                included = Some(dir_include::apply(&staging.0, dest, &protected)?);
                stats
            }
            (Content::Sqlite { tables: stats, .. }, Some(Staged::Sqlite(db)), _)
                if tables.is_some() =>
            {
                let names = tables.as_deref().unwrap_or_default();
                RestoreStats {
                    files: 1,
                    bytes: 0,
                    skipped: vec![],
                    tables_verified: db.apply_tables(dest, stats, names)?,
                }
            }
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
            (
                Content::Sqlite {
                    image,
                    tables: stats,
                    ..
                },
                _,
                _,
            ) => RestoreStats {
                files: 1,
                bytes: image.size,
                skipped: vec![],
                tables_verified: match &tables {
                    Some(names) => sqlite::restore_tables_to_file(
                        repo, &index, image, stats, names, dest, &bar,
                    )?,
                    None => sqlite::restore_to_file(repo, &index, image, stats, dest, &bar)?,
                },
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
                files: files_of(t, &stats),
                stats,
                kept,
                in_place: *in_place,
                tables: chosen_tables(t, tables.as_deref()),
                included,
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

/// The `files` of a restored target: none for PostgreSQL, which writes
/// tables, not files.
fn files_of(t: &TargetSnapshot, stats: &RestoreStats) -> Option<u64> {
    (!matches!(t.content, Content::Postgres(_))).then_some(stats.files)
}

/// The tables of `t` that `--tables` chose (`names`), as the snapshot
/// names them and with its rows.
fn chosen_tables(t: &TargetSnapshot, names: Option<&[String]>) -> Vec<TableView> {
    let Some(names) = names else {
        return Vec::new();
    };
    match &t.content {
        Content::Postgres(pg) => pg
            .tables
            .iter()
            .filter(|pt| {
                names.iter().any(|n| {
                    ripcord_core::table_name::TableRef::parse(n)
                        .is_ok_and(|w| w.matches(&pt.schema, &pt.name))
                })
            })
            .map(|pt| TableView {
                table: pt.qualified(),
                rows: pt.rows,
                bytes: Some(pt.size),
            })
            .collect(),
        // SQLite names were already spelled as the snapshot does.
        Content::Sqlite { tables, .. } => tables
            .iter()
            .filter(|s| names.contains(&s.name))
            .map(|s| TableView {
                table: s.name.clone(),
                rows: s.rows,
                bytes: None,
            })
            .collect(),
        Content::Dir { .. } => Vec::new(),
    }
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
    /// `--include`: the included entries, staged beside the target.
    Included(RestoreStats),
    Sqlite(sqlite::Staged),
}

/// The folder an in-place `--include` restore stages in; removed when the
/// restore ends, whatever happened.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where `--into` puts target `t` of a restore of `selected`: the same
/// rule whatever their number. `--into DIR` gives each target the folder
/// `DIR/<target name>`: a dir target's tree is that folder, a SQLite
/// database is `DIR/<target name>/<its file name>`. A PostgreSQL target
/// needs `--into postgres://…` (a database, not a folder), alone.
pub fn destination(
    into: &Path,
    t: &TargetSnapshot,
    selected: &[&TargetSnapshot],
) -> Result<PathBuf> {
    let others = || {
        selected
            .iter()
            .filter(|o| o.name != t.name)
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
    };
    if is_url(into) && selected.len() > 1 {
        let pg: Vec<&str> = selected
            .iter()
            .filter(|o| matches!(o.content, Content::Postgres(_)))
            .map(|o| o.name.as_str())
            .collect();
        return Err(Error::usage(
            format!(
                "--into {} is one database; this restore has {} targets",
                ripcord_targets::postgres::redact(&into.to_string_lossy()),
                selected.len()
            ),
            match pg.as_slice() {
                [] => "--into takes a folder for dir and SQLite targets: --into DIR".to_string(),
                _ => format!(
                    "restore a PostgreSQL target on its own: --target {} --into postgres://…; the others with --target NAME --into DIR",
                    pg[0]
                ),
            },
        ));
    }
    match &t.content {
        Content::Postgres(_) if is_url(into) => Ok(into.to_path_buf()),
        Content::Postgres(_) => {
            let rest = others();
            Err(Error::usage(
                format!(
                    "target {:?} is a PostgreSQL database: --into takes a postgres:// URL for it, not the folder {}",
                    t.name,
                    into.display()
                ),
                if rest.is_empty() {
                    "give a database URL: --into postgres://user@host/db (add --create for a new database)".to_string()
                } else {
                    format!(
                        "restore it on its own with --target {} --into postgres://user@host/db (add --create for a new database), and the others into the folder with --target {} --into {}",
                        t.name,
                        rest.join(" --target "),
                        into.display()
                    )
                },
            ))
        }
        _ if is_url(into) => Err(Error::usage(
            format!(
                "target {:?} is a {} target: --into takes a folder for it, not a database URL",
                t.name,
                t.content.kind()
            ),
            "give a folder: --into DIR restores each target into DIR/<target name>",
        )),
        // The name comes from the manifest: join it only as one plain
        // path component.
        Content::Dir { .. } => Ok(into.join(plain_name(&t.name)?)),
        Content::Sqlite { .. } => Ok(into.join(plain_name(&t.name)?).join(file_name(&t.source))),
    }
}

/// A table the snapshot does not hold: the nearest name as a suggestion,
/// and the list.
fn unknown_table(name: &str, snap_id: &Id, names: &[String]) -> Error {
    let near = names
        .iter()
        .map(|n| {
            (
                strsim::levenshtein(&name.to_lowercase(), &n.to_lowercase()),
                n,
            )
        })
        .filter(|(d, n)| *d <= 2.max(n.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| format!("did you mean {n}? "))
        .unwrap_or_default();
    ripcord_targets::Error::NotInSnapshot {
        message: format!(
            "table {name} does not exist in snapshot {}",
            snap_id.short()
        ),
        hint: format!("{near}it holds: {}. Nothing was changed", names.join(", ")),
    }
    .into()
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
