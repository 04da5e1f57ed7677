//! The migration state a snapshot of a database records, and what a
//! restore makes of it: a warning before it starts when the snapshot holds
//! another state than the live database, and the state the database
//! records afterwards.

use ripcord_core::config::TargetConfig;
use ripcord_migrate::tracking::{self, AppliedChange, State};
use ripcord_repo::manifest::{MigrationState, TargetSnapshot};
use serde::Serialize;

use crate::ctx::Ctx;

/// What a tracking-table read gave, as the manifest records it.
pub fn recorded_state(
    ctx: &Ctx,
    target: &str,
    read: Option<ripcord_migrate::Result<Option<Vec<AppliedChange>>>>,
    plan: Option<&ripcord_migrate::Plan>,
) -> Option<MigrationState> {
    match read? {
        Ok(rows) => rows.map(|rows| to_manifest(State::of(&rows, plan))),
        Err(e) => {
            ctx.warn(format!(
                "the snapshot of {target} records no migration state: its tracking tables \
                 could not be read ({e})"
            ));
            None
        }
    }
}

pub fn to_manifest(s: State) -> MigrationState {
    MigrationState {
        change: s.change,
        applied: s.applied,
        phase: s.phase,
        dirty: s.dirty,
    }
}

fn from_manifest(s: &MigrationState) -> State {
    State {
        change: s.change.clone(),
        applied: s.applied,
        phase: s.phase.clone(),
        dirty: s.dirty.clone(),
    }
}

/// A state as a sentence names it.
fn shown(s: Option<&MigrationState>) -> String {
    match s {
        Some(s) => s.to_string(),
        None => "no recorded migration state".into(),
    }
}

/// Whether two states differ; no tracking tables are as many changes as
/// tracking tables with none applied.
fn differ(a: Option<&MigrationState>, b: Option<&MigrationState>) -> bool {
    let empty = MigrationState::default();
    !a.unwrap_or(&empty).same_changes(b.unwrap_or(&empty))
}

/// A restore in place of a database target, compared with the migration
/// state of the live database.
#[derive(Serialize, Debug, Clone, schemars::JsonSchema)]
pub struct MigrationCheck {
    pub target: String,
    /// What the snapshot holds; `null` when it records none.
    #[serde(rename = "snapshot_migration")]
    pub snapshot: Option<MigrationState>,
    /// What the live database recorded before the restore.
    #[serde(rename = "live_migration")]
    pub live: Option<MigrationState>,
    /// Whether the two differ.
    pub differs: bool,
    /// Whether the restore brings back the tracking tables: a whole
    /// database, or selected tables that include `ripcord.changes`.
    pub tracking_restored: bool,
    /// A restore of selected tables: the tracking tables are left as they
    /// are, and these changes, applied since the snapshot's state, changed
    /// (or may have changed) a restored table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables_changed_since: Vec<String>,
    /// What the database records after the restore.
    #[serde(rename = "restored_migration")]
    pub after: Option<MigrationState>,
    /// Post-change fingerprints left to take that the restore made
    /// meaningless, forgotten (see docs/migrations.md).
    #[serde(skip_serializing_if = "is_zero")]
    pub pending_fingerprints_forgotten: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Before an in-place restore of `t` (a database) to `config`: compares the
/// snapshot's migration state with the live database's and warns when they
/// differ. `tables`: the `(schema, name)` of each restored table when the
/// restore is of selected tables (`--tables`, or a snapshot of selected
/// tables).
pub fn before_restore(
    ctx: &Ctx,
    t: &TargetSnapshot,
    config: &TargetConfig,
    tables: Option<&[(String, String)]>,
) -> MigrationCheck {
    let rows = match tracking::recorded(config) {
        Ok(rows) => rows,
        Err(e) => {
            ctx.warn(format!(
                "cannot read the migration state of {} before the restore ({e}); the \
                 snapshot holds {}",
                t.name,
                shown(t.migration.as_ref())
            ));
            None
        }
    };
    let plan = crate::migrate::plan_of(ctx, &t.name);
    let live = rows
        .as_ref()
        .map(|rows| to_manifest(State::of(rows, plan.as_ref())));
    let differs = differ(t.migration.as_ref(), live.as_ref());
    let mut check = MigrationCheck {
        target: t.name.clone(),
        snapshot: t.migration.clone(),
        live: live.clone(),
        differs,
        tracking_restored: tables.is_none_or(names_tracking_table),
        tables_changed_since: Vec::new(),
        after: None,
        pending_fingerprints_forgotten: 0,
    };
    if !differs {
        return check;
    }
    let then = shown(t.migration.as_ref());
    let now = shown(live.as_ref());
    match tables {
        Some(_) if check.tracking_restored => ctx.warn(format!(
            "the restored tables of {} come from migration state {then}; the live database is \
             at {now}. They include the tracking table, so afterwards the database records \
             {then} while the tables not named stay at {now}; `ripcord migrate status` and \
             `up` then go by {then}",
            t.name
        )),
        None => ctx.warn(format!(
            "snapshot holds {} at migration state {then}; the live database is at {now}. \
             The restore brings back the snapshot's tracking tables with its data: afterwards \
             the database records {then}, and `ripcord migrate up` applies the changes after it",
            t.name
        )),
        Some(tables) => {
            let since = match (&rows, &t.migration) {
                (Some(rows), Some(m)) => tracking::applied_since(rows, &from_manifest(m)),
                (Some(rows), None) => tracking::applied_since(rows, &State::default()),
                (None, _) => None,
            };
            let touched = since
                .map(|since| tracking::touching(&since, tables))
                .unwrap_or_default();
            let mut text = format!(
                "the restored tables of {} come from migration state {then}; the live database \
                 is at {now}. Only the named tables are restored, so the tracking tables are left \
                 as they are: they still record {now}, the state of the other tables",
                t.name
            );
            if !touched.is_empty() {
                text.push_str(&format!(
                    ". Changes applied since the snapshot changed (or may have changed) the \
                     restored tables: {}; `migrate status` still lists them as applied, but the \
                     restored tables are as they were before them. To bring the whole database \
                     back to the snapshot's state, restore it without --tables, or run `ripcord \
                     migrate down --to {}` instead",
                    touched.join(", "),
                    t.migration
                        .as_ref()
                        .and_then(|m| m.change.as_deref())
                        .unwrap_or("@root")
                ));
            }
            ctx.warn(text);
            check.tables_changed_since = touched;
        }
    }
    check
}

/// Whether a restore of selected tables brings back the tracking table
/// (PostgreSQL `ripcord.changes`) itself.
fn names_tracking_table(tables: &[(String, String)]) -> bool {
    tables.iter().any(|(s, n)| s == "ripcord" && n == "changes")
}

/// After a restore in place that brought the tracking tables back (see
/// [`MigrationCheck::tracking_restored`]): forgets what the restore made stale and records what the database records now, warning if it is
/// not the snapshot's state.
pub fn after_restore(ctx: &Ctx, check: &mut MigrationCheck, config: &TargetConfig) {
    match tracking::after_restore(config) {
        Ok((rows, forgotten)) => {
            let plan = crate::migrate::plan_of(ctx, &check.target);
            check.after = rows.map(|rows| to_manifest(State::of(&rows, plan.as_ref())));
            check.pending_fingerprints_forgotten = forgotten;
            if differ(check.after.as_ref(), check.snapshot.as_ref()) {
                ctx.warn(format!(
                    "after the restore {} records migration state {}, not the snapshot's {}; \
                     check it with `ripcord migrate status`",
                    check.target,
                    shown(check.after.as_ref()),
                    shown(check.snapshot.as_ref())
                ));
            }
        }
        Err(e) => ctx.warn(format!(
            "cannot read the migration state of {} after the restore ({e}); check it with \
             `ripcord migrate status`",
            check.target
        )),
    }
}
