//! Walking what snapshots reference: trees, files and streams.

use crate::error::Result;
use crate::index::Index;
use std::collections::HashSet;

use crate::manifest::{Content, NodeKind, Snapshot, TargetSnapshot};
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
        Content::Dir { tree } => walk_tree(repo, index, *tree, t.name.clone(), visit),
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

fn walk_tree(
    repo: &Repository,
    index: &Index,
    id: Id,
    path: String,
    visit: &mut dyn FnMut(Item<'_>),
) {
    let tree = match repo.load_tree(index, &id) {
        Ok(t) => t,
        Err(e) => {
            visit(Item::BrokenTree {
                path: &path,
                id,
                error: e.to_string(),
            });
            return;
        }
    };
    visit(Item::Tree { path: &path, id });
    for node in &tree.nodes {
        let child = format!("{path}/{}", node.name);
        match node.kind {
            NodeKind::File => visit(Item::Chunks {
                path: &child,
                chunks: &node.content,
            }),
            NodeKind::Dir => {
                if let Some(sub) = node.subtree {
                    walk_tree(repo, index, sub, child, visit);
                }
            }
            NodeKind::Symlink => {}
        }
    }
}
