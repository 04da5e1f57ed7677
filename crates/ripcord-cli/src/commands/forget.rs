//! `ripcord forget` and `ripcord prune`.

use anyhow::Result;
use ripcord_repo::retention::{self, KeepPolicy};

use crate::cli::ForgetArgs;
use crate::ctx::Ctx;
use crate::output;

fn duration(text: &str) -> Result<std::time::Duration> {
    ripcord_core::duration::parse(text)
        .map_err(|e| crate::usage(e, "use a duration such as 72h or 30d"))
}

fn policy(ctx: &Ctx, args: &ForgetArgs) -> Result<KeepPolicy> {
    let mut p = KeepPolicy {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
        within: args.keep_within.as_deref().map(duration).transpose()?,
    };
    if p.is_empty() {
        if let Some(tier) = &args.tier {
            let t = ctx.config.tiers.get(tier).ok_or_else(|| {
                crate::usage(
                    format!("tier {tier:?} is not configured"),
                    "add [tiers.NAME] with a keep policy, or pass --keep-* flags",
                )
            })?;
            let k = &t.keep;
            p = KeepPolicy {
                last: k.last,
                hourly: k.hourly,
                daily: k.daily,
                weekly: k.weekly,
                monthly: k.monthly,
                yearly: k.yearly,
                within: k.within.as_deref().map(duration).transpose()?,
            };
        }
    }
    Ok(p)
}

pub fn forget(ctx: &Ctx, args: &ForgetArgs) -> Result<()> {
    let repo = ctx.open_repo()?;
    let policy = policy(ctx, args)?;
    if args.snapshots.is_empty() && policy.is_empty() {
        return Err(crate::usage(
            "forget needs snapshot ids or a keep policy; refusing to remove every snapshot",
            "pass ids, or --keep-last N, --keep-daily N, --keep-within 72h, ... (or --tier T with a configured policy)",
        ));
    }
    if !args.snapshots.is_empty() && !policy.is_empty() {
        return Err(crate::usage(
            "give either snapshot ids or a keep policy, not both",
            "run forget twice",
        ));
    }
    let _lock = ctx.lock(&repo, !args.dry_run, "forget")?;
    let mut remove = Vec::new();
    if !args.snapshots.is_empty() {
        for s in &args.snapshots {
            // By id, without reading the manifest: a damaged one can be forgotten too.
            remove.push(repo.resolve_snapshot_id(s)?);
        }
        if ctx.json {
            output::print_json(&serde_json::json!({ "remove": remove, "dry_run": args.dry_run }));
        }
    } else {
        let list = repo.snapshot_list()?;
        for d in &list.damaged {
            ctx.warn(format!("{} (a keep policy never removes it)", d.warning()));
        }
        let snaps: Vec<_> = list
            .snapshots
            .into_iter()
            .filter(|(_, s)| args.tier.is_none() || s.tier == args.tier)
            .collect();
        let decisions = retention::apply(&policy, &snaps);
        if ctx.json {
            output::print_json(
                &serde_json::json!({ "decisions": decisions, "dry_run": args.dry_run }),
            );
        } else {
            let rows: Vec<Vec<String>> = decisions
                .iter()
                .map(|d| {
                    vec![
                        d.id.short(),
                        d.time
                            .with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M:%S")
                            .to_string(),
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
        remove = decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect();
    }
    if args.dry_run {
        ctx.say(format!(
            "dry run: would remove {} snapshot(s)",
            remove.len()
        ));
        return Ok(());
    }
    for id in &remove {
        repo.delete_snapshot(id)?;
    }
    ctx.say(format!("removed {} snapshot(s)", remove.len()));
    if args.prune {
        run_prune(ctx, &repo, false)?;
    }
    Ok(())
}

pub fn prune(ctx: &Ctx, dry_run: bool) -> Result<()> {
    let repo = ctx.open_repo()?;
    let _lock = ctx.lock(&repo, !dry_run, "prune")?;
    run_prune(ctx, &repo, dry_run)
}

fn run_prune(ctx: &Ctx, repo: &ripcord_repo::Repository, dry_run: bool) -> Result<()> {
    let r = ripcord_repo::prune::prune(repo, dry_run)?;
    if ctx.json {
        output::print_json(&r);
    } else {
        ctx.say(format!(
            "{}{} unused blob(s); {} pack(s) deleted, {} repacked into {}; {} freed",
            if dry_run { "dry run: " } else { "prune: " },
            r.blobs_unused,
            r.packs_deleted,
            r.packs_repacked,
            r.packs_written,
            output::bytes(r.bytes_freed)
        ));
    }
    Ok(())
}
