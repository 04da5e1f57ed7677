use ripcord_core::class::{Class, Classify};

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("catalog {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the catalog's folder {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog {path} has schema version {found}, newer than this ripcord knows ({known})")]
    Newer {
        path: String,
        found: u32,
        known: u32,
    },
    #[error("no run {0} in the catalog")]
    UnknownRun(String),
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Newer { .. } => Class::Refused,
            Error::UnknownRun(_) => Class::Usage,
            _ => Class::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Newer { .. } => {
                Some("a newer ripcord wrote it: run that version, or upgrade this one".into())
            }
            Error::UnknownRun(_) => Some("`ripcord runs` lists the runs".into()),
            _ => None,
        }
    }
}
