//! Documents of `migrate` and `rollback`.

use ripcord_migrate::engine::VerifyReport;
use ripcord_migrate::engine::{AdoptReport, DownChange, DownReport, Explained, UpReport};
use ripcord_migrate::tracking::ChangeStatus;
use schemars::JsonSchema;
use serde::Serialize;

/// `migrate plan`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PlanReport {
    pub format: String,
    pub dir: String,
    pub target: Option<String>,
    /// Whether `state` of each change could be read from the database.
    pub state_known: bool,
    /// Why it could not.
    pub state_note: Option<String>,
    pub phase: Option<String>,
    pub changes: Vec<PlanChange>,
    pub change_count: usize,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PlanChange {
    pub change: String,
    pub phase: Option<String>,
    pub format: String,
    pub version: Option<String>,
    pub up: String,
    pub down: bool,
    pub verify: bool,
    pub requires: Vec<String>,
    pub no_transaction: bool,
    pub repeatable: bool,
    /// `pending`, `applied`, `drifted`, `dirty` or `unknown`; none when the
    /// database could not be read.
    pub state: Option<String>,
    /// With `--explain`: what the safety snapshot covers and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Explained>,
}

/// `migrate status`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct StatusReport {
    pub format: String,
    pub target: String,
    pub phase: Option<String>,
    pub history_matches: bool,
    pub mismatch: Option<String>,
    pub counts: Counts,
    pub changes: Vec<ChangeStatus>,
    pub change_count: usize,
}

/// How many changes are in each state.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct Counts {
    pub applied: usize,
    pub pending: usize,
    pub drifted: usize,
    pub dirty: usize,
    pub unknown: usize,
}

/// One finding of `migrate lint`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct LintFinding {
    pub change: String,
    /// `destructive-without-down`, `no-transaction`, `own-transaction`,
    /// `table-rewrite`, `long-lock`, `no-verify`, `uncertain-tables`,
    /// `not-undone` or `syntax-error`.
    pub kind: &'static str,
    /// `warning`, or `error` for a `syntax-error`.
    pub severity: &'static str,
    pub file: String,
    pub line: Option<usize>,
    pub statement: Option<String>,
    pub detail: String,
}

/// `migrate lint`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct LintReport {
    pub format: String,
    pub dialect: &'static str,
    /// Each change: what its safety snapshot covers and why.
    pub changes: Vec<Explained>,
    pub change_count: usize,
    pub findings: Vec<LintFinding>,
}

/// `migrate up`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct UpOutput {
    pub target: String,
    #[serde(flatten)]
    pub report: UpReport,
    pub change_count: usize,
}

/// A row set aside for review by `down`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ReviewRow {
    pub table: String,
    pub change: String,
    pub row: String,
}

/// `migrate down` and `rollback`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DownOutput {
    pub target: String,
    /// The run that journaled it (none for a dry run): `ripcord report RUN`.
    pub run: Option<String>,
    #[serde(flatten)]
    pub report: DownReport,
    pub change_count: usize,
    /// Rows gone for good: rows written since that `on_conflict = snapshot`
    /// discarded, and rows of tables the changes had created.
    pub rows_lost: u64,
    pub review: Vec<ReviewRow>,
}

impl DownOutput {
    pub fn new(target: &str, report: DownReport, review: &[(String, String, String)]) -> Self {
        DownOutput {
            target: target.to_string(),
            run: None,
            change_count: report.changes.len(),
            rows_lost: report.changes.iter().map(DownChange::rows_lost).sum(),
            review: review
                .iter()
                .map(|(table, change, row)| ReviewRow {
                    table: table.clone(),
                    change: change.clone(),
                    row: row.clone(),
                })
                .collect(),
            report,
        }
    }
}

/// `migrate verify`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MigrateVerifyOutput {
    pub target: String,
    #[serde(flatten)]
    pub report: VerifyReport,
    pub change_count: usize,
}

/// `migrate adopt`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AdoptOutput {
    pub target: String,
    #[serde(flatten)]
    pub report: AdoptReport,
}
