//! `ripcord unlock` and `ripcord repair`.

use anyhow::Result;

use crate::cli::RepairCommand;
use crate::ctx::Ctx;

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
    ctx.say(format!("{} lock(s) removed", removed.len()));
    let temps = repo
        .backend()
        .remove_stale_temp_files()
        .map_err(|e| anyhow::anyhow!("cannot remove unfinished temporary files: {e}"))?;
    if temps > 0 {
        ctx.say(format!(
            "{temps} temporary file(s) of interrupted writes removed"
        ));
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
                    "dry run: the index would be rebuilt from {packs} pack(s); nothing was changed"
                ));
            } else {
                ctx.say(format!("index rebuilt from {packs} pack(s)"));
            }
        }
    }
    Ok(())
}
