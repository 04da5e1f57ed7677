//! A tier's `keep` policy, applied by `schedule run`: in the main
//! repository to that tier's snapshots only (what `forget --tier T` does),
//! in a geo tier's repository to every snapshot there.
//!
//! Safety snapshots are judged by no policy here, so all of them are kept:
//! whether a migration still needs one is `forget`'s question, asked with
//! the databases at hand, not a timer's.

use ripcord_core::config::KeepConfig;
use ripcord_repo::retention::{self, KeepPolicy, Pins, Policies};
use ripcord_repo::{Id, Repository};

use crate::ctx::Ctx;
use crate::{Error, Result};

/// The snapshots `keep` removes from `repo` (of `tier` only, when given);
/// they are gone when it returns. The repository is locked exclusively
/// only when something is to go, so that a pass with nothing to forget
/// never waits for, nor blocks, a long restore.
pub fn apply(
    ctx: &Ctx,
    repo: &Repository,
    tier: Option<&str>,
    keep: &KeepConfig,
    what: &str,
) -> Result<Vec<Id>> {
    let user = KeepPolicy::from_config(keep).map_err(|e| {
        Error::usage(
            format!("[{what}.keep] within: {e}"),
            "use a duration such as 72h or 30d",
        )
    })?;
    if user.is_empty() {
        return Ok(Vec::new());
    }
    let policies = Policies {
        user,
        safety: KeepPolicy::default(),
    };
    let judge = || -> Result<Vec<Id>> {
        let snaps: Vec<_> = repo
            .snapshot_list()?
            .snapshots
            .into_iter()
            .filter(|(_, s)| tier.is_none() || s.tier.as_deref() == tier)
            .collect();
        Ok(retention::apply(&policies, &snaps, &Pins::new(), false)
            .into_iter()
            .filter(|d| !d.keep)
            .map(|d| d.id)
            .collect())
    };
    if judge()?.is_empty() {
        return Ok(Vec::new());
    }
    let _lock = ctx.lock(repo, true, "forget")?;
    // Judged again under the lock: another process may have changed it.
    let remove = judge()?;
    for id in &remove {
        repo.delete_snapshot(id)?;
    }
    Ok(remove)
}

/// Deletes the data no snapshot uses any more, under an exclusive lock.
pub fn prune(ctx: &Ctx, repo: &Repository) -> Result<ripcord_repo::prune::PruneReport> {
    let _lock = ctx.lock(repo, true, "prune")?;
    Ok(ripcord_repo::prune::prune(repo, false)?)
}
