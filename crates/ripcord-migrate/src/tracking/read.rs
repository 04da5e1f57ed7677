//! What a database has recorded, read from outside a migration run: for
//! `migrate status` and `plan`, and for `forget`, which must not remove a
//! safety snapshot that an applied change needs to be rolled back. Never
//! creates or changes anything, and takes no lock.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ripcord_core::config::TargetConfig;

use super::{AppliedChange, PostgresTracker, SqliteTracker, Tracker};
use crate::{Error, Result};

/// How long to wait for a PostgreSQL server that does not answer, unless
/// the URL says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `target` has recorded: `None` when it has no tracking tables
/// (nothing has run yet) or is not a database. A SQLite file that does not
/// exist has recorded nothing.
pub fn recorded(target: &TargetConfig) -> Result<Option<Vec<AppliedChange>>> {
    match target {
        TargetConfig::Sqlite { path, .. } => {
            if !path.exists() {
                return Ok(None);
            }
            if !has_sqlite_tracking(path)? {
                return Ok(None);
            }
            SqliteTracker::open(path)?.applied().map(Some)
        }
        TargetConfig::Postgres { url, .. } => {
            let mut config = postgres::Config::from_str(url)
                .map_err(Error::postgres("read the connection URL"))?;
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(CONNECT_TIMEOUT);
            }
            let mut tracker = PostgresTracker::with_config(config)?;
            match tracker.applied() {
                Ok(rows) => Ok(Some(rows)),
                // undefined_table, invalid_schema_name: nothing recorded yet.
                Err(Error::Postgres { source, .. })
                    if source
                        .as_db_error()
                        .is_some_and(|db| matches!(db.code().code(), "42P01" | "3F000")) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        }
        TargetConfig::Dir { .. } => Ok(None),
    }
}

fn has_sqlite_tracking(path: &Path) -> Result<bool> {
    let context = || format!("read {}", path.display());
    // Read-write with query_only: a read-only connection to a WAL database
    // leaves its `-wal` and `-shm` files behind.
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(Error::sqlite(context()))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(Error::sqlite(context()))?;
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'ripcord_changes'",
            [],
            |r| r.get(0),
        )
        .map_err(Error::sqlite(context()))?;
    Ok(n > 0)
}

/// A safety snapshot that a recorded change points at: rolling the change
/// back puts its data back from that snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinned {
    pub change: String,
    /// The snapshot id as recorded.
    pub snapshot: String,
}

/// The safety snapshots the changes recorded in `target` need, applied and
/// dirty alike (a dirty change is reverted from its snapshot). Unlike
/// [`recorded`], a SQLite file that is missing is an error: it may be a
/// volume that is not mounted, and answering "nothing is pinned" would let
/// `forget` remove what that database still needs.
pub fn pinned(target: &TargetConfig) -> Result<Vec<Pinned>> {
    if let TargetConfig::Sqlite { path, .. } = target {
        if !path.exists() {
            return Err(Error::io(
                format!("read the migration history in {}", path.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
    }
    Ok(recorded(target)?
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| {
            Some(Pinned {
                snapshot: a.safety_snapshot?,
                change: a.name,
            })
        })
        .collect())
}
