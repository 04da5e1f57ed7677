//! The catalog: ripcord's own state, next to its configuration.
//!
//! It holds the recovery runs and their journaled steps, the single-flight
//! lock that lets one run act at a time, safe mode, and the hash-chained
//! audit of every command that changes something. The embedded store is a
//! SQLite file in WAL mode ([`SqliteCatalog`], `.ripcord/catalog.db` by
//! default); the [`Catalog`] trait is what front ends use, so a store
//! shared by several hosts can take its place.

pub mod audit;
mod error;
pub mod flight;
pub mod runs;
pub mod samples;
mod schema;
mod sqlite;

pub use error::{Error, Result};
pub use sqlite::SqliteCatalog;

use audit::{AuditEntry, AuditInput, AuditVerdict};
use flight::{Acquired, Holder};
use runs::{LastGood, NewRun, Run, RunResult, SafeMode, Step, StepEnd, StepStart};

/// The catalog's default place, relative to the folder of ripcord.toml.
pub const DEFAULT_PATH: &str = ".ripcord/catalog.db";

/// What every catalog store provides. Each call is durable when it returns:
/// a step journaled as started is on disk before the step runs.
pub trait Catalog {
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

    /// Recomputes the whole chain.
    fn verify_audit(&mut self) -> Result<AuditVerdict> {
        Ok(audit::verify(&self.audit_entries(1)?))
    }
}
