//! PostgreSQL databases: consistent parallel snapshots and fast restores.
//!
//! Snapshot: one coordinator exports a snapshot (`pg_export_snapshot`);
//! `pg_dump --schema-only` and N workers all read through it, so schema and
//! data are one consistent point in time while the application writes.
//! Large tables are split into ctid block ranges that workers copy in
//! parallel with binary `COPY … TO STDOUT`, streamed straight into the
//! chunker. Restore runs pre-data, parallel binary `COPY … FROM STDIN`,
//! parallel post-data, sequences, then checks every table against the
//! manifest.

mod catalog;
mod chunker;
pub mod conn;
pub mod copy;
mod delta;
pub mod dependents;
pub mod fingerprint;
mod load;
mod merge3;
mod parallel;
pub mod redact;
mod restore;
pub mod reuse;
mod revert;
mod snapshot;
pub mod tools;

pub use conn::Target;
pub use redact::{redact, scrub_env};
pub use restore::{restore, PgRestoreOptions, PgRestoreStats, Phase, TableCheck};
pub use revert::{revert_tables, RevertTable};
pub use snapshot::{snapshot, snapshot_with, unprotected, PgSnapshotOptions};

/// Tables above this size are split into block ranges copied in parallel.
pub const SPLIT_BYTES: u64 = 64 << 20;
