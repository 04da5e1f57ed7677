//! What a snapshot records (R7): the manifest, directory trees and streams.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Id;

/// The tag of the snapshots ripcord takes itself before it changes something
/// (an in-place restore, a migration). `latest` leaves them out, and
/// `forget` keeps them under their own policy.
pub const SAFETY_TAG: &str = "safety";

/// A migration's safety snapshot is also tagged `migrate:<change>`.
pub const MIGRATE_TAG_PREFIX: &str = "migrate:";

/// `snapshots/<id>`: one point-in-time copy of one or more targets.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Snapshot {
    pub time: DateTime<Utc>,
    pub host: String,
    pub user: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tier: Option<String>,
    /// The previous snapshot of the same targets, used for the metadata check.
    #[serde(default)]
    pub parent: Option<Id>,
    pub targets: Vec<TargetSnapshot>,
    pub program_version: String,
    /// The head of the taking catalog's audit chain, so that a catalog
    /// deleted or rewritten as a whole shows against the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSeal>,
    /// A copy made by `ripcord copy`: the id of the snapshot as it was
    /// first taken, in the repository that took it. A later copy finds it
    /// by this id and skips it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<Id>,
}

/// An audit chain's newest entry when a snapshot was taken.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuditSeal {
    /// The host and the catalog file (absolute) whose chain it is.
    pub host: String,
    pub catalog: String,
    /// The newest entry's sequence number (0: the chain was empty) and hash.
    pub seq: u64,
    pub hash: String,
}

impl Snapshot {
    /// Decodes the manifest stored as `file`. Target names are checked as
    /// the configuration checks them: `restore --into` makes folders of
    /// them, so a planted manifest naming `../x` or `/tmp/x` is refused.
    pub fn decode(bytes: &[u8], file: &str) -> crate::Result<Snapshot> {
        let snapshot: Snapshot = serde_json::from_slice(bytes)
            .map_err(|e| crate::Error::corrupt(file, e.to_string()))?;
        for t in &snapshot.targets {
            ripcord_core::names::check_target_name(&t.name).map_err(|e| {
                crate::Error::UnsafeManifest {
                    file: file.to_string(),
                    detail: e.to_string(),
                }
            })?;
        }
        Ok(snapshot)
    }

    pub fn target(&self, name: &str) -> Option<&TargetSnapshot> {
        self.targets.iter().find(|t| t.name == name)
    }
    pub fn target_names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }
    pub fn total_size(&self) -> u64 {
        self.targets.iter().map(|t| t.size).sum()
    }
    /// The id of the snapshot as first taken: `id` itself unless this
    /// one is a copy.
    pub fn original(&self, id: Id) -> Id {
        self.copied_from.unwrap_or(id)
    }
    /// Taken by ripcord itself before an in-place restore or a migration.
    pub fn is_safety(&self) -> bool {
        self.tags.iter().any(|t| t == SAFETY_TAG)
    }
    /// Whether the snapshot carries every tag of `tags`.
    pub fn has_tags<S: AsRef<str>>(&self, tags: &[S]) -> bool {
        tags.iter()
            .all(|want| self.tags.iter().any(|t| t == want.as_ref()))
    }
    /// The change a migration's safety snapshot was taken before.
    pub fn migration_change(&self) -> Option<&str> {
        if !self.is_safety() {
            return None;
        }
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(MIGRATE_TAG_PREFIX))
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TargetSnapshot {
    pub name: String,
    /// Where the target was read from (a path or a URL without its password).
    pub source: String,
    /// Bytes of content (files or database image).
    pub size: u64,
    /// Files, or tables.
    pub items: u64,
    #[serde(default)]
    pub git_commit: Option<String>,
    /// Database targets with ripcord's tracking tables: the last change
    /// recorded as applied when the snapshot was taken (the short form of
    /// [`migration`](Self::migration), which every version reads).
    #[serde(default)]
    pub migration_version: Option<String>,
    /// Database targets with ripcord's tracking tables: the migration state
    /// the snapshot holds, read in the snapshot's own transaction. Absent
    /// for targets without tracking tables and in manifests written before
    /// it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationState>,
    /// Dir targets: how many nodes (of every kind) the whole tree holds.
    /// Walks stop beyond it, so shared subtrees cannot make a tree expand
    /// without bound. Absent in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    #[serde(flatten)]
    pub content: Content,
}

/// Where a database stood in its migrations when it was snapshotted, from
/// ripcord's tracking tables.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct MigrationState {
    /// The last change recorded as applied, in the order they ran; `None`
    /// when none is (the tracking tables exist, every change was reverted).
    pub change: Option<String>,
    /// How many changes were recorded as applied.
    pub applied: u64,
    /// The last phase whose changes were all applied, when the plan could
    /// be read at snapshot time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Changes started and never finished (`dirty`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirty: Vec<String>,
}

impl MigrationState {
    /// Whether two states record the same changes: the same last change,
    /// as many applied, the same dirty ones. The phase only names them.
    pub fn same_changes(&self, other: &MigrationState) -> bool {
        self.change == other.change && self.applied == other.applied && self.dirty == other.dirty
    }
}

impl std::fmt::Display for MigrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.change {
            Some(c) => write!(f, "{c} ({} applied", self.applied)?,
            None => write!(f, "no change applied (0 applied")?,
        }
        if let Some(p) = &self.phase {
            write!(f, ", phase @{p}")?;
        }
        if !self.dirty.is_empty() {
            write!(f, ", dirty: {}", self.dirty.join(", "))?;
        }
        write!(f, ")")
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Content {
    /// A directory tree: the id of its root tree blob.
    Dir { tree: Id },
    /// A SQLite database image taken with the online backup API.
    Sqlite {
        image: Stream,
        tables: Vec<TableStat>,
        /// The database file when it was read, to skip an unchanged one.
        #[serde(default)]
        stamp: Option<FileStamp>,
    },
    /// A PostgreSQL database, or selected tables of one.
    Postgres(Box<PgContent>),
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PgContent {
    pub server_version: String,
    /// `pg_dump --schema-only --format=custom` of what was taken.
    pub schema: Stream,
    pub tables: Vec<PgTable>,
    #[serde(default)]
    pub sequences: Vec<PgSequence>,
    /// Only selected tables were taken.
    #[serde(default)]
    pub partial: bool,
    /// The oldest transaction still running when the snapshot was taken
    /// (`txid_snapshot_xmin`): every row the snapshot lacks was written by
    /// this transaction or a later one, which lets a revert look for rows
    /// written since among few candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xmin: Option<u64>,
    /// `txid_current_snapshot()` of the snapshot (`xmin:xmax:xip,…`): which
    /// transactions it sees. A revert leaves out the captured writes of
    /// those (see docs/migrations.md, change capture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid_snapshot: Option<String>,
    /// Table-level snapshots: the objects that depend on the taken tables
    /// and that a `CASCADE` (or the change itself) can drop with them, which
    /// a revert puts back when they are gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependents: Vec<PgDependent>,
    /// Selected tables left out because they cannot be protected (a foreign
    /// table, no right to read it, row-level security the role cannot
    /// bypass), each as `schema.name: why`; taken only when allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unprotected: Vec<String>,
    /// Which statistics the tables' [`PgTable::stamp`]s count in: the
    /// server's system identifier, the database's oid, the server's start
    /// time and the database's statistics reset time. A later snapshot
    /// reuses a table only under the same epoch (see docs/decisions.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_epoch: Option<String>,
}

/// What a table's statistics said while it held the rows a snapshot took:
/// no write reached it between a settled read before the snapshot and one
/// after. Equal stamps under the same epoch mean equal rows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PgTableStamp {
    /// `pg_class.relfilenode`: a TRUNCATE or a rewrite changes it.
    pub relfilenode: u32,
    /// `pg_stat_all_tables` n_tup_ins, n_tup_upd, n_tup_del.
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
}

/// An object that depends on a table of a table-level snapshot: a view or
/// materialized view reading it (also through other views), a foreign key
/// to or from it, and the constraints, indexes, triggers, rules, policies,
/// grants and comments of it and of those views. Names are quoted and
/// schema-qualified, definitions written with every name qualified.
///
/// Manifests written before the other kinds existed hold only
/// `foreign-key` and `view`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PgDependent {
    /// The taken table it depends on, `schema.name` as in [`PgTable::qualified`].
    pub on: String,
    /// `foreign-key`, `view`, `materialized-view`, `refresh` (the
    /// materialized view held data), `constraint`, `index`, `trigger`,
    /// `rule`, `policy`, `grant` or `comment`.
    pub kind: String,
    /// The relation holding it (the view itself for a view), quoted and
    /// qualified.
    pub relation: String,
    /// Its name on that relation: the constraint, index, trigger, rule or
    /// policy; `PRIVILEGE to ROLE` for a grant (`PRIVILEGE (column) to
    /// ROLE` for a column); empty or `column NAME` for a comment; empty
    /// for a view.
    #[serde(default)]
    pub name: String,
    /// `foreign-key` and `constraint`: `pg_get_constraintdef`; `view` and
    /// `materialized-view`: `pg_get_viewdef`; every other kind: the SQL
    /// that creates it.
    pub definition: String,
    /// Views and materialized views: their owner, given back after they
    /// are created again (a view reads with its owner's rights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Views and materialized views: their `WITH (…)` options.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PgTable {
    pub schema: String,
    pub name: String,
    pub rows: u64,
    /// Order-independent checksum over the rows' binary COPY encoding.
    pub checksum: String,
    /// Bytes of binary COPY data.
    pub size: u64,
    /// Size of the table on the server.
    pub relation_size: u64,
    /// Columns in COPY order (generated columns excluded).
    pub columns: Vec<PgColumn>,
    /// Indexes that no constraint owns, restored with the table.
    #[serde(default)]
    pub indexes: Vec<String>,
    /// Binary COPY data, one stream per block range.
    pub parts: Vec<Stream>,
    /// A partitioned table: it holds no rows itself, its partitions do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partitioned: bool,
    /// The tables it is a partition of or inherits from, `schema.name` as in
    /// [`PgTable::qualified`], in inheritance order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// The statistics stamp under [`PgContent::stats_epoch`], when they
    /// prove the rows did not change while the snapshot was taken; none:
    /// the next snapshot reads the table again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<PgTableStamp>,
    /// Its rows were not read: `parts`, `rows` and `checksum` are the
    /// parent snapshot's, unchanged since.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
}

impl PgTable {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PgColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PgSequence {
    pub schema: String,
    pub name: String,
    /// The table that owns it (`schema.table`), e.g. for a serial column.
    #[serde(default)]
    pub owner: Option<String>,
    pub last_value: i64,
    pub is_called: bool,
}

impl Content {
    pub fn kind(&self) -> &'static str {
        match self {
            Content::Dir { .. } => "dir",
            Content::Sqlite { .. } => "sqlite",
            Content::Postgres(_) => "postgres",
        }
    }
}

/// Size, mtime, ctime and inode (nanosecond times) of a database file and
/// of its write-ahead log: when none changed, neither did the database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub main: [i64; 4],
    pub wal: Option<[i64; 4]>,
}

/// A byte stream stored as chunks.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    pub size: u64,
    /// BLAKE3 of the whole stream (inside the encrypted manifest).
    pub checksum: String,
    pub chunks: Vec<Id>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TableStat {
    pub name: String,
    pub rows: u64,
    /// BLAKE3 over the table's rows in key order.
    pub checksum: String,
    /// The table's `CREATE` statement, to show schema changes in `diff`.
    #[serde(default)]
    pub schema: String,
}

/// One directory: its entries sorted by name. Stored as a tree blob (JSON).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    /// Named pipe: stored as metadata only.
    Fifo,
    /// Unix socket: stored as metadata only (restored as an unbound socket file).
    Socket,
    /// Character device: metadata and `rdev`.
    Chardev,
    /// Block device: metadata and `rdev`.
    Blockdev,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Node {
    /// The entry's name; when it is not valid UTF-8, a lossy form for
    /// display, and the real bytes are in `name_bytes`.
    pub name: String,
    pub kind: NodeKind,
    pub mode: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime: i64,
    /// Status change time and inode, used only to detect unchanged files.
    #[serde(default)]
    pub ctime: i64,
    #[serde(default)]
    pub inode: u64,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// A symlink's target; lossy when it is not valid UTF-8 (see `target_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The name's bytes, hex, when they are not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_bytes: Option<String>,
    /// A symlink target's bytes, hex, when they are not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_bytes: Option<String>,
    /// Device number of a character or block device.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A name or link target as stored: a string, or its bytes when they are
/// not valid UTF-8. Returns the string and the hex bytes (if needed).
pub fn encode_bytes(raw: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(raw) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(raw).into_owned(),
            Some(hex::encode(raw)),
        ),
    }
}

fn decode_bytes<'a>(text: &'a str, hex_bytes: Option<&str>) -> Option<std::borrow::Cow<'a, [u8]>> {
    match hex_bytes {
        None => Some(std::borrow::Cow::Borrowed(text.as_bytes())),
        Some(h) => hex::decode(h).ok().map(std::borrow::Cow::Owned),
    }
}

impl Node {
    /// A node with `name` (raw bytes) and `kind`, everything else empty.
    pub fn new(name: &[u8], kind: NodeKind) -> Node {
        let (name, name_bytes) = encode_bytes(name);
        Node {
            name,
            kind,
            mode: 0,
            mtime: 0,
            ctime: 0,
            inode: 0,
            size: 0,
            content: vec![],
            subtree: None,
            target: None,
            name_bytes,
            target_bytes: None,
            rdev: 0,
        }
    }

    /// The name's bytes; `None` when `name_bytes` is not valid hex.
    pub fn raw_name(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        decode_bytes(&self.name, self.name_bytes.as_deref())
    }

    /// The symlink target's bytes; `None` when there is none or it is not valid hex.
    pub fn raw_target(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        decode_bytes(self.target.as_deref()?, self.target_bytes.as_deref())
    }

    pub fn set_target(&mut self, raw: &[u8]) {
        let (t, b) = encode_bytes(raw);
        self.target = Some(t);
        self.target_bytes = b;
    }
}
