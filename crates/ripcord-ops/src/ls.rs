//! `ripcord ls`: what a snapshot holds, read from its manifest and trees:
//! the files and folders of dir targets, the tables of database targets.

use chrono::{DateTime, Utc};
use ripcord_repo::index::Index;
use ripcord_repo::manifest::{Content, Node, NodeKind, Snapshot, TargetSnapshot};
use ripcord_repo::walk::{TreeLimits, MAX_DEPTH};
use ripcord_repo::{Id, Repository};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::json::EntryKind;
use crate::{Error, Result};

/// `ls`: what a snapshot holds below one path.
#[derive(Serialize, Debug, schemars::JsonSchema)]
pub struct Listing {
    pub snapshot: Id,
    pub entries: Vec<Entry>,
}

/// One file, folder, link or table. Fields that do not apply to its kind
/// are left out.
#[derive(Serialize, Debug, Clone, schemars::JsonSchema)]
pub struct Entry {
    /// The target's name.
    pub target: String,
    /// Relative to the target's root, `/`-separated, a folder's ending in
    /// `/` (as in `diff`); a table's name for a database target
    /// (`schema.name` for PostgreSQL).
    pub path: String,
    pub kind: EntryKind,
    /// A file's size; a PostgreSQL table's stored (COPY) data. Absent where
    /// the snapshot does not record it (folders, SQLite tables).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// A table's rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Permission bits, octal (`0644`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// When the file was last modified (its mtime), RFC 3339 in UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<DateTime<Utc>>,
    /// What a symlink points to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// `ripcord ls SNAPSHOT [PATH]`: PATH is a target's name, optionally with
/// a path inside it (`app/config`, `shop/orders`). In a snapshot of one
/// target the name may be left out (`config`).
pub fn list(ctx: &Ctx, snapshot: &str, path: Option<&str>) -> Result<Listing> {
    let repo = ctx.open_repo()?;
    let (id, snap) = ctx.find_snapshot(&repo, snapshot)?;
    let mut entries = Vec::new();
    let chosen: Vec<(&TargetSnapshot, String)> = match path.map(|p| p.trim_matches('/')) {
        None | Some("") => snap.targets.iter().map(|t| (t, String::new())).collect(),
        Some(p) => vec![resolve(&snap, &id, p)?],
    };
    let index = if chosen
        .iter()
        .any(|(t, _)| matches!(t.content, Content::Dir { .. }))
    {
        Some(repo.load_index()?)
    } else {
        None
    };
    for (t, rest) in chosen {
        match &t.content {
            Content::Dir { tree } => {
                let index = index.as_ref().expect("index loaded for dir targets");
                list_tree(&repo, index, t, *tree, &rest, &mut entries)?
            }
            Content::Sqlite { tables, .. } => {
                let found: Vec<_> = tables
                    .iter()
                    .filter(|s| rest.is_empty() || s.name.eq_ignore_ascii_case(&rest))
                    .collect();
                if found.is_empty() {
                    let names: Vec<String> = tables.iter().map(|s| s.name.clone()).collect();
                    return Err(not_found(t, &rest, &names));
                }
                entries.extend(found.into_iter().map(|s| Entry {
                    rows: Some(s.rows),
                    ..entry(t, s.name.clone(), EntryKind::Table)
                }));
            }
            Content::Postgres(pg) => {
                let wanted = (!rest.is_empty())
                    .then(|| ripcord_core::table_name::TableRef::parse(&rest).ok())
                    .map(|w| w.ok_or(()));
                let found: Vec<_> = pg
                    .tables
                    .iter()
                    .filter(|pt| match &wanted {
                        None => true,
                        Some(Ok(w)) => w.matches(&pt.schema, &pt.name),
                        Some(Err(())) => false,
                    })
                    .collect();
                if found.is_empty() {
                    let names: Vec<String> = pg.tables.iter().map(|pt| pt.qualified()).collect();
                    return Err(not_found(t, &rest, &names));
                }
                entries.extend(found.into_iter().map(|pt| Entry {
                    rows: Some(pt.rows),
                    bytes: Some(pt.size),
                    ..entry(t, pt.qualified(), EntryKind::Table)
                }));
            }
        }
    }
    Ok(Listing {
        snapshot: id,
        entries,
    })
}

fn entry(t: &TargetSnapshot, path: String, kind: EntryKind) -> Entry {
    Entry {
        target: t.name.clone(),
        path,
        kind,
        bytes: None,
        rows: None,
        mode: None,
        modified_at: None,
        link: None,
    }
}

/// The target PATH names, and the rest of PATH inside it.
fn resolve<'s>(snap: &'s Snapshot, id: &Id, path: &str) -> Result<(&'s TargetSnapshot, String)> {
    let (first, rest) = path.split_once('/').unwrap_or((path, ""));
    if let Some(t) = snap.target(first) {
        return Ok((t, rest.trim_matches('/').to_string()));
    }
    if let [only] = snap.targets.as_slice() {
        return Ok((only, path.to_string()));
    }
    let names = snap.target_names();
    let near = names
        .iter()
        .find(|n| strsim::levenshtein(n, first) <= 2)
        .map(|n| format!("did you mean {n}? "))
        .unwrap_or_default();
    Err(Error::usage(
        format!("snapshot {} has no target {first:?}", id.short()),
        format!(
            "{near}PATH starts with a target's name: {}",
            names
                .iter()
                .map(|n| format!("{n}/…"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

fn not_found(t: &TargetSnapshot, rest: &str, names: &[String]) -> Error {
    let near = names
        .iter()
        .map(|n| {
            (
                strsim::levenshtein(&rest.to_lowercase(), &n.to_lowercase()),
                n,
            )
        })
        .filter(|(d, n)| *d <= 3.max(n.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| format!("did you mean {}/{n}? ", t.name))
        .unwrap_or_default();
    let what = if matches!(t.content, Content::Dir { .. }) {
        "path"
    } else {
        "table"
    };
    Error::usage(
        format!("target {} of the snapshot has no {what} {rest:?}", t.name),
        format!("{near}`ripcord ls SNAPSHOT {}` lists what it holds", t.name),
    )
}

/// The entries of a dir target below `rest` (all of them when empty), in
/// name order, folders before what they hold.
fn list_tree(
    repo: &Repository,
    index: &Index,
    t: &TargetSnapshot,
    root: Id,
    rest: &str,
    out: &mut Vec<Entry>,
) -> Result<()> {
    let limits = TreeLimits::of(t);
    let mut seen = 0u64;
    let mut load = |id: &Id| -> Result<ripcord_repo::manifest::Tree> {
        let tree = repo.load_tree(index, id)?;
        seen = seen.saturating_add(tree.nodes.len() as u64);
        if seen > limits.max_entries {
            return Err(Error::failed(limits.too_many()));
        }
        Ok(tree)
    };
    // Down to the named path.
    let mut start = (root, String::new());
    if !rest.is_empty() {
        let mut tree = load(&root)?;
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        let mut walked = String::new();
        for (i, part) in parts.iter().enumerate() {
            let Some(node) = tree.nodes.iter().find(|n| n.name == *part).cloned() else {
                let names: Vec<String> =
                    tree.nodes.iter().map(|n| join(&walked, &n.name)).collect();
                return Err(not_found(t, rest, &names));
            };
            walked = join(&walked, part);
            let last = i + 1 == parts.len();
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) if last => {
                    out.push(node_entry(t, walked.clone(), &node));
                    start = (sub, walked.clone());
                }
                (NodeKind::Dir, Some(sub)) => tree = load(&sub)?,
                _ if last => {
                    out.push(node_entry(t, walked.clone(), &node));
                    return Ok(());
                }
                _ => return Err(not_found(t, rest, &[walked])),
            }
        }
    }
    // Depth first in name order: a folder's entries right after it.
    enum Work {
        Emit(Entry),
        Tree(Id, String, usize),
    }
    let mut stack = vec![Work::Tree(start.0, start.1, 0)];
    while let Some(work) = stack.pop() {
        let (id, rel, depth) = match work {
            Work::Emit(e) => {
                out.push(e);
                continue;
            }
            Work::Tree(id, rel, depth) => (id, rel, depth),
        };
        if depth > MAX_DEPTH {
            return Err(Error::failed(limits.too_deep()));
        }
        let tree = load(&id)?;
        for node in tree.nodes.iter().rev() {
            let path = join(&rel, &node.name);
            if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                stack.push(Work::Tree(sub, path.clone(), depth + 1));
            }
            stack.push(Work::Emit(node_entry(t, path, node)));
        }
    }
    Ok(())
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn node_entry(t: &TargetSnapshot, path: String, node: &Node) -> Entry {
    let path = if node.kind == NodeKind::Dir {
        path + "/"
    } else {
        path
    };
    Entry {
        bytes: (node.kind == NodeKind::File).then_some(node.size),
        mode: Some(format!("{:04o}", node.mode & 0o7777)),
        modified_at: Some(DateTime::from_timestamp_nanos(node.mtime)),
        link: node.target.clone(),
        ..entry(t, path, EntryKind::of(node.kind))
    }
}
