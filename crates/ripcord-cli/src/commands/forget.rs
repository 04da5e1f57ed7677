//! `ripcord forget` and `ripcord prune`.

use std::collections::BTreeMap;

use anyhow::Result;
use ripcord_migrate::tracking;
use ripcord_repo::manifest::Snapshot;
use ripcord_repo::retention::{self, Class, KeepPolicy, Pin, Pins, Policies};
use ripcord_repo::Id;

use crate::cli::ForgetArgs;
use crate::ctx::Ctx;
use crate::{output, CliError};

fn duration(text: &str) -> Result<std::time::Duration> {
    ripcord_core::duration::parse(text)
        .map_err(|e| crate::usage(e, "use a duration such as 72h or 30d"))
}

/// The user's policy from the --keep-* flags, else from `--tier`'s
/// `[tiers.T] keep`.
fn user_policy(ctx: &Ctx, args: &ForgetArgs) -> Result<KeepPolicy> {
    let p = KeepPolicy {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
        within: args.keep_within.as_deref().map(duration).transpose()?,
        tags: args
            .keep_tags
            .iter()
            .map(|t| retention::taglist(t))
            .collect(),
    };
    if !p.is_empty() {
        return Ok(p);
    }
    let Some(tier) = &args.tier else {
        return Ok(p);
    };
    let t = ctx.config.tiers.get(tier).ok_or_else(|| {
        crate::usage(
            format!("tier {tier:?} is not configured"),
            "add [tiers.NAME] with a keep policy, or pass --keep-* flags",
        )
    })?;
    KeepPolicy::from_config(&t.keep).map_err(|e| {
        crate::usage(
            format!("[tiers.{tier}.keep] within: {e}"),
            "use a duration such as 72h or 30d",
        )
    })
}

/// Whether any --keep-safety-* flag is given.
fn safety_flags(args: &ForgetArgs) -> bool {
    args.keep_safety_last.is_some()
        || args.keep_safety_daily.is_some()
        || args.keep_safety_within.is_some()
}

/// The safety snapshots' policy: the --keep-safety-* flags, else
/// `[safety.keep]` (whose default keeps the last 5 and 14 days). --keep-tag
/// applies to both classes.
fn safety_policy(ctx: &Ctx, args: &ForgetArgs) -> Result<KeepPolicy> {
    let mut p = if safety_flags(args) {
        KeepPolicy {
            last: args.keep_safety_last,
            daily: args.keep_safety_daily,
            within: args
                .keep_safety_within
                .as_deref()
                .map(duration)
                .transpose()?,
            ..KeepPolicy::default()
        }
    } else {
        let p = KeepPolicy::from_config(&ctx.config.safety.keep).map_err(|e| {
            crate::usage(
                format!("[safety.keep] within: {e}"),
                "use a duration such as 72h or 14d",
            )
        })?;
        if p.is_empty() {
            return Err(crate::usage(
                "[safety.keep] in ripcord.toml keeps nothing: every safety snapshot would be removed",
                "set last, daily or within there (e.g. last = 5, within = \"14d\"), or remove the \
                 table for the default; --keep-safety-last 0 removes them on purpose",
            ));
        }
        p
    };
    p.tags
        .extend(args.keep_tags.iter().map(|t| retention::taglist(t)));
    Ok(p)
}

/// The safety snapshots among `snaps` that migrations recorded in their
/// databases still need. Each database that a migration's safety snapshot
/// belongs to is asked once; one that cannot be asked pins all of its
/// migrations' safety snapshots as `Pin::Unknown`.
fn pins(ctx: &Ctx, snaps: &[(Id, Snapshot)]) -> Pins {
    let mut by_target: BTreeMap<String, Vec<Id>> = BTreeMap::new();
    for (id, s) in snaps {
        if s.migration_change().is_some() {
            for t in &s.targets {
                by_target.entry(t.name.clone()).or_default().push(*id);
            }
        }
    }
    let mut pins = Pins::new();
    for (target, ids) in by_target {
        let answer = match ctx.config.targets.get(&target) {
            None => Err(format!("target {target} is not in ripcord.toml")),
            Some(config) => tracking::pinned(config).map_err(|e| {
                let causes: Vec<String> = anyhow::Error::from(e)
                    .chain()
                    .map(|c| c.to_string())
                    .collect();
                causes.join(": ")
            }),
        };
        match answer {
            Ok(rows) => {
                for row in rows {
                    if let Some(id) = Id::from_hex(&row.snapshot) {
                        pins.insert(
                            id,
                            Pin::Change {
                                target: target.clone(),
                                change: row.change,
                            },
                        );
                    }
                }
            }
            Err(reason) => {
                for id in ids {
                    pins.entry(id).or_insert_with(|| Pin::Unknown {
                        target: target.clone(),
                        reason: reason.clone(),
                    });
                }
            }
        }
    }
    pins
}

/// What forgetting a pinned snapshot costs, for the warning under --force.
fn loss(id: &Id, pin: &Pin) -> String {
    match pin {
        Pin::Change { target, change } => format!(
            "snapshot {} is the safety snapshot of change {change}, which is applied to \
             {target}: rolling {change} back will lose the data it destroyed",
            id.short()
        ),
        Pin::Unknown { target, reason } => format!(
            "snapshot {} is a migration's safety snapshot on {target} and may still be needed \
             ({reason}): rolling that change back may lose the data it destroyed",
            id.short()
        ),
    }
}

/// Refuses to forget pinned snapshots named by id.
fn refuse_pinned(pinned: &[(Id, &Pin)]) -> anyhow::Error {
    let lines: Vec<String> = pinned
        .iter()
        .map(|(id, pin)| match pin {
            Pin::Change { target, change } => format!(
                "{} is the safety snapshot of change {change}, which is applied to {target}; \
                 rolling {change} back puts its data back from it",
                id.short()
            ),
            Pin::Unknown { target, reason } => format!(
                "{} is a migration's safety snapshot on {target}, and whether its change is \
                 still applied cannot be told: {reason}",
                id.short()
            ),
        })
        .collect();
    let unknown = pinned.iter().any(|(_, p)| matches!(p, Pin::Unknown { .. }));
    CliError::Refused {
        message: format!(
            "refusing to forget {}: {}",
            output::count(pinned.len() as u64, "pinned snapshot", "pinned snapshots"),
            lines.join("; ")
        ),
        hint: if unknown {
            "make the database reachable (check its [targets.NAME] and that it is up) so forget \
             can read which changes are applied, or pass --force if those changes are rolled \
             back or will never be"
                .into()
        } else {
            "roll those changes back first (`ripcord migrate down --to ...`), or pass --force to \
             forget them anyway: rolling those changes back will then lose the data they \
             destroyed"
                .into()
        },
    }
    .into()
}

pub fn forget(ctx: &Ctx, args: &ForgetArgs) -> Result<()> {
    let repo = ctx.open_repo()?;
    let user = user_policy(ctx, args)?;
    let by_policy = !user.is_empty() || safety_flags(args);
    if args.snapshots.is_empty() && !by_policy {
        return Err(crate::usage(
            "forget needs snapshot ids or a keep policy; refusing to remove every snapshot",
            "pass ids, or --keep-last N, --keep-daily N, --keep-within 72h, --keep-tag TAG, ... \
             (or --tier T with a configured policy)",
        ));
    }
    if !args.snapshots.is_empty() && by_policy {
        return Err(crate::usage(
            "give either snapshot ids or a keep policy, not both",
            "run forget twice",
        ));
    }
    let select = args.select.to_ops();
    let policies = Policies {
        user,
        safety: safety_policy(ctx, args)?,
    };
    let _lock = ctx.lock(&repo, !args.dry_run, "forget")?;
    let mut remove = Vec::new();
    let mut decisions = Vec::new();
    let mut warnings = Vec::new();
    // Of `remove`, how many are safety snapshots judged by their own policy.
    let mut safety = 0;
    if !args.snapshots.is_empty() {
        let mut named = Vec::new();
        for s in &args.snapshots {
            // By id, without needing the manifest: a damaged one can be
            // forgotten too (nothing can restore from it anyway).
            let id = repo.resolve_snapshot_id(s)?;
            remove.push(id);
            if let Ok(snap) = repo.load_snapshot(&id) {
                select.check_snapshot(&id.short(), &snap)?;
                named.push((id, snap));
            }
        }
        let pins = pins(ctx, &named);
        let pinned: Vec<(Id, &Pin)> = remove
            .iter()
            .filter_map(|id| Some((*id, pins.get(id)?)))
            .collect();
        if !pinned.is_empty() && !args.force {
            return Err(refuse_pinned(&pinned));
        }
        warnings.extend(pinned.iter().map(|(id, pin)| loss(id, pin)));
    } else {
        let list = repo.snapshot_list()?;
        for d in &list.damaged {
            ctx.warn(format!("{} (a keep policy never removes it)", d.warning()));
        }
        select.check_known(&ctx.config, list.snapshots.iter().map(|(_, s)| s))?;
        super::list::check_tier(
            ctx,
            args.tier.as_deref(),
            list.snapshots.iter().map(|(_, s)| s),
        )?;
        let snaps: Vec<_> = list
            .snapshots
            .into_iter()
            .filter(|(_, s)| select.matches(s))
            .filter(|(_, s)| args.tier.is_none() || s.tier == args.tier)
            .collect();
        let pins = pins(ctx, &snaps);
        decisions = retention::apply(&policies, &snaps, &pins, args.force);
        if !ctx.json {
            let rows: Vec<Vec<String>> = decisions
                .iter()
                .map(|d| {
                    vec![
                        d.id.short(),
                        output::time(&d.time),
                        d.group.clone(),
                        if d.keep {
                            "keep".into()
                        } else {
                            "remove".into()
                        },
                        d.reasons.join(","),
                    ]
                })
                .collect();
            output::table(&["ID", "TIME", "GROUP", "ACTION", "REASONS"], &rows);
        }
        for d in &decisions {
            match (&d.pin, d.keep) {
                (Some(pin), false) => warnings.push(loss(&d.id, pin)),
                (Some(Pin::Unknown { target, reason }), true)
                    if !d.reasons.iter().any(|r| r != "maybe-pinned") =>
                {
                    warnings.push(format!(
                        "kept safety snapshot {} of a migration on {target}: whether its change \
                         is still applied cannot be told ({reason}); make the database reachable, \
                         or pass --force if the change is rolled back",
                        d.id.short()
                    ))
                }
                _ => {}
            }
        }
        remove = decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect();
        safety = decisions
            .iter()
            .filter(|d| !d.keep && d.class == Class::Safety)
            .count();
    }
    for w in &warnings {
        ctx.warn(w);
    }
    let of_which = match safety {
        0 => String::new(),
        1 => " (1 of them a safety snapshot, under the safety policy)".to_string(),
        n => format!(" ({n} of them safety snapshots, under the safety policy)"),
    };
    let removed = output::counted(remove.len() as u64, "snapshot");
    let mut out = ripcord_ops::json::ForgetOutput {
        dry_run: args.dry_run,
        removed_count: remove.len(),
        removed: remove,
        decisions,
        warnings,
        prune: None,
    };
    if args.dry_run {
        ctx.say(format!("dry run: would remove {removed}{of_which}"));
    } else {
        for id in &out.removed {
            repo.delete_snapshot(id)?;
        }
        ctx.say(format!("removed {removed}{of_which}"));
        if args.prune {
            out.prune = Some(run_prune(ctx, &repo, false)?);
        }
    }
    if ctx.json {
        output::print_json(&out);
    }
    Ok(())
}

pub fn prune(ctx: &Ctx, dry_run: bool) -> Result<()> {
    let repo = ctx.open_repo()?;
    let _lock = ctx.lock(&repo, !dry_run, "prune")?;
    let r = run_prune(ctx, &repo, dry_run)?;
    if ctx.json {
        output::print_json(&r);
    }
    Ok(())
}

fn run_prune(
    ctx: &Ctx,
    repo: &ripcord_repo::Repository,
    dry_run: bool,
) -> Result<ripcord_repo::prune::PruneReport> {
    let r = ripcord_repo::prune::prune(repo, dry_run)?;
    ctx.say(format!(
        "{}{}; {} deleted, {} repacked into {}; {} freed",
        if dry_run { "dry run: " } else { "prune: " },
        output::count(r.blobs_unused as u64, "unused blob", "unused blobs"),
        output::counted(r.packs_deleted as u64, "pack"),
        r.packs_repacked,
        r.packs_written,
        output::bytes(r.bytes_freed)
    ));
    Ok(r)
}
