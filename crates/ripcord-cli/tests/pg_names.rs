//! Table names resolved as the server resolves them, on a real PostgreSQL
//! cluster: the database's and the role's search_path, `SET search_path`
//! inside a change (which must not reach the next change), quoted
//! mixed-case names with dots and spaces, and rehearsals of a database
//! whose search_path is set with `ALTER DATABASE … SET`.

use ripcord_testing::app::{exec, one, pg_app, pg_workspace, rows, write};
use ripcord_testing::pg::{self, PgCluster};
use ripcord_testing::Workspace;
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

fn cluster() -> &'static PgCluster {
    pg::shared()
}

fn setup(name: &str) -> (Workspace, String) {
    pg_app(bin(), name, "")
}

/// Columns of a table, in order.
fn columns(db: &str, schema: &str, table: &str) -> Vec<String> {
    rows(
        db,
        &format!(
            "SELECT column_name FROM information_schema.columns
             WHERE table_schema = '{schema}' AND table_name = '{table}' ORDER BY ordinal_position"
        ),
    )
}

/// `schema.gadgets` with 1000 rows: color `c<id>` and note `n<id>` (with
/// `tag` in front, to tell two tables apart).
fn gadgets(db: &str, schema: &str, tag: &str) {
    exec(
        db,
        &format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE {schema}.gadgets (id int PRIMARY KEY, color text, note text);
             INSERT INTO {schema}.gadgets
             SELECT g, '{tag}c' || g, '{tag}n' || g FROM generate_series(1, 1000) g;"
        ),
    );
}

/// Rows of `schema.gadgets` whose `column` holds its original value.
fn intact(db: &str, schema: &str, column: &str, tag: &str) -> String {
    let letter = &column[..1];
    one(
        db,
        &format!("SELECT count(*) FROM {schema}.gadgets WHERE {column} = '{tag}{letter}' || id"),
    )
}

/// The tables the safety snapshot of each change covers, from `up --json`.
fn scopes(up: &Value) -> Vec<Vec<String>> {
    up["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            c["snapshot_scope"]["tables"]
                .as_array()
                .map(|t| t.iter().map(|n| n.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        })
        .collect()
}

/// The tables put back, from `down --json`.
fn reverted(down: &Value) -> Vec<String> {
    let mut out: Vec<String> = down["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .flat_map(|c| c["tables"].as_array().cloned().unwrap_or_default())
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// The bug as found: the database's search_path is `app, public` and a
/// change drops a column of the unqualified `gadgets`, which is
/// `app.gadgets`. Snapshot and revert must both mean that table: after
/// `down` all 1000 values are back, none NULL.
#[test]
fn database_search_path_resolves_unqualified_names_for_snapshot_and_revert() {
    let (ws, db) = setup("names_db_path");
    gadgets(&db, "app", "");
    exec(
        &db,
        &format!("ALTER DATABASE {db} SET search_path = app, public"),
    );
    write(
        &ws,
        "migrations/0001_drop_color/up.sql",
        "ALTER TABLE gadgets DROP COLUMN color;\n",
    );
    write(
        &ws,
        "migrations/0001_drop_color/down.sql",
        "ALTER TABLE gadgets ADD COLUMN color text;\n",
    );
    let up = ws.json(&["migrate", "up"]);
    assert_eq!(scopes(&up), [["app.gadgets"]], "{up}");
    assert_eq!(columns(&db, "app", "gadgets"), ["id", "note"]);

    let down = ws.json(&["migrate", "down", "--to", "@root"]);
    assert_eq!(reverted(&down), ["app.gadgets"], "{down}");
    assert_eq!(intact(&db, "app", "color", ""), "1000");
    assert_eq!(
        one(&db, "SELECT count(*) FROM app.gadgets WHERE color IS NULL"),
        "0"
    );
    // The events name the table with its schema.
    let events = rows(
        &db,
        "SELECT detail FROM ripcord.events WHERE kind = 'revert'",
    );
    assert!(events[0].contains("app.gadgets"), "{events:?}");
}

/// Change 1 sets the search_path to `app` and drops `gadgets.color` there;
/// change 2 drops `gadgets.note` of the session's own path, `public`. The
/// first change's SET must not carry over to the second, and each change's
/// snapshot and revert cover its own table.
#[test]
fn set_search_path_in_one_change_does_not_reach_the_next() {
    let (ws, db) = setup("names_set_leak");
    gadgets(&db, "app", "a");
    gadgets(&db, "public", "p");
    write(
        &ws,
        "migrations/0001_app/up.sql",
        "SET search_path TO app;\nALTER TABLE gadgets DROP COLUMN color;\n",
    );
    write(
        &ws,
        "migrations/0002_public/up.sql",
        "ALTER TABLE gadgets DROP COLUMN note;\n",
    );
    let up = ws.json(&["migrate", "up"]);
    assert_eq!(
        scopes(&up),
        [vec!["app.gadgets"], vec!["public.gadgets"]],
        "{up}"
    );
    assert_eq!(columns(&db, "app", "gadgets"), ["id", "note"]);
    assert_eq!(columns(&db, "public", "gadgets"), ["id", "color"]);

    let down = ws.json(&["migrate", "down", "--to", "@root"]);
    assert_eq!(reverted(&down), ["app.gadgets", "public.gadgets"], "{down}");
    assert_eq!(intact(&db, "app", "color", "a"), "1000");
    assert_eq!(intact(&db, "app", "note", "a"), "1000");
    assert_eq!(intact(&db, "public", "color", "p"), "1000");
    assert_eq!(intact(&db, "public", "note", "p"), "1000");

    // The same with SET LOCAL and set_config, and a change outside a
    // transaction, whose session-level SET would outlive it.
    write(
        &ws,
        "migrations/0001_app/up.sql",
        "SELECT set_config('search_path', 'app', false);\n\
         CREATE INDEX CONCURRENTLY gadgets_note ON gadgets (note);\n\
         ALTER TABLE gadgets DROP COLUMN color;\n",
    );
    write(
        &ws,
        "migrations/0002_public/up.sql",
        "SET LOCAL search_path TO pg_catalog;\nDELETE FROM public.gadgets WHERE id > 500;\n\
         RESET search_path;\nALTER TABLE gadgets DROP COLUMN note;\n",
    );
    let up = ws.json(&["migrate", "up"]);
    assert_eq!(
        scopes(&up),
        [vec!["app.gadgets"], vec!["public.gadgets"]],
        "{up}"
    );
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'gadgets_note'"
        ),
        "1"
    );
    assert_eq!(
        one(
            &db,
            "SELECT schemaname FROM pg_indexes WHERE indexname = 'gadgets_note'"
        ),
        "app"
    );
    assert_eq!(columns(&db, "app", "gadgets"), ["id", "note"]);
    assert_eq!(columns(&db, "public", "gadgets"), ["id", "color"]);
    ws.ok(&["migrate", "down", "--to", "@root"]);
    assert_eq!(intact(&db, "app", "color", "a"), "1000");
    assert_eq!(intact(&db, "public", "note", "p"), "1000");
    assert_eq!(one(&db, "SELECT count(*) FROM public.gadgets"), "1000");
}

/// The role that migrates has its own search_path (`ALTER ROLE … SET`):
/// `gadgets` is `app.gadgets` for it, although `public.gadgets` exists too.
#[test]
fn role_search_path_resolves_unqualified_names() {
    let db = cluster()
        .create_database("names_role_path")
        .expect("create database");
    let role = format!("{db}_owner");
    exec(
        "postgres",
        &format!(
            "CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 'names';
             ALTER ROLE {role} SET search_path = app, public;"
        ),
    );
    gadgets(&db, "app", "a");
    gadgets(&db, "public", "p");
    let url = format!(
        "postgres://{role}:names@127.0.0.1:{}/{db}",
        cluster().port()
    );
    let ws = pg_workspace(bin(), &url, "");
    write(
        &ws,
        "migrations/0001_drop_color/up.sql",
        "ALTER TABLE gadgets DROP COLUMN color;\n",
    );
    let up = ws.json(&["migrate", "up"]);
    assert_eq!(scopes(&up), [["app.gadgets"]], "{up}");
    assert_eq!(columns(&db, "app", "gadgets"), ["id", "note"]);
    assert_eq!(columns(&db, "public", "gadgets"), ["id", "color", "note"]);
    let down = ws.json(&["migrate", "down", "--to", "@root"]);
    assert_eq!(reverted(&down), ["app.gadgets"], "{down}");
    assert_eq!(intact(&db, "app", "color", "a"), "1000");
    assert_eq!(intact(&db, "public", "color", "p"), "1000");
}

/// Quoted names with capitals, dots and spaces: in the SQL of a change, in
/// the search_path a change sets, in `snapshot --tables` and in the reports.
#[test]
fn quoted_mixed_case_schema_and_table_names_work_everywhere() {
    let (ws, db) = setup("names_quoted");
    exec(
        &db,
        r#"CREATE SCHEMA "My App";
           CREATE TABLE "My App"."Odd.Gadgets" (id int PRIMARY KEY, "Color" text);
           INSERT INTO "My App"."Odd.Gadgets" SELECT g, 'c' || g FROM generate_series(1, 1000) g;
           CREATE TABLE "My App"."Gizmo Box" (id int PRIMARY KEY, label text);
           INSERT INTO "My App"."Gizmo Box" SELECT g, 'l' || g FROM generate_series(1, 1000) g;
           CREATE TABLE public."Gizmo Box" (id int PRIMARY KEY, label text);
           INSERT INTO public."Gizmo Box" VALUES (1, 'decoy');"#,
    );
    write(
        &ws,
        "migrations/0001_odd/up.sql",
        "ALTER TABLE \"My App\".\"Odd.Gadgets\" DROP COLUMN \"Color\";\n\
         SET search_path TO \"My App\";\n\
         DELETE FROM \"Gizmo Box\" WHERE id > 500;\n",
    );
    let up = ws.json(&["migrate", "up"]);
    assert_eq!(
        scopes(&up),
        [[r#""My App"."Gizmo Box""#, r#""My App"."Odd.Gadgets""#]],
        "{up}"
    );
    assert_eq!(
        one(&db, r#"SELECT count(*) FROM "My App"."Gizmo Box""#),
        "500"
    );
    assert_eq!(one(&db, r#"SELECT count(*) FROM public."Gizmo Box""#), "1");
    let down = ws.json(&["migrate", "down", "--to", "@root"]);
    assert_eq!(
        reverted(&down),
        [r#""My App"."Gizmo Box""#, r#""My App"."Odd.Gadgets""#],
        "{down}"
    );
    assert_eq!(
        one(
            &db,
            r#"SELECT count(*) FROM "My App"."Odd.Gadgets" WHERE "Color" = 'c' || id"#
        ),
        "1000"
    );
    assert_eq!(
        one(&db, r#"SELECT count(*) FROM "My App"."Gizmo Box""#),
        "1000"
    );

    // snapshot --tables takes the same quoted names.
    let snap = ws.snapshot_id(&["app", "--tables", r#""My App"."Odd.Gadgets""#]);
    let show = ws.json(&["show", &snap]);
    let taken: Vec<String> = show["manifest"]["targets"][0]["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables in {show}"))
        .iter()
        .map(|t| format!("{}|{}|{}", t["schema"], t["name"], t["rows"]))
        .collect();
    assert_eq!(taken, [r#""My App"|"Odd.Gadgets"|1000"#], "{show}");
    let bad = ws.run(&["snapshot", "app", "--tables", r#""My App"."odd.gadgets""#]);
    bad.assert_code(2).assert_stderr_has("odd.gadgets");
}

/// The bug: `--tables` split its value on every comma, so a quoted name
/// holding one (`"a,b"`) became two names that do not exist. A comma
/// inside double quotes belongs to the name, for `snapshot` and `restore`.
#[test]
fn comma_in_a_quoted_table_name_is_not_split() {
    let (ws, db) = setup("names_comma");
    exec(
        &db,
        r#"CREATE TABLE "In, Out" (id int PRIMARY KEY, v text);
           INSERT INTO "In, Out" SELECT g, 'v' || g FROM generate_series(1, 30) g;
           CREATE TABLE plain (id int);
           INSERT INTO plain VALUES (1), (2);
           CREATE TABLE other (id int);"#,
    );
    let snap = ws.snapshot_id(&["app", "--tables", r#""In, Out",plain"#]);
    let show = ws.json(&["show", &snap]);
    let taken: Vec<String> = show["manifest"]["targets"][0]["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables in {show}"))
        .iter()
        .map(|t| format!("{}|{}", t["name"], t["rows"]))
        .collect();
    assert_eq!(taken, [r#""In, Out"|30"#, r#""plain"|2"#], "{show}");
    exec(&db, r#"DELETE FROM "In, Out"; DELETE FROM plain"#);
    ws.ok(&["restore", &snap, "--tables", r#""In, Out""#]);
    assert_eq!(one(&db, r#"SELECT count(*) FROM "In, Out""#), "30");
    assert_eq!(one(&db, "SELECT count(*) FROM plain"), "0");
}

/// `ALTER DATABASE … SET search_path` is not copied by `CREATE DATABASE …
/// TEMPLATE`: the rehearsal carries it over, so the change that works on
/// the live database works on its scratch copy, and its revert is checked.
#[test]
fn rehearse_carries_database_settings_into_the_scratch_copy() {
    let (ws, db) = setup("names_rehearse");
    gadgets(&db, "app", "");
    exec(
        &db,
        &format!("ALTER DATABASE {db} SET search_path = app, public"),
    );
    write(
        &ws,
        "migrations/0001_drop_note/up.sql",
        "ALTER TABLE gadgets DROP COLUMN note;\n",
    );
    write(
        &ws,
        "migrations/0001_drop_note/down.sql",
        "ALTER TABLE gadgets ADD COLUMN note text;\n",
    );
    let out = ws.ok(&["migrate", "rehearse", "--keep"]);
    out.assert_stdout_has("rehearsal passed");
    let kept = rows(
        "postgres",
        &format!("SELECT datname FROM pg_database WHERE datname LIKE '{db}_rehearse_%'"),
    );
    assert_eq!(kept.len(), 1, "{out}");
    assert_eq!(
        one(&kept[0], "SELECT current_setting('search_path')"),
        "app, public"
    );
    cluster()
        .drop_database(&kept[0])
        .expect("drop the kept copy");
    // The live database is untouched.
    assert_eq!(columns(&db, "app", "gadgets"), ["id", "color", "note"]);
}
