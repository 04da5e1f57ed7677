//! One rule for exit codes: `migrate` exits like every other command when
//! the repository for its safety snapshots is missing, needs another
//! passphrase or is locked, and changes nothing.

use std::path::{Path, PathBuf};

use ripcord_repo::lock::LockGuard;
use ripcord_testing::app::{sqlite_app, write};
use ripcord_testing::Workspace;

use crate::common::*;

/// A SQLite target `app` with `users` applied, and a change that drops a
/// column: it needs a safety snapshot, so `up` must open the repository.
fn setup() -> (Workspace, PathBuf) {
    let (ws, db) = sqlite_app(bin(), "");
    ws.init();
    write(
        &ws,
        "migrations/0001_users/up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);\n\
         INSERT INTO users (email) VALUES ('ann@example.com');\n",
    );
    write(&ws, "migrations/0001_users/down.sql", "DROP TABLE users;\n");
    ws.ok(&["migrate", "up"]);
    write(
        &ws,
        "migrations/0002_drop_email/up.sql",
        "ALTER TABLE users DROP COLUMN email;\n",
    );
    (ws, db)
}

fn emails(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT email FROM users ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn unchanged(ws: &Workspace, db: &Path) {
    assert_eq!(emails(db), ["ann@example.com"]);
    let status = ws.json(&["migrate", "status"]);
    assert_eq!(status["changes"][1]["state"], "pending", "{status}");
}

#[test]
fn a_wrong_passphrase_exits_2_for_migrate_as_for_snapshot() {
    let (mut ws, db) = setup();
    ws.set_password("not the passphrase");
    let snapshot = ws.run(&["snapshot"]);
    snapshot.assert_code(2);
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("pre-flight")
        .assert_stderr_has("passphrase");
    unchanged(&ws, &db);
}

#[test]
fn a_missing_repository_exits_2_for_migrate_as_for_snapshot() {
    let (ws, db) = setup();
    std::fs::rename(ws.repo(), ws.path("moved-away")).unwrap();
    ws.run(&["snapshot"]).assert_code(2);
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("pre-flight")
        .assert_stderr_has("ripcord init");
    unchanged(&ws, &db);
}

#[test]
fn a_locked_repository_exits_3_for_migrate_as_for_snapshot() {
    let (ws, db) = setup();
    let repo = open_repo(&ws);
    let guard = LockGuard::acquire(&repo, true, "exit-code-test", &|w| panic!("{w}"))
        .expect("take an exclusive lock");
    ws.run(&["snapshot"]).assert_code(3);
    ws.run(&["migrate", "up"])
        .assert_code(3)
        .assert_stderr_has("exit-code-test");
    unchanged(&ws, &db);
    drop(guard);
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        ws.json(&["migrate", "status"])["changes"][1]["state"],
        "applied"
    );
}
