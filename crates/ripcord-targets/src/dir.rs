//! Directory trees: snapshot and restore.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use ripcord_repo::blob::BlobKind;
use ripcord_repo::index::Index;
use ripcord_repo::manifest::{Node, NodeKind, Tree};
use ripcord_repo::saver::Saver;
use ripcord_repo::walk::MAX_DEPTH;
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
    /// Nodes in all trees (see `TargetSnapshot::entries`).
    pub entries: u64,
    /// Protected paths inside the target that were left out, relative.
    pub left_out: Vec<PathBuf>,
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
    /// Paths relative to the root that are never saved (the repository,
    /// the catalog, the configuration).
    protected: Vec<PathBuf>,
    progress: &'a dyn Progress,
    /// Files to read, filled by the scan.
    reads: Vec<PathBuf>,
    files: u64,
    unchanged: u64,
    /// Nodes in all trees, recorded so walks can bound the expansion.
    entries: u64,
    /// Protected paths found and left out.
    left_out: Vec<PathBuf>,
}

/// One scanned directory: its nodes, which of them are directories, and
/// which files still need reading (node position, read job).
struct Scanned {
    nodes: Vec<Node>,
    subdirs: Vec<(usize, Scanned)>,
    pending: Vec<(usize, usize)>,
}

/// A directory being scanned: the entries still to look at.
struct ScanFrame {
    dir: PathBuf,
    rel: PathBuf,
    parent: Option<Tree>,
    entries: std::vec::IntoIter<(OsString, PathBuf)>,
    out: Scanned,
    /// Position of this directory's node in its parent.
    slot: usize,
    depth: usize,
}

/// A file's size and chunks.
type FileContent = (u64, Vec<Id>);

/// Reading files (snapshot) and packs (restore) is I/O-bound on a cold
/// cache, so more threads than cores pay off.
const READERS: usize = 8;

/// Names of ripcord's own work folders inside a target during an in-place
/// restore (`.ripcord-restore-PID`): never part of a snapshot.
pub fn is_work_dir(name: &OsStr) -> bool {
    name.as_bytes()
        .strip_prefix(crate::place::WORK_PREFIX.as_bytes())
        .is_some_and(|pid| !pid.is_empty() && pid.iter().all(u8::is_ascii_digit))
}

/// What [`snapshot`] needs besides the saver.
pub struct SnapshotOptions<'a> {
    pub excludes: &'a [String],
    /// The root tree of the previous snapshot of this target.
    pub parent: Option<Id>,
    /// Absolute paths never to save, whatever the excludes say: the
    /// repository, the catalog and the configuration file.
    pub protected: &'a [PathBuf],
}

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
    opts: &SnapshotOptions<'_>,
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
        excludes: build_excludes(opts.excludes)?,
        protected: protected_inside(root, opts.protected),
        progress,
        reads: Vec::new(),
        files: 0,
        unchanged: 0,
        entries: 0,
        left_out: Vec::new(),
    };
    let parent_tree = opts
        .parent
        .and_then(|id| saver.repo().load_tree(index, &id).ok());
    let scanned = w.scan(root, parent_tree)?;

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
        entries: w.entries,
        left_out: w.left_out,
        git_commit: git_commit(root),
    })
}

/// The protected paths that lie inside `root`, relative to it. Both sides
/// are resolved, so a symlinked target path or a relative repository path
/// compare right.
pub fn protected_inside(root: &Path, protected: &[PathBuf]) -> Vec<PathBuf> {
    let Ok(root) = fs::canonicalize(root) else {
        return vec![];
    };
    protected
        .iter()
        .filter_map(|p| fs::canonicalize(p).ok())
        .filter_map(|p| p.strip_prefix(&root).ok().map(Path::to_path_buf))
        .filter(|rel| !rel.as_os_str().is_empty())
        .collect()
}

fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn ctime_ns(m: &fs::Metadata) -> i64 {
    m.ctime() * 1_000_000_000 + m.ctime_nsec()
}

/// A directory's entries, sorted by name bytes.
fn list(dir: &Path) -> Result<Vec<(OsString, PathBuf)>> {
    let mut entries = Vec::new();
    let read =
        fs::read_dir(dir).map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    for entry in read {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        entries.push((entry.file_name(), entry.path()));
    }
    entries.sort();
    Ok(entries)
}

/// The node of `name` in a tree sorted by name bytes.
fn find_node<'t>(tree: &'t Tree, name: &[u8]) -> Option<&'t Node> {
    tree.nodes
        .binary_search_by(|n| n.raw_name().as_deref().unwrap_or(b"").cmp(name))
        .ok()
        .map(|i| &tree.nodes[i])
}

impl Walker<'_> {
    /// Scans the tree below `root` depth-first with an explicit stack, so
    /// that no folder depth can overflow the call stack.
    fn scan(&mut self, root: &Path, parent: Option<Tree>) -> Result<Scanned> {
        let mut stack = vec![ScanFrame {
            dir: root.to_path_buf(),
            rel: PathBuf::new(),
            parent,
            entries: list(root)?.into_iter(),
            out: Scanned {
                nodes: Vec::new(),
                subdirs: Vec::new(),
                pending: Vec::new(),
            },
            slot: 0,
            depth: 0,
        }];
        loop {
            let top = stack.last_mut().expect("scan stack");
            let Some((name, path)) = top.entries.next() else {
                let done = stack.pop().expect("scan stack");
                match stack.last_mut() {
                    Some(parent) => parent.out.subdirs.push((done.slot, done.out)),
                    None => return Ok(done.out),
                }
                continue;
            };
            if is_work_dir(&name) {
                continue; // an in-place restore's work folder (of this or a nested target)
            }
            let child_rel = top.rel.join(&name);
            if self.protected.contains(&child_rel) {
                self.left_out.push(child_rel);
                continue;
            }
            if self.excludes.is_match(&child_rel) || self.excludes.is_match(Path::new(&name)) {
                continue;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // removed while we walked
                Err(e) => return Err(Error::io(format!("cannot stat {}", path.display()), e)),
            };
            let old = top
                .parent
                .as_ref()
                .and_then(|t| find_node(t, name.as_bytes()));
            let mut node = Node::new(name.as_bytes(), NodeKind::File);
            node.mode = meta.mode() & 0o7777;
            node.mtime = mtime_ns(&meta);
            node.ctime = ctime_ns(&meta);
            node.inode = meta.ino();
            let ft = meta.file_type();
            if ft.is_dir() {
                node.kind = NodeKind::Dir;
                if top.depth + 1 > MAX_DEPTH {
                    return Err(Error::io(
                        format!("cannot save {}", path.display()),
                        std::io::Error::other(format!("more than {MAX_DEPTH} folders deep")),
                    ));
                }
                let old_tree = old
                    .filter(|o| o.kind == NodeKind::Dir)
                    .and_then(|o| o.subtree)
                    .and_then(|id| self.saver.repo().load_tree(self.index, &id).ok());
                let slot = top.out.nodes.len();
                top.out.nodes.push(node);
                let depth = top.depth + 1;
                let entries = match list(&path) {
                    Ok(e) => e,
                    // Removed while we walked: an empty folder is what is left.
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        vec![]
                    }
                    Err(e) => return Err(e),
                };
                stack.push(ScanFrame {
                    dir: path,
                    rel: child_rel,
                    parent: old_tree,
                    entries: entries.into_iter(),
                    out: Scanned {
                        nodes: Vec::new(),
                        subdirs: Vec::new(),
                        pending: Vec::new(),
                    },
                    slot,
                    depth,
                });
                continue;
            } else if ft.is_symlink() {
                node.kind = NodeKind::Symlink;
                let target = fs::read_link(&path)
                    .map_err(|e| Error::io(format!("cannot read link {}", path.display()), e))?;
                node.set_target(target.as_os_str().as_bytes());
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
                    top.out
                        .pending
                        .push((top.out.nodes.len(), self.reads.len()));
                    self.reads.push(path);
                }
            } else {
                // Special files hold no data: their kind, mode and device
                // number are all there is to restore.
                node.kind = if ft.is_fifo() {
                    NodeKind::Fifo
                } else if ft.is_socket() {
                    NodeKind::Socket
                } else if ft.is_char_device() {
                    NodeKind::Chardev
                } else if ft.is_block_device() {
                    NodeKind::Blockdev
                } else {
                    self.progress.warn(format!(
                        "skipped {}: unknown file type",
                        top.dir.join(&name).display()
                    ));
                    continue;
                };
                node.rdev = meta.rdev();
            }
            top.out.nodes.push(node);
        }
    }

    /// Fills in read results and stores the trees, children first, with an
    /// explicit stack.
    fn build(
        &mut self,
        root: Scanned,
        read: &[Option<FileContent>],
        bytes: &mut u64,
    ) -> Result<Id> {
        struct BuildFrame {
            dir: Scanned,
            subdirs: std::vec::IntoIter<(usize, Scanned)>,
            ids: Vec<(usize, Id)>,
            slot: usize,
        }
        let frame = |mut dir: Scanned, slot: usize| BuildFrame {
            subdirs: std::mem::take(&mut dir.subdirs).into_iter(),
            dir,
            ids: Vec::new(),
            slot,
        };
        let mut stack = vec![frame(root, 0)];
        loop {
            let top = stack.last_mut().expect("build stack");
            if let Some((slot, sub)) = top.subdirs.next() {
                stack.push(frame(sub, slot));
                continue;
            }
            let done = stack.pop().expect("build stack");
            let id = self.save_tree(done.dir, &done.ids, read, bytes)?;
            match stack.last_mut() {
                Some(parent) => parent.ids.push((done.slot, id)),
                None => return Ok(id),
            }
        }
    }

    fn save_tree(
        &mut self,
        mut dir: Scanned,
        subtrees: &[(usize, Id)],
        read: &[Option<FileContent>],
        bytes: &mut u64,
    ) -> Result<Id> {
        let mut vanished = vec![false; dir.nodes.len()];
        for &(pos, job) in &dir.pending {
            match &read[job] {
                Some((size, content)) => {
                    dir.nodes[pos].size = *size;
                    dir.nodes[pos].content = content.clone();
                }
                None => vanished[pos] = true,
            }
        }
        for &(pos, id) in subtrees {
            dir.nodes[pos].subtree = Some(id);
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
        self.entries += nodes.len() as u64;
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
fn check_name(name: &[u8]) -> Result<()> {
    let why = if name.is_empty() {
        "empty name"
    } else if name == b"." || name == b".." {
        "names the directory itself or its parent"
    } else if name.contains(&b'/') || name.contains(&0) {
        "contains a path separator"
    } else {
        return Ok(());
    };
    Err(Error::Unsafe {
        entry: String::from_utf8_lossy(name).into_owned(),
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
    opts: RestoreOptions<'_>,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    // A destination that is a symlink to a missing folder: the restore goes
    // where it points, and the link stays.
    let linked;
    let dest = match fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() && !dest.exists() => {
            let to = fs::read_link(dest)
                .map_err(|e| Error::io(format!("cannot read link {}", dest.display()), e))?;
            linked = dest.parent().unwrap_or(Path::new("")).join(to);
            linked.as_path()
        }
        _ => dest,
    };
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

/// Special files (fifos, sockets, devices) to create: path, display, node.
type SpecialJob = (PathBuf, String, Node);

/// What [`plan`] collects.
#[derive(Default)]
struct Plan {
    files: Vec<FileJob>,
    links: Vec<(PathBuf, OsString, i64)>,
    specials: Vec<SpecialJob>,
    dirs: Vec<(PathBuf, u32, i64)>,
}

/// Restores the tree `tree` into `dest`, which must not exist. Files are
/// restored in parallel; every file is created new, never through an
/// existing path, so nothing can be written outside `dest`.
pub fn restore_fresh(
    repo: &Repository,
    index: &Index,
    tree: Id,
    dest: &Path,
    opts: RestoreOptions<'_>,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    fs::create_dir(dest).map_err(|e| Error::io(format!("cannot create {}", dest.display()), e))?;
    let mut stats = RestoreStats::default();
    let Plan {
        mut files,
        links,
        specials,
        dirs,
    } = plan(repo, index, tree, dest, opts, &mut stats)?;
    // In the order their data lies in the packs: each thread then reads a
    // stretch of the repository front to back (a disk's cheapest order, and
    // object storage's, whose small reads share a window of the pack).
    files.sort_by_cached_key(|job| {
        job.node
            .content
            .first()
            .and_then(|id| index.get(id))
            .map(|loc| (loc.pack, loc.offset))
    });

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
    for (path, display, node) in &specials {
        make_special(path, display, node)?;
    }
    // Links last, so no file is ever written through one.
    for (path, target, mtime) in links {
        std::os::unix::fs::symlink(&target, &path)
            .map_err(|e| Error::io(format!("cannot create link {}", path.display()), e))?;
        let t = file_time(mtime);
        let _ = filetime::set_symlink_file_times(&path, t, t);
    }
    // Directory modes and times last, deepest first: writing inside changes them.
    for (path, mode, mtime) in dirs.into_iter().rev() {
        filetime::set_file_mtime(&path, file_time(mtime))
            .map_err(|e| Error::io(format!("cannot set time of {}", path.display()), e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("cannot set mode of {}", path.display()), e))?;
    }
    Ok(stats)
}

pub(crate) fn file_time(ns: i64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

/// Creates a fifo, socket or device node, without ever opening it.
fn make_special(path: &Path, display: &str, node: &Node) -> Result<()> {
    use rustix::fs::{FileType, Mode};
    let kind = match node.kind {
        NodeKind::Fifo => FileType::Fifo,
        NodeKind::Socket => FileType::Socket,
        NodeKind::Chardev => FileType::CharacterDevice,
        NodeKind::Blockdev => FileType::BlockDevice,
        _ => unreachable!("only special files are planned here"),
    };
    let dev = if matches!(node.kind, NodeKind::Chardev | NodeKind::Blockdev) {
        node.rdev
    } else {
        0
    };
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        kind,
        Mode::from_raw_mode(node.mode & 0o777),
        dev,
    )
    .map_err(|e| Error::Unrestorable {
        path: display.to_string(),
        detail: std::io::Error::from(e).to_string(),
    })?;
    // mknod applies the umask; set the recorded mode and time without
    // following or opening the node.
    rustix::fs::chmodat(
        rustix::fs::CWD,
        path,
        Mode::from_raw_mode(node.mode & 0o7777),
        rustix::fs::AtFlags::empty(),
    )
    .map_err(|e| Error::io(format!("cannot set mode of {}", path.display()), e.into()))?;
    let t = file_time(node.mtime);
    filetime::set_symlink_file_times(path, t, t)
        .map_err(|e| Error::io(format!("cannot set time of {}", path.display()), e))?;
    Ok(())
}

/// Creates the folders of `tree_id` below `dest` and lists what else to
/// create. Depth-first with an explicit stack, within the depth limit and
/// the entry count the snapshot recorded.
fn plan(
    repo: &Repository,
    index: &Index,
    tree_id: Id,
    dest: &Path,
    opts: RestoreOptions<'_>,
    stats: &mut RestoreStats,
) -> Result<Plan> {
    let mut out = Plan::default();
    let max_entries = opts.max_entries.unwrap_or(u64::MAX);
    let mut seen: u64 = 0;
    // Folders to create: path, mode, mtime, and whether it was included
    // itself (else it is only on the way to something included).
    let mut dirs: Vec<(PathBuf, u32, i64, bool)> = Vec::new();
    // The last field: everything below is included.
    let all = opts.include.is_none();
    let mut stack = vec![(tree_id, dest.to_path_buf(), String::new(), 0usize, all)];
    while let Some((tree_id, dir, rel, depth, all)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(Error::Unsafe {
                entry: rel,
                why: format!("the tree is more than {MAX_DEPTH} levels deep"),
            });
        }
        let tree = match repo.load_tree(index, &tree_id) {
            Ok(t) => t,
            Err(e) if opts.partial => {
                stats.skipped.push(format!(
                    "{}/ (unreadable directory: {e})",
                    if rel.is_empty() { "." } else { &rel }
                ));
                continue;
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
        seen = seen.saturating_add(tree.nodes.len() as u64);
        if seen > max_entries {
            return Err(Error::Unsafe {
                entry: if rel.is_empty() { ".".into() } else { rel },
                why: format!(
                    "the tree expands to more than the {max_entries} entries the snapshot recorded"
                ),
            });
        }
        let mut seen_names = HashSet::new();
        let mut subdirs = Vec::new();
        for node in tree.nodes {
            let raw = node
                .raw_name()
                .ok_or_else(|| Error::Unsafe {
                    entry: node.name.clone(),
                    why: "its stored name bytes are not valid hex".into(),
                })?
                .into_owned();
            check_name(&raw)?;
            if !seen_names.insert(raw.clone()) {
                return Err(Error::Unsafe {
                    entry: node.name.clone(),
                    why: "appears twice in one directory".into(),
                });
            }
            let path = dir.join(OsStr::from_bytes(&raw));
            let display = if rel.is_empty() {
                node.name.clone()
            } else {
                format!("{rel}/{}", node.name)
            };
            let included = all || opts.include.is_some_and(|i| i.matches(&display));
            if !included && node.kind != NodeKind::Dir {
                continue;
            }
            match node.kind {
                NodeKind::Dir => {
                    dirs.push((path.clone(), node.mode, node.mtime, included));
                    if let Some(sub) = node.subtree {
                        subdirs.push((sub, path, display, depth + 1, included));
                    }
                }
                NodeKind::Symlink => {
                    let target = node.raw_target().unwrap_or_default().into_owned();
                    out.links
                        .push((path, OsString::from_vec(target), node.mtime))
                }
                NodeKind::File => out.files.push(FileJob {
                    path,
                    display,
                    node,
                }),
                NodeKind::Fifo | NodeKind::Socket | NodeKind::Chardev | NodeKind::Blockdev => {
                    out.specials.push((path, display, node))
                }
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    // With --include, a folder not included itself is made only when
    // something included lies below it.
    let needed: HashSet<PathBuf> = if opts.include.is_some() {
        let chosen = out
            .files
            .iter()
            .map(|f| f.path.as_path())
            .chain(out.links.iter().map(|l| l.0.as_path()))
            .chain(out.specials.iter().map(|s| s.0.as_path()))
            .chain(dirs.iter().filter(|d| d.3).map(|d| d.0.as_path()));
        chosen
            .flat_map(|p| p.ancestors().skip(1))
            .map(Path::to_path_buf)
            .collect()
    } else {
        HashSet::new()
    };
    // Parents come before their children in `dirs`.
    for (path, mode, mtime, included) in dirs {
        if included || needed.contains(&path) {
            fs::create_dir(&path)
                .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
            out.dirs.push((path, mode, mtime));
        }
    }
    Ok(out)
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
    repo.for_each_blob(index, &job.node.content, |data| -> Result<()> {
        out.write_all(&data).map_err(|e| Error::io(ctx(), e))?;
        n += data.len() as u64;
        progress.bytes(data.len() as u64);
        Ok(())
    })?;
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
    let t = file_time(job.node.mtime);
    filetime::set_file_handle_times(&file, Some(t), Some(t)).map_err(|e| Error::io(ctx(), e))?;
    progress.item(&job.display);
    Ok(n)
}
