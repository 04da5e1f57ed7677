//! The plan: the changes a folder of migrations describes, their phases, the
//! order they run in, and what a `--to` target names.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::near::near;
use crate::script::Script;
use crate::version::Version;

/// The tool whose files a plan was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `NNNN_name/{up,down,verify}.sql` with an optional `plan.toml`.
    Native,
    /// `sqitch.plan` with `deploy/`, `revert/` and `verify/`.
    Sqitch,
    /// `V<version>__<desc>.sql`, `U<version>__<desc>.sql`, `R__<desc>.sql`.
    Flyway,
    /// `<N>_<name>.up.sql` and `<N>_<name>.down.sql`.
    GolangMigrate,
    /// `<version>_<name>.sql` with `-- migrate:up` and `-- migrate:down`.
    Dbmate,
    /// `YYYYMMDDHHMM_name.sql` with `YYYYMMDDHHMM_name_rollback.sql`.
    Timestamp,
    /// Liquibase formatted SQL: `--liquibase formatted sql` files of
    /// `--changeset author:id` sections, optionally listed by a master
    /// changelog.
    Liquibase,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Native,
        Format::Sqitch,
        Format::Flyway,
        Format::GolangMigrate,
        Format::Dbmate,
        Format::Timestamp,
        Format::Liquibase,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Sqitch => "sqitch",
            Format::Flyway => "flyway",
            Format::GolangMigrate => "golang-migrate",
            Format::Dbmate => "dbmate",
            Format::Timestamp => "timestamp",
            Format::Liquibase => "liquibase",
        }
    }

    /// Whether changes carry a version number that can name them.
    pub fn has_versions(self) -> bool {
        !matches!(self, Format::Native | Format::Sqitch | Format::Liquibase)
    }

    /// Whether the format has a place for verify scripts; the others'
    /// changes cannot have one, so lacking one is no finding.
    pub fn has_verify_scripts(self) -> bool {
        matches!(self, Format::Native | Format::Sqitch)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| Error::UnknownFormat { name: s.into() })
    }
}

/// What a folder of migrations describes.
#[derive(Clone, Debug)]
pub struct Plan {
    pub format: Format,
    /// In file or plan order; [`Plan::order`] gives the order they run in.
    pub changes: Vec<Change>,
    pub phases: Vec<Phase>,
}

/// One migration.
#[derive(Clone, Debug)]
pub struct Change {
    /// Unique within the plan: the folder name (native), the plan name
    /// (sqitch) or the file name without its extensions (the others).
    pub name: String,
    pub up: Script,
    /// `None` when the files hold no way back; such a change is reverted
    /// from its safety snapshot.
    pub down: Option<Script>,
    pub verify: Option<Script>,
    /// Changes that must run before this one, by name.
    pub requires: Vec<String>,
    /// Changes that must not be deployed with this one (sqitch `!name`);
    /// recorded, not enforced.
    pub conflicts: Vec<String>,
    /// Requirements on other sqitch projects (`project:change`); recorded, not
    /// checked.
    pub external_requires: Vec<String>,
    pub phase: Option<String>,
    /// Runs again whenever it changes, after the versioned ones (Flyway `R__`).
    pub repeatable: bool,
    /// The number the file names give it, as written (Flyway with dots).
    pub version: Option<String>,
    /// Run outside a transaction, as the files declare it (dbmate
    /// `transaction:false`, Flyway `executeInTransaction=false`, native
    /// `no_transaction = true`).
    pub no_transaction: bool,
    /// Runs again on every `up` (Liquibase `runAlways`); such a change is
    /// also [`repeatable`](Self::repeatable).
    pub run_always: bool,
    /// The file the tool records the change under, when its history names
    /// one (Liquibase: the changelog path, or its `logicalFilePath`).
    pub source: Option<String>,
    /// The checksum the tool itself records for the change, when it cannot
    /// be computed from the up script's file alone (Liquibase's MD5SUM).
    pub tool_checksum: Option<String>,
}

impl Change {
    /// A change with just an up script; readers fill in the rest.
    pub fn new(name: impl Into<String>, up: Script) -> Change {
        Change {
            name: name.into(),
            up,
            down: None,
            verify: None,
            requires: Vec::new(),
            conflicts: Vec::new(),
            external_requires: Vec::new(),
            phase: None,
            repeatable: false,
            version: None,
            no_transaction: false,
            run_always: false,
            source: None,
            tool_checksum: None,
        }
    }
}

/// A named group of changes that are deployed and rolled back together
/// (native `[[phase]]`, sqitch tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    pub name: String,
    pub changes: Vec<String>,
}

/// What a `--to` names, resolved against a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A change, named directly or by its version.
    Change(String),
    /// A phase; `last` is its last change in [`Plan::order`].
    Phase { name: String, last: String },
}

impl Target {
    /// The change that completes the target state.
    pub fn change(&self) -> &str {
        match self {
            Target::Change(name) => name,
            Target::Phase { last, .. } => last,
        }
    }
}

impl Plan {
    pub fn change(&self, name: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.name == name)
    }

    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// The changes in the order they run: plan order, except that a change's
    /// requirements are moved up to just before it when they come later.
    /// Fails on unknown requirements and on cycles.
    pub fn order(&self) -> Result<Vec<&Change>> {
        let index = self.index()?;
        let mut deps: Vec<Vec<usize>> = Vec::with_capacity(self.changes.len());
        for change in &self.changes {
            let mut list = Vec::with_capacity(change.requires.len());
            for dep in &change.requires {
                let &i = index
                    .get(dep.as_str())
                    .ok_or_else(|| Error::UnknownDependency {
                        change: change.name.clone(),
                        dependency: dep.clone(),
                        near: near(dep, self.changes.iter().map(|c| c.name.as_str())),
                    })?;
                list.push(i);
            }
            // Requirements placed in plan order keep the result stable.
            list.sort_unstable();
            list.dedup();
            deps.push(list);
        }

        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut mark = vec![Mark::New; self.changes.len()];
        let mut out = Vec::with_capacity(self.changes.len());
        // Depth-first without recursion: a long chain of requirements
        // (every sqitch change requiring the one before) must not overflow.
        let mut path: Vec<(usize, usize)> = Vec::new();
        for root in 0..self.changes.len() {
            if mark[root] != Mark::New {
                continue;
            }
            mark[root] = Mark::OnPath;
            path.push((root, 0));
            while let Some(top) = path.last_mut() {
                let (node, next) = *top;
                if let Some(&dep) = deps[node].get(next) {
                    top.1 += 1;
                    match mark[dep] {
                        Mark::New => {
                            mark[dep] = Mark::OnPath;
                            path.push((dep, 0));
                        }
                        Mark::OnPath => {
                            let start = path.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                            let mut cycle: Vec<String> = path[start..]
                                .iter()
                                .map(|&(n, _)| self.changes[n].name.clone())
                                .collect();
                            cycle.push(self.changes[dep].name.clone());
                            return Err(Error::Cycle { cycle });
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[node] = Mark::Done;
                    out.push(&self.changes[node]);
                    path.pop();
                }
            }
        }
        Ok(out)
    }

    /// Resolves a `--to` target: a change name, `@phase`, or (for formats
    /// that number their changes) a version such as `3`, `1.1` or
    /// `202401311200`.
    pub fn resolve_target(&self, spec: &str) -> Result<Target> {
        let spec = spec.trim();
        if let Some(name) = spec.strip_prefix('@') {
            let phase = self.phase(name).ok_or_else(|| Error::UnknownTarget {
                target: spec.into(),
                near: near(name, self.phases.iter().map(|p| p.name.as_str()))
                    .into_iter()
                    .map(|p| format!("@{p}"))
                    .collect(),
                versions: self.format.has_versions(),
            })?;
            let last = self
                .order()?
                .into_iter()
                .rev()
                .find(|c| phase.changes.contains(&c.name))
                .ok_or_else(|| Error::EmptyPhase {
                    phase: phase.name.clone(),
                })?;
            return Ok(Target::Phase {
                name: phase.name.clone(),
                last: last.name.clone(),
            });
        }
        if let Some(change) = self.change(spec) {
            return Ok(Target::Change(change.name.clone()));
        }
        if self.format.has_versions() {
            if let Some(wanted) = Version::parse(spec) {
                let matches: Vec<&Change> = self
                    .changes
                    .iter()
                    .filter(|c| {
                        c.version.as_deref().and_then(Version::parse).as_ref() == Some(&wanted)
                    })
                    .collect();
                match matches.as_slice() {
                    [] => {}
                    [one] => return Ok(Target::Change(one.name.clone())),
                    many => {
                        return Err(Error::AmbiguousTarget {
                            target: spec.into(),
                            matches: many.iter().map(|c| c.name.clone()).collect(),
                        })
                    }
                }
            }
        }
        if self.format.has_versions() {
            if let Some(wanted) = Version::parse(spec) {
                return Err(Error::UnknownTarget {
                    target: spec.into(),
                    near: self.versions_around(&wanted),
                    versions: true,
                });
            }
        }
        let phases: Vec<String> = self.phases.iter().map(|p| format!("@{}", p.name)).collect();
        let candidates = self
            .changes
            .iter()
            .flat_map(|c| std::iter::once(c.name.as_str()).chain(c.version.as_deref()))
            .chain(phases.iter().map(String::as_str));
        Err(Error::UnknownTarget {
            target: spec.into(),
            near: near(spec, candidates),
            versions: self.format.has_versions(),
        })
    }

    /// Checks what every reader guarantees: unique names, unique versions
    /// where the tool requires them, known requirements and no cycle.
    pub fn check(&self) -> Result<()> {
        self.index()?;
        if matches!(
            self.format,
            Format::Flyway | Format::GolangMigrate | Format::Dbmate
        ) {
            let mut versions: Vec<(Version, &Change)> = self
                .changes
                .iter()
                .filter_map(|c| Some((Version::parse(c.version.as_deref()?)?, c)))
                .collect();
            versions.sort_by(|a, b| a.0.cmp(&b.0));
            for pair in versions.windows(2) {
                if pair[0].0 == pair[1].0 {
                    return Err(Error::DuplicateVersion {
                        version: pair[1].1.version.clone().unwrap_or_default(),
                        first: pair[0].1.up.path.clone(),
                        second: pair[1].1.up.path.clone(),
                    });
                }
            }
        }
        self.order().map(|_| ())
    }

    /// The versions just below and just above a version that is not there.
    fn versions_around(&self, wanted: &Version) -> Vec<String> {
        let mut below: Option<(Version, &str)> = None;
        let mut above: Option<(Version, &str)> = None;
        for text in self.changes.iter().filter_map(|c| c.version.as_deref()) {
            let Some(v) = Version::parse(text) else {
                continue;
            };
            if v < *wanted && below.as_ref().is_none_or(|(b, _)| v > *b) {
                below = Some((v, text));
            } else if v > *wanted && above.as_ref().is_none_or(|(a, _)| v < *a) {
                above = Some((v, text));
            }
        }
        below
            .into_iter()
            .chain(above)
            .map(|(_, text)| text.to_string())
            .collect()
    }

    fn index(&self) -> Result<HashMap<&str, usize>> {
        let mut index = HashMap::with_capacity(self.changes.len());
        for (i, change) in self.changes.iter().enumerate() {
            if let Some(first) = index.insert(change.name.as_str(), i) {
                return Err(Error::Duplicate {
                    change: change.name.clone(),
                    first: self.changes[first].up.path.clone(),
                    second: change.up.path.clone(),
                });
            }
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(changes: &[(&str, &[&str])]) -> Plan {
        Plan {
            format: Format::Native,
            changes: changes
                .iter()
                .map(|(name, requires)| {
                    let mut c = Change::new(*name, Script::new(format!("{name}/up.sql"), ""));
                    c.requires = requires.iter().map(|s| s.to_string()).collect();
                    c
                })
                .collect(),
            phases: Vec::new(),
        }
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.order()
            .unwrap()
            .into_iter()
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn order_keeps_plan_order_without_requirements() {
        let p = plan(&[("c", &[]), ("a", &[]), ("b", &[])]);
        assert_eq!(names(&p), ["c", "a", "b"]);
    }

    #[test]
    fn order_moves_requirements_up_only_as_far_as_needed() {
        let p = plan(&[("a", &["d"]), ("b", &[]), ("c", &[]), ("d", &["c"])]);
        assert_eq!(names(&p), ["c", "d", "a", "b"]);
        let p = plan(&[("a", &[]), ("b", &["a"]), ("c", &["b", "a"])]);
        assert_eq!(names(&p), ["a", "b", "c"]);
    }

    #[test]
    fn order_names_the_cycle() {
        let p = plan(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &[])]);
        let err = p.order().unwrap_err();
        assert_eq!(
            err.to_string(),
            "changes depend on each other in a cycle: a -> b -> c -> a"
        );
        let p = plan(&[("a", &["a"])]);
        assert!(p.order().unwrap_err().to_string().contains("a -> a"));
    }

    #[test]
    fn order_survives_long_chains() {
        let names: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
        let mut p = plan(&[]);
        for (i, name) in names.iter().enumerate().rev() {
            let mut c = Change::new(name, Script::new("x", ""));
            if i > 0 {
                c.requires.push(names[i - 1].clone());
            }
            p.changes.push(c);
        }
        let order = p.order().unwrap();
        assert_eq!(order[0].name, "c0");
        assert_eq!(order[99_999].name, "c99999");
    }

    #[test]
    fn unknown_requirement_suggests_near_names() {
        let p = plan(&[("add_users", &[]), ("b", &["add_user"])]);
        let err = p.order().unwrap_err();
        assert!(matches!(&err, Error::UnknownDependency { near, .. } if near == &["add_users"]));
    }

    #[test]
    fn formats_round_trip_by_name() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        assert!("liquibas".parse::<Format>().is_err());
    }
}
