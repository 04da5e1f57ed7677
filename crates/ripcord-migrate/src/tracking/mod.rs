//! What a database has been through: which changes ran, with which checksum,
//! and who is migrating it right now.
//!
//! A [`Tracker`] keeps two tables in the target database (PostgreSQL:
//! `ripcord.changes` and `ripcord.events`; SQLite: `ripcord_changes` and
//! `ripcord_events`) and a lock that lets one migration run at a time.
//! [`status()`] compares what a tracker reports with a [`Plan`], without
//! touching the database.
//!
//! The order of calls around one change:
//!
//! 1. [`Tracker::lock`], held for the whole run;
//! 2. [`Tracker::ensure_schema`];
//! 3. [`Tracker::record_start`], which leaves the change `dirty`, before its
//!    script runs, so a crash in the middle is visible afterwards;
//! 4. the script;
//! 5. [`Tracker::record_done`] and [`Tracker::record_event`].

mod pg;
mod read;
mod sqlite;
mod state;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::analyze::TableName;
use crate::{Plan, Result};

pub use self::pg::PostgresTracker;
pub use self::read::{pinned, recorded, Pinned};
pub use self::sqlite::SqliteTracker;
pub use self::state::{
    after_restore, applied_since, forget_pending_postgres, forget_pending_sqlite, read_postgres,
    read_sqlite, restore_lock, touching, State,
};

/// Where a tracker records migrations, and the lock around them.
pub trait Tracker {
    /// Creates the tracking tables if they are missing. Safe to call every
    /// time and from several processes at once.
    fn ensure_schema(&mut self) -> Result<()>;

    /// Takes the migration lock, or refuses with [`Error::Locked`] naming the
    /// holder. The lock is held until the guard is dropped, and also ends if
    /// the holding process dies.
    ///
    /// [`Error::Locked`]: crate::Error::Locked
    fn lock(&mut self) -> Result<LockGuard>;

    /// The recorded changes, in the order they were started.
    fn applied(&mut self) -> Result<Vec<AppliedChange>>;

    /// Records `change` as `dirty`, before its script runs. `plan_order` is
    /// its position in [`Plan::order`]. Starting a change that is already
    /// recorded (a retry, a repeatable change) replaces its row.
    fn record_start(
        &mut self,
        change: &str,
        plan_order: i32,
        checksum: &str,
        actor: &str,
        snapshot_id: Option<String>,
    ) -> Result<()>;

    /// Records a change that ran in a transaction as applied, with its
    /// deploy event, in one go at the end of that transaction: its row is
    /// never seen `dirty`.
    #[allow(clippy::too_many_arguments)]
    fn record_applied(
        &mut self,
        change: &str,
        plan_order: i32,
        checksum: &str,
        actor: &str,
        snapshot_id: Option<String>,
        duration: Duration,
        detail: &str,
    ) -> Result<()> {
        self.record_start(change, plan_order, checksum, actor, snapshot_id)?;
        self.record_done(change, duration)?;
        self.record_event(change, EventKind::Deploy, actor, detail)
    }

    /// What [`Tracker::record_applied`] does, as SQL text to send in one
    /// batch with the verify script and `COMMIT`, where that saves round
    /// trips (PostgreSQL); `None` where it does not (SQLite).
    #[allow(clippy::too_many_arguments)]
    fn applied_sql(
        &self,
        _change: &str,
        _plan_order: i32,
        _checksum: &str,
        _actor: &str,
        _snapshot_id: Option<&str>,
        _duration: Duration,
        _detail: &str,
    ) -> Option<String> {
        None
    }

    /// What [`Tracker::record_reverted`] and the revert event do, as SQL
    /// text to send in one batch with `COMMIT` (PostgreSQL); `None` where
    /// that saves nothing (SQLite).
    fn reverted_sql(&self, _change: &str, _actor: &str, _detail: &str) -> Option<String> {
        None
    }

    /// Records with a started change what `down` needs to undo it, as it
    /// is now: `down` follows it whatever the files say later.
    fn record_plan(&mut self, change: &str, plan: &RevertPlan) -> Result<()>;

    /// What [`Tracker::record_plan`] does, as SQL text to send in the batch
    /// of [`Tracker::applied_sql`]; `None` where that saves nothing.
    fn plan_sql(&self, _change: &str, _plan: &RevertPlan) -> Option<String> {
        None
    }

    /// Marks a started change as run outside a transaction.
    fn record_non_transactional(&mut self, change: &str) -> Result<()>;

    /// Marks a started change `applied`.
    fn record_done(&mut self, change: &str, duration: Duration) -> Result<()>;

    /// Forgets a change after it was reverted; the events keep its history.
    fn record_reverted(&mut self, change: &str) -> Result<()>;

    /// Appends to the events table.
    fn record_event(
        &mut self,
        change: &str,
        kind: EventKind,
        actor: &str,
        detail: &str,
    ) -> Result<()>;
}

/// Holds the migration lock; dropping it releases the lock, on every path
/// (return, `?`, panic unwinding).
pub struct LockGuard {
    holder: String,
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl LockGuard {
    pub(crate) fn new(holder: String, release: impl FnOnce() + Send + 'static) -> LockGuard {
        LockGuard {
            holder,
            release: Some(Box::new(release)),
        }
    }

    /// How other processes see this lock's holder.
    pub fn holder(&self) -> &str {
        &self.holder
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// The state of a recorded change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    /// Started, not finished: the script failed or the process died.
    Dirty,
    Applied,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Dirty => "dirty",
            RecordState::Applied => "applied",
        }
    }

    pub(crate) fn parse(s: &str) -> RecordState {
        // Anything but a finished change is treated as dirty, the cautious
        // reading of a row written by a newer or damaged tool.
        if s == "applied" {
            RecordState::Applied
        } else {
            RecordState::Dirty
        }
    }
}

/// The kind of an event row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Deploy,
    Revert,
    Fail,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Deploy => "deploy",
            EventKind::Revert => "revert",
            EventKind::Fail => "fail",
        }
    }
}

/// One row of the changes table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AppliedChange {
    pub name: String,
    pub checksum: String,
    pub state: RecordState,
    /// When the change was started.
    pub applied_at: DateTime<Utc>,
    pub actor: String,
    /// `None` until the change is done.
    pub duration_ms: Option<i64>,
    /// The safety snapshot taken before the change, if any.
    pub safety_snapshot: Option<String>,
    /// The change's position in the plan order when it was started.
    pub plan_order: i32,
    /// False when it ran outside a transaction.
    pub transactional: bool,
    /// What `down` needs to undo it, recorded when it was applied, as JSON
    /// ([`RevertPlan::parse`]); `None` for changes applied by versions that
    /// did not record it.
    pub revert_plan: Option<String>,
}

/// What `down` needs to undo a change, recorded with the change when it is
/// applied: the analysis of its up script, and its down script as it was
/// then. `down` follows it and never reads an edited file again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RevertPlan {
    /// The format of this record; readers refuse a newer one.
    pub version: u32,
    /// Existing tables the change touches: those its safety snapshot covers.
    pub tables: Vec<TableName>,
    /// Tables the change creates.
    pub created: Vec<TableName>,
    /// Whether it destroys data (a revert then needs its safety snapshot).
    pub destructive: bool,
    /// False when its tables could not all be told from its SQL (its safety
    /// snapshot then covers the whole database).
    pub certain: bool,
    /// Whether the up script ran in a transaction.
    pub transactional: bool,
    /// Its down script, as ripcord would run it when it was applied.
    pub down: Option<RecordedScript>,
    /// The schema-only snapshot of a change without a down script whose
    /// statements change no rows: what puts its definitions back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaUndo>,
}

/// The definitions a change changed (functions, views, policies, grants,
/// comments, …), read from the catalog before and after its script in its
/// own transaction, and the statements that put them back as they were.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SchemaUndo {
    /// The definitions the change changed, as `kind name` (`function
    /// public.f(integer)`, `acl table public.t +app SELECT`).
    pub objects: Vec<String>,
    /// The statements that put them back, in order.
    pub statements: Vec<String>,
}

/// A script as recorded with its change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecordedScript {
    /// The SQL that runs (without a `BEGIN … COMMIT` wrapper).
    pub sql: String,
    /// The checksum of the file it came from.
    pub checksum: String,
    /// Whether it runs in a transaction.
    pub transactional: bool,
}

impl RevertPlan {
    /// Format 2 adds `schema`; a plan without it is still written as 1, so
    /// older versions keep reading what they can follow.
    pub const VERSION: u32 = 2;

    pub fn to_json(&self) -> String {
        if self.schema.is_none() && self.version > 1 {
            let mut older = self.clone();
            older.version = 1;
            return serde_json::to_string(&older).expect("a revert plan serialises");
        }
        serde_json::to_string(self).expect("a revert plan serialises")
    }

    /// Reads a recorded plan; a record this version cannot read (damaged,
    /// or written by a newer version) is an error, never a guess.
    pub fn parse(text: &str) -> std::result::Result<RevertPlan, String> {
        // The version first: a newer record may not have the fields of this one.
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let version = value.get("version").and_then(serde_json::Value::as_u64);
        if let Some(v) = version.filter(|v| *v > u64::from(RevertPlan::VERSION)) {
            return Err(format!(
                "it was written by a newer ripcord (format {v}, this one reads {})",
                RevertPlan::VERSION
            ));
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

/// Where a change of the plan, or a recorded one, stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeState {
    /// In the plan, not recorded.
    Pending,
    /// Recorded as applied with the plan's checksum.
    Applied,
    /// Recorded as applied, but the script has changed since.
    Drifted,
    /// Started and never finished.
    Dirty,
    /// Recorded, but not in the plan.
    Unknown,
}

/// One line of [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ChangeStatus {
    #[serde(rename = "change")]
    pub name: String,
    pub state: ChangeState,
    pub phase: Option<String>,
    /// The checksum of the plan's up script; `None` for unknown changes.
    pub checksum: Option<String>,
    /// The checksum recorded when the change ran; `None` for pending ones.
    pub recorded_checksum: Option<String>,
    pub applied_at: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    /// `Some(false)` for a recorded change that ran outside a transaction.
    pub transactional: Option<bool>,
}

/// The first place where the recorded history leaves the plan order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Mismatch {
    /// Position in the history, from 0.
    pub position: usize,
    /// The change the plan has there; `None` past the plan's end.
    pub expected: Option<String>,
    /// The change the history has there.
    pub found: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.expected {
            Some(expected) => write!(
                f,
                "change #{} in the database is {}, but the plan has {} there",
                self.position + 1,
                self.found,
                expected
            ),
            None => write!(
                f,
                "change #{} in the database is {}, past the end of the plan",
                self.position + 1,
                self.found
            ),
        }
    }
}

/// A plan compared with what a database has recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Status {
    /// The plan's changes in the order they run, then unknown ones in the
    /// order they were recorded.
    pub changes: Vec<ChangeStatus>,
    /// The last phase whose changes are all in the database (applied or
    /// drifted).
    pub phase: Option<String>,
    /// Whether the recorded changes are a prefix of the plan order.
    pub history_matches: bool,
    pub mismatch: Option<Mismatch>,
}

impl Status {
    pub fn change(&self, name: &str) -> Option<&ChangeStatus> {
        self.changes.iter().find(|c| c.name == name)
    }

    /// The names of the changes in `state`, in the order of
    /// [`changes`](Self::changes).
    pub fn in_state(&self, state: ChangeState) -> Vec<&str> {
        self.changes
            .iter()
            .filter(|c| c.state == state)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// Compares a plan with the recorded changes, `applied` in the order
/// [`Tracker::applied`] returns them.
pub fn status(plan: &Plan, applied: &[AppliedChange]) -> Status {
    // A plan whose order fails does not get past the readers; should one get
    // here, its file order is the best guess.
    let order: Vec<&crate::Change> = plan
        .order()
        .unwrap_or_else(|_| plan.changes.iter().collect());
    let recorded: HashMap<&str, &AppliedChange> =
        applied.iter().map(|a| (a.name.as_str(), a)).collect();
    let phase_of: HashMap<&str, &str> = plan
        .phases
        .iter()
        .flat_map(|p| p.changes.iter().map(move |c| (c.as_str(), p.name.as_str())))
        .collect();

    let mut changes: Vec<ChangeStatus> = order
        .iter()
        .map(|change| {
            let row = recorded.get(change.name.as_str());
            let state = match row {
                None => ChangeState::Pending,
                Some(row) if row.state == RecordState::Dirty => ChangeState::Dirty,
                Some(row) if row.checksum != change.up.checksum => ChangeState::Drifted,
                Some(_) => ChangeState::Applied,
            };
            ChangeStatus {
                name: change.name.clone(),
                state,
                phase: change
                    .phase
                    .clone()
                    .or_else(|| phase_of.get(change.name.as_str()).map(|p| p.to_string())),
                checksum: Some(change.up.checksum.clone()),
                recorded_checksum: row.map(|r| r.checksum.clone()),
                applied_at: row.map(|r| r.applied_at),
                actor: row.map(|r| r.actor.clone()),
                transactional: row.map(|r| r.transactional),
            }
        })
        .collect();
    let in_plan: HashSet<&str> = order.iter().map(|c| c.name.as_str()).collect();
    changes.extend(
        applied
            .iter()
            .filter(|a| !in_plan.contains(a.name.as_str()))
            .map(|a| ChangeStatus {
                name: a.name.clone(),
                state: ChangeState::Unknown,
                phase: None,
                checksum: None,
                recorded_checksum: Some(a.checksum.clone()),
                applied_at: Some(a.applied_at),
                actor: Some(a.actor.clone()),
                transactional: Some(a.transactional),
            }),
    );

    let deployed: HashSet<&str> = changes
        .iter()
        .filter(|c| matches!(c.state, ChangeState::Applied | ChangeState::Drifted))
        .map(|c| c.name.as_str())
        .collect();
    let phase = plan
        .phases
        .iter()
        .rfind(|p| !p.changes.is_empty() && p.changes.iter().all(|c| deployed.contains(c.as_str())))
        .map(|p| p.name.clone());

    // Repeatable changes run again whenever they change, so they are
    // recorded out of plan order; only versioned changes form the history.
    let repeatable: HashSet<&str> = order
        .iter()
        .filter(|c| c.repeatable)
        .map(|c| c.name.as_str())
        .collect();
    let versioned: Vec<&crate::Change> = order.iter().copied().filter(|c| !c.repeatable).collect();
    let mismatch = applied
        .iter()
        .filter(|a| !repeatable.contains(a.name.as_str()))
        .enumerate()
        .find_map(|(i, a)| {
            let expected = versioned.get(i).map(|c| c.name.as_str());
            (expected != Some(a.name.as_str())).then(|| Mismatch {
                position: i,
                expected: expected.map(str::to_owned),
                found: a.name.clone(),
            })
        });

    Status {
        changes,
        phase,
        history_matches: mismatch.is_none(),
        mismatch,
    }
}

/// This process id and host name, which name a lock holder.
pub(crate) fn this_process() -> (u32, String) {
    (std::process::id(), ripcord_core::host::name())
}

/// The current time as stored in SQLite and read back from PostgreSQL.
pub(crate) fn now_text() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
