//! Deterministic listing of the regular files under a set of paths.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A regular file found by [`files`].
#[derive(Clone, Debug)]
pub struct Entry {
    /// Path of the file.
    pub path: PathBuf,
    /// Its size in bytes when listed.
    pub size: u64,
}

/// All regular files under `roots` (a root may itself be a file), in sorted
/// order within each root. Symbolic links are not followed.
pub fn files(roots: &[PathBuf]) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for root in roots {
        let meta = fs::symlink_metadata(root)
            .with_context(|| format!("cannot stat {}", root.display()))?;
        if meta.is_file() {
            out.push(Entry {
                path: root.clone(),
                size: meta.len(),
            });
        } else if meta.is_dir() {
            visit(root, &mut out)?;
        }
    }
    Ok(out)
}

fn visit(dir: &Path, out: &mut Vec<Entry>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ft = e.file_type()?;
        let path = e.path();
        if ft.is_dir() {
            visit(&path, out)?;
        } else if ft.is_file() {
            let size = e.metadata()?.len();
            out.push(Entry { path, size });
        }
    }
    Ok(())
}
