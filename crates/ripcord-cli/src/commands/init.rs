//! `ripcord init`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use ripcord_core::config::{Config, FILE_NAME};
use ripcord_repo::backend::LocalBackend;
use ripcord_repo::Repository;

use crate::cli::InitArgs;
use crate::ctx::Ctx;

pub const TEMPLATE: &str = r#"# ripcord configuration. Every key can be overridden from the environment:
# RIPCORD_A__B=value sets a.b (for example RIPCORD_SNAPSHOT__COMPRESSION=3).

[repository]
# A local folder (or file:// URL). Relative paths are relative to this file.
url = "{url}"
# The passphrase comes from RIPCORD_PASSWORD, or from this command's output.
# It is never stored in this file.
# password_command = "cat /run/secrets/ripcord"
# How long the command may run before it is stopped.
# password_command_timeout = "30s"

[snapshot]
# zstd level for new data (1 is fast; higher compresses more and costs CPU).
compression = 1
# Compression and encryption threads; 0 means one per core, at most 256.
jobs = 0

# Targets are what ripcord protects. Name them (letters, digits, - and _);
# `ripcord snapshot NAME` uses the name. Unknown keys are errors.
#
# [targets.config]
# kind = "dir"
# path = "/etc/app"
# exclude = ["*.tmp", "cache/**"]
#
# [targets.app]
# kind = "sqlite"
# path = "/var/lib/app/app.db"
# create = true                 # only if `migrate up` should create a missing file

# Tiers group snapshots with a schedule and a retention policy: `ripcord schedule run` (every
# minute, from `ripcord schedule install --systemd` or --cron) takes a snapshot when the newest
# is older than `every`, then applies `keep`, as `ripcord forget --tier daily` does.
#
# [tiers.daily]
# every = "24h"
# max_age = "26h"              # `ripcord check` fails when the newest daily snapshot is older
# targets = ["app"]            # default: every target
# keep = { daily = 30 }        # also last, hourly, weekly, monthly, yearly, within, tags = ["pre-deploy"]
#
# A geo tier copies the newest snapshots to another repository with its own passphrase.
#
# [tiers.geo]
# repository = "/mnt/offsite/ripcord"   # or s3://bucket/prefix; create it with `ripcord init --repository`
# password_command = "cat /run/secrets/ripcord-offsite"   # else RIPCORD_TO_PASSWORD
# every = "24h"
# keep = { daily = 14 }        # applied in the geo repository

# Safety snapshots (tagged `safety`, taken by in-place restores and migrations) are kept apart
# from yours, by this policy; a migration's safety snapshot also stays while its change is applied.
#
# [safety.keep]
# last = 5                      # the default: the 5 newest of each target,
# within = "14d"                # and every one within 14 days of the newest

# Migrations: `ripcord migrate plan|status|lint|up|down|rehearse` and `ripcord rollback`.
# The format of `dir` (native, sqitch, Flyway, golang-migrate, dbmate, timestamped) is detected.
#
# [migrations]
# target = "app"                # a postgres or sqlite target
# dir = "migrations"
# on_conflict = "keep-new"      # rows written since a change, when it is reverted from its
#                               # safety snapshot: snapshot | keep-new | review
# snapshot = "needed"           # needed | always
# timeout = "10m"               # how long one change may run before it is stopped and undone
#
# [migrations.tables.payments]
# on_conflict = "review"
"#;

pub fn run(config: Option<PathBuf>, json: bool, quiet: bool, args: &InitArgs) -> Result<()> {
    if args.print_config {
        print!("{}", TEMPLATE.replace("{url}", "ripcord-repo"));
        return Ok(());
    }
    let path = config.clone().unwrap_or_else(|| PathBuf::from(FILE_NAME));
    let existing = path.exists();
    let mut cfg = if existing {
        Config::discover(Some(&path))?
    } else {
        Config::discover(None).unwrap_or_default()
    };
    if let Some(url) = &args.repository {
        cfg.repository.url = Some(url.clone());
    }
    let written_url = cfg
        .repository
        .url
        .clone()
        .unwrap_or_else(|| "ripcord-repo".into());
    if cfg.repository.url.is_none() {
        let base = std::path::absolute(&path)?
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        cfg.repository.url = Some(base.join(&written_url).display().to_string());
    }
    let ctx = Ctx::new(cfg, config, json, quiet);
    let backend = ctx.backend()?;
    let pass = if args.insecure_no_encryption {
        None
    } else {
        Some(ctx.passphrase("new repository passphrase: ")?.ok_or_else(|| {
            crate::usage(
                "a new repository needs a passphrase",
                "set RIPCORD_PASSWORD or [repository] password_command, or pass --insecure-no-encryption",
            )
        })?)
    };
    if let Some(p) = &pass {
        ripcord_core::password::check_new(p)?;
    }
    if args.dry_run {
        if backend.exists("config").unwrap_or(false) {
            return Err(ripcord_repo::Error::AlreadyExists {
                location: backend.location(),
            }
            .into());
        }
        if json {
            crate::output::print_json(&ripcord_ops::json::InitOutput {
                dry_run: true,
                repository: backend.location(),
                repository_id: None,
                encrypted: pass.is_some(),
                config_written: (!existing).then(|| path.display().to_string()),
            });
            return Ok(());
        }
        if !existing {
            ctx.say(format!("would write {}", path.display()));
        }
        ctx.say(format!(
            "dry run: would create an {} repository at {}; nothing was changed",
            if pass.is_some() {
                "encrypted"
            } else {
                "UNENCRYPTED"
            },
            backend.location()
        ));
        return Ok(());
    }
    let local = ctx
        .config
        .repository_url()
        .ok()
        .filter(|u| !u.starts_with("s3://"));
    if let Some(local) = local.map(LocalBackend::from_url) {
        std::fs::create_dir_all(local.root())
            .with_context(|| format!("cannot create {}", local.root().display()))?;
    }
    let repo = Repository::init(backend as Arc<_>, pass.as_ref().map(|p| p.as_str()))?;
    if !existing {
        std::fs::write(&path, TEMPLATE.replace("{url}", &written_url))
            .with_context(|| format!("cannot write {}", path.display()))?;
        ctx.say(format!("wrote {}", path.display()));
    }
    if json {
        crate::output::print_json(&ripcord_ops::json::InitOutput {
            dry_run: false,
            repository: repo.location().to_string(),
            repository_id: Some(repo.config().id),
            encrypted: repo.keys().is_encrypted(),
            config_written: (!existing).then(|| path.display().to_string()),
        });
    }
    ctx.say(format!(
        "created {} repository {} at {}",
        if repo.keys().is_encrypted() {
            "encrypted"
        } else {
            "UNENCRYPTED"
        },
        repo.config().id.short(),
        repo.location()
    ));
    if repo.keys().is_encrypted() {
        ctx.say("keep the passphrase safe: the repository cannot be opened without it");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TEMPLATE;

    /// Every commented example in the template is a valid key: with the
    /// strict configuration, an example that is not would fail for whoever
    /// uncomments it.
    #[test]
    fn uncommented_template_is_a_valid_configuration() {
        let text: String = TEMPLATE
            .replace("{url}", "/tmp/repo")
            .lines()
            .map(|line| {
                let example = line.strip_prefix("# ").filter(|rest| {
                    rest.starts_with('[')
                        || rest.split_once(" = ").is_some_and(|(k, _)| {
                            k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        })
                });
                example.unwrap_or(line).to_string() + "\n"
            })
            .collect();
        assert!(text.contains("\n[targets.app]\n"), "{text}");
        ripcord_core::config::Config::from_toml_str(&text, None, &[])
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}
