//! Liquibase formatted SQL run by ripcord on SQLite (rollback lines and
//! blocks, attributes, broken changelogs), and `migrate adopt` of SQLite
//! databases migrated by sqitch (the real tool, where installed), Flyway,
//! golang-migrate, dbmate and Liquibase (their history tables written as
//! those tools write them on SQLite): then one more `up` and a full `down`.

use std::path::{Path, PathBuf};
use std::process::Command;

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

fn rows(db: &Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open database");
    let mut stmt = conn.prepare(sql).expect("prepare");
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                rusqlite::types::Value::Null => String::new(),
                rusqlite::types::Value::Integer(v) => v.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
            .join("|"))
    })
    .expect("query")
    .collect::<rusqlite::Result<Vec<_>>>()
    .expect("rows")
}

fn exec(db: &Path, sql: &str) {
    rusqlite::Connection::open(db)
        .expect("open database")
        .execute_batch(sql)
        .expect("execute");
}

fn has_table(db: &Path, name: &str) -> bool {
    db.exists()
        && rows(
            db,
            &format!("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{name}'"),
        ) == ["1"]
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

const LIQUIBASE: &str = "\
--liquibase formatted sql

--changeset ann:users
--comment: the users
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
--rollback DROP TABLE audit;
--rollback DROP TABLE users;

--changeset ann:seed
INSERT INTO users VALUES (1, 'ann', 'ann@example.com');
INSERT INTO users VALUES (2, 'bob', 'bob@example.com');
/* liquibase rollback
DELETE FROM users WHERE id = 2;
DELETE FROM users WHERE id = 1;
*/

--changeset ann:trigger endDelimiter:GO
CREATE TRIGGER users_audit AFTER UPDATE ON users BEGIN
  INSERT INTO audit (what) VALUES ('updated ' || new.name);
END
GO
--rollback DROP TRIGGER users_audit;

--changeset ann:index runInTransaction:false
CREATE INDEX users_name ON users (name);
--rollback DROP INDEX users_name;

--changeset ann:touch runAlways:true
UPDATE users SET name = name WHERE id = 1;
--rollback SELECT 1;
";

#[test]
fn liquibase_changelog_runs_and_rolls_back_on_sqlite() {
    let (ws, db) = setup();
    write(&ws, "migrations/changelog.sql", LIQUIBASE);
    let plan = ws.json(&["migrate", "plan"]);
    assert_eq!(plan["format"], "liquibase");
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        states(&ws),
        [
            "ann:users=applied",
            "ann:seed=applied",
            "ann:trigger=applied",
            "ann:index=applied",
            "ann:touch=applied"
        ]
    );
    // The trigger (endDelimiter GO) fired once, for runAlways's update.
    assert_eq!(rows(&db, "SELECT what FROM audit"), ["updated ann"]);
    assert!(
        rows(&db, "SELECT name FROM sqlite_master WHERE type = 'index'")
            .contains(&"users_name".to_string())
    );
    // runAlways: every `up` runs it again.
    ws.ok(&["migrate", "up"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM audit"), ["2"]);

    // Down to the seed: the rollback lines drop the index and the trigger.
    ws.ok(&["migrate", "down", "--to", "ann:seed"]);
    let left = rows(
        &db,
        "SELECT name FROM sqlite_master WHERE type IN ('index', 'trigger') \
         AND tbl_name NOT LIKE 'ripcord%' AND name NOT LIKE 'sqlite_%'",
    );
    assert!(left.is_empty(), "{left:?}");
    // The rollback block deletes the seeded rows.
    ws.ok(&["migrate", "down", "--to", "ann:users"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM users"), ["0"]);
    ws.ok(&["migrate", "down", "--to", "@root"]);
    assert!(!has_table(&db, "users") && !has_table(&db, "audit"));
}

#[test]
fn a_broken_liquibase_changelog_names_its_line_and_changes_nothing() {
    for (text, place) in [
        (
            "--liquibase formatted sql\n--changeset ann:1\nCREATE TABLE t (id int);\n\
             --changeset ann\nCREATE TABLE u (id int);\n",
            "changelog.sql:4",
        ),
        (
            "--liquibase formatted sql\n--changeset ann:1\nCREATE TABLE t (id int);\n\
             /* liquibase rollback\nDROP TABLE t;\n",
            "changelog.sql:4",
        ),
        (
            "--liquibase formatted sql\n--changeset ann:1 runInTransaction:nope\n\
             CREATE TABLE t (id int);\n",
            "changelog.sql:2",
        ),
        (
            "--liquibase formatted sql\n--changeset ann:1\n--precondition-sql-check \
             expectedResult:0 SELECT 1\nCREATE TABLE t (id int);\n",
            "changelog.sql:3",
        ),
    ] {
        let (ws, db) = setup();
        write(&ws, "migrations/changelog.sql", text);
        let out = ws.run(&["migrate", "up"]);
        out.assert_code(2).assert_stderr_has(place);
        assert!(out.all_text().contains("hint"), "{}", out.all_text());
        assert!(!has_table(&db, "t"), "nothing ran");
    }
}

const USERS: &str =
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);\n";
const SEED: &str =
    "INSERT INTO users VALUES (1, 'ann', 'ann@example.com'), (2, 'bob', 'bob@example.com');\n";
const UNSEED: &str = "DELETE FROM users WHERE id IN (1, 2);\n";
const DROP_EMAIL: &str = "ALTER TABLE users DROP COLUMN email;\n";

/// Adopt, one more destructive `up`, and a full `down` with the data back.
fn adopt_then_up_and_down(
    ws: &Workspace,
    db: &Path,
    names: [&str; 3],
    add_third: impl Fn(&Workspace),
) {
    ws.ok(&["migrate", "adopt"]);
    assert_eq!(
        states(ws),
        [
            format!("{}=applied", names[0]),
            format!("{}=applied", names[1])
        ]
    );
    assert_eq!(rows(db, "SELECT count(*) FROM users"), ["2"]);
    add_third(ws);
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        rows(
            db,
            "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'email'"
        ),
        ["0"]
    );
    ws.ok(&["migrate", "down", "--to", names[1]]);
    assert_eq!(
        rows(db, "SELECT id, name, email FROM users ORDER BY id"),
        ["1|ann|ann@example.com", "2|bob|bob@example.com"]
    );
    ws.ok(&["migrate", "down", "--to", "@root"]);
    assert!(!has_table(db, "users"));
}

#[test]
fn adopt_flyway_on_sqlite() {
    let (ws, db) = setup();
    let files = |ws: &Workspace, third: bool| {
        write(ws, "migrations/V1__users.sql", USERS);
        write(ws, "migrations/U1__users.sql", "DROP TABLE users;\n");
        write(ws, "migrations/V2__seed.sql", SEED);
        write(ws, "migrations/U2__seed.sql", UNSEED);
        if third {
            write(ws, "migrations/V3__drop_email.sql", DROP_EMAIL);
        }
    };
    files(&ws, false);
    // Flyway's SQLite history table; CRC-32 checksums worked out outside ripcord.
    exec(
        &db,
        &format!(
            "{USERS}{SEED}
             CREATE TABLE \"flyway_schema_history\" (\"installed_rank\" INT NOT NULL PRIMARY KEY,
                 \"version\" VARCHAR(50), \"description\" VARCHAR(200) NOT NULL,
                 \"type\" VARCHAR(20) NOT NULL, \"script\" VARCHAR(1000) NOT NULL, \"checksum\" INT,
                 \"installed_by\" VARCHAR(100) NOT NULL,
                 \"installed_on\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
                 \"execution_time\" INT NOT NULL, \"success\" BOOLEAN NOT NULL);
             INSERT INTO flyway_schema_history (installed_rank, version, description, type, script,
                 checksum, installed_by, execution_time, success) VALUES
                 (1, '1', 'users', 'SQL', 'V1__users.sql', 263827020, '', 3, 1),
                 (2, '2', 'seed', 'SQL', 'V2__seed.sql', -1850255112, '', 1, 1);"
        ),
    );
    adopt_then_up_and_down(
        &ws,
        &db,
        ["V1__users", "V2__seed", "V3__drop_email"],
        |ws| files(ws, true),
    );
}

#[test]
fn adopt_golang_migrate_and_dbmate_on_sqlite() {
    let (ws, db) = setup();
    let files = |ws: &Workspace, third: bool| {
        write(ws, "migrations/1_users.up.sql", USERS);
        write(ws, "migrations/1_users.down.sql", "DROP TABLE users;\n");
        write(ws, "migrations/2_seed.up.sql", SEED);
        write(ws, "migrations/2_seed.down.sql", UNSEED);
        if third {
            write(ws, "migrations/3_drop_email.up.sql", DROP_EMAIL);
        }
    };
    files(&ws, false);
    // golang-migrate's sqlite3 driver.
    exec(
        &db,
        &format!(
            "{USERS}{SEED}
             CREATE TABLE IF NOT EXISTS schema_migrations (version uint64, dirty bool);
             CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version);
             INSERT INTO schema_migrations (version, dirty) VALUES (2, 0);"
        ),
    );
    adopt_then_up_and_down(&ws, &db, ["1_users", "2_seed", "3_drop_email"], |ws| {
        files(ws, true)
    });

    let (ws, db) = setup();
    let files = |ws: &Workspace, third: bool| {
        write(
            ws,
            "migrations/20240101000001_users.sql",
            &format!("-- migrate:up\n{USERS}\n-- migrate:down\nDROP TABLE users;\n"),
        );
        write(
            ws,
            "migrations/20240101000002_seed.sql",
            &format!("-- migrate:up\n{SEED}\n-- migrate:down\n{UNSEED}"),
        );
        if third {
            write(
                ws,
                "migrations/20240101000003_drop_email.sql",
                &format!("-- migrate:up\n{DROP_EMAIL}"),
            );
        }
    };
    files(&ws, false);
    // dbmate itself where it is installed, else its sqlite driver's table.
    match dbmate() {
        Some(bin) => {
            let out = Command::new(bin)
                .args(["--url", &format!("sqlite:{}", db.display())])
                .args(["--migrations-dir", "migrations", "--no-dump-schema", "migrate"])
                .current_dir(ws.root())
                .output()
                .expect("run dbmate");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        None => exec(
            &db,
            &format!(
                "{USERS}{SEED}
                 CREATE TABLE IF NOT EXISTS \"schema_migrations\" (version varchar(128) primary key);
                 INSERT INTO schema_migrations (version) VALUES ('20240101000001'),
                     ('20240101000002');"
            ),
        ),
    }
    // A version it ran that the files lack is refused.
    exec(
        &db,
        "INSERT INTO schema_migrations (version) VALUES ('20230101000000')",
    );
    ws.run(&["migrate", "adopt"])
        .assert_code(3)
        .assert_stderr_has("20230101000000");
    assert!(!has_table(&db, "ripcord_changes"), "nothing changed");
    exec(
        &db,
        "DELETE FROM schema_migrations WHERE version = '20230101000000'",
    );
    adopt_then_up_and_down(
        &ws,
        &db,
        [
            "20240101000001_users",
            "20240101000002_seed",
            "20240101000003_drop_email",
        ],
        |ws| files(ws, true),
    );
}

fn dbmate() -> Option<PathBuf> {
    let named = std::env::var_os("RIPCORD_DBMATE").map(PathBuf::from);
    let found = named.filter(|p| p.is_file()).or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join("dbmate"))
            .find(|p| p.is_file())
    })?;
    Command::new(&found)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(found)
}

#[test]
fn adopt_liquibase_on_sqlite() {
    let (ws, db) = setup();
    let files = |ws: &Workspace, third: bool| {
        let mut text = format!(
            "--liquibase formatted sql\n\n--changeset ann:1\n{USERS}--rollback DROP TABLE users;\n\n\
             --changeset ann:2\n{SEED}/* liquibase rollback\n{UNSEED}*/\n"
        );
        if third {
            text.push_str(&format!("\n--changeset ann:3\n{DROP_EMAIL}"));
        }
        write(ws, "migrations/changelog.sql", &text);
    };
    files(&ws, false);
    exec(
        &db,
        &format!(
            "{USERS}{SEED}
             CREATE TABLE DATABASECHANGELOG (ID VARCHAR(255) NOT NULL, AUTHOR VARCHAR(255) NOT NULL,
                 FILENAME VARCHAR(255) NOT NULL, DATEEXECUTED TEXT NOT NULL,
                 ORDEREXECUTED INTEGER NOT NULL, EXECTYPE VARCHAR(10) NOT NULL, MD5SUM VARCHAR(35),
                 DESCRIPTION VARCHAR(255), COMMENTS VARCHAR(255), TAG VARCHAR(255),
                 LIQUIBASE VARCHAR(20), CONTEXTS VARCHAR(255), LABELS VARCHAR(255),
                 DEPLOYMENT_ID VARCHAR(10));
             INSERT INTO DATABASECHANGELOG VALUES
                 ('1', 'ann', 'changelog.sql', '2024-01-01 00:00:00', 1, 'EXECUTED',
                  '9:1c9bad09fc3cbf080e65ba6ce6f61de9', 'sql', '', NULL, '4.29.2', NULL, NULL, '1'),
                 ('2', 'ann', 'changelog.sql', '2024-01-01 00:00:01', 2, 'EXECUTED',
                  '9:9e46137f465af61c02cf00b441cf149e', 'sql', '', NULL, '4.29.2', NULL, NULL, '1');"
        ),
    );
    adopt_then_up_and_down(&ws, &db, ["ann:1", "ann:2", "ann:3"], |ws| files(ws, true));
}

#[test]
fn adopt_sqitch_on_sqlite() {
    let has_sqitch = Command::new("sqitch")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let has_client = Command::new("sqlite3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_sqitch || !has_client {
        eprintln!("sqitch or sqlite3 is not installed: skipping the sqitch deploy on SQLite");
        return;
    }
    let (ws, db) = setup();
    let files = |ws: &Workspace, third: bool| {
        let mut plan = String::from(
            "%syntax-version=1.0.0\n%project=shop\n\n\
             users 2024-01-01T00:00:00Z Ann Lee <ann@example.com>\n\
             @v1 2024-01-01T00:00:01Z Ann Lee <ann@example.com>\n\
             seed [users] 2024-01-02T00:00:00Z Ann Lee <ann@example.com>\n",
        );
        if third {
            plan.push_str("drop_email [seed] 2024-01-04T00:00:00Z Ann Lee <ann@example.com>\n");
            write(ws, "migrations/deploy/drop_email.sql", DROP_EMAIL);
        }
        write(ws, "migrations/sqitch.plan", &plan);
        write(ws, "migrations/deploy/users.sql", USERS);
        write(ws, "migrations/revert/users.sql", "DROP TABLE users;\n");
        write(ws, "migrations/deploy/seed.sql", SEED);
        write(ws, "migrations/revert/seed.sql", UNSEED);
    };
    files(&ws, false);
    let out = Command::new("sqitch")
        .args(["deploy", &format!("db:sqlite:{}", db.display())])
        .current_dir(ws.path("migrations"))
        .env("SQITCH_FULLNAME", "Ann Lee")
        .env("SQITCH_EMAIL", "ann@example.com")
        .env("SQITCH_CONFIG", ws.path("no-sqitch.conf"))
        .env("SQITCH_USER_CONFIG", ws.path("no-sqitch-user.conf"))
        .env("SQITCH_SYSTEM_CONFIG", ws.path("no-sqitch-system.conf"))
        .output()
        .expect("run sqitch");
    assert!(
        out.status.success(),
        "sqitch deploy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.with_file_name("sqitch.db").is_file());
    // The tag moved in the plan since: refused, naming it.
    let plan = std::fs::read_to_string(ws.path("migrations/sqitch.plan")).unwrap();
    let moved = plan
        .replace("@v1 2024-01-01T00:00:01Z Ann Lee <ann@example.com>\n", "")
        .replace(
            "seed [users] 2024-01-02T00:00:00Z Ann Lee <ann@example.com>\n",
            "seed [users] 2024-01-02T00:00:00Z Ann Lee <ann@example.com>\n\
             @v1 2024-01-02T00:00:01Z Ann Lee <ann@example.com>\n",
        );
    write(&ws, "migrations/sqitch.plan", &moved);
    ws.run(&["migrate", "adopt"])
        .assert_code(3)
        .assert_stderr_has("tag @v1");
    write(&ws, "migrations/sqitch.plan", &plan);
    adopt_then_up_and_down(&ws, &db, ["users", "seed", "drop_email"], |ws| {
        files(ws, true)
    });
}

#[test]
fn adopt_follows_flyway_baselines_undos_and_repeatables() {
    let (ws, db) = setup();
    write(&ws, "migrations/V1__users.sql", USERS);
    write(&ws, "migrations/V2__seed.sql", SEED);
    write(&ws, "migrations/U2__seed.sql", UNSEED);
    write(
        &ws,
        "migrations/V3__more.sql",
        "CREATE TABLE more (id INTEGER);\n",
    );
    let view = "DROP VIEW IF EXISTS v;\nCREATE VIEW v AS SELECT count(*) AS n FROM users;\n";
    write(&ws, "migrations/R__view.sql", view);
    // Baselined at 1; 2 applied then undone; the view ran in an older
    // version (another checksum), so Flyway would run it again.
    exec(
        &db,
        &format!(
            "{USERS}
             CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY,
                 version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL,
                 script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL,
                 installed_on TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
                 execution_time INT NOT NULL, success BOOLEAN NOT NULL);
             INSERT INTO flyway_schema_history (installed_rank, version, description, type, script,
                 checksum, installed_by, execution_time, success) VALUES
                 (1, '1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, '', 0, 1),
                 (2, '2', 'seed', 'SQL', 'V2__seed.sql', -1850255112, '', 1, 1),
                 (3, '2', 'seed', 'UNDO_SQL', 'U2__seed.sql', 1, '', 1, 1),
                 (4, NULL, 'view', 'SQL', 'R__view.sql', 42, '', 1, 1);"
        ),
    );
    let v = ws.json(&["migrate", "adopt"]);
    let adopted: Vec<&str> = v["adopted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(adopted, ["V1__users"], "{v}");
    assert_eq!(v["pending"].as_array().unwrap().len(), 3, "{v}");
    assert!(v["notes"].to_string().contains("R__view"), "{v}");
    ws.ok(&["migrate", "up"]);
    assert_eq!(rows(&db, "SELECT n FROM v"), ["2"]);
    assert!(has_table(&db, "more"));
}

#[test]
fn adopt_checks_the_file_liquibase_ran_a_changeset_from() {
    let (ws, db) = setup();
    write(
        &ws,
        "migrations/changelog.sql",
        &format!(
            "--liquibase formatted sql\n--changeset ann:1\n{USERS}--rollback DROP TABLE users;\n"
        ),
    );
    let history = |file: &str, md5: &str| {
        exec(
            &db,
            &format!(
                "DROP TABLE IF EXISTS databasechangelog;
                 CREATE TABLE databasechangelog (id TEXT, author TEXT, filename TEXT,
                     dateexecuted TEXT, orderexecuted INTEGER, exectype TEXT, md5sum TEXT);
                 INSERT INTO databasechangelog VALUES
                     ('1', 'ann', '{file}', '2024-01-01', 1, 'EXECUTED', '{md5}');"
            ),
        );
    };
    exec(&db, USERS);
    history("db/other.sql", "9:1c9bad09fc3cbf080e65ba6ce6f61de9");
    ws.run(&["migrate", "adopt"])
        .assert_code(3)
        .assert_stderr_has("ann:1")
        .assert_stderr_has("db/other.sql");
    // A classpath prefix and leading folders are the same file; a checksum
    // of an older Liquibase is reported unchecked.
    history(
        "classpath:db/changelog/changelog.sql",
        "8:0123456789abcdef0123456789abcdef",
    );
    let v = ws.json(&["migrate", "adopt"]);
    assert!(v["notes"].to_string().contains("older than 4.24"), "{v}");
    assert_eq!(states(&ws), ["ann:1=applied"]);
}

#[test]
fn adopt_without_the_tools_history_is_a_usage_error() {
    let (ws, db) = setup();
    write(&ws, "migrations/V1__users.sql", USERS);
    exec(&db, USERS);
    let out = ws.run(&["migrate", "adopt"]);
    out.assert_code(2)
        .assert_stderr_has("no flyway_schema_history")
        .assert_stderr_has("--history");
    assert!(!has_table(&db, "ripcord_changes"), "nothing changed");
    // A history kept under another name is found with --history.
    exec(
        &db,
        "CREATE TABLE my_history (installed_rank INT, version TEXT, description TEXT, type TEXT,
             script TEXT, checksum INT, success BOOLEAN);
         INSERT INTO my_history VALUES (1, '1', 'users', 'SQL', 'V1__users.sql', 263827020, 1);",
    );
    ws.ok(&["migrate", "adopt", "--history", "my_history"]);
    assert_eq!(states(&ws), ["V1__users=applied"]);

    // ripcord's own layout has no other tool's history to read.
    let (ws, db) = setup();
    write(&ws, "migrations/0001_users/up.sql", USERS);
    exec(&db, USERS);
    ws.run(&["migrate", "adopt"])
        .assert_code(2)
        .assert_stderr_has("native");
}
