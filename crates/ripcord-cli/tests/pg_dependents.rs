//! What depends on a table comes back when a change is rolled back:
//! `ALTER TABLE … DROP COLUMN … CASCADE` takes views, materialized views,
//! foreign keys, triggers, policies and grants with the column, and `down`
//! puts them back from the safety snapshot's record. `rehearse` reports what
//! does not come back. Against a real PostgreSQL cluster.

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

/// Whether `sql` fails on `db`.
fn fails(db: &str, sql: &str) -> bool {
    cluster().client(db).batch_execute(sql).is_err()
}

/// A role of the cluster (shared by the tests of this process).
fn role(name: &str) {
    exec(
        "postgres",
        &format!(
            "DO $$ BEGIN CREATE ROLE {name}; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ),
    );
}

/// accounts(code) with what reads the column: views (one on another, in
/// another schema), a foreign key from another table, rows.
const ACCOUNTS: &str = "\
CREATE TABLE accounts (id int PRIMARY KEY, code text NOT NULL UNIQUE, name text);
CREATE TABLE transfers (id int PRIMARY KEY, account_code text REFERENCES accounts (code), amount int);
INSERT INTO accounts SELECT i, 'c' || i, 'n' || i FROM generate_series(1, 50) i;
INSERT INTO transfers SELECT i, 'c' || (i % 50 + 1), i FROM generate_series(1, 200) i;
CREATE SCHEMA reports;
CREATE VIEW reports.codes AS SELECT id, code FROM accounts;
CREATE VIEW reports.code_count AS SELECT count(*) AS n FROM reports.codes WHERE code LIKE 'c%';
";

const ACCOUNTS_DOWN: &str =
    "DROP SCHEMA reports CASCADE;\nDROP TABLE transfers;\nDROP TABLE accounts;\n";

/// The plan: 0001 builds `setup` (down: `down`), 0002 drops the column.
fn plan(ws: &Workspace, setup: &str, down: &str) {
    write(ws, "migrations/0001_accounts/up.sql", setup);
    write(ws, "migrations/0001_accounts/down.sql", down);
    write(
        ws,
        "migrations/0002_drop_code/up.sql",
        "ALTER TABLE accounts DROP COLUMN code CASCADE;\n",
    );
}

#[test]
fn drop_column_cascade_brings_back_its_views_and_foreign_keys() {
    let (ws, db) = setup("dep_cascade");
    plan(&ws, ACCOUNTS, ACCOUNTS_DOWN);
    ws.ok(&["migrate", "up", "--to", "0001_accounts"]);
    // The round trip on a copy gives back everything, grants and all.
    ws.ok(&["migrate", "rehearse"])
        .assert_stdout_has("rehearsal passed");

    ws.ok(&["migrate", "up"]);
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_views WHERE schemaname = 'reports'"
        ),
        ["0"],
        "the cascade took the views"
    );
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
        ),
        ["0"],
        "the cascade took the foreign key"
    );
    exec(&db, "INSERT INTO transfers VALUES (201, 'nowhere', 1)");
    exec(&db, "DELETE FROM transfers WHERE id = 201");

    ws.ok(&["rollback", "--to", "0001_accounts"])
        .assert_stdout_has("data loss: none");
    assert_eq!(
        rows(&db, "SELECT code FROM reports.codes WHERE id = 7"),
        ["c7"]
    );
    assert_eq!(rows(&db, "SELECT n FROM reports.code_count"), ["50"]);
    // The foreign key is back, validated, and enforced.
    assert_eq!(
        rows(
            &db,
            "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'transfers'::regclass AND contype = 'f'"
        ),
        ["transfers_account_code_fkey|t"]
    );
    assert!(fails(
        &db,
        "INSERT INTO transfers VALUES (202, 'nowhere', 1)"
    ));
    exec(&db, "INSERT INTO transfers VALUES (202, 'c3', 1)");
    // Applying the change again takes them again.
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_views WHERE schemaname = 'reports'"
        ),
        ["0"]
    );
}

#[test]
fn a_materialized_view_comes_back_with_its_rows() {
    let (ws, db) = setup("dep_matview");
    role("dep_matview_reader");
    plan(
        &ws,
        &format!(
            "{ACCOUNTS}
             CREATE MATERIALIZED VIEW reports.per_code AS
                 SELECT a.code, sum(t.amount) AS total FROM accounts a
                 JOIN transfers t ON t.account_code = a.code GROUP BY a.code;
             CREATE UNIQUE INDEX per_code_code ON reports.per_code (code);
             CREATE VIEW reports.top AS SELECT code FROM reports.per_code WHERE total > 450;
             CREATE MATERIALIZED VIEW reports.empty AS SELECT code FROM accounts WITH NO DATA;
             GRANT USAGE ON SCHEMA reports TO dep_matview_reader;
             GRANT SELECT ON reports.per_code TO dep_matview_reader;
             COMMENT ON MATERIALIZED VIEW reports.per_code IS 'totals per code';"
        ),
        ACCOUNTS_DOWN,
    );
    ws.ok(&["migrate", "up", "--to", "0001_accounts"]);
    let totals = "SELECT code, total FROM reports.per_code ORDER BY code";
    let before = rows(&db, totals);
    assert_eq!(before.len(), 50);
    let top = rows(&db, "SELECT code FROM reports.top ORDER BY 1");
    assert!(!top.is_empty());

    ws.ok(&["migrate", "up"]);
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_matviews WHERE schemaname = 'reports'"
        ),
        ["0"]
    );
    ws.ok(&["migrate", "down", "--to", "0001_accounts"]);
    // Back with its rows, its index, its grant and its comment; the view
    // on it reads it; the one that held no rows still holds none.
    assert_eq!(rows(&db, totals), before);
    assert_eq!(rows(&db, "SELECT code FROM reports.top ORDER BY 1"), top);
    assert_eq!(
        rows(
            &db,
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'reports'"
        ),
        ["per_code_code"]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT has_table_privilege('dep_matview_reader', 'reports.per_code', 'SELECT'),
                    obj_description('reports.per_code'::regclass, 'pg_class')"
        ),
        ["t|totals per code"]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT matviewname, ispopulated FROM pg_matviews WHERE schemaname = 'reports' ORDER BY 1"
        ),
        ["empty|f", "per_code|t"]
    );
    // REFRESH … CONCURRENTLY needs the unique index: it is really there.
    exec(
        &db,
        "REFRESH MATERIALIZED VIEW CONCURRENTLY reports.per_code",
    );
}

#[test]
fn a_trigger_and_policies_on_the_column_come_back() {
    let (ws, db) = setup("dep_policy");
    role("dep_policy_clerk");
    plan(
        &ws,
        &format!(
            "{ACCOUNTS}
             ALTER TABLE accounts ADD COLUMN touched int NOT NULL DEFAULT 0;
             CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN NEW.touched := OLD.touched + 1; RETURN NEW; END $$;
             CREATE TRIGGER accounts_touch BEFORE UPDATE OF code ON accounts
                 FOR EACH ROW EXECUTE FUNCTION touch();
             ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
             CREATE POLICY c_codes ON accounts FOR SELECT TO dep_policy_clerk USING (code LIKE 'c1%');
             ALTER TABLE transfers ENABLE ROW LEVEL SECURITY;
             CREATE POLICY known ON transfers AS RESTRICTIVE FOR SELECT TO dep_policy_clerk
                 USING (account_code IN (SELECT code FROM accounts WHERE code LIKE 'c1%'));
             CREATE POLICY all_rows ON transfers FOR SELECT TO dep_policy_clerk USING (true);
             GRANT SELECT ON accounts, transfers TO dep_policy_clerk;"
        ),
        ACCOUNTS_DOWN,
    );
    ws.ok(&["migrate", "up", "--to", "0001_accounts"]);
    let policies = "SELECT tablename, policyname, permissive, roles::text, cmd, qual
                    FROM pg_policies ORDER BY 1, 2";
    let before = rows(&db, policies);
    assert_eq!(before.len(), 3);
    let seen_by_clerk = "SET ROLE dep_policy_clerk; \
         SELECT (SELECT count(*) FROM accounts) || '/' || (SELECT count(*) FROM transfers)";
    let clerk_before = rows(&db, seen_by_clerk);
    assert_eq!(clerk_before, ["11/44"]);

    ws.ok(&["migrate", "up"]);
    // The cascade took both policies that read the column, and the trigger.
    assert_eq!(
        rows(&db, "SELECT policyname FROM pg_policies ORDER BY 1"),
        ["all_rows"]
    );
    ws.ok(&["migrate", "down", "--to", "0001_accounts"]);
    assert_eq!(rows(&db, policies), before);
    assert_eq!(rows(&db, seen_by_clerk), clerk_before);
    // The trigger fires on the column again (the code keeps its value:
    // the foreign key, back too, would refuse another).
    exec(&db, "UPDATE accounts SET code = code WHERE id = 5");
    assert_eq!(
        rows(&db, "SELECT touched FROM accounts WHERE id = 5"),
        ["1"]
    );
}

#[test]
fn grants_and_owners_come_back() {
    let (ws, db) = setup("dep_grant");
    role("dep_grant_app");
    role("dep_grant_owner");
    plan(
        &ws,
        &format!(
            "{ACCOUNTS}
             GRANT USAGE ON SCHEMA reports TO dep_grant_app, dep_grant_owner;
             GRANT SELECT, INSERT ON accounts TO dep_grant_app;
             GRANT UPDATE (code) ON accounts TO dep_grant_app;
             GRANT SELECT ON accounts TO dep_grant_owner;
             GRANT SELECT ON reports.codes TO dep_grant_app WITH GRANT OPTION;
             GRANT SELECT ON reports.code_count TO PUBLIC;
             ALTER VIEW reports.codes OWNER TO dep_grant_owner;"
        ),
        ACCOUNTS_DOWN,
    );
    ws.ok(&["migrate", "up", "--to", "0001_accounts"]);
    let acl = "SELECT c.relname, c.relowner::regrole, c.relacl::text,
                      (SELECT string_agg(a.attname || ':' || a.attacl::text, ',') FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attacl IS NOT NULL)
               FROM pg_class c WHERE c.relname IN ('accounts', 'codes', 'code_count') ORDER BY 1";
    let before = rows(&db, acl);
    assert_eq!(before.len(), 3);
    assert!(before[0].contains("code:"), "{before:?}");

    ws.ok(&["migrate", "up"]);
    ws.ok(&["migrate", "down", "--to", "0001_accounts"]);
    assert_eq!(rows(&db, acl), before);
    // The view reads with its owner's rights again: the app may read it.
    assert_eq!(
        rows(
            &db,
            "SET ROLE dep_grant_app; SELECT count(*) FROM reports.codes"
        ),
        ["50"]
    );
}

#[test]
fn a_dependent_that_cannot_come_back_fails_the_revert() {
    let (ws, db) = setup("dep_lost");
    plan(
        &ws,
        &format!(
            "{ACCOUNTS}
             CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(t) $$;
             CREATE VIEW reports.loud AS SELECT id, shout(code) AS code FROM accounts;"
        ),
        ACCOUNTS_DOWN,
    );
    // The change also drops what the view needs, and nothing gives it back.
    write(
        &ws,
        "migrations/0002_drop_code/up.sql",
        "ALTER TABLE accounts DROP COLUMN code CASCADE;\nDROP FUNCTION shout(text);\n",
    );
    ws.ok(&["migrate", "up"]);
    let out = ws.run(&["migrate", "down", "--to", "0001_accounts"]);
    out.assert_code(1)
        .assert_stderr_has("view reports.loud")
        .assert_stderr_has("cannot be created again")
        .assert_stderr_has("shout");
    // Nothing was reverted: the column is still gone, the change applied.
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'code'"
        ),
        ["0"]
    );
    // With what it needs there again, down goes through.
    exec(
        &db,
        "CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(t) $$",
    );
    ws.ok(&["migrate", "down", "--to", "0001_accounts"]);
    assert_eq!(
        rows(&db, "SELECT code FROM reports.loud WHERE id = 2"),
        ["C2"]
    );
}

#[test]
fn rehearse_reports_a_grant_that_does_not_come_back() {
    let (ws, db) = setup("dep_rehearse");
    role("dep_rehearse_app");
    plan(
        &ws,
        &format!(
            "{ACCOUNTS}
             GRANT USAGE ON SCHEMA reports TO dep_rehearse_app;
             GRANT SELECT ON reports.code_count TO dep_rehearse_app;"
        ),
        ACCOUNTS_DOWN,
    );
    // Destroys no data and has a down script: no snapshot, the down script
    // is the way back, and it forgets the grant.
    write(
        &ws,
        "migrations/0002_drop_code/up.sql",
        "DROP VIEW reports.code_count;\n",
    );
    write(
        &ws,
        "migrations/0002_drop_code/down.sql",
        "CREATE VIEW reports.code_count AS SELECT count(*) AS n FROM reports.codes WHERE code LIKE 'c%';\n",
    );
    ws.ok(&["migrate", "up", "--to", "0001_accounts"]);
    let out = ws.run(&["migrate", "rehearse"]);
    out.assert_code(1)
        .assert_stdout_has("not reversible: 0002_drop_code")
        .assert_stdout_has(
            "grant SELECT to dep_rehearse_app on reports.code_count did not come back after down",
        );
    // The schema alone is the same: only the grant tells them apart.
    assert!(
        !out.all_text().contains("is gone after down"),
        "{}",
        out.all_text()
    );
    // With the grant in the down script, the rehearsal passes.
    write(
        &ws,
        "migrations/0002_drop_code/down.sql",
        "CREATE VIEW reports.code_count AS SELECT count(*) AS n FROM reports.codes WHERE code LIKE 'c%';\n\
         GRANT SELECT ON reports.code_count TO dep_rehearse_app;\n",
    );
    ws.ok(&["migrate", "rehearse"])
        .assert_stdout_has("rehearsal passed");
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_views WHERE viewname = 'code_count'"
        ),
        ["1"]
    );
}

/// A table put back from its snapshot is created anew, and `ALTER DEFAULT
/// PRIVILEGES` in force gave it grants it never had: a later `DROP ROLE` in
/// the next down script failed ("privileges for table …"). It now has
/// exactly the privileges it had when the snapshot was taken.
#[test]
fn a_table_put_back_gets_only_its_own_privileges_not_the_default_ones() {
    let (ws, db) = setup("dep_defacl");
    role("dep_defacl_reader");
    role("dep_defacl_writer");
    write(
        &ws,
        "migrations/0001_accounts/up.sql",
        "CREATE TABLE accounts (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text);\n\
         INSERT INTO accounts (name) SELECT 'n' || i FROM generate_series(1, 20) i;\n\
         GRANT SELECT ON accounts TO dep_defacl_reader;\n",
    );
    write(
        &ws,
        "migrations/0001_accounts/down.sql",
        "DROP TABLE accounts;\n",
    );
    write(
        &ws,
        "migrations/0002_defaults/up.sql",
        "ALTER DEFAULT PRIVILEGES GRANT INSERT, UPDATE ON TABLES TO dep_defacl_writer;\n\
         ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO dep_defacl_writer;\n",
    );
    write(
        &ws,
        "migrations/0002_defaults/down.sql",
        "ALTER DEFAULT PRIVILEGES REVOKE USAGE ON SEQUENCES FROM dep_defacl_writer;\n\
         ALTER DEFAULT PRIVILEGES REVOKE INSERT, UPDATE ON TABLES FROM dep_defacl_writer;\n",
    );
    write(&ws, "migrations/0003_drop/up.sql", "DROP TABLE accounts;\n");
    // No ACL and the built-in default ACL grant the same.
    let acl = "SELECT c.relname, coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's'
                      ELSE 'r' END::\"char\", c.relowner))::text
               FROM pg_class c WHERE c.relname IN ('accounts', 'accounts_id_seq') ORDER BY 1";
    ws.ok(&["migrate", "up", "--to", "0002_defaults"]);
    let before = rows(&db, acl);
    assert!(before[0].contains("dep_defacl_reader=r/"), "{before:?}");
    assert!(!before.concat().contains("dep_defacl_writer"), "{before:?}");

    ws.ok(&["migrate", "up"]);
    ws.ok(&["migrate", "down", "--to", "0002_defaults"]);
    assert_eq!(rows(&db, acl), before);
    assert_eq!(rows(&db, "SELECT count(*) FROM accounts"), ["20"]);
    ws.ok(&["migrate", "down", "--to", "@root"]);
}
