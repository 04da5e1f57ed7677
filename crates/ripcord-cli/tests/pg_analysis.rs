//! What gets a safety snapshot on PostgreSQL, end to end: a sqitch project
//! with roles, grants, default privileges, functions, triggers, policies and
//! `CREATE DATABASE … OWNER` takes no whole-database snapshot, while its
//! destructive change still gets a table snapshot and rolls back with its
//! data; `migrate plan --explain` and `lint` say what is snapshotted and why.

use ripcord_testing::app::{pg_app, rows, write};
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

/// Roles and databases belong to the cluster, which tests share: each name
/// carries the test's database name.
fn sqitch_project(ws: &Workspace, db: &str) {
    let user = format!("{db}_user");
    let admin = format!("{db}_admin");
    let created = format!("{db}_reports");
    let changes = [
        (
            "roles",
            format!(
                "BEGIN;\nCREATE ROLE {user} NOLOGIN;\nCREATE ROLE {admin} NOLOGIN;\n\
                 GRANT {user} TO {admin};\nCOMMIT;\n"
            ),
            format!("BEGIN;\nDROP ROLE {admin};\nDROP ROLE {user};\nCOMMIT;\n"),
        ),
        (
            "schema",
            format!(
                "BEGIN;\nCREATE SCHEMA app;\nCOMMENT ON SCHEMA app IS 'the application';\n\
                 GRANT USAGE ON SCHEMA app TO {user};\n\
                 ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {user};\n\
                 COMMIT;\n"
            ),
            format!(
                "BEGIN;\nALTER DEFAULT PRIVILEGES IN SCHEMA app REVOKE SELECT ON TABLES FROM {user};\n\
                 REVOKE USAGE ON SCHEMA app FROM {user};\nDROP SCHEMA app;\nCOMMIT;\n"
            ),
        ),
        (
            "accounts",
            format!(
                "BEGIN;\nCREATE TABLE app.accounts (id int PRIMARY KEY, owner name NOT NULL \
                 DEFAULT current_user, nickname text, updated timestamptz);\n\
                 INSERT INTO app.accounts (id, owner, nickname) VALUES (1, 'ann', 'annie'), \
                 (2, 'bob', 'bobby');\n\
                 GRANT SELECT, INSERT ON app.accounts TO {user};\n\
                 COMMENT ON TABLE app.accounts IS 'who may log in';\nCOMMIT;\n"
            ),
            "BEGIN;\nDROP TABLE app.accounts;\nCOMMIT;\n".to_string(),
        ),
        (
            "security",
            format!(
                "BEGIN;\nALTER TABLE app.accounts ENABLE ROW LEVEL SECURITY;\n\
                 CREATE POLICY own_rows ON app.accounts FOR ALL TO {user} \
                 USING (owner = current_user);\nCOMMIT;\n"
            ),
            "BEGIN;\nDROP POLICY own_rows ON app.accounts;\n\
             ALTER TABLE app.accounts DISABLE ROW LEVEL SECURITY;\nCOMMIT;\n"
                .to_string(),
        ),
        (
            "functions",
            format!(
                "BEGIN;\nCREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$\n\
                 BEGIN NEW.updated = now(); RETURN NEW; END\n$$;\n\
                 CREATE OR REPLACE FUNCTION app.forget(who name) RETURNS void LANGUAGE sql \
                 SECURITY DEFINER AS $$ DELETE FROM app.accounts WHERE owner = who $$;\n\
                 REVOKE ALL ON FUNCTION app.forget(name) FROM PUBLIC;\n\
                 GRANT EXECUTE ON FUNCTION app.forget(name) TO {admin};\n\
                 CREATE TRIGGER touch BEFORE UPDATE ON app.accounts FOR EACH ROW \
                 EXECUTE FUNCTION app.touch();\nCOMMIT;\n"
            ),
            "BEGIN;\nDROP TRIGGER touch ON app.accounts;\nDROP FUNCTION app.forget(name);\n\
             DROP FUNCTION app.touch();\nCOMMIT;\n"
                .to_string(),
        ),
        (
            "types",
            "BEGIN;\nCREATE TYPE app.mood AS ENUM ('sad', 'ok');\n\
             CREATE DOMAIN app.email AS text CHECK (VALUE ~ '@');\n\
             CREATE SEQUENCE app.ids START 100;\n\
             CREATE VIEW app.owners AS SELECT DISTINCT owner FROM app.accounts;\n\
             CREATE INDEX accounts_owner ON app.accounts (owner);\nSET client_min_messages = warning;\n\
             COMMIT;\n"
                .to_string(),
            "BEGIN;\nDROP INDEX app.accounts_owner;\nDROP VIEW app.owners;\nDROP SEQUENCE app.ids;\n\
             DROP DOMAIN app.email;\nDROP TYPE app.mood;\nCOMMIT;\n"
                .to_string(),
        ),
        (
            "reports_db",
            format!("CREATE DATABASE {created} OWNER {admin};\n"),
            format!("DROP DATABASE {created};\n"),
        ),
        (
            "drop_nickname",
            "BEGIN;\nALTER TABLE app.accounts DROP COLUMN nickname;\nCOMMIT;\n".to_string(),
            "BEGIN;\nALTER TABLE app.accounts ADD COLUMN nickname text;\nCOMMIT;\n".to_string(),
        ),
    ];
    let mut plan = String::from("%syntax-version=1.0.0\n%project=app\n\n");
    for (i, (name, deploy, revert)) in changes.iter().enumerate() {
        plan.push_str(&format!(
            "{name} 2026-01-{:02}T00:00:00Z A <a@x> # {name}\n",
            i + 1
        ));
        write(ws, &format!("migrations/deploy/{name}.sql"), deploy);
        write(ws, &format!("migrations/revert/{name}.sql"), revert);
    }
    write(ws, "migrations/sqitch.plan", &plan);
}

fn scopes(v: &Value) -> Vec<String> {
    v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["change"].as_str().unwrap(),
                c["snapshot_scope"]["scope"].as_str().unwrap()
            )
        })
        .collect()
}

/// A real sqitch project got a whole-database snapshot for most of its
/// changes: GRANT … TO role, ALTER DEFAULT PRIVILEGES and CREATE DATABASE …
/// OWNER could not be read, and every CREATE FUNCTION counted as "may
/// change any table".
#[test]
fn a_project_with_roles_grants_functions_and_policies_takes_no_whole_database_snapshot() {
    let (ws, db) = setup("mig_an_roles");
    sqitch_project(&ws, &db);
    let v = ws.json(&["migrate", "up"]);
    assert_eq!(
        scopes(&v),
        [
            "roles=none",
            "schema=none",
            "accounts=none",
            "security=down-script",
            "functions=none",
            "types=down-script",
            "reports_db=none",
            "drop_nickname=tables",
        ],
        "{v}"
    );
    let changes = v["changes"].as_array().unwrap();
    // One snapshot in all: the destructive change's, of its table only.
    let taken: Vec<&Value> = changes
        .iter()
        .filter(|c| !c["snapshot"].is_null())
        .collect();
    assert_eq!(taken.len(), 1, "{v}");
    assert_eq!(
        taken[0]["snapshot_scope"]["tables"],
        serde_json::json!(["app.accounts"]),
        "{v}"
    );
    assert!(changes.iter().all(|c| c["uncertain"].is_null()), "{v}");
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_database WHERE datname = current_database() || '_reports'"
        ),
        ["1"]
    );

    // The destructive change rolls back with its data.
    let d = ws.json(&["migrate", "down", "--to", "reports_db"]);
    assert_eq!(d["changes"][0]["how"], "down-script-and-snapshot", "{d}");
    assert_eq!(d["rows_lost"], 0, "{d}");
    assert_eq!(
        rows(
            &db,
            "SELECT id, owner, nickname FROM app.accounts ORDER BY id"
        ),
        ["1|ann|annie", "2|bob|bobby"]
    );
    // Everything else goes back by its revert script.
    ws.ok(&["migrate", "down", "--to", "@root"]);
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'app'"
        ),
        ["0"]
    );
    assert_eq!(
        rows(
            &db,
            &format!("SELECT count(*) FROM pg_roles WHERE rolname LIKE '{db}\\_%'")
        ),
        ["0"]
    );
}

/// A trigger already on a table runs its function on the change's own
/// writes: one whose code can write other tables makes that change's tables
/// uncertain, and `up` says which trigger; one that only sets the row's own
/// columns (`touch`) does not.
#[test]
fn dml_on_a_table_with_a_trigger_that_writes_elsewhere_snapshots_the_whole_database() {
    let (ws, db) = setup("mig_an_trigger");
    sqitch_project(&ws, &db);
    ws.ok(&["migrate", "up", "--to", "functions"]);
    let plan = std::fs::read_to_string(ws.path("migrations/sqitch.plan")).unwrap();
    write(
        &ws,
        "migrations/sqitch.plan",
        &format!("{plan}rename 2026-02-01T00:00:00Z A <a@x> # rename\n"),
    );
    write(
        &ws,
        "migrations/deploy/rename.sql",
        "UPDATE app.accounts SET owner = 'cy' WHERE id = 2;\n",
    );
    let last = |v: &Value| v["changes"].as_array().unwrap().last().unwrap().clone();
    // `touch` sets NEW.updated only: the table alone is enough.
    let v = ws.json(&["migrate", "up", "--to", "rename", "--dry-run"]);
    assert_eq!(last(&v)["change"], "rename", "{v}");
    assert_eq!(last(&v)["snapshot_scope"]["scope"], "tables", "{v}");

    cluster().psql(
        &db,
        "CREATE TABLE app.audit (id int, at timestamptz DEFAULT now());
         CREATE FUNCTION app.audit() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN INSERT INTO app.audit (id) VALUES (NEW.id); RETURN NEW; END $$;
         CREATE TRIGGER audited AFTER UPDATE ON app.accounts FOR EACH ROW
             EXECUTE FUNCTION app.audit();",
    );
    let v = ws.json(&["migrate", "up", "--to", "rename", "--dry-run"]);
    assert_eq!(last(&v)["snapshot_scope"]["scope"], "database", "{v}");
    let why = last(&v)["uncertain"].as_str().unwrap().to_string();
    assert!(why.contains("trigger audited"), "{v}");
    assert!(!why.contains("touch"), "{v}");
    // Applied, its writes through the trigger come back with the rest.
    ws.ok(&["migrate", "up", "--to", "rename"]);
    assert_eq!(rows(&db, "SELECT id FROM app.audit"), ["2"]);
    let d = ws.json(&["migrate", "down", "--to", "functions"]);
    assert_eq!(d["changes"][0]["how"], "snapshot", "{d}");
    assert_eq!(rows(&db, "SELECT count(*) FROM app.audit"), ["0"]);
    assert_eq!(
        rows(&db, "SELECT owner FROM app.accounts ORDER BY id"),
        ["ann", "bob"]
    );

    // A disabled trigger does not fire.
    cluster().psql(&db, "ALTER TABLE app.accounts DISABLE TRIGGER audited");
    let v = ws.json(&["migrate", "up", "--to", "rename", "--dry-run"]);
    assert_eq!(last(&v)["snapshot_scope"]["scope"], "tables", "{v}");
    cluster().psql(
        &db,
        "DROP TABLE app.audit; DROP TRIGGER audited ON app.accounts; DROP FUNCTION app.audit()",
    );
    ws.ok(&["migrate", "down", "--to", "@root"]);
}

#[test]
fn plan_explain_and_lint_say_what_is_snapshotted_and_why() {
    let (ws, db) = setup("mig_an_explain");
    sqitch_project(&ws, &db);
    write(
        &ws,
        "migrations/deploy/purge.sql",
        "BEGIN;\nSELECT app.forget('bob');\nCOMMIT;\n",
    );
    let plan = std::fs::read_to_string(ws.path("migrations/sqitch.plan")).unwrap();
    write(
        &ws,
        "migrations/sqitch.plan",
        &format!("{plan}purge 2026-02-01T00:00:00Z A <a@x> # purge\n"),
    );
    let v = ws.json(&["migrate", "plan", "--explain"]);
    let snapshot = |name: &str| -> Value {
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["change"] == name)
            .unwrap_or_else(|| panic!("{name} in {v}"))["snapshot"]
            .clone()
    };
    assert_eq!(snapshot("roles")["scope"], "none", "{v}");
    assert_eq!(
        snapshot("roles")["statements"][2]["effect"],
        "changes no rows (grants or revokes)",
        "{v}"
    );
    assert_eq!(
        snapshot("functions")["statements"][0]["effect"],
        "changes no rows (creates a function or procedure)",
        "{v}"
    );
    // Lines are the file's, BEGIN/COMMIT wrapper included.
    assert_eq!(snapshot("functions")["statements"][1]["line"], 5, "{v}");
    assert_eq!(snapshot("security")["scope"], "down-script", "{v}");
    let drop = snapshot("drop_nickname");
    assert_eq!(drop["scope"], "tables", "{v}");
    assert_eq!(drop["tables"], serde_json::json!(["app.accounts"]), "{v}");
    assert!(
        drop["why"]
            .as_str()
            .unwrap()
            .contains("line 2: drops app.accounts.nickname"),
        "{v}"
    );
    let purge = snapshot("purge");
    assert_eq!(purge["scope"], "database", "{v}");
    assert!(
        purge["why"]
            .as_str()
            .unwrap()
            .contains("calls app.forget()"),
        "{v}"
    );

    // `up` gives the same reason, at the same line of the file.
    let up = ws.json(&["migrate", "up", "--dry-run"]);
    let last = up["changes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["snapshot_scope"]["scope"], "database", "{up}");
    assert_eq!(
        last["uncertain"],
        "line 2: calls app.forget(), which may change tables the script does not name",
        "{up}"
    );

    let out = ws.ok(&["migrate", "plan", "--explain"]);
    out.assert_stdout_has(
        "safety snapshots (1 whole database, 1 table-level, 0 schema-only, 7 none):",
    )
    .assert_stdout_has("drop_nickname")
    .assert_stdout_has("tables app.accounts: line 2: drops app.accounts.nickname and its data")
    .assert_stdout_has("line 3: changes no rows (a role)")
    .assert_stdout_has("ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT");

    let l = ws.json(&["migrate", "lint"]);
    let scopes: Vec<String> = l["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}={}",
                s["change"].as_str().unwrap(),
                s["scope"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(scopes.len(), 9, "{l}");
    assert!(scopes.contains(&"purge=database".to_string()), "{l}");
    assert!(scopes.contains(&"reports_db=none".to_string()), "{l}");
    // A grant in a change without a down script is not undone by a revert.
    let not_undone: Vec<&Value> = l["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "not-undone")
        .collect();
    assert!(not_undone.is_empty(), "{l}");
    // Without its down script, the roles change is put back by a
    // schema-only snapshot: nothing is left not undone.
    std::fs::remove_file(ws.path("migrations/revert/roles.sql")).unwrap();
    let l = ws.json(&["migrate", "lint"]);
    let not_undone: Vec<&Value> = l["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "not-undone")
        .collect();
    assert!(not_undone.is_empty(), "{l}");
    let roles = l["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["change"] == "roles")
        .unwrap();
    assert_eq!(roles["scope"], "schema", "{l}");
    assert!(
        roles["why"].as_str().unwrap().starts_with(
            "schema-only snapshot of a role (line 2), a role (line 3), grants or revokes (line 4)"
        ),
        "{l}"
    );
    ws.ok(&["migrate", "lint"])
        .assert_stdout_has("snapshot before purge: whole database: line 2: calls app.forget()")
        .assert_stdout_has("snapshot before roles: schema-only snapshot of a role (line 2)")
        .assert_stdout_has(
            "safety snapshots: 1 whole database, 1 table-level, 1 schema-only, 6 none",
        );
}

/// Rows a foreign key's `ON DELETE CASCADE` removes from another table are
/// changed by the change too: that table is snapshotted with the one the
/// change names, and comes back with its rows.
#[test]
fn rows_a_cascading_foreign_key_deletes_are_snapshotted_and_come_back() {
    let (ws, db) = setup("mig_an_cascade");
    write(
        &ws,
        "migrations/0001_shop/up.sql",
        "CREATE TABLE customers (id int PRIMARY KEY, name text);\n\
         CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers ON DELETE CASCADE);\n\
         CREATE TABLE lines (id int PRIMARY KEY, ord int REFERENCES orders ON DELETE CASCADE);\n\
         INSERT INTO customers VALUES (1, 'ann'), (2, 'bob');\n\
         INSERT INTO orders VALUES (10, 1), (20, 2);\n\
         INSERT INTO lines VALUES (100, 10), (200, 20);\n",
    );
    write(
        &ws,
        "migrations/0001_shop/down.sql",
        "DROP TABLE lines, orders, customers;\n",
    );
    write(
        &ws,
        "migrations/0002_forget_ann/up.sql",
        "DELETE FROM customers WHERE name = 'ann';\n",
    );
    ws.ok(&["migrate", "up", "--to", "0001_shop"]);
    let v = ws.json(&["migrate", "up", "--dry-run"]);
    assert_eq!(v["changes"][0]["snapshot_scope"]["scope"], "tables", "{v}");
    assert_eq!(
        v["changes"][0]["snapshot_scope"]["tables"],
        serde_json::json!(["public.customers", "public.lines", "public.orders"]),
        "{v}"
    );
    ws.ok(&["migrate", "up"]);
    assert_eq!(rows(&db, "SELECT id FROM lines"), ["200"]);
    let d = ws.json(&["migrate", "down", "--to", "0001_shop"]);
    assert_eq!(d["rows_lost"], 0, "{d}");
    assert_eq!(
        rows(&db, "SELECT id, ord FROM lines ORDER BY id"),
        ["100|10", "200|20"]
    );
    assert_eq!(
        rows(&db, "SELECT id, customer FROM orders ORDER BY id"),
        ["10|1", "20|2"]
    );
}

/// `migrate plan --explain` read the scripts before their psql variables
/// were resolved: `CREATE TABLE :"schema".t` could not be parsed and was
/// explained as a whole-database snapshot, while `up` (which resolves them)
/// took none. It now explains the scripts as `up` runs them, variables from
/// sqitch.conf and `--set` included, and a `DO`-block role guard is
/// data-free in both.
#[test]
fn plan_explain_resolves_psql_variables_as_up_does() {
    let (ws, db) = setup("mig_an_vars");
    let role = format!("{db}_web");
    write(
        &ws,
        "migrations/sqitch.conf",
        "[core]\n\tengine = pg\n[deploy.variables]\n\tschema = app\n",
    );
    write(
        &ws,
        "migrations/sqitch.plan",
        "%syntax-version=1.0.0\n%project=app\n\n\
         schema 2026-01-01T00:00:00Z A <a@x> # schema\n\
         role 2026-01-02T00:00:00Z A <a@x> # role\n",
    );
    write(
        &ws,
        "migrations/deploy/schema.sql",
        "BEGIN;\nCREATE SCHEMA :\"schema\";\nCREATE TABLE :\"schema\".t (id int PRIMARY KEY);\n\
         INSERT INTO :\"schema\".t VALUES (:n);\nCOMMIT;\n",
    );
    write(
        &ws,
        "migrations/revert/schema.sql",
        "BEGIN;\nDROP TABLE :\"schema\".t;\nDROP SCHEMA :\"schema\";\nCOMMIT;\n",
    );
    write(
        &ws,
        "migrations/deploy/role.sql",
        &format!(
            "BEGIN;\nDO $$\nBEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles \
             WHERE rolname = '{role}') THEN\n    CREATE ROLE {role} NOLOGIN;\n  END IF;\nEND\n$$;\n\
             GRANT SELECT ON :\"schema\".t TO {role};\nCOMMIT;\n"
        ),
    );
    write(
        &ws,
        "migrations/revert/role.sql",
        &format!(
            "BEGIN;\nREVOKE SELECT ON :\"schema\".t FROM {role};\nDROP ROLE {role};\nCOMMIT;\n"
        ),
    );
    let v = ws.json(&["migrate", "plan", "--explain", "--set", "n=7"]);
    let explained: Vec<String> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["change"].as_str().unwrap(),
                c["snapshot"]["scope"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(explained, ["schema=none", "role=none"], "{v}");
    let up = ws.json(&["migrate", "up", "--set", "n=7"]);
    assert_eq!(scopes(&up), ["schema=none", "role=none"], "{up}");
    assert_eq!(rows(&db, "SELECT id::text FROM app.t"), ["7"]);
    ws.ok(&["migrate", "down", "--to", "@root"]);
}

/// `lint` asks the server about what its SQL parser cannot read, as `up`
/// does: valid PostgreSQL it cannot parse is no error, a typo is one.
#[test]
fn lint_reports_syntax_errors_the_server_finds() {
    let (ws, _db) = setup("lint_syntax");
    write(
        &ws,
        "migrations/1_t.up.sql",
        "CREATE TABLE t (id int PRIMARY KEY);\nCREATE INDEX t_idx ON t (id);\n\
         ALTER TABLE t CLUSTER ON t_idx;\n",
    );
    write(&ws, "migrations/1_t.down.sql", "DROP TABLE t;\n");
    let v = ws.json(&["migrate", "lint"]);
    let kinds: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"syntax-error"), "{v}");

    write(
        &ws,
        "migrations/2_oops.up.sql",
        "SELECT 1;\nCREAT TABLE oops (x int);\n",
    );
    write(&ws, "migrations/2_oops.down.sql", "DROP TABLE oops;\n");
    let out = ws.run(&["--json", "migrate", "lint"]);
    out.assert_code(2);
    let v = out.json();
    let errors: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "syntax-error")
        .collect();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["change"], "2_oops", "{v}");
    assert_eq!(errors[0]["line"], 2, "{v}");
    assert_eq!(errors[0]["severity"], "error", "{v}");
    assert!(
        errors[0]["detail"]
            .as_str()
            .unwrap()
            .contains("syntax error at or near \"CREAT\""),
        "{v}"
    );
}
