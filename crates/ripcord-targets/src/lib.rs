//! ripcord-targets: reading targets into a repository and writing them back.
//!
//! - [`dir`]: directory trees with content, mode, mtime and symlinks, exclude
//!   globs, and a parent-snapshot metadata check that skips unchanged files.
//! - [`sqlite`]: SQLite databases through the online backup API, with
//!   per-table row counts and content checksums.
//! - [`place`]: swapping a restored copy into place so the target is always
//!   either its old or its new self.

pub mod dir;
pub mod dir_include;
pub mod error;
pub mod place;
pub mod postgres;
pub mod sqlite;
mod sqlite_delta;
pub mod sqlite_fingerprint;
mod sqlite_merge3;
pub mod sqlite_revert;

pub use error::{Error, Result};

/// Progress callbacks; all no-ops by default.
pub trait Progress: Sync {
    fn bytes(&self, _n: u64) {}
    fn item(&self, _path: &str) {}
    fn warn(&self, _message: String) {}
}

/// A [`Progress`] that ignores everything.
pub struct Quiet;
impl Progress for Quiet {}

/// Options shared by restores.
#[derive(Clone, Copy, Debug, Default)]
pub struct RestoreOptions<'a> {
    /// Restore what is intact and skip damaged files instead of refusing.
    pub partial: bool,
    /// The most nodes the tree may expand to: the count the snapshot
    /// recorded (`walk::TreeLimits`). `None` leaves only the depth limit.
    pub max_entries: Option<u64>,
    /// Only the paths these patterns match (and what is below them).
    pub include: Option<&'a dir_include::Include>,
}

/// What a restore did.
#[derive(Debug, Default, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct RestoreStats {
    /// Files written; for a PostgreSQL target, tables loaded. Not in
    /// JSON: a restore's document says `files` only of targets made of files.
    #[serde(skip)]
    pub files: u64,
    pub bytes: u64,
    /// Files skipped because their data is damaged (only with `partial`).
    pub skipped: Vec<String>,
    /// Tables whose row count and checksum were checked against the manifest.
    pub tables_verified: u64,
}
