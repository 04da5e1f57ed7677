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
    /// The PostgreSQL catalog could not be reached or logged in to.
    #[error("cannot connect to the catalog {url}: {message}")]
    Connect { url: String, message: String },
    /// A statement on the PostgreSQL catalog failed.
    #[error("catalog {url}: {message}")]
    Postgres { url: String, message: String },
    #[error("catalog {path} has schema version {found}, newer than this ripcord knows ({known})")]
    Newer {
        path: String,
        found: u32,
        known: u32,
    },
    #[error("no run {0} in the catalog")]
    UnknownRun(String),
    /// An active token has this name already.
    #[error("a token named {0:?} exists")]
    TokenExists(String),
}

impl Error {
    /// A PostgreSQL error on the catalog at `url` (redacted), with the
    /// server's own message when it gave one.
    pub(crate) fn postgres(url: &str, e: &postgres::Error) -> Error {
        Error::Postgres {
            url: url.to_string(),
            message: pg_text(e),
        }
    }
}

/// What went wrong, in the server's words when it answered
/// (postgres::Error's Display may only say "db error").
pub(crate) fn pg_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            text
        }
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let more = s.to_string();
                if !text.contains(&more) {
                    text.push_str(&format!(": {more}"));
                }
                source = s.source();
            }
            text
        }
    }
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Newer { .. } => Class::Refused,
            Error::UnknownRun(_) | Error::Connect { .. } | Error::TokenExists(_) => Class::Usage,
            _ => Class::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Newer { .. } => {
                Some("a newer ripcord wrote it: run that version, or upgrade this one".into())
            }
            Error::UnknownRun(_) => Some("`ripcord runs` lists the runs".into()),
            Error::TokenExists(name) => Some(format!(
                "revoke it first (`ripcord token revoke {name}`) or pick another name"
            )),
            Error::Connect { .. } => Some(
                "check [catalog] url (or RIPCORD_CATALOG__URL): the server must be running and \
                 reachable from this host, and the user allowed to log in to that database"
                    .into(),
            ),
            _ => None,
        }
    }
}
