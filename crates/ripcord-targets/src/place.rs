//! Putting a restored directory in place of the live one.
//!
//! The restore goes to a sibling folder first; only when it is complete is
//! the live folder renamed away and the restored one renamed in. A crash
//! leaves either the old folder, or the new one, plus a sibling to clean up.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A fresh sibling path of `target` for staging a restore.
pub fn staging_path(target: &Path, what: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "target".into());
    let tag: u32 = std::process::id();
    target.with_file_name(format!(".{name}.ripcord-{what}-{tag}"))
}

/// Replaces `target` with `staged`, then deletes the old content.
pub fn swap_in(staged: &Path, target: &Path) -> Result<()> {
    let old = staging_path(target, "old");
    if target.exists() {
        fs::rename(target, &old)
            .map_err(|e| Error::io(format!("cannot move {} aside", target.display()), e))?;
    }
    ripcord_core::failpoint::hit("restore-swapped-out");
    fs::rename(staged, target).map_err(|e| {
        Error::io(
            format!("cannot move the restored copy to {}", target.display()),
            e,
        )
    })?;
    if old.exists() {
        fs::remove_dir_all(&old)
            .map_err(|e| Error::io(format!("cannot remove {}", old.display()), e))?;
    }
    Ok(())
}
