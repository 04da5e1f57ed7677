//! Repository errors: each says what happened, carries the file or id
//! involved, and tells the user how to proceed.

use ripcord_core::{Class, Classify};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no repository at {location}")]
    NotARepository { location: String },
    #[error("a repository already exists at {location}")]
    AlreadyExists { location: String },
    #[error("wrong passphrase: no key in {location} opens with it")]
    WrongPassword { location: String },
    #[error("no key found in {location}/keys: the repository is encrypted but has no key file")]
    NoKey { location: String },
    /// The repository's files contradict each other in a way that would
    /// weaken it (a config swapped for an unencrypted one): nothing is run.
    #[error("refusing to use the repository at {location}: {detail}")]
    Untrusted {
        location: String,
        detail: String,
        hint: String,
    },
    #[error("the repository at {location} is encrypted and no passphrase was given")]
    PasswordRequired { location: String },
    #[error("repository file {file} is damaged: {detail}")]
    Corrupt { file: String, detail: String },
    #[error("no snapshot matches {id:?}")]
    SnapshotNotFound { id: String },
    #[error("{id:?} matches several snapshots: {candidates}")]
    AmbiguousSnapshot { id: String, candidates: String },
    #[error("the repository is locked by {holder}")]
    Locked { holder: String, stale: bool },
    #[error("snapshot {snapshot} is damaged: {problems}")]
    Damaged { snapshot: String, problems: String },
    #[error("snapshot file {file} is refused: {detail}")]
    UnsafeManifest { file: String, detail: String },
    #[error("{0}")]
    Key(String),
    #[error("{0}")]
    Invalid(String),
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
    pub fn corrupt(file: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            file: file.into(),
            detail: detail.into(),
        }
    }
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::NotARepository { .. }
            | Error::AlreadyExists { .. }
            | Error::WrongPassword { .. }
            | Error::PasswordRequired { .. }
            | Error::SnapshotNotFound { .. }
            | Error::AmbiguousSnapshot { .. }
            | Error::Key(_)
            | Error::Invalid(_) => Class::Usage,
            Error::Locked { .. }
            | Error::Damaged { .. }
            | Error::UnsafeManifest { .. }
            | Error::Untrusted { .. } => Class::Refused,
            Error::Io { source, .. }
                if crate::s3::BackendError::of(source).is_some_and(|b| b.is_setup()) =>
            {
                Class::Usage
            }
            Error::Corrupt { .. } | Error::NoKey { .. } | Error::Io { .. } => Class::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        let text = match self {
            Error::Io { source, .. } if crate::s3::BackendError::of(source).is_some() => {
                crate::s3::BackendError::of(source)?.hint()
            }
            Error::NotARepository { .. } => {
                "check [repository] url in ripcord.toml (or RIPCORD_REPOSITORY), or create one with `ripcord init`"
            }
            Error::AlreadyExists { .. } => "use the existing repository, or choose another url",
            Error::WrongPassword { .. } => {
                "check RIPCORD_PASSWORD or password_command; `ripcord key list` shows the keys once you are in"
            }
            Error::PasswordRequired { .. } => {
                "set RIPCORD_PASSWORD or [repository] password_command"
            }
            Error::NoKey { .. } => {
                "the key files were deleted: restore keys/ from a copy of the repository; without a key its data cannot be read"
            }
            Error::Untrusted { hint, .. } => return Some(hint.clone()),
            Error::Corrupt { file, .. } if file.starts_with("keys/") => {
                "a key file was damaged or planted and was not used; open with another passphrase and remove it with `ripcord key remove ID`, or restore keys/ from a copy"
            }
            Error::Corrupt { file, .. } if file.starts_with("snapshots/") => {
                return Some(format!(
                    "remove the damaged snapshot with `ripcord forget {}`; `ripcord verify` lists every damaged file",
                    &file["snapshots/".len()..].chars().take(8).collect::<String>()
                ))
            }
            Error::Corrupt { file, .. } if file.starts_with("index/") => {
                "run `ripcord verify` to see what is affected; `ripcord repair index` rebuilds the index from the packs"
            }
            Error::Corrupt { .. } => {
                "run `ripcord verify --deep` to see which snapshots and files are affected"
            }
            Error::SnapshotNotFound { id } if id == "latest" => {
                "`latest` leaves out safety snapshots; `latest:safety` is the newest of those, \
                 and `ripcord snapshots` lists them all"
            }
            Error::SnapshotNotFound { id } if id.starts_with("latest:") => {
                "`latest:TAG` is the newest snapshot with that tag; `ripcord snapshots --tag TAG` lists them"
            }
            Error::SnapshotNotFound { .. } => "`ripcord snapshots` lists the snapshot ids",
            Error::AmbiguousSnapshot { .. } => "give more characters of the id",
            Error::Locked { stale: true, .. } => {
                "the holder looks dead; if no ripcord process is running there, remove the lock with `ripcord unlock`"
            }
            Error::Locked { stale: false, .. } => {
                "wait for the other ripcord process to finish, then try again"
            }
            Error::Damaged { .. } => {
                "restore an earlier snapshot, or pass --partial to restore what is intact"
            }
            Error::UnsafeManifest { file, .. } => {
                return Some(format!(
                    "ripcord never writes such a name: the file was altered; nothing was changed. `ripcord forget {}` removes it",
                    file.trim_start_matches("snapshots/")
                ))
            }
            Error::Key(_) | Error::Invalid(_) | Error::Io { .. } => return None,
        };
        Some(text.to_string())
    }
}
