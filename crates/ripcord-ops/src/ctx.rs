//! What every operation needs: configuration, passphrase, repository, lock,
//! and the [`Reporter`] that hears about it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ripcord_catalog::Catalog;
use ripcord_core::config::Config;
use ripcord_repo::backend::{Backend, LocalBackend};
use ripcord_repo::lock::LockGuard;
use ripcord_repo::s3::{S3Backend, S3Options};
use ripcord_repo::Repository;
use zeroize::Zeroizing;

use crate::report::{self, Bar, Reporter};
use crate::{Context as _, Error, Result};

/// RIPCORD_PASSWORD, RIPCORD_NEW_PASSWORD and RIPCORD_TO_PASSWORD (the
/// destination of `copy`), taken out of the environment when the process
/// starts, so that no child process (pg_dump, psql,
/// password_command, hooks) can inherit them.
static SECRET_ENV: OnceLock<[Option<Zeroizing<String>>; 3]> = OnceLock::new();

/// Moves the passphrase variables from the environment into memory. A
/// program calls it first thing, before any thread starts (changing the
/// environment is only sound while the process has one thread).
pub fn take_secret_env() {
    SECRET_ENV.get_or_init(|| {
        ripcord_targets::postgres::redact::SECRET_VARS
            .iter()
            .map(|var| {
                let value = std::env::var(var).ok().map(Zeroizing::new);
                std::env::remove_var(var);
                value
            })
            .collect::<Vec<_>>()
            .try_into()
            .expect("three secret variables")
    });
}

/// The value `RIPCORD_PASSWORD` (0), `RIPCORD_NEW_PASSWORD` (1) or
/// `RIPCORD_TO_PASSWORD` (2) had.
pub fn secret_env(which: usize) -> Option<Zeroizing<String>> {
    take_secret_env();
    SECRET_ENV.get().and_then(|v| v[which].clone())
}

#[derive(Clone)]
pub struct Ctx {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub reporter: Arc<dyn Reporter>,
    /// Who acts, as runs and the audit name them; `None` is `user@host`.
    /// The server sets the name of the token a request came with.
    pub actor: Option<String>,
    /// The repository once opened, for a long-lived front end (the server):
    /// opening derives the key from the passphrase, which is slow on purpose.
    opened: Option<Arc<std::sync::Mutex<Option<Repository>>>>,
}

impl Ctx {
    pub fn new(config: Config, config_path: Option<PathBuf>, reporter: Arc<dyn Reporter>) -> Ctx {
        Ctx {
            config,
            config_path,
            reporter,
            actor: None,
            opened: None,
        }
    }

    /// The same configuration, opening the repository once and reusing it.
    /// A `Repository` holds only its backend, keys and configuration, which
    /// do not change while it is open, so a reused one reads what is there now.
    pub fn keeping_repository_open(&self) -> Ctx {
        Ctx {
            opened: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// The configuration at `config_path`, or the one found from the working folder.
    pub fn load(config_path: Option<PathBuf>, reporter: Arc<dyn Reporter>) -> Result<Ctx> {
        let config = Config::discover(config_path.as_deref())?;
        Ok(Ctx::new(config, config_path, reporter))
    }

    /// The same configuration, reported to `reporter`.
    pub fn with_reporter(&self, reporter: Arc<dyn Reporter>) -> Ctx {
        Ctx {
            reporter,
            ..self.clone()
        }
    }

    /// The same configuration, acting as `actor` in runs and the audit.
    pub fn acting_as(&self, actor: &str) -> Ctx {
        Ctx {
            actor: Some(actor.to_string()),
            ..self.clone()
        }
    }

    /// Who acts: the front end's name for it, else `user@host`.
    pub fn actor(&self) -> String {
        self.actor.clone().unwrap_or_else(crate::migrate::actor)
    }

    pub fn say(&self, text: impl AsRef<str>) {
        self.reporter.say(text.as_ref());
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        // Whatever a warning quotes, a database password never shows.
        self.reporter
            .warn(&ripcord_targets::postgres::redact(text.as_ref()));
    }

    /// A progress bar of the reporter.
    pub fn bar(&self, total: Option<u64>, message: &str) -> Bar {
        report::bar(&*self.reporter, total, message)
    }

    /// Where the catalog is: `[catalog] url`, else its file.
    pub fn catalog_location(&self) -> ripcord_catalog::Location {
        ripcord_catalog::Location::from_config(&self.config)
    }

    /// Opens the catalog the configuration names, creating it if missing.
    pub fn catalog(&self) -> ripcord_catalog::Result<Box<dyn Catalog + Send>> {
        ripcord_catalog::open(&self.catalog_location())
    }

    /// Opens the catalog if it exists (a PostgreSQL one always does), for
    /// commands that only consult it.
    pub fn catalog_if_exists(&self) -> ripcord_catalog::Result<Option<Box<dyn Catalog + Send>>> {
        ripcord_catalog::open_existing(&self.catalog_location())
    }

    /// The configured repository's backend.
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        self.backend_at(self.config.repository_url()?)
    }

    /// The storage a repository location names: a local path, a `file://`
    /// URL, or `s3://bucket/prefix` (reached with `[repository.s3]`, and
    /// contacted once here so that bad settings fail before anything runs).
    /// The one place a kind of backend is chosen, for the configured
    /// repository and for others (the destination of `copy`).
    pub fn backend_at(&self, url: &str) -> Result<Arc<dyn Backend>> {
        if url.starts_with("s3://") {
            let s3 = &self.config.repository.s3;
            let opts = S3Options {
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                access_key_id: s3.access_key_id.clone(),
                secret_access_key: s3.secret_access_key.clone(),
                path_style: s3.path_style,
                retries: s3.retries,
                retry_timeout: s3
                    .retry_timeout
                    .as_deref()
                    .and_then(|t| ripcord_core::duration::parse(t).ok()),
            };
            let backend = S3Backend::new(url, &opts).map_err(|why| {
                Error::usage(
                    format!("repository url {url:?}: {why}"),
                    "see [repository.s3] in docs/operations.md",
                )
            })?;
            backend.check().map_err(|e| {
                ripcord_repo::Error::io(format!("cannot reach the repository at {url}"), e)
            })?;
            return Ok(Arc::new(backend));
        }
        let root = ripcord_repo::backend::local_root(url).map_err(|why| {
            Error::usage(
                format!("repository url {url:?}: {why}"),
                "use a local path, a file:// URL or s3://bucket/prefix",
            )
        })?;
        Ok(Arc::new(LocalBackend::new(root)))
    }

    /// The passphrase: RIPCORD_PASSWORD, else password_command, else a prompt
    /// on a terminal. `None` when none of them is available.
    pub fn passphrase(&self, prompt: &str) -> Result<Option<Zeroizing<String>>> {
        if let Some(p) = secret_env(0) {
            return Ok(Some(p));
        }
        if let Some(cmd) = &self.config.repository.password_command {
            let timeout = self.config.repository.password_timeout();
            return Ok(Some(ripcord_core::password::from_command(cmd, timeout)?));
        }
        let asked = self
            .reporter
            .passphrase(prompt)
            .context("cannot read the passphrase")?;
        Ok(asked.map(Zeroizing::new))
    }

    pub fn open_repo(&self) -> Result<Repository> {
        let Some(opened) = &self.opened else {
            return self.open_repo_now();
        };
        let mut slot = opened.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(repo) = &*slot {
            return Ok(repo.clone());
        }
        let repo = self.open_repo_now()?;
        *slot = Some(repo.clone());
        Ok(repo)
    }

    fn open_repo_now(&self) -> Result<Repository> {
        let backend = self.backend()?;
        // An unencrypted repository is not worth a prompt; but a configured
        // passphrase is still passed, and refused, as it means the
        // repository was meant to be encrypted.
        let configured =
            secret_env(0).is_some() || self.config.repository.password_command.is_some();
        let pass = if configured || Repository::is_encrypted_at(&*backend)? {
            self.passphrase("repository passphrase: ")?
        } else {
            None
        };
        Ok(Repository::open(
            backend,
            pass.as_ref().map(|p| p.as_str()),
        )?)
    }

    /// Resolves a snapshot id (or `latest`), warning about damaged
    /// manifests `latest` skipped.
    pub fn find_snapshot(
        &self,
        repo: &Repository,
        prefix: &str,
    ) -> Result<(ripcord_repo::Id, ripcord_repo::manifest::Snapshot)> {
        self.find_snapshot_holding(repo, prefix, &[])
    }

    /// Finds a snapshot; `latest` and `latest:TAG` mean the newest one that
    /// holds every target of `targets`.
    pub fn find_snapshot_holding(
        &self,
        repo: &Repository,
        prefix: &str,
        targets: &[String],
    ) -> Result<(ripcord_repo::Id, ripcord_repo::manifest::Snapshot)> {
        let (found, damaged) =
            repo.find_snapshot_where(prefix, |s| targets.iter().all(|t| s.target(t).is_some()))?;
        for d in &damaged {
            self.warn(d.warning());
        }
        Ok(found)
    }

    pub fn lock(&self, repo: &Repository, exclusive: bool, command: &str) -> Result<LockGuard> {
        let reporter = &self.reporter;
        Ok(LockGuard::acquire(repo, exclusive, command, &|msg| {
            reporter.warn(&msg)
        })?)
    }
}
