//! `ripcord unlock` and `ripcord repair`.

use anyhow::Result;

use crate::cli::RepairCommand;
use crate::ctx::Ctx;
use crate::output;

pub fn unlock(ctx: &Ctx, all: bool, dry_run: bool) -> Result<()> {
    let repo = ctx.open_repo()?;
    if dry_run {
        let locks = ripcord_repo::lock::removable_locks(&repo, all)?;
        for (_, shown) in &locks {
            ctx.say(format!("would remove {shown}"));
        }
        ctx.say(format!(
            "dry run: {} lock(s) would be removed, and the temporary files of interrupted \
             writes; nothing was changed",
            locks.len()
        ));
        return Ok(());
    }
    let removed = ripcord_repo::lock::remove_locks(&repo, all)?;
    for r in &removed {
        ctx.say(format!("removed {r}"));
    }
    ctx.say(format!(
        "{} removed",
        output::counted(removed.len() as u64, "lock")
    ));
    let temps = repo
        .backend()
        .remove_stale_temp_files()
        .map_err(|e| anyhow::anyhow!("cannot remove unfinished temporary files: {e}"))?;
    if temps > 0 {
        ctx.say(format!(
            "{} of interrupted writes removed",
            output::count(temps as u64, "temporary file", "temporary files")
        ));
    }
    if ctx.json {
        output::print_json(&ripcord_ops::json::UnlockOutput {
            removed_count: removed.len(),
            removed: removed.iter().map(|r| r.to_string()).collect(),
            temporary_files_removed: temps as u64,
        });
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
                    pack_count: packs,
                    skipped: skipped.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
    }
    Ok(())
}
