//! The safety net on the repository: snapshots through [`crate::snapshot`],
//! and tables put back through the database targets.

use std::collections::BTreeSet;
use std::path::Path;

use ripcord_core::config::{OnConflict, TargetConfig};
use ripcord_core::revert::TableRevert;
use ripcord_core::table_name::Shown;
use ripcord_core::{Class, Classify};
use ripcord_migrate::analyze::TableName;
use ripcord_migrate::engine::{Conn, SafetyNet, TablesTaken, Unusable, Watched};
use ripcord_repo::lock::LockGuard;
use ripcord_repo::manifest::Content;
use ripcord_repo::Repository;
use ripcord_targets::postgres::{self, RevertTable};
use ripcord_targets::{sqlite_fingerprint, sqlite_revert, Progress};

use crate::ctx::Ctx;
use crate::report::bytes;
use crate::snapshot::{take_with, TakeOptions};
use crate::Error;

/// Safety snapshots of one configured database target in one repository.
pub struct RepoNet<'a> {
    pub ctx: &'a Ctx,
    pub repo: Repo<'a>,
    pub target: String,
    /// Overrides every table's configured `on_conflict`.
    pub policy: Option<OnConflict>,
    /// Go on when touched tables cannot be protected, leaving them out of
    /// the safety snapshot (`migrate up --allow-unprotected`).
    pub allow_unprotected: bool,
    /// What the last safety snapshot left out, `schema.name: why`.
    pub unprotected: Vec<String>,
    /// How the last safety snapshot got its tables.
    pub taken: Option<TablesTaken>,
}

/// The repository the net writes to.
pub enum Repo<'a> {
    /// Opened by the caller, who holds a lock on it.
    Open(&'a Repository),
    /// Opened and locked on first use, so that a run none of whose changes
    /// needs a snapshot never opens it. The name is the command's, for the
    /// lock.
    Lazy(Option<Box<(Repository, LockGuard)>>, &'static str),
}

/// Forwards the targets' warnings to the terminal.
struct Warnings<'a>(&'a Ctx);

impl Progress for Warnings<'_> {
    fn warn(&self, message: String) {
        self.0.warn(message);
    }
}

fn net_error(message: impl Into<String>, hint: Option<&str>) -> ripcord_migrate::Error {
    ripcord_migrate::Error::SafetyNet {
        message: message.into(),
        hint: hint.map(str::to_owned),
    }
}

/// An error below the migration crate, with its cause chain, as a net error.
/// Its hint (what to do about it) is kept.
fn wrap(context: &str, e: impl Into<Error>) -> ripcord_migrate::Error {
    let e = e.into();
    net_error(format!("{context}: {}", e.chain()), e.hint().as_deref())
}

impl RepoNet<'_> {
    fn repo(&mut self) -> ripcord_migrate::Result<&Repository> {
        let ctx = self.ctx;
        match &mut self.repo {
            Repo::Open(repo) => Ok(repo),
            Repo::Lazy(slot, command) => {
                if slot.is_none() {
                    let repo = ctx.open_repo().map_err(|e| repo_error(&e))?;
                    let lock = ctx
                        .lock(&repo, false, command)
                        .map_err(|e| repo_error(&e))?;
                    *slot = Some(Box::new((repo, lock)));
                }
                Ok(&slot.as_ref().expect("opened above").0)
            }
        }
    }

    fn config(&self) -> ripcord_migrate::Result<&TargetConfig> {
        self.ctx
            .config
            .target(&self.target)
            .map_err(|e| wrap("the migration target", e))
    }

    fn policy_for(&self, table: &str) -> OnConflict {
        self.policy.unwrap_or_else(|| {
            self.ctx
                .config
                .migrations
                .as_ref()
                .map_or(OnConflict::default(), |m| m.on_conflict_for(table))
        })
    }

    /// Bytes a snapshot of `tables` may need, before compression.
    fn estimate(&self, tables: Option<&BTreeSet<TableName>>) -> crate::Result<u64> {
        Ok(match self.config()? {
            TargetConfig::Sqlite { path, .. } => std::fs::metadata(path).map_or(0, |m| m.len()),
            TargetConfig::Postgres { url, .. } => {
                let mut client = postgres::Target::parse(url)?.connect()?;
                let bytes: i64 = match tables {
                    None => client
                        .query_one("SELECT pg_database_size(current_database())", &[])?
                        .get(0),
                    Some(tables) => {
                        let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
                        client
                            .query_one(
                                // Partitions and inheritance children are taken too.
                                "WITH RECURSIVE tree(rel) AS (
                                     SELECT to_regclass(n)::oid FROM unnest($1::text[]) AS n
                                   UNION
                                     SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.rel)
                                 SELECT coalesce(sum(pg_total_relation_size(rel)), 0)::bigint FROM tree
                                 WHERE rel IS NOT NULL",
                                &[&names],
                            )?
                            .get(0)
                    }
                };
                bytes.max(0) as u64
            }
            TargetConfig::Dir { .. } => 0,
        })
    }
}

/// The repository cannot be used. Its error keeps its class, so `migrate`
/// exits as every other command does: a missing repository or a wrong
/// passphrase is a configuration error (2), a locked or damaged one is
/// refused (3), an I/O error failed (1).
fn repo_error(e: &Error) -> ripcord_migrate::Error {
    let message = format!(
        "pre-flight: the repository for safety snapshots cannot be used: {}",
        e.chain()
    );
    let hint = e.hint().unwrap_or_else(|| {
        "check [repository] in ripcord.toml and the passphrase (RIPCORD_PASSWORD); \
         `ripcord init` creates a repository"
            .into()
    });
    match e.class() {
        Class::Usage => ripcord_migrate::Error::Config { message, hint },
        Class::Refused => ripcord_migrate::Error::Refused { message, hint },
        Class::Failed | Class::Inconclusive => ripcord_migrate::Error::SafetyNet {
            message,
            hint: Some(hint),
        },
    }
}

/// Touched tables that cannot be protected, refused: nothing has changed.
fn refused_unprotected(tables: &[(String, String, String)]) -> ripcord_migrate::Error {
    let mut fixes: Vec<&str> = Vec::new();
    for (_, _, fix) in tables {
        if !fixes.contains(&fix.as_str()) {
            fixes.push(fix);
        }
    }
    ripcord_migrate::Error::Refused {
        message: format!(
            "the safety snapshot cannot protect {}; nothing was changed",
            tables
                .iter()
                .map(|(t, why, _)| format!("{t} ({why})"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        hint: format!(
            "{}; or pass --allow-unprotected to apply the changes without protecting them",
            fixes.join("; ")
        ),
    }
}

/// Free bytes on the file system holding `path`.
fn free_space(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

impl SafetyNet for RepoNet<'_> {
    fn preflight(&mut self, tables: Option<&BTreeSet<TableName>>) -> ripcord_migrate::Result<()> {
        self.repo()?;
        if let TargetConfig::Postgres { url, .. } = self.config()? {
            let names: Option<Vec<String>> =
                tables.map(|t| t.iter().map(|t| t.to_string()).collect());
            let unprotected = postgres::unprotected(url, names.as_deref())
                .map_err(|e| wrap("pre-flight: checking the touched tables", e))?;
            if !unprotected.is_empty() && !self.allow_unprotected {
                return Err(refused_unprotected(&unprotected));
            }
        }
        let need = self
            .estimate(tables)
            .map_err(|e| wrap("pre-flight: cannot size the safety snapshot", e))?;
        let url = self
            .ctx
            .config
            .repository_url()
            .map_err(|e| wrap("pre-flight", e))?;
        // Object storage has no free-space figure to check against.
        let root = ripcord_repo::backend::local_root(url).ok();
        if let Some((root, free)) = root.and_then(|r| free_space(&r).map(|f| (r, f))) {
            if free < need {
                return Err(ripcord_migrate::Error::Refused {
                    message: format!(
                        "pre-flight: the safety snapshots may need up to {} and the repository's \
                         file system has {} free",
                        bytes(need),
                        bytes(free)
                    ),
                    hint: format!("free space under {}, then run again", root.display()),
                });
            }
        }
        Ok(())
    }

    fn check(&mut self, needed: &[(&str, &str)]) -> ripcord_migrate::Result<Vec<Unusable>> {
        let kind = self.config()?.kind();
        let target = self.target.clone();
        let repo = self.repo()?.clone();
        let index = repo
            .load_index()
            .map_err(|e| wrap("pre-flight: read the repository index", e))?;
        let mut unusable = Vec::new();
        for (change, snapshot) in needed {
            let reason = match repo.find_snapshot(snapshot) {
                Err(ripcord_repo::Error::SnapshotNotFound { .. }) => Some(
                    "is not in the repository (it was forgotten, or this is another repository)"
                        .to_string(),
                ),
                Err(e) => Some(format!("cannot be read: {e}")),
                Ok((_, snap)) => match snap.targets.first() {
                    None => Some("holds no target".into()),
                    Some(t) if t.content.kind() != kind => Some(format!(
                        "holds a {} target, not the {kind} database {target}",
                        t.content.kind()
                    )),
                    Some(t) => {
                        let missing = ripcord_repo::walk::missing(&repo, &index, t)
                            .map_err(|e| wrap("pre-flight: check the safety snapshots", e))?;
                        (!missing.is_empty()).then(|| {
                            format!(
                                "is damaged: {}, first: {}",
                                crate::report::counted(missing.len() as u64, "problem"),
                                missing[0]
                            )
                        })
                    }
                },
            };
            if let Some(reason) = reason {
                unusable.push(Unusable {
                    change: change.to_string(),
                    snapshot: snapshot.to_string(),
                    reason,
                });
            }
        }
        Ok(unusable)
    }

    fn snapshot(
        &mut self,
        change: &str,
        tables: Option<&BTreeSet<TableName>>,
    ) -> ripcord_migrate::Result<String> {
        let is_sqlite = matches!(self.config()?, TargetConfig::Sqlite { .. });
        let opts = TakeOptions {
            // A SQLite snapshot is the whole file, which is cheap.
            tables: tables
                .filter(|_| !is_sqlite)
                .map(|t| t.iter().map(|t| t.to_string()).collect()),
            jobs: 0,
            skip_missing: true,
            allow_unprotected: self.allow_unprotected,
        };
        let tags = ["safety".to_string(), format!("migrate:{change}")];
        let ctx = self.ctx;
        let target = self.target.clone();
        let repo = self.repo()?;
        let result = take_with(ctx, repo, std::slice::from_ref(&target), &tags, None, &opts)
            .map_err(|e| match e {
                Error::Targets(ripcord_targets::Error::Unprotected { tables, .. }) => {
                    refused_unprotected(&tables)
                }
                e => wrap(&format!("safety snapshot before {change}"), e),
            })?;
        for u in &result.unprotected {
            ctx.warn(format!(
                "{change}: {u}; the safety snapshot does not protect it (--allow-unprotected)"
            ));
        }
        self.unprotected = result.unprotected;
        self.taken = Some(TablesTaken {
            read: result.tables_read,
            reused: result.tables_reused,
        });
        Ok(result.id.to_string())
    }

    fn unprotected(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unprotected)
    }

    fn tables_taken(&mut self) -> Option<TablesTaken> {
        self.taken.take()
    }

    fn fingerprint(
        &mut self,
        conn: Conn<'_>,
        change: &str,
        tables: &[Watched],
    ) -> ripcord_migrate::Result<()> {
        let context = format!("recording the post-change fingerprint of {change}");
        match conn {
            Conn::Postgres(client) => {
                let watched: Vec<(u32, &str)> =
                    tables.iter().map(|t| (t.oid, t.log.as_str())).collect();
                postgres::fingerprint::record(client, change, &watched)
                    .map_err(|e| wrap(&context, e))?;
            }
            Conn::Sqlite(conn) => {
                let watched: Vec<(&str, &str)> = tables
                    .iter()
                    .map(|t| (t.name.as_str(), t.log.as_str()))
                    .collect();
                sqlite_fingerprint::record(conn, change, &watched)
                    .map_err(|e| wrap(&context, e))?;
            }
        }
        Ok(())
    }

    fn revert(
        &mut self,
        conn: Conn<'_>,
        snapshot: &str,
        tables: Option<&BTreeSet<TableName>>,
        change: &str,
    ) -> ripcord_migrate::Result<Vec<TableRevert>> {
        let repo = self.repo()?.clone();
        let (_, snap) = repo.find_snapshot(snapshot).map_err(|e| {
            net_error(
                format!("safety snapshot {snapshot} of {change}: {e}"),
                Some(
                    "it may have been forgotten; restore an older snapshot with `ripcord restore`",
                ),
            )
        })?;
        let taken = snap
            .targets
            .first()
            .ok_or_else(|| net_error(format!("safety snapshot {snapshot} is empty"), None))?;
        let index = repo
            .load_index()
            .map_err(|e| wrap("read the repository index", e))?;
        let progress = Warnings(self.ctx);
        match (&taken.content, conn) {
            (Content::Postgres(pg), Conn::Postgres(client)) => {
                let selected: Vec<RevertTable> = pg
                    .tables
                    .iter()
                    .filter(|t| t.schema != "ripcord")
                    .filter(|t| {
                        tables.is_none_or(|wanted| {
                            // Unqualified: the one of that name the snapshot
                            // holds, which was resolved when it was taken.
                            wanted.iter().any(|w| {
                                w.name == t.name
                                    && w.schema.as_deref().is_none_or(|s| s == t.schema)
                            })
                        })
                    })
                    .map(|t| RevertTable {
                        table: t,
                        policy: self.policy_for(&t.qualified()),
                    })
                    .collect();
                let mut reverted = postgres::revert_tables(
                    &repo, &index, pg, client, &selected, change, &progress,
                )
                .map_err(|e| wrap(&format!("putting back the tables of {change}"), e))?;
                // Reports name tables so that the text is exact: quoted
                // where SQL needs it.
                for r in &mut reverted {
                    if let Some(t) = selected.iter().find(|s| s.table.qualified() == r.table) {
                        r.table = Shown(Some(&t.table.schema), &t.table.name).to_string();
                    }
                }
                Ok(reverted)
            }
            (
                Content::Sqlite {
                    image,
                    tables: stats,
                    ..
                },
                Conn::Sqlite(conn),
            ) => {
                let selected: Vec<(String, OnConflict)> = stats
                    .iter()
                    .filter(|t| !t.name.starts_with("ripcord_") && !t.name.starts_with("sqlite_"))
                    .filter(|t| tables.is_none_or(|wanted| wanted.iter().any(|w| w.name == t.name)))
                    .map(|t| (t.name.clone(), self.policy_for(&t.name)))
                    .collect();
                sqlite_revert::revert_tables(
                    &repo, &index, image, stats, conn, &selected, change, &progress,
                )
                .map_err(|e| wrap(&format!("putting back the tables of {change}"), e))
            }
            (content, _) => Err(net_error(
                format!(
                    "safety snapshot {snapshot} holds a {} target, not this database",
                    content.kind()
                ),
                None,
            )),
        }
    }
}
