//! `migrate adopt`: takes over a database another tool has migrated. Its
//! history is read ([`crate::adopt`]), checked against the files, and
//! recorded in ripcord's tracking tables in one transaction, as if ripcord
//! had applied those changes: each with its checksum and the revert plan of
//! its files (its down script, what it creates), and no safety snapshot.
//! Nothing is run. Killed half way, the transaction leaves nothing recorded,
//! and adopt can run again.

use std::collections::HashSet;
use std::time::Duration;

use ripcord_core::failpoint;
use serde::Serialize;

use super::db::{self, Database};
use super::prepare::{self, Prepared};
use super::resolve::{clean_session, qualified};
use super::undo;
use crate::adopt::{self, Found};
use crate::{Error, Plan, Result};

#[derive(Clone, Debug, Default)]
pub struct AdoptOptions {
    /// Record the history although it disagrees with the files.
    pub accept: bool,
    /// Check and report; record nothing.
    pub dry_run: bool,
    pub actor: String,
    /// Where the other tool keeps its history, when not where it does by
    /// default.
    pub history: Option<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct AdoptReport {
    pub tool: String,
    /// Where the history was read.
    pub history: String,
    pub dry_run: bool,
    /// The changes recorded as applied (on a dry run: that would be), in
    /// plan order.
    pub adopted: Vec<AdoptedChange>,
    /// The plan's changes the history does not have: the next `up` runs them.
    pub pending: Vec<String>,
    /// Disagreements between the history and the files (accepted, since
    /// the report exists).
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct AdoptedChange {
    #[serde(rename = "change")]
    pub name: String,
    /// How the history was checked against the file.
    pub check: String,
    /// Whether `down` has a down script for it.
    pub down: bool,
}

/// Reads the other tool's history, checks it and records it. Refuses (and
/// changes nothing) when ripcord already tracks the database, when the
/// history leaves a gap in the plan, and, unless `accept`, when the history
/// and the files disagree.
pub fn adopt(db: &mut dyn Database, plan: &Plan, opts: &AdoptOptions) -> Result<AdoptReport> {
    let order = plan.order()?;
    let _lock = db.lock()?;
    let recorded = prepare::recorded(db)?;
    if !recorded.is_empty() {
        return Err(Error::Refused {
            message: format!(
                "ripcord already tracks this database ({} recorded, the first {}); \
                 nothing was adopted",
                ripcord_core::text::counted(recorded.len() as u64, "change"),
                recorded[0].name
            ),
            hint: "adopt takes over a database only once; run `ripcord migrate status`".into(),
        });
    }
    let Found {
        table,
        applied,
        problems,
        notes,
    } = adopt::read(db, plan, opts.history.as_deref())?;
    let applied_names: HashSet<&str> = applied.iter().map(|s| s.change.as_str()).collect();

    // The applied versioned changes must be the start of the plan: a change
    // the plan has before an applied one, never run, cannot be recorded as
    // run, and `up` would not run it before what follows.
    let versioned: Vec<&crate::Change> = order.iter().copied().filter(|c| !c.repeatable).collect();
    if let Some(last) = versioned
        .iter()
        .rposition(|c| applied_names.contains(c.name.as_str()))
    {
        let gaps: Vec<&str> = versioned[..last]
            .iter()
            .filter(|c| !applied_names.contains(c.name.as_str()))
            .map(|c| c.name.as_str())
            .collect();
        if !gaps.is_empty() {
            return Err(Error::Refused {
                message: format!(
                    "the history in {table} does not follow the plan: the database never ran {}, \
                     which the plan has before {}, which it ran{}; nothing was adopted",
                    gaps.join(", "),
                    versioned[last].name,
                    if problems.is_empty() {
                        String::new()
                    } else {
                        format!("; also: {}", problems.join("; "))
                    }
                ),
                hint: "run the missing changes with the other tool first, or move them after the \
                       applied ones in the plan; --accept cannot record a change that never ran"
                    .into(),
            });
        }
    }
    if !problems.is_empty() && !opts.accept {
        return Err(Error::Refused {
            message: format!(
                "the history in {table} does not match the files: {}; nothing was adopted",
                problems.join("; ")
            ),
            hint: "restore the files the database ran (from version control), or pass --accept \
                   to record the history as it is, with the files as they are now"
                .into(),
        });
    }

    let options = prepare::options(db);
    let mut work: Vec<Prepared> = order
        .iter()
        .enumerate()
        .filter(|(_, c)| applied_names.contains(c.name.as_str()))
        .map(|(i, c)| Prepared::new(c, i as i32, &options))
        .collect();
    let check_of = |name: &str| {
        applied
            .iter()
            .find(|s| s.change == name)
            .map(|s| s.check.clone())
            .unwrap_or_default()
    };
    let report = AdoptReport {
        tool: plan.format.name().into(),
        history: table.clone(),
        dry_run: opts.dry_run,
        adopted: work
            .iter()
            .map(|p| AdoptedChange {
                name: p.name().into(),
                check: check_of(p.name()),
                down: p.down.is_some(),
            })
            .collect(),
        pending: order
            .iter()
            .filter(|c| !applied_names.contains(c.name.as_str()))
            .map(|c| c.name.clone())
            .collect(),
        problems,
        notes,
    };
    if opts.dry_run || work.is_empty() {
        return Ok(report);
    }
    // Tables as the server resolves them now, as `up` would have.
    for p in work.iter_mut() {
        clean_session(db)?;
        p.analysis = qualified(db, &p.analysis)?;
    }
    db.ensure_schema()?;
    db::begin(db)?;
    let result = (|| -> Result<()> {
        for p in &work {
            let detail = format!(
                "adopted from {} ({}): recorded as applied, not run; {}",
                table,
                plan.format,
                check_of(p.name())
            );
            db.record_applied(
                p.name(),
                p.order,
                &p.change.up.checksum,
                &opts.actor,
                None,
                Duration::ZERO,
                &detail,
            )?;
            db.record_plan(p.name(), &undo::revert_plan(p, &p.analysis.tables))?;
            if !p.transactional {
                db.record_non_transactional(p.name())?;
            }
            failpoint::hit("migrate-adopt-recorded");
        }
        Ok(())
    })();
    match result {
        Ok(()) => db::commit(db)?,
        Err(e) => {
            let _ = db::rollback(db);
            return Err(e);
        }
    }
    Ok(report)
}
