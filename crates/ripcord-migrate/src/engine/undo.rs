//! What undoing one applied change needs: the plan recorded with the change
//! when it was applied (its touched and created tables, whether it was
//! destructive, its down script as it was then), so that `down` never
//! re-reads an edited file. Changes recorded before plans were get one from
//! the files as they are now, as before.

use std::collections::BTreeSet;

use crate::analyze::{self, Analysis, Kind, Options, TableName};
use crate::tracking::{RecordedScript, RevertPlan, SchemaUndo};
use crate::{Change, Script};

use super::prepare::Prepared;

pub(crate) struct Undo<'p> {
    pub change: &'p Change,
    /// Position in the plan order.
    pub order: i32,
    /// The checksum of the up script as recorded.
    pub checksum: String,
    /// Existing tables the change touches.
    pub tables: BTreeSet<TableName>,
    pub created: BTreeSet<TableName>,
    pub destructive: bool,
    pub certain: bool,
    /// The down script that runs, and what it does.
    pub down: Option<Script>,
    pub down_analysis: Option<Analysis>,
    pub down_transactional: bool,
    /// Whether this comes from the plan recorded when the change was applied.
    pub recorded: bool,
    /// Its schema-only snapshot, when it has one.
    pub schema: Option<SchemaUndo>,
}

impl<'p> Undo<'p> {
    pub fn name(&self) -> &str {
        &self.change.name
    }

    /// From the files as they are now: for a change that has just failed
    /// in `up`, and for changes recorded without a plan.
    pub fn from_files(p: &Prepared<'p>) -> Undo<'p> {
        Undo {
            change: p.change,
            order: p.order,
            checksum: p.change.up.checksum.clone(),
            tables: p.analysis.tables.clone(),
            created: p.analysis.created.clone(),
            destructive: p.analysis.has(Kind::Destructive),
            certain: p.analysis.certain,
            down: p.down.as_ref().map(|sql| Script {
                path: down_path(p.change),
                sql: sql.clone(),
                checksum: p
                    .change
                    .down
                    .as_ref()
                    .map(|s| s.checksum.clone())
                    .unwrap_or_default(),
            }),
            down_analysis: p.down_analysis.clone(),
            down_transactional: p.down_transactional,
            recorded: false,
            schema: None,
        }
    }

    /// From the plan recorded when the change was applied; the plan's files
    /// only name it.
    pub fn from_record(
        change: &'p Change,
        order: i32,
        checksum: &str,
        plan: RevertPlan,
        options: &Options,
    ) -> Undo<'p> {
        let down_analysis = plan
            .down
            .as_ref()
            .map(|d| analyze::analyze(&d.sql, options));
        Undo {
            change,
            order,
            checksum: checksum.to_string(),
            tables: plan.tables.into_iter().collect(),
            created: plan.created.into_iter().collect(),
            destructive: plan.destructive,
            certain: plan.certain,
            down_transactional: plan.down.as_ref().is_none_or(|d| d.transactional),
            down: plan.down.map(|d| Script {
                path: down_path(change),
                sql: d.sql,
                checksum: d.checksum,
            }),
            down_analysis,
            recorded: true,
            schema: plan.schema,
        }
    }
}

/// The plan to record with a change as `up` applies it; `tables` are the
/// tables its safety snapshot covers.
pub(crate) fn revert_plan(p: &Prepared<'_>, tables: &BTreeSet<TableName>) -> RevertPlan {
    RevertPlan {
        version: RevertPlan::VERSION,
        tables: tables.iter().cloned().collect(),
        created: p.analysis.created.iter().cloned().collect(),
        destructive: p.analysis.has(Kind::Destructive),
        certain: p.analysis.certain,
        transactional: p.transactional,
        down: p.down.as_ref().map(|sql| RecordedScript {
            sql: sql.clone(),
            checksum: p
                .change
                .down
                .as_ref()
                .map(|s| s.checksum.clone())
                .unwrap_or_default(),
            transactional: p.down_transactional,
        }),
        schema: None,
    }
}

/// Where the down script came from, for messages.
fn down_path(change: &Change) -> std::path::PathBuf {
    change
        .down
        .as_ref()
        .map(|s| s.path.clone())
        .unwrap_or_else(|| format!("{} (recorded down script)", change.name).into())
}
