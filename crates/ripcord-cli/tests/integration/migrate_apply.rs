//! `migrate up`, `migrate down`, `rollback` and `rehearse` against SQLite:
//! every reader, every way back, every on_conflict policy, automatic
//! revert, bad input, and kill -9 in the middle.

use std::path::{Path, PathBuf};

use ripcord_testing::app::{sqlite_app, sqlite_exec as exec, sqlite_rows as rows, write};
use ripcord_testing::{repo_hashes, Workspace};

use crate::common::*;

/// A workspace with a repository, a SQLite target `app` and
/// `[migrations] dir = "migrations"`.
fn setup() -> (Workspace, PathBuf) {
    setup_with("")
}

fn setup_with(extra: &str) -> (Workspace, PathBuf) {
    let (ws, db) = sqlite_app(bin(), extra);
    ws.init();
    (ws, db)
}

fn tables(db: &Path) -> Vec<String> {
    rows(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name NOT LIKE 'ripcord_%' ORDER BY name",
    )
}

fn states(ws: &Workspace) -> Vec<String> {
    let v = ws.json(&["migrate", "status"]);
    v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["change"].as_str().unwrap(),
                c["state"].as_str().unwrap()
            )
        })
        .collect()
}

/// The demo's story: phase one makes `users` with e-mail addresses, phase
/// two drops the column, with no down script.
fn two_phase(ws: &Workspace) {
    write(
        ws,
        "migrations/plan.toml",
        "[[phase]]\nname = \"expand\"\nchanges = [\"0001_users\", \"0002_seed\"]\n\n\
         [[phase]]\nname = \"contract\"\nchanges = [\"0003_drop_email\"]\n",
    );
    write(
        ws,
        "migrations/0001_users/up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);\n",
    );
    write(ws, "migrations/0001_users/down.sql", "DROP TABLE users;\n");
    write(
        ws,
        "migrations/0001_users/verify.sql",
        "SELECT id, name, email FROM users WHERE 0;\n",
    );
    write(
        ws,
        "migrations/0002_seed/up.sql",
        "INSERT INTO users (name, email) VALUES ('ann', 'ann@example.com'), \
         ('bob', 'bob@example.com'), ('cy', 'cy@example.com');\n",
    );
    write(ws, "migrations/0002_seed/down.sql", "DELETE FROM users;\n");
    write(
        ws,
        "migrations/0003_drop_email/up.sql",
        "ALTER TABLE users DROP COLUMN email;\n",
    );
}

const ALL_USERS: &str = "SELECT id, name, email FROM users ORDER BY id";

#[test]
fn rollback_puts_a_dropped_column_back_with_its_data() {
    let (ws, db) = setup();
    two_phase(&ws);
    let out = ws.ok(&["migrate", "up"]);
    out.assert_stdout_has("safety snapshot")
        .assert_stdout_has("3 changes applied");
    assert_eq!(rows(&db, "SELECT id, name FROM users ORDER BY id").len(), 3);
    // The application goes on writing after the change.
    exec(
        &db,
        "INSERT INTO users (name) VALUES ('dee'); UPDATE users SET name = 'bobby' WHERE id = 2;",
    );

    let status = ws.json(&["migrate", "status"]);
    assert_eq!(status["phase"], "contract");
    let out = ws.ok(&["rollback", "--to", "@expand"]);
    // Three ways: the application's insert and update are kept, the
    // column the change dropped comes back under them.
    out.assert_stdout_has("from its safety snapshot")
        .assert_stdout_has("written by the application since: 1 inserted, 1 updated, 0 deleted")
        .assert_stdout_has("kept as the application left them: 2 rows")
        .assert_stdout_has("data loss: none");
    assert_eq!(
        rows(&db, ALL_USERS),
        [
            "1|ann|ann@example.com",
            "2|bobby|bob@example.com",
            "3|cy|cy@example.com",
            "4|dee|"
        ]
    );
    assert_eq!(
        states(&ws),
        [
            "0001_users=applied",
            "0002_seed=applied",
            "0003_drop_email=pending"
        ]
    );
    // The history records the deploys and the revert.
    let events = rows(&db, "SELECT change, kind FROM ripcord_events ORDER BY id");
    assert!(
        events.contains(&"0003_drop_email|revert".to_string()),
        "{events:?}"
    );
    // Seeding destroys nothing and has a down script: no snapshot needed.
    assert_eq!(
        rows(
            &db,
            "SELECT coalesce(safety_snapshot, '-') FROM ripcord_changes WHERE name = '0002_seed'"
        ),
        ["-"]
    );

    // Up again, then all the way down with the down scripts.
    ws.ok(&["migrate", "up"]);
    ws.ok(&["migrate", "down", "--to", "@root"])
        .assert_stdout_has("by its down script");
    assert!(tables(&db).is_empty(), "{:?}", tables(&db));
}

#[test]
fn on_conflict_policies_decide_about_rows_written_since() {
    // keep-new is the default (above); snapshot discards, review sets aside.
    for (policy, expect_rows, expect_review) in [("snapshot", 3, 0), ("review", 3, 1)] {
        let (ws, db) = setup_with(&format!("on_conflict = \"{policy}\"\n"));
        two_phase(&ws);
        ws.ok(&["migrate", "up"]);
        exec(&db, "INSERT INTO users (name) VALUES ('dee');");
        let out = ws.ok(&["migrate", "down", "--to", "0002_seed"]);
        assert_eq!(rows(&db, ALL_USERS).len(), expect_rows, "{policy}");
        assert_eq!(
            rows(&db, "SELECT email FROM users WHERE id = 2"),
            ["bob@example.com"]
        );
        let review = rows(
            &db,
            "SELECT count(*) FROM sqlite_master WHERE name = 'ripcord_review'",
        );
        if expect_review > 0 {
            assert_eq!(review, ["1"]);
            let set_aside = rows(
                &db,
                "SELECT table_name, change, row_data FROM ripcord_review",
            );
            assert_eq!(set_aside.len(), 1, "{set_aside:?}");
            assert!(set_aside[0].contains("dee"), "{set_aside:?}");
            out.assert_stdout_has("review").assert_stdout_has("dee");
        } else {
            out.assert_stderr_has("data loss: 1 row");
        }
    }

    // Per-table settings, and a table without a primary key.
    let (ws, db) = setup_with("[migrations.tables.users]\non_conflict = \"snapshot\"\n");
    write(&ws, "migrations/0001_t/up.sql", "CREATE TABLE logs (at TEXT, line TEXT);\nCREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);\nINSERT INTO logs VALUES ('1', 'a');\nINSERT INTO users VALUES (1, 'x');\n");
    write(
        &ws,
        "migrations/0001_t/down.sql",
        "DROP TABLE logs;\nDROP TABLE users;\n",
    );
    write(
        &ws,
        "migrations/0002_strip/up.sql",
        "UPDATE logs SET line = upper(line);\nUPDATE users SET email = NULL;\n",
    );
    ws.ok(&["migrate", "up"]);
    exec(
        &db,
        "INSERT INTO logs VALUES ('2', 'b'); INSERT INTO users VALUES (2, 'y');",
    );
    let v = ws.json(&["migrate", "down", "--to", "0001_t"]);
    let tables = v["changes"][0]["tables"]
        .as_array()
        .expect("tables")
        .clone();
    let find = |name: &str| {
        tables
            .iter()
            .find(|t| t["table"] == name)
            .expect(name)
            .clone()
    };
    // Without a key the rows are a multiset: the application's new row is
    // kept, the row the change rewrote is back as it was.
    assert_eq!(find("logs")["policy"], "keep-new");
    assert_eq!(find("logs")["kept_rows"], 1);
    assert_eq!(find("logs")["review_rows"], 0);
    assert_eq!(find("users")["policy"], "snapshot");
    assert_eq!(find("users")["discarded_rows"], 1);
    assert_eq!(v["rows_lost"], 1);
    assert_eq!(rows(&db, "SELECT * FROM logs ORDER BY at"), ["1|a", "2|b"]);
    assert_eq!(rows(&db, "SELECT * FROM users"), ["1|x"]);
}

#[test]
fn every_reader_applies_and_reverts() {
    type Plan = &'static [(&'static str, &'static str)];
    let plans: [(&str, Plan); 5] = [
        (
            "sqitch",
            &[
                ("sqitch.plan", "%syntax-version=1.0.0\n%project=app\n\nusers 2026-01-01T00:00:00Z A <a@x> # users\n@v1 2026-01-01T00:00:00Z A <a@x> # tag\nnick [users] 2026-01-02T00:00:00Z A <a@x> # nick\n"),
                ("deploy/users.sql", "-- Deploy app:users to sqlite\nBEGIN;\nCREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users VALUES (1, 'ann');\nCOMMIT;\n"),
                ("revert/users.sql", "BEGIN;\nDROP TABLE users;\nCOMMIT;\n"),
                ("verify/users.sql", "BEGIN;\nSELECT id, name FROM users WHERE 0;\nROLLBACK;\n"),
                ("deploy/nick.sql", "BEGIN;\nALTER TABLE users DROP COLUMN name;\nCOMMIT;\n"),
            ],
        ),
        (
            "flyway",
            &[
                ("V1__users.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users VALUES (1, 'ann');\n"),
                ("U1__users.sql", "DROP TABLE users;\n"),
                ("V2__nick.sql", "ALTER TABLE users DROP COLUMN name;\n"),
            ],
        ),
        (
            "golang-migrate",
            &[
                ("1_users.up.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users VALUES (1, 'ann');\n"),
                ("1_users.down.sql", "DROP TABLE users;\n"),
                ("2_nick.up.sql", "ALTER TABLE users DROP COLUMN name;\n"),
            ],
        ),
        (
            "dbmate",
            &[
                ("20260101000000_users.sql", "-- migrate:up\nCREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users VALUES (1, 'ann');\n\n-- migrate:down\nDROP TABLE users;\n"),
                ("20260102000000_nick.sql", "-- migrate:up\nALTER TABLE users DROP COLUMN name;\n\n-- migrate:down\n"),
            ],
        ),
        (
            "timestamp",
            &[
                ("202601010000_users.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users VALUES (1, 'ann');\n"),
                ("202601010000_users_rollback.sql", "DROP TABLE users;\n"),
                ("202601020000_nick.sql", "ALTER TABLE users DROP COLUMN name;\n"),
            ],
        ),
    ];
    for (format, files) in plans {
        let (ws, db) = setup();
        for (rel, text) in files {
            write(&ws, &format!("migrations/{rel}"), text);
        }
        ws.ok(&["migrate", "up"]);
        assert_eq!(rows(&db, "SELECT * FROM users"), ["1"], "{format}");
        let v = ws.json(&["migrate", "status"]);
        assert_eq!(v["format"], format);
        assert_eq!(v["counts"]["applied"], 2, "{format}");
        // The second change has no down script: its snapshot brings the name back.
        let first = v["changes"][0]["change"].as_str().unwrap().to_string();
        ws.ok(&["migrate", "down", "--to", &first]);
        assert_eq!(rows(&db, "SELECT * FROM users"), ["1|ann"], "{format}");
        ws.ok(&["migrate", "down", "--to", "@root"]);
        assert!(tables(&db).is_empty(), "{format}: {:?}", tables(&db));
        let v = ws.json(&["migrate", "status"]);
        assert_eq!(v["counts"]["pending"], 2, "{format}");
    }
}

#[test]
fn a_failing_change_is_undone_at_once() {
    // In a transaction: the first statement ran, the second fails.
    let (ws, db) = setup();
    two_phase(&ws);
    write(
        &ws,
        "migrations/0004_bad/up.sql",
        "UPDATE users SET name = 'x';\nINSERT INTO nowhere VALUES (1);\n",
    );
    let out = ws.run(&["migrate", "up"]);
    out.assert_code(1)
        .assert_stderr_has("0004_bad")
        .assert_stderr_has("no such table: nowhere")
        .assert_stderr_has("transaction was rolled back");
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ann", "bob", "cy"]
    );
    assert_eq!(
        states(&ws),
        [
            "0001_users=applied",
            "0002_seed=applied",
            "0003_drop_email=applied",
            "0004_bad=pending"
        ]
    );
    let fails = rows(&db, "SELECT change FROM ripcord_events WHERE kind = 'fail'");
    assert_eq!(fails, ["0004_bad"]);

    // A verify that fails undoes its change too.
    write(
        &ws,
        "migrations/0004_bad/up.sql",
        "UPDATE users SET name = 'x';\n",
    );
    write(
        &ws,
        "migrations/0004_bad/verify.sql",
        "SELECT CASE WHEN (SELECT count(*) FROM users WHERE name = 'x') > 0 \
         THEN json('not json') END;\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(1)
        .assert_stderr_has("(verify)");
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ann", "bob", "cy"]
    );

    // Outside a transaction (VACUUM cannot run in one): reverted from the
    // safety snapshot.
    write(
        &ws,
        "migrations/0004_bad/up.sql",
        "UPDATE users SET name = 'x';\nVACUUM;\nINSERT INTO nowhere VALUES (1);\n",
    );
    std::fs::remove_file(ws.path("migrations/0004_bad/verify.sql")).unwrap();
    ws.run(&["migrate", "up"])
        .assert_code(1)
        .assert_stderr_has("outside a transaction")
        .assert_stderr_has("from its safety snapshot");
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ann", "bob", "cy"]
    );
    assert_eq!(states(&ws).last().unwrap(), "0004_bad=pending");
}

#[test]
fn bad_input_changes_nothing() {
    // A syntax error in the second of two pending changes: the first does not run either.
    let (ws, db) = setup();
    two_phase(&ws);
    write(
        &ws,
        "migrations/0003_drop_email/up.sql",
        "ALTER TABLE users DROP COLUM email;\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("0003_drop_email")
        .assert_stderr_has("syntax error")
        .assert_stderr_has("up.sql:1");
    assert!(tables(&db).is_empty());

    // A missing file named in a plan.
    let (ws, db) = setup();
    write(
        &ws,
        "migrations/sqitch.plan",
        "%project=app\n\nusers 2026-01-01T00:00:00Z A <a@x> # users\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("deploy/users.sql");
    assert!(tables(&db).is_empty());

    // A cycle.
    let (ws, db) = setup();
    two_phase(&ws);
    write(
        &ws,
        "migrations/plan.toml",
        "[changes.0001_users]\nrequires = [\"0002_seed\"]\n[changes.0002_seed]\nrequires = [\"0001_users\"]\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("cycle");
    assert!(tables(&db).is_empty());

    // An unknown --to, up and down.
    let (ws, db) = setup();
    two_phase(&ws);
    ws.run(&["migrate", "up", "--to", "0002_sed"])
        .assert_code(2)
        .assert_stderr_has("0002_seed");
    assert!(tables(&db).is_empty());
    ws.ok(&["migrate", "up"]);
    ws.run(&["migrate", "down", "--to", "@nope"]).assert_code(2);
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord_changes"), ["3"]);

    // A plan that does not match the database's history.
    std::fs::remove_dir_all(ws.path("migrations/0002_seed")).unwrap();
    write(
        &ws,
        "migrations/plan.toml",
        "[[phase]]\nname = \"expand\"\nchanges = [\"0001_users\"]\n",
    );
    for args in [
        &["migrate", "up"][..],
        &["migrate", "down", "--to", "@root"],
    ] {
        ws.run(args)
            .assert_code(3)
            .assert_stderr_has("does not match the database's history");
    }
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord_changes"), ["3"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM users"), ["3"]);
}

#[test]
fn dry_run_drift_and_targets() {
    let (ws, db) = setup();
    two_phase(&ws);
    let v = ws.json(&["migrate", "up", "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["changes"].as_array().unwrap().len(), 3);
    assert_eq!(v["changes"][2]["snapshot_scope"]["scope"], "tables");
    assert!(tables(&db).is_empty());

    ws.ok(&["migrate", "up", "--to", "@expand"]);
    assert_eq!(
        states(&ws),
        [
            "0001_users=applied",
            "0002_seed=applied",
            "0003_drop_email=pending"
        ]
    );
    // An applied script edited afterwards is drift: refused, unless allowed.
    write(
        &ws,
        "migrations/0002_seed/up.sql",
        "INSERT INTO users (name) VALUES ('zed');\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(3)
        .assert_stderr_has("drift")
        .assert_stderr_has("--allow-drift");
    assert_eq!(rows(&db, "SELECT count(*) FROM users"), ["3"]);
    ws.ok(&["migrate", "up", "--allow-drift"]);
    let v = ws.json(&[
        "migrate",
        "down",
        "--to",
        "@root",
        "--dry-run",
        "--allow-drift",
    ]);
    assert_eq!(v["changes"].as_array().unwrap().len(), 3);
    assert_eq!(v["changes"][0]["how"], "snapshot");
    assert_eq!(v["changes"][2]["how"], "down-script");
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord_changes"), ["3"]);
}

fn killed(out: &ripcord_testing::Output) {
    assert_eq!(
        out.signal,
        Some(9),
        "expected a kill at the failpoint\n{out}"
    );
}

#[test]
fn kill_9_during_up_and_down_loses_nothing() {
    // Inside the transaction, just before it commits: nothing happened.
    let (ws, db) = setup();
    two_phase(&ws);
    ws.ok(&["migrate", "up", "--to", "@expand"]);
    killed(&ws.run_env(
        &["migrate", "up"],
        &[("RIPCORD_FAILPOINT", "migrate-change-ran")],
    ));
    assert_eq!(states(&ws).last().unwrap(), "0003_drop_email=pending");
    assert_eq!(rows(&db, ALL_USERS).len(), 3);
    ws.ok(&["migrate", "up"]);

    // During the revert, before it commits: still applied; down again works.
    killed(&ws.run_env(
        &["migrate", "down", "--to", "@expand"],
        &[("RIPCORD_FAILPOINT", "migrate-revert-ran")],
    ));
    assert_eq!(states(&ws).last().unwrap(), "0003_drop_email=applied");
    // The killed run's repository lock is stale; `unlock` clears it.
    ws.ok(&["unlock"]);
    ws.ok(&["verify"]);
    ws.ok(&["migrate", "down", "--to", "@expand"]);
    assert_eq!(rows(&db, ALL_USERS)[1], "2|bob|bob@example.com");

    // Outside a transaction, between statements: dirty, refused, reverted
    // from the snapshot by down, then applied again.
    write(
        &ws,
        "migrations/0003_drop_email/up.sql",
        "UPDATE users SET name = upper(name);\nVACUUM;\nALTER TABLE users DROP COLUMN email;\n",
    );
    killed(&ws.run_env(
        &["migrate", "up", "--allow-drift"],
        &[("RIPCORD_FAILPOINT", "migrate-statement-ran")],
    ));
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ANN", "BOB", "CY"]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT state, transactional FROM ripcord_changes WHERE name = '0003_drop_email'"
        ),
        ["dirty|0"]
    );
    ws.run(&["migrate", "status"])
        .assert_code(3)
        .assert_stdout_has("dirty (no transaction)")
        .assert_stderr_has("never finished");
    ws.run(&["migrate", "up"])
        .assert_code(3)
        .assert_stderr_has("dirty");
    ws.ok(&["migrate", "down", "--to", "@expand"])
        .assert_stdout_has("it was dirty");
    assert_eq!(
        rows(&db, ALL_USERS),
        [
            "1|ann|ann@example.com",
            "2|bob|bob@example.com",
            "3|cy|cy@example.com"
        ]
    );
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ANN", "BOB", "CY"]
    );
    ws.ok(&["unlock"]);
    ws.ok(&["verify"]);
}

#[test]
fn rehearse_says_verified_only_for_changes_with_a_verify_script() {
    // golang-migrate has no verify scripts: nothing is called verified.
    let (ws, db) = setup();
    exec(&db, "PRAGMA user_version = 1;");
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
    let out = ws.ok(&["migrate", "rehearse"]);
    let text = out.all_text();
    assert!(
        text.contains("up: 2 changes applied; none has a verify script"),
        "{out}"
    );
    assert!(
        text.contains("rehearsal passed: 2 changes applied (none has a verify script)"),
        "{out}"
    );
    assert!(!text.contains("verified"), "{out}");
    let v = ws.json(&["migrate", "rehearse"]);
    for c in v["changes"].as_array().unwrap() {
        assert_eq!(c["verified"], false, "{v}");
    }

    // Native: one of three changes has a verify script.
    let (ws, db) = setup();
    exec(&db, "PRAGMA user_version = 1;");
    two_phase(&ws);
    let out = ws.ok(&["migrate", "rehearse"]);
    let text = out.all_text();
    assert!(
        text.contains("up: 3 changes applied; 1 of them verified by its verify script"),
        "{out}"
    );
    let v = ws.json(&["migrate", "rehearse"]);
    let verified: Vec<bool> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["verified"].as_bool().unwrap())
        .collect();
    assert_eq!(verified, [true, false, false], "{v}");
}

#[test]
fn rehearse_finds_changes_that_do_not_undo() {
    let (ws, db) = setup();
    two_phase(&ws);
    ws.ok(&["migrate", "up", "--to", "0001_users"]);
    let before = ws.snapshot_ids().len();
    ws.ok(&["migrate", "rehearse"])
        .assert_stdout_has("rehearsal passed");
    // The real database and repository are untouched.
    assert_eq!(
        states(&ws),
        [
            "0001_users=applied",
            "0002_seed=pending",
            "0003_drop_email=pending"
        ]
    );
    assert!(rows(&db, "SELECT * FROM users").is_empty());
    assert_eq!(ws.snapshot_ids().len(), before);

    // A down script that forgets the table its change made.
    write(
        &ws,
        "migrations/0004_audit/up.sql",
        "CREATE TABLE audit (at TEXT);\n",
    );
    write(&ws, "migrations/0004_audit/down.sql", "SELECT 1;\n");
    let out = ws.run(&["migrate", "rehearse"]);
    out.assert_code(1)
        .assert_stdout_has("not reversible: 0004_audit")
        .assert_stdout_has("table audit is left behind")
        .assert_stderr_has("0004_audit");
}

#[test]
fn the_repository_is_checked_when_a_snapshot_is_needed() {
    let (mut ws, db) = setup();
    two_phase(&ws);
    // Creating and seeding need no snapshot: no passphrase needed either.
    ws.set_password("wrong passphrase");
    ws.ok(&["migrate", "up", "--to", "@expand"]);
    // Dropping a column needs one: stopped before anything runs, with the
    // exit code of a wrong passphrase.
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("pre-flight")
        .assert_stderr_has("repository");
    assert_eq!(rows(&db, ALL_USERS).len(), 3);
    assert_eq!(
        rows(&db, "SELECT email FROM users WHERE id = 1"),
        ["ann@example.com"]
    );
    assert_eq!(states(&ws).last().unwrap(), "0003_drop_email=pending");
}

#[test]
fn every_way_back_on_sqlite() {
    let (ws, db) = setup();
    // 0001 only creates: dropped on the way back. 0002 rewrites data and has
    // a down script that only undoes the schema part: the data comes back
    // from its snapshot. 0003 has a faithful down script and destroys
    // nothing: no snapshot, down script only.
    write(&ws, "migrations/0001_users/up.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users VALUES (1, 'ann'), (2, 'bob');\n");
    write(
        &ws,
        "migrations/0002_shout/up.sql",
        "UPDATE users SET name = upper(name);\nCREATE INDEX users_name ON users (name);\n",
    );
    write(
        &ws,
        "migrations/0002_shout/down.sql",
        "DROP INDEX users_name;\n",
    );
    write(
        &ws,
        "migrations/0003_audit/up.sql",
        "CREATE TABLE audit (at TEXT);\nALTER TABLE users ADD COLUMN note TEXT;\n",
    );
    write(
        &ws,
        "migrations/0003_audit/down.sql",
        "ALTER TABLE users DROP COLUMN note;\nDROP TABLE audit;\n",
    );
    let v = ws.json(&["migrate", "up"]);
    let scopes: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["snapshot_scope"]["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["none", "tables", "down-script"]);
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ANN", "BOB"]
    );

    let v = ws.json(&["migrate", "down", "--to", "@root"]);
    let how: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["how"].as_str().unwrap())
        .collect();
    assert_eq!(
        how,
        ["down-script", "down-script-and-snapshot", "drop-created"]
    );
    assert_eq!(v["changes"][2]["dropped_tables"][0]["table"], "users");
    assert_eq!(v["changes"][2]["dropped_tables"][0]["rows"], 2);
    assert!(tables(&db).is_empty());

    // Up to 0002 again, then back to 0001: the names come back as they were.
    ws.ok(&["migrate", "up", "--to", "0002_shout"]);
    ws.ok(&["migrate", "down", "--to", "0001_users"]);
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ann", "bob"]
    );
    assert!(rows(
        &db,
        "SELECT name FROM sqlite_master WHERE name = 'users_name'"
    )
    .is_empty());

    // With snapshot = "always", the faithful change gets one too.
    let (ws, _db) = setup_with("snapshot = \"always\"\n");
    write(
        &ws,
        "migrations/0001_users/up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    );
    write(
        &ws,
        "migrations/0002_note/up.sql",
        "ALTER TABLE users ADD COLUMN note TEXT;\n",
    );
    write(
        &ws,
        "migrations/0002_note/down.sql",
        "ALTER TABLE users DROP COLUMN note;\n",
    );
    let v = ws.json(&["migrate", "up"]);
    assert_eq!(v["changes"][1]["snapshot_scope"]["scope"], "tables");
    assert!(v["changes"][1]["snapshot"].is_string());
}

#[test]
fn flyway_repeatable_changes_run_again_when_edited() {
    let (ws, db) = setup();
    write(&ws, "migrations/V1__users.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO users VALUES (1, 'ann');\n");
    write(
        &ws,
        "migrations/R__names.sql",
        "DROP VIEW IF EXISTS names;\nCREATE VIEW names AS SELECT name FROM users;\n",
    );
    ws.ok(&["migrate", "up"]);
    assert_eq!(rows(&db, "SELECT * FROM names"), ["ann"]);
    // Nothing to do when nothing changed.
    ws.ok(&["migrate", "up"]).assert_stdout_has("up to date");

    // An edited repeatable change is not drift: it runs again, after new
    // versioned changes.
    write(
        &ws,
        "migrations/V2__nick.sql",
        "ALTER TABLE users ADD COLUMN nick TEXT;\nUPDATE users SET nick = 'a';\n",
    );
    write(
        &ws,
        "migrations/R__names.sql",
        "DROP VIEW IF EXISTS names;\nCREATE VIEW names AS SELECT name, nick FROM users;\n",
    );
    let v = ws.json(&["migrate", "up"]);
    let ran: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["V2__nick", "R__names"]);
    assert_eq!(rows(&db, "SELECT * FROM names"), ["ann|a"]);
    ws.ok(&["migrate", "status"]);
}

// ----- safety snapshots that applied changes need are pinned -----

/// `users` with e-mail and phone, then two changes without down scripts
/// that each drop one column: each gets a safety snapshot.
fn two_drops(ws: &Workspace) {
    write(
        ws,
        "migrations/0001_users/up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, phone TEXT);\n\
         INSERT INTO users VALUES (1, 'ann', 'ann@example.com', '555-1'), \
         (2, 'bob', 'bob@example.com', '555-2');\n",
    );
    write(ws, "migrations/0001_users/down.sql", "DROP TABLE users;\n");
    write(
        ws,
        "migrations/0002_drop_email/up.sql",
        "ALTER TABLE users DROP COLUMN email;\n",
    );
    write(
        ws,
        "migrations/0003_drop_phone/up.sql",
        "ALTER TABLE users DROP COLUMN phone;\n",
    );
}

/// The safety snapshot recorded for `change`.
fn safety_of(db: &Path, change: &str) -> String {
    let v = rows(
        db,
        &format!("SELECT safety_snapshot FROM ripcord_changes WHERE name = '{change}'"),
    );
    assert!(
        v.len() == 1 && !v[0].is_empty(),
        "{change} has no safety snapshot: {v:?}"
    );
    v[0].clone()
}

/// `forget --keep-last 1 --prune` once removed the safety snapshots of
/// applied changes without a word; `migrate down` then failed half-way.
#[test]
fn forget_keep_last_keeps_the_safety_snapshots_applied_changes_need() {
    let (ws, db) = setup();
    two_drops(&ws);
    ws.ok(&["migrate", "up"]);
    let email = safety_of(&db, "0002_drop_email");
    let phone = safety_of(&db, "0003_drop_phone");
    // The user's own snapshots, newer than the safety snapshots.
    let mine = ws.snapshot_id(&[] as &[&str]);
    let mine2 = ws.snapshot_id(&[] as &[&str]);

    let v = ws.json(&["forget", "--keep-last", "1", "--keep-safety-last", "0"]);
    let mut pinned: Vec<String> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["pin"]["kind"] == "change")
        .map(|d| format!("{}={}", d["pin"]["change"].as_str().unwrap(), d["keep"]))
        .collect();
    pinned.sort();
    assert_eq!(
        pinned,
        ["0002_drop_email=true", "0003_drop_phone=true"],
        "{v}"
    );
    let mut left = ws.snapshot_ids();
    left.sort();
    let mut want = vec![email.clone(), phone.clone(), mine2];
    want.sort();
    assert_eq!(left, want, "only {mine} goes");
    ws.ok(&["prune"]);
    ws.ok(&["verify", "--deep"]);

    // By id: refused, with what it would cost, and nothing removed.
    let before = repo_hashes(&ws.repo());
    ws.run(&["forget", &phone])
        .assert_code(3)
        .assert_stderr_has("0003_drop_phone")
        .assert_stderr_has("--force");
    assert_eq!(repo_hashes(&ws.repo()), before);

    // The whole way back still works.
    ws.ok(&["rollback", "--to", "0001_users"]);
    assert_eq!(
        rows(&db, "SELECT * FROM users ORDER BY id"),
        ["1|ann|ann@example.com|555-1", "2|bob|bob@example.com|555-2"]
    );
    // Reverted changes pin nothing: their snapshots go by the policy.
    ws.ok(&["forget", "--keep-last", "1", "--keep-safety-last", "0"]);
    assert_eq!(ws.snapshot_ids().len(), 1);
}

/// Forgetting a pinned snapshot with --force warns; `migrate down` then
/// refuses before reverting anything (also on a dry run) instead of failing
/// half-way with the database half rolled back.
#[test]
fn migrate_down_refuses_before_reverting_when_a_safety_snapshot_is_gone() {
    let (ws, db) = setup();
    two_drops(&ws);
    ws.ok(&["migrate", "up"]);
    let email = safety_of(&db, "0002_drop_email");
    ws.ok(&["forget", &email, "--force"])
        .assert_stderr_has("rolling 0002_drop_email back will lose the data it destroyed");
    let before = rows(&db, "SELECT * FROM users ORDER BY id");
    let status = states(&ws);

    for dry in [true, false] {
        let mut args = vec!["rollback", "--to", "0001_users"];
        if dry {
            args.push("--dry-run");
        }
        ws.run(&args)
            .assert_code(3)
            .assert_stderr_has("nothing was reverted")
            .assert_stderr_has(&format!("0002_drop_email needs safety snapshot {email}"))
            .assert_stderr_has("migrate down --to 0002_drop_email");
        assert_eq!(rows(&db, "SELECT * FROM users ORDER BY id"), before);
        assert_eq!(states(&ws), status);
    }
    // What the hint says works: the change after it is reverted.
    ws.ok(&["migrate", "down", "--to", "0002_drop_email"]);
    assert_eq!(
        rows(&db, "SELECT * FROM users ORDER BY id"),
        ["1|ann|555-1", "2|bob|555-2"]
    );

    // A damaged snapshot is refused the same way: a pack it needs is gone.
    ws.ok(&["migrate", "up"]);
    let phone = safety_of(&db, "0003_drop_phone");
    for pack in files_in(&ws, "data") {
        std::fs::remove_file(pack).unwrap();
    }
    ws.run(&["migrate", "down", "--to", "0002_drop_email", "--dry-run"])
        .assert_code(3)
        .assert_stderr_has(&format!("safety snapshot {phone}, which is damaged"));
}

/// A database that cannot be read for its pins keeps its migrations' safety
/// snapshots: kept with a warning by a policy, refused by id, unless --force.
#[test]
fn forget_keeps_migration_snapshots_when_the_database_cannot_be_read() {
    let (ws, db) = setup();
    two_drops(&ws);
    ws.ok(&["migrate", "up"]);
    let email = safety_of(&db, "0002_drop_email");
    ws.snapshot_id(&[] as &[&str]);
    let moved = ws.path("elsewhere.db");
    std::fs::rename(&db, &moved).unwrap();

    ws.ok(&["forget", "--keep-last", "1", "--keep-safety-last", "0"])
        .assert_stderr_has("cannot be told")
        .assert_stdout_has("maybe-pinned");
    assert_eq!(ws.snapshot_ids().len(), 3);
    ws.run(&["forget", &email])
        .assert_code(3)
        .assert_stderr_has("reachable");
    ws.ok(&["forget", &email, "--force"])
        .assert_stderr_has("may lose");
    assert_eq!(ws.snapshot_ids().len(), 2);
    std::fs::rename(&moved, &db).unwrap();
}

/// A column that down leaves behind in an empty table is reported, object
/// by object, even when another table has the same column.
#[test]
fn rehearse_reports_a_leftover_column_in_an_empty_table() {
    let (ws, db) = setup();
    exec(
        &db,
        "CREATE TABLE a (id INTEGER, note TEXT);
         CREATE TABLE b (id INTEGER, note TEXT, flag INTEGER);
         INSERT INTO b VALUES (1, 'x', 2);",
    );
    write(
        &ws,
        "migrations/0001_flag/up.sql",
        "ALTER TABLE a ADD COLUMN flag INTEGER;\n",
    );
    write(&ws, "migrations/0001_flag/down.sql", "SELECT 1;\n");
    let out = ws.run(&["migrate", "rehearse"]);
    out.assert_code(1)
        .assert_stdout_has("not reversible: 0001_flag")
        .assert_stdout_has("table a differs after down: left behind: flag INTEGER");
    assert!(!out.stdout.contains("table b"), "{out}");

    write(
        &ws,
        "migrations/0001_flag/down.sql",
        "ALTER TABLE a DROP COLUMN flag;\n",
    );
    ws.ok(&["migrate", "rehearse"])
        .assert_stdout_has("rehearsal passed");
}

/// The bug, SQLite side: a safety snapshot is a copy of the file taken
/// while the change-capture triggers (`ripcord_capture_N_ins`, `_upd`,
/// `_del`) and their log tables are in it, and a plain `restore` of it
/// brought them back, logging every later write. They never come back.
#[test]
fn restoring_a_safety_snapshot_brings_back_no_capture_trigger() {
    let (ws, db) = setup();
    write(
        &ws,
        "migrations/0001_items/up.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, note TEXT);\n\
         CREATE TRIGGER items_touch AFTER UPDATE ON items BEGIN SELECT 1; END;\n\
         INSERT INTO items VALUES (1, 'a'), (2, 'b');\n",
    );
    write(&ws, "migrations/0001_items/down.sql", "DROP TABLE items;\n");
    write(
        &ws,
        "migrations/0002_drop/up.sql",
        "ALTER TABLE items DROP COLUMN note;\n",
    );
    ws.ok(&["migrate", "up"]);
    let id = safety_of(&db, "0002_drop");
    let ours = "SELECT type || ' ' || name FROM sqlite_master \
                WHERE type IN ('table', 'trigger') AND name NOT LIKE 'sqlite_%' \
                AND name NOT LIKE 'ripcord\\_%' ESCAPE '\\' OR name LIKE 'ripcord_capture%' \
                ORDER BY 1";
    ws.ok(&["restore", &id, "--into", ws.path("copy").to_str().unwrap()]);
    let copy = ws.path("copy/app/app.db");
    assert_eq!(rows(&copy, ours), ["table items", "trigger items_touch"]);
    assert_eq!(rows(&copy, "SELECT count(note) FROM items"), ["2"]);
    // In place, over the live database.
    ws.ok(&["restore", &id]);
    assert_eq!(rows(&db, ours), ["table items", "trigger items_touch"]);
}
