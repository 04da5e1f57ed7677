use std::path::PathBuf;

use ripcord_core::{Class, Classify};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("target path {path} does not exist")]
    Missing { path: PathBuf },
    #[error("SQLite database {path} does not exist")]
    MissingDatabase { path: PathBuf },
    #[error("SQLite database {path} stayed locked by another process for {seconds}s: {doing}")]
    SqliteBusy {
        path: PathBuf,
        seconds: u64,
        doing: &'static str,
    },
    #[error("{path} is not a {expected}")]
    WrongKind {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{path} is not a usable SQLite database: {detail}")]
    NotSqlite { path: PathBuf, detail: String },
    #[error("SQLite error on {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("refusing to restore {entry:?}: {why}")]
    Unsafe { entry: String, why: String },
    #[error("cannot restore {path}: {detail}")]
    Unrestorable { path: String, detail: String },
    #[error("refusing to restore in place: {detail}")]
    InPlaceConflict { detail: String, hint: String },
    #[error("the snapshot's copy of {path} is damaged: {detail}")]
    DamagedFile { path: String, detail: String },
    #[error("destination {path} exists and is not empty")]
    NotEmpty { path: PathBuf },
    #[error("restored content does not match the snapshot: {detail}")]
    Mismatch { detail: String },
    /// Putting tables back would leave rows whose foreign key points at
    /// nothing; the revert was rolled back.
    #[error("putting the tables back would break foreign keys: {detail}")]
    ForeignKeys { detail: String },
    #[error("invalid exclude pattern {pattern:?}: {detail}")]
    Pattern { pattern: String, detail: String },
    #[error("{message}")]
    Tool { message: String, hint: String },
    #[error("{what} failed ({status}): {stderr}")]
    ToolFailed {
        what: String,
        status: String,
        stderr: String,
    },
    #[error("invalid PostgreSQL URL {url}: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("PostgreSQL at {target} refused the credentials: {detail}")]
    PgAuth { target: String, detail: String },
    #[error("database at {target} does not exist")]
    PgMissingDatabase { target: String },
    #[error("cannot reach PostgreSQL at {target}: {detail}")]
    PgUnreachable { target: String, detail: String },
    #[error("PostgreSQL error ({context}): {detail}")]
    Pg { context: String, detail: String },
    #[error("{what}, which depended on {on} before the change, cannot be created again: {detail}")]
    DependentLost {
        what: String,
        on: String,
        detail: String,
    },
    /// A path, pattern or table the snapshot does not hold.
    #[error("{message}")]
    NotInSnapshot { message: String, hint: String },
    #[error("table {name} does not exist in {target}")]
    UnknownTable { name: String, target: String },
    /// Selected tables no snapshot can hold in full: (`schema.name`, why, fix).
    #[error("cannot protect {} of {target}: {}", plural(tables.len()), tables.iter().map(|(t, why, _)| format!("{t} ({why})")).collect::<Vec<_>>().join("; "))]
    Unprotected {
        target: String,
        tables: Vec<(String, String, String)>,
    },
    #[error("database {target} is not empty ({tables} tables)")]
    NotEmptyDatabase { target: String, tables: i64 },
    #[error(transparent)]
    Repo(#[from] ripcord_repo::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn plural(n: usize) -> String {
    if n == 1 {
        "1 table".into()
    } else {
        format!("{n} tables")
    }
}

impl Error {
    /// Damage found while restoring `path` refuses the restore; other errors pass.
    pub fn damaged_at(self, path: &str) -> Error {
        match self {
            Error::Repo(e @ ripcord_repo::Error::Corrupt { .. }) => Error::DamagedFile {
                path: path.to_string(),
                detail: e.to_string(),
            },
            other => other,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Missing { .. }
            | Error::MissingDatabase { .. }
            | Error::WrongKind { .. }
            | Error::NotSqlite { .. }
            | Error::Pattern { .. }
            | Error::NotEmpty { .. } => Class::Usage,
            Error::Unsafe { .. }
            | Error::Unprotected { .. }
            | Error::ForeignKeys { .. }
            | Error::NotEmptyDatabase { .. }
            | Error::DamagedFile { .. }
            | Error::Unrestorable { .. }
            | Error::InPlaceConflict { .. } => Class::Refused,
            Error::Tool { .. }
            | Error::BadUrl { .. }
            | Error::PgAuth { .. }
            | Error::PgMissingDatabase { .. }
            | Error::UnknownTable { .. }
            | Error::NotInSnapshot { .. } => Class::Usage,
            Error::ToolFailed { .. }
            | Error::PgUnreachable { .. }
            | Error::Pg { .. }
            | Error::DependentLost { .. } => Class::Failed,
            Error::Repo(e) => e.class(),
            Error::Sqlite { .. }
            | Error::SqliteBusy { .. }
            | Error::Mismatch { .. }
            | Error::Io { .. } => Class::Failed,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            Error::Missing { .. } => Some("check the target's path in ripcord.toml".into()),
            Error::MissingDatabase { .. } => Some("check the target's path in ripcord.toml; nothing was created. To start a new database there with `migrate up`, set `create = true` in the target's section".into()),
            Error::SqliteBusy { .. } => Some("another process holds a long transaction on the database, and the database was not changed. Try again when it has finished (`fuser FILE` names the process), or wait longer with RIPCORD_SQLITE_LOCK_TIMEOUT=5m".into()),
            Error::WrongKind { .. } => Some("check the target's kind and path in ripcord.toml".into()),
            Error::NotEmpty { .. } => Some("restore into a new or empty folder".into()),
            Error::DamagedFile { .. } => Some(
                "nothing was changed; `ripcord verify --deep` lists the damage; restore an earlier snapshot, or pass --partial to restore what is intact".into(),
            ),
            Error::Unsafe { .. } => Some("the snapshot contains a path that would escape the destination; nothing outside it was written".into()),
            Error::Unrestorable { .. } => Some("nothing was changed; device nodes can only be created by root: run the restore as root, or restore elsewhere with --into and leave the devices out".into()),
            Error::InPlaceConflict { hint, .. } => Some(hint.clone()),
            Error::ForeignKeys { .. } => Some("nothing was changed: the revert was rolled back. Delete or repoint the rows named, or revert with a policy that keeps the rows they point at".into()),
            Error::Repo(e) => e.hint(),
            Error::Tool { hint, .. } | Error::NotInSnapshot { hint, .. } => Some(hint.clone()),
            Error::BadUrl { .. } => Some("write it like postgres://user:password@host:5432/dbname".into()),
            Error::PgAuth { .. } => Some("check the user and password in the target's url".into()),
            Error::PgMissingDatabase { .. } => Some("check the database name, or pass --create to make a new one".into()),
            Error::PgUnreachable { .. } => Some("is the server running, and are host and port right? This is worth retrying".into()),
            Error::UnknownTable { .. } => Some("name tables as table or schema.table; `\\dt` in psql lists them".into()),
            Error::Unprotected { tables, .. } => {
                let mut fixes: Vec<&str> = Vec::new();
                for (_, _, fix) in tables {
                    if !fixes.contains(&fix.as_str()) {
                        fixes.push(fix);
                    }
                }
                Some(format!("nothing was changed; {}", fixes.join("; ")))
            }
            Error::DependentLost { .. } => Some("nothing was reverted; create what the error says is missing (or drop what is in the way) and run down again".into()),
            Error::NotEmptyDatabase { .. } => Some("restore into an empty or new database (--create), or pass --clean to replace what is there".into()),
            _ => None,
        }
    }
}
