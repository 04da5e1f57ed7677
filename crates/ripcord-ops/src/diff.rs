//! `diff A B`: what changed between two snapshots, target by target, as
//! entries a program can read: a path or table, what happened to it, and
//! for tables the rows before and after.

use ripcord_repo::index::Index;
use ripcord_repo::manifest::{Content, Node, NodeKind, PgContent, Snapshot, TableStat};
use ripcord_repo::walk::{TreeLimits, MAX_DEPTH};
use ripcord_repo::{Id, Repository};
use schemars::JsonSchema;
use serde::Serialize;

use crate::{Error, Result};

/// The comparison of two snapshots.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DiffReport {
    /// The older snapshot (A).
    pub from_snapshot: Id,
    /// The newer snapshot (B).
    pub to_snapshot: Id,
    pub targets: Vec<TargetDiff>,
}

/// What happened to one target between the two snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TargetChange {
    /// In both, nothing differs.
    Same,
    /// In both, and entries differ.
    Changed,
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// A different kind of target under the same name: not compared.
    KindChanged,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TargetDiff {
    pub target: String,
    pub change: TargetChange,
    pub entries: Vec<DiffEntry>,
    /// How many `entries` were added, removed and modified.
    pub added_count: usize,
    pub removed_count: usize,
    pub modified_count: usize,
}

/// What happened to one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryChange {
    Added,
    Removed,
    Modified,
}

pub use crate::json::EntryKind;

/// One file, folder or table that differs.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DiffEntry {
    /// A file's path in its target (`/`-separated), or a table's name
    /// (`schema.name` on PostgreSQL).
    pub path: String,
    /// What it is in B (in A when removed).
    pub kind: EntryKind,
    pub change: EntryChange,
    /// It was another kind of entry in A (a file that became a link).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub kind_changed: bool,
    /// Tables: the rows in A; none when the table is only in B.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_before: Option<u64>,
    /// Tables: the rows in B; none when the table is only in A.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_after: Option<u64>,
    /// Tables: the same number of rows, with other contents.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub content_changed: bool,
    /// Tables: the columns differ.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub schema_changed: bool,
}

impl DiffEntry {
    fn path(path: String, kind: EntryKind, change: EntryChange) -> DiffEntry {
        DiffEntry {
            path,
            kind,
            change,
            kind_changed: false,
            rows_before: None,
            rows_after: None,
            content_changed: false,
            schema_changed: false,
        }
    }
}

/// Compares snapshot `a` with `b` (both loaded from `repo`), only the
/// targets named in `only` when it is not empty.
pub fn diff(
    repo: &Repository,
    a: (Id, &Snapshot),
    b: (Id, &Snapshot),
    only: &[String],
) -> Result<DiffReport> {
    // A tree may be MAX_DEPTH levels deep, one frame each: walk it on a
    // thread whose stack holds that many, whatever the caller's stack is.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("diff".into())
            .stack_size(256 << 20)
            .spawn_scoped(scope, || diff_on_this_thread(repo, a, b, only))
            .map_err(Error::Io)?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn diff_on_this_thread(
    repo: &Repository,
    (ia, sa): (Id, &Snapshot),
    (ib, sb): (Id, &Snapshot),
    only: &[String],
) -> Result<DiffReport> {
    let mut names: Vec<String> = sa.target_names();
    for n in sb.target_names() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let known: std::collections::BTreeSet<String> = names.iter().cloned().collect();
    crate::select::check("target", only, &known)?;
    if !only.is_empty() {
        names.retain(|n| only.contains(n));
    }
    let index = repo.load_index()?;
    let mut targets = Vec::new();
    for name in names {
        let mut entries = Vec::new();
        let change = match (sa.target(&name), sb.target(&name)) {
            (Some(_), None) => TargetChange::Removed,
            (None, Some(_)) => TargetChange::Added,
            (Some(ta), Some(tb)) => match (&ta.content, &tb.content) {
                (Content::Dir { tree: x }, Content::Dir { tree: y }) => {
                    let mut budget = Budget {
                        left: TreeLimits::of(ta)
                            .max_entries
                            .saturating_add(TreeLimits::of(tb).max_entries),
                    };
                    let mut walk = Walk {
                        repo,
                        index: &index,
                        budget: &mut budget,
                        out: &mut entries,
                    };
                    walk.trees((Some(*x), Some(*y)), "", 0)?;
                    TargetChange::Changed
                }
                (Content::Sqlite { tables: x, .. }, Content::Sqlite { tables: y, .. }) => {
                    diff_tables(x, y, &mut entries);
                    TargetChange::Changed
                }
                (Content::Postgres(x), Content::Postgres(y)) => {
                    diff_tables(&pg_stats(x), &pg_stats(y), &mut entries);
                    TargetChange::Changed
                }
                _ => TargetChange::KindChanged,
            },
            (None, None) => unreachable!("name comes from one of them"),
        };
        let count = |c: EntryChange| entries.iter().filter(|e| e.change == c).count();
        let (added, removed, modified) = (
            count(EntryChange::Added),
            count(EntryChange::Removed),
            count(EntryChange::Modified),
        );
        let change = if change == TargetChange::Changed && entries.is_empty() {
            TargetChange::Same
        } else {
            change
        };
        targets.push(TargetDiff {
            target: name,
            change,
            entries,
            added_count: added,
            removed_count: removed,
            modified_count: modified,
        });
    }
    Ok(DiffReport {
        from_snapshot: ia,
        to_snapshot: ib,
        targets,
    })
}

/// PostgreSQL tables in the shape SQLite's use, columns standing for the schema.
fn pg_stats(pg: &PgContent) -> Vec<TableStat> {
    pg.tables
        .iter()
        .map(|t| TableStat {
            name: t.qualified(),
            rows: t.rows,
            checksum: t.checksum.clone(),
            schema: t
                .columns
                .iter()
                .map(|c| format!("{} {}", c.name, c.type_name))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect()
}

fn diff_tables(a: &[TableStat], b: &[TableStat], out: &mut Vec<DiffEntry>) {
    let table = |name: &str, change| DiffEntry::path(name.to_string(), EntryKind::Table, change);
    for t in b {
        match a.iter().find(|x| x.name == t.name) {
            None => out.push(DiffEntry {
                rows_after: Some(t.rows),
                ..table(&t.name, EntryChange::Added)
            }),
            Some(old) => {
                let e = DiffEntry {
                    rows_before: Some(old.rows),
                    rows_after: Some(t.rows),
                    content_changed: old.checksum != t.checksum && old.rows == t.rows,
                    schema_changed: old.schema != t.schema,
                    ..table(&t.name, EntryChange::Modified)
                };
                if old.rows != t.rows || e.content_changed || e.schema_changed {
                    out.push(e);
                }
            }
        }
    }
    for t in a.iter().filter(|x| !b.iter().any(|y| y.name == x.name)) {
        out.push(DiffEntry {
            rows_before: Some(t.rows),
            ..table(&t.name, EntryChange::Removed)
        });
    }
}

/// How many more nodes a diff may read: the entries both snapshots
/// recorded, so shared subtrees cannot make it expand without end.
struct Budget {
    left: u64,
}

struct Walk<'a> {
    repo: &'a Repository,
    index: &'a Index,
    budget: &'a mut Budget,
    out: &'a mut Vec<DiffEntry>,
}

impl Walk<'_> {
    fn load(&mut self, id: Option<Id>, depth: usize) -> Result<Vec<Node>> {
        if depth > MAX_DEPTH {
            return Err(Error::failed(format!(
                "a tree is more than {MAX_DEPTH} levels deep: the snapshot is damaged (run `ripcord verify`)"
            )));
        }
        let nodes = match id {
            Some(id) => self.repo.load_tree(self.index, &id)?.nodes,
            None => vec![],
        };
        self.budget.left = self
            .budget
            .left
            .checked_sub(nodes.len() as u64)
            .ok_or_else(|| {
                Error::failed(
                    "a tree expands to more entries than its snapshot recorded: the snapshot is \
                     damaged (run `ripcord verify`)",
                )
            })?;
        Ok(nodes)
    }

    fn trees(
        &mut self,
        (a, b): (Option<Id>, Option<Id>),
        prefix: &str,
        depth: usize,
    ) -> Result<()> {
        if a == b {
            return Ok(()); // identical subtrees share one id
        }
        let na = self.load(a, depth)?;
        let nb = self.load(b, depth)?;
        let (mut i, mut j) = (0, 0);
        while i < na.len() || j < nb.len() {
            let order = match (na.get(i), nb.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    self.all(&na[i], prefix, EntryChange::Removed, depth)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    self.all(&nb[j], prefix, EntryChange::Added, depth)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (x, y) = (&na[i], &nb[j]);
                    let path = format!("{prefix}{}", x.name);
                    if x.kind == NodeKind::Dir && y.kind == NodeKind::Dir {
                        self.trees((x.subtree, y.subtree), &format!("{path}/"), depth + 1)?;
                    } else if x.kind != y.kind
                        || x.content != y.content
                        || x.mode != y.mode
                        || x.target != y.target
                    {
                        // A folder's path ends in `/`, also one that was a file.
                        let path = if y.kind == NodeKind::Dir {
                            format!("{path}/")
                        } else {
                            path
                        };
                        self.out.push(DiffEntry {
                            kind_changed: x.kind != y.kind,
                            ..DiffEntry::path(path, EntryKind::of(y.kind), EntryChange::Modified)
                        });
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    /// `node` and, for a folder, everything in it, as added or removed.
    fn all(&mut self, node: &Node, prefix: &str, change: EntryChange, depth: usize) -> Result<()> {
        let path = format!("{prefix}{}", node.name);
        if node.kind == NodeKind::Dir {
            self.out
                .push(DiffEntry::path(format!("{path}/"), EntryKind::Dir, change));
            for child in self.load(node.subtree, depth + 1)? {
                self.all(&child, &format!("{path}/"), change, depth + 1)?;
            }
        } else {
            self.out
                .push(DiffEntry::path(path, EntryKind::of(node.kind), change));
        }
        Ok(())
    }
}
