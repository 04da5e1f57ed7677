//! Transaction control inside scripts, and `migrate verify`, on SQLite:
//! verify scripts with several blocks never undo the change they verify,
//! deploy scripts with blocks in the middle stay one transaction, and
//! `migrate verify` runs every verify script again, read-only.

use std::path::{Path, PathBuf};

use ripcord_testing::data::write_file;
use ripcord_testing::Workspace;

use crate::common::*;

fn write(ws: &Workspace, rel: &str, text: &str) {
    write_file(&ws.path(rel), text.as_bytes());
}

fn setup() -> (Workspace, PathBuf) {
    let mut ws = workspace();
    let db = ws.sqlite_target_created_by_migrate("app", "app.db");
    ws.append_config("[migrations]\ntarget = \"app\"\ndir = \"migrations\"\n");
    ws.init();
    (ws, db)
}

fn one(db: &Path, sql: &str) -> String {
    rusqlite::Connection::open(db)
        .expect("open")
        .query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0))
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .expect("query")
}

fn tables(db: &Path) -> String {
    one(
        db,
        "SELECT coalesce(group_concat(name, ','), '') FROM (SELECT name FROM sqlite_master \
         WHERE type = 'table' AND name NOT LIKE 'ripcord%' AND name NOT LIKE 'sqlite%' ORDER BY name)",
    )
}

#[test]
fn verify_with_several_transaction_blocks_does_not_undo_the_change_sqlite() {
    let (ws, db) = setup();
    write(
        &ws,
        "migrations/0001_t/up.sql",
        "CREATE TABLE t (id INTEGER PRIMARY KEY);\nINSERT INTO t VALUES (1), (2);\n",
    );
    write(
        &ws,
        "migrations/0001_t/verify.sql",
        "BEGIN;\nSELECT id FROM t WHERE 0;\nROLLBACK;\n\
         BEGIN;\nSELECT CASE WHEN count(*) = 2 THEN 1 ELSE json('x') END FROM t;\nROLLBACK;\n\
         BEGIN;\nDELETE FROM t;\nDROP TABLE t;\nCOMMIT;\n\
         COMMIT;\n",
    );
    ws.ok(&["migrate", "up"]);
    assert_eq!(one(&db, "SELECT count(*) FROM t"), "2");
    assert_eq!(one(&db, "SELECT count(*) FROM ripcord_changes"), "1");
}

#[test]
fn deploy_with_transaction_blocks_in_the_middle_stays_one_transaction_sqlite() {
    let (ws, db) = setup();
    write(
        &ws,
        "migrations/0001_blocks/up.sql",
        "CREATE TABLE a (id INTEGER);\n\
         BEGIN;\nCREATE TABLE b (id INTEGER);\nCOMMIT;\n\
         BEGIN TRANSACTION;\nINSERT INTO b VALUES (1);\nROLLBACK;\n\
         CREATE TABLE c (id INTEGER);\n",
    );
    write(
        &ws,
        "migrations/0001_blocks/down.sql",
        "DROP TABLE c;\nBEGIN;\nDROP TABLE b;\nCOMMIT;\nBEGIN;\nDROP TABLE a;\nROLLBACK;\nDROP TABLE a;\n",
    );
    let out = ws.json(&["migrate", "up"]);
    assert_eq!(out["changes"][0]["transactional"], true, "{out}");
    assert_eq!(tables(&db), "a,b,c");
    assert_eq!(one(&db, "SELECT count(*) FROM b"), "0");
    // The down script's blocks run the same way.
    ws.ok(&["migrate", "down", "--to", "@root"]);
    assert_eq!(tables(&db), "");
    ws.ok(&["migrate", "up"]);

    write(
        &ws,
        "migrations/0002_fails/up.sql",
        "BEGIN;\nCREATE TABLE d (id INTEGER);\nCOMMIT;\nINSERT INTO nowhere VALUES (1);\n",
    );
    ws.run(&["migrate", "up"]).assert_code(1);
    assert_eq!(tables(&db), "a,b,c");

    write(
        &ws,
        "migrations/0002_fails/up.sql",
        "CREATE TABLE d (id INTEGER);\nBEGIN;\nCREATE TABLE e (id INTEGER);\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("0002_fails/up.sql:2")
        .assert_stderr_has("never committed");
    assert_eq!(tables(&db), "a,b,c");
}

#[test]
fn migrate_verify_reports_each_failure_and_changes_nothing_sqlite() {
    let (ws, db) = setup();
    write(
        &ws,
        "migrations/0001_users/up.sql",
        "CREATE TABLE users (id INTEGER, email TEXT);",
    );
    write(
        &ws,
        "migrations/0001_users/verify.sql",
        "SELECT id, email FROM users WHERE 0;",
    );
    write(
        &ws,
        "migrations/0002_w/up.sql",
        "CREATE TABLE w (id INTEGER);",
    );
    write(
        &ws,
        "migrations/0002_w/verify.sql",
        "BEGIN;\nSELECT id FROM w WHERE 0;\nROLLBACK;",
    );
    write(
        &ws,
        "migrations/0003_x/up.sql",
        "CREATE TABLE x (id INTEGER);",
    );
    ws.ok(&["migrate", "up"]);
    ws.ok(&["migrate", "verify"])
        .assert_stdout_has("0001_users: verified")
        .assert_stdout_has("0003_x: no verify script")
        .assert_stdout_has("2 applied changes");

    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("ALTER TABLE users DROP COLUMN email;")
        .unwrap();
    // A verify script that writes is refused by read-only mode.
    write(
        &ws,
        "migrations/0002_w/verify.sql",
        "INSERT INTO w VALUES (1);",
    );
    let out = ws.run(&["migrate", "verify", "--json"]);
    out.assert_code(1);
    let json = out.json();
    assert_eq!(json["changes"][0]["verdict"], "failed", "{json}");
    assert!(
        json["changes"][0]["error"]
            .as_str()
            .unwrap()
            .contains("email"),
        "{json}"
    );
    assert_eq!(json["changes"][1]["verdict"], "failed", "{json}");
    assert_eq!(one(&db, "SELECT count(*) FROM w"), "0");
    assert_eq!(tables(&db), "users,w,x");
}

#[test]
fn flyway_placeholders_come_from_flyway_conf_and_set_sqlite() {
    let (ws, db) = setup();
    write(
        &ws,
        "migrations/flyway.conf",
        "flyway.placeholders.table=things\nflyway.placeholders.label=from_conf\n",
    );
    write(
        &ws,
        "migrations/V1__things.sql",
        "CREATE TABLE ${table} (id INTEGER, label TEXT DEFAULT '${label}', file TEXT DEFAULT '${flyway:filename}');\n",
    );
    write(
        &ws,
        "migrations/V2__more.sql",
        "INSERT INTO ${table} (id) VALUES (1);\nINSERT INTO ${table} (id, label) VALUES (2, '${missing}');\n",
    );
    let out = ws.run(&["migrate", "up"]);
    out.assert_code(2)
        .assert_stderr_has("V2__more.sql:2: no value provided for placeholder ${missing}");
    assert_eq!(tables(&db), "");
    ws.ok(&[
        "migrate",
        "up",
        "--set",
        "missing=given",
        "--set",
        "label=from_set",
    ]);
    assert_eq!(
        one(
            &db,
            "SELECT group_concat(id || ':' || label || ':' || file, ',') FROM things"
        ),
        "1:from_set:V1__things.sql,2:given:V1__things.sql"
    );
}

/// The same on SQLite: a failure inside the script's own block, in a script
/// that runs outside ripcord's transaction (VACUUM), left the block open.
#[test]
fn a_failing_block_in_a_non_transactional_script_is_reverted_cleanly_sqlite() {
    let (ws, db) = setup();
    write(
        &ws,
        "migrations/0001_base/up.sql",
        "CREATE TABLE base (id INTEGER);",
    );
    ws.ok(&["migrate", "up"]);
    write(
        &ws,
        "migrations/0002_t/up.sql",
        "CREATE TABLE t (id INTEGER);\n\
         BEGIN;\nINSERT INTO t VALUES (1);\nINSERT INTO nowhere VALUES (1);\nCOMMIT;\n\
         VACUUM;\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(1)
        .assert_stderr_has("nowhere");
    assert_eq!(tables(&db), "base");
    ws.ok(&["migrate", "status"]);
}
