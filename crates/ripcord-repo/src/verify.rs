//! `verify` (R10). Quick: structure, manifests, trees, and that the index and
//! the packs' own headers agree. Deep: also reads every pack (or a subset),
//! checks its name, decrypts and re-hashes every blob. Every problem names
//! the snapshots and files it affects.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use crate::blob;
use crate::error::Result;
use crate::index::Index;
use crate::manifest::Snapshot;
use crate::pack;
use crate::repo::Repository;
use crate::walk::{walk_snapshot, Item};
use crate::Id;

#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    pub deep: bool,
    /// Percentage of packs to read in deep mode (100 = all).
    pub subset_percent: Option<f64>,
    /// Only this snapshot.
    pub snapshot: Option<Id>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// The damaged repository file or object.
    pub object: String,
    pub detail: String,
    /// `snapshot <id>: <target>/<path>` for every file the problem affects.
    pub affects: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    #[serde(rename = "snapshot_count")]
    pub snapshots: usize,
    #[serde(rename = "pack_count")]
    pub packs: usize,
    pub packs_read: usize,
    pub blobs_checked: usize,
    #[serde(rename = "read_bytes")]
    pub bytes_read: u64,
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn verify(
    repo: &Repository,
    opts: &VerifyOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    // Blobs found damaged or missing, with what was wrong.
    let mut bad: HashMap<Id, String> = HashMap::new();

    // 1. Index files, one by one, so one damaged file does not hide the rest.
    let mut index = Index::new();
    for id in repo.list_ids("index")? {
        match repo.load_file("index", &id).and_then(|b| {
            crate::index::decode_file(&b)
                .map_err(|e| crate::Error::corrupt(format!("index/{}", id.to_hex()), e))
        }) {
            Ok(packs) => {
                for (p, entries) in packs {
                    index.add_pack(p, &entries);
                }
            }
            Err(e) => report.problems.push(Problem {
                object: format!("index/{}", id.to_hex()),
                detail: format!("{e}; `ripcord repair index` rebuilds the index from the packs"),
                affects: vec![],
            }),
        }
    }
    index.finalize();

    // 2. Index against packs: every indexed pack exists and its header agrees.
    let on_disk: HashMap<Id, u64> = repo.list_packs()?.into_iter().collect();
    let by_pack = index.by_pack();
    report.packs = by_pack.len();
    let orphans = on_disk.keys().filter(|p| !index.has_pack(p)).count();
    if orphans > 0 {
        report.warnings.push(format!(
            "{} not in the index (left by an interrupted run); the next snapshot indexes them and prune removes what is unused",
            ripcord_core::text::count(orphans as u64, "pack is", "packs are")
        ));
    }
    // Packs in no index are still read by the next snapshot: their header
    // must read, and a deep verify reads them whole.
    let mut orphan_ids: Vec<Id> = on_disk
        .keys()
        .filter(|p| !index.has_pack(p))
        .copied()
        .collect();
    orphan_ids.sort();
    let orphan_problems: Vec<(Id, String)> = orphan_ids
        .par_iter()
        .filter_map(|p| {
            check_orphan(repo, &index, p, opts.deep)
                .err()
                .map(|e| (*p, e))
        })
        .collect();
    for (pack_id, detail) in orphan_problems {
        report.problems.push(Problem {
            object: pack::path(&pack_id),
            detail: format!("{detail} (a pack in no index file; `ripcord prune` removes it)"),
            affects: vec![],
        });
    }
    let header_problems: Vec<(Id, String)> = by_pack
        .par_iter()
        .filter_map(|(pack_id, entries)| {
            if !on_disk.contains_key(pack_id) {
                return Some((*pack_id, "pack is missing".to_string()));
            }
            match pack::read_header(&**repo.backend(), repo.keys(), &pack::path(pack_id)) {
                Err(e) => Some((*pack_id, e)),
                Ok(mut header) => {
                    header.sort_by_key(|e| e.offset);
                    let indexed: BTreeSet<_> =
                        entries.iter().map(|e| (e.id, e.offset, e.length)).collect();
                    let actual: BTreeSet<_> =
                        header.iter().map(|e| (e.id, e.offset, e.length)).collect();
                    (!indexed.is_subset(&actual)).then(|| {
                        (
                            *pack_id,
                            "the pack's header disagrees with the index".to_string(),
                        )
                    })
                }
            }
        })
        .collect();
    for (pack_id, detail) in header_problems {
        for e in &by_pack[&pack_id] {
            bad.insert(e.id, format!("in damaged pack {}", pack_id.short()));
        }
        report.problems.push(Problem {
            object: pack::path(&pack_id),
            detail,
            affects: vec![],
        });
    }

    // 3. Snapshots and trees; collect what they reference.
    let snapshot_ids = match opts.snapshot {
        Some(id) => vec![id],
        None => repo.list_ids("snapshots")?,
    };
    let mut snapshots: Vec<(Id, Snapshot)> = Vec::new();
    for id in snapshot_ids {
        match repo.load_snapshot(&id) {
            Ok(s) => snapshots.push((id, s)),
            Err(e) => report.problems.push(Problem {
                object: format!("snapshots/{}", id.to_hex()),
                detail: e.to_string(),
                affects: vec![format!("snapshot {}", id.short())],
            }),
        }
    }
    report.snapshots = snapshots.len();
    let mut referenced: HashSet<Id> = HashSet::new();
    let mut chained: HashSet<Id> = HashSet::new();
    for (sid, snap) in &snapshots {
        walk_snapshot(repo, &index, snap, &mut |item| match item {
            Item::Tree { id, .. } => {
                referenced.insert(id);
            }
            Item::BrokenTree { path, id, error } => {
                bad.entry(id).or_insert_with(|| error.clone());
                report.problems.push(Problem {
                    object: format!("tree {}", id.short()),
                    detail: error,
                    affects: vec![format!(
                        "snapshot {}: {path} and everything below it",
                        sid.short()
                    )],
                });
            }
            Item::Chunks { path, chunks } => {
                for c in chunks {
                    if !index.contains(c) {
                        bad.entry(*c).or_insert_with(|| "not in the index".into());
                    }
                    if let Some(b) = index.base_of(c) {
                        if !index.contains(&b) {
                            bad.entry(*c).or_insert_with(|| {
                                format!("its delta base {} is not in the index", b.short())
                            });
                        }
                        // Reads follow one delta; a longer chain (or a loop) is refused.
                        if index.base_of(&b).is_some() && chained.insert(*c) {
                            report.problems.push(Problem {
                                object: format!("blob {}", c.short()),
                                detail: format!(
                                    "its delta base {} is itself a delta: base chains longer than 1 are never written",
                                    b.short()
                                ),
                                affects: vec![format!("snapshot {}: {path}", sid.short())],
                            });
                        }
                        referenced.insert(b);
                    }
                    referenced.insert(*c);
                }
            }
        })?;
    }

    // 4. Deep: read packs, check names, decrypt and re-hash every blob.
    if opts.deep {
        let mut packs: Vec<Id> = by_pack
            .iter()
            .filter(|(p, entries)| {
                on_disk.contains_key(*p)
                    && (opts.snapshot.is_none()
                        || entries.iter().any(|e| referenced.contains(&e.id)))
            })
            .map(|(p, _)| *p)
            .collect();
        packs.sort();
        if let Some(pct) = opts.subset_percent {
            use rand::seq::SliceRandom;
            packs.shuffle(&mut rand::thread_rng());
            let n = ((packs.len() as f64 * pct / 100.0).ceil() as usize).min(packs.len());
            packs.truncate(n);
        }
        let total: u64 = packs.iter().map(|p| on_disk[p]).sum();
        let done = std::sync::atomic::AtomicU64::new(0);
        let found = Mutex::new(Vec::<(Id, Option<Id>, String)>::new());
        let blobs = std::sync::atomic::AtomicUsize::new(0);
        packs.par_iter().for_each(|pack_id| {
            let path = pack::path(pack_id);
            let result = repo
                .backend()
                .get(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    let (entries, misnamed) = match pack::parse_full(repo.keys(), *pack_id, &bytes)
                    {
                        Ok(entries) => (entries, None),
                        // Modified bytes: if the header still reads, check blob
                        // by blob so only the damaged files are named.
                        Err(err) => (
                            pack::parse_full(repo.keys(), Id::of_file(&bytes), &bytes)
                                .map_err(|_| err.clone())?,
                            Some(err),
                        ),
                    };
                    let mut damaged_blobs = 0;
                    for e in &entries {
                        // parse_full checked that every entry lies inside the pack.
                        let sealed =
                            &bytes[e.offset as usize..e.offset as usize + e.length as usize];
                        let base = match e.base.map(|b| repo.read_blob(&index, &b)).transpose() {
                            Ok(b) => b,
                            Err(err) => {
                                damaged_blobs += 1;
                                found.lock().expect("verify lock").push((
                                    *pack_id,
                                    Some(e.id),
                                    format!("its delta base: {err}"),
                                ));
                                continue;
                            }
                        };
                        let outcome = blob::decode_with_base(
                            repo.keys(),
                            sealed,
                            e.raw_length as usize,
                            base.as_deref(),
                        )
                        .map_err(|err| err.to_string())
                        .and_then(|data| {
                            (repo.keys().blob_id(&data) == e.id)
                                .then_some(())
                                .ok_or_else(|| "content does not match its id".to_string())
                        });
                        blobs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if let Err(err) = outcome {
                            damaged_blobs += 1;
                            found
                                .lock()
                                .expect("verify lock")
                                .push((*pack_id, Some(e.id), err));
                        }
                    }
                    match misnamed {
                        Some(err) if damaged_blobs == 0 => Err(err),
                        _ => Ok(bytes.len() as u64),
                    }
                });
            match result {
                Ok(n) => {
                    let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                    progress(d, total);
                }
                Err(err) => found
                    .lock()
                    .expect("verify lock")
                    .push((*pack_id, None, err)),
            }
        });
        report.packs_read = packs.len();
        report.bytes_read = done.into_inner();
        report.blobs_checked = blobs.into_inner();
        for (pack_id, blob_id, detail) in found.into_inner().expect("verify lock") {
            match blob_id {
                Some(b) => {
                    bad.insert(b, format!("in pack {}: {detail}", pack_id.short()));
                }
                None => {
                    for e in &by_pack[&pack_id] {
                        bad.insert(e.id, format!("in damaged pack {}", pack_id.short()));
                    }
                }
            }
            report.problems.push(Problem {
                object: match blob_id {
                    Some(b) => format!("{} (blob {})", pack::path(&pack_id), b.short()),
                    None => pack::path(&pack_id),
                },
                detail,
                affects: vec![],
            });
        }
    }

    // 5. Name what the bad blobs affect.
    let bad_referenced: HashSet<Id> = bad
        .keys()
        .filter(|b| referenced.contains(b))
        .copied()
        .collect();
    let mut affected: HashMap<Id, Vec<String>> = HashMap::new();
    if !bad_referenced.is_empty() {
        for (sid, snap) in &snapshots {
            walk_snapshot(repo, &index, snap, &mut |item| {
                if let Item::Chunks { path, chunks } = item {
                    for c in chunks.iter().filter(|c| bad_referenced.contains(c)) {
                        affected
                            .entry(*c)
                            .or_default()
                            .push(format!("snapshot {}: {path}", sid.short()));
                    }
                }
                if let Item::Tree { path, id } = item {
                    if bad_referenced.contains(&id) {
                        affected
                            .entry(id)
                            .or_default()
                            .push(format!("snapshot {}: {path}", sid.short()));
                    }
                }
            })?;
        }
    }
    // Attach affected files to the pack problems; missing blobs get their own problem.
    for p in report.problems.iter_mut() {
        let mut files = BTreeSet::new();
        for (blob_id, list) in &affected {
            let pack_of = index.get(blob_id).map(|l| pack::path(&l.pack));
            let hit = pack_of
                .as_deref()
                .is_some_and(|pp| p.object.starts_with(pp))
                && (!p.object.contains("(blob ") || p.object.contains(&blob_id.short()));
            if hit {
                files.extend(list.iter().cloned());
            }
        }
        p.affects.extend(files);
    }
    for (blob_id, reason) in &bad {
        if referenced.contains(blob_id) && index.get(blob_id).is_none() {
            report.problems.push(Problem {
                object: format!("blob {}", blob_id.short()),
                detail: reason.clone(),
                affects: affected.get(blob_id).cloned().unwrap_or_default(),
            });
        }
    }
    Ok(report)
}

/// Checks a pack that no index lists: its header (quick), or its name and
/// every blob whose base can be read (deep).
fn check_orphan(repo: &Repository, index: &Index, pack_id: &Id, deep: bool) -> Result<(), String> {
    let path = pack::path(pack_id);
    if !deep {
        return pack::read_header(&**repo.backend(), repo.keys(), &path).map(|_| ());
    }
    let bytes = repo.backend().get(&path).map_err(|e| e.to_string())?;
    let entries = pack::parse_full(repo.keys(), *pack_id, &bytes)?;
    for e in &entries {
        let base = match e.base {
            Some(b) if index.contains(&b) => {
                Some(repo.read_blob(index, &b).map_err(|err| err.to_string())?)
            }
            // Its base is in no index either: nothing to decode it against.
            Some(_) => continue,
            None => None,
        };
        let sealed = &bytes[e.offset as usize..e.offset as usize + e.length as usize];
        let data =
            blob::decode_with_base(repo.keys(), sealed, e.raw_length as usize, base.as_deref())
                .map_err(|err| format!("blob {}: {err}", e.id.short()))?;
        if repo.keys().blob_id(&data) != e.id {
            return Err(format!(
                "blob {}: content does not match its id",
                e.id.short()
            ));
        }
    }
    Ok(())
}

/// Verifies some snapshots only, for a caller that knows which blobs are
/// new (a copy): each manifest reads, each tree reads and matches its id,
/// every blob they reference is indexed in a pack that exists, and the
/// blobs of `deep` (every referenced one when `None`) are read back, each
/// pack once, decrypted and re-hashed.
pub fn verify_snapshots(
    repo: &Repository,
    ids: &[Id],
    deep: Option<&HashSet<Id>>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let index = repo.load_index()?;
    let on_disk: HashMap<Id, u64> = repo.list_packs()?.into_iter().collect();
    let mut referenced: HashSet<Id> = HashSet::new();
    let mut snapshots = Vec::new();
    for sid in ids {
        let snap = match repo.load_snapshot(sid) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(Problem {
                    object: format!("snapshots/{}", sid.to_hex()),
                    detail: e.to_string(),
                    affects: vec![format!("snapshot {}", sid.short())],
                });
                continue;
            }
        };
        report.snapshots += 1;
        let mut problems = Vec::new();
        walk_snapshot(repo, &index, &snap, &mut |item| match item {
            Item::Tree { id, .. } => {
                referenced.insert(id);
            }
            Item::BrokenTree { path, id, error } => problems.push(Problem {
                object: format!("tree {}", id.short()),
                detail: error,
                affects: vec![format!(
                    "snapshot {}: {path} and everything below it",
                    sid.short()
                )],
            }),
            Item::Chunks { path, chunks } => {
                let bases: Vec<Id> = chunks.iter().filter_map(|c| index.base_of(c)).collect();
                for c in chunks.iter().chain(&bases) {
                    let detail = match index.get(c) {
                        None => "not in the index".to_string(),
                        Some(loc) if !on_disk.contains_key(&loc.pack) => {
                            format!("its pack {} is missing", loc.pack.short())
                        }
                        Some(_) => {
                            referenced.insert(*c);
                            continue;
                        }
                    };
                    problems.push(Problem {
                        object: format!("blob {}", c.short()),
                        detail,
                        affects: vec![format!("snapshot {}: {path}", sid.short())],
                    });
                }
            }
        })?;
        report.problems.extend(problems);
        snapshots.push((*sid, snap));
    }

    // Read back each pack holding a wanted blob once.
    let mut by_pack: HashMap<Id, Vec<Id>> = HashMap::new();
    for b in referenced
        .iter()
        .filter(|b| deep.is_none_or(|d| d.contains(*b)))
    {
        if let Some(loc) = index.get(b) {
            by_pack.entry(loc.pack).or_default().push(*b);
        }
    }
    report.packs = by_pack.len();
    let total: u64 = by_pack.keys().filter_map(|p| on_disk.get(p)).sum();
    let done = std::sync::atomic::AtomicU64::new(0);
    let found = Mutex::new(Vec::<(Problem, Vec<Id>)>::new());
    let checked = std::sync::atomic::AtomicUsize::new(0);
    by_pack.par_iter().for_each(|(pack_id, wanted)| {
        let path = pack::path(pack_id);
        let fail = |object: String, detail: String, blobs: &[Id]| {
            let problem = Problem {
                object,
                detail,
                affects: vec![],
            };
            found
                .lock()
                .expect("verify lock")
                .push((problem, blobs.to_vec()))
        };
        let bytes = match repo.backend().get(&path) {
            Ok(b) => b,
            Err(e) => return fail(path, e.to_string(), wanted),
        };
        let n = bytes.len() as u64;
        let entries = match pack::parse_full(repo.keys(), *pack_id, &bytes) {
            Ok(e) => e,
            Err(e) => return fail(path, e, wanted),
        };
        let by_id: HashMap<Id, &pack::PackEntry> = entries.iter().map(|e| (e.id, e)).collect();
        for b in wanted {
            let object = format!("{path} (blob {})", b.short());
            let Some(e) = by_id.get(b) else {
                fail(object, "the pack's header does not list it".into(), &[*b]);
                continue;
            };
            let sealed = &bytes[e.offset as usize..e.offset as usize + e.length as usize];
            let outcome = e
                .base
                .map(|base| repo.read_blob(&index, &base))
                .transpose()
                .map_err(|err| format!("its delta base: {err}"))
                .and_then(|base| {
                    blob::decode_with_base(
                        repo.keys(),
                        sealed,
                        e.raw_length as usize,
                        base.as_deref(),
                    )
                    .map_err(|err| err.to_string())
                })
                .and_then(|data| {
                    (repo.keys().blob_id(&data) == *b)
                        .then_some(())
                        .ok_or_else(|| "content does not match its id".to_string())
                });
            checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(detail) = outcome {
                fail(object, detail, &[*b]);
            }
        }
        let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        progress(d, total);
    });
    report.packs_read = by_pack.len();
    report.bytes_read = done.into_inner();
    report.blobs_checked = checked.into_inner();
    let mut found = found.into_inner().expect("verify lock");
    found.sort_by(|a, b| a.0.object.cmp(&b.0.object));
    if !found.is_empty() {
        name_affected(repo, &index, &snapshots, &mut found)?;
    }
    report.problems.extend(found.into_iter().map(|(p, _)| p));
    Ok(report)
}

/// Adds to each problem the files of `snapshots` that use its blobs.
fn name_affected(
    repo: &Repository,
    index: &Index,
    snapshots: &[(Id, Snapshot)],
    found: &mut [(Problem, Vec<Id>)],
) -> Result<()> {
    let mut affected: HashMap<Id, BTreeSet<String>> = HashMap::new();
    let bad: HashSet<Id> = found.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    for (sid, snap) in snapshots {
        walk_snapshot(repo, index, snap, &mut |item| match item {
            Item::Tree { path, id } if bad.contains(&id) => {
                affected
                    .entry(id)
                    .or_default()
                    .insert(format!("snapshot {}: {path}", sid.short()));
            }
            Item::Chunks { path, chunks } => {
                for c in chunks.iter().filter(|c| bad.contains(c)) {
                    affected
                        .entry(*c)
                        .or_default()
                        .insert(format!("snapshot {}: {path}", sid.short()));
                }
            }
            _ => {}
        })?;
    }
    for (problem, blobs) in found {
        let files: BTreeSet<String> = blobs
            .iter()
            .filter_map(|b| affected.get(b))
            .flatten()
            .cloned()
            .collect();
        problem.affects.extend(files);
    }
    Ok(())
}
