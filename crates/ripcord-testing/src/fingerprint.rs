//! Byte-for-byte comparison of directory trees, and hashes of repository files.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

/// Everything ripcord promises to restore about one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits (`mode & 0o7777`); ignored for symlinks.
    pub mode: u32,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    pub size: u64,
    /// BLAKE3 of a file's content.
    pub content: Option<String>,
    /// A symlink's target.
    pub link: Option<String>,
    /// A device node's device number.
    pub rdev: u64,
}

/// Every entry below a root (the root itself excluded), by relative path.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub entries: BTreeMap<String, Entry>,
}

impl Fingerprint {
    /// Reads the tree at `root`. Symlinks are recorded, never followed.
    pub fn of(root: &Path) -> Fingerprint {
        let mut fp = Fingerprint::default();
        walk(root, "", &mut fp.entries);
        fp
    }

    /// A copy without `rel` and everything below it.
    pub fn without(&self, rel: &str) -> Fingerprint {
        let prefix = format!("{rel}/");
        Fingerprint {
            entries: self
                .entries
                .iter()
                .filter(|(k, _)| k.as_str() != rel && !k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// A copy without every path in `rels`.
    pub fn without_all<S: AsRef<str>>(&self, rels: &[S]) -> Fingerprint {
        let mut out = self.clone();
        for r in rels {
            out = out.without(r.as_ref());
        }
        out
    }

    /// A copy without modification times of folders (for comparisons where
    /// adding and removing entries legitimately changed them).
    pub fn without_dir_times(&self) -> Fingerprint {
        let mut out = self.clone();
        for e in out.entries.values_mut() {
            if e.kind == Kind::Dir {
                e.mtime_ns = 0;
            }
        }
        out
    }

    pub fn paths(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    pub fn get(&self, rel: &str) -> Option<&Entry> {
        self.entries.get(rel)
    }

    /// Human-readable differences from `expected`; empty when identical.
    pub fn differences(&self, expected: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        for (k, want) in &expected.entries {
            match self.entries.get(k) {
                None => out.push(format!("missing: {k}")),
                Some(got) if got != want => {
                    out.push(format!("differs: {k}\n    got  {got:?}\n    want {want:?}"))
                }
                Some(_) => {}
            }
        }
        for k in self.entries.keys() {
            if !expected.entries.contains_key(k) {
                out.push(format!("unexpected: {k}"));
            }
        }
        out
    }

    /// Panics with the differences unless `self` equals `expected`.
    pub fn assert_same(&self, expected: &Fingerprint, what: &str) {
        let d = self.differences(expected);
        assert!(
            d.is_empty(),
            "{what}: trees differ ({} difference(s)):\n{}",
            d.len(),
            d.join("\n")
        );
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries.iter()).finish()
    }
}

fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Entry>) {
    let rd = fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
    for entry in rd {
        let entry = entry.expect("read folder entry");
        // Names that are not UTF-8 are kept distinct by escaping their bytes.
        let raw = entry.file_name();
        let name = match raw.to_str() {
            Some(n) => n.to_string(),
            None => std::os::unix::ffi::OsStrExt::as_bytes(raw.as_os_str())
                .escape_ascii()
                .to_string(),
        };
        let child_rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).expect("stat entry");
        let ft = meta.file_type();
        let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
        let mut e = Entry {
            kind: Kind::Other,
            mode: meta.mode() & 0o7777,
            mtime_ns,
            size: 0,
            content: None,
            link: None,
            rdev: 0,
        };
        if ft.is_symlink() {
            e.kind = Kind::Symlink;
            e.mode = 0;
            let target = fs::read_link(&path).expect("read link");
            e.link = Some(match target.to_str() {
                Some(t) => t.to_string(),
                None => std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str())
                    .escape_ascii()
                    .to_string(),
            });
        } else if ft.is_dir() {
            e.kind = Kind::Dir;
            walk(&path, &child_rel, out);
        } else if ft.is_file() {
            e.kind = Kind::File;
            e.size = meta.len();
            e.content = Some(hash_file(&path));
        } else {
            use std::os::unix::fs::FileTypeExt;
            e.kind = if ft.is_fifo() {
                Kind::Fifo
            } else if ft.is_socket() {
                Kind::Socket
            } else if ft.is_char_device() {
                Kind::CharDevice
            } else if ft.is_block_device() {
                Kind::BlockDevice
            } else {
                Kind::Other
            };
            e.rdev = meta.rdev();
        }
        out.insert(child_rel, e);
    }
}

/// BLAKE3 of a file's content, hex.
pub fn hash_file(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    std::io::copy(&mut f, &mut h).expect("read file");
    h.finalize().to_hex().to_string()
}

/// BLAKE3 of every file below `root` (symlinks by target), by relative path.
/// Two equal results prove that nothing in the folder changed.
pub fn repo_hashes(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
    let mut entries = BTreeMap::new();
    walk(root, "", &mut entries);
    for (k, e) in entries {
        match e.kind {
            Kind::File => {
                out.insert(k, e.content.expect("file hash"));
            }
            Kind::Symlink => {
                out.insert(k, format!("-> {}", e.link.expect("link target")));
            }
            // Folders are structure, not content: an empty `locks/` left by
            // a released lock is not a change.
            Kind::Dir => {}
            Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice | Kind::Other => {
                out.insert(k, "(special)".into());
            }
        }
    }
    out
}

/// Total size in bytes of the regular files below `root`.
pub fn dir_size(root: &Path) -> u64 {
    let mut entries = BTreeMap::new();
    walk(root, "", &mut entries);
    entries.values().map(|e| e.size).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data;

    #[test]
    fn fingerprint_sees_every_kind_of_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let layout = data::standard_tree(&a, 1);
        let base = Fingerprint::of(&a);
        assert_eq!(base, Fingerprint::of(&a), "reading changes nothing");
        assert!(base.get(&layout.large).unwrap().size > 5 << 20);

        type Change = Box<dyn Fn(&Path)>;
        let changes: Vec<(&str, Change)> = vec![
            (
                "content",
                Box::new(|r| {
                    let p = r.join("README.md");
                    let mut b = fs::read(&p).unwrap();
                    b[0] ^= 1;
                    let m = fs::symlink_metadata(&p).unwrap();
                    fs::write(&p, b).unwrap();
                    data::set_mtime(&p, m.mtime(), m.mtime_nsec() as u32);
                }),
            ),
            (
                "mode",
                Box::new(|r| data::set_mode(&r.join("bin/run.sh"), 0o700)),
            ),
            (
                "mtime",
                Box::new(|r| data::set_mtime(&r.join("empty.txt"), 1, 1)),
            ),
            (
                "dir mtime",
                Box::new(|r| data::set_mtime(&r.join("src/a"), 1, 2)),
            ),
            (
                "link",
                Box::new(|r| {
                    fs::remove_file(r.join("dangling")).unwrap();
                    std::os::unix::fs::symlink("elsewhere", r.join("dangling")).unwrap();
                }),
            ),
            (
                "removed",
                Box::new(|r| fs::remove_file(r.join("src/lib.rs")).unwrap()),
            ),
        ];
        for (what, change) in changes {
            let b = dir.path().join(format!("b-{}", what.replace(' ', "-")));
            data::standard_tree(&b, 1);
            assert!(
                Fingerprint::of(&b).differences(&base).is_empty(),
                "{what}: same seed, same tree"
            );
            change(&b);
            assert!(
                !Fingerprint::of(&b).differences(&base).is_empty(),
                "{what} not seen"
            );
        }
    }

    #[test]
    fn repo_hashes_see_one_flipped_byte() {
        let dir = tempfile::tempdir().unwrap();
        data::write_file(&dir.path().join("x/y"), b"abc");
        let before = repo_hashes(dir.path());
        data::write_file(&dir.path().join("x/y"), b"abd");
        assert_ne!(repo_hashes(dir.path()), before);
        assert_eq!(dir_size(dir.path()), 3);
    }
}
