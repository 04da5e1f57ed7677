//! What every command needs: configuration, passphrase, repository, lock.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use ripcord_core::config::Config;
use ripcord_repo::backend::{Backend, LocalBackend};
use ripcord_repo::lock::LockGuard;
use ripcord_repo::Repository;
use zeroize::Zeroizing;

pub struct Ctx {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
}

impl Ctx {
    pub fn load(config_path: Option<PathBuf>, json: bool, quiet: bool) -> Result<Ctx> {
        let config = Config::discover(config_path.as_deref())?;
        Ok(Ctx {
            config,
            config_path,
            json,
            quiet,
        })
    }

    /// Prints progress text unless --quiet or --json.
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.json {
            println!("{}", text.as_ref());
        }
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        if !self.quiet {
            eprintln!(
                "{} {}",
                console::style("warning:").yellow().for_stderr(),
                text.as_ref()
            );
        }
    }

    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        let url = self.config.repository_url()?;
        if let Some((scheme, _)) = url.split_once("://") {
            if scheme != "file" {
                return Err(crate::usage(
                    format!("repository url {url:?} uses the unsupported scheme {scheme:?}"),
                    "use a local path or a file:// URL",
                ));
            }
        }
        Ok(Arc::new(LocalBackend::from_url(url)))
    }

    /// The passphrase: RIPCORD_PASSWORD, else password_command, else a prompt
    /// on a terminal. `None` when none of them is available.
    pub fn passphrase(&self, prompt: &str) -> Result<Option<Zeroizing<String>>> {
        if let Ok(p) = std::env::var("RIPCORD_PASSWORD") {
            return Ok(Some(Zeroizing::new(p)));
        }
        if let Some(cmd) = &self.config.repository.password_command {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stderr(std::process::Stdio::inherit())
                .output()
                .with_context(|| format!("cannot run password_command {cmd:?}"))?;
            if !out.status.success() {
                return Err(crate::usage(
                    format!("password_command {cmd:?} failed with {}", out.status),
                    "fix the command in [repository] password_command, or set RIPCORD_PASSWORD",
                ));
            }
            let text = String::from_utf8(out.stdout).map_err(|_| {
                crate::usage(
                    "password_command printed something that is not UTF-8",
                    "print the passphrase as text",
                )
            })?;
            return Ok(Some(Zeroizing::new(
                text.trim_end_matches(['\n', '\r']).to_string(),
            )));
        }
        if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            let p = rpassword::prompt_password(prompt).context("cannot read the passphrase")?;
            return Ok(Some(Zeroizing::new(p)));
        }
        Ok(None)
    }

    pub fn open_repo(&self) -> Result<Repository> {
        let backend = self.backend()?;
        // An unencrypted repository is not worth a prompt; but a configured
        // passphrase is still passed, and refused, as it means the
        // repository was meant to be encrypted.
        let configured = std::env::var_os("RIPCORD_PASSWORD").is_some()
            || self.config.repository.password_command.is_some();
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
        let (found, damaged) = repo.find_snapshot_noting(prefix)?;
        for d in &damaged {
            self.warn(d.warning());
        }
        Ok(found)
    }

    pub fn lock(&self, repo: &Repository, exclusive: bool, command: &str) -> Result<LockGuard> {
        let quiet = self.quiet;
        Ok(LockGuard::acquire(repo, exclusive, command, &|msg| {
            if !quiet {
                eprintln!("{} {msg}", console::style("warning:").yellow().for_stderr());
            }
        })?)
    }
}
