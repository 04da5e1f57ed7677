//! One snapshot of configured targets: each target's content saved
//! against its parent in the newest snapshot that has it, then the manifest.

use std::sync::Arc;
use std::time::Instant;

use ripcord_core::config::TargetConfig;
use ripcord_repo::manifest::{Content, Snapshot, TargetSnapshot};
use ripcord_repo::saver::{SaveStats, Saver, SaverOptions};
use ripcord_repo::{Id, Repository};
use ripcord_targets::{dir, postgres, sqlite};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::migration_state::recorded_state;
use crate::{Error, Result};

/// What to snapshot, as a front end asks for it.
#[derive(Clone, Debug, Default)]
pub struct SnapshotOptions {
    /// Target names (a name may hold several, comma-separated); empty: all configured.
    pub targets: Vec<String>,
    pub tags: Vec<String>,
    pub tier: Option<String>,
    /// Only these tables of the one database target.
    pub tables: Vec<String>,
    /// Parallel table dumps of a PostgreSQL target; 0: the default.
    pub jobs: usize,
}

/// `ripcord snapshot`: opens and locks the repository and takes one snapshot.
pub fn snapshot(ctx: &Ctx, opts: &SnapshotOptions) -> Result<SnapshotResult> {
    refuse_geo_tier(ctx, opts.tier.as_deref())?;
    let repo = ctx.open_repo()?;
    let names = resolve_targets(ctx, &opts.targets)?;
    let _lock = ctx.lock(&repo, false, "snapshot")?;
    if !opts.tables.is_empty() && names.len() != 1 {
        return Err(Error::usage(
            "--tables needs exactly one database target",
            "name the target: `ripcord snapshot app --tables orders`",
        ));
    }
    let take = TakeOptions {
        tables: (!opts.tables.is_empty()).then(|| opts.tables.clone()),
        jobs: opts.jobs,
        skip_missing: false,
        allow_unprotected: false,
    };
    take_with(ctx, &repo, &names, &opts.tags, opts.tier.clone(), &take)
}

/// A geo tier's snapshots are copies in its own repository: one taken here
/// with its name would count for nothing and mislead.
fn refuse_geo_tier(ctx: &Ctx, tier: Option<&str>) -> Result<()> {
    match tier.and_then(|t| Some((t, ctx.config.tiers.get(t)?))) {
        Some((name, t)) if t.is_geo() => Err(Error::usage(
            format!("tier {name} is a geo tier: its snapshots are copies in its own repository"),
            format!(
                "take a snapshot without --tier {name} (or with another tier); `ripcord schedule \
                 run` copies the newest one to the geo repository"
            ),
        )),
        _ => Ok(()),
    }
}

/// A target `snapshot --dry-run` would read, and from where.
#[derive(Serialize, schemars::JsonSchema)]
pub struct PlannedTarget {
    pub target: String,
    /// `dir`, `sqlite` or `postgres`.
    pub kind: &'static str,
    /// The folder or file; a database URL without its password.
    pub source: String,
}

/// `snapshot --dry-run`: the checks a snapshot makes before it reads
/// anything (the repository opens, the targets are configured), and the
/// targets it would read. Nothing is read or written.
pub fn plan(ctx: &Ctx, opts: &SnapshotOptions) -> Result<SnapshotPlan> {
    refuse_geo_tier(ctx, opts.tier.as_deref())?;
    ctx.open_repo()?;
    let names = resolve_targets(ctx, &opts.targets)?;
    if !opts.tables.is_empty() && names.len() != 1 {
        return Err(Error::usage(
            "--tables needs exactly one database target",
            "name the target: `ripcord snapshot app --tables orders`",
        ));
    }
    let targets = names
        .into_iter()
        .map(|name| {
            let config = ctx.config.target(&name)?;
            let source = match config {
                TargetConfig::Dir { path, .. } | TargetConfig::Sqlite { path, .. } => {
                    path.display().to_string()
                }
                TargetConfig::Postgres { url, .. } => postgres::redact(url),
            };
            Ok(PlannedTarget {
                kind: config.kind(),
                target: name,
                source,
            })
        })
        .collect::<Result<_>>()?;
    Ok(SnapshotPlan {
        dry_run: true,
        targets,
        tags: opts.tags.clone(),
        tier: opts.tier.clone(),
    })
}

/// `snapshot --dry-run`: what a snapshot would read. Nothing was read
/// or written.
#[derive(Serialize, schemars::JsonSchema)]
pub struct SnapshotPlan {
    /// Always true here: what would be read, not a snapshot taken.
    #[schemars(extend("const" = true))]
    pub dry_run: bool,
    pub targets: Vec<PlannedTarget>,
    pub tags: Vec<String>,
    pub tier: Option<String>,
}

/// A snapshot taken.
#[derive(Serialize, schemars::JsonSchema)]
pub struct SnapshotResult {
    /// Always false here: a snapshot taken, not a dry run's plan.
    #[schemars(extend("const" = false))]
    pub dry_run: bool,
    #[serde(rename = "snapshot")]
    pub id: Id,
    /// The first 8 digits of the id, as text output shows it.
    #[serde(skip)]
    pub short_id: String,
    /// The targets in the snapshot, by name.
    #[serde(serialize_with = "crate::json::target_list")]
    #[schemars(with = "Vec<crate::json::TargetName>")]
    pub targets: Vec<String>,
    pub files: u64,
    pub unchanged_files: u64,
    #[serde(rename = "bytes")]
    pub size: u64,
    pub stats: SaveStats,
    pub seconds: f64,
    pub recovered_packs: usize,
    /// Database tables whose rows were read.
    pub tables_read: u64,
    /// Database tables taken over from the parent snapshot without reading
    /// them: nothing wrote to them since.
    pub tables_reused: u64,
    /// Paths left out because ripcord keeps them for itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// Tables left out because they cannot be protected, `schema.name: why`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unprotected: Vec<String>,
}

/// The named targets, or all configured ones; each must exist in the config.
pub fn resolve_targets(ctx: &Ctx, names: &[String]) -> Result<Vec<String>> {
    let names: Vec<String> = if names.is_empty() {
        ctx.config.targets.keys().cloned().collect()
    } else {
        names
            .iter()
            .flat_map(|n| n.split(','))
            .map(str::to_string)
            .collect()
    };
    if names.is_empty() && !ctx.config.has_file() {
        return Err(ripcord_core::config::Config::no_file().into());
    }
    if names.is_empty() {
        return Err(Error::usage(
            "no targets are configured",
            "add a [targets.NAME] section to ripcord.toml (kind = \"dir\" or \"sqlite\")",
        ));
    }
    for n in &names {
        ctx.config.target(n)?;
    }
    Ok(names)
}

/// Database options for [`take_with`].
#[derive(Default, Clone)]
pub struct TakeOptions {
    pub tables: Option<Vec<String>>,
    pub jobs: usize,
    /// Leave out named tables that do not exist (safety snapshots).
    pub skip_missing: bool,
    /// Leave out selected tables that cannot be read in full instead of
    /// refusing (`migrate up --allow-unprotected`).
    pub allow_unprotected: bool,
}

/// Takes one snapshot of `names`. The caller holds a lock.
pub fn take(
    ctx: &Ctx,
    repo: &Repository,
    names: &[String],
    tags: &[String],
    tier: Option<String>,
) -> Result<SnapshotResult> {
    take_with(ctx, repo, names, tags, tier, &TakeOptions::default())
}

pub fn take_with(
    ctx: &Ctx,
    repo: &Repository,
    names: &[String],
    tags: &[String],
    tier: Option<String>,
    opts: &TakeOptions,
) -> Result<SnapshotResult> {
    let start = Instant::now();
    let mut index = repo.load_index()?;
    let recovered = repo.index_orphan_packs(&mut index)?;
    if recovered > 0 {
        ctx.say(format!(
            "reusing {} left by an interrupted run",
            crate::report::counted(recovered as u64, "pack")
        ));
    }
    let index = Arc::new(index);
    // The newest snapshot that has each target is its parent.
    let list = repo.snapshot_list()?;
    for d in &list.damaged {
        ctx.warn(d.warning());
    }
    let previous = list.snapshots;
    let parent_of = |name: &str| {
        previous
            .iter()
            .rev()
            .find(|(_, s)| s.target(name).is_some())
    };
    let parent = names.first().and_then(|n| parent_of(n)).map(|(id, _)| *id);

    let saver_opts = SaverOptions {
        compression: ctx.config.snapshot.compression,
        jobs: ctx.config.snapshot.jobs,
    };
    let saver = Saver::new(repo, index.clone(), saver_opts);
    let mut targets = Vec::new();
    let mut left_out = Vec::new();
    let mut unprotected = Vec::new();
    let (mut files, mut unchanged) = (0, 0);
    let (mut tables_read, mut tables_reused) = (0, 0);
    for name in names {
        let bar = ctx.bar(None, &format!("snapshot {name}"));
        let t = match ctx.config.target(name)? {
            TargetConfig::Dir { path, exclude } => {
                if opts.tables.is_some() {
                    return Err(Error::usage(
                        format!("--tables does not apply to the dir target {name:?}"),
                        "name a database target",
                    ));
                }
                let parent_tree =
                    parent_of(name).and_then(|(_, s)| match &s.target(name)?.content {
                        Content::Dir { tree } => Some(*tree),
                        _ => None,
                    });
                let protected = ctx.config.protected_paths();
                let d = dir::snapshot(
                    &saver,
                    &index,
                    path,
                    &dir::SnapshotOptions {
                        excludes: exclude,
                        parent: parent_tree,
                        protected: &protected,
                    },
                    &bar,
                )?;
                for rel in &d.left_out {
                    let line = format!(
                        "left {} out of target {name}: ripcord keeps it for itself (repository, catalog or configuration)",
                        path.join(rel).display()
                    );
                    ctx.say(&line);
                    left_out.push(line);
                }
                files += d.files;
                unchanged += d.unchanged;
                TargetSnapshot {
                    name: name.clone(),
                    source: path.display().to_string(),
                    size: d.bytes,
                    items: d.files,
                    git_commit: d.git_commit,
                    migration_version: None,
                    migration: None,
                    entries: Some(d.entries),
                    content: Content::Dir { tree: d.tree },
                }
            }
            TargetConfig::Sqlite { path, .. } => {
                if opts.tables.is_some() {
                    return Err(Error::usage(
                        "--tables is for postgres targets",
                        "snapshot the whole SQLite database",
                    ));
                }
                let parent_content = parent_of(name)
                    .and_then(|(_, s)| s.target(name))
                    .map(|t| &t.content);
                // The migration state, from the copy itself.
                let mut read = None;
                let s = sqlite::snapshot_with(&saver, path, parent_content, &bar, &mut |c, p| {
                    read = Some(ripcord_migrate::tracking::read_sqlite(c, p));
                })?;
                if s.unchanged {
                    read = Some(ripcord_migrate::tracking::recorded(
                        ctx.config.target(name)?,
                    ));
                }
                let plan = crate::migrate::plan_of(ctx, name);
                let migration = recorded_state(ctx, name, read, plan.as_ref());
                files += 1;
                if s.unchanged {
                    unchanged += 1;
                    tables_reused += s.tables.len() as u64;
                } else {
                    tables_read += s.tables.len() as u64;
                }
                TargetSnapshot {
                    name: name.clone(),
                    source: path.display().to_string(),
                    size: s.image.size,
                    items: s.tables.len() as u64,
                    git_commit: None,
                    migration_version: migration.as_ref().and_then(|m| m.change.clone()),
                    migration,
                    entries: None,
                    content: Content::Sqlite {
                        image: s.image,
                        tables: s.tables,
                        stamp: s.stamp,
                    },
                }
            }
            TargetConfig::Postgres { url, split_mb } => {
                let pg_opts = postgres::PgSnapshotOptions {
                    jobs: opts.jobs,
                    tables: opts.tables.clone(),
                    skip_missing: opts.skip_missing,
                    allow_unprotected: opts.allow_unprotected,
                    split_bytes: split_mb.unwrap_or(0) << 20,
                    parent: parent_of(name).and_then(|(_, s)| match &s.target(name)?.content {
                        Content::Postgres(pg) => Some((**pg).clone()),
                        _ => None,
                    }),
                    // Table-level snapshots in between carry no stamps.
                    stamped: previous.iter().rev().find_map(|(_, s)| {
                        match &s.target(name)?.content {
                            Content::Postgres(pg) if pg.stats_epoch.is_some() => {
                                Some((**pg).clone())
                            }
                            _ => None,
                        }
                    }),
                };
                // The migration state, in the snapshot's transaction.
                let mut read = None;
                let pg = postgres::snapshot_with(&saver, url, &pg_opts, &bar, &mut |c| {
                    read = Some(ripcord_migrate::tracking::read_postgres(c));
                })?;
                let plan = crate::migrate::plan_of(ctx, name);
                let migration = recorded_state(ctx, name, read, plan.as_ref());
                files += pg.tables.len() as u64;
                let reused = pg.tables.iter().filter(|t| t.reused).count() as u64;
                tables_reused += reused;
                tables_read += pg.tables.len() as u64 - reused;
                unprotected.extend(pg.unprotected.iter().cloned());
                TargetSnapshot {
                    name: name.clone(),
                    source: postgres::Target::parse(url)?.redacted(),
                    size: pg.tables.iter().map(|t| t.size).sum(),
                    items: pg.tables.len() as u64,
                    git_commit: None,
                    migration_version: migration.as_ref().and_then(|m| m.change.clone()),
                    migration,
                    entries: None,
                    content: Content::Postgres(Box::new(pg)),
                }
            }
        };
        bar.finish();
        targets.push(t);
    }
    let stats = saver.finish()?;
    ripcord_core::failpoint::hit("before-manifest");
    let snapshot = Snapshot {
        time: chrono::Utc::now(),
        host: ripcord_repo::hostname(),
        user: ripcord_repo::username(),
        tags: tags.to_vec(),
        tier,
        parent,
        targets,
        program_version: env!("CARGO_PKG_VERSION").to_string(),
        audit: crate::audit::seal(ctx),
        copied_from: None,
    };
    let id = repo.save_snapshot(&snapshot)?;
    Ok(SnapshotResult {
        dry_run: false,
        id,
        short_id: id.short(),
        targets: names.to_vec(),
        files,
        unchanged_files: unchanged,
        size: snapshot.total_size(),
        stats,
        seconds: start.elapsed().as_secs_f64(),
        recovered_packs: recovered,
        tables_read,
        tables_reused,
        left_out,
        unprotected,
    })
}
