//! PostgreSQL: `down` follows the plan recorded when a change was applied,
//! never the edited files (also with `--allow-drift`), older tracking
//! tables are upgraded in place; and a killed `up` does not let the next
//! one start while its statement still runs on the server.

use std::time::{Duration, Instant};

use ripcord_testing::data::write_file;
use ripcord_testing::pg::{self, PgCluster};
use ripcord_testing::process::{kill9_child, wait_until};
use ripcord_testing::Workspace;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

fn cluster() -> &'static PgCluster {
    pg::shared()
}

fn setup(name: &str) -> (Workspace, String) {
    let db = cluster()
        .create_database(name)
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    let url = cluster().url(&db);
    let mut ws = Workspace::new(bin());
    ws.append_config(&format!(
        "[targets.app]\nkind = \"postgres\"\nurl = \"{url}\"\n\n\
         [migrations]\ntarget = \"app\"\ndir = \"migrations\"\n"
    ));
    ws.init();
    (ws, db)
}

fn write(ws: &Workspace, rel: &str, text: &str) {
    write_file(&ws.path(rel), text.as_bytes());
}

fn one(db: &str, sql: &str) -> String {
    let rows = cluster().psql(db, sql);
    rows[0][0].clone().unwrap_or_default()
}

fn exec(db: &str, sql: &str) {
    cluster().psql(db, sql);
}

/// 70,000 items with a note each, in schema `public`; then a change without
/// a down script that deletes every seventh and drops the note column.
fn items_and_destructive_change(ws: &Workspace) {
    write(
        ws,
        "migrations/0001_items/up.sql",
        "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, note text);\n\
         INSERT INTO items SELECT i, i * 3, 'note ' || i FROM generate_series(1, 70000) i;\n",
    );
    write(ws, "migrations/0001_items/down.sql", "DROP TABLE items;\n");
    write(
        ws,
        "migrations/0002_prune/up.sql",
        "DELETE FROM items WHERE id % 7 = 0;\nALTER TABLE items DROP COLUMN note;\n",
    );
}

fn all_restored(db: &str) {
    assert_eq!(one(db, "SELECT count(*) FROM items"), "70000");
    assert_eq!(
        one(
            db,
            "SELECT count(*) FROM items WHERE note = 'note ' || id AND v = id * 3"
        ),
        "70000"
    );
}

/// Bug: `down --allow-drift` re-planned from the edited up script and put
/// nothing back from the recorded safety snapshot (there: 42,857 deleted
/// rows and 257,143 values lost; here 10,000 and 60,000).
#[test]
fn down_allow_drift_restores_from_the_recorded_snapshot_on_postgres() {
    let (ws, db) = setup("rec_drift");
    items_and_destructive_change(&ws);
    ws.ok(&["migrate", "up"]);
    assert_eq!(one(&db, "SELECT count(*) FROM items"), "60000");
    let plan: serde_json::Value = serde_json::from_str(&one(
        &db,
        "SELECT revert_plan FROM ripcord.changes WHERE name = '0002_prune'",
    ))
    .unwrap();
    assert_eq!(plan["destructive"], true, "{plan}");
    assert_eq!(plan["tables"][0]["name"], "items", "{plan}");

    // The applied change is edited: harmless now, with a down script that
    // only puts the column back.
    write(
        &ws,
        "migrations/0002_prune/up.sql",
        "CREATE INDEX items_v ON items (v);\n",
    );
    write(
        &ws,
        "migrations/0002_prune/down.sql",
        "ALTER TABLE items ADD COLUMN note text;\n",
    );
    let out = ws.run(&["migrate", "down", "--to", "0001_items", "--allow-drift"]);
    out.assert_code(0)
        .assert_stdout_has("from its safety snapshot")
        .assert_stdout_has("data loss: none");
    all_restored(&db);
}

/// Tracking tables made by a version that did not record plans: upgraded
/// by the next `up`; the old change is reverted from its files with a
/// warning, the new one by its recorded plan.
#[test]
fn older_tracking_tables_are_upgraded_and_old_changes_revert_as_before() {
    let (ws, db) = setup("rec_upgrade");
    items_and_destructive_change(&ws);
    ws.ok(&["migrate", "up", "--to", "0001_items"]);
    exec(&db, "ALTER TABLE ripcord.changes DROP COLUMN revert_plan");
    let status = ws.json(&["migrate", "status"]);
    assert_eq!(status["changes"][0]["state"], "applied", "{status}");

    ws.ok(&["migrate", "up"]);
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM ripcord.changes WHERE revert_plan IS NOT NULL"
        ),
        "1"
    );
    let out = ws.ok(&["migrate", "down", "--to", "0001_items"]);
    assert!(!out.stderr.contains("did not record"), "{out}");
    all_restored(&db);
    ws.ok(&["migrate", "down", "--to", "@root"])
        .assert_stderr_has(
            "0001_items was applied by a ripcord that did not record how to revert it",
        );
    assert_eq!(one(&db, "SELECT to_regclass('items') IS NULL"), "t");
}

/// The change counts the other sessions still running it, then sleeps.
fn sleeping_change(ws: &Workspace, seconds: u32) {
    write(
        ws,
        "migrations/0001_slow/up.sql",
        &format!(
            "INSERT INTO overlap SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND state <> 'idle' \
             AND query LIKE '%pg_sleep({seconds})%' AND pid <> pg_backend_pid();\n\
             SELECT pg_sleep({seconds});\n"
        ),
    );
    write(
        ws,
        "migrations/0001_slow/down.sql",
        "DELETE FROM overlap;\n",
    );
}

/// Whether a statement of the change is running, and its backend.
fn sleeper(db: &str, seconds: u32) -> Option<String> {
    cluster()
        .psql(
            db,
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND state = 'active' AND query LIKE '%pg_sleep({seconds})%' \
                 AND pid <> pg_backend_pid()"
            ),
        )
        .first()
        .and_then(|r| r[0].clone())
}

/// Whether some session holds the migration lock ("ripcord\0": its low half
/// is `objid`).
fn lock_held(db: &str) -> bool {
    one(
        db,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND objid::bigint = x'6f726400'::bigint",
    ) != "0"
}

/// Bug: the lock lived on a connection of its own, which the server ends at
/// once when `up` is killed, while the killed run's statement went on: a
/// second `up` ran the change again alongside it.
#[test]
fn a_killed_up_does_not_let_the_next_one_run_beside_its_statement() {
    let (ws, db) = setup("lock_killed_up");
    exec(&db, "CREATE TABLE overlap (others bigint NOT NULL)");
    sleeping_change(&ws, 4);

    let mut first = ws.spawn(&["migrate", "up"], &[]);
    assert!(
        wait_until(Duration::from_secs(60), || sleeper(&db, 4).is_some()),
        "the first run never reached its statement"
    );
    let (_, killed) = kill9_child(&mut first);
    assert!(killed);
    // The killed run's lock session ends at once; its statement does not.
    assert!(wait_until(Duration::from_secs(10), || !lock_held(&db)));
    assert!(
        sleeper(&db, 4).is_some(),
        "the statement should outlive its process"
    );

    let started = Instant::now();
    let out = ws.run(&["migrate", "up"]);
    out.assert_code(0);
    // The second run waited for the killed one's statement to end...
    assert!(started.elapsed() >= Duration::from_secs(2), "{out}");
    // ...so its own change saw nobody else running it, and the killed run
    // committed nothing.
    assert_eq!(
        one(&db, "SELECT string_agg(others::text, ',') FROM overlap"),
        "0"
    );
}

#[test]
fn a_statement_left_running_refuses_the_next_run_after_the_wait() {
    let (ws, db) = setup("lock_left_running");
    exec(&db, "CREATE TABLE overlap (others bigint NOT NULL)");
    sleeping_change(&ws, 6);

    let mut first = ws.spawn(&["migrate", "up"], &[]);
    assert!(
        wait_until(Duration::from_secs(60), || sleeper(&db, 6).is_some()),
        "the first run never reached its statement"
    );
    kill9_child(&mut first);
    assert!(wait_until(Duration::from_secs(10), || !lock_held(&db)));
    let pid = sleeper(&db, 6).expect("the statement outlives its process");

    let out = ws.run_env(&["migrate", "up"], &[("RIPCORD_MIGRATE_LOCK_WAIT", "1s")]);
    out.assert_code(3)
        .assert_stderr_has("still runs on the server")
        .assert_stderr_has(&format!("backend pid {pid}"))
        .assert_stderr_has(&format!("pg_terminate_backend({pid})"));
    assert_eq!(one(&db, "SELECT count(*) FROM overlap"), "0");

    // Once it has ended, the next run goes ahead.
    assert!(wait_until(Duration::from_secs(30), || sleeper(&db, 6).is_none()));
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        one(&db, "SELECT string_agg(others::text, ',') FROM overlap"),
        "0"
    );
}
