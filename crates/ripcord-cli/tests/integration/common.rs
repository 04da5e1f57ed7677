//! Shared setup for the integration tests, and access to the repository
//! through the library for tests that damage or craft repository files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ripcord_repo::backend::LocalBackend;
use ripcord_repo::index::Location;
use ripcord_repo::manifest::{Content, NodeKind};
use ripcord_repo::{pack, Id, Repository};
use ripcord_testing::data::{self, TreeLayout};
use ripcord_testing::{Fingerprint, Workspace};
use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

/// An empty workspace: configuration, no repository, no targets.
pub fn workspace() -> Workspace {
    Workspace::new(bin())
}

/// A workspace with a repository and one dir target `app` holding the
/// standard tree (excluding `*.tmp`).
pub struct DirSetup {
    pub ws: Workspace,
    pub layout: TreeLayout,
    pub app: PathBuf,
}

impl DirSetup {
    pub fn new(seed: u64) -> DirSetup {
        let mut ws = workspace();
        let layout = data::standard_tree(&ws.path("app"), seed);
        let app = ws.dir_target("app", "app", &layout.excludes());
        ws.init();
        DirSetup { ws, layout, app }
    }

    /// What a restore of the current `app` must look like: everything but
    /// the excluded files.
    pub fn expected(&self) -> Fingerprint {
        Fingerprint::of(&self.app).without_all(&self.layout.excluded)
    }
}

/// Opens the workspace's repository with its passphrase.
pub fn open_repo(ws: &Workspace) -> Repository {
    Repository::open(Arc::new(LocalBackend::new(ws.repo())), Some(ws.password()))
        .expect("open the repository through the library")
}

pub fn id(hex: &str) -> Id {
    Id::from_hex(hex).unwrap_or_else(|| panic!("not an id: {hex:?}"))
}

pub fn short(hex: &str) -> &str {
    &hex[..8]
}

/// Where the data blobs of one file (`rel`, `/`-separated) of a dir target
/// are stored, in file order.
pub fn file_blobs(ws: &Workspace, snapshot: &str, target: &str, rel: &str) -> Vec<Location> {
    let repo = open_repo(ws);
    let index = repo.load_index().expect("load index");
    let snap = repo.load_snapshot(&id(snapshot)).expect("load snapshot");
    let t = snap.target(target).expect("target in snapshot");
    let Content::Dir { tree } = &t.content else {
        panic!("{target} is not a dir target")
    };
    let mut tree = repo.load_tree(&index, tree).expect("load tree");
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let node = tree
            .nodes
            .iter()
            .find(|n| n.name == *part)
            .unwrap_or_else(|| panic!("{rel}: no {part} in the snapshot"))
            .clone();
        if i + 1 == parts.len() {
            assert_eq!(node.kind, NodeKind::File, "{rel} is not a file");
            return node
                .content
                .iter()
                .map(|c| index.get(c).expect("blob indexed"))
                .collect();
        }
        tree = repo
            .load_tree(&index, &node.subtree.expect("subtree"))
            .expect("load subtree");
    }
    unreachable!("path has at least one part")
}

/// The file of a pack in the workspace's repository.
pub fn pack_file(ws: &Workspace, pack: &Id) -> PathBuf {
    ws.repo().join(pack::path(pack))
}

/// Every file in one repository folder (`data`, `index`, `snapshots`, `keys`, `locks`).
pub fn files_in(ws: &Workspace, dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = ws.repo().join(dir);
    if !root.exists() {
        return out;
    }
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list") {
            let e = e.expect("entry");
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// XORs one byte of a file with 0xff.
pub fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        (offset as usize) < bytes.len(),
        "offset {offset} beyond {}",
        path.display()
    );
    bytes[offset as usize] ^= 0xff;
    std::fs::write(path, bytes).expect("write damaged file");
}

/// Cuts a file down to `len` bytes.
pub fn truncate(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for truncation");
    f.set_len(len).expect("truncate");
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// The snapshot entries of `snapshots --json`.
pub fn snapshots(ws: &Workspace) -> Vec<Value> {
    ws.json(&["snapshots"])
        .as_array()
        .expect("snapshots --json is a list")
        .clone()
}

pub fn u64_of(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// Entries of a folder (names only), sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Restores `snapshot` (of one target) into a fresh folder of the
/// workspace and checks that the target's folder in it equals `expected`.
pub fn assert_restores_to(ws: &Workspace, snapshot: &str, expected: &Fingerprint, what: &str) {
    let dest = ws.path(format!("check-{}-{}", short(snapshot), unique()));
    ws.ok(&["restore", snapshot, "--into", dest.to_str().unwrap()]);
    let names = names_in(&dest);
    assert_eq!(names.len(), 1, "{what}: one target folder in {names:?}");
    Fingerprint::of(&dest.join(&names[0])).assert_same(expected, what);
    std::fs::remove_dir_all(&dest).expect("remove restored copy");
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
