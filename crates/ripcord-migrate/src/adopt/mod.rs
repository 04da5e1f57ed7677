//! The history another tool keeps in the database it migrated, read and
//! checked against the plan's files, for `migrate adopt`: sqitch
//! (`sqitch.changes`, `sqitch.tags`), Flyway (`flyway_schema_history`),
//! golang-migrate and dbmate (`schema_migrations`) and Liquibase
//! (`databasechangelog`). Only reads; [`crate::engine::adopt()`] records
//! what is found in ripcord's tracking tables.

mod checksums;
mod flyway;
mod liquibase;
mod schema_migrations;
mod sqitch;

use serde::Serialize;

use crate::engine::{Conn, Database};
use crate::{Error, Format, Plan, Result};

pub use checksums::{flyway_checksum, sqitch_script_hash};

/// What a tool's history says about the plan.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Found {
    /// The table (or schema) the history was read from.
    pub table: String,
    /// The plan's changes the history records as applied, in the order
    /// they were applied.
    pub applied: Vec<Seen>,
    /// Where the history and the files disagree, each naming its change;
    /// refused unless accepted.
    pub problems: Vec<String>,
    /// What the user should know, that does not refuse.
    pub notes: Vec<String>,
}

/// A change the history records as applied.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Seen {
    pub change: String,
    /// How it was checked against its file: `checksum matches`, `no
    /// checksum`, `checksum differs (accepted)`, ….
    pub check: String,
}

impl Found {
    fn seen(&mut self, change: &str, check: impl Into<String>) {
        if let Some(s) = self.applied.iter_mut().find(|s| s.change == change) {
            s.check = check.into();
        } else {
            self.applied.push(Seen {
                change: change.to_string(),
                check: check.into(),
            });
        }
    }

    fn forget(&mut self, change: &str) {
        self.applied.retain(|s| s.change != change);
    }
}

/// Reads the history of the tool whose files `plan` holds; `table`
/// overrides where it is (a table, `schema.table`, or for sqitch the
/// registry schema).
pub fn read(db: &mut dyn Database, plan: &Plan, table: Option<&str>) -> Result<Found> {
    match plan.format {
        Format::Sqitch => sqitch::read(db, plan, table),
        Format::Flyway => flyway::read(db, plan, table),
        Format::GolangMigrate => schema_migrations::read_golang(db, plan, table),
        Format::Dbmate => schema_migrations::read_dbmate(db, plan, table),
        Format::Liquibase => liquibase::read(db, plan, table),
        Format::Native | Format::Timestamp => Err(Error::Config {
            message: format!(
                "adopt reads the history of sqitch, Flyway, golang-migrate, dbmate and \
                 Liquibase; this plan is in the {} format, which no other tool records",
                plan.format
            ),
            hint: "point [migrations] dir at the other tool's migration files, or pass --format"
                .into(),
        }),
    }
}

/// Rows of `sql`, every column as text (`NULL` as `None`); `None` when the
/// history table is not there.
fn rows(db: &mut dyn Database, sql: &str) -> Result<Option<Vec<Vec<Option<String>>>>> {
    match db.conn() {
        Conn::Postgres(client) => match client.query(sql, &[]) {
            Ok(rows) => Ok(Some(
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.get::<_, Option<String>>(i))
                            .collect()
                    })
                    .collect(),
            )),
            Err(e)
                if e.as_db_error()
                    .is_some_and(|d| matches!(d.code().code(), "42P01" | "3F000")) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::Postgres {
                context: "read the migration history".into(),
                source: e,
            }),
        },
        Conn::Sqlite(conn) => {
            let mut stmt = match conn.prepare(sql) {
                Ok(s) => s,
                Err(e) if e.to_string().contains("no such table") => return Ok(None),
                Err(e) => return Err(Error::sqlite("read the migration history")(e)),
            };
            let n = stmt.column_count();
            let out = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                                rusqlite::types::Value::Null => None,
                                rusqlite::types::Value::Integer(v) => Some(v.to_string()),
                                rusqlite::types::Value::Real(v) => Some(v.to_string()),
                                rusqlite::types::Value::Text(t) => Some(t),
                                rusqlite::types::Value::Blob(b) => {
                                    Some(String::from_utf8_lossy(&b).into_owned())
                                }
                            })
                        })
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(Error::sqlite("read the migration history"))?;
            Ok(Some(out))
        }
    }
}

/// The refusal when the tool's history table is not in the database.
fn no_history(table: &str, tool: &str) -> Error {
    Error::Config {
        message: format!("the database has no {table}: {tool} has not migrated it"),
        hint: format!(
            "point [migrations] target at the database {tool} migrated, or name the history \
             table with --history if {tool} was configured to keep it elsewhere"
        ),
    }
}

/// A table name as SQL: each part of `schema.table` quoted.
fn quoted(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("t" | "true" | "1" | "TRUE" | "True"))
}
