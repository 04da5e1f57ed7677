//! Storage backends, shaped like an object store: whole and ranged gets,
//! create-if-absent puts, listing and deletion. Paths are `/`-separated and
//! relative to the repository root (`data/ab/<id>`, `snapshots/<id>`).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub trait Backend: Send + Sync {
    /// Human-readable location, used in messages.
    fn location(&self) -> String;
    fn get(&self, path: &str) -> io::Result<Vec<u8>>;
    fn get_range(&self, path: &str, offset: u64, len: u64) -> io::Result<Vec<u8>>;
    fn size(&self, path: &str) -> io::Result<u64>;
    /// Stores `data` at `path` unless something is already there. Returns
    /// whether it wrote. Readers never see a partial file.
    fn put_if_absent(&self, path: &str, data: &[u8]) -> io::Result<bool>;
    /// All files below `prefix`, recursively, with their sizes.
    fn list(&self, prefix: &str) -> io::Result<Vec<(String, u64)>>;
    fn delete(&self, path: &str) -> io::Result<()>;
    fn exists(&self, path: &str) -> io::Result<bool> {
        match self.size(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
    /// How many blob reads a sequential reader should keep in flight: one
    /// for a local folder, more where each read waits for a round trip.
    fn read_ahead(&self) -> usize {
        1
    }
    /// Removes what writers that died mid-way left behind (temporary files
    /// of dead processes, or any older than a day). Returns how many.
    fn remove_stale_temp_files(&self) -> io::Result<usize> {
        Ok(0)
    }
    /// How many files [`Backend::remove_stale_temp_files`] would remove.
    fn count_stale_temp_files(&self) -> io::Result<usize> {
        Ok(0)
    }
}

/// The folder a repository location names: a plain path as it is, or a
/// `file://` URL (percent-escapes decoded). Any other URL is an error that
/// says why.
pub fn local_root(location: &str) -> std::result::Result<PathBuf, String> {
    if !location.contains("://") {
        return Ok(PathBuf::from(location));
    }
    let url = url::Url::parse(location).map_err(|e| format!("not a valid URL: {e}"))?;
    if url.scheme() != "file" {
        return Err(format!(
            "{:?} is not a supported scheme: a repository is a path, a file:// URL or s3://bucket/prefix",
            url.scheme()
        ));
    }
    url.to_file_path()
        .map_err(|()| "a file URL names an absolute local path: file:///path".to_string())
}

/// A repository in a local folder.
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { root: root.into() }
    }
    /// Parses `file:///path` or a plain path; see [`local_root`].
    pub fn from_url(url: &str) -> LocalBackend {
        LocalBackend::new(local_root(url).unwrap_or_else(|_| PathBuf::from(url)))
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn get(&self, path: &str) -> io::Result<Vec<u8>> {
        fs::read(self.full(path))
    }

    fn get_range(&self, path: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let mut f = fs::File::open(self.full(path))?;
        // Lengths come from repository files: check them before allocating.
        let size = f.metadata()?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{len} bytes at {offset} lie beyond the end of {path} ({size} bytes)"),
            ));
        }
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn size(&self, path: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.full(path))?.len())
    }

    fn put_if_absent(&self, path: &str, data: &[u8]) -> io::Result<bool> {
        let dest = self.full(path);
        if dest.exists() {
            return Ok(false);
        }
        let dir = dest.parent().expect("backend paths have a parent");
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&temp_prefix())
            .tempfile_in(dir)?;
        tmp.write_all(data)?;
        tmp.as_file().sync_all()?;
        // A hard link fails if the name exists, so two writers never clobber each other.
        let created = match fs::hard_link(tmp.path(), &dest) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        drop(tmp);
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(created)
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let start = self.full(prefix);
        if !start.exists() {
            return Ok(out);
        }
        let mut stack = vec![(start, prefix.trim_end_matches('/').to_string())];
        while let Some((dir, rel)) = stack.pop() {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue; // temporary files of unfinished writes
                }
                let meta = entry.metadata()?;
                let child = format!("{rel}/{name}");
                if meta.is_dir() {
                    stack.push((entry.path(), child));
                } else {
                    out.push((child, meta.len()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, path: &str) -> io::Result<()> {
        match fs::remove_file(self.full(path)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn remove_stale_temp_files(&self) -> io::Result<usize> {
        stale_temp_files(&self.root, true)
    }

    fn count_stale_temp_files(&self) -> io::Result<usize> {
        stale_temp_files(&self.root, false)
    }
}

/// Temporary files are named after their writer (`.tmp-HOST-PID-…`) so
/// that the leftovers of a killed writer can be told from a live one's.
fn temp_prefix() -> String {
    format!(".tmp-{}-{}-", host_tag(), std::process::id())
}

/// A short, file-name-safe tag of this host's name, worked out once: every
/// object write names a temporary file with it.
fn host_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| blake3::hash(crate::hostname().as_bytes()).to_hex()[..8].to_string())
}

/// A temporary file older than this is stale whoever wrote it: no single
/// object write takes that long.
const TEMP_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Whether a temporary file may be removed: its writer ran on this host and
/// is gone, or it is older than [`TEMP_STALE_AFTER`].
fn temp_file_is_stale(name: &str, meta: &fs::Metadata) -> bool {
    let Some(rest) = name.strip_prefix(".tmp-") else {
        return false;
    };
    let mut parts = rest.splitn(3, '-');
    if let (Some(host), Some(pid)) = (parts.next(), parts.next()) {
        if host == host_tag() {
            if let Ok(pid) = pid.parse::<u32>() {
                if pid != std::process::id() && !crate::lock::process_alive(pid) {
                    return true;
                }
            }
        }
    }
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age > TEMP_STALE_AFTER)
}

/// Temporary files that interrupted writes left behind (see
/// [`temp_file_is_stale`]): how many, removed with `remove`.
fn stale_temp_files(root: &Path, remove: bool) -> io::Result<usize> {
    let mut removed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let path = entry.path();
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(path);
            } else if entry
                .metadata()
                .is_ok_and(|m| temp_file_is_stale(&name.to_string_lossy(), &m))
            {
                if !remove {
                    removed += 1;
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_temporary_files_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        fs::create_dir_all(dir.path().join("locks")).unwrap();
        let dead = dir
            .path()
            .join(format!("locks/.tmp-{}-{}-abc", host_tag(), u32::MAX - 1));
        let live = dir.path().join(format!("locks/{}x", temp_prefix()));
        let foreign = dir.path().join("locks/.tmp-0000abcd-1-abc");
        for p in [&dead, &live, &foreign] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(b.count_stale_temp_files().unwrap(), 1);
        assert!(dead.exists(), "counting removes nothing");
        assert_eq!(b.remove_stale_temp_files().unwrap(), 1);
        assert!(!dead.exists());
        assert!(live.exists() && foreign.exists());
    }

    #[test]
    fn put_if_absent_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        assert!(b.put_if_absent("data/ab/x", b"one").unwrap());
        assert!(!b.put_if_absent("data/ab/x", b"two").unwrap());
        assert_eq!(b.get("data/ab/x").unwrap(), b"one");
        assert_eq!(b.get_range("data/ab/x", 1, 2).unwrap(), b"ne");
        assert_eq!(b.list("data").unwrap(), vec![("data/ab/x".to_string(), 3)]);
        // A length read from a damaged index is not allocated.
        let err = b.get_range("data/ab/x", 1, u32::MAX as u64).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(b.get_range("data/ab/x", u64::MAX, 2).is_err());
        b.delete("data/ab/x").unwrap();
        assert!(!b.exists("data/ab/x").unwrap());
    }
}
