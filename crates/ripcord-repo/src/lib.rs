//! ripcord-repo: the snapshot repository.
//!
//! Data is cut into content-defined chunks (FastCDC), named by a keyed BLAKE3
//! hash, compressed with zstd, sealed with XChaCha20-Poly1305 and stored in
//! packs that carry their own index. Snapshots are sealed manifests. Every
//! file is written once, under a name derived from its content. The format is
//! documented in `docs/format.md`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ripcord_repo::{backend::LocalBackend, Repository};
//! let repo = Repository::open(Arc::new(LocalBackend::new("/var/backups/ripcord")), Some("pass"))?;
//! for (id, snap) in repo.snapshots()? {
//!     println!("{} {}", id.short(), snap.time);
//! }
//! # Ok::<(), ripcord_repo::Error>(())
//! ```

pub mod backend;
pub mod blob;
pub mod chunk;
pub mod copy;
pub mod crypto;
pub mod error;
mod id;
pub mod index;
pub mod lock;
pub mod manifest;
pub mod pack;
pub mod prune;
pub mod repo;
pub mod retention;
pub mod rowdelta;
pub mod s3;
pub mod saver;
mod trust;
pub mod verify;
pub mod walk;

pub use error::{Error, Result};
pub use id::Id;
pub use repo::Repository;

/// This host's name (`RIPCORD_HOSTNAME` overrides it).
pub fn hostname() -> String {
    ripcord_core::host::name()
}

pub fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of this process's user from the user database (services often
/// run without USER).
fn user_from_passwd() -> Option<String> {
    whoami::username().ok()
}
