//! Which snapshots `forget` keeps.
//!
//! The user's snapshots and the safety snapshots (tagged `safety`, taken by
//! in-place restores and migrations) are judged apart, each under its own
//! policy: a burst of safety snapshots never pushes a user's snapshot out of
//! `--keep-daily`, and safety snapshots do not live forever because the
//! user keeps everything. Within each class, snapshots are grouped by their
//! set of targets and their tier; each group is judged on its own. A
//! snapshot is kept when any rule keeps it, and a pinned one (a migration
//! still needs it to roll back) is kept whatever the rules say, unless the
//! caller forces.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Datelike, Local, Timelike, Utc};
use ripcord_core::config::KeepConfig;
use serde::Serialize;

use crate::manifest::Snapshot;
use crate::Id;

#[derive(Clone, Debug, Default)]
pub struct KeepPolicy {
    pub last: Option<usize>,
    pub hourly: Option<usize>,
    pub daily: Option<usize>,
    pub weekly: Option<usize>,
    pub monthly: Option<usize>,
    pub yearly: Option<usize>,
    /// Keep everything this close to the group's newest snapshot.
    pub within: Option<Duration>,
    /// Keep every snapshot that carries all tags of any of these lists
    /// (restic's `--keep-tag`).
    pub tags: Vec<Vec<String>>,
}

impl KeepPolicy {
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
            && self.hourly.is_none()
            && self.daily.is_none()
            && self.weekly.is_none()
            && self.monthly.is_none()
            && self.yearly.is_none()
            && self.within.is_none()
            && self.tags.is_empty()
    }

    /// The policy a `keep` table of `ripcord.toml` describes. Fails on a
    /// `within` that is not a duration, naming it.
    pub fn from_config(k: &KeepConfig) -> Result<KeepPolicy, String> {
        Ok(KeepPolicy {
            last: k.last,
            hourly: k.hourly,
            daily: k.daily,
            weekly: k.weekly,
            monthly: k.monthly,
            yearly: k.yearly,
            within: k
                .within
                .as_deref()
                .map(ripcord_core::duration::parse)
                .transpose()?,
            tags: k.tags.iter().map(|t| taglist(t)).collect(),
        })
    }
}

/// `a,b` as restic reads a `--keep-tag` value: a snapshot must carry both.
pub fn taglist(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The two policies `forget` applies.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    /// For the user's snapshots. Empty: every one is kept.
    pub user: KeepPolicy,
    /// For safety snapshots. Empty: every one is kept.
    pub safety: KeepPolicy,
}

/// Whose snapshot it is, for retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    User,
    Safety,
}

impl Class {
    pub fn of(s: &Snapshot) -> Class {
        if s.is_safety() {
            Class::Safety
        } else {
            Class::User
        }
    }
}

/// Why a snapshot must not be removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Pin {
    /// The safety snapshot of a change the target database has applied:
    /// rolling the change back puts its data back from this snapshot.
    Change { target: String, change: String },
    /// A migration's safety snapshot whose database could not be asked
    /// whether the change is still applied.
    Unknown { target: String, reason: String },
}

impl Pin {
    /// One reason word for the decision table.
    fn reason(&self) -> String {
        match self {
            Pin::Change { change, .. } => format!("pinned:{change}"),
            Pin::Unknown { .. } => "maybe-pinned".into(),
        }
    }
}

/// Pins by snapshot id.
pub type Pins = HashMap<Id, Pin>;

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Decision {
    #[serde(rename = "snapshot")]
    pub id: Id,
    pub group: String,
    pub class: Class,
    pub time: DateTime<Utc>,
    pub keep: bool,
    pub reasons: Vec<String>,
    /// Set when something depends on the snapshot; with `force`, a pinned
    /// snapshot may still be removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
}

pub fn group_key(s: &Snapshot) -> String {
    let mut names = s.target_names();
    names.sort();
    let mut key = names.join(",");
    if let Some(t) = &s.tier {
        key.push_str(&format!(" [tier {t}]"));
    }
    if s.is_safety() {
        key.push_str(" [safety]");
    }
    key
}

type Bucket = fn(DateTime<Local>) -> String;

/// Judges every snapshot of `snaps`: the user's under `policies.user`,
/// safety snapshots under `policies.safety`. Pinned snapshots are kept
/// unless `force`.
pub fn apply(
    policies: &Policies,
    snaps: &[(Id, Snapshot)],
    pins: &Pins,
    force: bool,
) -> Vec<Decision> {
    let mut groups: BTreeMap<(Class, String), Vec<&(Id, Snapshot)>> = BTreeMap::new();
    for s in snaps {
        groups
            .entry((Class::of(&s.1), group_key(&s.1)))
            .or_default()
            .push(s);
    }
    let mut out = Vec::new();
    for ((class, group), mut members) in groups {
        members.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.0.cmp(&a.0)));
        let policy = match class {
            Class::User => &policies.user,
            Class::Safety => &policies.safety,
        };
        let mut decisions: Vec<Decision> = members
            .iter()
            .map(|(id, s)| Decision {
                id: *id,
                group: group.clone(),
                class,
                time: s.time,
                keep: false,
                reasons: Vec::new(),
                pin: pins.get(id).cloned(),
            })
            .collect();
        if policy.is_empty() {
            for d in decisions.iter_mut() {
                d.keep = true;
                d.reasons.push("no-policy".into());
            }
        } else {
            judge(policy, &members, &mut decisions);
        }
        for d in decisions.iter_mut() {
            if let Some(pin) = &d.pin {
                d.reasons.push(pin.reason());
                d.keep |= !force;
            }
        }
        out.extend(decisions);
    }
    out
}

/// Applies `policy` to one group, newest first.
fn judge(policy: &KeepPolicy, members: &[&(Id, Snapshot)], decisions: &mut [Decision]) {
    let rules: [(&str, Option<usize>, Bucket); 6] = [
        ("last", policy.last, |t| {
            t.timestamp_nanos_opt().unwrap_or(0).to_string()
        }),
        ("hourly", policy.hourly, |t| {
            format!("{}-{}", t.date_naive(), t.hour())
        }),
        ("daily", policy.daily, |t| t.date_naive().to_string()),
        ("weekly", policy.weekly, |t| {
            let w = t.iso_week();
            format!("{}-W{}", w.year(), w.week())
        }),
        ("monthly", policy.monthly, |t| {
            format!("{}-{}", t.year(), t.month())
        }),
        ("yearly", policy.yearly, |t| t.year().to_string()),
    ];
    for (name, count, bucket) in rules {
        let Some(count) = count else { continue };
        let mut last_key: Option<String> = None;
        let mut kept = 0;
        for d in decisions.iter_mut() {
            if kept >= count {
                break;
            }
            let key = bucket(d.time.with_timezone(&Local));
            if last_key.as_ref() != Some(&key) {
                d.keep = true;
                d.reasons.push(name.to_string());
                kept += 1;
                last_key = Some(key);
            }
        }
    }
    if let Some(within) = policy.within {
        let newest = members[0].1.time;
        let limit = chrono::Duration::from_std(within)
            .ok()
            .and_then(|w| newest.checked_sub_signed(w));
        for d in decisions
            .iter_mut()
            .filter(|d| limit.is_none_or(|limit| d.time >= limit))
        {
            d.keep = true;
            d.reasons.push("within".into());
        }
    }
    for (d, (_, s)) in decisions.iter_mut().zip(members) {
        if let Some(list) = policy.tags.iter().find(|list| s.has_tags(list)) {
            d.keep = true;
            d.reasons.push(format!("tag:{}", list.join(",")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Content, TargetSnapshot};

    fn tagged(hours_ago: i64, tags: &[&str]) -> (Id, Snapshot) {
        let time = Utc::now() - chrono::Duration::hours(hours_ago);
        (
            Id::random(),
            Snapshot {
                time,
                host: "h".into(),
                user: "u".into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                tier: None,
                parent: None,
                program_version: "t".into(),
                audit: None,
                copied_from: None,
                targets: vec![TargetSnapshot {
                    name: "app".into(),
                    source: "/x".into(),
                    size: 0,
                    items: 0,
                    git_commit: None,
                    migration_version: None,
                    migration: None,
                    entries: None,
                    content: Content::Dir {
                        tree: Id::default(),
                    },
                }],
            },
        )
    }

    fn snap(hours_ago: i64) -> (Id, Snapshot) {
        tagged(hours_ago, &[])
    }

    fn user(policy: KeepPolicy) -> Policies {
        Policies {
            user: policy,
            safety: KeepPolicy::default(),
        }
    }

    fn kept(d: &[Decision]) -> Vec<Id> {
        d.iter().filter(|d| d.keep).map(|d| d.id).collect()
    }

    #[test]
    fn keep_last_and_daily() {
        let snaps: Vec<_> = (0..10).map(|i| snap(i * 12)).collect();
        let none = Pins::new();
        let d = apply(
            &user(KeepPolicy {
                last: Some(2),
                ..Default::default()
            }),
            &snaps,
            &none,
            false,
        );
        assert_eq!(d.iter().filter(|d| d.keep).count(), 2);
        let d = apply(
            &user(KeepPolicy {
                daily: Some(3),
                ..Default::default()
            }),
            &snaps,
            &none,
            false,
        );
        assert_eq!(d.iter().filter(|d| d.keep).count(), 3);
        let d = apply(
            &user(KeepPolicy {
                within: Some(Duration::from_secs(25 * 3600)),
                ..Default::default()
            }),
            &snaps,
            &none,
            false,
        );
        assert_eq!(d.iter().filter(|d| d.keep).count(), 3);
    }

    #[test]
    fn safety_snapshots_do_not_count_towards_the_users_policy() {
        // The user's snapshot is older than three safety snapshots of the
        // same target; keep-last 1 still keeps it.
        let mine = snap(5);
        let safety: Vec<_> = (0..3).map(|i| tagged(i, &["safety"])).collect();
        let mut snaps = vec![mine.clone()];
        snaps.extend(safety.iter().cloned());
        let policies = Policies {
            user: KeepPolicy {
                last: Some(1),
                ..Default::default()
            },
            safety: KeepPolicy {
                last: Some(2),
                ..Default::default()
            },
        };
        let d = apply(&policies, &snaps, &Pins::new(), false);
        let mut want = vec![mine.0, safety[0].0, safety[1].0];
        want.sort();
        let mut got = kept(&d);
        got.sort();
        assert_eq!(got, want);
        let removed = d.iter().find(|d| !d.keep).unwrap();
        assert_eq!((removed.id, removed.class), (safety[2].0, Class::Safety));
    }

    #[test]
    fn keep_tag_needs_every_tag_of_a_list() {
        let a = tagged(3, &["pre-deploy"]);
        let b = tagged(2, &["pre-deploy", "db"]);
        let c = tagged(1, &["db"]);
        let snaps = vec![a.clone(), b.clone(), c.clone()];
        let d = apply(
            &user(KeepPolicy {
                tags: vec![taglist("pre-deploy,db")],
                ..Default::default()
            }),
            &snaps,
            &Pins::new(),
            false,
        );
        assert_eq!(kept(&d), vec![b.0]);
        let d = apply(
            &user(KeepPolicy {
                tags: vec![taglist("pre-deploy")],
                ..Default::default()
            }),
            &snaps,
            &Pins::new(),
            false,
        );
        let mut got = kept(&d);
        got.sort();
        let mut want = vec![a.0, b.0];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn pinned_snapshots_stay_unless_forced() {
        let old = tagged(10, &["safety", "migrate:0001"]);
        let new = tagged(1, &["safety", "migrate:0002"]);
        let snaps = vec![old.clone(), new.clone()];
        let policies = Policies {
            user: KeepPolicy::default(),
            safety: KeepPolicy {
                last: Some(1),
                ..Default::default()
            },
        };
        let mut pins = Pins::new();
        pins.insert(
            old.0,
            Pin::Change {
                target: "app".into(),
                change: "0001".into(),
            },
        );
        let d = apply(&policies, &snaps, &pins, false);
        assert_eq!(kept(&d).len(), 2);
        let o = d.iter().find(|d| d.id == old.0).unwrap();
        assert_eq!(o.reasons, ["pinned:0001"]);
        let d = apply(&policies, &snaps, &pins, true);
        assert_eq!(kept(&d), vec![new.0]);
        assert!(d.iter().any(|d| !d.keep && d.pin.is_some()));
    }

    #[test]
    fn an_empty_policy_keeps_its_class() {
        let snaps = vec![snap(2), tagged(1, &["safety"])];
        let policies = Policies {
            user: KeepPolicy::default(),
            safety: KeepPolicy {
                last: Some(0),
                ..Default::default()
            },
        };
        let d = apply(&policies, &snaps, &Pins::new(), false);
        assert_eq!(kept(&d), vec![snaps[0].0]);
    }

    #[test]
    fn a_huge_keep_within_keeps_everything() {
        let snaps: Vec<_> = (0..3).map(|i| snap(i * 1000)).collect();
        let d = apply(
            &user(KeepPolicy {
                within: Some(Duration::from_secs(u64::MAX / 4)),
                ..Default::default()
            }),
            &snaps,
            &Pins::new(),
            false,
        );
        assert_eq!(kept(&d).len(), 3);
    }
}
