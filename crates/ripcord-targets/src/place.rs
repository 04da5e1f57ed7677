//! Putting a restored directory in place of the live one.
//!
//! The restore goes to a sibling folder first; only when it is complete is
//! the live folder renamed away and the restored one renamed in. A crash
//! leaves the old folder, or the new one, or (between the two renames) the
//! old one beside a missing target; [`recover`] puts that back before the
//! next restore and removes leftovers of dead runs.

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

/// Replaces `target` with `staged`, moves the files `excludes` matches
/// (which ripcord does not manage) from the old content into the new, then
/// deletes the old content.
pub fn swap_in(staged: &Path, target: &Path, excludes: &globset::GlobSet) -> Result<()> {
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
        carry_excluded(&old, target, excludes)?;
        fs::remove_dir_all(&old)
            .map_err(|e| Error::io(format!("cannot remove {}", old.display()), e))?;
    }
    Ok(())
}

/// Cleans up after restores of `target` that were killed: a staged copy of
/// a dead process is removed; an old copy moved aside is put back when the
/// target is missing (the swap was interrupted), else its excluded files are
/// carried over and it is removed (the swap was done). Returns what it did.
pub fn recover(target: &Path, excludes: &globset::GlobSet) -> Result<Vec<String>> {
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
            "restore" => {
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
