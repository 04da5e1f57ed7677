//! A SQLite database next to a real repository, its safety snapshots and
//! reverts, shared by the SQLite revert tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ripcord_core::config::OnConflict;
use ripcord_core::revert::TableRevert;
use ripcord_repo::backend::LocalBackend;
use ripcord_repo::index::Index;
use ripcord_repo::manifest::{Stream, TableStat};
use ripcord_repo::saver::{Saver, SaverOptions};
use ripcord_repo::Repository;
use ripcord_targets::sqlite_revert::revert_tables;
use ripcord_targets::{sqlite, Quiet};
use rusqlite::Connection;

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub repo: Repository,
    pub db: PathBuf,
}

/// What a safety snapshot of the database recorded.
pub struct Safety {
    pub index: Index,
    pub image: Stream,
    pub tables: Vec<TableStat>,
}

impl Fixture {
    /// A new repository and a database made by `schema`, run on a
    /// connection from `open`.
    pub fn with(schema: &str, open: impl Fn(&Path) -> Connection) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let repo = Repository::init(backend, Some("test passphrase")).unwrap();
        let db = dir.path().join("app.db");
        open(&db).execute_batch(schema).unwrap();
        Fixture {
            _dir: dir,
            repo,
            db,
        }
    }

    /// Takes a snapshot the way `ripcord snapshot` does, then reloads the index.
    pub fn snapshot(&self) -> Safety {
        let index = Arc::new(self.repo.load_index().unwrap());
        let saver = Saver::new(&self.repo, index, SaverOptions::default());
        let s = sqlite::snapshot(&saver, &self.db, None, &Quiet).unwrap();
        saver.finish().unwrap();
        Safety {
            index: self.repo.load_index().unwrap(),
            image: s.image,
            tables: s.tables,
        }
    }

    /// Reverts `tables` for `change` on `conn`, inside the caller's transaction.
    pub fn try_revert(
        &self,
        safety: &Safety,
        conn: &Connection,
        tables: &[(&str, OnConflict)],
        change: &str,
    ) -> ripcord_targets::Result<Vec<TableRevert>> {
        let tables: Vec<(String, OnConflict)> =
            tables.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        revert_tables(
            &self.repo,
            &safety.index,
            &safety.image,
            &safety.tables,
            conn,
            &tables,
            change,
            &Quiet,
        )
    }
}
