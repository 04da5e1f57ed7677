//! Walking what snapshots reference: trees, files and streams.

use crate::error::Result;
use crate::index::Index;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::manifest::{Content, NodeKind, Snapshot, TargetSnapshot, Tree};
use crate::repo::Repository;
use crate::Id;

/// One thing a snapshot references.
pub enum Item<'a> {
    /// A tree blob that was read successfully.
    Tree { path: &'a str, id: Id },
    /// A tree blob that could not be read; everything below it is unknown.
    BrokenTree {
        path: &'a str,
        id: Id,
        error: String,
    },
    /// Data blobs of one file or stream, with its display path.
    Chunks { path: &'a str, chunks: &'a [Id] },
}

/// Calls `visit` for every tree and every file or stream in one snapshot.
/// Paths are `target/relative/path`.
pub fn walk_snapshot(
    repo: &Repository,
    index: &Index,
    snap: &Snapshot,
    visit: &mut dyn FnMut(Item<'_>),
) -> Result<()> {
    for t in &snap.targets {
        walk_target(repo, index, t, visit);
    }
    Ok(())
}

/// Like [`walk_snapshot`] for one target.
pub fn walk_target(
    repo: &Repository,
    index: &Index,
    t: &TargetSnapshot,
    visit: &mut dyn FnMut(Item<'_>),
) {
    match &t.content {
        Content::Dir { tree } => {
            walk_tree(repo, index, *tree, t.name.clone(), TreeLimits::of(t), visit)
        }
        Content::Sqlite { image, .. } => visit(Item::Chunks {
            path: &format!("{}/<sqlite image>", t.name),
            chunks: &image.chunks,
        }),
        Content::Postgres(pg) => {
            visit(Item::Chunks {
                path: &format!("{}/<schema>", t.name),
                chunks: &pg.schema.chunks,
            });
            for table in &pg.tables {
                let path = format!("{}/{}", t.name, table.qualified());
                for part in &table.parts {
                    visit(Item::Chunks {
                        path: &path,
                        chunks: &part.chunks,
                    });
                }
            }
        }
    }
}

/// Checks, without reading data, that every tree and blob one target needs
/// is indexed and its pack exists. Returns one line per problem.
pub fn missing(repo: &Repository, index: &Index, t: &TargetSnapshot) -> Result<Vec<String>> {
    let packs: HashSet<Id> = repo.list_packs()?.into_iter().map(|(id, _)| id).collect();
    let mut problems = Vec::new();
    walk_target(repo, index, t, &mut |item| match item {
        Item::Tree { .. } => {}
        Item::BrokenTree { path, error, .. } => problems.push(format!("{path}: {error}")),
        Item::Chunks { path, chunks } => {
            // A delta needs its base too.
            let bases: Vec<Id> = chunks.iter().filter_map(|c| index.base_of(c)).collect();
            for c in chunks.iter().chain(&bases) {
                match index.get(c) {
                    None => {
                        problems.push(format!("{path}: blob {} is not in the index", c.short()))
                    }
                    Some(loc) if !packs.contains(&loc.pack) => {
                        problems.push(format!("{path}: pack {} is missing", loc.pack.short()))
                    }
                    Some(_) => {}
                }
            }
        }
    });
    Ok(problems)
}

/// Trees deeper than this are refused. ripcord never writes one: a path
/// that deep is longer than the system allows (PATH_MAX).
pub const MAX_DEPTH: usize = 4096;

/// How far a walk of one target's tree may go: its depth, and how many
/// nodes it may expand to. Shared subtrees make a small tree expand to
/// any number of paths, so the count the snapshot recorded bounds it.
#[derive(Clone, Copy, Debug)]
pub struct TreeLimits {
    pub max_depth: usize,
    pub max_entries: u64,
}

impl TreeLimits {
    /// The limits of one target: the node count it recorded, or for
    /// manifests written before that was recorded, its file count plus a
    /// generous allowance for folders and links.
    pub fn of(t: &TargetSnapshot) -> TreeLimits {
        let max_entries = t.entries.unwrap_or_else(|| {
            t.items
                .saturating_mul(LEGACY_NODES_PER_FILE)
                .saturating_add(LEGACY_EXTRA_NODES)
        });
        TreeLimits {
            max_depth: MAX_DEPTH,
            max_entries,
        }
    }

    /// The message for a tree that expands beyond `max_entries`.
    pub fn too_many(&self) -> String {
        format!(
            "the tree expands to more than the {} entries the snapshot recorded (shared subtrees repeated without end?)",
            self.max_entries
        )
    }

    /// The message for a tree deeper than `max_depth`.
    pub fn too_deep(&self) -> String {
        format!(
            "the tree is more than {} levels deep, deeper than any folder ripcord can have read",
            self.max_depth
        )
    }
}

/// See [`TreeLimits::of`]: manifests without an entry count.
const LEGACY_NODES_PER_FILE: u64 = 4;
const LEGACY_EXTRA_NODES: u64 = 1_000_000;

/// Trees kept in memory during one walk.
const TREE_CACHE: usize = 1024;

/// Depth-first, with an explicit stack: a deep tree cannot overflow the
/// call stack, and the walk stops at the target's limits.
fn walk_tree(
    repo: &Repository,
    index: &Index,
    root: Id,
    root_path: String,
    limits: TreeLimits,
    visit: &mut dyn FnMut(Item<'_>),
) {
    let mut stack = vec![(root, root_path, 0usize)];
    let mut seen: u64 = 0;
    // Shared subtrees are read once while they keep coming back.
    let mut cache: HashMap<Id, Rc<Tree>> = HashMap::new();
    while let Some((id, path, depth)) = stack.pop() {
        if depth > limits.max_depth {
            visit(Item::BrokenTree {
                path: &path,
                id,
                error: limits.too_deep(),
            });
            continue;
        }
        let tree = match cache.get(&id) {
            Some(t) => t.clone(),
            None => match repo.load_tree(index, &id) {
                Ok(t) => {
                    if cache.len() >= TREE_CACHE {
                        cache.clear();
                    }
                    let t = Rc::new(t);
                    cache.insert(id, t.clone());
                    t
                }
                Err(e) => {
                    visit(Item::BrokenTree {
                        path: &path,
                        id,
                        error: e.to_string(),
                    });
                    continue;
                }
            },
        };
        seen = seen.saturating_add(tree.nodes.len() as u64);
        if seen > limits.max_entries {
            visit(Item::BrokenTree {
                path: &path,
                id,
                error: limits.too_many(),
            });
            return;
        }
        visit(Item::Tree { path: &path, id });
        let mut dirs = Vec::new();
        for node in &tree.nodes {
            let child = format!("{path}/{}", node.name);
            match node.kind {
                NodeKind::File => visit(Item::Chunks {
                    path: &child,
                    chunks: &node.content,
                }),
                NodeKind::Dir => {
                    if let Some(sub) = node.subtree {
                        dirs.push((sub, child, depth + 1));
                    }
                }
                _ => {}
            }
        }
        // Popped in name order.
        stack.extend(dirs.into_iter().rev());
    }
}
