//! `migrate plan --explain` and `lint`: for each change, what its safety
//! snapshot will cover and why, read from the scripts alone. `up` decides
//! the same way once names are resolved on the server and the triggers the
//! change's writes fire are looked up, so `up --dry-run` can only widen a
//! decision (to the whole database), never narrow it.

use std::collections::HashMap;

use serde::Serialize;

use crate::analyze::{self, Options};
use crate::{Plan, Result};

use super::prepare::Prepared;
use super::Scope;

/// One change's snapshot decision.
#[derive(Clone, Debug, Serialize)]
pub struct Explained {
    pub name: String,
    #[serde(flatten)]
    pub scope: Scope,
    /// The decision in a sentence: what is snapshotted and why.
    pub why: String,
    /// Each statement of the up script and what it does.
    pub statements: Vec<ExplainedStep>,
}

#[derive(Clone, Debug, Serialize)]
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
            // The analysis is of the script without its BEGIN/COMMIT
            // wrapper: its statements are the file's less the first and
            // the last, and shown at the file's lines.
            let file = analyze::analyze(&change.up.sql, options);
            let steps = if file.steps.len() == p.analysis.steps.len() + 2
                && analyze::unwrap_transaction(&change.up.sql, options.dialect).is_some()
            {
                &file.steps[1..file.steps.len() - 1]
            } else {
                &p.analysis.steps[..]
            };
            let lines: HashMap<usize, usize> = p
                .analysis
                .steps
                .iter()
                .zip(steps)
                .map(|(a, f)| (a.line, f.line))
                .collect();
            let line = |l: usize| lines.get(&l).copied().unwrap_or(l);
            Explained {
                name: change.name.clone(),
                why: p.why(&scope, snapshot_always, &line),
                scope,
                statements: steps
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
