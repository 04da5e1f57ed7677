//! Deterministic test data: file contents and directory trees.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};

/// A small, fast, deterministic generator (SplitMix64) for decisions such as
/// delays and indexes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `len` incompressible bytes, always the same for the same seed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut out);
    out
}

const WORDS: &[&str] = &[
    "ripcord",
    "snapshot",
    "restore",
    "verify",
    "config",
    "database",
    "table",
    "order",
    "customer",
    "invoice",
    "deploy",
    "migration",
    "rollback",
    "service",
    "cache",
    "queue",
    "worker",
    "request",
    "timeout",
    "retry",
    "shard",
    "replica",
    "backup",
    "archive",
];

/// `len` bytes of compressible text: lines of words, deterministic per seed.
pub fn text(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 64);
    let mut line = 0u64;
    while out.len() < len {
        line += 1;
        out.extend_from_slice(format!("{line:06} ").as_bytes());
        for _ in 0..(4 + rng.below(8)) {
            out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
            out.push(b' ');
        }
        out.push(b'\n');
    }
    out.truncate(len);
    out
}

/// Writes `bytes` to `path`, creating parent folders.
pub fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent folders");
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Sets the modification time (seconds and nanoseconds since the epoch),
/// without following a symlink.
pub fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(path, t, t)
        .unwrap_or_else(|e| panic!("set time of {}: {e}", path.display()));
}

/// Writes `total` bytes of random data as files of at most `file_size` bytes
/// named `part-NNN.bin` under `dir`. Returns the paths.
pub fn random_files(dir: &Path, seed: u64, total: usize, file_size: usize) -> Vec<PathBuf> {
    fs::create_dir_all(dir).expect("create data folder");
    let mut paths = Vec::new();
    let mut left = total;
    let mut n = 0u64;
    while left > 0 {
        let len = left.min(file_size);
        let p = dir.join(format!("part-{n:03}.bin"));
        write_file(
            &p,
            &random_bytes(seed.wrapping_mul(1000).wrapping_add(n), len),
        );
        paths.push(p);
        left -= len;
        n += 1;
    }
    paths
}

/// What [`standard_tree`] created, relative to its root.
#[derive(Clone, Debug)]
pub struct TreeLayout {
    pub root: PathBuf,
    /// Regular files that a snapshot includes.
    pub files: Vec<String>,
    /// Files that `exclude` drops.
    pub excluded: Vec<String>,
    /// The exclude patterns to configure.
    pub exclude_patterns: Vec<String>,
    /// The large file (> 5 MiB, compressible then random), several chunks long.
    pub large: String,
    pub symlinks: Vec<String>,
    pub dirs: Vec<String>,
}

impl TreeLayout {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    /// The exclude patterns as `&str`, for [`Workspace::dir_target`](crate::Workspace::dir_target).
    pub fn excludes(&self) -> Vec<&str> {
        self.exclude_patterns.iter().map(String::as_str).collect()
    }
}

/// Size of the large file of [`standard_tree`].
pub const LARGE_SIZE: usize = 6 << 20;

/// Creates a deterministic tree at `root`: text files, a 6 MiB file (3 MiB of
/// text then 3 MiB of random bytes), nested folders, an empty file and an
/// empty folder, symlinks (one dangling), files with modes 0600 and 0755, a
/// 0700 folder, and two files matched by the exclude pattern `*.tmp`. Every
/// entry gets a distinct modification time with a nanosecond part.
pub fn standard_tree(root: &Path, seed: u64) -> TreeLayout {
    fs::create_dir_all(root).expect("create tree root");
    let files: Vec<(&str, Vec<u8>, u32)> = vec![
        ("README.md", text(seed + 1, 2_000), 0o644),
        ("config/app.toml", text(seed + 2, 1_200), 0o600),
        (
            "config/secrets.env",
            b"TOKEN=not-a-real-token\n".to_vec(),
            0o600,
        ),
        (
            "bin/run.sh",
            b"#!/bin/sh\nexec echo hello\n".to_vec(),
            0o755,
        ),
        ("src/lib.rs", text(seed + 3, 10_000), 0o644),
        ("src/a/b/c/deep.txt", text(seed + 4, 700), 0o644),
        ("logs/app.log", text(seed + 5, 4_000), 0o640),
        ("private/key.pem", random_bytes(seed + 6, 256), 0o600),
        ("empty.txt", Vec::new(), 0o644),
    ];
    let excluded: Vec<(&str, Vec<u8>)> = vec![
        ("scratch.tmp", text(seed + 7, 500)),
        ("logs/debug.tmp", text(seed + 8, 500)),
    ];
    let large = "data/large.bin";
    let mut large_bytes = text(seed + 9, LARGE_SIZE / 2);
    large_bytes.extend(random_bytes(seed + 10, LARGE_SIZE - LARGE_SIZE / 2));

    for (rel, bytes, mode) in &files {
        let p = root.join(rel);
        write_file(&p, bytes);
        set_mode(&p, *mode);
    }
    for (rel, bytes) in &excluded {
        write_file(&root.join(rel), bytes);
    }
    write_file(&root.join(large), &large_bytes);
    fs::create_dir_all(root.join("empty-dir")).expect("create empty-dir");
    let symlinks = [
        ("link-to-readme", "README.md"),
        ("config/current", "app.toml"),
        ("dangling", "does/not/exist"),
    ];
    for (rel, target) in symlinks {
        std::os::unix::fs::symlink(target, root.join(rel)).expect("create symlink");
    }
    let dirs = [
        "bin",
        "config",
        "data",
        "empty-dir",
        "logs",
        "private",
        "src",
        "src/a",
        "src/a/b",
        "src/a/b/c",
    ];
    set_mode(&root.join("private"), 0o700);

    // Times last: files and links first, then folders deepest first.
    let mut n = 0i64;
    let mut stamp = |p: &Path| {
        n += 1;
        set_mtime(
            p,
            1_600_000_000 + n * 3_600,
            (n as u32 * 7_919_113) % 1_000_000_000,
        );
    };
    for (rel, _, _) in &files {
        stamp(&root.join(rel));
    }
    for (rel, _) in &excluded {
        stamp(&root.join(rel));
    }
    stamp(&root.join(large));
    for (rel, _) in symlinks {
        stamp(&root.join(rel));
    }
    let mut by_depth: Vec<&str> = dirs.to_vec();
    by_depth.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for d in by_depth {
        stamp(&root.join(d));
    }

    let mut all_files: Vec<String> = files.iter().map(|(r, _, _)| r.to_string()).collect();
    all_files.push(large.to_string());
    TreeLayout {
        root: root.to_path_buf(),
        files: all_files,
        excluded: excluded.iter().map(|(r, _)| r.to_string()).collect(),
        exclude_patterns: vec!["*.tmp".to_string()],
        large: large.to_string(),
        symlinks: symlinks.iter().map(|(r, _)| r.to_string()).collect(),
        dirs: dirs.iter().map(|d| d.to_string()).collect(),
    }
}
