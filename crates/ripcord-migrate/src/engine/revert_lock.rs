//! The locks of a revert on PostgreSQL, taken first and waiting at most
//! `lock_timeout`. A revert queued for its `ACCESS EXCLUSIVE` lock behind a
//! long transaction would wait for as long as that lasts, and every writer
//! of the table would queue behind the revert: an outage. (On SQLite the
//! revert's `BEGIN IMMEDIATE` waits at most `lock_timeout` already.)

use std::time::Duration;

use crate::analyze::TableName;
use crate::{Error, Result};

use super::db::{quote, Conn, Database};

/// Locks those of `tables` that are tables now in `ACCESS EXCLUSIVE` mode, in the open
/// transaction, waiting at most `timeout` for each; when that expires the
/// error is a refusal (exit code 3), and the caller rolls back.
pub(crate) fn lock(db: &mut dyn Database, tables: &[&TableName], timeout: Duration) -> Result<()> {
    let Conn::Postgres(client) = db.conn() else {
        return Ok(());
    };
    if tables.is_empty() {
        return Ok(());
    }
    let before: String = client
        .query_one("SELECT pg_catalog.current_setting('lock_timeout')", &[])
        .map_err(Error::postgres("read lock_timeout"))?
        .get(0);
    let set = |client: &mut postgres::Client, value: &str| {
        client
            .execute(
                "SELECT pg_catalog.set_config('lock_timeout', $1, true)",
                &[&value],
            )
            .map_err(Error::postgres("set lock_timeout"))
    };
    set(client, &format!("{}ms", timeout.as_millis().max(1)))?;
    for table in tables {
        let quoted = quote(table);
        // Tables only: a foreign table cannot be locked (nor is it put
        // back), and a name may be gone or something else by now.
        let is_table: bool = client
            .query_one(
                "SELECT coalesce((SELECT relkind IN ('r', 'p') FROM pg_catalog.pg_class
                                  WHERE oid = to_regclass($1)), false)",
                &[&quoted],
            )
            .map_err(Error::postgres(format!("look for table {table}")))?
            .get(0);
        if !is_table {
            continue;
        }
        client
            .batch_execute(&format!("LOCK TABLE {quoted} IN ACCESS EXCLUSIVE MODE"))
            .map_err(|e| {
                if e.as_db_error().is_some_and(|d| d.code().code() == "55P03") {
                    Error::Refused {
                        message: format!(
                            "could not lock table {quoted} within {} ms to revert it: another \
                             session holds a lock on it; nothing was reverted",
                            timeout.as_millis().max(1)
                        ),
                        hint: "find the session that holds it (pg_locks and pg_stat_activity), \
                               let it finish, and run again; or give the lock more time with \
                               --lock-timeout or [migrations] lock_timeout"
                            .into(),
                    }
                } else {
                    Error::postgres(format!("lock {quoted}"))(e)
                }
            })?;
    }
    set(client, &before)?;
    Ok(())
}
