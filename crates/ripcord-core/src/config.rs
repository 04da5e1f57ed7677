//! `ripcord.toml`: discovery, parsing and `RIPCORD_*` environment overrides.
//!
//! The file is found at `--config`, else `$RIPCORD_CONFIG`, else `./ripcord.toml`.
//! Any key can be overridden from the environment: `RIPCORD_A__B__C=value` sets
//! `a.b.c` (double underscores separate levels, names are lower-cased). Two
//! short aliases exist because they are used most: `RIPCORD_REPOSITORY` for
//! `repository.url` and `RIPCORD_PASSWORD_COMMAND` for
//! `repository.password_command`. The passphrase itself (`RIPCORD_PASSWORD`) is
//! never part of the configuration.
//!
//! Relative paths in the file are relative to its folder; relative paths in
//! environment values are relative to the working directory. An error that
//! an environment value causes names the variable, not the file.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::names::InvalidName;
use crate::{Class, Classify};

pub mod guard;
mod keys;
pub mod runbook;

pub use runbook::{CatalogConfig, NotifyConfig, ObjectivesConfig, RunbookConfig};

pub const FILE_NAME: &str = "ripcord.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration file: {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("{path} is a directory, not a configuration file")]
    IsDirectory { path: PathBuf },
    #[error("{origin}: {message}")]
    UnknownKey {
        origin: String,
        message: String,
        hint: String,
    },
    #[error("{path}: {source}")]
    TargetName { path: PathBuf, source: InvalidName },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment variable {var} is not valid: {message}")]
    Env { var: String, message: String },
    #[error("no repository configured")]
    NoRepository,
    #[error("unknown target {name:?}{near}; configured targets: {known}")]
    UnknownTarget {
        name: String,
        /// `; did you mean "NAME"?`, or empty.
        near: String,
        known: String,
    },
}

impl Classify for ConfigError {
    fn class(&self) -> Class {
        match self {
            ConfigError::Read { .. } => Class::Failed,
            _ => Class::Usage,
        }
    }
    fn hint(&self) -> Option<String> {
        Some(
            match self {
                ConfigError::UnknownKey { hint, .. } => return Some(hint.clone()),
                ConfigError::IsDirectory { path } => {
                    return Some(format!(
                        "pass the file itself, e.g. --config {}",
                        path.join(FILE_NAME).display()
                    ))
                }
                ConfigError::TargetName { .. } => {
                    "rename the [targets.NAME] section: names are used as folder names by `restore --into`"
                }
                ConfigError::NotFound { .. } => {
                    "run `ripcord init` to write one, or pass --config PATH / set RIPCORD_CONFIG"
                }
                ConfigError::Read { .. } => "check the file's permissions",
                ConfigError::Invalid { .. } => {
                    "fix the file; `ripcord init --print-config` shows a commented example"
                }
                ConfigError::Env { .. } => "unset the variable or give it a valid value",
                ConfigError::NoRepository => {
                    "set [repository] url in ripcord.toml or RIPCORD_REPOSITORY"
                }
                ConfigError::UnknownTarget { .. } => {
                    "add it under [targets.NAME] in ripcord.toml or use one of the configured names"
                }
            }
            .to_string(),
        )
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub repository: RepositoryConfig,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    #[serde(default)]
    pub tiers: BTreeMap<String, TierConfig>,
    /// `[migrations]`: where the plan lives and which database it migrates.
    #[serde(default)]
    pub migrations: Option<MigrationsConfig>,
    /// `[safety]`: how long `forget` keeps safety snapshots.
    #[serde(default)]
    pub safety: SafetyConfig,
    /// `[objectives]`: the RTO and RPO runs are measured against.
    #[serde(default)]
    pub objectives: ObjectivesConfig,
    /// `[notify.NAME]`: webhooks for runs.
    #[serde(default)]
    pub notify: BTreeMap<String, NotifyConfig>,
    /// `[runbooks.LEVEL]`: recovery levels as written.
    #[serde(default)]
    pub runbooks: BTreeMap<String, RunbookConfig>,
    /// `[catalog]`: where ripcord keeps its own state.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// `[guard]`: probes and rules as written.
    #[serde(default)]
    pub guard: guard::GuardConfig,
    /// The guard's probes and rules, read and checked when the file was loaded.
    #[serde(skip)]
    pub guard_spec: guard::Guard,
    /// The runbooks' steps, read and checked when the file was loaded.
    #[serde(skip)]
    pub levels: BTreeMap<String, Vec<runbook::Step>>,
    /// Where the file was read from; relative paths in it are resolved against its folder.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// `file:///path`, a plain path, or `s3://bucket/prefix`.
    pub url: Option<String>,
    /// A shell command whose standard output is the passphrase.
    pub password_command: Option<String>,
    /// How long `password_command` may run, e.g. `30s` (the default).
    pub password_command_timeout: Option<String>,
    /// `[repository.s3]`: how to reach an `s3://` repository. Anything left
    /// out comes from the standard AWS environment variables.
    #[serde(default)]
    pub s3: S3Config,
}

/// `[repository.s3]`. Keys left out fall back to `AWS_ENDPOINT_URL`,
/// `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The server, e.g. `http://127.0.0.1:3900`; AWS itself when unset.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`;
    /// most self-hosted servers (Garage, MinIO) want it.
    #[serde(default)]
    pub path_style: bool,
    /// How many times a transient error (a 5xx, a dropped connection) is
    /// retried with backoff before the command fails. Default 8.
    pub retries: Option<usize>,
    /// How long one request keeps retrying, e.g. `2m` (the default).
    pub retry_timeout: Option<String>,
}

impl RepositoryConfig {
    /// `password_command_timeout`, checked when the configuration was loaded.
    pub fn password_timeout(&self) -> Duration {
        self.password_command_timeout
            .as_deref()
            .and_then(|t| crate::duration::parse(t).ok())
            .unwrap_or(crate::password::DEFAULT_TIMEOUT)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TargetConfig {
    Dir {
        path: PathBuf,
        #[serde(default)]
        exclude: Vec<String>,
    },
    Sqlite {
        path: PathBuf,
        /// Create the database file when it does not exist (for `migrate up`
        /// on a new database). Without it, a missing file is an error: a
        /// mistyped path must not become a new, empty database.
        #[serde(default)]
        create: bool,
    },
    Postgres {
        url: String,
        /// Tables larger than this many MiB are copied as parallel block ranges.
        #[serde(default)]
        split_mb: Option<u64>,
    },
}

impl TargetConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Dir { .. } => "dir",
            TargetConfig::Sqlite { .. } => "sqlite",
            TargetConfig::Postgres { .. } => "postgres",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// zstd level for new blobs.
    #[serde(default = "default_compression")]
    pub compression: i32,
    /// Worker threads for compression and encryption; 0 means one per core.
    #[serde(default)]
    pub jobs: usize,
}

fn default_compression() -> i32 {
    1
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            compression: default_compression(),
            jobs: 0,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub every: Option<String>,
    #[serde(default)]
    pub keep: KeepConfig,
    /// The freshness limit: `ripcord check` fails when a target's newest
    /// snapshot of this tier is older.
    pub max_age: Option<String>,
    /// The targets the tier covers; empty: every configured one.
    #[serde(default)]
    pub targets: Vec<String>,
    /// A geo tier: snapshots are copied into this other repository (a
    /// path, `file://` or `s3://` URL) instead of taken.
    pub repository: Option<String>,
    /// Prints the geo repository's passphrase; else `RIPCORD_TO_PASSWORD`.
    pub password_command: Option<String>,
}

impl TierConfig {
    /// `max_age`, parsed (it was checked when the file was read).
    pub fn max_age(&self) -> Option<std::time::Duration> {
        self.max_age
            .as_deref()
            .and_then(|t| crate::duration::parse(t).ok())
    }

    /// `every`, parsed (it was checked when the file was read).
    pub fn every(&self) -> Option<std::time::Duration> {
        self.every
            .as_deref()
            .and_then(|t| crate::duration::parse(t).ok())
    }

    /// Whether snapshots of this tier are copies in another repository.
    pub fn is_geo(&self) -> bool {
        self.repository.is_some()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepConfig {
    pub last: Option<usize>,
    pub hourly: Option<usize>,
    pub daily: Option<usize>,
    pub weekly: Option<usize>,
    pub monthly: Option<usize>,
    pub yearly: Option<usize>,
    pub within: Option<String>,
    /// Keep snapshots with these tags; `"a,b"` keeps those with both.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `[safety]`: safety snapshots, which in-place restores and migrations take
/// (tagged `safety`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// `[safety.keep]`: the policy `forget` applies to safety snapshots,
    /// apart from the user's snapshots. A table given here replaces the
    /// default as a whole.
    #[serde(default = "default_safety_keep")]
    pub keep: KeepConfig,
}

/// Keeps the 5 newest safety snapshots of each target, and every one taken
/// within 14 days of the newest: enough to undo a bad restore or migration
/// noticed late, without keeping every one forever.
fn default_safety_keep() -> KeepConfig {
    KeepConfig {
        last: Some(5),
        within: Some("14d".into()),
        ..KeepConfig::default()
    }
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            keep: default_safety_keep(),
        }
    }
}

/// `[migrations]`: the folder of migrations and the database they run against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationsConfig {
    /// A configured `postgres` or `sqlite` target. When it is not set and
    /// exactly one database target is configured, that one is meant.
    pub target: Option<String>,
    /// The folder holding the plan, relative to the configuration file's folder.
    #[serde(default = "default_migrations_dir")]
    pub dir: PathBuf,
    /// When a change is reverted from its safety snapshot: what happens to
    /// rows written to its tables after it ran.
    #[serde(default)]
    pub on_conflict: OnConflict,
    /// `on_conflict` for single tables (`table` or `schema.table`).
    #[serde(default)]
    pub tables: BTreeMap<String, TableMigrationConfig>,
    /// Which changes get a safety snapshot.
    #[serde(default)]
    pub snapshot: SnapshotWhen,
    /// How long `migrate up` and `down` wait for a table's lock before they
    /// give up with nothing changed (`5s` when not set).
    #[serde(default)]
    pub lock_timeout: Option<String>,
    /// How long one change may run before it is stopped and undone (no
    /// bound when not set).
    #[serde(default)]
    pub timeout: Option<String>,
}

impl MigrationsConfig {
    /// `timeout`, parsed (it was checked when the file was read).
    pub fn change_timeout(&self) -> Option<std::time::Duration> {
        self.timeout
            .as_deref()
            .and_then(|t| crate::duration::parse(t).ok())
    }

    /// `lock_timeout`, parsed (it was checked when the file was read).
    pub fn lock_timeout(&self) -> Option<std::time::Duration> {
        self.lock_timeout
            .as_deref()
            .and_then(|t| crate::duration::parse(t).ok())
    }
}

/// `[migrations] snapshot`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotWhen {
    /// Every change that touches existing tables, except one that destroys
    /// no data and has a down script: nothing would ever restore from it.
    #[default]
    Needed,
    /// Every change that touches existing tables, for manual restores too.
    Always,
}

/// `[migrations.tables.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMigrationConfig {
    pub on_conflict: OnConflict,
}

impl MigrationsConfig {
    /// The policy for `table` (`name` or `schema.name`): its own entry, else
    /// the entry of its bare name, else the default.
    pub fn on_conflict_for(&self, table: &str) -> OnConflict {
        let bare = table.rsplit('.').next().unwrap_or(table);
        self.tables
            .get(table)
            .or_else(|| self.tables.get(bare))
            .map_or(self.on_conflict, |t| t.on_conflict)
    }
}

fn default_migrations_dir() -> PathBuf {
    PathBuf::from("migrations")
}

impl Default for MigrationsConfig {
    fn default() -> Self {
        MigrationsConfig {
            target: None,
            dir: default_migrations_dir(),
            on_conflict: OnConflict::default(),
            tables: BTreeMap::new(),
            snapshot: SnapshotWhen::default(),
            lock_timeout: None,
            timeout: None,
        }
    }
}

/// `[migrations] on_conflict`: when a table is put back from a safety
/// snapshot, what happens to the rows written to it after the change ran.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OnConflict {
    /// The snapshot wins: rows written since are discarded (and counted).
    Snapshot,
    /// The application's inserts, updates and deletes since the change are
    /// kept; the change's own destruction is undone.
    #[default]
    KeepNew,
    /// The snapshot wins in the table; the application's writes since go
    /// to the review table and into the output.
    Review,
}

impl std::str::FromStr for OnConflict {
    type Err = String;
    fn from_str(s: &str) -> Result<OnConflict, String> {
        [
            OnConflict::Snapshot,
            OnConflict::KeepNew,
            OnConflict::Review,
        ]
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| format!("unknown on_conflict {s:?}: use snapshot, keep-new or review"))
    }
}

impl OnConflict {
    pub fn name(self) -> &'static str {
        match self {
            OnConflict::Snapshot => "snapshot",
            OnConflict::KeepNew => "keep-new",
            OnConflict::Review => "review",
        }
    }
}

/// Environment variables that are not configuration keys.
const NOT_CONFIG: &[&str] = &[
    "RIPCORD_PASSWORD",
    "RIPCORD_NEW_PASSWORD",
    "RIPCORD_CONFIG",
    "RIPCORD_FAILPOINT",
    "RIPCORD_LOG",
    "RIPCORD_HOSTNAME",
];

impl Config {
    /// Finds and loads the configuration. `explicit` is `--config` (which already
    /// falls back to `$RIPCORD_CONFIG`). When no file exists and none was asked
    /// for, an empty configuration is returned so that environment variables
    /// alone can describe the repository.
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        match explicit {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::NotFound {
                        path: path.to_path_buf(),
                    });
                }
                Config::load(path, &env)
            }
            None => {
                let path = PathBuf::from(FILE_NAME);
                if path.exists() {
                    Config::load(&path, &env)
                } else {
                    Config::from_toml_str("", None, &env)
                }
            }
        }
    }

    pub fn load(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        if path.is_dir() {
            return Err(ConfigError::IsDirectory {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Config::from_toml_str(&text, Some(&abs), env)
    }

    /// Parses TOML text and applies environment overrides from `env`.
    pub fn from_toml_str(
        text: &str,
        source: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let shown = source
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(FILE_NAME));
        let mut value: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: shown.clone(),
                    message: e.to_string().trim().to_string(),
                })?;
        keys::check(&value).map_err(|e| ConfigError::UnknownKey {
            origin: shown.display().to_string(),
            message: e.message,
            hint: e.hint,
        })?;
        let from_env = apply_env(&mut value, env)?;
        // What is unknown now came from the environment: name the variable.
        keys::check(&value).map_err(|e| {
            let var = from_env
                .iter()
                .find(|(_, path)| path.starts_with(&e.path))
                .map_or("a RIPCORD_* environment variable", |(var, _)| var.as_str());
            ConfigError::UnknownKey {
                origin: format!("environment variable {var}"),
                message: e.message,
                hint: format!("{}; unset {var} or correct its name", e.hint),
            }
        })?;
        match Config::build(value.clone(), source, &from_env, &shown) {
            Ok(config) => Ok(config),
            Err(e) => Err(blame_env(e, text, source, env, &from_env, &shown)),
        }
    }

    /// The configuration from merged TOML: deserialized, paths resolved,
    /// values checked. `from_env` says which keys the environment set.
    fn build(
        value: toml::Table,
        source: Option<&Path>,
        from_env: &[(String, Vec<String>)],
        shown: &Path,
    ) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::Value::Table(value)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: shown.to_path_buf(),
                    message: e.to_string().trim().to_string(),
                })?;
        config.source = source.map(Path::to_path_buf);
        config.resolve_paths(from_env);
        config.check_values(shown)?;
        let targets = config.targets.keys().cloned().collect();
        config.levels = runbook::check_runbooks(&config.runbooks, &targets).map_err(|e| {
            ConfigError::Invalid {
                path: shown.to_path_buf(),
                message: format!("{}: {}", e.key, e.message),
            }
        })?;
        let levels = config.runbooks.keys().cloned().collect();
        config.guard_spec =
            guard::check(&config.guard, &targets, &levels, guard_when).map_err(|e| {
                ConfigError::Invalid {
                    path: shown.to_path_buf(),
                    message: format!("{}: {}", e.key, e.message),
                }
            })?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    fn check_values(&self, shown: &Path) -> Result<(), ConfigError> {
        let config = self;
        let invalid = |message: String| ConfigError::Invalid {
            path: shown.to_path_buf(),
            message,
        };
        for name in config.targets.keys() {
            crate::names::check_target_name(name).map_err(|source| ConfigError::TargetName {
                path: shown.to_path_buf(),
                source,
            })?;
        }
        for (name, tier) in &config.tiers {
            let durations = [
                ("every", &tier.every),
                ("keep.within", &tier.keep.within),
                ("max_age", &tier.max_age),
            ];
            for t in &tier.targets {
                if !config.targets.contains_key(t) {
                    return Err(invalid(format!(
                        "tiers.{name}.targets: no target {t:?}; targets: {}",
                        config
                            .targets
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            for (key, value) in durations {
                if let Some(text) = value {
                    crate::duration::parse(text)
                        .map_err(|e| invalid(format!("tiers.{name}.{key}: {e}")))?;
                }
            }
            // Due at every pass of `schedule run`, a snapshot a minute.
            if tier.every().is_some_and(|d| d.is_zero()) {
                return Err(invalid(format!("tiers.{name}.every must be more than 0s")));
            }
            if tier.password_command.is_some() && !tier.is_geo() {
                return Err(invalid(format!(
                    "tiers.{name}.password_command is for a geo tier: set tiers.{name}.repository too"
                )));
            }
            if let (Some(geo), Some(main)) = (&tier.repository, &config.repository.url) {
                if same_location(geo, main) {
                    return Err(invalid(format!(
                        "tiers.{name}.repository is the main repository ({main}); a geo tier \
                         copies snapshots to another one, such as a second disk or a bucket \
                         elsewhere"
                    )));
                }
            }
        }
        if let Some(m) = &config.migrations {
            for (key, value) in [("lock_timeout", &m.lock_timeout), ("timeout", &m.timeout)] {
                let Some(t) = value else { continue };
                match crate::duration::parse(t) {
                    Ok(d) if d.is_zero() => {
                        return Err(invalid(format!("migrations.{key} must be more than 0s")))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(invalid(format!("migrations.{key}: {e}"))),
                }
            }
        }
        crate::limits::check_jobs(config.snapshot.jobs)
            .map_err(|e| invalid(format!("snapshot.jobs: {e}")))?;
        if let Some(t) = &config.repository.password_command_timeout {
            match crate::duration::parse(t) {
                Ok(d) if d.is_zero() => {
                    return Err(invalid(
                        "repository.password_command_timeout must be more than 0s".into(),
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(invalid(format!("repository.password_command_timeout: {e}"))),
            }
        }
        for (key, value) in [
            ("objectives.rto", &config.objectives.rto),
            ("objectives.rpo", &config.objectives.rpo),
            (
                "repository.s3.retry_timeout",
                &config.repository.s3.retry_timeout,
            ),
        ] {
            if let Some(t) = value {
                crate::duration::parse(t).map_err(|e| invalid(format!("{key}: {e}")))?;
            }
        }
        for (name, hook) in &config.notify {
            for e in hook.events.iter().flatten() {
                if !runbook::NOTIFY_EVENTS.contains(&e.as_str()) {
                    return Err(invalid(format!(
                        "notify.{name}.events: unknown event {e:?}; events: {}",
                        runbook::NOTIFY_EVENTS.join(", ")
                    )));
                }
            }
            if let Some(t) = &hook.timeout {
                crate::duration::parse(t)
                    .map_err(|e| invalid(format!("notify.{name}.timeout: {e}")))?;
            }
            if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
                return Err(invalid(format!(
                    "notify.{name}.url must be an http:// or https:// URL"
                )));
            }
        }
        if let Some(url) = &config.catalog.url {
            if config.catalog.path.is_some() {
                return Err(invalid(
                    "catalog.path and catalog.url are both set: the catalog is either a SQLite \
                     file (path) or a PostgreSQL database (url); remove one of them"
                        .into(),
                ));
            }
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid(
                    "catalog.url is not a PostgreSQL URL: write postgres://USER:PASSWORD@HOST/DATABASE"
                        .into(),
                ));
            }
        }
        if !(-7..=22).contains(&config.snapshot.compression) {
            return Err(ConfigError::Invalid {
                path: shown.to_path_buf(),
                message: format!(
                    "snapshot.compression = {} is not a zstd level; use 1 (fast) to 22 (small), or -7 to -1 for faster still",
                    config.snapshot.compression
                ),
            });
        }
        Ok(())
    }

    /// Makes relative target paths relative to the config file's folder.
    /// What ripcord keeps for itself and a dir target must never save or
    /// replace: the repository (when local), the configuration file and
    /// the catalog (`.ripcord/` beside it).
    pub fn protected_paths(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(url) = &self.repository.url {
            match url.split_once("://") {
                Some(("file", path)) => out.push(PathBuf::from(path)),
                Some(_) => {}
                None => out.push(PathBuf::from(url)),
            }
        }
        if let Some(source) = &self.source {
            out.push(source.clone());
            let dir = source.parent().unwrap_or(Path::new(""));
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            out.push(dir.join(".ripcord"));
        }
        // A catalog moved elsewhere, with SQLite's files beside it.
        if let Some(path) = &self.catalog.path {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                out.push(PathBuf::from(p));
            }
        }
        out
    }

    /// Relative paths in the file are relative to the file's folder; those
    /// set by an environment variable are relative to the working directory,
    /// as a path typed in a shell is.
    fn resolve_paths(&mut self, from_env: &[(String, Vec<String>)]) {
        let Some(file_base) = self.source.as_ref().and_then(|p| p.parent()) else {
            return;
        };
        let file_base = file_base.to_path_buf();
        let cwd = std::env::current_dir().unwrap_or_default();
        let base_for = |key: &[&str]| -> &Path {
            let by_env = from_env.iter().any(|(_, path)| {
                key.starts_with(&path.iter().map(String::as_str).collect::<Vec<_>>())
            });
            if by_env {
                &cwd
            } else {
                &file_base
            }
        };
        for (name, target) in &mut self.targets {
            match target {
                TargetConfig::Dir { path, .. } | TargetConfig::Sqlite { path, .. } => {
                    if path.is_relative() {
                        *path = base_for(&["targets", name, "path"]).join(&*path);
                    }
                }
                TargetConfig::Postgres { .. } => {}
            }
        }
        if let Some(url) = &self.repository.url {
            if !url.contains("://") && Path::new(url).is_relative() {
                let base = base_for(&["repository", "url"]);
                self.repository.url = Some(base.join(url).display().to_string());
            }
        }
        for (name, tier) in &mut self.tiers {
            if let Some(url) = &tier.repository {
                if !url.contains("://") && Path::new(url).is_relative() {
                    let base = base_for(&["tiers", name, "repository"]);
                    tier.repository = Some(base.join(url).display().to_string());
                }
            }
        }
        if let Some(migrations) = &mut self.migrations {
            if migrations.dir.is_relative() {
                migrations.dir = base_for(&["migrations", "dir"]).join(&migrations.dir);
            }
        }
        if let Some(path) = &mut self.catalog.path {
            if path.is_relative() {
                *path = base_for(&["catalog", "path"]).join(&*path);
            }
        }
    }

    /// The catalog's file: `[catalog] path`, else `.ripcord/catalog.db` in
    /// the configuration file's folder (the working directory without one).
    /// Not used when `[catalog] url` names a PostgreSQL database.
    pub fn catalog_path(&self) -> PathBuf {
        if let Some(p) = &self.catalog.path {
            return p.clone();
        }
        let base = self
            .source
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        base.join(".ripcord").join("catalog.db")
    }

    /// Whether the configuration came from a file (else only from the
    /// environment, because there was none).
    pub fn has_file(&self) -> bool {
        self.source.is_some()
    }

    /// The error for a command that needs configuration when no file was
    /// found: it names the file that was looked for.
    pub fn no_file() -> ConfigError {
        ConfigError::NotFound {
            path: std::path::absolute(FILE_NAME).unwrap_or_else(|_| PathBuf::from(FILE_NAME)),
        }
    }

    pub fn target(&self, name: &str) -> Result<&TargetConfig, ConfigError> {
        if self.targets.is_empty() && !self.has_file() {
            return Err(Config::no_file());
        }
        self.targets
            .get(name)
            .ok_or_else(|| ConfigError::UnknownTarget {
                name: name.to_string(),
                near: self
                    .targets
                    .keys()
                    .map(|k| (strsim::damerau_levenshtein(name, k), k))
                    .filter(|(d, k)| *d <= (name.len().max(k.len()) / 3).max(1) && *d < name.len())
                    .min()
                    .map(|(_, k)| format!("; did you mean {k:?}?"))
                    .unwrap_or_default(),
                known: if self.targets.is_empty() {
                    "(none)".to_string()
                } else {
                    self.targets.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            })
    }

    pub fn repository_url(&self) -> Result<&str, ConfigError> {
        match self.repository.url.as_deref() {
            Some(url) => Ok(url),
            None if !self.has_file() => Err(Config::no_file()),
            None => Err(ConfigError::NoRepository),
        }
    }
}

/// Whether two repository locations name the same place: `file://` and a
/// trailing `/` make no difference.
fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.strip_prefix("file://").unwrap_or(s);
        s.trim_end_matches('/').to_string()
    };
    norm(a) == norm(b)
}

/// An error in the merged configuration that the file alone does not have
/// comes from the environment: it names the first variable that causes it,
/// not the file.
fn blame_env(
    err: ConfigError,
    text: &str,
    source: Option<&Path>,
    env: &[(String, String)],
    from_env: &[(String, Vec<String>)],
    shown: &Path,
) -> ConfigError {
    if from_env.is_empty() {
        return err;
    }
    let file_only = |vars: &[(String, String)]| -> Option<Result<Config, ConfigError>> {
        let mut value: toml::Table = text.parse().ok()?;
        let applied = apply_env(&mut value, vars).ok()?;
        Some(Config::build(value, source, &applied, shown))
    };
    // When the file alone does not hold up either, the file is to blame.
    if !matches!(file_only(&[]), Some(Ok(_))) {
        return err;
    }
    let applied: Vec<&String> = from_env.iter().map(|(var, _)| var).collect();
    let with = |keep: &dyn Fn(&String) -> bool| -> Vec<(String, String)> {
        env.iter()
            .filter(|(v, _)| applied.contains(&v) && keep(v))
            .cloned()
            .collect()
    };
    // The variable whose key the error names; else the one without which
    // the rest holds up; else the first that fails on its own (one of
    // several that only make sense together).
    let shown_err = err.to_string();
    let culprit = from_env
        .iter()
        .find(|(_, path)| shown_err.contains(&format!("`{}`", path.join("."))))
        .map(|(var, _)| var)
        .or_else(|| {
            applied
                .iter()
                .copied()
                .find(|var| matches!(file_only(&with(&|v| v != *var)), Some(Ok(_))))
        })
        .or_else(|| {
            applied
                .iter()
                .copied()
                .find(|var| matches!(file_only(&with(&|v| v == *var)), Some(Err(_))))
        });
    let Some(var) = culprit else { return err };
    let message = match err {
        ConfigError::Invalid { message, .. } => message,
        other => other.to_string(),
    };
    ConfigError::Env {
        var: var.clone(),
        message,
    }
}

/// The short aliases: variables without `__` that set a key.
const ALIASES: &[(&str, &[&str])] = &[
    ("RIPCORD_REPOSITORY", &["repository", "url"]),
    (
        "RIPCORD_PASSWORD_COMMAND",
        &["repository", "password_command"],
    ),
];

/// Applies `RIPCORD_*` overrides; returns each variable with the key it set.
fn apply_env(
    table: &mut toml::Table,
    env: &[(String, String)],
) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let mut applied = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("RIPCORD_") else {
            continue;
        };
        if NOT_CONFIG.contains(&var.as_str()) {
            continue;
        }
        let path: Vec<String> = match ALIASES.iter().find(|(name, _)| name == var) {
            Some((_, path)) => path.iter().map(|s| s.to_string()).collect(),
            None if rest.contains("__") => rest.split("__").map(|s| s.to_lowercase()).collect(),
            None => {
                // Other variables are not configuration, unless one is a
                // misspelt alias (RIPCORD_REPOSITRY): that one would be lost.
                if let Some((near, _)) = ALIASES
                    .iter()
                    .find(|(name, _)| strsim::levenshtein(var, name) <= 2)
                {
                    return Err(ConfigError::UnknownKey {
                        origin: format!("environment variable {var}"),
                        message: format!("unknown variable; did you mean {near}?"),
                        hint: format!("rename it to {near}, or unset it"),
                    });
                }
                continue;
            }
        };
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var: var.clone(),
                message: "empty key segment".into(),
            });
        }
        set_path(table, &path, parse_scalar(raw)).map_err(|message| ConfigError::Env {
            var: var.clone(),
            message,
        })?;
        applied.push((var.clone(), path));
    }
    Ok(applied)
}

/// Numbers, booleans and arrays are read as TOML; everything else is a string.
fn parse_scalar(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match probe.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut cur = table;
    for key in parents {
        let entry = cur
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("{key} is not a table in the configuration"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

/// A guard rule's `when`, parsed: the probes it reads, or where it does not parse.
fn guard_when(text: &str) -> Result<Vec<String>, (usize, String)> {
    ripcord_rules::parse(text)
        .map(|e| e.probes().into_iter().map(str::to_string).collect())
        .map_err(|e| (e.column, e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_targets_and_env_overrides() {
        let text = r#"
            [repository]
            url = "/tmp/repo"
            [targets.app]
            kind = "sqlite"
            path = "/srv/app.db"
            [targets.etc]
            kind = "dir"
            path = "/etc/app"
            exclude = ["*.tmp"]
        "#;
        let c = Config::from_toml_str(
            text,
            None,
            &env(&[
                ("RIPCORD_REPOSITORY", "/other"),
                ("RIPCORD_SNAPSHOT__COMPRESSION", "7"),
                ("RIPCORD_TARGETS__ETC__PATH", "/etc/other"),
                ("RIPCORD_PASSWORD", "secret"),
            ]),
        )
        .unwrap();
        assert_eq!(c.repository.url.as_deref(), Some("/other"));
        assert_eq!(c.snapshot.compression, 7);
        match c.target("etc").unwrap() {
            TargetConfig::Dir { path, exclude } => {
                assert_eq!(path, Path::new("/etc/other"));
                assert_eq!(exclude, &vec!["*.tmp".to_string()]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            c.target("nope"),
            Err(ConfigError::UnknownTarget { .. })
        ));
    }

    #[test]
    fn malformed_and_unknown_keys_are_errors() {
        let bad = Config::from_toml_str("[repository\nurl=1", None, &[]);
        assert!(matches!(bad, Err(ConfigError::Invalid { .. })));
        let typo = Config::from_toml_str("[targets.a]\nkind='dir'\npaht='/x'", None, &[]);
        assert!(matches!(typo, Err(ConfigError::UnknownKey { .. })));
        let kind = Config::from_toml_str("[targets.a]\nkind='mysql'\npath='/x'", None, &[]);
        assert!(matches!(kind, Err(ConfigError::Invalid { .. })));
        let level = Config::from_toml_str("[snapshot]\ncompression = 99", None, &[]);
        assert!(matches!(level, Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn migrations_section() {
        let c = Config::from_toml_str(
            "[migrations]\ntarget = 'app'\non_conflict = 'review'",
            Some(Path::new("/srv/conf/ripcord.toml")),
            &[],
        )
        .unwrap();
        let m = c.migrations.unwrap();
        assert_eq!(m.target.as_deref(), Some("app"));
        assert_eq!(m.dir, Path::new("/srv/conf/migrations"));
        assert_eq!(m.on_conflict, OnConflict::Review);
        assert!(Config::from_toml_str("", None, &[])
            .unwrap()
            .migrations
            .is_none());
        match Config::from_toml_str("[migrations]\non_conflict = 'merge'", None, &[]) {
            Err(ConfigError::Invalid { message, .. }) => assert!(message.contains("keep-new")),
            other => panic!("unexpected {other:?}"),
        }
        let typo = Config::from_toml_str("[migrations]\ndirr = 'x'", None, &[]);
        match typo {
            Err(ConfigError::UnknownKey { message, .. }) => {
                assert!(message.contains("did you mean `dir`?"), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_section_is_refused_with_a_suggestion() {
        let e = Config::from_toml_str(
            "[targts.app]\nkind = 'dir'\npath = '/x'",
            Some(Path::new("/etc/ripcord.toml")),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.class(), Class::Usage);
        let text = e.to_string();
        assert!(text.starts_with("/etc/ripcord.toml: "), "{text}");
        assert!(text.contains("did you mean [targets]?"), "{text}");
        assert!(e.hint().unwrap().contains("repository, targets"));
    }

    #[test]
    fn env_override_of_an_unknown_key_names_the_variable() {
        let text = "[targets.app]\nkind = 'sqlite'\npath = '/x'";
        let e = Config::from_toml_str(text, None, &env(&[("RIPCORD_TARGETS__APP__PAHT", "/y")]))
            .unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with("environment variable RIPCORD_TARGETS__APP__PAHT: "),
            "{shown}"
        );
        assert!(shown.contains("did you mean `path`?"), "{shown}");
        let e = Config::from_toml_str("", None, &env(&[("RIPCORD_REPOSITRY", "/r")])).unwrap_err();
        assert!(e.to_string().contains("RIPCORD_REPOSITORY"), "{e}");
        // Variables that are not configuration are left alone.
        Config::from_toml_str("", None, &env(&[("RIPCORD_PG_BINDIR", "/usr/bin")])).unwrap();
    }

    #[test]
    fn target_names_are_checked_when_loading() {
        for name in ["\"../x\"", "\"/tmp/x\"", "\"a.b\"", &"n".repeat(65)] {
            let text = format!("[targets.{name}]\nkind = 'dir'\npath = '/x'");
            match Config::from_toml_str(&text, None, &[]) {
                Err(e @ ConfigError::TargetName { .. }) => assert_eq!(e.class(), Class::Usage),
                other => panic!("{name}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn jobs_and_durations_are_bounded() {
        let jobs = Config::from_toml_str("[snapshot]\njobs = 100000", None, &[]);
        assert!(matches!(jobs, Err(ConfigError::Invalid { .. })), "{jobs:?}");
        Config::from_toml_str("[snapshot]\njobs = 256", None, &[]).unwrap();
        let within = Config::from_toml_str("[tiers.t]\nkeep = { within = '300000y' }", None, &[]);
        assert!(
            matches!(within, Err(ConfigError::Invalid { .. })),
            "{within:?}"
        );
        let timeout =
            Config::from_toml_str("[repository]\npassword_command_timeout = '0s'", None, &[]);
        assert!(
            matches!(timeout, Err(ConfigError::Invalid { .. })),
            "{timeout:?}"
        );
        let c = Config::from_toml_str("[repository]\npassword_command_timeout = '2m'", None, &[])
            .unwrap();
        assert_eq!(c.repository.password_timeout(), Duration::from_secs(120));
        let c = Config::from_toml_str("", None, &[]).unwrap();
        assert_eq!(c.repository.password_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn config_pointing_at_a_directory_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = Config::discover(Some(dir.path())).unwrap_err();
        assert!(matches!(e, ConfigError::IsDirectory { .. }), "{e:?}");
        assert_eq!(e.class(), Class::Usage);
    }

    #[test]
    fn sqlite_create_defaults_to_false() {
        let c = Config::from_toml_str("[targets.a]\nkind = 'sqlite'\npath = '/a.db'", None, &[])
            .unwrap();
        assert!(matches!(
            c.target("a").unwrap(),
            TargetConfig::Sqlite { create: false, .. }
        ));
        let c = Config::from_toml_str(
            "[targets.a]\nkind = 'sqlite'\npath = '/a.db'\ncreate = true",
            None,
            &[],
        )
        .unwrap();
        assert!(matches!(
            c.target("a").unwrap(),
            TargetConfig::Sqlite { create: true, .. }
        ));
    }

    #[test]
    fn a_geo_tier_names_another_repository() {
        let main = "[repository]\nurl = '/backups/r'\n";
        for geo in ["/backups/r", "file:///backups/r/", "/backups/r/"] {
            let text = format!("{main}[tiers.geo]\nrepository = '{geo}'");
            let e = Config::from_toml_str(&text, None, &[]).unwrap_err();
            assert!(
                e.to_string().contains("is the main repository"),
                "{geo}: {e}"
            );
        }
        let text = format!("{main}[tiers.geo]\nrepository = '/offsite/r'\nevery = '1d'");
        let c = Config::from_toml_str(&text, None, &[]).unwrap();
        assert!(c.tiers["geo"].is_geo());
        let e =
            Config::from_toml_str("[tiers.hot]\npassword_command = 'x'", None, &[]).unwrap_err();
        assert!(e.to_string().contains("set tiers.hot.repository"), "{e}");
        let e = Config::from_toml_str("[tiers.hot]\nevery = '0s'", None, &[]).unwrap_err();
        assert!(e.to_string().contains("more than 0s"), "{e}");
    }
}
