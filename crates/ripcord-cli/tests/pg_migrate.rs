//! `migrate up`, `migrate down`, `rollback` and `rehearse` against a real
//! PostgreSQL cluster: every reader, every way back, every on_conflict
//! policy, automatic revert, bad input, the migration lock, kill -9 in the
//! middle, and rehearsals on a scratch copy. Each test works in databases of
//! its own on the shared throwaway cluster.

use ripcord_testing::app::{exec, pg_app, rows, write};
use ripcord_testing::pg::{self, PgCluster};
use ripcord_testing::{Output, Workspace};
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

fn cluster() -> &'static PgCluster {
    pg::shared()
}

fn setup_with(name: &str, extra: &str) -> (Workspace, String) {
    pg_app(bin(), name, extra)
}

fn setup(name: &str) -> (Workspace, String) {
    setup_with(name, "")
}

/// Tables of the application (the `ripcord` schema left out).
fn tables(db: &str) -> Vec<String> {
    rows(
        db,
        "SELECT tablename FROM pg_tables
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'ripcord')
         ORDER BY 1",
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

fn killed(out: &Output) {
    assert_eq!(
        out.signal,
        Some(9),
        "expected a kill at the failpoint\n{out}"
    );
}

/// The entry of `table` (bare or schema-qualified) in a change of a down report.
fn table_report(change: &Value, table: &str) -> Value {
    change["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables in {change}"))
        .iter()
        .find(|t| {
            let name = t["table"].as_str().unwrap_or_default();
            name == table || name.ends_with(&format!(".{table}"))
        })
        .unwrap_or_else(|| panic!("no table {table} in {change}"))
        .clone()
}

/// Phase one makes `users` (with e-mail addresses) and `orders` that point
/// at them, and seeds both; phase two drops the e-mail column, with no
/// down script.
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
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text);\n\
         CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users (id), \
         item text NOT NULL);\n",
    );
    write(
        ws,
        "migrations/0001_users/down.sql",
        "DROP TABLE orders;\nDROP TABLE users;\n",
    );
    write(
        ws,
        "migrations/0001_users/verify.sql",
        "SELECT id, name, email FROM users WHERE false;\n",
    );
    write(
        ws,
        "migrations/0002_seed/up.sql",
        "INSERT INTO users (name, email) VALUES ('ann', 'ann@example.com'), \
         ('bob', 'bob@example.com'), ('cy', 'cy@example.com');\n\
         INSERT INTO orders (user_id, item) VALUES (1, 'book'), (2, 'pen'), (2, 'ink');\n",
    );
    write(
        ws,
        "migrations/0002_seed/down.sql",
        "DELETE FROM orders;\nDELETE FROM users;\n\
         ALTER SEQUENCE orders_id_seq RESTART;\nALTER SEQUENCE users_id_seq RESTART;\n",
    );
    write(
        ws,
        "migrations/0003_drop_email/up.sql",
        "ALTER TABLE users DROP COLUMN email;\n",
    );
}

/// The key of ripcord's migration lock: "ripcord\0" as a big-endian integer.
const MIGRATION_LOCK_KEY: i64 = 0x7269_7063_6f72_6400;

const ALL_USERS: &str = "SELECT id, name, email FROM users ORDER BY id";
const SEEDED: [&str; 3] = [
    "1|ann|ann@example.com",
    "2|bob|bob@example.com",
    "3|cy|cy@example.com",
];

#[test]
fn rollback_puts_a_dropped_column_back_with_its_data() {
    let (ws, db) = setup("mig_rollback");
    two_phase(&ws);
    let out = ws.ok(&["migrate", "up"]);
    out.assert_stdout_has("safety snapshot")
        .assert_stdout_has("3 changes applied");
    assert_eq!(rows(&db, "SELECT id, name FROM users ORDER BY id").len(), 3);
    // The application goes on writing after the change.
    exec(&db, "INSERT INTO users (name) VALUES ('dee');");
    exec(&db, "INSERT INTO orders (user_id, item) VALUES (4, 'cap');");

    let status = ws.json(&["migrate", "status"]);
    assert_eq!(status["phase"], "contract");
    let out = ws.ok(&["rollback", "--to", "@expand"]);
    out.assert_stdout_has("from its safety snapshot")
        .assert_stdout_has("1 kept")
        .assert_stdout_has("data loss: none");
    let mut want: Vec<String> = SEEDED.iter().map(|s| s.to_string()).collect();
    want.push("4|dee|".into());
    assert_eq!(rows(&db, ALL_USERS), want);
    // The orders still point at their users, through a valid foreign key.
    assert_eq!(
        rows(
            &db,
            "SELECT o.item, u.name FROM orders o JOIN users u ON u.id = o.user_id ORDER BY o.id"
        ),
        ["book|ann", "pen|bob", "ink|bob", "cap|dee"]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT convalidated FROM pg_constraint
             WHERE conrelid = 'orders'::regclass AND contype = 'f'"
        ),
        ["t"]
    );
    let bad = cluster()
        .client(&db)
        .batch_execute("INSERT INTO orders (user_id, item) VALUES (99, 'x')");
    assert!(bad.is_err(), "the foreign key no longer holds");
    // The sequence goes on after the rows kept: no id is used twice.
    assert_eq!(
        rows(&db, "INSERT INTO users (name) VALUES ('eve') RETURNING id"),
        ["5"]
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
    let events = rows(&db, "SELECT change, kind FROM ripcord.events ORDER BY id");
    assert!(
        events.contains(&"0003_drop_email|revert".to_string()),
        "{events:?}"
    );
    // Seeding destroys nothing and has a down script: no snapshot needed;
    // dropping the column does need one.
    assert_eq!(
        rows(
            &db,
            "SELECT name, coalesce(safety_snapshot, '-') = '-' FROM ripcord.changes ORDER BY name"
        ),
        ["0001_users|t", "0002_seed|t"]
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
    for (policy, expect_review) in [("snapshot", 0), ("review", 1)] {
        let (ws, db) = setup_with(
            &format!("mig_policy_{policy}"),
            &format!("on_conflict = \"{policy}\"\n"),
        );
        two_phase(&ws);
        ws.ok(&["migrate", "up"]);
        exec(&db, "INSERT INTO users (name) VALUES ('dee');");
        let out = ws.run(&["--json", "migrate", "down", "--to", "0002_seed"]);
        out.assert_ok();
        let v = out.json();
        assert_eq!(rows(&db, ALL_USERS), SEEDED, "{policy}");
        let users = table_report(&v["changes"][0], "users");
        assert_eq!(users["policy"], policy, "{v}");
        let review_table = rows(
            &db,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'ripcord' AND tablename = 'review'",
        );
        if expect_review > 0 {
            assert_eq!(users["review_rows"], 1, "{v}");
            assert_eq!(v["rows_lost"], 0, "{v}");
            assert_eq!(review_table, ["1"]);
            let set_aside = rows(
                &db,
                "SELECT table_name, change, row_data::text FROM ripcord.review",
            );
            assert_eq!(set_aside.len(), 1, "{set_aside:?}");
            assert!(set_aside[0].contains("dee"), "{set_aside:?}");
            assert!(set_aside[0].contains("0003_drop_email"), "{set_aside:?}");
            assert!(v["review"].to_string().contains("dee"), "{v}");
            // The text output lists it too.
            ws.ok(&["migrate", "up"]);
            exec(&db, "INSERT INTO users (name) VALUES ('fay');");
            ws.ok(&["migrate", "down", "--to", "0002_seed"])
                .assert_stdout_has("review")
                .assert_stdout_has("fay");
        } else {
            assert_eq!(users["discarded_rows"], 1, "{v}");
            assert_eq!(v["rows_lost"], 1, "{v}");
            // The text output warns about the loss.
            ws.ok(&["migrate", "up"]);
            exec(&db, "INSERT INTO users (name) VALUES ('fay');");
            ws.ok(&["migrate", "down", "--to", "0002_seed"])
                .assert_stderr_has("data loss: 1 row");
            assert_eq!(rows(&db, ALL_USERS), SEEDED, "{policy}");
            // --on-conflict overrides the setting for one run. Ids of
            // discarded rows (4, 5) are not handed out again.
            ws.ok(&["migrate", "up"]);
            exec(&db, "INSERT INTO users (name) VALUES ('gus');");
            let v = ws.json(&[
                "migrate",
                "down",
                "--to",
                "0002_seed",
                "--on-conflict",
                "keep-new",
            ]);
            assert_eq!(
                table_report(&v["changes"][0], "users")["kept_rows"],
                1,
                "{v}"
            );
            assert_eq!(v["rows_lost"], 0, "{v}");
            assert_eq!(rows(&db, ALL_USERS).last().unwrap(), "6|gus|");
        }
    }

    // Per-table settings, and a table without a primary key falls back to review.
    let (ws, db) = setup_with(
        "mig_policy_tables",
        "[migrations.tables.users]\non_conflict = \"snapshot\"\n",
    );
    write(
        &ws,
        "migrations/0001_t/up.sql",
        "CREATE TABLE logs (at text, line text);\n\
         CREATE TABLE users (id int PRIMARY KEY, email text);\n\
         INSERT INTO logs VALUES ('1', 'a');\nINSERT INTO users VALUES (1, 'x');\n",
    );
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
    let change = &v["changes"][0];
    let logs = table_report(change, "logs");
    let users = table_report(change, "users");
    // Without a key the rows are a multiset: the application's new row is
    // kept, the row the change rewrote is back as it was, nothing is set
    // aside.
    assert_eq!(logs["policy"], "keep-new", "{v}");
    assert_eq!(logs["kept_rows"], 1, "{v}");
    assert_eq!(logs["review_rows"], 0, "{v}");
    assert_eq!(users["policy"], "snapshot", "{v}");
    assert_eq!(users["discarded_rows"], 1, "{v}");
    assert_eq!(v["rows_lost"], 1, "{v}");
    assert_eq!(rows(&db, "SELECT * FROM logs ORDER BY at"), ["1|a", "2|b"]);
    assert_eq!(rows(&db, "SELECT * FROM users"), ["1|x"]);
}

#[test]
fn every_reader_applies_and_reverts() {
    type Plan = &'static [(&'static str, &'static str)];
    let plans: [(&str, Plan); 6] = [
        (
            "sqitch",
            &[
                ("sqitch.plan", "%syntax-version=1.0.0\n%project=app\n\nusers 2026-01-01T00:00:00Z A <a@x> # users\n@v1 2026-01-01T00:00:00Z A <a@x> # tag\nnick [users] 2026-01-02T00:00:00Z A <a@x> # nick\n"),
                ("deploy/users.sql", "-- Deploy app:users to pg\nBEGIN;\nCREATE TABLE users (id int PRIMARY KEY, name text);\nINSERT INTO users VALUES (1, 'ann');\nCOMMIT;\n"),
                ("revert/users.sql", "-- Revert app:users from pg\nBEGIN;\nDROP TABLE users;\nCOMMIT;\n"),
                ("verify/users.sql", "-- Verify app:users on pg\nBEGIN;\nSELECT id, name FROM users WHERE false;\nROLLBACK;\n"),
                ("deploy/nick.sql", "BEGIN;\nALTER TABLE users DROP COLUMN name;\nCOMMIT;\n"),
            ],
        ),
        (
            "flyway",
            &[
                ("V1__users.sql", "CREATE TABLE users (id int PRIMARY KEY, name text);\nINSERT INTO users VALUES (1, 'ann');\n"),
                ("U1__users.sql", "DROP TABLE users;\n"),
                ("V2__nick.sql", "ALTER TABLE users DROP COLUMN name;\n"),
            ],
        ),
        (
            "golang-migrate",
            &[
                ("1_users.up.sql", "CREATE TABLE users (id int PRIMARY KEY, name text);\nINSERT INTO users VALUES (1, 'ann');\n"),
                ("1_users.down.sql", "DROP TABLE users;\n"),
                ("2_nick.up.sql", "ALTER TABLE users DROP COLUMN name;\n"),
            ],
        ),
        (
            "dbmate",
            &[
                ("20260101000000_users.sql", "-- migrate:up\nCREATE TABLE users (id int PRIMARY KEY, name text);\nINSERT INTO users VALUES (1, 'ann');\n\n-- migrate:down\nDROP TABLE users;\n"),
                ("20260102000000_nick.sql", "-- migrate:up\nALTER TABLE users DROP COLUMN name;\n\n-- migrate:down\n"),
            ],
        ),
        (
            "timestamp",
            &[
                ("202601010000_users.sql", "CREATE TABLE users (id int PRIMARY KEY, name text);\nINSERT INTO users VALUES (1, 'ann');\n"),
                ("202601010000_users_rollback.sql", "DROP TABLE users;\n"),
                ("202601020000_nick.sql", "ALTER TABLE users DROP COLUMN name;\n"),
            ],
        ),
        (
            "native",
            &[
                ("0001_users/up.sql", "CREATE TABLE users (id int PRIMARY KEY, name text);\nINSERT INTO users VALUES (1, 'ann');\n"),
                ("0001_users/down.sql", "DROP TABLE users;\n"),
                ("0002_nick/up.sql", "ALTER TABLE users DROP COLUMN name;\n"),
            ],
        ),
    ];
    for (format, files) in plans {
        let (ws, db) = setup(&format!("mig_reader_{format}"));
        for (rel, text) in files {
            write(&ws, &format!("migrations/{rel}"), text);
        }
        ws.ok(&["migrate", "up"]);
        assert_eq!(rows(&db, "SELECT * FROM users"), ["1"], "{format}");
        let v = ws.json(&["migrate", "status"]);
        assert_eq!(v["format"], format, "{v}");
        assert_eq!(v["counts"]["applied"], 2, "{format}: {v}");
        // The second change has no down script: its snapshot brings the name
        // back. On sqitch, through the tag after the first change.
        let first = v["changes"][0]["change"].as_str().unwrap().to_string();
        let to = if format == "sqitch" {
            "@v1".to_string()
        } else {
            first
        };
        let d = ws.json(&["migrate", "down", "--to", &to]);
        assert_eq!(d["changes"][0]["how"], "snapshot", "{format}: {d}");
        assert_eq!(rows(&db, "SELECT * FROM users"), ["1|ann"], "{format}");
        ws.ok(&["migrate", "down", "--to", "@root"])
            .assert_stdout_has("by its down script");
        assert!(tables(&db).is_empty(), "{format}: {:?}", tables(&db));
        let v = ws.json(&["migrate", "status"]);
        assert_eq!(v["counts"]["pending"], 2, "{format}: {v}");
    }
}

#[test]
fn a_destructive_change_with_a_down_script_gets_its_data_back() {
    let (ws, db) = setup("mig_destructive");
    two_phase(&ws);
    ws.ok(&["migrate", "up", "--to", "@expand"]);
    // The down script puts the type back but cannot bring back what the
    // cast cut off, nor undo the upper-casing.
    write(
        &ws,
        "migrations/plan.toml",
        "[[phase]]\nname = \"expand\"\nchanges = [\"0001_users\", \"0002_seed\"]\n\n\
         [[phase]]\nname = \"squash\"\nchanges = [\"0003_squash\"]\n",
    );
    std::fs::remove_dir_all(ws.path("migrations/0003_drop_email")).unwrap();
    write(
        &ws,
        "migrations/0003_squash/up.sql",
        "UPDATE users SET name = upper(name);\n\
         ALTER TABLE users ALTER COLUMN email TYPE varchar(3) USING left(email, 3);\n",
    );
    write(
        &ws,
        "migrations/0003_squash/down.sql",
        "ALTER TABLE users ALTER COLUMN email TYPE text;\n",
    );
    ws.ok(&["migrate", "up"]);
    assert_eq!(rows(&db, ALL_USERS), ["1|ANN|ann", "2|BOB|bob", "3|CY|cy@"]);
    let plan = ws.json(&["migrate", "down", "--to", "@expand", "--dry-run"]);
    assert_eq!(
        plan["changes"][0]["how"], "down-script-and-snapshot",
        "{plan}"
    );
    let v = ws.json(&["rollback", "--to", "@expand"]);
    assert_eq!(v["changes"][0]["how"], "down-script-and-snapshot", "{v}");
    assert_eq!(v["rows_lost"], 0, "{v}");
    assert_eq!(rows(&db, ALL_USERS), SEEDED);
    assert_eq!(
        rows(
            &db,
            "SELECT data_type FROM information_schema.columns
             WHERE table_name = 'users' AND column_name = 'email'"
        ),
        ["text"]
    );
    assert_eq!(states(&ws).last().unwrap(), "0003_squash=pending");
}

#[test]
fn a_failing_change_is_undone_at_once() {
    // In a transaction: the first statement ran, the second fails.
    let (ws, db) = setup("mig_fail");
    two_phase(&ws);
    write(
        &ws,
        "migrations/0004_bad/up.sql",
        "UPDATE users SET name = 'x';\nINSERT INTO nowhere VALUES (1);\n",
    );
    let out = ws.run(&["migrate", "up"]);
    out.assert_code(1)
        .assert_stderr_has("0004_bad")
        .assert_stderr_has("nowhere")
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
    let fails = rows(&db, "SELECT change FROM ripcord.events WHERE kind = 'fail'");
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
        "SELECT 1 / (SELECT count(*) FROM users WHERE name <> 'x');\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(1)
        .assert_stderr_has("(verify)")
        .assert_stderr_has("division by zero");
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ann", "bob", "cy"]
    );
    assert_eq!(states(&ws).last().unwrap(), "0004_bad=pending");

    // Outside a transaction (CREATE INDEX CONCURRENTLY cannot run in one):
    // the update and the index are undone.
    write(
        &ws,
        "migrations/0004_bad/up.sql",
        "UPDATE users SET name = 'x';\n\
         CREATE INDEX CONCURRENTLY users_name ON users (name);\n\
         INSERT INTO nowhere VALUES (1);\n",
    );
    std::fs::remove_file(ws.path("migrations/0004_bad/verify.sql")).unwrap();
    ws.run(&["migrate", "up"])
        .assert_code(1)
        .assert_stderr_has("0004_bad")
        .assert_stderr_has("outside a transaction")
        .assert_stderr_has("from its safety snapshot");
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ann", "bob", "cy"]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name'"
        ),
        ["0"]
    );
    assert_eq!(states(&ws).last().unwrap(), "0004_bad=pending");

    // With a down script, that undoes it.
    write(
        &ws,
        "migrations/0004_bad/up.sql",
        "CREATE INDEX CONCURRENTLY users_name ON users (name);\n\
         INSERT INTO nowhere VALUES (1);\n",
    );
    write(
        &ws,
        "migrations/0004_bad/down.sql",
        "DROP INDEX CONCURRENTLY IF EXISTS users_name;\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(1)
        .assert_stderr_has("outside a transaction")
        .assert_stderr_has("reverted");
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name'"
        ),
        ["0"]
    );
    assert_eq!(states(&ws).last().unwrap(), "0004_bad=pending");
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM ripcord.events WHERE kind = 'fail'"
        ),
        ["4"]
    );
}

#[test]
fn uncertain_sql_snapshots_the_whole_database() {
    let (ws, db) = setup("mig_uncertain");
    two_phase(&ws);
    ws.ok(&["migrate", "up"]);
    write(
        &ws,
        "migrations/0004_shout/up.sql",
        "DO $$\nBEGIN\n  EXECUTE 'UPDATE ' || 'users SET name = upper(name)';\nEND\n$$;\n",
    );
    let v = ws.json(&["migrate", "up", "--dry-run"]);
    assert_eq!(
        v["changes"][0]["snapshot_scope"]["scope"], "database",
        "{v}"
    );
    let v = ws.json(&["migrate", "up"]);
    assert_eq!(
        v["changes"][0]["snapshot_scope"]["scope"], "database",
        "{v}"
    );
    assert!(v["changes"][0]["uncertain"].is_string(), "{v}");
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ANN", "BOB", "CY"]
    );
    let d = ws.json(&["migrate", "down", "--to", "0003_drop_email"]);
    assert_eq!(d["changes"][0]["how"], "snapshot", "{d}");
    assert_eq!(
        rows(&db, "SELECT id, name FROM users ORDER BY id"),
        ["1|ann", "2|bob", "3|cy"]
    );
    assert_eq!(
        rows(&db, "SELECT count(*) FROM orders"),
        ["3"],
        "the other tables are as they were"
    );
    assert_eq!(states(&ws).last().unwrap(), "0004_shout=pending");
}

#[test]
fn bad_input_changes_nothing() {
    // A syntax error in the third of three pending changes: the first does not run either.
    let (ws, db) = setup("mig_bad");
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
    two_phase(&ws);

    // A cycle.
    write(
        &ws,
        "migrations/plan.toml",
        "[changes.0001_users]\nrequires = [\"0002_seed\"]\n[changes.0002_seed]\nrequires = [\"0001_users\"]\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("cycle");
    assert!(tables(&db).is_empty());
    two_phase(&ws);

    // An unknown --to, up and down.
    ws.run(&["migrate", "up", "--to", "0002_sed"])
        .assert_code(2)
        .assert_stderr_has("0002_seed");
    assert!(tables(&db).is_empty());
    ws.ok(&["migrate", "up", "--to", "@expand"]);
    ws.run(&["migrate", "down", "--to", "@nope"]).assert_code(2);
    ws.run(&["migrate", "down", "--to", "0009_nope"])
        .assert_code(2);
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord.changes"), ["2"]);

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
    assert_eq!(
        rows(&db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email'"),
        ["1"]
    );
    ws.ok(&["migrate", "up", "--allow-drift"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord.changes"), ["3"]);
    let v = ws.json(&[
        "migrate",
        "down",
        "--to",
        "@root",
        "--dry-run",
        "--allow-drift",
    ]);
    assert_eq!(v["changes"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["changes"][0]["how"], "snapshot", "{v}");
    assert_eq!(v["changes"][2]["how"], "down-script", "{v}");
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord.changes"), ["3"]);
    two_phase(&ws);

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
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord.changes"), ["3"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM users"), ["3"]);
    two_phase(&ws);

    // The migration lock, held by another session: refused, naming it.
    write(
        &ws,
        "migrations/0004_more/up.sql",
        "ALTER TABLE users ADD COLUMN nick text;\n",
    );
    {
        let mut holder = cluster().client(&db);
        holder
            .batch_execute(&format!(
                "SET application_name = 'lock-holder-test';
                 SELECT pg_advisory_lock({MIGRATION_LOCK_KEY});"
            ))
            .expect("take the migration lock");
        let pid = rows(
            &db,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'lock-holder-test'",
        );
        assert_eq!(pid.len(), 1, "{pid:?}");
        for args in [
            &["migrate", "up"][..],
            &["migrate", "down", "--to", "@expand"],
        ] {
            ws.run(args)
                .assert_code(3)
                .assert_stderr_has("lock")
                .assert_stderr_has(&pid[0])
                .assert_stderr_has("lock-holder-test");
        }
        assert_eq!(states(&ws).last().unwrap(), "0004_more=pending");
    }
    // Released when that session ends.
    ws.ok(&["migrate", "up"]);
    assert_eq!(states(&ws).last().unwrap(), "0004_more=applied");

    // A missing file named by sqitch.plan.
    let (ws, db) = setup("mig_bad_sqitch");
    write(
        &ws,
        "migrations/sqitch.plan",
        "%project=app\n\nusers 2026-01-01T00:00:00Z A <a@x> # users\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("deploy/users.sql");
    assert!(tables(&db).is_empty());
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'ripcord'"
        ),
        ["0"]
    );

    // An unreachable database.
    let mut ws = Workspace::new(bin());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().unwrap().port()
    };
    ws.append_config(&format!(
        "[targets.app]\nkind = \"postgres\"\n\
         url = \"postgres://{}:{}@127.0.0.1:{port}/nowhere?connect_timeout=5\"\n\n\
         [migrations]\ntarget = \"app\"\ndir = \"migrations\"\n",
        pg::USER,
        pg::PASSWORD,
    ));
    ws.init();
    two_phase(&ws);
    for args in [
        &["migrate", "up"][..],
        &["migrate", "down", "--to", "@root"],
    ] {
        ws.run(args)
            .assert_code(3)
            .assert_stderr_has("cannot open target app");
    }
    assert!(ws.snapshot_ids().is_empty());
}

#[test]
fn kill_9_during_up_and_down_loses_nothing() {
    // Right after the safety snapshot, before the change starts.
    let (ws, db) = setup("mig_kill");
    two_phase(&ws);
    ws.ok(&["migrate", "up", "--to", "@expand"]);
    killed(&ws.run_env(
        &["migrate", "up"],
        &[("RIPCORD_FAILPOINT", "migrate-snapshot-taken")],
    ));
    assert_eq!(states(&ws).last().unwrap(), "0003_drop_email=pending");
    assert_eq!(rows(&db, ALL_USERS), SEEDED);
    ws.ok(&["unlock"]);
    ws.ok(&["verify"]);

    // Inside the transaction, just before it commits: nothing happened.
    killed(&ws.run_env(
        &["migrate", "up"],
        &[("RIPCORD_FAILPOINT", "migrate-change-ran")],
    ));
    assert_eq!(states(&ws).last().unwrap(), "0003_drop_email=pending");
    assert_eq!(rows(&db, ALL_USERS), SEEDED);
    ws.ok(&["unlock"]);
    ws.ok(&["verify"]);
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        rows(&db, "SELECT id, name FROM users ORDER BY id"),
        ["1|ann", "2|bob", "3|cy"]
    );

    // During the revert, before it commits: still applied; down again works.
    killed(&ws.run_env(
        &["migrate", "down", "--to", "@expand"],
        &[("RIPCORD_FAILPOINT", "migrate-revert-ran")],
    ));
    assert_eq!(states(&ws).last().unwrap(), "0003_drop_email=applied");
    assert_eq!(
        rows(&db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email'"),
        ["0"]
    );
    // The killed run's repository lock is stale; `unlock` clears it.
    ws.ok(&["unlock"]);
    ws.ok(&["verify"]);
    ws.ok(&["migrate", "down", "--to", "@expand"]);
    assert_eq!(rows(&db, ALL_USERS), SEEDED);

    // Outside a transaction, between statements: dirty, refused, reverted
    // from the snapshot by down, then applied again.
    write(
        &ws,
        "migrations/0003_drop_email/up.sql",
        "UPDATE users SET name = upper(name);\n\
         CREATE INDEX CONCURRENTLY users_name ON users (name);\n\
         ALTER TABLE users DROP COLUMN email;\n",
    );
    killed(&ws.run_env(
        &["migrate", "up", "--allow-drift"],
        &[("RIPCORD_FAILPOINT", "migrate-statement-ran")],
    ));
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ANN", "BOB", "CY"]
    );
    ws.run(&["migrate", "status"])
        .assert_code(3)
        .assert_stderr_has("never finished");
    ws.run(&["migrate", "up"])
        .assert_code(3)
        .assert_stderr_has("dirty");
    ws.ok(&["unlock"]);
    ws.ok(&["verify"]);
    ws.ok(&["migrate", "down", "--to", "0002_seed"])
        .assert_stdout_has("it was dirty");
    assert_eq!(rows(&db, ALL_USERS), SEEDED);
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        rows(&db, "SELECT id, name FROM users ORDER BY id"),
        ["1|ANN", "2|BOB", "3|CY"]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name'"
        ),
        ["1"]
    );

    // A non-transactional down script killed after it ran, before the
    // tracking row is updated: still recorded, down again works. `down`
    // runs the down script recorded at `up`, so the change is applied again
    // with the new one.
    ws.ok(&["migrate", "down", "--to", "0002_seed"]);
    write(
        &ws,
        "migrations/0003_drop_email/down.sql",
        "DROP INDEX CONCURRENTLY IF EXISTS users_name;\n\
         ALTER TABLE users ADD COLUMN IF NOT EXISTS email text;\n",
    );
    ws.ok(&["migrate", "up"]);
    killed(&ws.run_env(
        &["migrate", "down", "--to", "@expand"],
        &[("RIPCORD_FAILPOINT", "migrate-down-script-ran")],
    ));
    ws.ok(&["unlock"]);
    // The down script ran outside a transaction: the change says dirty.
    ws.run(&["migrate", "status"])
        .assert_code(3)
        .assert_stderr_has("0003_drop_email");
    assert_eq!(
        rows(
            &db,
            "SELECT state FROM ripcord.changes WHERE name = '0003_drop_email'"
        ),
        ["dirty"]
    );
    ws.ok(&["migrate", "down", "--to", "@expand"]);
    assert_eq!(rows(&db, ALL_USERS), SEEDED);
    assert_eq!(states(&ws).last().unwrap(), "0003_drop_email=pending");
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name'"
        ),
        ["0"]
    );
    ws.ok(&["unlock"]);
    ws.ok(&["verify"]);
}

/// Scratch copies of `db` (named after it) still in the cluster.
fn scratch_copies(db: &str) -> Vec<String> {
    rows("postgres", "SELECT datname FROM pg_database ORDER BY 1")
        .into_iter()
        .filter(|d| d.starts_with(db) && d != db)
        .collect()
}

#[test]
fn rehearse_finds_changes_that_do_not_undo() {
    let (ws, db) = setup("mig_rehearse");
    two_phase(&ws);
    ws.ok(&["migrate", "up", "--to", "0001_users"]);
    let before = ws.snapshot_ids().len();
    let out = ws.ok(&["migrate", "rehearse"]);
    out.assert_stdout_has("rehearsal passed");
    // Nobody else uses the database, so TEMPLATE copied it.
    assert!(!out.stdout.contains("in use"), "{out}");
    // The real database and repository are untouched.
    assert_eq!(
        states(&ws),
        [
            "0001_users=applied",
            "0002_seed=pending",
            "0003_drop_email=pending"
        ]
    );
    assert!(rows(&db, ALL_USERS).is_empty());
    assert_eq!(ws.snapshot_ids().len(), before);
    let left = scratch_copies(&db);
    assert!(left.is_empty(), "scratch databases left: {left:?}\n{out}");

    // A down script that forgets the table its change made.
    write(
        &ws,
        "migrations/0004_audit/up.sql",
        "CREATE TABLE audit (at text);\n",
    );
    write(&ws, "migrations/0004_audit/down.sql", "SELECT 1;\n");
    let out = ws.run(&["migrate", "rehearse"]);
    out.assert_code(1)
        .assert_stdout_has("not reversible: 0004_audit")
        .assert_stdout_has("audit is left behind")
        .assert_stderr_has("0004_audit");
    assert_eq!(tables(&db), ["orders", "users"]);
    assert_eq!(ws.snapshot_ids().len(), before);
    let left = scratch_copies(&db);
    assert!(left.is_empty(), "scratch databases left: {left:?}\n{out}");

    // The application is connected: TEMPLATE cannot copy a database in
    // use, so the copy comes from a fresh snapshot restored into a new one.
    std::fs::remove_dir_all(ws.path("migrations/0004_audit")).unwrap();
    let app = cluster().client(&db);
    let out = ws.ok(&["migrate", "rehearse"]);
    out.assert_stdout_has("in use")
        .assert_stdout_has("rehearsal passed");
    drop(app);
    assert!(rows(&db, ALL_USERS).is_empty());
    assert_eq!(ws.snapshot_ids().len(), before);
    let left = scratch_copies(&db);
    assert!(left.is_empty(), "scratch databases left: {left:?}\n{out}");
}

#[test]
fn what_depends_on_a_reverted_table_keeps_working() {
    let (ws, db) = setup("mig_dependents");
    write(
        &ws,
        "migrations/plan.toml",
        "[[phase]]\nname = \"expand\"\nchanges = [\"0001_users\"]\n\n\
         [[phase]]\nname = \"contract\"\nchanges = [\"0002_drop_email\"]\n",
    );
    write(
        &ws,
        "migrations/0001_users/up.sql",
        "CREATE TABLE users (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         name text NOT NULL UNIQUE, email text);\n\
         CREATE VIEW user_names AS SELECT id, name FROM users;\n\
         CREATE VIEW contacts AS SELECT name, email FROM users;\n\
         INSERT INTO users (name, email) VALUES ('ann', 'a@x'), ('bob', 'b@x');\n",
    );
    write(
        &ws,
        "migrations/0001_users/down.sql",
        "DROP VIEW contacts;\nDROP VIEW user_names;\nDROP TABLE users;\n",
    );
    // No down script: the view it drops reads the table, so the table's
    // snapshot records it, and the revert creates it again.
    write(
        &ws,
        "migrations/0002_drop_email/up.sql",
        "DROP VIEW contacts;\nALTER TABLE users DROP COLUMN email;\n",
    );
    ws.ok(&["migrate", "up", "--to", "@expand"]);
    ws.ok(&["migrate", "rehearse"])
        .assert_stdout_has("rehearsal passed");

    ws.ok(&["migrate", "up"]);
    exec(&db, "INSERT INTO users (name) VALUES ('cy');");
    exec(&db, "UPDATE users SET name = 'bobby' WHERE name = 'bob';");
    ws.ok(&["rollback", "--to", "@expand"])
        .assert_stdout_has("kept as the application left them: 2 rows")
        .assert_stdout_has("data loss: none");
    // The application's rename and new row are kept; the dropped column is
    // back under them.
    assert_eq!(
        rows(&db, "SELECT id, name, email FROM users ORDER BY id"),
        ["1|ann|a@x", "2|bobby|b@x", "3|cy|"]
    );
    // The view that stayed reads the table put back; the identity goes on;
    // the constraints are there.
    assert_eq!(
        rows(&db, "SELECT id, name FROM user_names ORDER BY id"),
        ["1|ann", "2|bobby", "3|cy"]
    );
    assert_eq!(
        rows(&db, "INSERT INTO users (name) VALUES ('dee') RETURNING id"),
        ["4"]
    );
    assert!(cluster()
        .client(&db)
        .batch_execute("INSERT INTO users (name) VALUES ('ann')")
        .is_err());
    assert_eq!(
        rows(
            &db,
            "SELECT viewname FROM pg_views WHERE schemaname = 'public' ORDER BY 1"
        ),
        ["contacts", "user_names"]
    );
    assert_eq!(
        rows(&db, "SELECT name, email FROM contacts ORDER BY name"),
        ["ann|a@x", "bobby|b@x", "cy|", "dee|"]
    );
    assert_eq!(
        rows(&db, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ripcord%' AND nspname <> 'ripcord'"),
        ["0"],
        "no stash schema left"
    );
}

#[test]
fn every_way_back_on_postgres() {
    let (ws, db) = setup("mig_ways");
    // 0001 only creates: dropped on the way back. 0002 rewrites data and its
    // down script only undoes the schema part: the data comes back from its
    // snapshot. 0003 has a faithful down script and destroys nothing: no
    // snapshot, down script only.
    write(
        &ws,
        "migrations/0001_users/up.sql",
        "CREATE TABLE users (id int PRIMARY KEY, name text);\n\
         INSERT INTO users VALUES (1, 'ann'), (2, 'bob');\n",
    );
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
        "CREATE TABLE audit (at timestamptz);\nALTER TABLE users ADD COLUMN note text;\n",
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
    assert_eq!(scopes, ["none", "tables", "down-script"], "{v}");
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
        ["down-script", "down-script-and-snapshot", "drop-created"],
        "{v}"
    );
    assert_eq!(v["changes"][2]["dropped_tables"][0]["rows"], 2, "{v}");
    assert_eq!(v["rows_lost"], 2, "{v}");
    assert!(tables(&db).is_empty(), "{:?}", tables(&db));

    ws.ok(&["migrate", "up", "--to", "0002_shout"]);
    ws.ok(&["migrate", "down", "--to", "0001_users"]);
    assert_eq!(
        rows(&db, "SELECT name FROM users ORDER BY id"),
        ["ann", "bob"]
    );
    assert!(rows(
        &db,
        "SELECT indexname FROM pg_indexes WHERE indexname = 'users_name'"
    )
    .is_empty());
}

/// `forget --keep-last 1` once removed the safety snapshot of an applied
/// change; `rollback` then failed half-way. The pin is read from
/// `ripcord.changes`; a database that cannot be reached pins its
/// migrations' snapshots too; after `--force`, `rollback` refuses before
/// reverting anything.
#[test]
fn forget_keeps_the_safety_snapshot_an_applied_postgres_change_needs() {
    let (ws, db) = setup("mig_pins");
    two_phase(&ws);
    ws.ok(&["migrate", "up"]);
    let safety = rows(
        &db,
        "SELECT safety_snapshot FROM ripcord.changes WHERE name = '0003_drop_email'",
    )
    .pop()
    .expect("a safety snapshot for 0003_drop_email");
    ws.ok(&["snapshot"]);
    ws.ok(&["snapshot"]);

    let v = ws.json(&["forget", "--keep-last", "1", "--keep-safety-last", "0"]);
    let decision = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["snapshot"] == safety.as_str())
        .unwrap_or_else(|| panic!("{safety} not judged: {v}"))
        .clone();
    assert_eq!(decision["keep"], true, "{decision}");
    assert_eq!(decision["pin"]["change"], "0003_drop_email", "{decision}");
    assert_eq!(
        u64::try_from(ws.json(&["snapshots"]).as_array().unwrap().len()).unwrap(),
        2
    );
    ws.run(&["forget", &safety])
        .assert_code(3)
        .assert_stderr_has("applied to app");

    // The database cannot be reached: its migrations' snapshots stay.
    let gone = [(
        "RIPCORD_TARGETS__APP__URL",
        cluster().url("mig_pins_nowhere"),
    )];
    let gone: Vec<(&str, &str)> = gone.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = ws.run_env(
        &["forget", "--keep-last", "1", "--keep-safety-last", "0"],
        &gone,
    );
    out.assert_ok();
    out.assert_stderr_has("cannot be told");
    ws.run_env(&["forget", &safety], &gone)
        .assert_code(3)
        .assert_stderr_has("reachable");

    ws.ok(&["forget", &safety, "--force"])
        .assert_stderr_has("will lose the data");
    let before = rows(&db, "SELECT id, name FROM users ORDER BY id");
    for args in [
        &["rollback", "--to", "@expand", "--dry-run"][..],
        &["rollback", "--to", "@expand"][..],
    ] {
        ws.run(args)
            .assert_code(3)
            .assert_stderr_has("nothing was reverted")
            .assert_stderr_has(&safety);
    }
    assert_eq!(rows(&db, "SELECT id, name FROM users ORDER BY id"), before);
    assert_eq!(
        states(&ws),
        [
            "0001_users=applied",
            "0002_seed=applied",
            "0003_drop_email=applied"
        ]
    );
}

/// Two tables share a column line: a column that down leaves behind in
/// the empty one must still be reported (a comparison of schema lines as a
/// set saw `flag integer` in the other table and found nothing).
#[test]
fn rehearse_reports_a_leftover_column_in_an_empty_table() {
    let (ws, db) = setup("mig_leftover");
    exec(
        &db,
        "CREATE TABLE a (id integer, note text);
         CREATE TABLE b (id integer, note text, flag integer);
         INSERT INTO b VALUES (1, 'x', 2);",
    );
    write(
        &ws,
        "migrations/0001_flag/up.sql",
        "ALTER TABLE a ADD COLUMN flag integer;\n",
    );
    write(&ws, "migrations/0001_flag/down.sql", "SELECT 1;\n");
    let out = ws.run(&["migrate", "rehearse"]);
    out.assert_code(1)
        .assert_stdout_has("not reversible: 0001_flag")
        .assert_stdout_has("table public.a differs after down: left behind: flag integer")
        .assert_stderr_has("0001_flag");
    assert!(!out.stdout.contains("public.b"), "{out}");
    let left = scratch_copies(&db);
    assert!(left.is_empty(), "scratch databases left: {left:?}\n{out}");

    // A down script that does remove it passes.
    write(
        &ws,
        "migrations/0001_flag/down.sql",
        "ALTER TABLE a DROP COLUMN flag;\n",
    );
    ws.ok(&["migrate", "rehearse"])
        .assert_stdout_has("rehearsal passed");
}

/// The process is stopped (SIGTERM, Ctrl-C) while a change runs on the
/// scratch copy: the copy is dropped before it exits, and the exit status
/// names the signal.
#[test]
fn rehearse_interrupted_by_a_signal_leaves_no_scratch_database() {
    for signal in ["TERM", "INT"] {
        let (ws, db) = setup(&format!("mig_signal_{signal}"));
        write(
            &ws,
            "migrations/0001_slow/up.sql",
            "CREATE TABLE t (id int);\nSELECT pg_sleep(120);\n",
        );
        write(&ws, "migrations/0001_slow/down.sql", "DROP TABLE t;\n");
        let tmp = ws.path("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut cmd = ws.command(&["migrate", "rehearse"]);
        cmd.env("TMPDIR", &tmp)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().expect("start ripcord");
        let sleeping = || {
            !rows(
                "postgres",
                &format!(
                    "SELECT pid FROM pg_stat_activity
                     WHERE datname LIKE '{db}_rehearse_%' AND query LIKE '%pg_sleep(120)%'"
                ),
            )
            .is_empty()
        };
        assert!(
            ripcord_testing::process::wait_until(std::time::Duration::from_secs(60), sleeping),
            "the change never ran on a scratch copy"
        );
        assert_eq!(scratch_copies(&db).len(), 1);
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        let expected = if signal == "TERM" { 15 } else { 2 };
        assert_eq!(
            out.status.signal(),
            Some(expected),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let left = scratch_copies(&db);
        assert!(
            left.is_empty(),
            "SIG{signal}: scratch databases left: {left:?}"
        );
        let files: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(
            files.is_empty(),
            "SIG{signal}: temporary files left: {files:?}"
        );
        // The real database was never touched.
        assert_eq!(tables(&db), Vec::<String>::new());
    }
}

/// The rehearsal fails, and dropping the scratch copy fails too (the
/// change marked it a template, which cannot be dropped): both errors are
/// shown, the rehearsal's first, with its exit code.
#[test]
fn a_failing_cleanup_does_not_hide_the_failing_rehearsal() {
    let (ws, db) = setup("mig_cleanup_fails");
    write(
        &ws,
        "migrations/0001_template/up.sql",
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I IS_TEMPLATE true', current_database()); END $$;\n",
    );
    write(&ws, "migrations/0001_template/down.sql", "SELECT 1;\n");
    write(
        &ws,
        "migrations/0002_broken/up.sql",
        "SELECT * FROM no_such_table;\n",
    );
    write(&ws, "migrations/0002_broken/down.sql", "SELECT 1;\n");
    for json in [false, true] {
        let args: &[&str] = if json {
            &["--json", "migrate", "rehearse"]
        } else {
            &["migrate", "rehearse"]
        };
        let out = ws.run(args);
        out.assert_code(1)
            .assert_stderr_has("up failed on the scratch copy")
            .assert_stderr_has("no_such_table")
            .assert_stderr_has("cleaning up failed too")
            .assert_stderr_has("cannot drop the scratch database")
            .assert_stderr_has("template");
        let stderr = out.stderr.to_lowercase();
        assert!(
            stderr.find("up failed").unwrap() < stderr.find("cleaning up failed").unwrap(),
            "the rehearsal's error comes first\n{out}"
        );
        // Clean up what the test made undroppable.
        for scratch in scratch_copies(&db) {
            exec(
                "postgres",
                &format!("ALTER DATABASE \"{scratch}\" IS_TEMPLATE false"),
            );
            cluster().drop_database(&scratch).unwrap();
        }
    }
}
