//! `prune`: remove data no snapshot references, in two phases (R1).
//!
//! Phase one writes: repacked packs with the still-used blobs of mostly-empty
//! packs, then a new index covering every pack that stays. Phase two deletes:
//! the old index files, then the packs nothing indexes any more. A kill at any
//! point leaves every snapshot readable; at worst unused packs linger until
//! the next prune.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::blob;
use crate::error::{Error, Result};
use crate::pack::{self, PackEntry, PackWriter};
use crate::repo::Repository;
use crate::walk::{walk_snapshot, Item};
use crate::Id;

/// Packs with more unused bytes than this share are rewritten.
const REPACK_WASTE: f64 = 0.10;
const PACKS_PER_INDEX: usize = 2048;

#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct PruneReport {
    pub packs_before: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub packs_written: usize,
    pub blobs_unused: usize,
    #[serde(rename = "freed_bytes")]
    pub bytes_freed: u64,
    pub dry_run: bool,
}

pub fn prune(repo: &Repository, dry_run: bool) -> Result<PruneReport> {
    let index = repo.load_index()?;
    let list = repo.snapshot_list()?;
    // What a damaged manifest refers to is unknown: deleting anything could
    // destroy what it still needs.
    if !list.damaged.is_empty() {
        return Err(Error::Damaged {
            snapshot: list
                .damaged
                .iter()
                .map(|d| d.id.short())
                .collect::<Vec<_>>()
                .join(", "),
            problems: format!(
                "prune cannot tell what is in use while manifests are unreadable: {}; remove them with `ripcord forget ID` first",
                list.damaged
                    .iter()
                    .map(|d| d.error.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }
    let snapshots = list.snapshots;

    let mut used: HashSet<Id> = HashSet::new();
    let mut broken = Vec::new();
    for (sid, snap) in &snapshots {
        walk_snapshot(repo, &index, snap, &mut |item| match item {
            Item::Tree { id, .. } => {
                used.insert(id);
            }
            Item::BrokenTree { path, error, .. } => {
                broken.push(format!("snapshot {}: {path}: {error}", sid.short()))
            }
            Item::Chunks { chunks, .. } => used.extend(chunks.iter().copied()),
        })?;
    }
    if !broken.is_empty() {
        return Err(Error::Damaged {
            snapshot: "(several)".into(),
            problems: format!(
                "prune cannot tell what is in use while trees are unreadable: {}; run `ripcord verify --deep`",
                broken.join("; ")
            ),
        });
    }
    // A delta is only readable with its base.
    let bases: Vec<Id> = used.iter().filter_map(|b| index.base_of(b)).collect();
    used.extend(bases);
    if let Some(missing) = used.iter().find(|b| !index.contains(b)) {
        return Err(Error::corrupt(
            format!("blob {}", missing.short()),
            "referenced by a snapshot but in no index; prune refused; run `ripcord repair index` then `ripcord verify`",
        ));
    }

    let on_disk: HashMap<Id, u64> = repo.list_packs()?.into_iter().collect();
    let by_pack = index.by_pack();
    let mut report = PruneReport {
        packs_before: on_disk.len(),
        dry_run,
        ..Default::default()
    };

    // Decide per pack: keep, repack or delete.
    let mut keep: Vec<(Id, Vec<PackEntry>)> = Vec::new();
    let mut drop_packs: Vec<Id> = Vec::new();
    let mut covered: HashSet<Id> = HashSet::new();
    let mut candidates: Vec<(Id, &Vec<PackEntry>)> = Vec::new();
    let mut packs: Vec<_> = by_pack.iter().collect();
    packs.sort_by_key(|(id, _)| **id);
    for (pack_id, entries) in packs {
        let total: u64 = entries.iter().map(|e| e.length as u64).sum();
        let waste: u64 = entries
            .iter()
            .filter(|e| !used.contains(&e.id))
            .map(|e| e.length as u64)
            .sum();
        report.blobs_unused += entries.iter().filter(|e| !used.contains(&e.id)).count();
        if waste == 0 || (total > 0 && (waste as f64) / (total as f64) <= REPACK_WASTE) {
            covered.extend(entries.iter().map(|e| e.id));
            keep.push((*pack_id, entries.clone()));
        } else {
            candidates.push((*pack_id, entries));
        }
    }
    let mut to_copy: Vec<(Id, PackEntry)> = Vec::new();
    for (pack_id, entries) in &candidates {
        for e in entries.iter() {
            if used.contains(&e.id) && covered.insert(e.id) {
                to_copy.push((*pack_id, *e));
            }
        }
        if entries.iter().any(|e| used.contains(&e.id)) {
            report.packs_repacked += 1;
        } else {
            report.packs_deleted += 1;
        }
        drop_packs.push(*pack_id);
        report.bytes_freed += on_disk.get(pack_id).copied().unwrap_or(0);
    }
    // Packs no index mentions (interrupted runs) are unused by definition.
    let orphans: Vec<Id> = on_disk
        .keys()
        .filter(|p| !index.has_pack(p))
        .copied()
        .collect();
    report.packs_deleted += orphans.len();
    report.bytes_freed += orphans.iter().map(|p| on_disk[p]).sum::<u64>();
    if dry_run {
        return Ok(report);
    }
    if drop_packs.is_empty() && orphans.is_empty() {
        return Ok(report);
    }

    // Phase one: write repacked packs and the new index.
    let mut writer = PackWriter::new();
    let mut written: Vec<(Id, Vec<PackEntry>)> = Vec::new();
    let flush = |writer: PackWriter, written: &mut Vec<(Id, Vec<PackEntry>)>| -> Result<()> {
        let finished = writer.finish(repo.keys());
        let path = pack::path(&finished.id);
        repo.backend()
            .put_if_absent(&path, &finished.bytes)
            .map_err(|e| Error::io(format!("cannot write {path}"), e))?;
        ripcord_core::failpoint::hit("prune-pack-written");
        written.push((finished.id, finished.entries));
        Ok(())
    };
    for (pack_id, e) in &to_copy {
        let path = pack::path(pack_id);
        let sealed = repo
            .backend()
            .get_range(&path, e.offset as u64, e.length as u64)
            .map_err(|err| Error::io(format!("cannot read {path}"), err))?;
        // Never carry damage forward: check the blob before copying it.
        let base = e.base.map(|b| repo.read_blob(&index, &b)).transpose()?;
        let data =
            blob::decode_with_base(repo.keys(), &sealed, e.raw_length as usize, base.as_deref())
                .map_err(|err| Error::corrupt(&path, format!("blob {}: {err}", e.id.short())))?;
        if repo.keys().blob_id(&data) != e.id {
            return Err(Error::corrupt(
                &path,
                format!("blob {} does not match its id", e.id.short()),
            ));
        }
        writer.add(e.kind, e.id, &sealed, e.raw_length as usize, e.base);
        if writer.len() >= pack::TARGET_SIZE {
            flush(std::mem::take(&mut writer), &mut written)?;
        }
    }
    if !writer.is_empty() {
        flush(writer, &mut written)?;
    }
    report.packs_written = written.len();
    let old_index = repo.list_ids("index")?;
    let mut all = keep;
    all.extend(written);
    let mut new_index = HashSet::new();
    for part in all.chunks(PACKS_PER_INDEX) {
        new_index.insert(repo.save_index(part)?);
    }
    ripcord_core::failpoint::hit("prune-index-written");

    // Phase two: delete old index files, then unused packs.
    for id in old_index.iter().filter(|id| !new_index.contains(id)) {
        let path = format!("index/{}", id.to_hex());
        repo.backend()
            .delete(&path)
            .map_err(|e| Error::io(format!("cannot delete {path}"), e))?;
    }
    ripcord_core::failpoint::hit("prune-old-index-deleted");
    for id in drop_packs.iter().chain(orphans.iter()) {
        let path = pack::path(id);
        repo.backend()
            .delete(&path)
            .map_err(|e| Error::io(format!("cannot delete {path}"), e))?;
        ripcord_core::failpoint::hit("prune-pack-deleted");
    }
    Ok(report)
}

/// Rebuilds the index from the packs' own headers (R6).
pub fn rebuild_index(repo: &Repository) -> Result<(usize, Vec<String>)> {
    rebuild_index_with(repo, false)
}

/// [`rebuild_index`]; with `dry_run`, the packs' headers are read and
/// nothing is written: the count says how many packs the index would hold.
pub fn rebuild_index_with(repo: &Repository, dry_run: bool) -> Result<(usize, Vec<String>)> {
    let mut packs = Vec::new();
    let mut skipped = Vec::new();
    for (id, _) in repo.list_packs()? {
        match pack::read_header(&**repo.backend(), repo.keys(), &pack::path(&id)) {
            Ok(entries) => packs.push((id, entries)),
            Err(e) => skipped.push(format!("{}: {e}", pack::path(&id))),
        }
    }
    if dry_run {
        return Ok((packs.len(), skipped));
    }
    let old = repo.list_ids("index")?;
    let mut new = HashSet::new();
    for part in packs.chunks(PACKS_PER_INDEX) {
        new.insert(repo.save_index(part)?);
    }
    for id in old.iter().filter(|id| !new.contains(id)) {
        let path = format!("index/{}", id.to_hex());
        repo.backend()
            .delete(&path)
            .map_err(|e| Error::io(format!("cannot delete {path}"), e))?;
    }
    Ok((packs.len(), skipped))
}
