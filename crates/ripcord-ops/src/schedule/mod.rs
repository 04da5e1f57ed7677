//! `ripcord schedule run`: one pass over the tiers, meant for a timer that
//! fires every minute. A tier whose newest snapshot of a target is older
//! than its `every` gets one snapshot of its due targets, then its `keep`
//! policy; a geo tier gets the main repository's newest snapshot of each
//! due target copied into its own repository, then its `keep` there.
//!
//! A pass decides from the snapshots themselves, not from a record of past
//! passes: a second pass right after finds nothing due, and a machine that
//! was off for many periods catches up with one snapshot, not one per
//! period missed.

pub mod flight;
pub mod units;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ripcord_core::config::TierConfig;
use ripcord_core::Classify;
use ripcord_repo::copy::Copies;
use ripcord_repo::manifest::Snapshot;
use ripcord_repo::{Id, Repository};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::{Error, Result};

/// What one action of a pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// A snapshot of the tier's due targets.
    Snapshot,
    /// The tier's `keep` policy removed snapshots.
    Forget,
    /// Data no snapshot uses was deleted, after a forget.
    Prune,
    /// Snapshots copied into a geo tier's repository.
    Copy,
}

/// One thing a pass did, or tried to do and could not.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ScheduleAction {
    pub action: ActionKind,
    /// The tier; `null` for the prune of the main repository, which
    /// follows every tier's forget.
    pub tier: Option<String>,
    /// The repository acted on.
    pub repository: String,
    /// The targets snapshotted or copied; empty for forget and prune.
    #[serde(serialize_with = "crate::json::target_list")]
    #[schemars(with = "Vec<crate::json::TargetName>")]
    pub targets: Vec<String>,
    /// The snapshot taken, the copies made, or the snapshots forgotten.
    pub snapshots: Vec<Id>,
    pub ok: bool,
    /// One line a person reads: what was done, or what went wrong.
    pub detail: String,
    /// How to fix it, when it failed and ripcord knows.
    pub hint: Option<String>,
}

/// `schedule run --json`.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ScheduleReport {
    /// Another pass was running: this one did nothing and exits 0.
    pub skipped: bool,
    /// The pass that holds the lock, when skipped: its pid, host and start.
    pub holder: Option<String>,
    /// What was due and done, in order; empty when nothing was due.
    pub actions: Vec<ScheduleAction>,
    /// No action failed (exit 1 otherwise).
    pub ok: bool,
    /// Webhooks `schedule-failed` could not be delivered to.
    pub warnings: Vec<String>,
    pub seconds: f64,
}

/// The report of a pass that found another one running.
fn skipped(ctx: &Ctx, holder: String, start: Instant) -> ScheduleReport {
    ctx.say(format!(
        "another schedule pass is running ({}); this one does nothing",
        if holder.is_empty() {
            "it is starting"
        } else {
            &holder
        }
    ));
    ScheduleReport {
        skipped: true,
        holder: Some(holder),
        actions: Vec::new(),
        ok: true,
        warnings: Vec::new(),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Runs one pass. Bad configuration and a main repository that does not
/// open are errors; everything else that fails is a failed action, and
/// the other actions still run.
pub fn run(ctx: &Ctx) -> Result<ScheduleReport> {
    let start = Instant::now();
    // Without a configuration there is no catalog to put the lock beside.
    ctx.config.repository_url()?;
    let _flight = match flight::acquire(&ctx.config.catalog_path())? {
        flight::Acquired::Yes(f) => f,
        flight::Acquired::Busy(holder) => return Ok(skipped(ctx, holder, start)),
    };
    // Hosts that share a catalog in PostgreSQL take turns through it too;
    // the lock lasts as long as this connection.
    let _shared = match ctx.config.catalog.url.is_some() {
        true => {
            let mut catalog = ctx.catalog()?;
            if let Some(holder) = catalog.try_shared_lock("schedule")? {
                return Ok(skipped(ctx, holder, start));
            }
            Some(catalog)
        }
        false => None,
    };
    let scheduled: Vec<(&String, &TierConfig, Duration)> = ctx
        .config
        .tiers
        .iter()
        .filter_map(|(name, t)| Some((name, t, t.every()?)))
        .collect();
    if scheduled.is_empty() {
        ctx.say("no tier has `every`: nothing is scheduled");
    }
    let repo = ctx.open_repo()?;
    let mut actions = Vec::new();
    let mut pass = Pass {
        ctx,
        repo: &repo,
        location: repo.location(),
        actions: &mut actions,
    };
    pass.snapshots(&scheduled)?;
    pass.retention(&scheduled);
    for (name, tier, every) in &scheduled {
        if let Some(url) = &tier.repository {
            pass.geo(name, tier, url, *every);
        }
    }
    let failed: Vec<&ScheduleAction> = actions.iter().filter(|a| !a.ok).collect();
    let warnings = if failed.is_empty() {
        Vec::new()
    } else {
        notify_failed(ctx, &failed)
    };
    for w in &warnings {
        ctx.warn(w);
    }
    Ok(ScheduleReport {
        skipped: false,
        holder: None,
        ok: failed.is_empty(),
        actions,
        warnings,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Sends `schedule-failed` with the failed actions.
fn notify_failed(ctx: &Ctx, failed: &[&ScheduleAction]) -> Vec<String> {
    let text = format!(
        "schedule: {} failed: {}",
        crate::report::counted(failed.len() as u64, "action"),
        failed
            .iter()
            .map(|a| a.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let items = failed
        .iter()
        .map(|a| serde_json::to_value(a).expect("plain fields serialize"))
        .collect();
    crate::notify::send(
        &ctx.config,
        &crate::notify::Event::about("schedule-failed", text, items),
    )
}

/// How early a snapshot may come: a tenth of `every`, at most a minute. A
/// timer that fires every minute then keeps a tier's snapshots `every`
/// apart instead of drifting a minute later each period.
fn slack(every: Duration) -> Duration {
    (every / 10).min(Duration::from_secs(60))
}

/// Whether a target whose newest snapshot was taken at `newest` is due.
pub fn is_due(newest: Option<DateTime<Utc>>, every: Duration, now: DateTime<Utc>) -> bool {
    match newest {
        None => true,
        Some(t) => (now - t).to_std().unwrap_or_default() + slack(every) >= every,
    }
}

/// The targets a tier covers: its `targets`, else every configured one.
pub fn tier_targets(ctx: &Ctx, tier: &TierConfig) -> Vec<String> {
    if tier.targets.is_empty() {
        ctx.config.targets.keys().cloned().collect()
    } else {
        tier.targets.clone()
    }
}

/// When the newest snapshot holding `target` (of `tier`, when given; never
/// a safety snapshot) was taken.
fn newest(snaps: &[(Id, Snapshot)], tier: Option<&str>, target: &str) -> Option<DateTime<Utc>> {
    newest_of(snaps, tier, target).map(|(_, s)| s.time)
}

fn newest_of<'a>(
    snaps: &'a [(Id, Snapshot)],
    tier: Option<&str>,
    target: &str,
) -> Option<&'a (Id, Snapshot)> {
    snaps
        .iter()
        .filter(|(_, s)| !s.is_safety() && s.target(target).is_some())
        .filter(|(_, s)| tier.is_none() || s.tier.as_deref() == tier)
        .max_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)))
}

struct Pass<'a> {
    ctx: &'a Ctx,
    repo: &'a Repository,
    location: String,
    actions: &'a mut Vec<ScheduleAction>,
}

impl Pass<'_> {
    fn push(
        &mut self,
        action: ActionKind,
        tier: Option<&str>,
        repository: &str,
        targets: Vec<String>,
        outcome: std::result::Result<(Vec<Id>, String), Error>,
    ) {
        let entry = match outcome {
            Ok((snapshots, detail)) => {
                self.ctx.say(&detail);
                ScheduleAction {
                    action,
                    tier: tier.map(str::to_string),
                    repository: repository.to_string(),
                    targets,
                    snapshots,
                    ok: true,
                    detail,
                    hint: None,
                }
            }
            Err(e) => {
                let what = match action {
                    ActionKind::Snapshot => "snapshot",
                    ActionKind::Forget => "forget",
                    ActionKind::Prune => "prune",
                    ActionKind::Copy => "copy",
                };
                let detail = format!(
                    "{}{what} failed: {}",
                    tier.map_or(String::new(), |t| format!("tier {t}: ")),
                    e.chain()
                );
                self.ctx.warn(&detail);
                ScheduleAction {
                    action,
                    tier: tier.map(str::to_string),
                    repository: repository.to_string(),
                    targets,
                    snapshots: Vec::new(),
                    ok: false,
                    detail,
                    hint: e.hint(),
                }
            }
        };
        self.actions.push(entry);
    }

    /// One snapshot per local tier, of its due targets.
    fn snapshots(&mut self, scheduled: &[(&String, &TierConfig, Duration)]) -> Result<()> {
        let list = self.repo.snapshot_list()?;
        for d in &list.damaged {
            self.ctx.warn(d.warning());
        }
        let now = Utc::now();
        for (name, tier, every) in scheduled.iter().filter(|(_, t, _)| !t.is_geo()) {
            let due: Vec<String> = tier_targets(self.ctx, tier)
                .into_iter()
                .filter(|t| is_due(newest(&list.snapshots, Some(name), t), *every, now))
                .collect();
            if due.is_empty() {
                continue;
            }
            let outcome = self.take(name, &due);
            let location = self.location.clone();
            self.push(ActionKind::Snapshot, Some(name), &location, due, outcome);
        }
        Ok(())
    }

    fn take(&self, tier: &str, targets: &[String]) -> Result<(Vec<Id>, String)> {
        let _lock = self.ctx.lock(self.repo, false, "snapshot")?;
        let r = crate::snapshot::take(self.ctx, self.repo, targets, &[], Some(tier.to_string()))?;
        Ok((
            vec![r.id],
            format!(
                "tier {tier}: snapshot {} of {} ({}, {} new)",
                r.short_id,
                targets.join(", "),
                crate::report::bytes(r.size),
                crate::report::bytes(r.stats.new_bytes)
            ),
        ))
    }

    /// Every local tier's `keep`, then one prune when anything went.
    fn retention(&mut self, scheduled: &[(&String, &TierConfig, Duration)]) {
        let mut forgot = false;
        for (name, tier, _) in scheduled.iter().filter(|(_, t, _)| !t.is_geo()) {
            let outcome = crate::keep::apply(
                self.ctx,
                self.repo,
                Some(name),
                &tier.keep,
                &tiers_key(name),
            );
            forgot |= outcome.as_ref().is_ok_and(|r| !r.is_empty());
            self.forgotten(name, self.location.clone(), outcome);
        }
        if forgot {
            let outcome = pruned(self.ctx, self.repo);
            let location = self.location.clone();
            self.push(ActionKind::Prune, None, &location, Vec::new(), outcome);
        }
    }

    /// Records a forget that removed something, or failed.
    fn forgotten(&mut self, tier: &str, location: String, outcome: Result<Vec<Id>>) {
        let outcome = match outcome {
            Ok(removed) if removed.is_empty() => return,
            Ok(removed) => {
                let detail = format!(
                    "tier {tier}: keep removed {} from {location}",
                    crate::report::counted(removed.len() as u64, "snapshot")
                );
                Ok((removed, detail))
            }
            Err(e) => Err(e),
        };
        self.push(
            ActionKind::Forget,
            Some(tier),
            &location,
            Vec::new(),
            outcome,
        );
    }

    /// A geo tier: its repository opened, the due targets' newest snapshots
    /// copied there, its `keep` applied there.
    fn geo(&mut self, name: &str, tier: &TierConfig, url: &str, every: Duration) {
        let dst = match crate::copy::open_other(self.ctx, url, tier.password_command.as_deref()) {
            Ok(d) => d,
            Err(e) => {
                let e = geo_error(name, url, e);
                self.push(ActionKind::Copy, Some(name), url, Vec::new(), Err(e));
                return;
            }
        };
        let location = dst.location();
        let outcome = self.geo_copy(name, tier, &dst, every);
        if let Some((targets, outcome)) = outcome {
            self.push(ActionKind::Copy, Some(name), &location, targets, outcome);
        }
        let outcome = crate::keep::apply(self.ctx, &dst, None, &tier.keep, &tiers_key(name));
        let forgot = outcome.as_ref().is_ok_and(|r| !r.is_empty());
        self.forgotten(name, location.clone(), outcome);
        if forgot {
            let outcome = pruned(self.ctx, &dst);
            self.push(
                ActionKind::Prune,
                Some(name),
                &location,
                Vec::new(),
                outcome,
            );
        }
    }

    /// `None` when nothing is due; else the targets copied and the outcome.
    #[allow(clippy::type_complexity)]
    fn geo_copy(
        &self,
        name: &str,
        tier: &TierConfig,
        dst: &Repository,
        every: Duration,
    ) -> Option<(Vec<String>, Result<(Vec<Id>, String)>)> {
        let targets = tier_targets(self.ctx, tier);
        let plan = (|| -> Result<(Vec<Id>, Vec<String>)> {
            if dst.config().id == self.repo.config().id {
                return Err(Error::usage(
                    format!("[tiers.{name}] repository is the main repository itself"),
                    format!("point [tiers.{name}] repository at another repository"),
                ));
            }
            let there = dst.snapshot_list()?.snapshots;
            let copies = Copies::of(dst)?;
            let here = self.repo.snapshot_list()?.snapshots;
            let now = Utc::now();
            let (mut ids, mut due) = (Vec::new(), Vec::new());
            for t in &targets {
                if !is_due(newest(&there, None, t), every, now) {
                    continue;
                }
                // Nothing to copy yet, or its newest is there already.
                let Some((id, snap)) = newest_of(&here, None, t) else {
                    continue;
                };
                if copies.find(*id, snap).is_some() {
                    continue;
                }
                if !ids.contains(id) {
                    ids.push(*id);
                }
                due.push(t.clone());
            }
            Ok((ids, due))
        })();
        let (ids, due) = match plan {
            Ok(p) => p,
            Err(e) => return Some((Vec::new(), Err(e))),
        };
        if ids.is_empty() {
            return None;
        }
        let outcome = crate::copy::copy_between(self.ctx, self.repo, dst, &ids).map(|r| {
            let copies: Vec<Id> = r.snapshots.iter().filter_map(|s| s.copy_snapshot).collect();
            let detail = format!(
                "tier {name}: copied {} of {} to {} ({} sent)",
                crate::report::counted(r.copied_count as u64, "snapshot"),
                due.join(", "),
                r.destination,
                crate::report::bytes(r.stats.sent_bytes)
            );
            (copies, detail)
        });
        Some((due, outcome))
    }
}

fn tiers_key(name: &str) -> String {
    format!("tiers.{name}")
}

fn pruned(ctx: &Ctx, repo: &Repository) -> Result<(Vec<Id>, String)> {
    let r = crate::keep::prune(ctx, repo)?;
    Ok((
        Vec::new(),
        format!(
            "prune {}: {} deleted, {} freed",
            repo.location(),
            crate::report::counted(r.packs_deleted as u64, "pack"),
            crate::report::bytes(r.bytes_freed)
        ),
    ))
}

/// A geo repository that does not open: said as the tier's problem, with
/// the way to fix it.
pub fn geo_error(name: &str, url: &str, e: Error) -> Error {
    let hint = e.hint().unwrap_or_else(|| {
        "check that the geo repository can be reached (path mounted, bucket and [repository.s3] \
         settings right)"
            .into()
    });
    Error::usage(
        format!(
            "tier {name}: the geo repository {url} cannot be opened: {}",
            e.chain()
        ),
        format!(
            "{hint}; the passphrase comes from [tiers.{name}] password_command or \
             RIPCORD_TO_PASSWORD, and `RIPCORD_PASSWORD=… ripcord init --repository {url}` \
             creates the repository"
        ),
    )
}
