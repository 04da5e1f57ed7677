//! The library's error: what went wrong, its class (which decides the exit
//! code) and a hint on how to fix it. Errors of the crates below keep their
//! own class and hint.

use ripcord_core::config::ConfigError;
use ripcord_core::{Class, Classify};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Arguments or configuration that make no sense together.
    #[error("{message}")]
    Usage { message: String, hint: String },
    /// Acting would be unsafe.
    #[error("{message}")]
    Refused { message: String, hint: String },
    #[error("{message}")]
    Failed { message: String },
    /// The guard could not tell (exit code 4).
    #[error("{message}")]
    Inconclusive { message: String },
    #[error(transparent)]
    Repo(#[from] ripcord_repo::Error),
    #[error(transparent)]
    Targets(#[from] ripcord_targets::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Password(#[from] ripcord_core::password::PasswordError),
    #[error(transparent)]
    Migrate(#[from] ripcord_migrate::Error),
    #[error(transparent)]
    Catalog(#[from] ripcord_catalog::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    /// What was being done when `source` happened.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error::Failed {
            message: message.into(),
        }
    }

    /// The message and every cause below it, joined by ": ".
    pub fn chain(&self) -> String {
        let mut parts = vec![self.to_string()];
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            parts.push(c.to_string());
            cause = c.source();
        }
        parts.join(": ")
    }
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Usage { .. } => Class::Usage,
            Error::Inconclusive { .. } => Class::Inconclusive,
            Error::Refused { .. } => Class::Refused,
            Error::Failed { .. } | Error::Io(_) | Error::Sqlite(_) | Error::Postgres(_) => {
                Class::Failed
            }
            Error::Repo(e) => e.class(),
            Error::Targets(e) => e.class(),
            Error::Config(e) => e.class(),
            Error::Password(e) => e.class(),
            Error::Migrate(e) => e.class(),
            Error::Catalog(e) => e.class(),
            Error::Context { source, .. } => source.class(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. } | Error::Refused { hint, .. } => Some(hint.clone()),
            Error::Inconclusive { .. } => Some(
                "`ripcord guard status` shows the samples; a rule needs `min_samples` in its \
                 window and a number where it reads one"
                    .into(),
            ),
            Error::Failed { .. } | Error::Io(_) | Error::Sqlite(_) | Error::Postgres(_) => None,
            Error::Repo(e) => e.hint(),
            Error::Targets(e) => e.hint(),
            Error::Config(e) => e.hint(),
            Error::Password(e) => e.hint(),
            Error::Migrate(e) => e.hint(),
            Error::Catalog(e) => e.hint(),
            Error::Context { source, .. } => source.hint(),
        }
    }
}

/// Says what was being done when an error happened, as `anyhow::Context`
/// does for applications.
pub trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T>;
    fn with_context<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context.into(),
            source: Box::new(e.into()),
        })
    }

    fn with_context<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context().into(),
            source: Box::new(e.into()),
        })
    }
}
