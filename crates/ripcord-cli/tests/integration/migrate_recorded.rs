//! `down` follows what was recorded when a change was applied (its tables,
//! whether it destroyed data, its safety snapshot, its down script as it
//! was), never the files as they were edited since; changes recorded by
//! older versions are reverted as before, with a warning. SQLite.

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
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| {
        let v: rusqlite::types::Value = r.get(0)?;
        Ok(match v {
            rusqlite::types::Value::Null => String::new(),
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Real(f) => f.to_string(),
            rusqlite::types::Value::Text(t) => t,
            rusqlite::types::Value::Blob(b) => format!("{b:?}"),
        })
    })
    .unwrap()
}

fn exec(db: &Path, sql: &str) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

/// 7,000 items with a note each; then a change without a down script that
/// deletes every seventh item and drops the note column.
fn items_and_destructive_change(ws: &Workspace) {
    write(
        ws,
        "migrations/0001_items/up.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, note TEXT);\n\
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 7000)\n\
         INSERT INTO items SELECT i, i * 3, 'note ' || i FROM n;\n",
    );
    write(ws, "migrations/0001_items/down.sql", "DROP TABLE items;\n");
    write(
        ws,
        "migrations/0002_prune/up.sql",
        "DELETE FROM items WHERE id % 7 = 0;\nALTER TABLE items DROP COLUMN note;\n",
    );
}

/// The edit that made the revert lose data: the applied change's up script
/// now looks harmless, and a down script that undoes only the schema has
/// appeared.
fn edit_the_applied_change(ws: &Workspace) {
    write(
        ws,
        "migrations/0002_prune/up.sql",
        "CREATE INDEX items_v ON items (v);\n",
    );
    write(
        ws,
        "migrations/0002_prune/down.sql",
        "ALTER TABLE items ADD COLUMN note TEXT;\n",
    );
}

fn all_restored(db: &Path) {
    assert_eq!(one(db, "SELECT count(*) FROM items"), "7000");
    assert_eq!(
        one(
            db,
            "SELECT count(*) FROM items WHERE note = 'note ' || id AND v = id * 3"
        ),
        "7000"
    );
}

#[test]
fn down_allow_drift_follows_the_recorded_plan_not_the_edited_file() {
    let (ws, db) = setup();
    items_and_destructive_change(&ws);
    ws.ok(&["migrate", "up"]);
    assert_eq!(one(&db, "SELECT count(*) FROM items"), "6000");
    let recorded = one(
        &db,
        "SELECT revert_plan FROM ripcord_changes WHERE name = '0002_prune'",
    );
    let plan: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    assert_eq!(plan["destructive"], true, "{plan}");
    assert_eq!(plan["certain"], true, "{plan}");
    assert_eq!(plan["tables"][0]["name"], "items", "{plan}");
    assert!(plan["down"].is_null(), "{plan}");
    let up_plan: serde_json::Value = serde_json::from_str(&one(
        &db,
        "SELECT revert_plan FROM ripcord_changes WHERE name = '0001_items'",
    ))
    .unwrap();
    assert_eq!(up_plan["created"][0]["name"], "items", "{up_plan}");
    assert_eq!(up_plan["down"]["sql"], "DROP TABLE items;\n", "{up_plan}");

    edit_the_applied_change(&ws);
    // Drift still stops `down` unless allowed, with nothing changed.
    ws.run(&["migrate", "down", "--to", "0001_items"])
        .assert_code(3)
        .assert_stderr_has("drift");
    assert_eq!(one(&db, "SELECT count(*) FROM items"), "6000");

    // The dry run already shows the recorded way back.
    let dry = ws.json(&[
        "migrate",
        "down",
        "--to",
        "0001_items",
        "--allow-drift",
        "--dry-run",
    ]);
    assert_eq!(dry["changes"][0]["how"], "snapshot", "{dry}");
    assert_eq!(dry["changes"][0]["recorded_plan"], true, "{dry}");

    let out = ws.run(&["migrate", "down", "--to", "0001_items", "--allow-drift"]);
    out.assert_code(0)
        .assert_stdout_has("from its safety snapshot")
        .assert_stdout_has("data loss: none");
    assert!(!out.stderr.contains("did not record"), "{out}");
    // 1,000 deleted rows and 6,000 dropped values are back; the edited down
    // script did not run (it would have failed on the restored column).
    all_restored(&db);
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM sqlite_master WHERE name = 'items_v'"
        ),
        "0"
    );
}

#[test]
fn the_recorded_down_script_runs_as_it_was_applied() {
    let (ws, db) = setup();
    write(
        &ws,
        "migrations/0001_items/up.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);\n\
         INSERT INTO items VALUES (1, 10), (2, 20);\n",
    );
    write(&ws, "migrations/0001_items/down.sql", "DROP TABLE items;\n");
    write(
        &ws,
        "migrations/0002_flag/up.sql",
        "ALTER TABLE items ADD COLUMN flag INTEGER;\n",
    );
    write(
        &ws,
        "migrations/0002_flag/down.sql",
        "ALTER TABLE items DROP COLUMN flag;\n",
    );
    ws.ok(&["migrate", "up"]);
    // Edited since: a down script that would destroy the table's rows.
    write(&ws, "migrations/0002_flag/down.sql", "DELETE FROM items;\n");
    write(
        &ws,
        "migrations/0002_flag/up.sql",
        "ALTER TABLE items ADD COLUMN flag INTEGER DEFAULT 0;\n",
    );
    ws.ok(&["migrate", "down", "--to", "0001_items", "--allow-drift"])
        .assert_stdout_has("by its down script");
    assert_eq!(one(&db, "SELECT count(*) FROM items"), "2");
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'flag'"
        ),
        "0"
    );
}

/// Tracking tables made before plans were recorded: `status` reads them,
/// `up` adds the column, and a change recorded without a plan is reverted
/// from the files, as before, with a warning.
#[test]
fn changes_recorded_without_a_plan_are_reverted_as_before_with_a_warning() {
    let (ws, db) = setup();
    items_and_destructive_change(&ws);
    ws.ok(&["migrate", "up", "--to", "0001_items"]);
    // As an older version left them: no revert_plan column.
    exec(&db, "ALTER TABLE ripcord_changes DROP COLUMN revert_plan;");
    let status = ws.json(&["migrate", "status"]);
    assert_eq!(status["changes"][0]["state"], "applied", "{status}");

    ws.ok(&["migrate", "up"]);
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM pragma_table_info('ripcord_changes') WHERE name = 'revert_plan'"
        ),
        "1"
    );
    assert_eq!(
        one(
            &db,
            "SELECT revert_plan IS NULL FROM ripcord_changes WHERE name = '0001_items'"
        ),
        "1"
    );
    // 0002 was recorded with its plan: it comes back exactly.
    let out = ws.ok(&["migrate", "down", "--to", "0001_items"]);
    assert!(!out.stderr.contains("did not record"), "{out}");
    all_restored(&db);

    // 0001 has none: reverted by its files, with a warning naming it.
    let out = ws.ok(&["migrate", "down", "--to", "@root"]);
    out.assert_stderr_has(
        "0001_items was applied by a ripcord that did not record how to revert it",
    );
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM sqlite_master WHERE name = 'items'"
        ),
        "0"
    );
}

#[test]
fn an_unreadable_recorded_plan_is_refused_not_guessed() {
    let (ws, db) = setup();
    items_and_destructive_change(&ws);
    ws.ok(&["migrate", "up"]);
    exec(
        &db,
        "UPDATE ripcord_changes SET revert_plan = '{\"version\": 99}' WHERE name = '0002_prune'",
    );
    ws.run(&["migrate", "down", "--to", "0001_items"])
        .assert_code(3)
        .assert_stderr_has("newer ripcord");
    assert_eq!(one(&db, "SELECT count(*) FROM items"), "6000");
}
