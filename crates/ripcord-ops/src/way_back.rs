//! The ways back a person takes by hand, an in-place `restore`, `migrate
//! down` and `rollback`, as runs: one at a time (the single-flight lock a
//! recovery takes), journaled in the catalog, audited, and reported on like
//! a recovery (`ripcord report RUN`).

use ripcord_catalog::flight::{Acquired, Holder};
use ripcord_catalog::runs::{new_run_id, NewRun, RunResult, StepEnd, StepStart, StepState};
use ripcord_catalog::Catalog;
use ripcord_core::{Class, Classify};

use crate::audit::{self, Record};
use crate::ctx::Ctx;
use crate::migrate::{DownRequest, Reverted};
use crate::restore::{RestoreOptions, RestoreResult};
use crate::Result;
use ripcord_migrate::engine::Note;

/// How a front end called a command: what the audit records of it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Call<'a> {
    /// As typed after `ripcord`: `restore`, `migrate down`, `rollback`.
    pub command: &'a str,
    pub args: &'a [String],
    /// Why, from `--reason`.
    pub reason: Option<&'a str>,
    /// Who or what started it when not a person: `guard:RULE`.
    pub trigger: Option<&'a str>,
    /// The run's id, when the front end names it before it begins.
    pub run: Option<&'a str>,
}

/// `ripcord restore`: in place, a run of one `restore` step; into another
/// place, only audited. A dry run is neither.
pub fn restore(ctx: &Ctx, opts: &RestoreOptions, call: &Call<'_>) -> Result<RestoreResult> {
    if opts.dry_run {
        return crate::restore::run(ctx, opts);
    }
    if opts.into.is_some() {
        let result = crate::restore::run(ctx, opts);
        audited(ctx, call, None, &result);
        return result;
    }
    let name = format!(
        "restore {} from {}",
        if opts.targets.is_empty() {
            "every target".to_string()
        } else {
            opts.targets.join(", ")
        },
        opts.snapshot
    );
    let (run, result) = as_run(ctx, call, "restore", "restore", &name, || {
        let r = crate::restore::run(ctx, opts)?;
        let data = serde_json::json!({
            "snapshot": r.snapshot.to_string(),
            "snapshot_time": r.snapshot_time,
            "safety_snapshot": r.safety_snapshot.map(|s| s.to_string()),
        });
        let detail = format!(
            "restored {} from {}",
            r.targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            r.snapshot.short()
        );
        Ok((r, detail, Some(data)))
    });
    let mut r = result?;
    r.run = run;
    Ok(r)
}

/// `ripcord migrate down` and `ripcord rollback`: a run of one
/// `migrate-down` step, with the data accounting in its journal. A dry run
/// is not one.
pub fn down(
    ctx: &Ctx,
    req: &DownRequest,
    note: &mut dyn FnMut(Note<'_>),
    call: &Call<'_>,
) -> Result<Reverted> {
    if req.dry_run {
        return crate::migrate::down(ctx, req, note);
    }
    let kind = if call.command == "rollback" {
        "rollback"
    } else {
        "migrate-down"
    };
    let name = format!("migrate down to {}", req.to);
    let (run, result) = as_run(ctx, call, kind, "migrate-down", &name, || {
        let r = crate::migrate::down(ctx, req, note)?;
        let detail = format!(
            "{} reverted on {}",
            ripcord_core::text::counted(r.report.changes.len() as u64, "change"),
            r.target
        );
        let data = serde_json::to_value(&r.report).ok();
        Ok((r, detail, data))
    });
    let mut r = result?;
    r.run = run;
    Ok(r)
}

/// Runs `act` as a run of one step: the single-flight lock, the run and
/// its step journaled before and after, then the audit entry. Input that
/// `act` refuses as bad leaves no run behind.
fn as_run<T>(
    ctx: &Ctx,
    call: &Call<'_>,
    kind: &str,
    step_kind: &str,
    step_name: &str,
    act: impl FnOnce() -> Result<(T, String, Option<serde_json::Value>)>,
) -> (Option<String>, Result<T>) {
    let mut catalog = match ctx.catalog() {
        Ok(c) => c,
        Err(e) => return (None, Err(e.into())),
    };
    let id = call.run.map_or_else(new_run_id, str::to_string);
    let hint = "one way back acts at a time: wait for the run (`ripcord status`), then try again";
    let _here = match crate::local_flight::claim(ctx, &id, hint) {
        Ok(c) => c,
        Err(refused) => {
            let refused = Err(refused);
            audited(ctx, call, None, &refused);
            return (None, refused);
        }
    };
    match catalog.acquire_flight(&Holder::this_process(&id)) {
        Ok(Acquired::Taken) => {}
        Ok(Acquired::TakenOver(dead)) => took_over(ctx, &mut *catalog, &dead),
        Ok(Acquired::Held(h)) => {
            let refused = Err(crate::recover::in_progress(
                &h,
                "one way back acts at a time: wait for the run (`ripcord status`), then try again",
            ));
            audited(ctx, call, None, &refused);
            return (None, refused);
        }
        Err(e) => return (None, Err(e.into())),
    }
    let journaled = catalog
        .begin_run(&NewRun {
            id: id.clone(),
            kind: kind.into(),
            level: None,
            reason: call
                .reason
                .map_or_else(|| format!("manual {}", call.command), str::to_string),
            trigger: call.trigger.unwrap_or("manual").into(),
            actor: ctx.actor(),
        })
        .and_then(|_| {
            catalog.start_step(
                &id,
                &StepStart {
                    seq: 1,
                    level: None,
                    kind: step_kind.into(),
                    name: step_name.into(),
                },
            )
        });
    if let Err(e) = journaled {
        let _ = catalog.release_flight(&id);
        return (None, Err(e.into()));
    }
    let outcome = act();
    let result = match outcome {
        Err(e) if e.class() == Class::Usage => {
            // Bad input changed nothing: no run, no entry.
            let _ = catalog.discard_run(&id);
            let _ = catalog.release_flight(&id);
            return (None, Err(e));
        }
        Err(e) => {
            let end = StepEnd {
                state: StepState::Failed,
                output: Some(ripcord_targets::postgres::redact(&e.chain())),
                detail: None,
            };
            finish(ctx, &mut *catalog, &id, &end, RunResult::Failed);
            Err(e)
        }
        Ok((value, detail, data)) => {
            let end = StepEnd {
                state: StepState::Succeeded,
                output: Some(detail),
                detail: data,
            };
            finish(ctx, &mut *catalog, &id, &end, RunResult::Succeeded);
            Ok(value)
        }
    };
    audited(ctx, call, Some(&id), &result);
    (Some(id), result)
}

/// Journals the step's end and the run's, and gives the lock up. The way
/// back has already acted: a journal that cannot be written is a warning.
fn finish(ctx: &Ctx, catalog: &mut dyn Catalog, id: &str, end: &StepEnd, result: RunResult) {
    let written = catalog
        .end_step(id, 1, end)
        .and_then(|_| catalog.finish_run(id, result))
        .and_then(|_| catalog.release_flight(id));
    if let Err(e) = written {
        ctx.warn(format!("run {id} is not fully journaled: {e}"));
    }
}

/// A way back killed part way left its run open: it cannot be resumed
/// (run the command again, it is safe to repeat), so it is closed as failed.
/// A recovery's run stays open for `ripcord resume`.
pub(crate) fn took_over(ctx: &Ctx, catalog: &mut dyn Catalog, dead: &Holder) {
    let kind = catalog.run(&dead.run).ok().flatten().map(|r| r.kind);
    match kind.as_deref() {
        Some("recover") | None => ctx.warn(format!(
            "run {} (pid {} on {}, started {}) ended without finishing; `ripcord resume` goes on with it",
            dead.run, dead.pid, dead.host, dead.started
        )),
        Some(kind) => {
            let _ = catalog.finish_run(&dead.run, RunResult::Failed);
            ctx.warn(format!(
                "run {} ({kind}, pid {} on {}, started {}) was stopped before it ended; \
                 it is recorded as failed",
                dead.run, dead.pid, dead.host, dead.started
            ));
        }
    }
}

fn audited<T>(ctx: &Ctx, call: &Call<'_>, run: Option<&str>, result: &Result<T>) {
    let error = result.as_ref().err().map(|e| (e.class(), e.to_string()));
    if let Some(outcome) = audit::outcome(error.as_ref().map(|(c, m)| (*c, m.as_str()))) {
        audit::record(
            ctx,
            &Record {
                command: call.command,
                args: call.args,
                reason: call.reason,
                result: outcome,
                run,
            },
        );
    }
}
