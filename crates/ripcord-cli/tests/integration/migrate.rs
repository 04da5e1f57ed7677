//! `migrate plan`, `migrate status` and `migrate lint`: read-only views of a
//! folder of migrations and of what a SQLite target has recorded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ripcord_migrate::tracking::{SqliteTracker, Tracker};
use ripcord_testing::app::{sqlite_app, write};
use ripcord_testing::Workspace;

use crate::common::*;

/// A workspace with a SQLite target `app` (not created yet) and
/// `[migrations] target = "app"`, `dir = "migrations"`.
fn setup() -> (Workspace, PathBuf) {
    sqlite_app(bin(), "")
}

/// Three native changes: a table, a column, and the column dropped again
/// without a down script.
fn native_plan(ws: &Workspace) {
    write(
        ws,
        "migrations/0001_users/up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    write(ws, "migrations/0001_users/down.sql", "DROP TABLE users;\n");
    write(
        ws,
        "migrations/0001_users/verify.sql",
        "SELECT id, name FROM users WHERE 0;\n",
    );
    write(
        ws,
        "migrations/0002_email/up.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    write(
        ws,
        "migrations/0002_email/down.sql",
        "ALTER TABLE users DROP COLUMN email;\n",
    );
    write(
        ws,
        "migrations/0002_email/verify.sql",
        "SELECT email FROM users WHERE 0;\n",
    );
    write(
        ws,
        "migrations/0003_drop_name/up.sql",
        "-- the name moves elsewhere\nALTER TABLE users DROP COLUMN name;\n",
    );
    write(
        ws,
        "migrations/plan.toml",
        "[[phase]]\nname = \"expand\"\nchanges = [\"0001_users\", \"0002_email\"]\n\n\
         [[phase]]\nname = \"contract\"\nchanges = [\"0003_drop_name\"]\n",
    );
}

fn sqitch_plan(ws: &Workspace) {
    write(
        ws,
        "migrations/sqitch.plan",
        "%syntax-version=1.0.0\n%project=app\n\n\
         users 2024-01-31T12:00:00Z Ann <ann@example.com> # users\n\
         widgets [users] 2024-02-01T12:00:00Z Ann <ann@example.com> # widgets\n\
         @v1 2024-02-01T13:00:00Z Ann <ann@example.com> # first release\n",
    );
    write(
        ws,
        "migrations/deploy/users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    write(ws, "migrations/revert/users.sql", "DROP TABLE users;\n");
    write(ws, "migrations/verify/users.sql", "SELECT id FROM users;\n");
    write(
        ws,
        "migrations/deploy/widgets.sql",
        "CREATE TABLE widgets (id INTEGER PRIMARY KEY);\n",
    );
}

fn flyway_plan(ws: &Workspace) {
    write(
        ws,
        "migrations/V1__init.sql",
        "CREATE TABLE accounts (id bigint PRIMARY KEY, balance int);\n",
    );
    write(ws, "migrations/U1__init.sql", "DROP TABLE accounts;\n");
    write(
        ws,
        "migrations/V2__money.sql",
        "ALTER TABLE accounts ALTER COLUMN balance TYPE numeric(12, 2);\n",
    );
    write(
        ws,
        "migrations/V3__index.sql",
        "CREATE INDEX CONCURRENTLY accounts_balance ON accounts (balance);\n",
    );
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes: {v}"))
        .iter()
        .map(|c| c["change"].as_str().expect("name").to_string())
        .collect()
}

fn states(v: &serde_json::Value) -> Vec<(String, String)> {
    v["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes: {v}"))
        .iter()
        .map(|c| {
            (
                c["change"].as_str().expect("name").to_string(),
                c["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

/// Records `change` as applied, as the engine would after running it.
fn record_applied(db: &Path, change: &str, order: i32, up: &Path) {
    let sql = std::fs::read_to_string(up).expect("read up script");
    let mut tracker = SqliteTracker::open(db).expect("open the database");
    tracker.ensure_schema().expect("create the tracking tables");
    tracker
        .record_start(
            change,
            order,
            &ripcord_migrate::checksum(&sql),
            "tester",
            None,
        )
        .expect("record start");
    tracker
        .record_done(change, Duration::from_millis(5))
        .expect("record done");
}

#[test]
fn plan_of_a_native_folder() {
    let (ws, _db) = setup();
    native_plan(&ws);
    let out = ws.ok(&["migrate", "plan"]);
    out.assert_stdout_has("3 changes")
        .assert_stdout_has("native")
        .assert_stdout_has("0003_drop_name")
        .assert_stdout_has("contract")
        .assert_stdout_has("pending");

    let v = ws.json(&["migrate", "plan"]);
    assert_eq!(v["format"], "native");
    assert_eq!(v["state_known"], true);
    assert_eq!(
        names(&v),
        ["0001_users", "0002_email", "0003_drop_name"],
        "{v}"
    );
    let last = &v["changes"][2];
    assert_eq!(last["phase"], "contract");
    assert_eq!(last["down"], false);
    assert_eq!(last["verify"], false);
    assert_eq!(last["state"], "pending");
    assert_eq!(v["changes"][0]["down"], true);
    assert_eq!(v["changes"][0]["verify"], true);
    assert!(
        !ws.path("app.db").exists(),
        "plan must not create the database"
    );
}

#[test]
fn plan_of_a_sqitch_project() {
    let (ws, _db) = setup();
    sqitch_plan(&ws);
    let v = ws.json(&["migrate", "plan"]);
    assert_eq!(v["format"], "sqitch");
    assert_eq!(names(&v), ["users", "widgets"]);
    assert_eq!(v["changes"][1]["requires"][0], "users");
    assert_eq!(v["changes"][1]["phase"], "v1");
    assert_eq!(v["changes"][0]["down"], true);
    assert_eq!(v["changes"][1]["down"], false);
    ws.ok(&["migrate", "plan", "--format", "sqitch"])
        .assert_stdout_has("sqitch")
        .assert_stdout_has("widgets");
    // Forcing the wrong format is a usage error.
    ws.run(&["migrate", "plan", "--format", "flyway"])
        .assert_code(2)
        .assert_stderr_has("no flyway migrations");
    ws.run(&["migrate", "plan", "--format", "liquibas"])
        .assert_code(2)
        .assert_stderr_has("unknown migration format")
        .assert_stderr_has("hint:");
}

#[test]
fn plan_with_an_unreachable_database_warns() {
    let mut ws = workspace();
    ws.append_config(
        "[targets.pg]\nkind = \"postgres\"\nurl = \"postgres://nobody@127.0.0.1:1/none?connect_timeout=2\"\n\n\
         [migrations]\ntarget = \"pg\"\n",
    );
    flyway_plan(&ws);
    let out = ws.ok(&["migrate", "plan"]);
    out.assert_stderr_has("warning:")
        .assert_stdout_has("status unknown")
        .assert_stdout_has("V2__money");
    let v = ws.json(&["migrate", "plan"]);
    assert_eq!(v["format"], "flyway");
    assert_eq!(v["state_known"], false);
    assert!(v["changes"][0]["state"].is_null(), "{v}");
}

#[test]
fn status_of_a_fresh_database_is_all_pending() {
    let (ws, db) = setup();
    native_plan(&ws);
    let v = ws.json(&["migrate", "status"]);
    assert!(states(&v).iter().all(|(_, s)| s == "pending"), "{v}");
    assert_eq!(v["counts"]["pending"], 3);
    assert!(!db.exists(), "status must not create the database");

    // An existing database without tracking tables: still all pending, and
    // no tables are created.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER);")
        .unwrap();
    ws.ok(&["migrate", "status"])
        .assert_stdout_has("no tracking tables")
        .assert_stdout_has("3 pending");
    let tables: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'ripcord%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

#[test]
fn status_applied_then_drifted() {
    let (ws, db) = setup();
    native_plan(&ws);
    let up = ws.path("migrations/0001_users/up.sql");
    record_applied(&db, "0001_users", 0, &up);

    let v = ws.json(&["migrate", "status"]);
    assert_eq!(
        states(&v),
        [
            ("0001_users".to_string(), "applied".to_string()),
            ("0002_email".to_string(), "pending".to_string()),
            ("0003_drop_name".to_string(), "pending".to_string()),
        ]
    );
    assert_eq!(v["history_matches"], true);
    ws.ok(&["migrate", "plan"]).assert_stdout_has("applied");

    // Both changes of the expand phase applied: the current phase is expand.
    record_applied(
        &db,
        "0002_email",
        1,
        &ws.path("migrations/0002_email/up.sql"),
    );
    let v = ws.json(&["migrate", "status"]);
    assert_eq!(v["phase"], "expand");

    // Editing an applied script is drift: exit 3 with a hint.
    write(
        &ws,
        "migrations/0001_users/up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER);\n",
    );
    let out = ws.run(&["migrate", "status"]);
    out.assert_code(3)
        .assert_stdout_has("drifted")
        .assert_stderr_has("drift")
        .assert_stderr_has("0001_users")
        .assert_stderr_has("hint:");
    let out = ws.run(&["--json", "migrate", "status"]);
    out.assert_code(3);
    assert_eq!(states(&out.json())[0].1, "drifted");
}

#[test]
fn status_refuses_a_dirty_change_and_a_foreign_history() {
    let (ws, db) = setup();
    native_plan(&ws);
    let mut tracker = SqliteTracker::open(&db).unwrap();
    tracker.ensure_schema().unwrap();
    tracker
        .record_start("0001_users", 0, "abc", "tester", None)
        .unwrap();
    ws.run(&["migrate", "status"])
        .assert_code(3)
        .assert_stderr_has("never finished")
        .assert_stderr_has("0001_users");

    tracker
        .record_start("9999_elsewhere", 1, "def", "tester", None)
        .unwrap();
    tracker
        .record_done("9999_elsewhere", Duration::from_millis(1))
        .unwrap();
    ws.run(&["migrate", "status"])
        .assert_code(3)
        .assert_stderr_has("does not match the plan")
        .assert_stdout_has("unknown");
}

#[test]
fn lint_findings() {
    let mut ws = workspace();
    ws.append_config(
        "[targets.pg]\nkind = \"postgres\"\nurl = \"postgres://nobody@127.0.0.1:1/none\"\n\n\
         [migrations]\ntarget = \"pg\"\n",
    );
    flyway_plan(&ws);
    write(
        &ws,
        "migrations/V4__drop.sql",
        "SELECT 1;\nALTER TABLE accounts DROP COLUMN balance;\n",
    );
    let out = ws.ok(&["migrate", "lint"]);
    out.assert_stdout_has("V4__drop.sql:2")
        .assert_stdout_has("destructive-without-down")
        .assert_stdout_has("V3__index.sql:1")
        .assert_stdout_has("no-transaction")
        .assert_stdout_has("table-rewrite");

    let v = ws.json(&["migrate", "lint"]);
    let findings = v["findings"].as_array().expect("findings");
    let has = |change: &str, kind: &str| {
        findings
            .iter()
            .any(|f| f["change"] == change && f["kind"] == kind)
    };
    assert!(has("V4__drop", "destructive-without-down"), "{v}");
    assert!(has("V3__index", "no-transaction"), "{v}");
    assert!(has("V2__money", "table-rewrite"), "{v}");
    // Flyway has no verify scripts: lacking one is not a finding.
    assert!(!findings.iter().any(|f| f["kind"] == "no-verify"), "{v}");
    // V1 has an undo script: dropping its table there is expected.
    assert!(!has("V1__init", "destructive-without-down"), "{v}");
    let drop = findings
        .iter()
        .find(|f| f["change"] == "V4__drop" && f["kind"] == "destructive-without-down")
        .unwrap();
    assert_eq!(drop["line"], 2);

    ws.run(&["migrate", "lint", "--strict"]).assert_code(1);
}

#[test]
fn lint_asks_for_verify_scripts_only_where_the_format_has_them() {
    // golang-migrate has no verify scripts: a clean plan passes --strict.
    let (ws, _db) = setup();
    write(
        &ws,
        "migrations/1_users.up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    write(&ws, "migrations/1_users.down.sql", "DROP TABLE users;\n");
    write(
        &ws,
        "migrations/2_email.up.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    write(
        &ws,
        "migrations/2_email.down.sql",
        "ALTER TABLE users DROP COLUMN email;\n",
    );
    let v = ws.json(&["migrate", "lint", "--strict"]);
    assert_eq!(v["format"], "golang-migrate");
    assert_eq!(v["findings"].as_array().unwrap().len(), 0, "{v}");

    // A native change can have one, and is told when it has none.
    let (ws, _db) = setup();
    write(
        &ws,
        "migrations/0001_t/up.sql",
        "CREATE TABLE t (id INTEGER PRIMARY KEY);\n",
    );
    write(&ws, "migrations/0001_t/down.sql", "DROP TABLE t;\n");
    ws.run(&["migrate", "lint", "--strict"])
        .assert_code(1)
        .assert_stdout_has("no-verify");
}

#[test]
fn lint_reports_a_syntax_error_and_fails() {
    let (ws, _db) = setup();
    write(
        &ws,
        "migrations/1_users.up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    write(&ws, "migrations/1_users.down.sql", "DROP TABLE users;\n");
    write(
        &ws,
        "migrations/2_oops.up.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\nCREAT TABLE oops (x);\n",
    );
    write(&ws, "migrations/2_oops.down.sql", "DROP TABLE oops;\n");
    // Without --strict too: the plan cannot run.
    let out = ws.run(&["migrate", "lint"]);
    out.assert_code(2)
        .assert_stdout_has("migrations/2_oops.up.sql:2: syntax-error: near \"CREAT\": syntax error")
        .assert_stderr_has("1 syntax error");
    let out = ws.run(&["--json", "migrate", "lint"]);
    out.assert_code(2);
    let v = out.json();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    let f = &findings[0];
    assert_eq!(f["kind"], "syntax-error", "{v}");
    assert_eq!(f["severity"], "error", "{v}");
    assert_eq!(f["file"], "migrations/2_oops.up.sql", "{v}");
    assert_eq!(f["line"], 2, "{v}");
    assert!(f["detail"].as_str().unwrap().contains("CREAT"), "{v}");
    // No `uncertain-tables` for the same statement: it is a typo, not an
    // unknown table set.
    assert!(
        !findings.iter().any(|f| f["kind"] == "uncertain-tables"),
        "{v}"
    );

    // `up` refuses the same statement, with the same exit code.
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("2_oops.up.sql:2: syntax error");
}

#[test]
fn lint_of_a_clean_plan_is_quiet() {
    let (ws, _db) = setup();
    write(
        &ws,
        "migrations/0001_t/up.sql",
        "CREATE TABLE t (id INTEGER PRIMARY KEY);\n",
    );
    write(&ws, "migrations/0001_t/down.sql", "DROP TABLE t;\n");
    write(&ws, "migrations/0001_t/verify.sql", "SELECT id FROM t;\n");
    let v = ws.json(&["migrate", "lint", "--strict"]);
    assert_eq!(v["dialect"], "sqlite");
    assert_eq!(v["findings"].as_array().unwrap().len(), 0, "{v}");
}

#[test]
fn bad_input_exits_2() {
    // A cycle of requirements.
    let (ws, _db) = setup();
    write(&ws, "migrations/0001_a/up.sql", "SELECT 1;\n");
    write(&ws, "migrations/0002_b/up.sql", "SELECT 2;\n");
    write(
        &ws,
        "migrations/plan.toml",
        "[changes.0001_a]\nrequires = [\"0002_b\"]\n\n[changes.0002_b]\nrequires = [\"0001_a\"]\n",
    );
    for cmd in ["plan", "status", "lint"] {
        ws.run(&["migrate", cmd])
            .assert_code(2)
            .assert_stderr_has("cycle")
            .assert_stderr_has("hint:");
    }

    // A file the plan names is missing.
    let (ws, _db) = setup();
    sqitch_plan(&ws);
    std::fs::remove_file(ws.path("migrations/deploy/widgets.sql")).unwrap();
    ws.run(&["migrate", "plan"])
        .assert_code(2)
        .assert_stderr_has("widgets.sql")
        .assert_stderr_has("does not exist")
        .assert_stderr_has("hint:");

    // No [migrations] section.
    let mut ws = workspace();
    ws.sqlite_target("app", "app.db");
    native_plan(&ws);
    ws.run(&["migrate", "status"])
        .assert_code(2)
        .assert_stderr_has("[migrations]")
        .assert_stderr_has("hint:");

    // An unknown target, and an invalid on_conflict.
    let mut ws = workspace();
    ws.append_config("[migrations]\ntarget = \"nope\"\n");
    native_plan(&ws);
    ws.run(&["migrate", "plan"])
        .assert_code(2)
        .assert_stderr_has("unknown target");
    let mut ws = workspace();
    ws.append_config("[migrations]\non_conflict = \"merge\"\n");
    ws.run(&["migrate", "plan"])
        .assert_code(2)
        .assert_stderr_has("keep-new");

    // No folder of migrations at all.
    let (ws, _db) = setup();
    ws.run(&["migrate", "plan"]).assert_code(2);
}
