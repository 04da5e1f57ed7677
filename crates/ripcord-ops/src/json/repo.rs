//! Documents of the repository commands: snapshots, show, forget, key,
//! unlock, repair and init.

use chrono::{DateTime, Utc};
use ripcord_repo::manifest::{Content, MigrationState, Snapshot};
use ripcord_repo::prune::PruneReport;
use ripcord_repo::retention::Decision;
use ripcord_repo::Id;
use schemars::JsonSchema;
use serde::Serialize;

/// `snapshot`: the snapshot taken or, with `--dry-run`, what it would
/// read; `dry_run` tells them apart.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SnapshotOutput {
    Taken(crate::snapshot::SnapshotResult),
    DryRun(crate::snapshot::SnapshotPlan),
}

/// One snapshot as `snapshots` lists it and `show` starts it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SnapshotView {
    pub snapshot: Id,
    pub time: DateTime<Utc>,
    pub host: String,
    pub user: String,
    pub tags: Vec<String>,
    pub tier: Option<String>,
    /// The snapshot this one was taken after, whose unchanged data it shares.
    pub parent_snapshot: Option<Id>,
    /// The sum of the targets' bytes.
    pub bytes: u64,
    pub ripcord_version: String,
    pub targets: Vec<TargetView>,
}

/// One target of a snapshot.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TargetView {
    pub target: String,
    /// `dir`, `sqlite` or `postgres`.
    pub kind: String,
    /// Where it was read from; a database URL without its password.
    pub source: String,
    pub bytes: u64,
    /// Files of a dir target; none for databases.
    pub files: Option<u64>,
    /// Tables of a database target, with their rows; empty for dirs.
    pub tables: Vec<TableView>,
    pub git_commit: Option<String>,
    /// Where the database stood in its migrations, when ripcord tracks them.
    pub migration: Option<MigrationState>,
    /// The version another migration tool recorded, when one did.
    pub migration_version: Option<String>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TableView {
    /// `name`, or `schema.name` on PostgreSQL.
    pub table: String,
    pub rows: u64,
    /// Bytes of its rows as stored in the snapshot; none on SQLite, whose
    /// tables share one image.
    pub bytes: Option<u64>,
}

impl SnapshotView {
    /// The view of `s`; database sources are shown through `redact`.
    pub fn of(id: Id, s: &Snapshot) -> SnapshotView {
        SnapshotView {
            snapshot: id,
            time: s.time,
            host: s.host.clone(),
            user: s.user.clone(),
            tags: s.tags.clone(),
            tier: s.tier.clone(),
            parent_snapshot: s.parent,
            bytes: s.total_size(),
            ripcord_version: s.program_version.clone(),
            targets: s
                .targets
                .iter()
                .map(|t| TargetView {
                    target: t.name.clone(),
                    kind: t.content.kind().to_string(),
                    source: t.source.clone(),
                    bytes: t.size,
                    files: matches!(t.content, Content::Dir { .. }).then_some(t.items),
                    tables: match &t.content {
                        Content::Dir { .. } => Vec::new(),
                        Content::Sqlite { tables, .. } => tables
                            .iter()
                            .map(|tb| TableView {
                                table: tb.name.clone(),
                                rows: tb.rows,
                                bytes: None,
                            })
                            .collect(),
                        Content::Postgres(pg) => pg
                            .tables
                            .iter()
                            .map(|tb| TableView {
                                table: tb.qualified(),
                                rows: tb.rows,
                                bytes: Some(tb.size),
                            })
                            .collect(),
                    },
                    git_commit: t.git_commit.clone(),
                    migration: t.migration.clone(),
                    migration_version: t.migration_version.clone(),
                })
                .collect(),
        }
    }
}

/// `show`: the snapshot, and its manifest as the repository stores it
/// (docs/format.md; its field names are the format's).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ShowOutput {
    #[serde(flatten)]
    pub snapshot: SnapshotView,
    pub manifest: serde_json::Value,
}

/// `forget`: what was (or on a dry run would be) removed, and why.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ForgetOutput {
    pub dry_run: bool,
    /// The snapshots removed (on a dry run: that would be).
    pub removed: Vec<Id>,
    pub removed_count: usize,
    /// With a keep policy: the decision on every snapshot; empty when
    /// snapshots were named by id.
    pub decisions: Vec<Decision>,
    pub warnings: Vec<String>,
    /// With `--prune`: what the prune that followed did.
    pub prune: Option<PruneReport>,
}

/// One key of `key list`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct KeyEntry {
    pub key: Id,
    /// The key this command opened the repository with.
    pub current: bool,
    /// None for a damaged key file.
    pub created: Option<DateTime<Utc>>,
    pub host: Option<String>,
    pub user: Option<String>,
    /// Why the key file cannot be used, when it cannot.
    pub damaged: Option<String>,
}

/// `key add`, `key remove` and `key passwd`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct KeyOutput {
    pub dry_run: bool,
    /// The key added (`add`, `passwd`), or removed (`remove`); on a dry
    /// run, the key that would be removed, and none for a key not made.
    pub key: Option<Id>,
    /// `added`, `removed` or `replaced`.
    pub action: String,
    /// With `passwd`: the key the new one replaced, now removed.
    pub replaced_key: Option<Id>,
}

/// `unlock`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct UnlockOutput {
    pub dry_run: bool,
    /// The locks removed (on a dry run: that would be), each described.
    pub removed: Vec<String>,
    pub removed_count: usize,
    /// Temporary files of interrupted writes removed (on a dry run: that
    /// would be).
    pub temporary_files_removed: u64,
}

/// `repair index`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RepairOutput {
    /// The index was read from the packs and not written.
    pub dry_run: bool,
    /// Packs the new index was built from.
    pub pack_count: usize,
    /// Packs left out because they cannot be read.
    pub skipped: Vec<String>,
}

/// `init`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct InitOutput {
    pub dry_run: bool,
    pub repository: String,
    /// None on a dry run: the id is made with the repository.
    pub repository_id: Option<Id>,
    pub encrypted: bool,
    /// The configuration file written (on a dry run: that would be); none
    /// when one existed.
    pub config_written: Option<String>,
}
