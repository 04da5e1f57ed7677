//! Running a plan: `up` applies changes, each in its own transaction with
//! its tracking row, after a safety snapshot of the tables it touches; a
//! change that fails is undone at once. `down` reverts changes in reverse
//! order with their down scripts, and puts back from the safety snapshot
//! what a change destroyed or has no script to undo. `verify` runs the
//! verify scripts of the applied changes again, changing nothing.
//!
//! Where a change stands after a crash:
//! - transactional: its transaction holds the change and its tracking row,
//!   so it is either applied and recorded, or neither;
//! - non-transactional: the row is written `dirty` first, so a crash in the
//!   middle is visible; `down` reverts it from its safety snapshot.

mod adopt;
mod capture;
mod db;
mod deadline;
mod down;
mod explain;
mod net;
mod prepare;
mod resolve;
mod revert_lock;
mod schema;
mod undo;
mod up;
mod verify;

use std::collections::BTreeSet;
use std::time::Duration;

use ripcord_core::revert::TableRevert;
use serde::Serialize;

use crate::analyze::TableName;

pub use self::adopt::{adopt, AdoptOptions, AdoptReport, AdoptedChange};
pub use self::capture::{Watched, DEFAULT_LOCK_TIMEOUT};
pub use self::db::{check_syntax, Conn, Database};
pub use self::down::down;
pub use self::explain::{explain, Explained, ExplainedStep};
pub use self::net::{SafetyNet, Unusable};
pub use self::up::up;
pub use self::verify::{verify, Verdict, VerifyChange, VerifyReport};

/// Who is migrating, and how far.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// A change, version or `@phase`; `None`: every pending change.
    pub to: Option<String>,
    /// Check and report what would run; change nothing.
    pub dry_run: bool,
    /// Go on although applied scripts were edited since.
    pub allow_drift: bool,
    /// Recorded with each change: `user@host`.
    pub actor: String,
    /// Snapshot every change that touches existing tables, also those whose
    /// down script is a complete way back.
    pub snapshot_always: bool,
    /// How long to wait for a table's lock; `None`: [`DEFAULT_LOCK_TIMEOUT`].
    pub lock_timeout: Option<Duration>,
    /// How long one change's script may run before it is stopped and
    /// undone (`[migrations] timeout`); `None`: no bound.
    pub change_timeout: Option<Duration>,
}

impl UpOptions {
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT)
    }
}

#[derive(Clone, Debug, Default)]
pub struct DownOptions {
    /// The change, version or `@phase` to go back to (it stays applied);
    /// `@root` reverts every change.
    pub to: String,
    pub dry_run: bool,
    pub allow_drift: bool,
    pub actor: String,
    /// How long to wait for a table's lock; `None`: [`DEFAULT_LOCK_TIMEOUT`].
    pub lock_timeout: Option<Duration>,
}

impl DownOptions {
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT)
    }
}

/// What a safety snapshot covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "scope", content = "tables")]
pub enum Scope {
    /// The change touches no existing table (it only creates things).
    None,
    /// Not taken: the change destroys no data and its down script, run in
    /// a transaction, undoes it; these are the tables it touches.
    DownScript(Vec<String>),
    Tables(Vec<String>),
    /// No data: the change changes no rows and has no down script; the
    /// definitions it changes are read from the catalog before and after it
    /// (see `schema`). The statements it is for.
    Schema(Vec<String>),
    /// The tables could not be told from the SQL.
    Database,
}

/// One change of `up`, planned or done.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct UpChange {
    #[serde(rename = "change")]
    pub name: String,
    pub transactional: bool,
    pub snapshot_scope: Scope,
    /// Why the whole database is snapshotted, when it is.
    pub uncertain: Option<String>,
    pub verify: bool,
    /// Set once applied.
    pub snapshot: Option<String>,
    /// Touched tables the safety snapshot does not protect (allowed with
    /// `--allow-unprotected`), `schema.name: why`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unprotected: Vec<String>,
    pub duration_ms: Option<u64>,
    /// What its schema-only snapshot recorded: the definitions it changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schema_snapshot: Vec<String>,
    /// How long the post-change fingerprint took, after the commit; none
    /// when the change has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint_ms: Option<u64>,
    /// The safety snapshot's tables read and taken over unread from the
    /// previous snapshot (nothing wrote to them since); none when the
    /// change has no snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_tables: Option<TablesTaken>,
}

/// How a snapshot got its tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TablesTaken {
    pub read: u64,
    pub reused: u64,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct UpReport {
    pub dry_run: bool,
    /// The change, version or @phase to stop after; none for the plan's end.
    #[serde(rename = "to")]
    pub target: Option<String>,
    /// In order; on a dry run, what would run.
    pub changes: Vec<UpChange>,
}

/// How a change was undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// Its down script.
    DownScript,
    /// Its down script, then the data it destroyed from its safety snapshot.
    DownScriptAndSnapshot,
    /// Its safety snapshot, schema and data.
    Snapshot,
    /// It only created tables: they were dropped.
    DropCreated,
    /// Its schema-only snapshot put its definitions back (and the tables
    /// it created were dropped).
    SchemaSnapshot,
}

impl How {
    pub fn describe(self) -> &'static str {
        match self {
            How::DownScript => "by its down script",
            How::DownScriptAndSnapshot => {
                "by its down script, with the data it destroyed put back from its safety snapshot"
            }
            How::Snapshot => "from its safety snapshot",
            How::DropCreated => "by dropping the tables it created",
            How::SchemaSnapshot => "from its schema-only snapshot",
        }
    }
}

/// A table dropped because the reverted change had created it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DroppedTable {
    pub table: String,
    pub rows: u64,
}

/// One change of `down`, planned or done.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DownChange {
    #[serde(rename = "change")]
    pub name: String,
    pub how: How,
    pub snapshot: Option<String>,
    pub was_dirty: bool,
    /// Tables put back from the snapshot; empty on a dry run.
    pub tables: Vec<TableRevert>,
    pub dropped_tables: Vec<DroppedTable>,
    /// The definitions its schema-only snapshot put back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schema_restored: Vec<String>,
    /// What the down script itself destroys, as it says (`drops table t`);
    /// those rows are gone by the script's own intent.
    pub down_destroys: Vec<String>,
    /// Whether the revert follows the plan recorded when the change was
    /// applied; false for changes recorded by older versions, reverted by
    /// their files as they are now.
    pub recorded_plan: bool,
    pub duration_ms: Option<u64>,
}

impl DownChange {
    /// Rows gone for good: rows written since that the `snapshot` policy
    /// discarded, and rows of dropped tables.
    pub fn rows_lost(&self) -> u64 {
        self.tables.iter().map(|t| t.discarded_rows).sum::<u64>()
            + self.dropped_tables.iter().map(|t| t.rows).sum::<u64>()
    }
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DownReport {
    pub dry_run: bool,
    /// The change, version or @phase gone back to (it stays applied).
    #[serde(rename = "to")]
    pub target: String,
    /// In the order they were reverted.
    pub changes: Vec<DownChange>,
}

/// What the engine tells its caller as it goes.
#[derive(Debug)]
pub enum Note<'a> {
    Snapshot {
        change: &'a str,
        id: &'a str,
        scope: &'a Scope,
        uncertain: Option<&'a str>,
        tables: Option<TablesTaken>,
    },
    Applied(&'a UpChange),
    Reverted(&'a DownChange),
    /// Something the user should know before the run goes on.
    Warning(&'a str),
}

/// Table names as reports show them.
pub(crate) fn names(tables: &BTreeSet<TableName>) -> Vec<String> {
    tables.iter().map(|t| t.to_string()).collect()
}
