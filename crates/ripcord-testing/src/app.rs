//! The migration target `app` and a workspace around it: the setup the
//! migration tests of the CLI start from, on either engine.
//!
//! - [`AppDb`]: a database of its own on the shared PostgreSQL cluster, or
//!   a SQLite file `migrate up` creates, with one API to write and read it,
//!   for suites that run the same cases on both engines.
//! - [`pg_database`], [`pg_workspace`], [`pg_app`] and [`exec`], [`rows`],
//!   [`one`]: the PostgreSQL-only pieces, for suites that test what only
//!   PostgreSQL has; [`sqlite_app`], [`sqlite_exec`] and [`sqlite_rows`],
//!   their SQLite counterparts; [`write`], a
//!   change's script into a workspace.

use std::path::{Path, PathBuf};

use crate::data::write_file;
use crate::pg;
use crate::Workspace;

/// The configuration that makes target `app` the migration target, with
/// the changes under `migrations/`.
pub const MIGRATIONS: &str = "[migrations]\ntarget = \"app\"\ndir = \"migrations\"\n";

/// A database engine ripcord migrates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

/// Both engines, for suites parametrised over them.
pub const ENGINES: [Engine; 2] = [Engine::Postgres, Engine::Sqlite];

/// A new database on the shared cluster named after `name` (with a suffix
/// of its own). Panics on failure.
pub fn pg_database(name: &str) -> String {
    pg::shared()
        .create_database(name)
        .unwrap_or_else(|e| panic!("create database {name}: {e}"))
}

/// A workspace with a repository whose PostgreSQL target `app`, at `url`,
/// is the migration target; `extra` is appended to its configuration.
pub fn pg_workspace(bin: &str, url: &str, extra: &str) -> Workspace {
    let mut ws = Workspace::new(bin);
    ws.append_config(&format!(
        "[targets.app]\nkind = \"postgres\"\nurl = \"{url}\"\n\n{MIGRATIONS}{extra}"
    ));
    ws.init();
    ws
}

/// A new database named after `name` and a workspace migrating it (see
/// [`pg_workspace`]); returns both.
pub fn pg_app(bin: &str, name: &str, extra: &str) -> (Workspace, String) {
    let db = pg_database(name);
    (pg_workspace(bin, &pg::shared().url(&db), extra), db)
}

/// A workspace whose SQLite target `app`, a file `migrate up` creates,
/// is the migration target; `extra` is appended to its configuration. The
/// repository is not created yet ([`Workspace::init`]). Returns the
/// workspace and the database file.
pub fn sqlite_app(bin: &str, extra: &str) -> (Workspace, PathBuf) {
    let mut ws = Workspace::new(bin);
    let path = ws.sqlite_target_created_by_migrate("app", "app.db");
    ws.append_config(&format!("{MIGRATIONS}{extra}"));
    (ws, path)
}

/// Runs `sql` in `db` on the shared cluster. Panics on failure.
pub fn exec(db: &str, sql: &str) {
    pg::shared().psql(db, sql);
}

/// Rows of `sql` in `db` on the shared cluster, columns joined with `|`,
/// NULL as empty.
pub fn rows(db: &str, sql: &str) -> Vec<String> {
    pg::shared().rows(db, sql)
}

/// The rows of `sql` in `db` joined with `,`: one value as it is.
pub fn one(db: &str, sql: &str) -> String {
    rows(db, sql).join(",")
}

/// Runs `sql` in the SQLite database at `path`. Panics on failure.
pub fn sqlite_exec(path: &Path, sql: &str) {
    rusqlite::Connection::open(path)
        .expect("open database")
        .execute_batch(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Rows of `sql` in the SQLite database at `path`, columns joined with
/// `|`, NULL as empty.
pub fn sqlite_rows(path: &Path, sql: &str) -> Vec<String> {
    use rusqlite::types::Value;
    let conn = rusqlite::Connection::open(path).expect("open database");
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get::<_, Value>(i)? {
                    Value::Null => String::new(),
                    Value::Integer(i) => i.to_string(),
                    Value::Real(f) => f.to_string(),
                    Value::Text(t) => t,
                    Value::Blob(b) => format!("{b:?}"),
                })
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map(|v| v.join("|"))
    })
    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Target `app` on either engine, with a workspace and a repository. A
/// PostgreSQL database is dropped with it unless the test failed (to look
/// at it).
pub struct AppDb {
    pub engine: Engine,
    pub ws: Workspace,
    /// PostgreSQL: the database's name.
    pub pg: String,
    /// SQLite: the database file (created by the first `migrate up`).
    pub path: PathBuf,
}

impl AppDb {
    /// A new `app` of `engine` named after `name`, migrated from
    /// `migrations/`, for the binary at `bin`.
    pub fn new(bin: &str, engine: Engine, name: &str) -> AppDb {
        match engine {
            Engine::Postgres => {
                let (ws, pg) = pg_app(bin, name, "");
                AppDb {
                    engine,
                    ws,
                    pg,
                    path: PathBuf::new(),
                }
            }
            Engine::Sqlite => {
                let (ws, path) = sqlite_app(bin, "");
                ws.init();
                AppDb {
                    engine,
                    ws,
                    pg: String::new(),
                    path,
                }
            }
        }
    }

    pub fn exec(&self, sql: &str) {
        match self.engine {
            Engine::Postgres => exec(&self.pg, sql),
            Engine::Sqlite => sqlite_exec(&self.path, sql),
        }
    }

    /// Rows of a query, columns joined with `|`, NULL as empty.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        match self.engine {
            Engine::Postgres => rows(&self.pg, sql),
            Engine::Sqlite => sqlite_rows(&self.path, sql),
        }
    }

    /// The rows of a query joined with `,`: one value as it is.
    pub fn one(&self, sql: &str) -> String {
        self.rows(sql).join(",")
    }

    /// Writes `text` to `rel` in the workspace (a change's script).
    pub fn write(&self, rel: &str, text: &str) {
        write(&self.ws, rel, text);
    }

    /// ripcord's own table `name` (`changes`, `review`, …) as this engine
    /// names it: in schema `ripcord`, or prefixed `ripcord_`.
    pub fn ripcord_table(&self, name: &str) -> String {
        match self.engine {
            Engine::Postgres => format!("ripcord.{name}"),
            Engine::Sqlite => format!("ripcord_{name}"),
        }
    }

    /// Whether a table, index or view `name` exists.
    pub fn has_relation(&self, name: &str) -> bool {
        let sql = match self.engine {
            Engine::Postgres => format!("SELECT to_regclass('{name}') IS NOT NULL"),
            Engine::Sqlite => {
                format!("SELECT count(*) > 0 FROM sqlite_master WHERE name = '{name}'")
            }
        };
        matches!(self.one(&sql).as_str(), "t" | "1")
    }

    /// Whether `table` has a column `column`.
    pub fn has_column(&self, table: &str, column: &str) -> bool {
        let sql = match self.engine {
            Engine::Postgres => format!(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass('{table}')
                 AND attname = '{column}' AND attnum > 0 AND NOT attisdropped"
            ),
            Engine::Sqlite => {
                format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = '{column}'")
            }
        };
        self.one(&sql) != "0"
    }
}

impl Drop for AppDb {
    fn drop(&mut self) {
        if self.engine == Engine::Postgres && !std::thread::panicking() {
            let _ = pg::shared().drop_database(&self.pg);
        }
    }
}

/// Writes `text` to `rel` in the workspace (a change's script).
pub fn write(ws: &Workspace, rel: &str, text: &str) {
    write_file(&ws.path(rel), text.as_bytes());
}
