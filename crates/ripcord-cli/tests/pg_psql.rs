//! psql scripts against a real PostgreSQL cluster: the same sqitch project
//! deployed by the real psql and by ripcord gives the same catalog; bad
//! psql input stops before anything runs; transaction blocks inside
//! scripts; `migrate verify`.

use std::process::Command;

use ripcord_testing::app::{pg_app, rows, write};
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

/// Tables outside the system schemas and ripcord's.
fn tables(db: &str) -> Vec<String> {
    rows(
        db,
        "SELECT schemaname || '.' || tablename FROM pg_tables
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'ripcord') ORDER BY 1",
    )
}

fn has_tracking(db: &str) -> bool {
    rows(db, "SELECT to_regclass('ripcord.changes') IS NOT NULL") == ["t"]
}

/// A sqitch project in psql's style: variables from sqitch.conf and the
/// command line, a secret read by a backtick command from the script's
/// folder, `\if`, `\ir`, `\gexec` (a role and a database created once),
/// `\echo`, and verify scripts in sqitch's own style.
fn psql_project(ws: &Workspace) {
    write(
        ws,
        "migrations/sqitch.conf",
        "[core]\n\tengine = pg\n[core.variables]\n\tapp_schema = app\n\titem = gadget\n\
         [deploy.variables]\n\titem = widget\n[verify.variables]\n\titem = widget\n",
    );
    write(
        ws,
        "migrations/sqitch.plan",
        "%syntax-version=1.0.0\n%project=psqlcompat\n\n\
         roles 2024-01-01T00:00:00Z Ann <ann@example.com> # roles\n\
         schema [roles] 2024-01-01T00:00:01Z Ann <ann@example.com> # schema\n\
         items [schema] 2024-01-01T00:00:02Z Ann <ann@example.com> # items\n\
         extra_db 2024-01-01T00:00:03Z Ann <ann@example.com> # a database\n",
    );
    write(ws, "migrations/secrets/owner", "team o'brien\n");
    write(
        ws,
        "migrations/deploy/roles.sql",
        "-- Roles are cluster-wide: created once.\n\
         SELECT 'CREATE ROLE psql_compat_reader NOLOGIN'\n\
         WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'psql_compat_reader')\\gexec\n",
    );
    write(
        ws,
        "migrations/deploy/schema.sql",
        "\\set ON_ERROR_STOP on\n\
         \\set owner `cat ../secrets/owner`\n\
         \\echo deploying schema :app_schema\n\
         BEGIN;\n\
         CREATE SCHEMA :\"app_schema\";\n\
         COMMENT ON SCHEMA :\"app_schema\" IS :'owner';\n\
         \\if :with_extras\n\
         CREATE TABLE :\"app_schema\".extras (id int, note text DEFAULT ':not_a_var');\n\
         \\elif :never\n\
         CREATE TABLE :\"app_schema\".never (id int);\n\
         \\else\n\
         CREATE TABLE :\"app_schema\".plain (id int);\n\
         \\endif\n\
         CREATE FUNCTION :\"app_schema\".hello(who text) RETURNS text LANGUAGE sql\n\
         AS $$ SELECT 'hello :' || who $$;\n\
         COMMIT;\n",
    );
    write(
        ws,
        "migrations/deploy/items.sql",
        "BEGIN;\n\
         SET LOCAL search_path = :\"app_schema\";\n\
         CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, note text DEFAULT :'item');\n\
         \\ir lib/grants.sql\n\
         INSERT INTO items (name) VALUES ('a'), (:'item'), ($q$it's :item$q$);\n\
         -- a comment with :item and \\set inside\n\
         COMMIT;\n",
    );
    write(
        ws,
        "migrations/deploy/lib/grants.sql",
        "GRANT USAGE ON SCHEMA :\"app_schema\" TO psql_compat_reader;\n\
         GRANT SELECT ON items TO psql_compat_reader;\n",
    );
    write(
        ws,
        "migrations/deploy/extra_db.sql",
        "SELECT 'CREATE DATABASE ' || quote_ident(:'extra_db')\n\
         WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'extra_db')\n\
         \\gexec\n\
         BEGIN;\nCREATE TABLE app.after_db (id int);\nCOMMIT;\n",
    );
    write(
        ws,
        "migrations/revert/items.sql",
        "BEGIN;\nDROP TABLE :\"app_schema\".items;\nCOMMIT;\n",
    );
    write(
        ws,
        "migrations/verify/items.sql",
        "BEGIN;\n\
         SELECT id, name, note FROM :\"app_schema\".items WHERE false;\n\
         ROLLBACK;\n\
         BEGIN;\n\
         SET LOCAL search_path = :\"app_schema\";\n\
         SELECT 1/count(*) FROM items WHERE name = :'item';\n\
         ROLLBACK;\n",
    );
    write(
        ws,
        "migrations/verify/schema.sql",
        "SELECT 1/count(*) FROM pg_namespace WHERE nspname = :'app_schema';\n",
    );
}

/// Runs each deploy script of the plan with the real psql, as sqitch does
/// (`psql -X -v ON_ERROR_STOP=1 -f`), from the script's folder.
fn deploy_with_psql(ws: &Workspace, db: &str, vars: &[(&str, &str)]) {
    let psql = cluster().bin_dir().join("psql");
    let conf_vars = [("app_schema", "app"), ("item", "widget")];
    for change in ["roles", "schema", "items", "extra_db"] {
        let script = ws.path(format!("migrations/deploy/{change}.sql"));
        let mut cmd = Command::new(&psql);
        cmd.current_dir(script.parent().unwrap())
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
        for (k, v) in conf_vars.iter().chain(vars) {
            cmd.args(["-v", &format!("{k}={v}")]);
        }
        let out = cmd
            .args(["-f", &script.to_string_lossy(), &cluster().url(db)])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {change}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The schema as pg_dump sees it, ripcord's own schema left out.
fn catalog(db: &str) -> String {
    let out = Command::new(cluster().bin_dir().join("pg_dump"))
        .args([
            "--schema-only",
            "--no-comments",
            "--exclude-schema=ripcord",
            "-d",
            &cluster().url(db),
        ])
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn state(db: &str) -> Vec<String> {
    let mut out = tables(db);
    out.extend(rows(db, "SELECT name, note FROM app.items ORDER BY id"));
    out.extend(rows(
        db,
        "SELECT obj_description('app'::regnamespace, 'pg_namespace')",
    ));
    out.extend(rows(
        db,
        "SELECT grantee || ' ' || privilege_type FROM information_schema.role_table_grants
         WHERE table_schema = 'app' AND grantee = 'psql_compat_reader'",
    ));
    out.push(catalog(db));
    out
}

#[test]
fn psql_scripts_give_the_same_catalog_through_psql_and_ripcord() {
    let (ws, db) = setup("psql_same_catalog");
    psql_project(&ws);
    let by_psql = cluster().create_database("psql_same_catalog_psql").unwrap();
    let vars = [("with_extras", "yes"), ("never", "off")];
    deploy_with_psql(
        &ws,
        &by_psql,
        &[("extra_db", "psql_compat_by_psql")]
            .iter()
            .chain(&vars)
            .copied()
            .collect::<Vec<_>>(),
    );

    let out = ws.run(&[
        "migrate",
        "up",
        "--set",
        "with_extras=yes",
        "--set",
        "never=off",
        "--set",
        "extra_db=psql_compat_by_ripcord",
    ]);
    out.assert_ok();
    // \echo prints what psql would.
    out.assert_stderr_has("deploying schema app");

    let expected = state(&by_psql);
    assert_eq!(state(&db), expected);
    assert!(expected.iter().any(|l| l == "app.extras"), "{expected:?}");
    assert!(expected.iter().any(|l| l == "app.after_db"), "{expected:?}");
    assert!(
        expected.iter().any(|l| l == "widget|widget"),
        "{expected:?}"
    );
    assert!(
        expected.iter().any(|l| l == "it's :item|widget"),
        "{expected:?}"
    );
    assert!(expected.iter().any(|l| l == "team o'brien"), "{expected:?}");
    // \gexec ran CREATE DATABASE, outside a transaction, like psql.
    for name in ["psql_compat_by_psql", "psql_compat_by_ripcord"] {
        assert_eq!(
            rows(
                "postgres",
                &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'")
            ),
            ["1"]
        );
    }
    // The sqitch-style verify blocks did not roll the change back.
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord.changes"), ["4"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM app.items"), ["3"]);
    // Every script is read, so every variable must be given again.
    ws.run(&["migrate", "verify", "--set", "extra_db=x"])
        .assert_code(2)
        .assert_stderr_has("schema.sql:7: unrecognized value \":with_extras\"");
    ws.ok(&[
        "migrate",
        "verify",
        "--set",
        "extra_db=x",
        "--set",
        "with_extras=1",
        "--set",
        "never=0",
    ])
    .assert_stdout_has("items: verified");
}

/// A plan whose second change is bad psql: nothing of the first runs either.
fn refused_before_anything_runs(name: &str, bad: &str, line: usize, phrase: &str) {
    let (ws, db) = setup(name);
    write(
        &ws,
        "migrations/0001_ok/up.sql",
        "CREATE TABLE ok (id int);\n",
    );
    write(&ws, "migrations/0002_bad/up.sql", bad);
    write(&ws, "migrations/0002_bad/token", "x\n");
    // plan and status read no script's psql part and run no command.
    ws.ok(&["migrate", "status"]);
    ws.ok(&["migrate", "plan"]);
    assert!(!ws.path("migrations/0002_bad/ran").exists());
    let out = ws.run(&["migrate", "up"]);
    out.assert_code(2);
    out.assert_stderr_has(&format!("0002_bad/up.sql:{line}"));
    out.assert_stderr_has(phrase);
    assert!(tables(&db).is_empty(), "{:?}", tables(&db));
    assert!(!has_tracking(&db));
}

#[test]
fn psql_unknown_meta_command_is_refused_with_file_and_line() {
    refused_before_anything_runs(
        "psql_bad_meta",
        "CREATE TABLE a (id int);\n\\connect other\nCREATE TABLE b (id int);\n",
        2,
        "\\connect is not supported",
    );
}

#[test]
fn psql_undefined_variable_is_refused_with_file_and_line() {
    refused_before_anything_runs(
        "psql_bad_var",
        "CREATE TABLE a (id int);\n\nCREATE ROLE :\"who\";\n",
        3,
        "variable who is not set",
    );
}

#[test]
fn psql_unterminated_if_is_refused_with_file_and_line() {
    refused_before_anything_runs(
        "psql_bad_if",
        "\\set go true\nCREATE TABLE a (id int);\n\\if :go\nCREATE TABLE b (id int);\n",
        3,
        "\\if has no matching \\endif",
    );
}

#[test]
fn psql_failing_backtick_command_is_refused_with_file_and_line() {
    refused_before_anything_runs(
        "psql_bad_backtick",
        "\\set t `touch ran && cat token`\nCREATE TABLE a (id int);\n\\set s `cat /run/secrets/missing-ripcord-test`\n",
        3,
        "backtick command `cat /run/secrets/missing-ripcord-test` failed",
    );
}

#[test]
fn psql_backtick_runs_in_the_scripts_folder_and_set_overrides() {
    let (ws, db) = setup("psql_backtick_folder");
    write(
        &ws,
        "migrations/0001_t/up.sql",
        "\\set name `cat token`\nCREATE TABLE :\"name\" (id int, v text DEFAULT :'suffix');\n",
    );
    write(&ws, "migrations/0001_t/token", "from_file\n");
    ws.ok(&["migrate", "up", "--set", "suffix=given"]);
    assert_eq!(tables(&db), ["public.from_file"]);
    assert_eq!(
        rows(
            &db,
            "SELECT column_default FROM information_schema.columns WHERE column_name = 'v'"
        ),
        ["'given'::text"]
    );
}

#[test]
fn verify_with_several_transaction_blocks_does_not_undo_the_change() {
    let (ws, db) = setup("psql_verify_blocks");
    write(
        &ws,
        "migrations/0001_t/up.sql",
        "CREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t VALUES (1), (2);\n",
    );
    // sqitch's style, and worse: a block that commits a DROP.
    write(
        &ws,
        "migrations/0001_t/verify.sql",
        "BEGIN;\nSELECT id FROM t WHERE false;\nROLLBACK;\n\
         BEGIN;\nSET LOCAL lock_timeout = '1s';\nSELECT 1/count(*) FROM t WHERE id = 2;\nROLLBACK;\n\
         BEGIN;\nDELETE FROM t;\nDROP TABLE t;\nCOMMIT;\n\
         COMMIT;\nROLLBACK;\n",
    );
    ws.ok(&["migrate", "up"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM t"), ["2"]);
    assert_eq!(rows(&db, "SELECT name FROM ripcord.changes"), ["0001_t"]);
    // The setting stayed inside the verify.
    ws.ok(&["migrate", "down", "--to", "@root"]);
    assert!(tables(&db).is_empty());
}

#[test]
fn deploy_with_transaction_blocks_in_the_middle_stays_one_transaction() {
    let (ws, db) = setup("psql_deploy_blocks");
    write(
        &ws,
        "migrations/0001_blocks/up.sql",
        "CREATE TABLE a (id int);\n\
         BEGIN;\nCREATE TABLE b (id int);\nCOMMIT;\n\
         BEGIN;\nINSERT INTO b VALUES (1);\nROLLBACK;\n\
         CREATE TABLE c (id int);\n",
    );
    let out = ws.json(&["migrate", "up"]);
    assert_eq!(out["changes"][0]["transactional"], true, "{out}");
    assert_eq!(tables(&db), ["public.a", "public.b", "public.c"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM b"), ["0"]);

    // A failure after a committed block undoes the whole change.
    write(
        &ws,
        "migrations/0002_fails/up.sql",
        "BEGIN;\nCREATE TABLE d (id int);\nCOMMIT;\nSELECT 1/0;\n",
    );
    ws.run(&["migrate", "up"]).assert_code(1);
    assert_eq!(tables(&db), ["public.a", "public.b", "public.c"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord.changes"), ["1"]);
}

#[test]
fn deploy_with_a_begin_never_committed_is_refused() {
    let (ws, db) = setup("psql_open_begin");
    write(
        &ws,
        "migrations/0001_open/up.sql",
        "CREATE TABLE a (id int);\n\nBEGIN;\nCREATE TABLE b (id int);\n",
    );
    let out = ws.run(&["migrate", "up"]);
    out.assert_code(2);
    out.assert_stderr_has("0001_open/up.sql:3");
    out.assert_stderr_has("never committed");
    assert!(tables(&db).is_empty());
    write(
        &ws,
        "migrations/0001_open/up.sql",
        "BEGIN;\nCREATE TABLE a (id int);\nPREPARE TRANSACTION 'x';\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(2)
        .assert_stderr_has("0001_open/up.sql:3");
    assert!(!has_tracking(&db));
}

#[test]
fn migrate_verify_reruns_verify_scripts_read_only_and_reports_each_failure() {
    let (ws, db) = setup("psql_migrate_verify");
    for (name, up, verify) in [
        (
            "0001_users",
            "CREATE TABLE users (id int, email text);",
            "SELECT id, email FROM users WHERE false;",
        ),
        (
            "0002_orders",
            "CREATE TABLE orders (id int, item text);",
            "BEGIN;\nSELECT id, item FROM orders WHERE false;\nROLLBACK;",
        ),
        (
            "0003_tags",
            "CREATE TABLE tags (id int);",
            "SELECT 1/count(*) FROM tags;",
        ),
        ("0004_none", "CREATE TABLE plain (id int);", ""),
        (
            "0005_writes",
            "CREATE TABLE w (id int);",
            "BEGIN;\nINSERT INTO w VALUES (1);\nCOMMIT;",
        ),
    ] {
        write(&ws, &format!("migrations/{name}/up.sql"), up);
        if !verify.is_empty() {
            write(&ws, &format!("migrations/{name}/verify.sql"), verify);
        }
    }
    // 0003 verifies only once it has a row; 0005 writes, which up allows.
    write(
        &ws,
        "migrations/0003_tags/up.sql",
        "CREATE TABLE tags (id int);\nINSERT INTO tags VALUES (1);",
    );
    ws.ok(&["migrate", "up"]);

    // Break two changes behind ripcord's back.
    cluster().psql(
        &db,
        "ALTER TABLE users DROP COLUMN email; DELETE FROM tags;",
    );
    let before = state_of(&db);
    let out = ws.run(&["migrate", "verify"]);
    out.assert_code(1);
    out.assert_stdout_has("0001_users: FAILED");
    out.assert_stdout_has("0003_tags: FAILED");
    out.assert_stdout_has("0002_orders: verified");
    out.assert_stdout_has("0004_none: no verify script");
    // Read-only: a verify that writes fails, and writes nothing.
    out.assert_stdout_has("0005_writes: FAILED");
    out.assert_stdout_has("read-only");
    out.assert_stderr_has("3 of 4 verified changes");
    assert_eq!(state_of(&db), before);

    let v = ws.run(&["--json", "migrate", "verify"]);
    v.assert_code(1);
    let json = v.json();
    let verdicts: Vec<String> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["change"].as_str().unwrap(),
                c["verdict"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            "0001_users=failed",
            "0002_orders=passed",
            "0003_tags=failed",
            "0004_none=no-script",
            "0005_writes=failed"
        ]
    );

    cluster().psql(
        &db,
        "ALTER TABLE users ADD COLUMN email text; INSERT INTO tags VALUES (2);",
    );
    std::fs::write(
        ws.path("migrations/0005_writes/verify.sql"),
        "SELECT id FROM w WHERE false;",
    )
    .unwrap();
    ws.ok(&["migrate", "verify"])
        .assert_stdout_has("4 applied changes");
}

fn state_of(db: &str) -> Vec<String> {
    let mut out = tables(db);
    out.extend(rows(db, "SELECT count(*) FROM w"));
    out.extend(rows(db, "SELECT count(*) FROM tags"));
    out.extend(rows(db, "SELECT count(*) FROM ripcord.events"));
    out
}

#[test]
fn psql_connection_variables_name_the_database_the_change_runs_on() {
    let (ws, db) = setup("psql_dbname");
    write(
        &ws,
        "migrations/0001_db/up.sql",
        "ALTER DATABASE :\"DBNAME\" SET statement_timeout = '123s';\n\
         CREATE TABLE t (id int, who text DEFAULT :'USER', port int DEFAULT :PORT);\n",
    );
    write(
        &ws,
        "migrations/0001_db/down.sql",
        "ALTER DATABASE :\"DBNAME\" RESET statement_timeout;\nDROP TABLE t;\n",
    );
    let settings = |db: &str| {
        rows(
            "postgres",
            &format!(
                "SELECT coalesce(string_agg(s, ','), '') FROM pg_db_role_setting r \
                 JOIN pg_database d ON d.oid = r.setdatabase, unnest(r.setconfig) s \
                 WHERE d.datname = '{db}'"
            ),
        )
    };
    // A rehearsal alters its copy, never the real database.
    ws.ok(&["migrate", "rehearse"]);
    assert_eq!(settings(&db), [""]);
    ws.ok(&["migrate", "up"]);
    assert_eq!(settings(&db), ["statement_timeout=123s"]);
    let url = cluster().url(&db);
    let config: postgres::Config = url.parse().unwrap();
    assert_eq!(
        rows(&db, "SELECT column_default FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position"),
        [
            String::new(),
            format!("'{}'::text", config.get_user().unwrap()),
            config.get_ports()[0].to_string(),
        ]
    );
}

/// A deploy script whose only block ends in ROLLBACK was taken for a
/// BEGIN/COMMIT wrapper: its work was committed, where psql undoes it.
#[test]
fn a_deploy_script_ending_in_rollback_keeps_nothing_of_its_block() {
    let (ws, db) = setup("psql_rollback_wrapper");
    write(
        &ws,
        "migrations/0001_tried/up.sql",
        "BEGIN;\nCREATE TABLE tried (id int);\nROLLBACK;\n",
    );
    write(
        &ws,
        "migrations/0002_kept/up.sql",
        "CREATE TABLE kept (id int);\n",
    );
    ws.ok(&["migrate", "up"]);
    assert_eq!(tables(&db), ["public.kept"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord.changes"), ["2"]);
}

/// A script run outside ripcord's transaction (it needs to: CREATE INDEX
/// CONCURRENTLY) that fails inside its own BEGIN block left the session in
/// an aborted transaction, so the automatic revert could not run.
#[test]
fn a_failing_block_in_a_non_transactional_script_is_reverted_cleanly() {
    let (ws, db) = setup("psql_failing_block");
    write(
        &ws,
        "migrations/0001_t/up.sql",
        "CREATE TABLE t (id int);\n\
         BEGIN;\nINSERT INTO t VALUES (1);\nSELECT 1/0;\nCOMMIT;\n\
         CREATE INDEX CONCURRENTLY t_id ON t (id);\n",
    );
    let out = ws.run(&["migrate", "up"]);
    out.assert_code(1).assert_stderr_has("division by zero");
    assert!(tables(&db).is_empty(), "{:?}", tables(&db));
    assert_eq!(rows(&db, "SELECT count(*) FROM ripcord.changes"), ["0"]);
    ws.ok(&["migrate", "status"]);
}
