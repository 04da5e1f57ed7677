//! Schema-only snapshots: a change without a down script whose statements
//! change no rows (grants, functions, policies, row-level security,
//! comments, indexes, a replaced view) is put back by the definitions read
//! from the catalog before and after it, never by a data snapshot.

use std::process::Command;

use ripcord_testing::app::{exec, pg_app, rows, sqlite_app, sqlite_exec, sqlite_rows, write};
use ripcord_testing::pg;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

/// The schema as pg_dump prints it, ripcord's own schema left out.
fn dump(db: &str) -> String {
    let cluster = pg::shared();
    let out = Command::new(cluster.bin_dir().join("pg_dump"))
        .args(["--schema-only", "--exclude-schema=ripcord", "-d"])
        .arg(cluster.url(db))
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `\restrict` lines carry a random key of each run.
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Data-free statements with no down script were not undone at all by
/// `down` (it only dropped created tables), or got a data snapshot of the
/// table an index or RLS named.
#[test]
fn data_free_changes_without_a_down_script_are_put_back_by_a_schema_only_snapshot() {
    let (ws, db) = pg_app(bin(), "mig_schema_only", "");
    let role = format!("{db}_reader");
    exec(
        &db,
        &format!(
            "CREATE ROLE {role} NOLOGIN;
             CREATE TABLE items (id int PRIMARY KEY, owner name NOT NULL, price int NOT NULL);
             INSERT INTO items SELECT g, 'u' || g, g * 10 FROM generate_series(1, 100) g;
             CREATE VIEW cheap AS SELECT id, price FROM items WHERE price < 100;
             GRANT SELECT ON cheap TO {role};
             COMMENT ON VIEW cheap IS 'the cheap ones';
             CREATE FUNCTION price_of(i int) RETURNS int LANGUAGE sql AS 'SELECT price FROM items WHERE id = i';"
        ),
    );
    write(
        &ws,
        "migrations/plan.toml",
        "[[phase]]\nname = \"all\"\nchanges = [\"0001_access\"]\n",
    );
    write(
        &ws,
        "migrations/0001_access/up.sql",
        &format!(
            "GRANT SELECT ON items TO {role};
             CREATE FUNCTION visible(o name) RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT o = current_user $$;
             CREATE OR REPLACE FUNCTION price_of(i int) RETURNS int LANGUAGE sql AS 'SELECT price * 2 FROM items WHERE id = i';
             CREATE POLICY own ON items FOR SELECT TO {role} USING (visible(owner));
             ALTER TABLE items ENABLE ROW LEVEL SECURITY;
             COMMENT ON TABLE items IS 'what we sell';
             COMMENT ON VIEW cheap IS 'under 100';
             CREATE INDEX items_owner ON items (owner);
             CREATE OR REPLACE VIEW cheap AS SELECT id, price, owner FROM items WHERE price < 50;
             ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO {role};
             REVOKE SELECT ON cheap FROM {role};
             CREATE TYPE mood AS ENUM ('ok', 'meh');
             CREATE SCHEMA extra;
             CREATE TABLE extra.notes (id int);
             GRANT USAGE ON SCHEMA extra TO {role};\n"
        ),
    );
    let before = dump(&db);

    let explain = ws.json(&["migrate", "plan", "--explain"]);
    let e = &explain["changes"][0]["snapshot"];
    assert_eq!(e["scope"], "schema", "{explain}");
    let why = e["why"].as_str().unwrap();
    assert!(why.starts_with("schema-only snapshot of "), "{why}");
    assert!(
        why.contains("a row-level security policy (line 4)"),
        "{why}"
    );

    let up = ws.json(&["migrate", "up"]);
    let c = &up["changes"][0];
    assert_eq!(c["snapshot_scope"]["scope"], "schema", "{up}");
    assert!(c["snapshot"].is_null(), "no data snapshot: {up}");
    let recorded: Vec<&str> = c["schema_snapshot"]
        .as_array()
        .expect("schema_snapshot")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for key in [
        "function public.visible(o name)",
        "function public.price_of(i integer)",
        "view public.cheap",
        "index public.items_owner",
        "rls table public.items",
        "comment TABLE public.items",
    ] {
        assert!(recorded.contains(&key), "{key} not in {recorded:?}");
    }
    assert_ne!(dump(&db), before);
    assert_eq!(rows(&db, "SELECT count(*) FROM items"), ["100"]);
    // No repository snapshot at all.
    let snaps = ws.json(&["snapshots"]);
    assert_eq!(snaps.as_array().map_or(0, Vec::len), 0, "{snaps}");

    let down = ws.json(&["migrate", "down", "--to", "@root"]);
    let d = &down["changes"][0];
    assert_eq!(d["how"], "schema-snapshot", "{down}");
    assert!(d["snapshot"].is_null(), "{down}");
    let after = dump(&db);
    if after != before {
        std::fs::write("/tmp/schema_before.sql", &before).unwrap();
        std::fs::write("/tmp/schema_after.sql", &after).unwrap();
    }
    assert!(after == before, "the schema differs after down");
    assert_eq!(
        rows(&db, "SELECT count(*), sum(price) FROM items"),
        ["100|50500"]
    );
    assert_eq!(rows(&db, "SELECT price_of(3)"), ["30"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM pg_default_acl"), ["0"]);
}

/// What a schema-only snapshot cannot record is refused before anything
/// runs, with a hint to write a down script, instead of a whole-database
/// data snapshot.
#[test]
fn a_data_free_change_a_schema_only_snapshot_cannot_record_is_refused() {
    let (ws, db) = pg_app(bin(), "mig_schema_refused", "");
    exec(&db, "CREATE TABLE t (id int)");
    write(
        &ws,
        "migrations/plan.toml",
        "[[phase]]\nname = \"all\"\nchanges = [\"0001_a\", \"0002_b\"]\n",
    );
    write(
        &ws,
        "migrations/0001_a/up.sql",
        "COMMENT ON TABLE t IS 'x';\n",
    );
    write(
        &ws,
        "migrations/0002_b/up.sql",
        "GRANT SELECT ON t TO PUBLIC;\nCREATE COLLATION german (provider = icu, locale = 'de');\n",
    );
    let out = ws.run(&["migrate", "up"]);
    assert_eq!(out.code(), 3, "{out}");
    assert!(out.stderr.contains("line 2"), "{out}");
    assert!(out.stderr.contains("down script"), "{out}");
    // Nothing ran, not even the first change.
    assert_eq!(rows(&db, "SELECT obj_description('t'::regclass)"), [""]);
    let lint = ws.json(&["migrate", "lint"]);
    assert!(lint.to_string().contains("refused by up"), "{lint}");
}

#[test]
fn sqlite_indexes_views_and_triggers_come_back_from_a_schema_only_snapshot() {
    let (ws, path) = sqlite_app(bin(), "");
    ws.init();
    write(
        &ws,
        "migrations/plan.toml",
        "[[phase]]\nname = \"all\"\nchanges = [\"0001_t\", \"0002_defs\"]\n",
    );
    write(
        &ws,
        "migrations/0001_t/up.sql",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO t (v) VALUES ('a'), ('b');\n\
         CREATE VIEW tv AS SELECT id FROM t;\nCREATE INDEX t_v ON t (v);\n",
    );
    write(&ws, "migrations/0001_t/down.sql", "DROP TABLE t;\n");
    write(
        &ws,
        "migrations/0002_defs/up.sql",
        "DROP VIEW tv;\nCREATE VIEW tv AS SELECT id, v FROM t;\nDROP INDEX t_v;\n\
         CREATE INDEX t_v2 ON t (v, id);\n\
         CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN SELECT 1; END;\n",
    );
    ws.ok(&["migrate", "up", "--to", "0001_t"]);
    let schema =
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'ripcord%' ORDER BY 1, 2";
    let before = sqlite_rows(&path, schema);
    let up = ws.json(&["migrate", "up"]);
    let c = &up["changes"][0];
    assert_eq!(c["snapshot_scope"]["scope"], "schema", "{up}");
    assert!(c["snapshot"].is_null(), "{up}");
    assert_ne!(sqlite_rows(&path, schema), before);
    let down = ws.json(&["migrate", "down", "--to", "0001_t"]);
    assert_eq!(down["changes"][0]["how"], "schema-snapshot", "{down}");
    assert_eq!(sqlite_rows(&path, schema), before);
    sqlite_exec(&path, "INSERT INTO t (v) VALUES ('c')");
    assert_eq!(sqlite_rows(&path, "SELECT count(*) FROM t"), ["3"]);
}
