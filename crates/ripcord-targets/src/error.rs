use std::path::PathBuf;

use ripcord_core::{Class, Classify};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("target path {path} does not exist")]
    Missing { path: PathBuf },
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
    #[error("destination {path} exists and is not empty")]
    NotEmpty { path: PathBuf },
    #[error("restored content does not match the snapshot: {detail}")]
    Mismatch { detail: String },
    #[error("invalid exclude pattern {pattern:?}: {detail}")]
    Pattern { pattern: String, detail: String },
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

impl Error {
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
            | Error::WrongKind { .. }
            | Error::NotSqlite { .. }
            | Error::Pattern { .. }
            | Error::NotEmpty { .. } => Class::Usage,
            Error::Unsafe { .. } => Class::Refused,
            Error::Repo(e) => e.class(),
            Error::Sqlite { .. } | Error::Mismatch { .. } | Error::Io { .. } => Class::Failed,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            Error::Missing { .. } => Some("check the target's path in ripcord.toml".into()),
            Error::WrongKind { .. } => Some("check the target's kind and path in ripcord.toml".into()),
            Error::NotEmpty { .. } => Some("restore into a new or empty folder".into()),
            Error::Unsafe { .. } => Some("the snapshot contains a path that would escape the destination; nothing outside it was written".into()),
            Error::Repo(e) => e.hint(),
            _ => None,
        }
    }
}
