//! One pass of `schedule run` at a time on this catalog: an `flock` on
//! `schedule.lock` beside the catalog file. The kernel drops the lock when
//! the process ends, however it ends, so a killed pass never blocks the
//! next one. The file lock holds for one host; with a catalog shared in
//! PostgreSQL the pass also takes the catalog's advisory lock `schedule`.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::{Context as _, Result};

/// The lock, held until dropped.
pub struct Flight {
    _file: File,
}

pub enum Acquired {
    Yes(Flight),
    /// Another pass holds it: what it wrote about itself.
    Busy(String),
}

/// The lock file of the catalog at `catalog`.
pub fn lock_path(catalog: &Path) -> PathBuf {
    catalog
        .parent()
        .map(|p| p.join("schedule.lock"))
        .unwrap_or_else(|| PathBuf::from("schedule.lock"))
}

/// Takes the lock without waiting.
pub fn acquire(catalog: &Path) -> Result<Acquired> {
    let path = lock_path(catalog);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the catalog folder {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the schedule lock {}", path.display()))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Ok(Acquired::Busy(holder.trim().to_string()));
        }
        Err(e) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    // Who holds it, for the pass that finds it taken.
    let me = format!(
        "pid {} on {}, since {}",
        std::process::id(),
        ripcord_repo::hostname(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(me.as_bytes())?;
    file.flush()?;
    Ok(Acquired::Yes(Flight { _file: file }))
}
