//! Which targets and snapshots a command works on: `--target` and `--tag`,
//! the same for `snapshot`, `restore`, `snapshots`, `forget` and `diff`.
//!
//! A name that matches nothing is an error with the nearest known name,
//! never an empty result: `snapshots --target confg` showing no snapshots
//! would read as "there are none".

use std::collections::BTreeSet;

use ripcord_core::config::Config;
use ripcord_repo::manifest::Snapshot;
use ripcord_repo::{Id, Repository};

use crate::{Ctx, Error, Result};

/// The tag in-place restores and migrations give their safety snapshots:
/// always a known tag, also before the first one exists.
const SAFETY_TAG: &str = "safety";

/// Targets and tags asked for; empty means any.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub targets: Vec<String>,
    /// A snapshot matches when it has every one of them.
    pub tags: Vec<String>,
}

impl Selection {
    /// Whether `s` holds every selected target and has every selected tag.
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.targets.iter().all(|t| s.target(t).is_some())
            && self.tags.iter().all(|t| s.tags.contains(t))
    }

    /// For a listing: every selected target must be configured or held by
    /// a snapshot, every tag carried by one.
    pub fn check_known<'a>(
        &self,
        config: &Config,
        snapshots: impl IntoIterator<Item = &'a Snapshot> + Clone,
    ) -> Result<()> {
        let mut targets: BTreeSet<String> = config.targets.keys().cloned().collect();
        let mut tags: BTreeSet<String> = BTreeSet::from([SAFETY_TAG.to_string()]);
        for s in snapshots {
            targets.extend(s.target_names());
            tags.extend(s.tags.iter().cloned());
        }
        check("target", &self.targets, &targets)?;
        check("tag", &self.tags, &tags)
    }

    /// `latest` with tags means the newest snapshot with all of them; it
    /// becomes `latest:TAG` for the first so that `--tag safety` finds
    /// safety snapshots, which plain `latest` leaves out.
    pub fn selector(&self, selector: &str) -> String {
        match self.tags.first() {
            Some(tag) if selector == "latest" => format!("latest:{tag}"),
            _ => selector.to_string(),
        }
    }

    /// The snapshot `selector` names (an id, a prefix, `latest`,
    /// `latest:TAG`): `latest` is the newest that matches the selection; one
    /// named by id must match it.
    pub fn find(&self, ctx: &Ctx, repo: &Repository, selector: &str) -> Result<(Id, Snapshot)> {
        let found = repo.find_snapshot_where(&self.selector(selector), |s| self.matches(s));
        let ((id, snap), damaged) = match found {
            Ok(found) => found,
            // No snapshot matches: a misspelt name is the likely reason.
            Err(e @ ripcord_repo::Error::SnapshotNotFound { .. })
                if !self.targets.is_empty() || !self.tags.is_empty() =>
            {
                let list = repo.snapshot_list()?;
                self.check_known(&ctx.config, list.snapshots.iter().map(|(_, s)| s))?;
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        for d in &damaged {
            ctx.warn(d.warning());
        }
        self.check_snapshot(&id.short(), &snap)?;
        Ok((id, snap))
    }

    /// A snapshot named by id must hold what was selected.
    pub fn check_snapshot(&self, short_id: &str, s: &Snapshot) -> Result<()> {
        let held = s.target_names();
        for t in &self.targets {
            if s.target(t).is_none() {
                return Err(Error::usage(
                    format!(
                        "snapshot {short_id} holds no target {t:?}{}; it holds {}",
                        suggestion(t, held.iter()),
                        held.join(", ")
                    ),
                    "name one of its targets, or pick a snapshot that holds it \
                     (`ripcord snapshots --target NAME`)",
                ));
            }
        }
        for t in &self.tags {
            if !s.tags.contains(t) {
                return Err(Error::usage(
                    format!(
                        "snapshot {short_id} has no tag {t:?}{}",
                        suggestion(t, s.tags.iter())
                    ),
                    "leave out --tag, or use `latest` to pick the newest snapshot with the tag",
                ));
            }
        }
        Ok(())
    }
}

/// Every name of `given` must be among `known`.
pub fn check(what: &str, given: &[String], known: &BTreeSet<String>) -> Result<()> {
    for name in given {
        if known.contains(name) {
            continue;
        }
        let list = if known.is_empty() {
            "(none)".to_string()
        } else {
            known.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        return Err(Error::usage(
            format!("unknown {what} {name:?}{}", suggestion(name, known.iter())),
            format!("known {what}s: {list}"),
        ));
    }
    Ok(())
}

/// `; did you mean "NEAR"?` for the nearest of `known`, when one is near.
fn suggestion<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> String {
    known
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        // A third of the longer name may differ, and never all of it.
        .filter(|(d, k)| {
            let len = name.chars().count();
            *d <= (len.max(k.chars().count()) / 3).max(1) && *d < len
        })
        .min()
        .map(|(_, k)| format!("; did you mean {k:?}?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_name() {
        let known: BTreeSet<String> = ["config".into(), "app".into()].into();
        let e = check("target", &["confg".into()], &known).unwrap_err();
        assert!(e.to_string().contains("did you mean \"config\"?"), "{e}");
        let e = check("target", &["zzzzzz".into()], &known).unwrap_err();
        assert!(!e.to_string().contains("did you mean"), "{e}");
        let e = check("target", &["b".into()], &known).unwrap_err();
        assert!(!e.to_string().contains("did you mean"), "{e}");
        check("target", &["app".into()], &known).unwrap();
    }
}
