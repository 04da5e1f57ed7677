//! Errors from reading and ordering a plan and from the tracking tables: each
//! names the file, change or database involved and says how to fix it.

use std::path::PathBuf;

use ripcord_core::{Class, Classify};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path} is not a folder")]
    NotADirectory { path: PathBuf },
    #[error("no migrations found in {dir}")]
    NoMigrations {
        dir: PathBuf,
        /// A `migrations` folder inside `dir`, which is probably what was meant.
        inner: Option<PathBuf>,
    },
    #[error("{dir} holds migrations in more than one format: {found}")]
    Ambiguous { dir: PathBuf, found: String },
    #[error("change {change}: {path} does not exist")]
    MissingScript {
        change: String,
        path: PathBuf,
        hint: String,
    },
    #[error("{file} names change {change}, which is not in the plan")]
    UnknownChange {
        change: String,
        file: PathBuf,
        near: Vec<String>,
    },
    #[error("{file}:{line}: {detail}")]
    Malformed {
        file: PathBuf,
        line: usize,
        detail: String,
        hint: String,
    },
    #[error("{path}: {detail}")]
    Misnamed {
        path: PathBuf,
        detail: String,
        hint: String,
    },
    #[error("change {change} is defined twice: {first} and {second}")]
    Duplicate {
        change: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("version {version} is used twice: {first} and {second}")]
    DuplicateVersion {
        version: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{file}: phase {phase} is declared twice")]
    DuplicatePhase { phase: String, file: PathBuf },
    #[error("{file}: change {change} is in two phases, {first} and {second}")]
    InTwoPhases {
        change: String,
        first: String,
        second: String,
        file: PathBuf,
    },
    #[error("change {change} requires {dependency}, which is not in the plan")]
    UnknownDependency {
        change: String,
        dependency: String,
        near: Vec<String>,
    },
    #[error("changes depend on each other in a cycle: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
    #[error("no change, phase or version matches {target:?}")]
    UnknownTarget {
        target: String,
        near: Vec<String>,
        /// Whether the plan's format numbers its changes, so a version would do.
        versions: bool,
    },
    #[error("{target:?} matches several changes: {}", matches.join(", "))]
    AmbiguousTarget {
        target: String,
        matches: Vec<String>,
    },
    #[error("unknown migration format {name:?}")]
    UnknownFormat { name: String },
    #[error("phase {phase} has no changes")]
    EmptyPhase { phase: String },
    #[error("{path} is not valid UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("the migration lock is held by {holder}")]
    Locked {
        /// Who holds it, as the database reports it.
        holder: String,
    },
    /// A migration whose process has ended still runs statements on the
    /// server.
    #[error(
        "an earlier migration, whose process has ended, still runs on the server: {}",
        sessions.join("; ")
    )]
    StillRunning {
        sessions: Vec<String>,
        pids: Vec<i32>,
    },
    #[error("change {change} has no row in the tracking table")]
    NotRecorded { change: String },
    /// A pre-flight check failed; nothing was changed.
    #[error("{message}")]
    Refused { message: String, hint: String },
    /// The configuration or a passphrase is wrong (a missing repository, a
    /// wrong passphrase): the user fixes it, as for any other command.
    /// Nothing was changed.
    #[error("{message}")]
    Config { message: String, hint: String },
    #[error("change {change}: {file}:{line}: syntax error: {detail}")]
    SyntaxError {
        change: String,
        file: PathBuf,
        line: usize,
        detail: String,
    },
    /// A change or its verify failed and was undone (or could not be).
    #[error("change {change} failed ({step}): {detail}; {undone}")]
    ChangeFailed {
        change: String,
        step: String,
        detail: String,
        /// What was undone, and where the database stands.
        undone: String,
        hint: String,
    },
    #[error("reverting change {change}: {detail}")]
    Revert { change: String, detail: String },
    #[error("change {change} cannot be reverted: {reason}")]
    Irreversible { change: String, reason: String },
    /// The repository side of a safety snapshot.
    #[error("{message}")]
    SafetyNet {
        message: String,
        hint: Option<String>,
    },
    #[error("{context}: {source}")]
    Sqlite {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{context}: {}", postgres_text(source))]
    Postgres {
        context: String,
        #[source]
        source: postgres::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// A PostgreSQL error with the server's message, which `Display` on
/// [`postgres::Error`] leaves out.
fn postgres_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn sqlite(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
        let context = context.into();
        move |source| Error::Sqlite { context, source }
    }

    pub(crate) fn postgres(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Postgres { context, source }
    }

    pub(crate) fn malformed(
        file: impl Into<PathBuf>,
        line: usize,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Error {
        Error::Malformed {
            file: file.into(),
            line,
            detail: detail.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn misnamed(
        path: impl Into<PathBuf>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Error {
        Error::Misnamed {
            path: path.into(),
            detail: detail.into(),
            hint: hint.into(),
        }
    }
}

fn did_you_mean(near: &[String]) -> Option<String> {
    (!near.is_empty()).then(|| format!("did you mean {}?", near.join(", ")))
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Io { .. } | Error::Sqlite { .. } | Error::Postgres { .. } => Class::Failed,
            Error::Locked { .. }
            | Error::StillRunning { .. }
            | Error::Refused { .. }
            | Error::Irreversible { .. } => Class::Refused,
            Error::NotRecorded { .. }
            | Error::ChangeFailed { .. }
            | Error::Revert { .. }
            | Error::SafetyNet { .. } => Class::Failed,
            // Everything else is about the plan's files or the name given,
            // which the user fixes.
            _ => Class::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::NotADirectory { .. } => {
                Some("point at the folder that holds the migration files".into())
            }
            Error::NoMigrations {
                inner: Some(inner), ..
            } => Some(format!("did you mean {}?", inner.display())),
            Error::NoMigrations { .. } => Some(
                "recognised layouts: NNNN_name/up.sql folders, sqitch.plan, Flyway V1__name.sql, \
                 golang-migrate 1_name.up.sql, dbmate files with -- migrate:up, \
                 YYYYMMDDHHMM_name.sql, Liquibase formatted SQL (--liquibase formatted sql)"
                    .into(),
            ),
            Error::Ambiguous { .. } => {
                Some("keep one migration format per folder, or name the format explicitly".into())
            }
            Error::MissingScript { hint, .. }
            | Error::Malformed { hint, .. }
            | Error::Misnamed { hint, .. } => Some(hint.clone()),
            Error::UnknownChange { near, file, .. } => did_you_mean(near).or_else(|| {
                Some(format!(
                    "name the change by its folder name, or remove it from {}",
                    file.display()
                ))
            }),
            Error::Duplicate { .. } => {
                Some("rename one of them; change names must be unique in a plan".into())
            }
            Error::DuplicateVersion { .. } => {
                Some("renumber one of them; each version must be unique".into())
            }
            Error::DuplicatePhase { .. } => Some("give each phase its own name".into()),
            Error::InTwoPhases { .. } => Some("a change belongs to at most one phase".into()),
            Error::UnknownDependency { near, .. } => did_you_mean(near)
                .or_else(|| Some("remove the requirement or add the change it names".into())),
            Error::Cycle { .. } => {
                Some("remove one of the requirements so the changes can be put in order".into())
            }
            Error::UnknownTarget { near, versions, .. } => did_you_mean(near).or_else(|| {
                Some(if *versions {
                    "name a change, a version, or a phase as @phase".into()
                } else {
                    "name a change, or a phase as @phase".into()
                })
            }),
            Error::AmbiguousTarget { .. } => Some("name the change itself".into()),
            Error::UnknownFormat { .. } => Some(format!(
                "use one of: {}",
                crate::Format::ALL.map(|f| f.name()).join(", ")
            )),
            Error::EmptyPhase { .. } => Some("name one of the changes instead".into()),
            Error::NotUtf8 { .. } => Some("save the file as UTF-8".into()),
            Error::Locked { .. } => Some(
                "wait for the other migration to finish; if its process is gone, the lock \
                 goes with it"
                    .into(),
            ),
            Error::StillRunning { pids, .. } => Some(format!(
                "nothing was run; wait for it to end and run again (RIPCORD_MIGRATE_LOCK_WAIT=10m \
                 waits longer). If it must not finish, end it yourself: SELECT \
                 pg_terminate_backend({})",
                pids.first().copied().unwrap_or_default()
            )),
            Error::NotRecorded { .. } => {
                Some("run `status` to see what the database has recorded".into())
            }
            Error::Refused { hint, .. }
            | Error::Config { hint, .. }
            | Error::ChangeFailed { hint, .. } => Some(hint.clone()),
            Error::SyntaxError { .. } => Some("fix the statement; nothing has been run".into()),
            Error::Revert { .. } => Some(
                "the revert ran in one transaction where it could and was rolled back; \
                 run `ripcord migrate status` to see where the database stands"
                    .into(),
            ),
            Error::Irreversible { .. } => Some(
                "add a down script for it, or restore a snapshot taken before it with \
                 `ripcord restore`"
                    .into(),
            ),
            Error::SafetyNet { hint, .. } => hint.clone(),
            Error::Sqlite {
                source: rusqlite::Error::SqliteFailure(f, _),
                ..
            } if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
            {
                Some(
                    "another process held a lock on the database for longer than the wait \
                     allows; this step was not done. Try again when it has finished \
                     (`fuser FILE` names the process)"
                        .into(),
                )
            }
            Error::Io { .. } | Error::Sqlite { .. } | Error::Postgres { .. } => None,
        }
    }
}
