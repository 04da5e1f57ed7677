//! `ripcord migrate up --bake DUR`: apply the pending changes, then watch
//! the guard for DUR. A critical rule breached reverts exactly the changes
//! this `up` applied, data included, as a run with a report (triggered by
//! the rule); otherwise the change has baked and stays.

use std::time::Duration;

use ripcord_core::config::guard::{Action, Mode, Severity};
use ripcord_migrate::engine::Note;
use ripcord_ops::migrate::{Applied, DownRequest, UpRequest};
use ripcord_ops::way_back::Call;
use ripcord_ops::{Ctx, Error, Result};
use serde::Serialize;

use crate::watch::{watch, WatchOptions, WatchReport};

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct BakeReport {
    /// How long the guard was to watch.
    pub bake_seconds: f64,
    /// Where a revert goes: the change before this `up` (`@root`: none).
    pub revert_to: String,
    /// The run that reverted this `up`'s changes; none when they baked.
    pub reverted_run: Option<String>,
    pub watch: WatchReport,
}

/// Applies, then bakes. Returns what `up` applied and, when it applied
/// something, how the bake went.
pub fn up_and_bake(
    ctx: &Ctx,
    req: &UpRequest,
    bake: Duration,
    note: &mut dyn FnMut(Note<'_>),
) -> Result<(Applied, Option<BakeReport>)> {
    if ctx.config.guard_spec.rules.is_empty() {
        return Err(Error::usage(
            "--bake watches the guard's rules, and ripcord.toml has none",
            "add [guard.probes.NAME] and [[guard.rules]] (docs/guard.md), or leave out --bake",
        ));
    }
    let applied = ripcord_ops::migrate::up(ctx, req, note)?;
    if req.dry_run || applied.report.changes.is_empty() {
        return Ok((applied, None));
    }
    // `up` recorded where the target was before it: that is where a revert goes.
    let revert_to = ripcord_ops::migrate::resolve_last_good(ctx, &applied.target, "@last-good")?;
    // While baking, every critical rule that enforces reverts the change.
    let rules: Vec<_> = ctx
        .config
        .guard_spec
        .rules
        .iter()
        .cloned()
        .map(|mut r| {
            if r.severity == Severity::Critical && r.mode == Mode::Enforce {
                r.action = Action::Rollback;
            }
            r
        })
        .collect();
    ctx.say(format!(
        "baking {} for {}: a critical rule breached reverts {} to {revert_to}",
        ripcord_core::text::counted(applied.report.changes.len() as u64, "change"),
        ripcord_core::duration::short(bake),
        applied.target
    ));
    let mut revert = |rule: &ripcord_core::config::guard::GuardRule, evidence: &[String]| {
        let reason = format!(
            "guard rule {} while baking: {}",
            rule.name,
            evidence.join("; ")
        );
        let trigger = format!("guard:{}", rule.name);
        let reverted = ripcord_ops::way_back::down(
            ctx,
            &DownRequest {
                format: req.format.clone(),
                to: revert_to.clone(),
                set: req.set.clone(),
                ..Default::default()
            },
            &mut |_| {},
            &Call {
                command: "migrate down",
                args: &[],
                reason: Some(&reason),
                trigger: Some(&trigger),
                run: None,
            },
        )?;
        Ok(reverted.run.unwrap_or_default())
    };
    let report = watch(
        ctx,
        &rules,
        &WatchOptions {
            duration: Some(bake),
            auto_rollback: true,
            stop_after_rollback: true,
        },
        &mut revert,
    )?;
    Ok((
        applied,
        Some(BakeReport {
            bake_seconds: bake.as_secs_f64(),
            revert_to,
            reverted_run: report.runs.first().cloned(),
            watch: report,
        }),
    ))
}
