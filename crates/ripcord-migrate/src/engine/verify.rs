//! `migrate verify`: every applied change's verify script again, on the
//! database as it is now, in a read-only transaction that is rolled back.

use std::time::Instant;

use serde::Serialize;

use super::db::{self, execute, Conn, Database};
use super::prepare::{self, verify_sql};
use super::resolve::clean_session;
use crate::tracking::ChangeState;
use crate::{Error, Plan, Result};

/// How one change's verification went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Passed,
    Failed,
    /// The change has no verify script.
    NoScript,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct VerifyChange {
    #[serde(rename = "change")]
    pub name: String,
    pub verdict: Verdict,
    /// The script was edited after the change was applied: it ran as it is now.
    pub drifted: bool,
    /// The database's message, with the script's line, when it failed.
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    /// The applied changes, in plan order.
    pub changes: Vec<VerifyChange>,
}

impl VerifyReport {
    pub fn failed(&self) -> impl Iterator<Item = &VerifyChange> {
        self.changes.iter().filter(|c| c.verdict == Verdict::Failed)
    }
}

/// Runs the verify script of every applied change (drifted ones with their
/// current file), each from a clean session in a read-only transaction
/// that is rolled back, so verifying changes nothing. Failures are
/// reported, not raised: every change is verified.
pub fn verify(db: &mut dyn Database, plan: &Plan) -> Result<VerifyReport> {
    let order = plan.order()?;
    let _lock = db.lock()?;
    let applied = prepare::recorded(db)?;
    let status = prepare::status(plan, &applied);
    let dialect = db.dialect();
    let mut report = VerifyReport {
        changes: Vec::new(),
    };
    for change in order {
        let state = status.change(&change.name).map(|s| s.state);
        if !matches!(state, Some(ChangeState::Applied | ChangeState::Drifted)) {
            continue;
        }
        let started = Instant::now();
        let drifted = state == Some(ChangeState::Drifted);
        let Some(script) = change.verify.as_ref().filter(|s| !s.is_blank()) else {
            report.changes.push(VerifyChange {
                name: change.name.clone(),
                verdict: Verdict::NoScript,
                drifted,
                error: None,
                duration_ms: 0,
            });
            continue;
        };
        clean_session(db)?;
        let error = read_only(db, &verify_sql(&script.sql, dialect))?;
        report.changes.push(VerifyChange {
            name: change.name.clone(),
            verdict: if error.is_some() {
                Verdict::Failed
            } else {
                Verdict::Passed
            },
            drifted,
            error: error.map(|e| format!("{}: {e}", script.path.display())),
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }
    Ok(report)
}

/// Runs `sql` in a read-only transaction and rolls it back; `Some(message)`
/// when it fails.
fn read_only(db: &mut dyn Database, sql: &str) -> Result<Option<String>> {
    let (begin, end) = match db.conn() {
        Conn::Postgres(_) => ("BEGIN READ ONLY", ""),
        Conn::Sqlite(_) => ("PRAGMA query_only = ON; BEGIN", "PRAGMA query_only = OFF"),
    };
    execute(db, begin).map_err(|e| Error::Refused {
        message: format!("cannot start a read-only transaction: {e}"),
        hint: "check that the database accepts connections".into(),
    })?;
    let result = execute(db, sql);
    // After a failure SQLite may have ended the transaction already.
    if let Err(e) = db::rollback(db) {
        if result.is_ok() {
            return Err(e);
        }
    }
    if !end.is_empty() {
        execute(db, end).map_err(|e| Error::Refused {
            message: format!("cannot leave read-only mode: {e}"),
            hint: "run the command again".into(),
        })?;
    }
    Ok(result.err().map(|e| e.to_string()))
}
