//! Which snapshots `forget` keeps.
//!
//! Snapshots are grouped by their set of targets and their tier; each group
//! is judged on its own. A snapshot is kept when any rule keeps it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, Local, Timelike, Utc};

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
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Decision {
    pub id: Id,
    pub group: String,
    pub time: DateTime<Utc>,
    pub keep: bool,
    pub reasons: Vec<String>,
}

pub fn group_key(s: &Snapshot) -> String {
    let mut names = s.target_names();
    names.sort();
    match &s.tier {
        Some(t) => format!("{} [tier {t}]", names.join(",")),
        None => names.join(","),
    }
}

type Bucket = fn(DateTime<Local>) -> String;

pub fn apply(policy: &KeepPolicy, snaps: &[(Id, Snapshot)]) -> Vec<Decision> {
    let mut groups: BTreeMap<String, Vec<&(Id, Snapshot)>> = BTreeMap::new();
    for s in snaps {
        groups.entry(group_key(&s.1)).or_default().push(s);
    }
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
    let mut out = Vec::new();
    for (group, mut members) in groups {
        members.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.0.cmp(&a.0)));
        let newest = members[0].1.time;
        let mut decisions: Vec<Decision> = members
            .iter()
            .map(|(id, s)| Decision {
                id: *id,
                group: group.clone(),
                time: s.time,
                keep: false,
                reasons: Vec::new(),
            })
            .collect();
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
            let limit =
                newest - chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
            for d in decisions.iter_mut().filter(|d| d.time >= limit) {
                d.keep = true;
                d.reasons.push("within".into());
            }
        }
        out.extend(decisions);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Content, TargetSnapshot};

    fn snap(hours_ago: i64) -> (Id, Snapshot) {
        let time = Utc::now() - chrono::Duration::hours(hours_ago);
        (
            Id::random(),
            Snapshot {
                time,
                host: "h".into(),
                user: "u".into(),
                tags: vec![],
                tier: None,
                parent: None,
                program_version: "t".into(),
                targets: vec![TargetSnapshot {
                    name: "app".into(),
                    source: "/x".into(),
                    size: 0,
                    items: 0,
                    git_commit: None,
                    migration_version: None,
                    entries: None,
                    content: Content::Dir {
                        tree: Id::default(),
                    },
                }],
            },
        )
    }

    #[test]
    fn keep_last_and_daily() {
        let snaps: Vec<_> = (0..10).map(|i| snap(i * 12)).collect();
        let d = apply(
            &KeepPolicy {
                last: Some(2),
                ..Default::default()
            },
            &snaps,
        );
        assert_eq!(d.iter().filter(|d| d.keep).count(), 2);
        let d = apply(
            &KeepPolicy {
                daily: Some(3),
                ..Default::default()
            },
            &snaps,
        );
        assert_eq!(d.iter().filter(|d| d.keep).count(), 3);
        let d = apply(
            &KeepPolicy {
                within: Some(Duration::from_secs(25 * 3600)),
                ..Default::default()
            },
            &snaps,
        );
        assert_eq!(d.iter().filter(|d| d.keep).count(), 3);
    }
}
