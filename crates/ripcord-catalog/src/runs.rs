//! Runs and their steps as the catalog records them.

use serde::Serialize;

/// A fresh run id: 16 hex digits.
pub fn new_run_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// How a run ended, or that it has not.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    Running,
    Succeeded,
    Failed,
    /// Given up by a person (`resume --skip` of the run as a whole).
    Abandoned,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Running => "running",
            RunResult::Succeeded => "succeeded",
            RunResult::Failed => "failed",
            RunResult::Abandoned => "abandoned",
        }
    }

    pub(crate) fn parse(s: &str) -> RunResult {
        match s {
            "succeeded" => RunResult::Succeeded,
            "failed" => RunResult::Failed,
            "abandoned" => RunResult::Abandoned,
            _ => RunResult::Running,
        }
    }
}

/// A run about to start.
#[derive(Clone, Debug, Default)]
pub struct NewRun {
    /// From [`new_run_id`]: known before the run is recorded, so that the
    /// single-flight lock can be taken in its name first.
    pub id: String,
    /// `recover`, `migrate-down`, `rollback`, `restore`.
    pub kind: String,
    /// The runbook level it starts at, for `recover`.
    pub level: Option<String>,
    pub reason: String,
    /// Who or what started it: `manual`, `guard:RULE`...
    pub trigger: String,
    /// `user@host`.
    pub actor: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Run {
    /// The run's id.
    pub run: String,
    pub kind: String,
    pub level: Option<String>,
    pub reason: String,
    pub trigger: String,
    pub actor: String,
    pub host: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: Option<String>,
    pub result: RunResult,
}

/// A step's state in the journal.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    /// Journaled before it ran; still so after a crash.
    Started,
    Succeeded,
    Failed,
    /// Passed over on resume by a person's decision.
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Started => "started",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }

    pub(crate) fn parse(s: &str) -> StepState {
        match s {
            "succeeded" => StepState::Succeeded,
            "failed" => StepState::Failed,
            "skipped" => StepState::Skipped,
            _ => StepState::Started,
        }
    }
}

/// A step about to run: its place in the run, and what it is.
#[derive(Clone, Debug, Default)]
pub struct StepStart {
    pub seq: u32,
    pub level: Option<String>,
    pub kind: String,
    /// How the step reads to a person (`restore config from latest:pre-deploy`).
    pub name: String,
}

/// How a step ended.
#[derive(Clone, Debug)]
pub struct StepEnd {
    pub state: StepState,
    /// The tail of what it printed.
    pub output: Option<String>,
    /// What it did, for the report (rows restored, the snapshot used...).
    pub detail: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Step {
    pub seq: u32,
    pub level: Option<String>,
    pub kind: String,
    pub name: String,
    pub state: StepState,
    pub started: String,
    pub finished: Option<String>,
    /// How many times it was started (more than one after a resume or
    /// retries).
    pub attempts: u32,
    pub output: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// Safe mode: every level failed; migrations and automatic runs are
/// refused until a person acknowledges it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct SafeMode {
    /// The run that failed.
    pub run: Option<String>,
    pub since: String,
    pub reason: String,
}

/// A migration target's state before its latest `migrate up`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LastGood {
    pub target: String,
    /// The newest change applied then; none when none was.
    pub change: Option<String>,
    /// When the `migrate up` that moved it on started (RFC 3339, UTC).
    pub recorded: String,
    pub actor: String,
}
