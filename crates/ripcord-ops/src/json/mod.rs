//! The documents the commands print with `--json`, one type per command,
//! and their JSON Schemas, derived from the same types. Front ends (the
//! command line, the HTTP server) fill them in and print them; they do not
//! shape JSON of their own. docs/json.md describes the vocabulary: one name
//! for one thing (`target`, `snapshot`, `change`, `bytes`, `files`, `rows`)
//! in every document, timestamps in RFC 3339 UTC.

mod migrate;
mod repo;

pub use migrate::*;
pub use repo::*;

use schemars::JsonSchema;
use serde::Serialize;

/// A target named in a list of targets.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TargetName {
    pub target: String,
}

/// Serializes target names as `[{"target": NAME}, ...]`: in every
/// document `targets` is a list of objects that name their `target`.
pub fn target_list<S: serde::Serializer>(names: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(names.iter().map(|n| TargetName { target: n.clone() }))
}

/// What an entry of a target is, in `ls` and `diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Chardev,
    Blockdev,
    /// A table of a database target.
    Table,
}

impl EntryKind {
    /// The kind of a node of a dir target's tree.
    pub fn of(kind: ripcord_repo::manifest::NodeKind) -> EntryKind {
        use ripcord_repo::manifest::NodeKind as N;
        match kind {
            N::File => EntryKind::File,
            N::Dir => EntryKind::Dir,
            N::Symlink => EntryKind::Symlink,
            N::Fifo => EntryKind::Fifo,
            N::Socket => EntryKind::Socket,
            N::Chardev => EntryKind::Chardev,
            N::Blockdev => EntryKind::Blockdev,
        }
    }

    /// Its name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
            EntryKind::Chardev => "chardev",
            EntryKind::Blockdev => "blockdev",
            EntryKind::Table => "table",
        }
    }
}

/// What every command prints on standard error when it fails under
/// `--json`; its exit code is `exit_code`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ErrorOutput {
    /// What went wrong.
    pub error: String,
    /// The errors that led to it, outermost first.
    pub causes: Vec<String>,
    /// How to fix it, when ripcord knows.
    pub hint: Option<String>,
    /// 1 failed, 2 usage or configuration error, 3 refused for safety.
    pub exit_code: i32,
}

/// The schema of a document as serialized: a field skipped when empty is
/// not required.
pub fn serialized<T: schemars::JsonSchema>() -> schemars::Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
}

/// The schema of each command's document, by the command's words
/// (`snapshot`, `migrate up`, ...); `error` is the shape of every failure.
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    macro_rules! s {
        ($t:ty) => {
            serialized::<$t>()
        };
    }
    vec![
        ("error", s!(ErrorOutput)),
        ("init", s!(InitOutput)),
        ("check", s!(crate::check::CheckReport)),
        ("drill", s!(crate::drill::DrillReport)),
        ("snapshot", s!(SnapshotOutput)),
        ("snapshots", s!(Vec<SnapshotView>)),
        ("show", s!(ShowOutput)),
        ("diff", s!(crate::diff::DiffReport)),
        ("restore", s!(crate::restore::RestoreResult)),
        ("ls", s!(crate::ls::Listing)),
        ("verify", s!(ripcord_repo::verify::VerifyReport)),
        ("forget", s!(ForgetOutput)),
        ("prune", s!(ripcord_repo::prune::PruneReport)),
        ("copy", s!(crate::copy::CopyReport)),
        ("schedule run", s!(crate::schedule::ScheduleReport)),
        (
            "schedule install",
            s!(crate::schedule::units::InstallOutput),
        ),
        ("key add", s!(KeyOutput)),
        ("key list", s!(Vec<KeyEntry>)),
        ("key remove", s!(KeyOutput)),
        ("key passwd", s!(KeyOutput)),
        ("token add", s!(crate::tokens::NewTokenReport)),
        ("token list", s!(Vec<crate::tokens::TokenRecord>)),
        ("token revoke", s!(crate::tokens::TokenRecord)),
        ("unlock", s!(UnlockOutput)),
        ("repair index", s!(RepairOutput)),
        ("migrate plan", s!(PlanReport)),
        ("migrate status", s!(StatusReport)),
        ("migrate lint", s!(LintReport)),
        ("migrate up", s!(UpOutput)),
        ("migrate down", s!(DownOutput)),
        ("migrate rehearse", s!(crate::rehearse::RehearseReport)),
        ("migrate verify", s!(MigrateVerifyOutput)),
        ("migrate adopt", s!(AdoptOutput)),
        ("rollback", s!(DownOutput)),
        ("recover", s!(crate::recover::RecoverReport)),
        ("resume", s!(crate::recover::RecoverReport)),
        ("report", s!(crate::incident::IncidentReport)),
        ("runs", s!(Vec<ripcord_catalog::runs::Run>)),
        ("status", s!(crate::recover::StatusReport)),
        ("ack", s!(AckOutput)),
        ("audit", s!(AuditOutput)),
    ]
}

/// The schema of one command's document.
pub fn schema(command: &str) -> Option<schemars::Schema> {
    schemas()
        .into_iter()
        .find(|(c, _)| *c == command)
        .map(|(_, s)| s)
}

/// `ripcord ack`.
#[derive(Serialize, JsonSchema)]
pub struct AckOutput {
    /// Whether ripcord was in safe mode (and has now left it).
    pub left_safe_mode: bool,
    /// The failed run that put it there.
    pub run: Option<String>,
    /// When safe mode began, RFC 3339 UTC.
    pub since: Option<String>,
}

/// `ripcord audit`: the entries, or with `--verify` the chain's verdict.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
pub enum AuditOutput {
    Entries(Vec<ripcord_catalog::audit::AuditEntry>),
    Verdict(crate::audit::AuditCheck),
}
