//! `ripcord unlock` and `ripcord repair`.

use anyhow::Result;

use crate::cli::RepairCommand;
use crate::ctx::Ctx;
use crate::output;

pub fn unlock(ctx: &Ctx, all: bool, dry_run: bool) -> Result<()> {
    let repo = ctx.open_repo()?;
    let temp_error = |e| anyhow::anyhow!("cannot look for unfinished temporary files: {e}");
    let (removed, temps) = if dry_run {
        let locks = ripcord_repo::lock::removable_locks(&repo, all)?;
        let temps = repo
            .backend()
            .count_stale_temp_files()
            .map_err(temp_error)?;
        (locks.into_iter().map(|(_, shown)| shown).collect(), temps)
    } else {
        let removed = ripcord_repo::lock::remove_locks(&repo, all)?;
        let temps = repo
            .backend()
            .remove_stale_temp_files()
            .map_err(temp_error)?;
        (removed, temps)
    };
    if ctx.json {
        output::print_json(&ripcord_ops::json::UnlockOutput {
            dry_run,
            removed_count: removed.len(),
            removed,
            temporary_files_removed: temps as u64,
        });
        return Ok(());
    }
    let would = if dry_run { "would remove" } else { "removed" };
    for r in &removed {
        ctx.say(format!("{would} {r}"));
    }
    let locks = output::counted(removed.len() as u64, "lock");
    let files = output::count(temps as u64, "temporary file", "temporary files");
    if dry_run {
        ctx.say(format!(
            "dry run: {locks} and {files} of interrupted writes would be removed; nothing was changed"
        ));
    } else {
        ctx.say(format!("{locks} removed"));
        if temps > 0 {
            ctx.say(format!("{files} of interrupted writes removed"));
        }
    }
    Ok(())
}

pub fn repair(ctx: &Ctx, cmd: RepairCommand) -> Result<()> {
    let repo = ctx.open_repo()?;
    match cmd {
        RepairCommand::Index { dry_run } => {
            let _lock = ctx.lock(&repo, !dry_run, "repair index")?;
            let (packs, skipped) = ripcord_repo::prune::rebuild_index_with(&repo, dry_run)?;
            for s in &skipped {
                ctx.warn(format!("unreadable pack left out of the index: {s}"));
            }
            if dry_run {
                ctx.say(format!(
                    "dry run: the index would be rebuilt from {}; nothing was changed",
                    output::counted(packs as u64, "pack")
                ));
            } else {
                ctx.say(format!(
                    "index rebuilt from {}",
                    output::counted(packs as u64, "pack")
                ));
            }
            if ctx.json {
                output::print_json(&ripcord_ops::json::RepairOutput {
                    dry_run,
                    pack_count: packs,
                    skipped: skipped.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
    }
    Ok(())
}
