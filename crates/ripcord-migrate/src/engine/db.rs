//! The database a plan runs against: its connection, for scripts and for
//! the transaction that holds a change and its tracking row together.

use std::collections::BTreeSet;

use postgres::error::ErrorPosition;

use crate::analyze::{self, Dialect, TableName};
use crate::tracking::{PostgresTracker, SqliteTracker, Tracker};
use crate::{Error, Result};

/// A connection, lent out for one piece of work.
pub enum Conn<'a> {
    Postgres(&'a mut postgres::Client),
    Sqlite(&'a rusqlite::Connection),
}

/// A tracker whose connection also runs the scripts, so a change and its
/// tracking row commit together.
pub trait Database: Tracker {
    fn conn(&mut self) -> Conn<'_>;
    fn dialect(&self) -> Dialect;
    /// Whether the tracking tables exist; never creates them.
    fn has_schema(&mut self) -> Result<bool>;
    /// The PostgreSQL major version; `None` on SQLite.
    fn server_version(&mut self) -> Option<u32>;
    /// Whether the connection is gone (the server ended the session, or
    /// the network did). A SQLite file is never lost.
    fn lost(&mut self) -> bool {
        false
    }
    /// Connects again after a loss, waiting longer between tries, and marks
    /// the new session as the migration's.
    fn reconnect(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A script that failed: the database's message, with the line of the
/// script it points at when the database says.
#[derive(Clone, Debug)]
pub struct ScriptError {
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Runs `sql` (any number of statements) on the connection as it is: inside
/// the open transaction, if there is one.
pub fn execute(db: &mut dyn Database, sql: &str) -> std::result::Result<(), ScriptError> {
    if sql.contains(crate::psql::GEXEC_MARKER) {
        return execute_with_gexec(db, sql);
    }
    execute_plain(db, sql)
}

fn execute_plain(db: &mut dyn Database, sql: &str) -> std::result::Result<(), ScriptError> {
    match db.conn() {
        Conn::Postgres(client) => client
            .batch_execute(sql)
            .map_err(|e| pg_script_error(&e, sql)),
        Conn::Sqlite(conn) => conn.execute_batch(sql).map_err(|e| ScriptError {
            line: None,
            message: e.to_string(),
        }),
    }
}

/// Runs a script one statement at a time, outside any transaction: on
/// PostgreSQL a multi-statement query is one implicit transaction, which
/// `CREATE INDEX CONCURRENTLY` and friends refuse. A transaction the script
/// opened itself is rolled back when a statement fails.
pub fn execute_each(
    db: &mut dyn Database,
    sql: &str,
    mut after_each: impl FnMut(usize),
) -> std::result::Result<(), ScriptError> {
    let dialect = db.dialect();
    let Some(statements) = analyze::statements(sql, dialect) else {
        return execute(db, sql);
    };
    for (i, statement) in statements.iter().enumerate() {
        if let Err(mut e) = execute(db, &statement.sql) {
            e.line = Some(statement.line + e.line.unwrap_or(1) - 1);
            // A failure inside the script's own BEGIN block leaves that
            // transaction open and aborted; what comes next (the revert)
            // needs the session back. Outside a block this is a no-op.
            let _ = execute_plain(db, "ROLLBACK");
            return Err(e);
        }
        after_each(i);
    }
    Ok(())
}

/// A script with psql `\gexec` queries: the statements before each run as
/// a batch, then the query, then each non-null value of its result, row by
/// row, as a statement, as psql does.
fn execute_with_gexec(db: &mut dyn Database, sql: &str) -> std::result::Result<(), ScriptError> {
    let dialect = db.dialect();
    let Some(statements) = analyze::statements(sql, dialect) else {
        return execute_plain(db, sql);
    };
    let at_line = |line: usize, mut e: ScriptError| {
        e.line = Some(line + e.line.unwrap_or(1) - 1);
        e
    };
    for statement in &statements {
        if !crate::psql::is_gexec(&statement.sql) {
            execute_plain(db, &statement.sql).map_err(|e| at_line(statement.line, e))?;
            continue;
        }
        let Conn::Postgres(client) = db.conn() else {
            return Err(ScriptError {
                line: Some(statement.line),
                message: "\\gexec needs PostgreSQL".into(),
            });
        };
        let query = statement.sql.trim_start();
        let query = query
            .strip_prefix(crate::psql::GEXEC_MARKER)
            .unwrap_or(query);
        let rows = client
            .simple_query(query)
            .map_err(|e| at_line(statement.line, pg_script_error(&e, query)))?;
        let generated: Vec<String> = rows
            .iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .filter_map(|i| row.get(i).map(str::to_string))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        for generated in generated {
            client.batch_execute(&generated).map_err(|e| {
                let inner = pg_script_error(&e, &generated);
                ScriptError {
                    line: Some(statement.line),
                    message: format!(
                        "\\gexec statement {:?}: {}",
                        generated.chars().take(80).collect::<String>(),
                        inner.message
                    ),
                }
            })?;
        }
    }
    Ok(())
}

fn pg_script_error(e: &postgres::Error, sql: &str) -> ScriptError {
    let Some(db) = e.as_db_error() else {
        return ScriptError {
            line: None,
            message: e.to_string(),
        };
    };
    let line = match db.position() {
        Some(ErrorPosition::Original(at)) => {
            let before: String = sql.chars().take(*at as usize).collect();
            Some(before.matches('\n').count() + 1)
        }
        _ => None,
    };
    let mut message = format!("{} ({})", db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        message.push_str(&format!("; {detail}"));
    }
    ScriptError { line, message }
}

pub fn begin(db: &mut dyn Database) -> Result<()> {
    control(db, "BEGIN")
}

/// Begins the transaction of a change. On SQLite it takes the write lock at
/// once (`BEGIN IMMEDIATE`), waiting at most `timeout` for other writers:
/// nothing can be written between the capture and the change.
pub fn begin_change(db: &mut dyn Database, timeout: std::time::Duration) -> Result<()> {
    match db.conn() {
        Conn::Postgres(_) => begin(db),
        Conn::Sqlite(conn) => {
            super::capture::sqlite_begin_immediate(conn, timeout, "start the change")
        }
    }
}

/// Cleans the session and begins a transaction, in one round trip
/// (PostgreSQL). The `BEGIN` takes the cleaning into the transaction: it
/// commits with the change; when the change fails and is rolled back, the
/// session is left as the previous change left it, and `up` stops there.
pub fn clean_and_begin(db: &mut dyn Database, clean: &str) -> Result<()> {
    control(db, &format!("{clean}; BEGIN"))
}

pub fn commit(db: &mut dyn Database) -> Result<()> {
    control(db, "COMMIT")
}

pub fn rollback(db: &mut dyn Database) -> Result<()> {
    // An interrupted SQLite statement (a change's timeout) has rolled its
    // transaction back already.
    if let Conn::Sqlite(conn) = db.conn() {
        if conn.is_autocommit() {
            return Ok(());
        }
    }
    control(db, "ROLLBACK")
}

fn control(db: &mut dyn Database, sql: &str) -> Result<()> {
    match db.conn() {
        Conn::Postgres(client) => client.batch_execute(sql).map_err(Error::postgres(sql)),
        Conn::Sqlite(conn) => conn.execute_batch(sql).map_err(Error::sqlite(sql)),
    }
}

/// Asks the database whether a statement sqlparser could not read is valid
/// SQL, without running it. `Some(message)` for a syntax error.
///
/// PostgreSQL: the statement becomes the body of a PL/pgSQL function that
/// is validated and never created (the transaction is rolled back);
/// validation parses every embedded statement but resolves no names, so
/// tables made by earlier changes need not exist yet. Statements PL/pgSQL
/// cannot hold (transaction control, `CREATE INDEX CONCURRENTLY`, …) are
/// left to the server at run time. SQLite: the statement is prepared, and
/// only a syntax error counts (an unknown table may come from an earlier
/// change).
pub fn check_syntax(db: &mut dyn Database, sql: &str) -> Result<Option<String>> {
    match db.conn() {
        Conn::Postgres(client) => {
            let mut tag = String::from("ripcord_check");
            while sql.contains(&format!("${tag}$")) {
                tag.push('_');
            }
            let body = format!(
                "CREATE FUNCTION pg_temp.ripcord_syntax_check() RETURNS void LANGUAGE plpgsql \
                 AS ${tag}$ BEGIN RETURN; {sql}\n; END ${tag}$"
            );
            let mut tx = client
                .transaction()
                .map_err(Error::postgres("check a statement's syntax"))?;
            tx.batch_execute("SET LOCAL check_function_bodies = on")
                .map_err(Error::postgres("check a statement's syntax"))?;
            let result = tx.batch_execute(&body);
            let _ = tx.rollback();
            match result {
                Ok(()) => Ok(None),
                Err(e) => match e.as_db_error() {
                    Some(db) if db.code().code() == "42601" => Ok(Some(db.message().to_string())),
                    _ => Ok(None),
                },
            }
        }
        Conn::Sqlite(conn) => match conn.prepare(sql) {
            Ok(_) => Ok(None),
            Err(e) => {
                let text = e.to_string();
                let syntax = text.contains("syntax error") || text.contains("incomplete input");
                Ok(syntax.then_some(text))
            }
        },
    }
}

/// Drops tables `change` created, returning each with the rows it held.
pub fn drop_tables(
    db: &mut dyn Database,
    change: &str,
    tables: &BTreeSet<TableName>,
) -> Result<Vec<(String, u64)>> {
    let mut dropped = Vec::new();
    for table in tables {
        let quoted = quote(table);
        let exists = match db.conn() {
            Conn::Postgres(client) => client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quoted])
                .map_err(Error::postgres(format!("look for table {table}")))?
                .get::<_, bool>(0),
            Conn::Sqlite(conn) => {
                conn.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [&table.name],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(Error::sqlite(format!("look for table {table}")))?
                    > 0
            }
        };
        if !exists {
            continue;
        }
        let count = format!("SELECT count(*) FROM {quoted}");
        let rows: i64 = match db.conn() {
            Conn::Postgres(client) => client
                .query_one(&count, &[])
                .map_err(Error::postgres(format!("count the rows of {table}")))?
                .get(0),
            Conn::Sqlite(conn) => conn
                .query_row(&count, [], |r| r.get(0))
                .map_err(Error::sqlite(format!("count the rows of {table}")))?,
        };
        let drop = match db.dialect() {
            Dialect::Postgres => format!("DROP TABLE {quoted} CASCADE"),
            Dialect::Sqlite => format!("DROP TABLE {quoted}"),
        };
        execute(db, &drop).map_err(|e| Error::Revert {
            change: change.into(),
            detail: format!("dropping {table}, which it created: {e}"),
        })?;
        dropped.push((table.to_string(), rows as u64));
    }
    Ok(dropped)
}

pub(crate) fn quote(table: &TableName) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    match &table.schema {
        Some(schema) => format!("{}.{}", q(schema), q(&table.name)),
        None => q(&table.name),
    }
}

impl Database for PostgresTracker {
    fn conn(&mut self) -> Conn<'_> {
        Conn::Postgres(self.client_mut())
    }

    fn lost(&mut self) -> bool {
        // A reset connection is not always marked closed until it is used.
        let client = self.client_mut();
        client.is_closed() || client.is_valid(std::time::Duration::from_secs(5)).is_err()
    }

    fn reconnect(&mut self) -> Result<()> {
        PostgresTracker::reconnect(self)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn has_schema(&mut self) -> Result<bool> {
        Ok(self
            .client_mut()
            .query_one("SELECT to_regclass('ripcord.changes') IS NOT NULL", &[])
            .map_err(Error::postgres("look for the tracking tables"))?
            .get(0))
    }

    fn server_version(&mut self) -> Option<u32> {
        let row = self
            .client_mut()
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .ok()?;
        let num: i32 = row.get(0);
        u32::try_from(num / 10000).ok()
    }
}

impl Database for SqliteTracker {
    fn conn(&mut self) -> Conn<'_> {
        Conn::Sqlite(self.connection())
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn has_schema(&mut self) -> Result<bool> {
        Ok(self
            .connection()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                 AND name = 'ripcord_changes'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(Error::sqlite("look for the tracking tables"))?
            > 0)
    }

    fn server_version(&mut self) -> Option<u32> {
        None
    }
}
