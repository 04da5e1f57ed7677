//! `down` follows what was recorded when a change was applied (its tables,
//! whether it destroyed data, its safety snapshot, its down script as it
//! was), never the files as they were edited since; changes recorded by
//! older versions are reverted as before, with a warning. Each case runs
//! on PostgreSQL (a real cluster) and SQLite.

use ripcord_testing::app::{AppDb, Engine, ENGINES};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

/// 7,000 items with a note each; then a change without a down script that
/// deletes every seventh item and drops the note column.
fn items_and_destructive_change(db: &AppDb) {
    let items = match db.engine {
        Engine::Postgres => "SELECT i, i * 3, 'note ' || i FROM generate_series(1, 7000) i",
        Engine::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 7000)\n\
             SELECT i, i * 3, 'note ' || i FROM n"
        }
    };
    db.write(
        "migrations/0001_items/up.sql",
        &format!(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, note TEXT);\n\
             INSERT INTO items {items};\n"
        ),
    );
    db.write("migrations/0001_items/down.sql", "DROP TABLE items;\n");
    db.write(
        "migrations/0002_prune/up.sql",
        "DELETE FROM items WHERE id % 7 = 0;\nALTER TABLE items DROP COLUMN note;\n",
    );
}

/// The edit that made the revert lose data: the applied change's up script
/// now looks harmless, and a down script that undoes only the schema has
/// appeared.
fn edit_the_applied_change(db: &AppDb) {
    db.write(
        "migrations/0002_prune/up.sql",
        "CREATE INDEX items_v ON items (v);\n",
    );
    db.write(
        "migrations/0002_prune/down.sql",
        "ALTER TABLE items ADD COLUMN note TEXT;\n",
    );
}

fn all_restored(db: &AppDb) {
    assert_eq!(
        db.one("SELECT count(*) FROM items"),
        "7000",
        "{:?}",
        db.engine
    );
    assert_eq!(
        db.one("SELECT count(*) FROM items WHERE note = 'note ' || id AND v = id * 3"),
        "7000",
        "{:?}",
        db.engine
    );
}

fn revert_plan(db: &AppDb, change: &str) -> serde_json::Value {
    let text = db.one(&format!(
        "SELECT revert_plan FROM {} WHERE name = '{change}'",
        db.ripcord_table("changes")
    ));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{change}: {e}: {text}"))
}

/// The bug: `down --allow-drift` re-planned from the edited up script and
/// put nothing back from the recorded safety snapshot (42,857 deleted rows
/// and 257,143 values lost; here 1,000 and 6,000).
#[test]
fn down_allow_drift_follows_the_recorded_plan_not_the_edited_file() {
    for engine in ENGINES {
        let db = AppDb::new(bin(), engine, "rec_drift");
        items_and_destructive_change(&db);
        db.ws.ok(&["migrate", "up"]);
        assert_eq!(db.one("SELECT count(*) FROM items"), "6000");
        let plan = revert_plan(&db, "0002_prune");
        assert_eq!(plan["destructive"], true, "{engine:?} {plan}");
        assert_eq!(plan["certain"], true, "{engine:?} {plan}");
        assert_eq!(plan["tables"][0]["name"], "items", "{engine:?} {plan}");
        assert!(plan["down"].is_null(), "{engine:?} {plan}");
        let up_plan = revert_plan(&db, "0001_items");
        assert_eq!(up_plan["created"][0]["name"], "items", "{up_plan}");
        assert_eq!(up_plan["down"]["sql"], "DROP TABLE items;\n", "{up_plan}");

        edit_the_applied_change(&db);
        // Drift still stops `down` unless allowed, with nothing changed.
        db.ws
            .run(&["migrate", "down", "--to", "0001_items"])
            .assert_code(3)
            .assert_stderr_has("drift");
        assert_eq!(db.one("SELECT count(*) FROM items"), "6000");

        // The dry run already shows the recorded way back.
        let dry = db.ws.json(&[
            "migrate",
            "down",
            "--to",
            "0001_items",
            "--allow-drift",
            "--dry-run",
        ]);
        assert_eq!(dry["changes"][0]["how"], "snapshot", "{engine:?} {dry}");
        assert_eq!(dry["changes"][0]["recorded_plan"], true, "{dry}");

        let out = db
            .ws
            .run(&["migrate", "down", "--to", "0001_items", "--allow-drift"]);
        out.assert_code(0)
            .assert_stdout_has("from its safety snapshot")
            .assert_stdout_has("data loss: none");
        assert!(!out.stderr.contains("did not record"), "{out}");
        // The deleted rows and dropped values are back; the edited down
        // script did not run (it would have failed on the restored column),
        // nor did the edited up script.
        all_restored(&db);
        assert!(!db.has_relation("items_v"), "{engine:?}");
    }
}

#[test]
fn the_recorded_down_script_runs_as_it_was_applied() {
    for engine in ENGINES {
        let db = AppDb::new(bin(), engine, "rec_down_script");
        db.write(
            "migrations/0001_items/up.sql",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);\n\
             INSERT INTO items VALUES (1, 10), (2, 20);\n",
        );
        db.write("migrations/0001_items/down.sql", "DROP TABLE items;\n");
        db.write(
            "migrations/0002_flag/up.sql",
            "ALTER TABLE items ADD COLUMN flag INTEGER;\n",
        );
        db.write(
            "migrations/0002_flag/down.sql",
            "ALTER TABLE items DROP COLUMN flag;\n",
        );
        db.ws.ok(&["migrate", "up"]);
        // Edited since: a down script that would destroy the table's rows.
        db.write("migrations/0002_flag/down.sql", "DELETE FROM items;\n");
        db.write(
            "migrations/0002_flag/up.sql",
            "ALTER TABLE items ADD COLUMN flag INTEGER DEFAULT 0;\n",
        );
        db.ws
            .ok(&["migrate", "down", "--to", "0001_items", "--allow-drift"])
            .assert_stdout_has("by its down script");
        assert_eq!(db.one("SELECT count(*) FROM items"), "2", "{engine:?}");
        assert!(!db.has_column("items", "flag"), "{engine:?}");
    }
}

/// Tracking tables made before plans were recorded: `status` reads them,
/// `up` adds the column, and a change recorded without a plan is reverted
/// from the files, as before, with a warning.
#[test]
fn changes_recorded_without_a_plan_are_reverted_as_before_with_a_warning() {
    for engine in ENGINES {
        let db = AppDb::new(bin(), engine, "rec_upgrade");
        let changes = db.ripcord_table("changes");
        items_and_destructive_change(&db);
        db.ws.ok(&["migrate", "up", "--to", "0001_items"]);
        // As an older version left them: no revert_plan column.
        db.exec(&format!("ALTER TABLE {changes} DROP COLUMN revert_plan"));
        let status = db.ws.json(&["migrate", "status"]);
        assert_eq!(status["changes"][0]["state"], "applied", "{status}");

        db.ws.ok(&["migrate", "up"]);
        assert!(db.has_column(&changes, "revert_plan"), "{engine:?}");
        assert_eq!(
            db.rows(&format!(
                "SELECT name FROM {changes} WHERE revert_plan IS NOT NULL ORDER BY name"
            )),
            ["0002_prune"],
            "{engine:?}"
        );
        // 0002 was recorded with its plan: it comes back exactly.
        let out = db.ws.ok(&["migrate", "down", "--to", "0001_items"]);
        assert!(!out.stderr.contains("did not record"), "{out}");
        all_restored(&db);

        // 0001 has none: reverted by its files, with a warning naming it.
        db.ws
            .ok(&["migrate", "down", "--to", "@root"])
            .assert_stderr_has(
                "0001_items was applied by a ripcord that did not record how to revert it",
            );
        assert!(!db.has_relation("items"), "{engine:?}");
    }
}

#[test]
fn an_unreadable_recorded_plan_is_refused_not_guessed() {
    for engine in ENGINES {
        let db = AppDb::new(bin(), engine, "rec_unreadable");
        items_and_destructive_change(&db);
        db.ws.ok(&["migrate", "up"]);
        db.exec(&format!(
            "UPDATE {} SET revert_plan = '{{\"version\": 99}}' WHERE name = '0002_prune'",
            db.ripcord_table("changes")
        ));
        db.ws
            .run(&["migrate", "down", "--to", "0001_items"])
            .assert_code(3)
            .assert_stderr_has("newer ripcord");
        assert_eq!(db.one("SELECT count(*) FROM items"), "6000", "{engine:?}");
    }
}
