//! The catalog: ripcord's own state, next to its configuration.
//!
//! It holds the recovery runs and their journaled steps, the single-flight
//! lock that lets one run act at a time, safe mode, and the hash-chained
//! audit of every command that changes something, and the API tokens (by
//! their hashes) the HTTP server accepts. The embedded store is a
//! SQLite file in WAL mode ([`SqliteCatalog`], `.ripcord/catalog.db` by
//! default); a PostgreSQL database ([`PgCatalog`], `[catalog] url`) is the
//! store several hosts share. The [`Catalog`] trait is what front ends use,
//! and [`open`] picks the store the configuration names.

pub mod audit;
mod error;
pub mod flight;
mod postgres;
pub mod runs;
pub mod samples;
mod schema;
mod sqlite;
pub mod tokens;

use std::path::{Path, PathBuf};

pub use crate::postgres::PgCatalog;
pub use error::{Error, Result};
pub use sqlite::SqliteCatalog;

use audit::{AuditEntry, AuditInput, AuditVerdict};
use flight::{Acquired, Holder};
use runs::{LastGood, NewRun, Run, RunResult, SafeMode, Step, StepEnd, StepStart};
use tokens::{NewToken, TokenRecord};

/// The catalog's default place, relative to the folder of ripcord.toml.
pub const DEFAULT_PATH: &str = ".ripcord/catalog.db";

/// Where the catalog is: a SQLite file, or a PostgreSQL database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    /// A `postgres://` URL, password included.
    Postgres(String),
}

impl Location {
    /// The catalog `[catalog]` names: `url` when set, else the file.
    pub fn from_config(config: &ripcord_core::config::Config) -> Location {
        match &config.catalog.url {
            Some(url) => Location::Postgres(url.clone()),
            None => Location::File(config.catalog_path()),
        }
    }

    /// How messages and audit seals name it: the file's absolute path, or
    /// the URL without its password.
    pub fn name(&self) -> String {
        match self {
            Location::File(path) => file_name(path),
            Location::Postgres(url) => audit::redact(url),
        }
    }

    /// Whether several hosts may share it (its chain is the same seen from
    /// any of them).
    pub fn is_shared(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

fn file_name(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Opens the catalog at `location`, creating it (a SQLite file and its
/// folder, or the `ripcord` schema of a PostgreSQL database) when missing,
/// and upgrades its schema.
pub fn open(location: &Location) -> Result<Box<dyn Catalog + Send>> {
    Ok(match location {
        Location::File(path) => Box::new(SqliteCatalog::open(path)?),
        Location::Postgres(url) => Box::new(PgCatalog::open(url)?),
    })
}

/// Opens the catalog only if it exists, for commands that merely consult
/// it. A SQLite file that is not there is `None`; a PostgreSQL database is
/// always opened (its schema is created on first use).
pub fn open_existing(location: &Location) -> Result<Option<Box<dyn Catalog + Send>>> {
    match location {
        Location::File(path) if !path.exists() => Ok(None),
        _ => open(location).map(Some),
    }
}

/// What every catalog store provides. Each call is durable when it returns:
/// a step journaled as started is on disk before the step runs.
pub trait Catalog {
    /// Where it is, for messages and audit seals: the file's absolute
    /// path, or the URL with its password redacted.
    fn location(&self) -> String;

    /// The schema version the store has.
    fn schema_version(&mut self) -> Result<u32>;

    /// Takes the lock `name` for every host that shares this store, held
    /// while this handle stays open, without waiting: `None` when taken,
    /// else who holds it. A store only one host uses takes nothing here
    /// (its callers lock on the host itself).
    fn try_shared_lock(&mut self, name: &str) -> Result<Option<String>> {
        let _ = name;
        Ok(None)
    }

    /// Whether `holder`'s run is still alive, as far as this store can
    /// tell (`None`: it cannot). The SQLite store judges processes on this
    /// host only; a shared store may know more.
    fn holder_alive(&mut self, holder: &Holder) -> Result<Option<bool>> {
        Ok(holder.is_alive())
    }

    /// Takes the single-flight lock for `holder`, or names the live run
    /// that holds it. A holder on this host whose process is gone is
    /// replaced, and returned so its run can be resumed.
    fn acquire_flight(&mut self, holder: &Holder) -> Result<Acquired>;
    /// Gives the lock up if `run` holds it.
    fn release_flight(&mut self, run: &str) -> Result<()>;
    /// Who holds the lock, live or not.
    fn flight_holder(&mut self) -> Result<Option<Holder>>;

    fn begin_run(&mut self, run: &NewRun) -> Result<Run>;
    fn start_step(&mut self, run: &str, step: &StepStart) -> Result<()>;
    fn end_step(&mut self, run: &str, seq: u32, end: &StepEnd) -> Result<()>;
    fn finish_run(&mut self, run: &str, result: RunResult) -> Result<()>;
    /// Removes a run that changed nothing because its input was refused.
    fn discard_run(&mut self, run: &str) -> Result<()>;
    fn run(&mut self, id: &str) -> Result<Option<Run>>;
    /// Every run, newest first.
    fn runs(&mut self) -> Result<Vec<Run>>;
    fn steps(&mut self, run: &str) -> Result<Vec<Step>>;

    fn safe_mode(&mut self) -> Result<Option<SafeMode>>;
    fn enter_safe_mode(&mut self, mode: &SafeMode) -> Result<()>;
    /// Leaves safe mode; returns the state that was left, if any.
    fn leave_safe_mode(&mut self) -> Result<Option<SafeMode>>;

    /// Appends an entry to the audit chain and returns it, hashed.
    fn append_audit(&mut self, input: &AuditInput) -> Result<AuditEntry>;
    /// The newest entry's sequence number and hash; none while the chain is empty.
    fn audit_head(&mut self) -> Result<Option<(u64, String)>>;
    /// The entries from sequence number `from` on, in order.
    fn audit_entries(&mut self, from: u64) -> Result<Vec<AuditEntry>>;
    /// Records the change a migration target was at (none: no change
    /// applied) before a `migrate up` moved it.
    fn set_last_good(&mut self, target: &str, change: Option<&str>, actor: &str) -> Result<()>;
    /// What [`Catalog::set_last_good`] recorded for `target`: `Some(None)`
    /// means nothing was applied then.
    fn last_good(&mut self, target: &str) -> Result<Option<LastGood>>;

    /// Stores the guard's samples, in one transaction.
    fn add_samples(&mut self, samples: &[samples::Sample]) -> Result<()>;
    /// The samples of `probe` taken after `since_ms`, oldest first.
    fn samples(&mut self, probe: &str, since_ms: i64) -> Result<Vec<samples::Sample>>;
    /// Forgets the samples taken before `before_ms`; returns how many.
    fn forget_samples(&mut self, before_ms: i64) -> Result<u64>;

    /// Keeps a restore drill's report (JSON) in the history.
    fn add_drill(&mut self, started: &str, result: &str, report: &str) -> Result<()>;
    /// The newest drill: when it started and its result.
    fn last_drill(&mut self) -> Result<Option<(String, String)>>;

    /// Stores a new token. A name an active (not revoked) token has is
    /// [`Error::TokenExists`], and nothing is stored; a revoked token's
    /// name may be taken again.
    fn add_token(&mut self, token: &NewToken) -> Result<()>;
    /// Every token, active and revoked, oldest first.
    fn tokens(&mut self) -> Result<Vec<TokenRecord>>;
    /// Revokes the active token named `name`; `false` when there is none.
    fn revoke_token(&mut self, name: &str) -> Result<bool>;

    /// Recomputes the whole chain.
    fn verify_audit(&mut self) -> Result<AuditVerdict> {
        Ok(audit::verify(&self.audit_entries(1)?))
    }
}
