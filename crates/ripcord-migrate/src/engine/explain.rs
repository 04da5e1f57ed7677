//! `migrate plan --explain` and `lint`: for each change, what its safety
//! snapshot will cover and why, read from the scripts alone. `up` decides
//! the same way once names are resolved on the server and the triggers the
//! change's writes fire are looked up, so `up --dry-run` can only widen a
//! decision (to the whole database), never narrow it.

use serde::Serialize;

use crate::analyze::Options;
use crate::{Plan, Result};

use super::prepare::Prepared;
use super::Scope;

/// One change's snapshot decision.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Explained {
    #[serde(rename = "change")]
    pub name: String,
    #[serde(flatten)]
    pub scope: Scope,
    /// The decision in a sentence: what is snapshotted and why.
    pub why: String,
    /// Each statement of the up script and what it does.
    pub statements: Vec<ExplainedStep>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ExplainedStep {
    pub line: usize,
    pub statement: String,
    pub effect: String,
}

/// Every change of `plan`, in plan order.
pub fn explain(plan: &Plan, options: &Options, snapshot_always: bool) -> Result<Vec<Explained>> {
    let order = plan.order()?;
    Ok(order
        .iter()
        .enumerate()
        .map(|(i, change)| {
            let p = Prepared::new(change, i as i32, options);
            let scope = p.scope(snapshot_always);
            Explained {
                name: change.name.clone(),
                why: p.why(&scope, snapshot_always),
                scope,
                statements: p
                    .file_steps
                    .iter()
                    .zip(&p.analysis.steps)
                    .map(|(f, a)| ExplainedStep {
                        line: f.line,
                        statement: f.statement.clone(),
                        effect: a.effect.to_string(),
                    })
                    .collect(),
            }
        })
        .collect())
}
