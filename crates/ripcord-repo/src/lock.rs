//! Repository locks (R8): shared or exclusive, refreshed by a heartbeat, stale
//! after a timeout or when their process is gone. A stale lock is reported
//! with its holder and removed only by `ripcord unlock`.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::Id;

/// A lock whose heartbeat is older than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
const HEARTBEAT: Duration = Duration::from_secs(5 * 60);

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct LockInfo {
    pub exclusive: bool,
    pub host: String,
    pub pid: u32,
    pub user: String,
    pub command: String,
    pub created: DateTime<Utc>,
    pub refreshed: DateTime<Utc>,
}

impl LockInfo {
    /// Why this lock is stale, if it is.
    pub fn stale_reason(&self) -> Option<String> {
        let age = Utc::now().signed_duration_since(self.refreshed);
        if age.to_std().map(|a| a > STALE_AFTER).unwrap_or(false) {
            return Some(format!("no heartbeat for {} minutes", age.num_minutes()));
        }
        if self.host == crate::hostname() && !process_alive(self.pid) {
            return Some(format!("process {} no longer runs on this host", self.pid));
        }
        None
    }

    pub fn describe(&self) -> String {
        format!(
            "{} lock held by {}@{} pid {} ({}) since {}",
            if self.exclusive {
                "an exclusive"
            } else {
                "a shared"
            },
            self.user,
            self.host,
            self.pid,
            self.command,
            self.created.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// Whether process `pid` of this machine still runs: signal 0 reaches it,
/// or it exists but belongs to another user.
pub fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Holds a lock until dropped; a thread refreshes it meanwhile.
pub struct LockGuard {
    repo: Repository,
    current: std::sync::Arc<std::sync::Mutex<Id>>,
    stop: Option<mpsc::Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
}

fn write_lock(repo: &Repository, info: &LockInfo) -> Result<Id> {
    let bytes = repo
        .keys()
        .seal(serde_json::to_vec(info).expect("lock serializes"));
    let id = Id::random();
    let path = format!("locks/{}", id.to_hex());
    repo.backend()
        .put_if_absent(&path, &bytes)
        .map_err(|e| Error::io(format!("cannot write {path}"), e))?;
    Ok(id)
}

/// Every lock file with its contents; unreadable ones are reported as such.
pub fn list_locks(repo: &Repository) -> Result<Vec<(Id, Option<LockInfo>)>> {
    let mut out = Vec::new();
    for id in repo.list_ids("locks")? {
        let path = format!("locks/{}", id.to_hex());
        let info = match repo.backend().get(&path) {
            Ok(bytes) => repo
                .keys()
                .open(&bytes)
                .ok()
                .and_then(|p| serde_json::from_slice(&p).ok()),
            // Removed by its owner while we listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("cannot read {path}"), e)),
        };
        out.push((id, info));
    }
    Ok(out)
}

/// Removes stale locks (or all with `all`). Returns the descriptions removed.
pub fn remove_locks(repo: &Repository, all: bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (id, shown) in removable_locks(repo, all)? {
        repo.backend()
            .delete(&format!("locks/{}", id.to_hex()))
            .map_err(|e| Error::io("cannot delete lock", e))?;
        removed.push(shown);
    }
    Ok(removed)
}

/// The locks [`remove_locks`] removes, each with its description: stale
/// and unreadable ones, or every one with `all`.
pub fn removable_locks(repo: &Repository, all: bool) -> Result<Vec<(Id, String)>> {
    let mut out = Vec::new();
    for (id, info) in list_locks(repo)? {
        let stale = info.as_ref().and_then(LockInfo::stale_reason);
        if all || stale.is_some() || info.is_none() {
            out.push((
                id,
                match info {
                    Some(i) => i.describe(),
                    None => format!("unreadable lock {}", id.short()),
                },
            ));
        }
    }
    Ok(out)
}

impl LockGuard {
    /// Takes a lock. A conflicting live lock refuses; a conflicting stale
    /// lock also refuses an exclusive request. A shared request proceeds past
    /// a stale exclusive lock, after `warn` reports it, because readers and
    /// appenders cannot harm what a dead process left.
    pub fn acquire(
        repo: &Repository,
        exclusive: bool,
        command: &str,
        warn: &dyn Fn(String),
    ) -> Result<LockGuard> {
        let now = Utc::now();
        let info = LockInfo {
            exclusive,
            host: crate::hostname(),
            pid: std::process::id(),
            user: crate::username(),
            command: command.to_string(),
            created: now,
            refreshed: now,
        };
        // Write first, then look: two racing processes both see each other.
        let mine = write_lock(repo, &info)?;
        let mut guard = LockGuard {
            repo: repo.clone(),
            current: std::sync::Arc::new(std::sync::Mutex::new(mine)),
            stop: None,
            heartbeat: None,
        };
        for (id, other) in list_locks(repo)? {
            if id == mine {
                continue;
            }
            let Some(other) = other else {
                if exclusive {
                    return Err(Error::Locked {
                        holder: format!("an unreadable lock file locks/{}", id.to_hex()),
                        stale: true,
                    });
                }
                continue;
            };
            if !(exclusive || other.exclusive) {
                continue;
            }
            match other.stale_reason() {
                Some(reason) if !exclusive => {
                    warn(format!(
                        "ignoring a stale lock: {} ({reason}); remove it with `ripcord unlock`",
                        other.describe()
                    ));
                }
                Some(reason) => {
                    return Err(Error::Locked {
                        holder: format!("{}; it looks stale: {reason}", other.describe()),
                        stale: true,
                    })
                }
                None => {
                    return Err(Error::Locked {
                        holder: other.describe(),
                        stale: false,
                    })
                }
            }
        }
        guard.start_heartbeat(info);
        Ok(guard)
    }

    fn start_heartbeat(&mut self, mut info: LockInfo) {
        let (tx, rx) = mpsc::channel::<()>();
        let repo = self.repo.clone();
        let current = self.current.clone();
        self.stop = Some(tx);
        self.heartbeat = Some(std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(HEARTBEAT) {
                info.refreshed = Utc::now();
                // New file first, then remove the old one: never a moment without a lock.
                if let Ok(new) = write_lock(&repo, &info) {
                    let mut cur = current.lock().expect("lock id");
                    let _ = repo.backend().delete(&format!("locks/{}", cur.to_hex()));
                    *cur = new;
                }
            }
        }));
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        let id = *self.current.lock().expect("lock id");
        let _ = self
            .repo
            .backend()
            .delete(&format!("locks/{}", id.to_hex()));
    }
}
