//! SQLite target files: a missing file is never created by accident, WAL
//! side files never outlive a command, unchanged databases are counted
//! right, and another process's lock is waited for only so long.

use std::path::Path;
use std::time::{Duration, Instant};

use ripcord_testing::data::write_file;
use ripcord_testing::{repo_hashes, sqlite, Workspace};

use crate::common::*;

/// A SQLite target `app` at `rel`, `[migrations]` on it, and one change.
fn migrating(rel: &str, create: bool) -> (Workspace, std::path::PathBuf) {
    let mut ws = workspace();
    let db = if create {
        ws.sqlite_target_created_by_migrate("app", rel)
    } else {
        ws.sqlite_target("app", rel)
    };
    ws.append_config("[migrations]\ntarget = \"app\"\ndir = \"migrations\"\n");
    write_file(
        &ws.path("migrations/0001_users/up.sql"),
        b"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    write_file(
        &ws.path("migrations/0001_users/down.sql"),
        b"DROP TABLE users;\n",
    );
    ws.init();
    (ws, db)
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-wal") || n.ends_with("-shm") || n.contains("ripcord-restore"))
        .collect()
}

#[test]
fn migrate_up_with_a_mistyped_path_creates_nothing() {
    // `migrate up` used to create an empty database there and apply the change to it.
    let (ws, db) = migrating("data/ap.db", false);
    std::fs::create_dir_all(ws.path("data")).unwrap();
    let before = repo_hashes(&ws.repo());
    for args in [
        vec!["migrate", "up"],
        vec!["migrate", "up", "--dry-run"],
        vec!["migrate", "status"],
        vec!["migrate", "plan"],
        vec!["migrate", "down", "--to", "@root"],
        vec!["migrate", "rehearse"],
        vec!["rollback", "--to", "@root"],
        vec!["snapshot"],
    ] {
        ws.run(&args)
            .assert_code(2)
            .assert_stderr_has(&format!("{} does not exist", db.display()))
            .assert_stderr_has("create = true");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
    assert_eq!(repo_hashes(&ws.repo()), before);
    // Lint reads only the plan.
    ws.ok(&["migrate", "lint"]);
}

#[test]
fn create_true_lets_migrate_up_start_a_new_database() {
    let (ws, db) = migrating("new.db", true);
    ws.ok(&["migrate", "status"]).assert_stdout_has("pending");
    assert!(!db.exists(), "status created the database");
    ws.ok(&["migrate", "up"]);
    assert!(db.is_file());
    assert_eq!(sqlite::count_rows(&db, "users"), 0);
}

#[test]
fn in_place_restore_of_a_wal_database_leaves_no_wal_or_shm_files() {
    let mut ws = workspace();
    let db = ws.sqlite_target("bank", "data/bank.db");
    sqlite::create_bank(&db, 20);
    ws.init();
    assert!(
        leftovers(&ws.path("data")).is_empty(),
        "{:?}",
        leftovers(&ws.path("data"))
    );
    let id = ws.snapshot_id(&[] as &[&str]);
    // A snapshot reads the database without leaving side files either.
    assert!(
        leftovers(&ws.path("data")).is_empty(),
        "{:?}",
        leftovers(&ws.path("data"))
    );
    let good = sqlite::dump(&db);
    {
        let mut conn = sqlite::open_writer(&db);
        let mut rng = ripcord_testing::data::Rng::new(7);
        for _ in 0..20 {
            sqlite::transfer(&mut conn, &mut rng, 20).unwrap();
        }
    }
    // `dump` reads through a read-only connection, which leaves the side
    // files: the restore must remove them too.
    assert_ne!(sqlite::dump(&db), good);
    ws.ok(&["restore", &id]);
    assert!(
        leftovers(&ws.path("data")).is_empty(),
        "{:?}",
        leftovers(&ws.path("data"))
    );
    assert_eq!(sqlite::dump(&db), good);
    // And a restore into a new file leaves none beside it.
    ws.ok(&["restore", &id, "--into", ws.path("copy").to_str().unwrap()]);
    let out = ws.path("copy/bank/bank.db");
    assert!(
        leftovers(&ws.path("copy/bank")).is_empty(),
        "{:?}",
        leftovers(&ws.path("copy/bank"))
    );
    assert_eq!(sqlite::dump(&out), good);
}

#[test]
fn second_snapshot_counts_unchanged_files_of_sqlite_and_dir_targets() {
    // The demo said "4 of 3 files not even re-read".
    let mut ws = workspace();
    let db = ws.sqlite_target("db", "app.db");
    sqlite::create_bank(&db, 10);
    ripcord_testing::data::standard_tree(&ws.path("conf"), 97);
    ws.dir_target("conf", "conf", &[]);
    ws.init();
    let first = ws.snapshot(&[] as &[&str]);
    let second = ws.snapshot(&[] as &[&str]);
    let files = second["files"].as_u64().unwrap();
    assert_eq!(files, first["files"].as_u64().unwrap());
    assert_eq!(
        second["unchanged_files"].as_u64().unwrap(),
        files,
        "{second}"
    );
    let out = ws.ok(&["snapshot"]);
    out.assert_stdout_has(&format!("{files} files, {files} unchanged"));
}

#[test]
fn snapshot_waits_for_a_sqlite_lock_only_so_long() {
    let mut ws = workspace();
    let db = ws.sqlite_target("shop", "shop.db");
    sqlite::create_shop(&db);
    ws.init();
    let before = repo_hashes(&ws.repo());
    // Another process holds an exclusive lock (rollback journal: readers wait).
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder
        .execute_batch("BEGIN EXCLUSIVE; UPDATE notes SET body = 'x';")
        .unwrap();
    let start = Instant::now();
    ws.run_env(&["snapshot"], &[("RIPCORD_SQLITE_LOCK_TIMEOUT", "1s")])
        .assert_code(1)
        .assert_stderr_has("stayed locked by another process")
        .assert_stderr_has("hint:");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(ws.snapshot_ids().is_empty());
    let _ = before;
    holder.execute_batch("ROLLBACK").unwrap();
    ws.ok(&["snapshot"]);
}

#[test]
fn in_place_restore_waits_for_a_sqlite_lock_only_so_long() {
    let mut ws = workspace();
    let db = ws.sqlite_target("shop", "shop.db");
    sqlite::create_shop(&db);
    ws.init();
    let id = ws.snapshot_id(&[] as &[&str]);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DELETE FROM orders;")
        .unwrap();
    let damaged = sqlite::dump(&db);
    // A writer that never commits: the restore cannot replace the pages.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder
        .execute_batch("BEGIN IMMEDIATE; UPDATE notes SET body = 'x';")
        .unwrap();
    let start = Instant::now();
    ws.run_env(&["restore", &id], &[("RIPCORD_SQLITE_LOCK_TIMEOUT", "1s")])
        .assert_code(1)
        .assert_stderr_has("stayed locked by another process");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(sqlite::dump(&db), damaged, "the live database changed");
    assert!(
        leftovers(ws.root()).is_empty(),
        "{:?}",
        leftovers(ws.root())
    );
}

#[test]
fn migrate_up_waits_for_a_sqlite_lock_only_so_long() {
    let (ws, db) = migrating("app.db", false);
    sqlite::create_shop(&db);
    let before = sqlite::dump(&db);
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder
        .execute_batch("BEGIN EXCLUSIVE; UPDATE notes SET body = 'x';")
        .unwrap();
    let start = Instant::now();
    ws.run_env(&["migrate", "up"], &[("RIPCORD_SQLITE_LOCK_TIMEOUT", "1s")])
        .assert_code(1)
        .assert_stderr_has("locked")
        .assert_stderr_has("hint:");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(sqlite::dump(&db), before, "the database changed");
}
