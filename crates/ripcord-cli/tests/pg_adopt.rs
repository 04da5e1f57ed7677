//! `migrate adopt` on PostgreSQL: a database migrated by sqitch, dbmate or
//! Liquibase (the real tools, where installed: scripts/test installs them),
//! or by Flyway or golang-migrate (their history tables written by the test
//! exactly as those tools write them, after running the same scripts), is
//! taken over; then one more `up` with a destructive change, and a full
//! `down`, with the data back. A history that disagrees with the files is
//! refused (exit 3) naming the change, with nothing changed, unless
//! `--accept`. Liquibase changelogs also run under ripcord itself.

use std::process::Command;

use ripcord_testing::app::{exec, pg_app, rows, write};
use ripcord_testing::pg::{self, PgCluster};
use ripcord_testing::Workspace;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

fn cluster() -> &'static PgCluster {
    pg::shared()
}

fn setup(name: &str) -> (Workspace, String) {
    pg_app(bin(), name, "")
}

const USERS: &str = "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text);\n";
const SEED: &str =
    "INSERT INTO users VALUES (1, 'ann', 'ann@example.com'), (2, 'bob', 'bob@example.com');\n";
const UNSEED: &str = "DELETE FROM users WHERE id IN (1, 2);\n";
const DROP_EMAIL: &str = "ALTER TABLE users DROP COLUMN email;\n";

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

fn has_ripcord_schema(db: &str) -> bool {
    rows(db, "SELECT to_regclass('ripcord.changes') IS NOT NULL") == ["t"]
}

/// After the other tool ran the first two changes (users, seed): adopt,
/// add the destructive third change, `up`, and `down` all the way, with the
/// e-mail addresses back after the third is reverted.
fn adopt_then_up_and_down(
    ws: &Workspace,
    db: &str,
    names: [&str; 3],
    add_third: impl Fn(&Workspace),
) {
    let out = ws.ok(&["migrate", "adopt"]);
    assert!(out.all_text().contains("2 changes"), "{}", out.all_text());
    assert_eq!(
        states(ws),
        [
            format!("{}=applied", names[0]),
            format!("{}=applied", names[1])
        ]
    );
    // Recorded without running: the rows are the tool's, not doubled.
    assert_eq!(rows(db, "SELECT count(*) FROM users"), ["2"]);
    // Adopting again is refused: ripcord tracks the database now.
    ws.run(&["migrate", "adopt"])
        .assert_code(3)
        .assert_stderr_has("already tracks");

    add_third(ws);
    assert_eq!(
        states(ws)[2],
        format!("{}=pending", names[2]),
        "the new change is pending"
    );
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        rows(
            db,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' \
             AND column_name = 'email'"
        ),
        ["0"]
    );
    ws.ok(&["migrate", "down", "--to", names[1]]);
    assert_eq!(
        rows(db, "SELECT id, name, email FROM users ORDER BY id"),
        ["1|ann|ann@example.com", "2|bob|bob@example.com"],
        "the dropped column is back with its data"
    );
    // The adopted changes go by their down scripts.
    let v = ws.json(&["migrate", "down", "--to", "@root"]);
    let how: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["how"].as_str().unwrap())
        .collect();
    assert_eq!(how, ["down-script", "down-script"], "{v}");
    assert_eq!(rows(db, "SELECT to_regclass('users') IS NULL"), ["t"]);
    assert_eq!(rows(db, "SELECT count(*) FROM ripcord.changes"), ["0"]);
}

fn has_sqitch() -> bool {
    Command::new("sqitch")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sqitch_files(ws: &Workspace, third: bool) {
    let mut plan = String::from(
        "%syntax-version=1.0.0\n%project=shop\n\n\
         users 2024-01-01T00:00:00Z Ann Lee <ann@example.com> # users\n\
         seed [users] 2024-01-02T00:00:00Z Ann Lee <ann@example.com> # seed\n\
         @v1 2024-01-03T00:00:00Z Ann Lee <ann@example.com> # first release\n",
    );
    if third {
        plan.push_str("drop_email [seed] 2024-01-04T00:00:00Z Ann Lee <ann@example.com>\n");
        write(ws, "migrations/deploy/drop_email.sql", DROP_EMAIL);
    }
    write(ws, "migrations/sqitch.plan", &plan);
    write(
        ws,
        "migrations/deploy/users.sql",
        &format!("BEGIN;\n{USERS}COMMIT;\n"),
    );
    write(
        ws,
        "migrations/revert/users.sql",
        "BEGIN;\nDROP TABLE users;\nCOMMIT;\n",
    );
    write(
        ws,
        "migrations/verify/users.sql",
        "SELECT id, name, email FROM users WHERE false;\n",
    );
    write(
        ws,
        "migrations/deploy/seed.sql",
        &format!("BEGIN;\n{SEED}COMMIT;\n"),
    );
    write(
        ws,
        "migrations/revert/seed.sql",
        &format!("BEGIN;\n{UNSEED}COMMIT;\n"),
    );
}

/// Deploys with sqitch itself when it is installed; otherwise runs the SQL
/// and writes the registry rows sqitch would write (the columns ripcord
/// reads), with the SHA-1 of each deploy script worked out outside ripcord.
fn sqitch_deploy(ws: &Workspace, db: &str) {
    if has_sqitch() {
        let url = cluster().url(db).replacen("postgres://", "db:pg://", 1);
        let path = format!(
            "{}:{}",
            cluster().bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sqitch")
            .args(["deploy", &url])
            .current_dir(ws.path("migrations"))
            .env("PATH", path)
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
        return;
    }
    eprintln!("sqitch is not installed: writing its registry as it would");
    exec(db, &format!("{USERS}{SEED}"));
    exec(
        db,
        "CREATE SCHEMA sqitch;
         CREATE TABLE sqitch.changes (change_id text PRIMARY KEY, script_hash text, change text NOT NULL,
             project text NOT NULL, committed_at timestamptz NOT NULL DEFAULT clock_timestamp());
         CREATE TABLE sqitch.tags (tag_id text PRIMARY KEY, tag text NOT NULL, project text NOT NULL,
             change_id text NOT NULL);
         INSERT INTO sqitch.changes (change_id, script_hash, change, project)
             VALUES ('c1', '275bc58f6d21a1fe8e982ac4848ac2651377f606', 'users', 'shop');
         INSERT INTO sqitch.changes (change_id, script_hash, change, project)
             VALUES ('c2', 'f2fa00d97a472da13f89c144aef231fae44dc8af', 'seed', 'shop');
         INSERT INTO sqitch.tags VALUES ('t1', '@v1', 'shop', 'c2');",
    );
}

#[test]
fn adopt_a_database_sqitch_deployed() {
    let (ws, db) = setup("adopt_sqitch");
    sqitch_files(&ws, false);
    sqitch_deploy(&ws, &db);
    assert_eq!(
        rows(
            &db,
            "SELECT change FROM sqitch.changes ORDER BY committed_at"
        ),
        ["users", "seed"]
    );
    assert_eq!(rows(&db, "SELECT tag FROM sqitch.tags"), ["@v1"]);
    adopt_then_up_and_down(&ws, &db, ["users", "seed", "drop_email"], |ws| {
        sqitch_files(ws, true)
    });
}

#[test]
fn adopt_refuses_an_edited_sqitch_change_unless_accepted() {
    let (ws, db) = setup("adopt_sqitch_edited");
    sqitch_files(&ws, false);
    sqitch_deploy(&ws, &db);
    write(
        &ws,
        "migrations/deploy/seed.sql",
        "BEGIN;\nINSERT INTO users VALUES (3, 'cy', NULL);\nCOMMIT;\n",
    );
    let out = ws.run(&["migrate", "adopt"]);
    out.assert_code(3).assert_stderr_has("seed");
    assert!(out.all_text().contains("script_hash"), "{}", out.all_text());
    assert!(!has_ripcord_schema(&db), "nothing changed");
    ws.ok(&["migrate", "adopt", "--accept"]);
    assert_eq!(states(&ws), ["users=applied", "seed=applied"]);
}

fn flyway_files(ws: &Workspace, third: bool) {
    write(ws, "migrations/V1__users.sql", USERS);
    write(ws, "migrations/U1__users.sql", "DROP TABLE users;\n");
    write(ws, "migrations/V2__seed.sql", SEED);
    write(ws, "migrations/U2__seed.sql", UNSEED);
    if third {
        write(ws, "migrations/V3__drop_email.sql", DROP_EMAIL);
    }
}

/// flyway_schema_history as Flyway 9 and 10 create and fill it on
/// PostgreSQL; the checksums are Flyway's (CRC-32 of the lines), worked out
/// independently of ripcord.
fn flyway_history(db: &str, seed_checksum: i32) {
    exec(db, &format!("{USERS}{SEED}"));
    exec(
        db,
        &format!(
            "CREATE TABLE \"public\".\"flyway_schema_history\" (
                 \"installed_rank\" INT NOT NULL,
                 \"version\" VARCHAR(50),
                 \"description\" VARCHAR(200) NOT NULL,
                 \"type\" VARCHAR(20) NOT NULL,
                 \"script\" VARCHAR(1000) NOT NULL,
                 \"checksum\" INTEGER,
                 \"installed_by\" VARCHAR(100) NOT NULL,
                 \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),
                 \"execution_time\" INTEGER NOT NULL,
                 \"success\" BOOLEAN NOT NULL);
             ALTER TABLE \"public\".\"flyway_schema_history\"
                 ADD CONSTRAINT \"flyway_schema_history_pk\" PRIMARY KEY (\"installed_rank\");
             CREATE INDEX \"flyway_schema_history_s_idx\" ON \"public\".\"flyway_schema_history\" (\"success\");
             INSERT INTO flyway_schema_history VALUES
                 (1, '1', 'users', 'SQL', 'V1__users.sql', 1077048085, 'app', now(), 12, true),
                 (2, '2', 'seed', 'SQL', 'V2__seed.sql', {seed_checksum}, 'app', now(), 5, true);"
        ),
    );
}

#[test]
fn adopt_a_database_flyway_migrated() {
    let (ws, db) = setup("adopt_flyway");
    flyway_files(&ws, false);
    flyway_history(&db, -1850255112);
    adopt_then_up_and_down(
        &ws,
        &db,
        ["V1__users", "V2__seed", "V3__drop_email"],
        |ws| flyway_files(ws, true),
    );
}

#[test]
fn adopt_killed_half_way_records_nothing_and_runs_again() {
    let (ws, db) = setup("adopt_killed");
    flyway_files(&ws, false);
    flyway_history(&db, -1850255112);
    // Killed after the first row is written, before the commit.
    let out = ws.run_env(
        &["migrate", "adopt"],
        &[("RIPCORD_FAILPOINT", "migrate-adopt-recorded")],
    );
    assert_eq!(
        out.signal,
        Some(9),
        "expected a kill at the failpoint\n{out}"
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord.changes"), ["0"]);
    ws.ok(&["migrate", "adopt"]);
    assert_eq!(states(&ws), ["V1__users=applied", "V2__seed=applied"]);
}

#[test]
fn adopt_refuses_a_flyway_checksum_that_differs() {
    let (ws, db) = setup("adopt_flyway_conflict");
    flyway_files(&ws, false);
    flyway_history(&db, 12345);
    let out = ws.run(&["migrate", "adopt"]);
    out.assert_code(3).assert_stderr_has("V2__seed");
    assert!(
        out.all_text().contains("checksum 12345"),
        "{}",
        out.all_text()
    );
    assert!(!has_ripcord_schema(&db), "nothing changed");
    // A version the files do not have is named too.
    exec(
        &db,
        "INSERT INTO flyway_schema_history VALUES
             (3, '7', 'gone', 'SQL', 'V7__gone.sql', 1, 'app', now(), 1, true)",
    );
    ws.run(&["migrate", "adopt"])
        .assert_code(3)
        .assert_stderr_has("version 7");
    let v = ws.json(&["migrate", "adopt", "--accept"]);
    assert_eq!(v["adopted"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(states(&ws), ["V1__users=applied", "V2__seed=applied"]);
}

fn golang_files(ws: &Workspace, third: bool) {
    write(ws, "migrations/1_users.up.sql", USERS);
    write(ws, "migrations/1_users.down.sql", "DROP TABLE users;\n");
    write(ws, "migrations/2_seed.up.sql", SEED);
    write(ws, "migrations/2_seed.down.sql", UNSEED);
    if third {
        write(ws, "migrations/3_drop_email.up.sql", DROP_EMAIL);
    }
}

#[test]
fn adopt_a_database_golang_migrate_migrated() {
    let (ws, db) = setup("adopt_golang");
    golang_files(&ws, false);
    exec(&db, &format!("{USERS}{SEED}"));
    // As golang-migrate's postgres driver creates and sets it.
    exec(
        &db,
        "CREATE TABLE IF NOT EXISTS \"public\".\"schema_migrations\" \
         (version bigint not null primary key, dirty boolean not null);
         INSERT INTO \"public\".\"schema_migrations\" (version, dirty) VALUES (2, true);",
    );
    // A dirty version failed half way: refused, naming it.
    ws.run(&["migrate", "adopt"])
        .assert_code(3)
        .assert_stderr_has("2_seed");
    assert!(!has_ripcord_schema(&db));
    exec(&db, "UPDATE schema_migrations SET dirty = false");
    adopt_then_up_and_down(&ws, &db, ["1_users", "2_seed", "3_drop_email"], |ws| {
        golang_files(ws, true)
    });
}

fn dbmate_files(ws: &Workspace, third: bool) {
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
}

/// A tool's executable: the path in `var` (scripts/test sets it when it
/// could install the tool), else `name` on the PATH; `None` when neither runs.
fn tool(var: &str, name: &str) -> Option<std::path::PathBuf> {
    let named = std::env::var_os(var).map(std::path::PathBuf::from);
    let found = named.filter(|p| p.is_file()).or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })?;
    Command::new(&found)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(found)
}

/// Migrates with dbmate itself when it is there; otherwise runs the SQL and
/// writes schema_migrations as dbmate's postgres driver does.
fn dbmate_deploy(ws: &Workspace, db: &str) {
    if let Some(bin) = tool("RIPCORD_DBMATE", "dbmate") {
        let url = format!("{}?sslmode=disable", cluster().url(db));
        let out = Command::new(bin)
            .args([
                "--url",
                &url,
                "--migrations-dir",
                "migrations",
                "--no-dump-schema",
                "migrate",
            ])
            .current_dir(ws.root())
            .output()
            .expect("run dbmate");
        assert!(
            out.status.success(),
            "dbmate migrate: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    eprintln!("dbmate is not installed: writing its history as it would");
    exec(db, &format!("{USERS}{SEED}"));
    exec(
        db,
        "CREATE TABLE IF NOT EXISTS public.schema_migrations \
         (version character varying(128) NOT NULL PRIMARY KEY);
         INSERT INTO public.schema_migrations (version) VALUES ('20240101000001'), ('20240101000002');",
    );
}

#[test]
fn adopt_a_database_dbmate_migrated() {
    let (ws, db) = setup("adopt_dbmate");
    dbmate_files(&ws, false);
    dbmate_deploy(&ws, &db);
    assert_eq!(
        rows(&db, "SELECT version FROM schema_migrations ORDER BY 1"),
        ["20240101000001", "20240101000002"]
    );
    adopt_then_up_and_down(
        &ws,
        &db,
        [
            "20240101000001_users",
            "20240101000002_seed",
            "20240101000003_drop_email",
        ],
        |ws| dbmate_files(ws, true),
    );
}

fn liquibase_files(ws: &Workspace, third: bool) {
    let mut text = format!(
        "--liquibase formatted sql\n\n\
         --changeset ann:1\n--comment: users\n{USERS}--rollback DROP TABLE users;\n\n\
         --changeset ann:2\n{SEED}/* liquibase rollback\n{UNSEED}*/\n"
    );
    if third {
        text.push_str(&format!("\n--changeset ann:3\n{DROP_EMAIL}"));
    }
    write(ws, "migrations/changelog.sql", &text);
}

/// Runs the first two changesets with Liquibase itself when it is there;
/// otherwise runs their SQL and writes DATABASECHANGELOG as Liquibase 4.24+
/// creates and fills it on PostgreSQL, with MD5SUMs of checksum version 9
/// worked out independently of ripcord (the values Liquibase 4.28 records
/// for this changelog).
fn liquibase_deploy(ws: &Workspace, db: &str) {
    if let Some(bin) = tool("RIPCORD_LIQUIBASE", "liquibase") {
        let url = url::Url::parse(&cluster().url(db)).expect("a URL");
        let out = Command::new(bin)
            .arg("--changelog-file=changelog.sql")
            .arg(format!(
                "--url=jdbc:postgresql://{}:{}{}",
                url.host_str().unwrap(),
                url.port().unwrap(),
                url.path()
            ))
            .arg(format!("--username={}", url.username()))
            .arg(format!("--password={}", url.password().unwrap_or_default()))
            .arg("--show-banner=false")
            .arg("update")
            .current_dir(ws.path("migrations"))
            .output()
            .expect("run liquibase");
        assert!(
            out.status.success(),
            "liquibase update: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            rows(
                db,
                "SELECT md5sum FROM databasechangelog ORDER BY orderexecuted"
            ),
            [
                "9:3cbe2cccd15b524f3f6e2ab3bd07e172",
                "9:9e46137f465af61c02cf00b441cf149e"
            ],
            "Liquibase's own checksums"
        );
        return;
    }
    eprintln!("Liquibase is not installed: writing its history as it would");
    exec(db, &format!("{USERS}{SEED}"));
    exec(
        db,
        "CREATE TABLE public.databasechangelog (
             id VARCHAR(255) NOT NULL, author VARCHAR(255) NOT NULL,
             filename VARCHAR(255) NOT NULL, dateexecuted TIMESTAMP WITHOUT TIME ZONE NOT NULL,
             orderexecuted INTEGER NOT NULL, exectype VARCHAR(10) NOT NULL,
             md5sum VARCHAR(35), description VARCHAR(255), comments VARCHAR(255),
             tag VARCHAR(255), liquibase VARCHAR(20), contexts VARCHAR(255),
             labels VARCHAR(255), deployment_id VARCHAR(10));
         CREATE TABLE public.databasechangeloglock (id INTEGER NOT NULL, locked BOOLEAN NOT NULL,
             lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255),
             CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (id));
         INSERT INTO public.databasechangelog VALUES
             ('1', 'ann', 'changelog.sql', now(), 1, 'EXECUTED',
              '9:3cbe2cccd15b524f3f6e2ab3bd07e172', 'sql', 'users', NULL, '4.28.1', NULL, NULL,
              '1234567890'),
             ('2', 'ann', 'changelog.sql', now(), 2, 'EXECUTED',
              '9:9e46137f465af61c02cf00b441cf149e', 'sql', '', NULL, '4.28.1', NULL, NULL,
              '1234567890');",
    );
}

#[test]
fn adopt_a_database_liquibase_migrated() {
    let (ws, db) = setup("adopt_liquibase");
    liquibase_files(&ws, false);
    liquibase_deploy(&ws, &db);
    adopt_then_up_and_down(&ws, &db, ["ann:1", "ann:2", "ann:3"], |ws| {
        liquibase_files(ws, true)
    });
}

#[test]
fn adopt_refuses_a_liquibase_changeset_edited_since() {
    let (ws, db) = setup("adopt_liquibase_conflict");
    liquibase_files(&ws, false);
    liquibase_deploy(&ws, &db);
    let text = std::fs::read_to_string(ws.path("migrations/changelog.sql")).unwrap();
    write(
        &ws,
        "migrations/changelog.sql",
        &text.replace("'bob@example.com'", "'robert@example.com'"),
    );
    ws.run(&["migrate", "adopt"])
        .assert_code(3)
        .assert_stderr_has("ann:2");
    assert!(!has_ripcord_schema(&db));
    // Blanks alone are no change, for Liquibase as for ripcord.
    write(
        &ws,
        "migrations/changelog.sql",
        &text.replace("(2, 'bob'", "(2,\n   'bob'"),
    );
    ws.run(&["migrate", "adopt", "--dry-run"]).assert_code(0);
    assert!(!has_ripcord_schema(&db), "a dry run records nothing");
}

#[test]
fn liquibase_changelog_runs_and_rolls_back_on_postgres() {
    let (ws, db) = setup("liquibase_run");
    // A master changelog listing two formatted SQL files, in its order.
    write(
        &ws,
        "migrations/db.changelog-master.yaml",
        "databaseChangeLog:\n  - include:\n      file: changes/users.sql\n  - include:\n      file: changes/more.sql\n",
    );
    write(
        &ws,
        "migrations/changes/users.sql",
        &format!(
            "--liquibase formatted sql\n\n--changeset ann:users\n{USERS}--rollback DROP TABLE users;\n\n\
             --changeset ann:seed\n{SEED}/* liquibase rollback\n{UNSEED}*/\n"
        ),
    );
    write(
        &ws,
        "migrations/changes/more.sql",
        &format!(
            "--liquibase formatted sql\n\n\
             --changeset ann:index runInTransaction:false\n\
             CREATE INDEX CONCURRENTLY users_name ON users (name);\n\
             --rollback DROP INDEX CONCURRENTLY users_name;\n\n\
             --changeset ann:function endDelimiter:/\n\
             CREATE FUNCTION shout(t text) RETURNS text LANGUAGE plpgsql AS $$\n\
             BEGIN\n  RETURN upper(t);\nEND;\n$$\n/\n\
             --rollback DROP FUNCTION shout(text);\n\n\
             --changeset ann:drop_email\n{DROP_EMAIL}"
        ),
    );
    let v = ws.json(&["migrate", "plan"]);
    assert_eq!(v["format"], "liquibase");
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        states(&ws),
        [
            "ann:users=applied",
            "ann:seed=applied",
            "ann:index=applied",
            "ann:function=applied",
            "ann:drop_email=applied"
        ]
    );
    assert_eq!(
        rows(&db, "SELECT shout(name) FROM users ORDER BY id"),
        ["ANN", "BOB"]
    );
    let status = ws.json(&["migrate", "status"]);
    assert_eq!(status["changes"][2]["transactional"], false);
    ws.ok(&["migrate", "down", "--to", "ann:seed"]);
    assert_eq!(
        rows(&db, "SELECT id, name, email FROM users ORDER BY id"),
        ["1|ann|ann@example.com", "2|bob|bob@example.com"]
    );
    assert_eq!(rows(&db, "SELECT to_regclass('users_name') IS NULL"), ["t"]);
    assert_eq!(
        rows(&db, "SELECT count(*) FROM pg_proc WHERE proname = 'shout'"),
        ["0"]
    );
    // The rollback block, then the rollback line.
    ws.ok(&["migrate", "down", "--to", "ann:users"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM users"), ["0"]);
    ws.ok(&["migrate", "down", "--to", "@root"]);
    assert_eq!(rows(&db, "SELECT to_regclass('users') IS NULL"), ["t"]);
}
