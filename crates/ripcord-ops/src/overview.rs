//! What a dashboard shows at a glance, as data: each target's newest
//! snapshot, each tier's freshness per target (green, amber or red), and
//! the repository's size. It only reads.

use chrono::{DateTime, Utc};
use ripcord_core::config::TargetConfig;
use ripcord_repo::manifest::{Content, Snapshot};
use ripcord_repo::Id;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::Result;

/// A tier's freshness turns amber when the newest snapshot has used this
/// share of its `max_age`: the next one is due soon, and a missed one
/// would make it red.
const AMBER_SHARE: f64 = 0.75;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fresh: younger than three quarters of `max_age`.
    Green,
    /// Still within `max_age`, but not by much.
    Amber,
    /// Overdue, or no snapshot of the tier yet.
    Red,
    /// The tier sets no `max_age`: nothing to judge by.
    Unjudged,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct TierFreshness {
    pub tier: String,
    pub target: String,
    /// A geo tier's own repository, without credentials; none for the main one.
    pub repository: Option<String>,
    pub max_age_seconds: Option<f64>,
    pub newest_snapshot: Option<String>,
    pub newest_time: Option<DateTime<Utc>>,
    pub age_seconds: Option<f64>,
    pub verdict: Verdict,
    /// Why a geo tier could not be judged (its repository did not open).
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct TargetOverview {
    pub name: String,
    /// `dir`, `sqlite` or `postgres`.
    pub kind: String,
    /// Where it lives; a database URL without its password.
    pub source: String,
    /// Snapshots of it in the main repository, safety snapshots included.
    pub snapshots: u64,
    pub last_snapshot: Option<String>,
    pub last_time: Option<DateTime<Utc>>,
    pub age_seconds: Option<f64>,
    /// The last snapshot's size of this target.
    pub last_bytes: Option<u64>,
}

/// The snapshot list with database passwords taken out of the sources:
/// what any front end may show.
pub fn snapshots(ctx: &Ctx) -> Result<Vec<(Id, Snapshot)>> {
    let repo = ctx.open_repo()?;
    let list = repo.snapshot_list()?;
    for d in &list.damaged {
        ctx.warn(d.warning());
    }
    Ok(list
        .snapshots
        .into_iter()
        .map(|(id, s)| (id, redacted(s)))
        .collect())
}

/// A snapshot with its database sources' passwords taken out.
pub fn redacted(mut s: Snapshot) -> Snapshot {
    for t in &mut s.targets {
        if matches!(t.content, Content::Postgres(_)) {
            t.source = ripcord_targets::postgres::redact(&t.source);
        }
    }
    s
}

/// Every configured target and its newest snapshot.
pub fn targets(ctx: &Ctx, snapshots: &[(Id, Snapshot)]) -> Vec<TargetOverview> {
    let now = Utc::now();
    ctx.config
        .targets
        .iter()
        .map(|(name, config)| {
            let of: Vec<&(Id, Snapshot)> = snapshots
                .iter()
                .filter(|(_, s)| s.target(name).is_some())
                .collect();
            let newest = of.iter().max_by_key(|(_, s)| s.time);
            TargetOverview {
                name: name.clone(),
                kind: config.kind().into(),
                source: source(config),
                snapshots: of.len() as u64,
                last_snapshot: newest.map(|(id, _)| id.to_string()),
                last_time: newest.map(|(_, s)| s.time),
                age_seconds: newest.map(|(_, s)| age(now, s.time)),
                last_bytes: newest.and_then(|(_, s)| s.target(name)).map(|t| t.size),
            }
        })
        .collect()
}

fn source(config: &TargetConfig) -> String {
    match config {
        TargetConfig::Dir { path, .. } => path.display().to_string(),
        TargetConfig::Sqlite { path, .. } => path.display().to_string(),
        TargetConfig::Postgres { url, .. } => ripcord_targets::postgres::redact(url),
    }
}

fn age(now: DateTime<Utc>, t: DateTime<Utc>) -> f64 {
    (now - t).num_milliseconds().max(0) as f64 / 1000.0
}

/// Each tier's freshness for each of its targets: the main repository's
/// tiers from `snapshots`, a geo tier's from its own repository.
pub fn tiers(ctx: &Ctx, snapshots: &[(Id, Snapshot)]) -> Vec<TierFreshness> {
    let now = Utc::now();
    let mut out = Vec::new();
    for (tier, config) in &ctx.config.tiers {
        let max = config.max_age();
        let (repository, theirs, error) = match &config.repository {
            None => (None, None, None),
            Some(url) => {
                let shown = ripcord_targets::postgres::redact(url);
                match crate::copy::open_other(ctx, url, config.password_command.as_deref())
                    .and_then(|repo| Ok(repo.snapshot_list()?.snapshots))
                {
                    Ok(s) => (Some(shown), Some(s), None),
                    Err(e) => (Some(shown), Some(Vec::new()), Some(e.to_string())),
                }
            }
        };
        for target in crate::schedule::tier_targets(ctx, config) {
            // A geo tier holds copies, whatever tier they had here.
            let newest = match &theirs {
                Some(list) => list
                    .iter()
                    .filter(|(_, s)| !s.is_safety() && s.target(&target).is_some())
                    .max_by_key(|(_, s)| s.time),
                None => snapshots
                    .iter()
                    .filter(|(_, s)| s.tier.as_deref() == Some(tier) && s.target(&target).is_some())
                    .max_by_key(|(_, s)| s.time),
            };
            let age_s = newest.map(|(_, s)| age(now, s.time));
            out.push(TierFreshness {
                tier: tier.clone(),
                target,
                repository: repository.clone(),
                max_age_seconds: max.map(|m| m.as_secs_f64()),
                newest_snapshot: newest.map(|(id, _)| id.to_string()),
                newest_time: newest.map(|(_, s)| s.time),
                age_seconds: age_s,
                verdict: if error.is_some() {
                    Verdict::Red
                } else {
                    verdict(age_s, max.map(|m| m.as_secs_f64()))
                },
                error: error.clone(),
            });
        }
    }
    out
}

/// Green, amber or red for a newest snapshot `age` against `max`.
pub fn verdict(age: Option<f64>, max: Option<f64>) -> Verdict {
    match (age, max) {
        (_, None) => Verdict::Unjudged,
        (None, Some(_)) => Verdict::Red,
        (Some(a), Some(m)) if a > m => Verdict::Red,
        (Some(a), Some(m)) if a > m * AMBER_SHARE => Verdict::Amber,
        _ => Verdict::Green,
    }
}

/// The bytes the repository's files hold (packs, indexes, snapshots).
pub fn repository_bytes(ctx: &Ctx) -> Result<u64> {
    let backend = ctx.backend()?;
    Ok(backend.list("")?.iter().map(|(_, size)| size).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict(Some(10.0), None), Verdict::Unjudged);
        assert_eq!(verdict(None, Some(60.0)), Verdict::Red);
        assert_eq!(verdict(Some(61.0), Some(60.0)), Verdict::Red);
        assert_eq!(verdict(Some(50.0), Some(60.0)), Verdict::Amber);
        assert_eq!(verdict(Some(45.0), Some(60.0)), Verdict::Green);
    }
}
