//! Directory trees: snapshot and restore.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use ripcord_repo::blob::BlobKind;
use ripcord_repo::index::Index;
use ripcord_repo::manifest::{Node, NodeKind, Tree};
use ripcord_repo::saver::Saver;
use ripcord_repo::{Id, Repository};

use crate::error::{Error, Result};
use crate::{Progress, RestoreOptions, RestoreStats};

/// Result of reading one directory tree.
#[derive(Debug)]
pub struct DirSnapshot {
    pub tree: Id,
    pub files: u64,
    pub bytes: u64,
    /// Files whose content was reused from the parent without reading them.
    pub unchanged: u64,
    pub git_commit: Option<String>,
}

pub fn build_excludes(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| Error::Pattern {
            pattern: p.clone(),
            detail: e.to_string(),
        })?;
        b.add(glob);
    }
    b.build().map_err(|e| Error::Pattern {
        pattern: patterns.join(", "),
        detail: e.to_string(),
    })
}

struct Walker<'a> {
    saver: &'a Saver,
    index: &'a Index,
    excludes: GlobSet,
    progress: &'a dyn Progress,
    /// Files to read, filled by the scan.
    reads: Vec<PathBuf>,
    files: u64,
    unchanged: u64,
}

/// One scanned directory: its nodes, which of them are directories, and
/// which files still need reading (node position, read job).
struct Scanned {
    nodes: Vec<Node>,
    subdirs: Vec<(usize, Scanned)>,
    pending: Vec<(usize, usize)>,
}

/// A file's size and chunks.
type FileContent = (u64, Vec<Id>);

/// Reading files (snapshot) and packs (restore) is I/O-bound on a cold
/// cache, so more threads than cores pay off.
const READERS: usize = 8;

/// Snapshots the tree at `root`. With `parent` (the root tree of the previous
/// snapshot of this target), files whose size, mtime, ctime and inode are
/// unchanged are not read again.
///
/// Three passes: scan the metadata, read the changed files in parallel
/// (chunk and hash on reader threads; the saver compresses and seals), then
/// store the trees bottom-up.
pub fn snapshot(
    saver: &Saver,
    index: &Index,
    root: &Path,
    excludes: &[String],
    parent: Option<Id>,
    progress: &dyn Progress,
) -> Result<DirSnapshot> {
    let meta = fs::metadata(root).map_err(|_| Error::Missing {
        path: root.to_path_buf(),
    })?;
    if !meta.is_dir() {
        return Err(Error::WrongKind {
            path: root.to_path_buf(),
            expected: "directory",
        });
    }
    let mut w = Walker {
        saver,
        index,
        excludes: build_excludes(excludes)?,
        progress,
        reads: Vec::new(),
        files: 0,
        unchanged: 0,
    };
    let parent_tree = parent.and_then(|id| saver.repo().load_tree(index, &id).ok());
    let scanned = w.scan(root, "", parent_tree.as_ref())?;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(READERS)
        .build()
        .map_err(|e| Error::io("cannot start reader threads", std::io::Error::other(e)))?;
    let read: Vec<Result<Option<FileContent>>> = pool.install(|| {
        w.reads
            .par_iter()
            .map(|path| match w.save_file(path) {
                Ok(r) => Ok(Some(r)),
                // Removed while we worked: leave it out.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    Ok(None)
                }
                Err(e) => Err(e),
            })
            .collect()
    });
    let read = read.into_iter().collect::<Result<Vec<_>>>()?;
    let mut bytes = 0;
    let tree = w.build(scanned, &read, &mut bytes)?;
    let vanished = read.iter().filter(|r| r.is_none()).count() as u64;
    Ok(DirSnapshot {
        tree,
        files: w.files - vanished,
        bytes,
        unchanged: w.unchanged,
        git_commit: git_commit(root),
    })
}

fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn ctime_ns(m: &fs::Metadata) -> i64 {
    m.ctime() * 1_000_000_000 + m.ctime_nsec()
}

impl Walker<'_> {
    fn scan(&mut self, dir: &Path, rel: &str, parent: Option<&Tree>) -> Result<Scanned> {
        let mut entries: Vec<(String, PathBuf)> = Vec::new();
        let read = fs::read_dir(dir)
            .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        for entry in read {
            let entry =
                entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
            match entry.file_name().into_string() {
                Ok(name) => entries.push((name, entry.path())),
                Err(raw) => self.progress.warn(format!(
                    "skipped {}: ripcord stores only file names that are valid UTF-8",
                    dir.join(raw).display()
                )),
            }
        }
        entries.sort();
        let mut out = Scanned {
            nodes: Vec::with_capacity(entries.len()),
            subdirs: Vec::new(),
            pending: Vec::new(),
        };
        for (name, path) in entries {
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if self.excludes.is_match(&child_rel) || self.excludes.is_match(&name) {
                continue;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // removed while we walked
                Err(e) => return Err(Error::io(format!("cannot stat {}", path.display()), e)),
            };
            let old = parent.and_then(|t| {
                t.nodes
                    .binary_search_by(|n| n.name.as_str().cmp(&name))
                    .ok()
                    .map(|i| &t.nodes[i])
            });
            let mut node = Node {
                name,
                kind: NodeKind::File,
                mode: meta.mode() & 0o7777,
                mtime: mtime_ns(&meta),
                ctime: ctime_ns(&meta),
                inode: meta.ino(),
                size: 0,
                content: vec![],
                subtree: None,
                target: None,
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                node.kind = NodeKind::Dir;
                let old_tree = old
                    .filter(|o| o.kind == NodeKind::Dir)
                    .and_then(|o| o.subtree)
                    .and_then(|id| self.saver.repo().load_tree(self.index, &id).ok());
                let sub = self.scan(&path, &child_rel, old_tree.as_ref())?;
                out.subdirs.push((out.nodes.len(), sub));
            } else if ft.is_symlink() {
                node.kind = NodeKind::Symlink;
                let target = fs::read_link(&path)
                    .map_err(|e| Error::io(format!("cannot read link {}", path.display()), e))?;
                node.target = Some(target.to_string_lossy().into_owned());
            } else if ft.is_file() {
                self.files += 1;
                let reusable = old.filter(|o| {
                    o.kind == NodeKind::File
                        && o.size == meta.len()
                        && o.mtime == node.mtime
                        && o.ctime == node.ctime
                        && o.inode == node.inode
                        && o.content.iter().all(|c| self.saver.is_known(c))
                });
                if let Some(o) = reusable {
                    node.size = o.size;
                    node.content = o.content.clone();
                    self.unchanged += 1;
                    self.progress.bytes(o.size);
                } else {
                    out.pending.push((out.nodes.len(), self.reads.len()));
                    self.reads.push(path);
                }
            } else {
                self.progress.warn(format!(
                    "skipped {}: sockets, fifos and devices are not saved",
                    path.display()
                ));
                continue;
            }
            out.nodes.push(node);
        }
        Ok(out)
    }

    /// Fills in read results and stores the trees, children first.
    fn build(
        &self,
        mut dir: Scanned,
        read: &[Option<(u64, Vec<Id>)>],
        bytes: &mut u64,
    ) -> Result<Id> {
        let mut vanished = vec![false; dir.nodes.len()];
        for (pos, job) in dir.pending {
            match &read[job] {
                Some((size, content)) => {
                    dir.nodes[pos].size = *size;
                    dir.nodes[pos].content = content.clone();
                }
                None => vanished[pos] = true,
            }
        }
        for (pos, sub) in std::mem::take(&mut dir.subdirs) {
            dir.nodes[pos].subtree = Some(self.build(sub, read, bytes)?);
        }
        let nodes: Vec<Node> = dir
            .nodes
            .into_iter()
            .zip(vanished)
            .filter(|(_, gone)| !gone)
            .map(|(n, _)| n)
            .collect();
        *bytes += nodes
            .iter()
            .filter(|n| n.kind == NodeKind::File)
            .map(|n| n.size)
            .sum::<u64>();
        let blob = serde_json::to_vec(&Tree { nodes }).expect("tree serializes");
        Ok(self.saver.save(BlobKind::Tree, blob)?)
    }

    fn save_file(&self, path: &Path) -> Result<(u64, Vec<Id>)> {
        let ctx = || format!("cannot read {}", path.display());
        let mut file = fs::File::open(path).map_err(|e| Error::io(ctx(), e))?;
        let size_hint = file.metadata().map_err(|e| Error::io(ctx(), e))?.len();
        let min = self.saver.repo().config().chunker.min as u64;
        if size_hint < min {
            // Small files are one chunk; skip the chunker's buffer.
            let mut data = Vec::with_capacity(size_hint as usize);
            file.read_to_end(&mut data)
                .map_err(|e| Error::io(ctx(), e))?;
            let size = data.len() as u64;
            self.progress.bytes(size);
            if data.is_empty() {
                return Ok((0, vec![]));
            }
            return Ok((size, vec![self.saver.save(BlobKind::Data, data)?]));
        }
        let what = path.display().to_string();
        let stream =
            ripcord_repo::chunk::save_stream(self.saver, file, &what, &|n| self.progress.bytes(n))?;
        Ok((stream.size, stream.chunks))
    }
}

/// The commit checked out in `root`, when it is a git work tree.
fn git_commit(root: &Path) -> Option<String> {
    let git = root.join(".git");
    let head = fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return Some(head.to_string());
    };
    if let Ok(c) = fs::read_to_string(git.join(reference)) {
        return Some(c.trim().to_string());
    }
    let packed = fs::read_to_string(git.join("packed-refs")).ok()?;
    packed
        .lines()
        .find(|l| l.ends_with(reference))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

/// A name is safe when it stays inside its directory.
fn check_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        "empty name"
    } else if name == "." || name == ".." {
        "names the directory itself or its parent"
    } else if name.contains('/') || name.contains('\0') {
        "contains a path separator"
    } else {
        return Ok(());
    };
    Err(Error::Unsafe {
        entry: name.to_string(),
        why: why.to_string(),
    })
}

struct FileJob {
    path: PathBuf,
    display: String,
    node: Node,
}

/// Restores the tree `tree` into `dest`, which must not exist or be empty.
/// The restore is staged beside `dest` and moved there only when complete,
/// so a failure (damaged data included) leaves `dest` as it was.
pub fn restore(
    repo: &Repository,
    index: &Index,
    tree: Id,
    dest: &Path,
    opts: RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let existed = dest.exists();
    if existed {
        let mut it = fs::read_dir(dest)
            .map_err(|e| Error::io(format!("cannot read {}", dest.display()), e))?;
        if it.next().is_some() {
            return Err(Error::NotEmpty {
                path: dest.to_path_buf(),
            });
        }
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
    }
    let staged = crate::place::staging_path(dest, "restore");
    let _ = fs::remove_dir_all(&staged);
    let result = restore_fresh(repo, index, tree, &staged, opts, progress).and_then(|stats| {
        if existed {
            fs::remove_dir(dest)
                .map_err(|e| Error::io(format!("cannot replace {}", dest.display()), e))?;
        }
        fs::rename(&staged, dest).map_err(|e| {
            Error::io(
                format!("cannot move the restored copy to {}", dest.display()),
                e,
            )
        })?;
        Ok(stats)
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&staged);
    }
    result
}

/// Restores the tree `tree` into `dest`, which must not exist. Files are
/// restored in parallel; every file is created new, never through an
/// existing path, so nothing can be written outside `dest`.
pub fn restore_fresh(
    repo: &Repository,
    index: &Index,
    tree: Id,
    dest: &Path,
    opts: RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    fs::create_dir(dest).map_err(|e| Error::io(format!("cannot create {}", dest.display()), e))?;
    let mut files = Vec::new();
    let mut links = Vec::new();
    let mut dirs = Vec::new();
    let mut stats = RestoreStats::default();
    plan(
        repo, index, tree, dest, "", opts, &mut files, &mut links, &mut dirs, &mut stats,
    )?;

    let skipped = std::sync::Mutex::new(Vec::new());
    let written = std::sync::atomic::AtomicU64::new(0);
    // Reads from packs wait on the disk when the cache is cold: more writers
    // than cores keep it busy.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(READERS)
        .build()
        .map_err(|e| Error::io("cannot start restore threads", std::io::Error::other(e)))?;
    pool.install(|| {
        files.par_iter().try_for_each(|job| -> Result<()> {
            match write_file(repo, index, job, progress) {
                Ok(n) => {
                    written.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
                Err(Error::Repo(e @ ripcord_repo::Error::Corrupt { .. })) if opts.partial => {
                    let _ = fs::remove_file(&job.path);
                    progress.warn(format!("skipped {}: {e}", job.display));
                    skipped
                        .lock()
                        .expect("restore lock")
                        .push(job.display.clone());
                    Ok(())
                }
                Err(e) => Err(e.damaged_at(&job.display)),
            }
        })
    })?;
    stats
        .skipped
        .extend(skipped.into_inner().expect("restore lock"));
    stats.files = files.len() as u64 - stats.skipped.len() as u64;
    stats.bytes = written.into_inner();
    // Links last, so no file is ever written through one.
    for (path, target, mtime) in links {
        std::os::unix::fs::symlink(&target, &path)
            .map_err(|e| Error::io(format!("cannot create link {}", path.display()), e))?;
        let t = filetime::FileTime::from_unix_time(
            mtime.div_euclid(1_000_000_000),
            mtime.rem_euclid(1_000_000_000) as u32,
        );
        let _ = filetime::set_symlink_file_times(&path, t, t);
    }
    // Directory modes and times last, deepest first: writing inside changes them.
    for (path, mode, mtime) in dirs.into_iter().rev() {
        let t = filetime::FileTime::from_unix_time(
            mtime.div_euclid(1_000_000_000),
            mtime.rem_euclid(1_000_000_000) as u32,
        );
        filetime::set_file_mtime(&path, t)
            .map_err(|e| Error::io(format!("cannot set time of {}", path.display()), e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("cannot set mode of {}", path.display()), e))?;
    }
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
fn plan(
    repo: &Repository,
    index: &Index,
    tree_id: Id,
    dir: &Path,
    rel: &str,
    opts: RestoreOptions,
    files: &mut Vec<FileJob>,
    links: &mut Vec<(PathBuf, String, i64)>,
    dirs: &mut Vec<(PathBuf, u32, i64)>,
    stats: &mut RestoreStats,
) -> Result<()> {
    let tree = match repo.load_tree(index, &tree_id) {
        Ok(t) => t,
        Err(e) if opts.partial => {
            stats.skipped.push(format!(
                "{}/ (unreadable directory: {e})",
                if rel.is_empty() { "." } else { rel }
            ));
            return Ok(());
        }
        Err(e) => {
            let dir = if rel.is_empty() {
                "./".to_string()
            } else {
                format!("{rel}/")
            };
            return Err(Error::from(e).damaged_at(&dir));
        }
    };
    let mut seen = HashSet::new();
    for node in tree.nodes {
        check_name(&node.name)?;
        if !seen.insert(node.name.clone()) {
            return Err(Error::Unsafe {
                entry: node.name.clone(),
                why: "appears twice in one directory".into(),
            });
        }
        let path = dir.join(&node.name);
        let display = if rel.is_empty() {
            node.name.clone()
        } else {
            format!("{rel}/{}", node.name)
        };
        match node.kind {
            NodeKind::Dir => {
                fs::create_dir(&path)
                    .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
                dirs.push((path.clone(), node.mode, node.mtime));
                if let Some(sub) = node.subtree {
                    plan(
                        repo, index, sub, &path, &display, opts, files, links, dirs, stats,
                    )?;
                }
            }
            NodeKind::Symlink => {
                links.push((path, node.target.clone().unwrap_or_default(), node.mtime))
            }
            NodeKind::File => files.push(FileJob {
                path,
                display,
                node,
            }),
        }
    }
    Ok(())
}

fn write_file(
    repo: &Repository,
    index: &Index,
    job: &FileJob,
    progress: &dyn Progress,
) -> Result<u64> {
    let ctx = || format!("cannot write {}", job.path.display());
    // create_new: never follow or reuse an existing path.
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&job.path)
        .map_err(|e| Error::io(ctx(), e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut n = 0u64;
    for id in &job.node.content {
        let data = repo.read_blob(index, id)?;
        out.write_all(&data).map_err(|e| Error::io(ctx(), e))?;
        n += data.len() as u64;
        progress.bytes(data.len() as u64);
    }
    let file = out
        .into_inner()
        .map_err(|e| Error::io(ctx(), e.into_error()))?;
    if n != job.node.size {
        return Err(Error::Mismatch {
            detail: format!(
                "{} has {n} bytes, the snapshot says {}",
                job.display, job.node.size
            ),
        });
    }
    file.set_permissions(fs::Permissions::from_mode(job.node.mode))
        .map_err(|e| Error::io(ctx(), e))?;
    let t = filetime::FileTime::from_unix_time(
        job.node.mtime.div_euclid(1_000_000_000),
        job.node.mtime.rem_euclid(1_000_000_000) as u32,
    );
    filetime::set_file_handle_times(&file, Some(t), Some(t)).map_err(|e| Error::io(ctx(), e))?;
    progress.item(&job.display);
    Ok(n)
}
