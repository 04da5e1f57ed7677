//! Putting a restored directory in place of the live one, entry by entry.
//!
//! The restore is staged in a work folder inside the live one
//! (`.ripcord-restore-PID/new`), so it is on the same file system and the
//! live folder itself never moves: a target of `.`, a symlinked target path
//! (the link is followed and kept) and a target that holds the repository
//! all work. After the safety snapshot, [`InPlace::swap`] works out what
//! stays: every live entry the safety snapshot does not hold (excluded
//! paths, the repository, names it could not store, entries that appeared
//! since) stays exactly where it is, and folders on the way to one are
//! merged instead of swapped. Everything else is moved into
//! `.ripcord-restore-PID/old` and replaced by its restored copy.
//!
//! The moves are written to a journal first. A kill before the journal
//! leaves the live folder untouched (the work folder is removed by the next
//! restore); after it, the next restore finishes the journal, so the
//! target is always old, new, or resumable.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ripcord_repo::index::Index;
use ripcord_repo::manifest::{Node, NodeKind, Tree};
use ripcord_repo::{Id, Repository};
use serde::{Deserialize, Serialize};

use crate::dir::is_work_dir;
use crate::error::{Error, Result};

/// Prefix of the work folder inside the target; the pid follows.
pub const WORK_PREFIX: &str = ".ripcord-restore-";
const JOURNAL: &str = "journal";

/// An in-place restore of one dir target, from staging to swap.
pub struct InPlace {
    /// The live folder, resolved (a symlinked target path is followed).
    root: PathBuf,
    work: PathBuf,
    /// Paths relative to `root` that are never moved (repository, catalog,
    /// configuration).
    protected: Vec<PathBuf>,
    /// Set once the journal is written: from then on the work folder is
    /// the way forward and must survive an error.
    committed: bool,
}

/// What a swap left in place.
#[derive(Debug, Default)]
pub struct Swapped {
    /// Live entries that were not replaced (relative, lossy), shortest first.
    pub kept: Vec<String>,
}

/// One step of the swap, as journaled. Paths are relative to the target,
/// hex-encoded bytes.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
enum Op {
    /// Move the live entry to `old/<slot>`.
    Aside { rel: String, slot: u64 },
    /// Move the restored entry from `new/` into place.
    In { rel: String },
}

#[derive(Serialize, Deserialize, Debug, Default)]
struct Journal {
    ops: Vec<Op>,
    /// Folders that were merged, not swapped: their restored mode and
    /// time, applied last (deepest first).
    metas: Vec<(String, u32, i64)>,
}

fn hex_of(p: &Path) -> String {
    hex::encode(p.as_os_str().as_bytes())
}

fn path_of(h: &str) -> Result<PathBuf> {
    hex::decode(h)
        .map(|b| PathBuf::from(OsString::from_vec(b)))
        .map_err(|e| Error::io("cannot read the restore journal", std::io::Error::other(e)))
}

fn lossy(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".into()
    } else {
        p.to_string_lossy().into_owned()
    }
}

fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

impl InPlace {
    /// Resolves `target` (following a symlinked path), finishes or undoes
    /// what killed restores of it left, and creates the work folder.
    /// `protected` are absolute paths never to move. Returns what recovery did.
    pub fn begin(target: &Path, protected: &[PathBuf]) -> Result<(InPlace, Vec<String>)> {
        let root = fs::canonicalize(target)
            .map_err(|e| Error::io(format!("cannot resolve {}", target.display()), e))?;
        if !root.is_dir() {
            return Err(Error::WrongKind {
                path: target.to_path_buf(),
                expected: "directory",
            });
        }
        for p in protected {
            if let Ok(p) = fs::canonicalize(p) {
                if root.starts_with(&p) {
                    return Err(Error::InPlaceConflict {
                        detail: format!(
                            "{} lies inside {}, which ripcord keeps for itself (repository, catalog or configuration)",
                            target.display(),
                            p.display()
                        ),
                        hint: "point the target at a folder outside the repository".into(),
                    });
                }
            }
        }
        let done = recover(&root)?;
        let work = root.join(format!("{WORK_PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir(&work)
            .map_err(|e| Error::io(format!("cannot create {}", work.display()), e))?;
        let protected = crate::dir::protected_inside(&root, protected);
        Ok((
            InPlace {
                root,
                work,
                protected,
                committed: false,
            },
            done,
        ))
    }

    /// The live folder the restore goes into.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the restored tree is staged (must not exist yet).
    pub fn staged(&self) -> PathBuf {
        self.work.join("new")
    }

    /// Swaps the staged tree in. `held` is the root tree of the safety
    /// snapshot just taken of this target (`index` must include it):
    /// a live entry it does not hold is kept. Refuses (exit 3) before
    /// changing anything when a kept entry is in the way of the restored
    /// tree or an entry to replace is on another file system.
    pub fn swap(mut self, repo: &Repository, index: &Index, held: Id) -> Result<Swapped> {
        ripcord_core::failpoint::hit("restore-before-swap");
        let keep = self.keep(repo, index, held)?;
        let journal = self.plan(&keep)?;
        let bytes = serde_json::to_vec(&journal).expect("journal serializes");
        let tmp = self.work.join("journal.tmp");
        let mut f = fs::File::create(&tmp)
            .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
        fs::rename(&tmp, self.work.join(JOURNAL))
            .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
        self.committed = true;
        ripcord_core::failpoint::hit("restore-journal-written");
        replay(&self.root, &self.work, &journal)?;
        let mut kept: Vec<String> = keep.kept.iter().map(|p| lossy(p)).collect();
        kept.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
        Ok(Swapped { kept })
    }

    /// Walks the live tree beside the safety snapshot's: entries it does
    /// not hold (or holds as another kind) are kept, and so are the
    /// protected paths.
    fn keep(&self, repo: &Repository, index: &Index, held: Id) -> Result<Keep> {
        let mut keep = Keep::default();
        let root_tree = repo.load_tree(index, &held)?;
        let mut stack: Vec<(PathBuf, Tree)> = vec![(PathBuf::new(), root_tree)];
        while let Some((rel, tree)) = stack.pop() {
            let dir = self.root.join(&rel);
            let entries = fs::read_dir(&dir)
                .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
            for entry in entries {
                let entry =
                    entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
                let name = entry.file_name();
                if rel.as_os_str().is_empty() && is_work_dir(&name) {
                    continue;
                }
                let child = rel.join(&name);
                if self.protected.contains(&child) {
                    keep.add(child);
                    continue;
                }
                let ft = entry
                    .file_type()
                    .map_err(|e| Error::io(format!("cannot stat {}", entry.path().display()), e))?;
                let node = tree
                    .nodes
                    .iter()
                    .find(|n| n.raw_name().as_deref() == Some(name.as_bytes()));
                match node {
                    Some(n) if ft.is_dir() && n.kind == NodeKind::Dir => {
                        let sub = match n.subtree {
                            Some(id) => repo.load_tree(index, &id)?,
                            None => Tree::default(),
                        };
                        stack.push((child, sub));
                    }
                    Some(n) if same_kind(&ft, n.kind) && self.unchanged(&entry, n)? => {}
                    _ => keep.add(child),
                }
            }
        }
        Ok(keep)
    }

    /// Whether a live file or link is still what the safety snapshot
    /// holds: one written since it was taken is kept, not replaced.
    fn unchanged(&self, entry: &fs::DirEntry, node: &Node) -> Result<bool> {
        let ctx = || format!("cannot stat {}", entry.path().display());
        Ok(match node.kind {
            NodeKind::File => {
                let m = entry.metadata().map_err(|e| Error::io(ctx(), e))?;
                m.len() == node.size && m.mtime() * 1_000_000_000 + m.mtime_nsec() == node.mtime
            }
            NodeKind::Symlink => {
                let t = fs::read_link(entry.path()).map_err(|e| Error::io(ctx(), e))?;
                node.raw_target().as_deref() == Some(t.as_os_str().as_bytes())
            }
            _ => true,
        })
    }

    /// The journal: which live entries go aside and which restored ones
    /// come in, merging the folders that hold kept entries.
    fn plan(&self, keep: &Keep) -> Result<Journal> {
        let staged = self.staged();
        let root_dev = fs::symlink_metadata(&self.root)
            .map_err(|e| Error::io(format!("cannot stat {}", self.root.display()), e))?
            .dev();
        let mut journal = Journal::default();
        let mut slot = 0;
        let mut metas: Vec<(PathBuf, u32, i64)> = Vec::new();
        let meta_of = |rel: &Path, m: &fs::Metadata| {
            (
                rel.to_path_buf(),
                m.mode() & 0o7777,
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            )
        };
        // The target folder itself keeps its mode: the snapshot does not record it.
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let live = names(&self.root.join(&rel), rel.as_os_str().is_empty())?;
            let new_dir = staged.join(&rel);
            let new = if fs::symlink_metadata(&new_dir).is_ok_and(|m| m.is_dir()) {
                names(&new_dir, false)?
            } else {
                BTreeSet::new()
            };
            for name in live.union(&new) {
                let child = rel.join(name);
                if keep.kept.contains(&child) {
                    continue; // live wins; the staged copy is dropped
                }
                if keep.pinned.contains(&child) {
                    match fs::symlink_metadata(staged.join(&child)) {
                        Err(_) => {}
                        Ok(m) if m.is_dir() => metas.push(meta_of(&child, &m)),
                        Ok(m) => return Err(self.in_the_way(&child, &m, keep)),
                    }
                    stack.push(child);
                    continue;
                }
                if live.contains(name) {
                    let m = fs::symlink_metadata(self.root.join(&child)).map_err(|e| {
                        Error::io(
                            format!("cannot stat {}", self.root.join(&child).display()),
                            e,
                        )
                    })?;
                    if m.dev() != root_dev {
                        return Err(Error::InPlaceConflict {
                            detail: format!(
                                "{} is a mount point; it cannot be replaced by moving it",
                                self.root.join(&child).display()
                            ),
                            hint: "exclude it in the target's `exclude`, or restore with --into and copy what you need".into(),
                        });
                    }
                    journal.ops.push(Op::Aside {
                        rel: hex_of(&child),
                        slot,
                    });
                    slot += 1;
                }
                if new.contains(name) {
                    journal.ops.push(Op::In {
                        rel: hex_of(&child),
                    });
                }
            }
        }
        // Deepest first: setting a folder's time is the last change inside its parent.
        metas.sort_by_key(|(rel, _, _)| std::cmp::Reverse(rel.components().count()));
        journal.metas = metas
            .into_iter()
            .map(|(rel, mode, mtime)| (hex_of(&rel), mode, mtime))
            .collect();
        Ok(journal)
    }

    fn in_the_way(&self, rel: &Path, m: &fs::Metadata, keep: &Keep) -> Error {
        let below = keep
            .kept
            .iter()
            .filter(|k| k.starts_with(rel))
            .min()
            .map(|k| lossy(k))
            .unwrap_or_default();
        let what = if m.file_type().is_symlink() {
            "a symlink"
        } else {
            "a file"
        };
        Error::InPlaceConflict {
            detail: format!(
                "the snapshot has {what} at {}, but the live folder there holds {below}, which the restore must keep (it is excluded, or not in the safety snapshot); restoring would move it{}",
                lossy(rel),
                if what == "a symlink" { " through the link" } else { "" }
            ),
            hint: format!(
                "nothing was changed; move {below} out of {} first, or restore with --into",
                self.root.display()
            ),
        }
    }
}

impl Drop for InPlace {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.work);
        }
    }
}

/// Kept entries, and the folders on the way to them.
#[derive(Default)]
struct Keep {
    kept: HashSet<PathBuf>,
    pinned: HashSet<PathBuf>,
}

impl Keep {
    fn add(&mut self, rel: PathBuf) {
        let mut up = rel.parent();
        while let Some(p) = up.filter(|p| !p.as_os_str().is_empty()) {
            if !self.pinned.insert(p.to_path_buf()) {
                break;
            }
            up = p.parent();
        }
        self.kept.insert(rel);
    }
}

fn same_kind(ft: &fs::FileType, kind: NodeKind) -> bool {
    match kind {
        NodeKind::File => ft.is_file(),
        NodeKind::Dir => ft.is_dir(),
        NodeKind::Symlink => ft.is_symlink(),
        NodeKind::Fifo => ft.is_fifo(),
        NodeKind::Socket => ft.is_socket(),
        NodeKind::Chardev => ft.is_char_device(),
        NodeKind::Blockdev => ft.is_block_device(),
    }
}

/// Entry names of a folder (ripcord's work folders left out at the root).
fn names(dir: &Path, root: bool) -> Result<BTreeSet<OsString>> {
    let mut out = BTreeSet::new();
    let rd =
        fs::read_dir(dir).map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        let name = e.file_name();
        if !(root && is_work_dir(&name)) {
            out.insert(name);
        }
    }
    Ok(out)
}

/// Carries out a journal. Every step checks whether it was done, so a
/// journal cut short by a kill is finished by running it again.
fn replay(root: &Path, work: &Path, journal: &Journal) -> Result<()> {
    let old = work.join("old");
    if !exists(&old) {
        fs::create_dir(&old)
            .map_err(|e| Error::io(format!("cannot create {}", old.display()), e))?;
    }
    let new = work.join("new");
    for op in &journal.ops {
        ripcord_core::failpoint::hit("restore-swap-step");
        match op {
            Op::Aside { rel, slot } => {
                let (from, to) = (root.join(path_of(rel)?), old.join(slot.to_string()));
                if !exists(&to) && exists(&from) {
                    fs::rename(&from, &to).map_err(|e| {
                        Error::io(format!("cannot move {} aside", from.display()), e)
                    })?;
                }
            }
            Op::In { rel } => {
                let rel = path_of(rel)?;
                let (from, to) = (new.join(&rel), root.join(&rel));
                if exists(&from) {
                    if exists(&to) {
                        return Err(Error::InPlaceConflict {
                            detail: format!("{} appeared while the restore swapped entries", to.display()),
                            hint: format!("move it away and run the restore again to finish it; the restored copy waits in {}", from.display()),
                        });
                    }
                    fs::rename(&from, &to).map_err(|e| {
                        Error::io(format!("cannot move the restored {} in", to.display()), e)
                    })?;
                }
            }
        }
    }
    let set_meta = |(rel, mode, mtime): &(String, u32, i64)| -> Result<()> {
        let p = root.join(path_of(rel)?);
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            filetime::set_file_mtime(&p, crate::dir::file_time(*mtime))
                .map_err(|e| Error::io(format!("cannot set time of {}", p.display()), e))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode))
                .map_err(|e| Error::io(format!("cannot set mode of {}", p.display()), e))?;
        }
        Ok(())
    };
    for m in &journal.metas {
        set_meta(m)?;
    }
    ripcord_core::failpoint::hit("restore-swapped");
    // The journal goes first: without it, what is left is only to delete.
    fs::remove_file(work.join(JOURNAL))
        .map_err(|e| Error::io(format!("cannot remove {}", work.display()), e))?;
    fs::remove_dir_all(work)
        .map_err(|e| Error::io(format!("cannot remove {}", work.display()), e))?;
    Ok(())
}

/// Finishes or undoes in-place restores of `root` (resolved) that were
/// killed: a work folder with a journal is replayed, one without is
/// removed (the live folder was not touched yet). Returns what it did.
pub fn recover(root: &Path) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return Ok(done);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !is_work_dir(&name) {
            continue;
        }
        let pid = &name.as_bytes()[WORK_PREFIX.len()..];
        let pid: u32 = match std::str::from_utf8(pid).ok().and_then(|p| p.parse().ok()) {
            Some(p) => p,
            None => continue,
        };
        if pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
            continue; // a live restore's
        }
        let work = entry.path();
        let journal = work.join(JOURNAL);
        if exists(&journal) {
            let bytes = fs::read(&journal)
                .map_err(|e| Error::io(format!("cannot read {}", journal.display()), e))?;
            let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
                Error::io(
                    format!("cannot read {}", work.join(JOURNAL).display()),
                    std::io::Error::other(e),
                )
            })?;
            replay(root, &work, &journal)?;
            done.push(format!(
                "finished an interrupted restore of {}",
                root.display()
            ));
        } else {
            fs::remove_dir_all(&work)
                .map_err(|e| Error::io(format!("cannot remove {}", work.display()), e))?;
            done.push(format!(
                "removed {} left by an interrupted restore",
                work.display()
            ));
        }
    }
    Ok(done)
}

/// A fresh sibling path of `target` for staging a restore.
pub fn staging_path(target: &Path, what: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "target".into());
    let tag: u32 = std::process::id();
    target.with_file_name(format!(".{name}.ripcord-{what}-{tag}"))
}

/// Cleans up after restores of `target` killed while an earlier version
/// swapped whole folders (beside the target): a staged copy of
/// a dead process is removed; an old copy moved aside is put back when the
/// target is missing (the swap was interrupted), else its excluded files are
/// carried over and it is removed (the swap was done). Returns what it did.
pub fn recover_legacy(target: &Path, excludes: &globset::GlobSet) -> Result<Vec<String>> {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Ok(vec![]);
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let name = name.to_string_lossy();
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(vec![]);
    };
    let mut done = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&format!(".{name}.ripcord-")) else {
            continue;
        };
        let Some((what, pid)) = rest.rsplit_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || ripcord_repo::lock::process_alive(pid) {
            continue; // a live restore's
        }
        let path = entry.path();
        match what {
            "old" if !target.exists() => {
                fs::rename(&path, target)
                    .map_err(|e| Error::io(format!("cannot put {} back", path.display()), e))?;
                done.push(format!(
                    "put back {} from an interrupted restore",
                    target.display()
                ));
            }
            "old" => {
                carry_excluded(&path, target, excludes)?;
                fs::remove_dir_all(&path)
                    .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
                done.push(format!(
                    "finished an interrupted restore of {}",
                    target.display()
                ));
            }
            // `include`: the staging of a `restore --include` in place.
            "restore" | "include" => {
                fs::remove_dir_all(&path)
                    .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
                done.push(format!(
                    "removed {} left by an interrupted restore",
                    path.display()
                ));
            }
            _ => {}
        }
    }
    Ok(done)
}

/// Moves files the target excludes from `live` into `staged`, so that an
/// in-place restore leaves what ripcord does not manage where it was. The
/// folders they land in keep their restored times.
pub fn carry_excluded(live: &Path, staged: &Path, excludes: &globset::GlobSet) -> Result<usize> {
    if excludes.is_empty() || !live.is_dir() {
        return Ok(0);
    }
    let mut moved = 0;
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() {
            live.to_path_buf()
        } else {
            live.join(&rel)
        };
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if excludes.is_match(&child) || excludes.is_match(&name) {
                let to = staged.join(&child);
                if to.symlink_metadata().is_ok() {
                    continue; // the snapshot has something there; it wins
                }
                let parent = to.parent().expect("inside staged");
                fs::create_dir_all(parent)
                    .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
                // Keep the restored folder's mtime: moving a file in changes it.
                let mtime = fs::metadata(parent)
                    .map(|m| filetime::FileTime::from_last_modification_time(&m));
                fs::rename(entry.path(), &to).map_err(|e| {
                    Error::io(
                        format!("cannot keep excluded {}", entry.path().display()),
                        e,
                    )
                })?;
                if let Ok(t) = mtime {
                    let _ = filetime::set_file_mtime(parent, t);
                }
                moved += 1;
            } else if is_dir {
                stack.push(child);
            }
        }
    }
    Ok(moved)
}
