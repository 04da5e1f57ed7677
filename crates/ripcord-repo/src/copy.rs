//! Copying snapshots to another repository, which has keys of its own.
//!
//! Blob ids are keyed per repository (R3), so every blob a snapshot needs is
//! decrypted from the source and its id computed with the destination's
//! key; trees and manifests are rewritten with the destination's ids. Blobs
//! keep their boundaries: the destination's chunker settings apply to what
//! it snapshots itself. Only blobs the destination lacks are written,
//! through the [`Saver`], and per snapshot in the order a snapshot writes
//! them: packs, index, then the manifest. A copy killed at any point leaves
//! at most packs no snapshot uses, which the next copy reuses.
//!
//! A copied manifest records the id the snapshot was first taken as
//! ([`Snapshot::copied_from`]), so a copy that is already there is skipped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::manifest::{Content, NodeKind, Snapshot, Stream, TargetSnapshot, Tree};
use crate::repo::{DamagedSnapshot, Repository};
use crate::saver::{Saver, SaverOptions};
use crate::walk::TreeLimits;
use crate::Id;

/// Totals of one copy.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
pub struct CopyStats {
    /// Blobs the destination lacked, written to it.
    pub blobs_sent: u64,
    /// Blobs the copied snapshots need that the destination already had
    /// (each counted once per snapshot).
    pub blobs_present: u64,
    /// Plaintext bytes of the blobs sent.
    pub sent_bytes: u64,
    /// Bytes written to the destination's packs (compressed and sealed).
    pub stored_bytes: u64,
    /// Packs written to the destination.
    pub packs: u64,
}

/// Source blob ids mapped to destination ids, kept across the snapshots of
/// one run. Beyond this many it starts over, so memory stays bounded; a
/// blob forgotten is only read again.
const MAP_LIMIT: usize = 1 << 20;

/// Data blobs read from the source at once (each at most 16 MiB; 4 MiB
/// with the default chunker).
const READ_BATCH: usize = 16;

/// The snapshots a repository holds, by the id each was first taken as.
pub struct Copies {
    by_original: HashMap<Id, Id>,
    damaged: Vec<DamagedSnapshot>,
}

impl Copies {
    /// Reads every manifest of `repo`; writes nothing.
    pub fn of(repo: &Repository) -> Result<Copies> {
        let list = repo.snapshot_list()?;
        Ok(Copies {
            by_original: list
                .snapshots
                .iter()
                .map(|(id, s)| (s.original(*id), *id))
                .collect(),
            damaged: list.damaged,
        })
    }

    /// The copy of snapshot `id` of another repository, if there is one.
    pub fn find(&self, id: Id, snap: &Snapshot) -> Option<Id> {
        self.by_original.get(&snap.original(id)).copied()
    }

    /// Manifests that do not read (a snapshot they copied is copied again).
    pub fn damaged(&self) -> &[DamagedSnapshot] {
        &self.damaged
    }
}

/// Copies snapshots from one repository to another. The caller holds a
/// shared lock on each.
pub struct Copier<'a> {
    src: &'a Repository,
    src_index: &'a Index,
    dst: &'a Repository,
    dst_index: Arc<Index>,
    saver_opts: SaverOptions,
    /// Destination blobs written by this copier (durable once its snapshot is).
    written: HashSet<Id>,
    /// Source blob id → destination blob id.
    map: HashMap<Id, Id>,
    copies: Copies,
    /// Destination blobs the snapshot being copied needs, to count each once.
    touched: HashSet<Id>,
    stats: CopyStats,
    recovered_packs: usize,
}

impl<'a> Copier<'a> {
    /// Reads the destination's index (indexing packs an interrupted run
    /// left, so their blobs are reused) and which snapshots it holds.
    pub fn new(
        src: &'a Repository,
        src_index: &'a Index,
        dst: &'a Repository,
        saver_opts: SaverOptions,
    ) -> Result<Copier<'a>> {
        let mut dst_index = dst.load_index()?;
        let recovered_packs = dst.index_orphan_packs(&mut dst_index)?;
        let copies = Copies::of(dst)?;
        Ok(Copier {
            src,
            src_index,
            dst,
            dst_index: Arc::new(dst_index),
            saver_opts,
            written: HashSet::new(),
            map: HashMap::new(),
            copies,
            touched: HashSet::new(),
            stats: CopyStats::default(),
            recovered_packs,
        })
    }

    /// Packs an interrupted run had left in the destination, now indexed.
    pub fn recovered_packs(&self) -> usize {
        self.recovered_packs
    }

    /// The snapshots the destination holds.
    pub fn copies(&self) -> &Copies {
        &self.copies
    }

    pub fn stats(&self) -> CopyStats {
        self.stats
    }

    /// Destination blobs this copier wrote.
    pub fn written(&self) -> &HashSet<Id> {
        &self.written
    }

    /// The destination's copy of source snapshot `id`, if it has one.
    pub fn existing(&self, id: Id, snap: &Snapshot) -> Option<Id> {
        self.copies.find(id, snap)
    }

    /// Copies one snapshot (the caller checked [`existing`](Self::existing))
    /// and returns the id of the copy. `progress` hears the plaintext bytes
    /// read from the source.
    pub fn copy(&mut self, id: Id, snap: &Snapshot, progress: &(dyn Fn(u64) + Sync)) -> Result<Id> {
        if self.map.len() > MAP_LIMIT {
            self.map.clear();
        }
        self.touched.clear();
        let parent = snap.parent.and_then(|p| self.copy_of_source(p));
        if let Some(p) = parent {
            self.seed_from_copy(snap, p);
        }
        let saver = Saver::new(self.dst, self.dst_index.clone(), self.saver_opts);
        let mut targets = Vec::with_capacity(snap.targets.len());
        for t in &snap.targets {
            targets.push(self.copy_target(&saver, t, progress)?);
        }
        let saved = saver.finish()?;
        self.stats.stored_bytes += saved.stored_bytes;
        self.stats.packs += saved.packs;
        ripcord_core::failpoint::hit("copy-before-manifest");
        let copy = Snapshot {
            targets,
            parent,
            copied_from: Some(snap.original(id)),
            ..snap.clone()
        };
        let new_id = self.dst.save_snapshot(&copy)?;
        self.copies.by_original.insert(snap.original(id), new_id);
        Ok(new_id)
    }

    /// The destination's copy of source snapshot `id`, looked up by the id
    /// it was first taken as.
    fn copy_of_source(&self, id: Id) -> Option<Id> {
        if let Some(c) = self.copies.by_original.get(&id) {
            return Some(*c);
        }
        let snap = self.src.load_snapshot(&id).ok()?;
        self.copies.find(id, &snap)
    }

    fn copy_target(
        &mut self,
        saver: &Saver,
        t: &TargetSnapshot,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<TargetSnapshot> {
        let content = match &t.content {
            Content::Dir { tree } => Content::Dir {
                tree: self.copy_tree(saver, *tree, TreeLimits::of(t), progress)?,
            },
            Content::Sqlite {
                image,
                tables,
                stamp,
            } => Content::Sqlite {
                image: self.copy_stream(saver, image, progress)?,
                tables: tables.clone(),
                stamp: stamp.clone(),
            },
            Content::Postgres(pg) => {
                let mut pg = pg.clone();
                pg.schema = self.copy_stream(saver, &pg.schema, progress)?;
                for table in &mut pg.tables {
                    for part in &mut table.parts {
                        *part = self.copy_stream(saver, part, progress)?;
                    }
                }
                Content::Postgres(pg)
            }
        };
        Ok(TargetSnapshot {
            content,
            ..t.clone()
        })
    }

    fn copy_stream(
        &mut self,
        saver: &Saver,
        s: &Stream,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Stream> {
        Ok(Stream {
            chunks: self.copy_data(saver, &s.chunks, progress)?,
            ..s.clone()
        })
    }

    /// Maps data blobs to destination ids, sending the ones it lacks.
    /// Unmapped blobs are read and hashed in parallel, a batch at a time.
    fn copy_data(
        &mut self,
        saver: &Saver,
        chunks: &[Id],
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<Id>> {
        let mut todo: Vec<Id> = chunks
            .iter()
            .filter(|c| !self.map.contains_key(c))
            .copied()
            .collect();
        todo.sort_unstable();
        todo.dedup();
        for batch in todo.chunks(READ_BATCH) {
            let read: Vec<(Id, Id, Vec<u8>)> = batch
                .par_iter()
                .map(|c| {
                    let data = self.src.read_blob(self.src_index, c)?;
                    progress(data.len() as u64);
                    Ok((*c, self.dst.keys().blob_id(&data), data))
                })
                .collect::<Result<_>>()?;
            for (src_id, dst_id, data) in read {
                self.store(saver, BlobKind::Data, dst_id, data)?;
                self.map.insert(src_id, dst_id);
            }
        }
        let out: Vec<Id> = chunks.iter().map(|c| self.map[c]).collect();
        for id in &out {
            self.touch(*id);
        }
        Ok(out)
    }

    /// Sends a blob unless the destination has it.
    fn store(&mut self, saver: &Saver, kind: BlobKind, id: Id, data: Vec<u8>) -> Result<()> {
        if self.dst_index.contains(&id) || self.written.contains(&id) {
            self.touch(id);
            return Ok(());
        }
        self.stats.blobs_sent += 1;
        self.stats.sent_bytes += data.len() as u64;
        saver.save_with_id(kind, id, data)?;
        self.written.insert(id);
        self.touched.insert(id);
        Ok(())
    }

    /// Counts a blob the snapshot needs and the destination had, once.
    fn touch(&mut self, id: Id) {
        if self.touched.insert(id) {
            self.stats.blobs_present += 1;
        }
    }

    /// Copies a tree and everything below it, children first: a tree's id
    /// depends on its children's destination ids. Iterative, within the
    /// target's limits, like every walk.
    fn copy_tree(
        &mut self,
        saver: &Saver,
        root: Id,
        limits: TreeLimits,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Id> {
        enum Step {
            Enter(Id, usize),
            Leave(Id, Tree),
        }
        let mut stack = vec![Step::Enter(root, 0)];
        let mut seen: u64 = 0;
        // Trees are always rebuilt, never taken from the map: a tree in the
        // destination's index may be one whose children an interrupted run
        // never wrote.
        let mut done: HashMap<Id, Id> = HashMap::new();
        while let Some(step) = stack.pop() {
            match step {
                Step::Enter(id, depth) => {
                    if done.contains_key(&id) {
                        continue;
                    }
                    let path = format!("tree {}", id.short());
                    if depth > limits.max_depth {
                        return Err(Error::corrupt(path, limits.too_deep()));
                    }
                    let tree = self.src.load_tree(self.src_index, &id)?;
                    seen = seen.saturating_add(tree.nodes.len() as u64);
                    if seen > limits.max_entries {
                        return Err(Error::corrupt(path, limits.too_many()));
                    }
                    let subtrees: Vec<Id> = tree.nodes.iter().filter_map(|n| n.subtree).collect();
                    stack.push(Step::Leave(id, tree));
                    stack.extend(subtrees.into_iter().map(|s| Step::Enter(s, depth + 1)));
                }
                Step::Leave(id, mut tree) => {
                    if done.contains_key(&id) {
                        continue;
                    }
                    for node in &mut tree.nodes {
                        if node.kind == NodeKind::File && !node.content.is_empty() {
                            node.content = self.copy_data(saver, &node.content, progress)?;
                        }
                        if let Some(sub) = node.subtree {
                            node.subtree = Some(done[&sub]);
                        }
                    }
                    let bytes = serde_json::to_vec(&tree).expect("tree serializes");
                    let new_id = self.dst.keys().blob_id(&bytes);
                    self.store(saver, BlobKind::Tree, new_id, bytes)?;
                    done.insert(id, new_id);
                }
            }
        }
        Ok(done[&root])
    }

    /// Learns the destination ids of the data blobs of an earlier copy
    /// (the parent's), pairing its source and its copy entry by entry, so
    /// that what did not change is not read again. A pair is trusted only
    /// where the two agree in shape and the blobs in size; anything else
    /// is simply read.
    fn seed_from_copy(&mut self, snap: &Snapshot, copy: Id) {
        let Some(parent) = snap.parent else { return };
        let (Ok(src_snap), Ok(dst_snap)) = (
            self.src.load_snapshot(&parent),
            self.dst.load_snapshot(&copy),
        ) else {
            return;
        };
        for a in &src_snap.targets {
            let Some(b) = dst_snap.target(&a.name) else {
                continue;
            };
            match (&a.content, &b.content) {
                (Content::Dir { tree: x }, Content::Dir { tree: y }) => {
                    self.seed_trees(*x, *y, TreeLimits::of(a))
                }
                (Content::Sqlite { image: x, .. }, Content::Sqlite { image: y, .. }) => {
                    self.seed_chunks(&x.chunks, &y.chunks)
                }
                (Content::Postgres(x), Content::Postgres(y)) => {
                    self.seed_chunks(&x.schema.chunks, &y.schema.chunks);
                    for (tx, ty) in x.tables.iter().zip(&y.tables) {
                        if tx.qualified() == ty.qualified() && tx.parts.len() == ty.parts.len() {
                            for (px, py) in tx.parts.iter().zip(&ty.parts) {
                                self.seed_chunks(&px.chunks, &py.chunks);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn seed_chunks(&mut self, src: &[Id], dst: &[Id]) {
        if src.len() != dst.len() {
            return;
        }
        for (a, b) in src.iter().zip(dst) {
            let (Some(la), Some(lb)) = (self.src_index.get(a), self.dst_index.get(b)) else {
                continue;
            };
            if la.raw_length == lb.raw_length {
                self.map.insert(*a, *b);
            }
        }
    }

    fn seed_trees(&mut self, src_root: Id, dst_root: Id, limits: TreeLimits) {
        let mut stack = vec![(src_root, dst_root, 0usize)];
        let mut seen: u64 = 0;
        let mut visited = HashSet::new();
        while let Some((a, b, depth)) = stack.pop() {
            if depth > limits.max_depth || !visited.insert(a) {
                continue;
            }
            let (Ok(ta), Ok(tb)) = (
                self.src.load_tree(self.src_index, &a),
                self.dst.load_tree(&self.dst_index, &b),
            ) else {
                continue;
            };
            seen = seen.saturating_add(ta.nodes.len() as u64);
            if seen > limits.max_entries || ta.nodes.len() != tb.nodes.len() {
                return;
            }
            for (na, nb) in ta.nodes.iter().zip(&tb.nodes) {
                if na.name != nb.name || na.name_bytes != nb.name_bytes || na.kind != nb.kind {
                    continue;
                }
                if na.kind == NodeKind::File && na.size == nb.size {
                    self.seed_chunks(&na.content, &nb.content);
                }
                if let (Some(sa), Some(sb)) = (na.subtree, nb.subtree) {
                    stack.push((sa, sb, depth + 1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
