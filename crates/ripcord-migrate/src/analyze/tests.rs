use super::*;

fn pg(sql: &str) -> Analysis {
    analyze(sql, &Options::default())
}

fn pg_version(sql: &str, version: u32) -> Analysis {
    analyze(
        sql,
        &Options {
            server_version: Some(version),
            ..Options::default()
        },
    )
}

fn tables(a: &Analysis) -> Vec<String> {
    let mut names: Vec<String> = a.tables.iter().map(ToString::to_string).collect();
    names.sort();
    names
}

fn details(a: &Analysis, kind: Kind) -> String {
    a.of_kind(kind)
        .map(|f| f.detail.as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn tables_each_statement_touches() {
    let a = pg("
        ALTER TABLE accounts ADD COLUMN email text;
        ALTER TABLE billing.invoices RENAME TO bills;
        DROP TABLE old_a, old_b;
        TRUNCATE TABLE ONLY queue;
        UPDATE users SET name = lower(name) WHERE id > 10;
        DELETE FROM sessions WHERE expires < now();
        INSERT INTO audit (what) VALUES ('migrated');
        CREATE INDEX orders_user ON shop.orders (user_id);
        SELECT count(*) FROM untouched;
    ");
    assert!(a.certain, "{:?}", a.findings);
    assert_eq!(a.statements, 9);
    assert_eq!(
        tables(&a),
        [
            "accounts",
            "audit",
            "billing.bills",
            "billing.invoices",
            "old_a",
            "old_b",
            "queue",
            "sessions",
            "shop.orders",
            "users"
        ]
    );
}

#[test]
fn names_fold_like_postgres() {
    let a = pg(
        r#"UPDATE "Users" SET a = 1; DELETE FROM Public.Events; ALTER TABLE "S"."T" DROP COLUMN c"#,
    );
    // Shown quoted where the server needs quotes to find them.
    assert_eq!(tables(&a), [r#""S"."T""#, r#""Users""#, "public.events"]);
    let t = a.tables.iter().find(|t| t.name == "T").unwrap();
    assert_eq!(t.schema.as_deref(), Some("S"));
}

#[test]
fn tables_created_by_the_script_need_no_snapshot() {
    let a = pg("
        CREATE TABLE fresh (id bigint);
        INSERT INTO fresh SELECT id FROM old;
        CREATE INDEX fresh_id ON fresh (id);
        ALTER TABLE fresh ALTER COLUMN id SET NOT NULL;
        ALTER TABLE fresh ADD COLUMN token uuid DEFAULT gen_random_uuid();
    ");
    assert!(a.tables.is_empty(), "{:?}", a.tables);
    assert!(
        !a.has(Kind::LongLock) && !a.has(Kind::Rewrite),
        "{:?}",
        a.findings
    );
    // IF NOT EXISTS may meet an existing table.
    let a = pg("CREATE TABLE IF NOT EXISTS t (id int); INSERT INTO t VALUES (1);");
    assert_eq!(tables(&a), ["t"]);
}

#[test]
fn uncertain_statements() {
    for (sql, why) in [
        ("DO $$ BEGIN UPDATE t SET a = 1; END $$", "DO block"),
        ("EXECUTE purge(1)", "EXECUTE"),
        ("CALL purge()", "procedure"),
        ("COPY t FROM STDIN", "COPY"),
        ("UPDATE t SET a = recompute(b)", "recompute()"),
        ("SELECT backfill_emails()", "backfill_emails()"),
        ("TRUNCATE a CASCADE", "CASCADE"),
        ("DROP SCHEMA legacy CASCADE", "schema"),
        ("DROP TYPE mood CASCADE", "CASCADE"),
        ("ALTER TABLE t SET SCHEMA archive", "cannot read"),
        (
            "REFRESH MATERIALIZED VIEW CONCURRENTLY totals",
            "cannot read",
        ),
        ("\\connect other", "cannot read"),
    ] {
        let a = pg(sql);
        assert!(!a.certain, "{sql}");
        let d = details(&a, Kind::Uncertain);
        assert!(d.contains(why), "{sql}: {d}");
    }
    // Built-in functions and pg_dump's preamble change no table.
    for sql in [
        "UPDATE t SET a = lower(trim(b)), c = coalesce(c, now()) WHERE d IS NULL",
        "SELECT pg_catalog.set_config('search_path', '', false)",
        "INSERT INTO t SELECT id, md5(random()::text) FROM generate_series(1, 10) AS id",
        "SET lock_timeout = '5s'",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
        "COPY t TO STDOUT",
    ] {
        let a = pg(sql);
        assert!(a.certain, "{sql}: {:?}", a.findings);
    }
}

#[test]
fn unreadable_alter_still_names_its_table() {
    let a = pg("ALTER TABLE orders DETACH PARTITION orders_2020 CONCURRENTLY");
    assert!(!a.certain);
    assert_eq!(tables(&a), ["orders"]);
    assert!(a.no_transaction());
}

#[test]
fn statements_that_cannot_run_in_a_transaction() {
    for sql in [
        "CREATE INDEX CONCURRENTLY i ON t (a)",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)",
        "DROP INDEX CONCURRENTLY i",
        "CREATE DATABASE scratch",
        "DROP DATABASE scratch",
        "VACUUM ANALYZE t",
        "ALTER TYPE mood ADD VALUE 'meh'",
        "REINDEX INDEX CONCURRENTLY i",
        "REINDEX DATABASE app",
        "ALTER SYSTEM SET work_mem = '64MB'",
        "CREATE TABLESPACE fast LOCATION '/ssd'",
    ] {
        let a = pg(sql);
        assert!(a.no_transaction(), "{sql}: {:?}", a.findings);
    }
    assert!(pg_version("ALTER TYPE mood ADD VALUE 'meh'", 11).no_transaction());
    assert!(!pg_version("ALTER TYPE mood ADD VALUE 'meh'", 16).no_transaction());
    for sql in [
        "CREATE INDEX i ON t (a)",
        "DROP INDEX i",
        "ALTER TYPE mood RENAME TO feeling",
        "SELECT 'VACUUM'",
    ] {
        assert!(!pg(sql).no_transaction(), "{sql}");
    }
    let sqlite = Options {
        dialect: Dialect::Sqlite,
        ..Options::default()
    };
    assert!(analyze("VACUUM", &sqlite).no_transaction());
    assert!(analyze("ATTACH DATABASE 'x.db' AS x", &sqlite).no_transaction());
    assert!(!analyze("CREATE INDEX i ON t (a)", &sqlite).no_transaction());
}

#[test]
fn scripts_that_manage_their_own_transaction() {
    let a = pg("BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n");
    assert_eq!(a.of_kind(Kind::OwnTransaction).count(), 2);
    assert!(a.certain);
    assert!(!pg("SAVEPOINT s; ROLLBACK TO SAVEPOINT s;").has(Kind::OwnTransaction));
}

#[test]
fn destructive_statements() {
    for (sql, what) in [
        ("DROP TABLE IF EXISTS a", "drops a"),
        ("ALTER TABLE a DROP COLUMN b", "drops a.b"),
        ("ALTER TABLE a DROP COLUMN b, DROP COLUMN c", "drops a.c"),
        ("TRUNCATE a, b", "empties a, b"),
        ("DELETE FROM a", "deletes every row of a"),
        ("DELETE FROM a WHERE id = 1", "deletes rows of a"),
        ("UPDATE a SET b = 1", "overwrites every row of a"),
        ("UPDATE a SET b = 1 WHERE c", "overwrites values in a"),
        (
            "INSERT INTO a VALUES (1) ON CONFLICT (id) DO UPDATE SET b = 2",
            "overwrites the rows of a",
        ),
        (
            "WITH gone AS (DELETE FROM a RETURNING *) SELECT count(*) FROM gone",
            "deletes every row of a",
        ),
        ("ALTER TABLE a ALTER COLUMN b TYPE int", "converting a.b"),
        ("DROP DATABASE app", "drops the database app"),
    ] {
        let a = pg(sql);
        let d = details(&a, Kind::Destructive);
        assert!(d.contains(what), "{sql}: {d}");
    }
    for sql in [
        "INSERT INTO a VALUES (1)",
        "INSERT INTO a VALUES (1) ON CONFLICT DO NOTHING",
        "CREATE TABLE a (id int)",
        "ALTER TABLE a ADD COLUMN b int",
        "ALTER TABLE a DROP CONSTRAINT a_check",
        "DROP INDEX a_idx",
        "DROP VIEW v",
    ] {
        assert!(!pg(sql).has(Kind::Destructive), "{sql}");
    }
    let sqlite = Options {
        dialect: Dialect::Sqlite,
        ..Options::default()
    };
    assert!(analyze("INSERT OR REPLACE INTO a VALUES (1)", &sqlite).has(Kind::Destructive));
}

#[test]
fn table_rewrites() {
    for sql in [
        "ALTER TABLE t ALTER COLUMN a TYPE bigint",
        "ALTER TABLE t ALTER COLUMN a SET DATA TYPE text USING a::text",
        "ALTER TABLE t ADD COLUMN r float DEFAULT random()",
        "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT clock_timestamp()",
        "ALTER TABLE t ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid()",
        "ALTER TABLE t ADD COLUMN n bigserial",
        "ALTER TABLE t ADD COLUMN d int GENERATED ALWAYS AS (a * 2) STORED",
        "ALTER TABLE t ADD COLUMN i int GENERATED ALWAYS AS IDENTITY",
        "VACUUM FULL t",
        "CLUSTER t USING t_pkey",
    ] {
        assert!(pg(sql).has(Kind::Rewrite), "{sql}: {:?}", pg(sql).findings);
    }
    for sql in [
        "ALTER TABLE t ADD COLUMN a int DEFAULT 0",
        "ALTER TABLE t ADD COLUMN a timestamptz NOT NULL DEFAULT now()",
        "ALTER TABLE t ADD COLUMN a text",
        "ALTER TABLE t ALTER COLUMN a SET DEFAULT random()",
    ] {
        assert!(!pg(sql).has(Kind::Rewrite), "{sql}");
    }
    // Before PostgreSQL 11 every default rewrote the table.
    assert!(pg_version("ALTER TABLE t ADD COLUMN a int DEFAULT 0", 10).has(Kind::Rewrite));
    assert!(!pg_version("ALTER TABLE t ADD COLUMN a int DEFAULT NULL", 10).has(Kind::Rewrite));
}

#[test]
fn long_locks() {
    for (sql, what) in [
        ("ALTER TABLE t ALTER COLUMN a SET NOT NULL", "SET NOT NULL"),
        (
            "ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0)",
            "NOT VALID",
        ),
        (
            "ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (u) REFERENCES users (id)",
            "NOT VALID",
        ),
        ("ALTER TABLE t ADD CONSTRAINT t_a UNIQUE (a)", "USING INDEX"),
        (
            "ALTER TABLE t ADD COLUMN code text UNIQUE",
            "builds an index",
        ),
        ("CREATE INDEX t_a ON t (a)", "CONCURRENTLY"),
    ] {
        let a = pg(sql);
        let d = details(&a, Kind::LongLock);
        assert!(d.contains(what), "{sql}: {d}");
    }
    for sql in [
        "ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0) NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (u) REFERENCES users (id) NOT VALID",
        "ALTER TABLE t VALIDATE CONSTRAINT positive",
        "ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_id",
        "CREATE INDEX CONCURRENTLY t_a ON t (a)",
    ] {
        assert!(
            !pg(sql).has(Kind::LongLock),
            "{sql}: {:?}",
            pg(sql).findings
        );
    }
}

#[test]
fn quotes_and_comments_do_not_cut_statements() {
    let a = pg("
        -- a comment; with a semicolon
        INSERT INTO t VALUES ('a;b');
        /* another; */
        CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; SELECT 2 $body$;
        ;
    ");
    assert_eq!(a.statements, 2);
    assert_eq!(tables(&a), ["t"]);
}

#[test]
fn findings_point_at_the_statement() {
    let a = pg("CREATE TABLE a (id int);\n\n-- then\nDROP TABLE\n    b;\n");
    let f = a.of_kind(Kind::Destructive).next().unwrap();
    assert_eq!(f.line, 4);
    assert_eq!(f.statement, "DROP TABLE b");
    let long = format!("UPDATE t SET a = '{}'", "x".repeat(200));
    let f = pg(&long).findings.remove(0);
    assert!(f.statement.ends_with('…') && f.statement.chars().count() == 73);
}

#[test]
fn unsplittable_scripts_assume_the_worst() {
    let a = pg("DELETE FROM t WHERE name = 'unterminated;\nCREATE INDEX CONCURRENTLY i ON t (a);");
    assert!(!a.certain);
    assert!(a.has(Kind::Destructive));
    assert!(a.no_transaction());
    assert_eq!(a.statements, 1);
}

#[test]
fn empty_scripts() {
    let a = pg("  -- nothing\n");
    assert!(a.certain);
    assert_eq!(a.statements, 0);
    assert!(a.findings.is_empty() && a.tables.is_empty());
}

#[test]
fn trigger_bodies_stay_one_statement() {
    let sql = "CREATE TABLE a (id INTEGER PRIMARY KEY, n INT);\n\
               CREATE TRIGGER a_ins AFTER INSERT ON a BEGIN\n\
                 UPDATE a SET n = CASE WHEN NEW.id > 1 THEN 2 ELSE 1 END WHERE id = NEW.id;\n\
                 INSERT INTO a (n) VALUES (0);\n\
               END;\n\
               INSERT INTO a (id) VALUES (1);\n";
    let statements = statements(sql, Dialect::Sqlite).expect("split");
    assert_eq!(statements.len(), 3, "{statements:?}");
    assert!(statements[1].sql.starts_with("CREATE TRIGGER") && statements[1].sql.ends_with("END"));
    assert_eq!(statements[2].line, 6);
    let a = analyze(
        sql,
        &Options {
            dialect: Dialect::Sqlite,
            server_version: None,
        },
    );
    assert!(!a.has(Kind::OwnTransaction));
    assert_eq!(a.statements, 3);
}

#[test]
fn begin_commit_wrappers_come_off() {
    let sql = "-- Deploy app:users\nBEGIN;\nCREATE TABLE users (id int);\nINSERT INTO users VALUES (1);\nCOMMIT;\n";
    let inner = unwrap_transaction(sql, Dialect::Postgres).expect("wrapped");
    assert_eq!(
        inner,
        "CREATE TABLE users (id int);\nINSERT INTO users VALUES (1);\n"
    );
    assert!(unwrap_transaction(
        "BEGIN; SELECT 1; COMMIT; BEGIN; SELECT 2; COMMIT;",
        Dialect::Postgres
    )
    .is_none());
    assert!(unwrap_transaction("SELECT 1;", Dialect::Postgres).is_none());
    // A script that ends in ROLLBACK undoes its own work: it is not a
    // wrapper to take off (its block runs as a savepoint instead).
    let rolled_back = "BEGIN;\nCREATE TABLE users (id int);\nROLLBACK;\n";
    assert!(unwrap_transaction(rolled_back, Dialect::Postgres).is_none());
}

#[test]
fn settings_that_change_name_resolution_are_kept_in_order() {
    let a = pg("
        ALTER TABLE gadgets DROP COLUMN a;
        SET search_path TO app, public;
        SET lock_timeout = '1s';
        ALTER TABLE gadgets DROP COLUMN b;
        SET LOCAL search_path = \"My App\";
        SELECT set_config('search_path', 'x', true);
        SET ROLE app_owner;
        RESET search_path;
        DELETE FROM \"Odd.Box\" WHERE id > 1;
        UPDATE app.qualified SET x = 1;
        CREATE TABLE made (id int);
    ");
    assert_eq!(a.settings.len(), 5, "{:?}", a.settings);
    assert!(a.settings[0].starts_with("SET search_path TO app"));
    assert_eq!(a.settings[4], "RESET search_path");
    let at = |name: &str| -> Vec<usize> {
        a.settings_at
            .get(&TableName::new(None, name))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    };
    assert_eq!(at("gadgets"), [0, 1]);
    assert_eq!(at("Odd.Box"), [5]);
    assert_eq!(at("made"), [5]);
    assert!(!a
        .settings_at
        .contains_key(&TableName::new(Some("app"), "qualified")));
    assert!(a.certain);
    // Shown so that the text names it exactly.
    assert!(
        tables(&a).contains(&"\"Odd.Box\"".to_string()),
        "{:?}",
        tables(&a)
    );
}

#[test]
fn a_search_path_set_in_a_way_that_cannot_be_replayed_is_uncertain() {
    let a = pg("SELECT set_config('search_path', s, false) FROM conf;\nDELETE FROM t;");
    assert!(!a.certain);
    assert!(details(&a, Kind::Uncertain).contains("search_path"));
}

/// What `--explain` and the engine decide from one statement.
fn decision(a: &Analysis) -> &'static str {
    if !a.certain {
        "whole database"
    } else if a.tables.is_empty() {
        "none"
    } else {
        "tables"
    }
}

/// A realistic sqitch project got a whole-database snapshot for 56 of its
/// changes: GRANT … TO role, ALTER DEFAULT PRIVILEGES and CREATE DATABASE …
/// OWNER could not be read, and every CREATE FUNCTION counted as "may
/// change any table". Each class that cannot change rows of existing tables
/// needs no snapshot, whether sqlparser reads it or the tokenizer
/// classifies it.
#[test]
fn data_free_statements_need_no_whole_database_snapshot() {
    let mut wrong = Vec::new();
    for sql in [
        // GRANT and REVOKE, including default privileges.
        "GRANT SELECT, INSERT ON app.accounts TO app_user",
        "GRANT USAGE ON SCHEMA app TO app_user, app_admin",
        "GRANT app_user TO app_admin WITH ADMIN OPTION",
        "GRANT ALL ON ALL TABLES IN SCHEMA app TO app_admin",
        "GRANT EXECUTE ON FUNCTION app.login(text, text) TO anonymous",
        "REVOKE ALL ON FUNCTION app.login(text, text) FROM PUBLIC",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO app_user",
        "ALTER DEFAULT PRIVILEGES FOR ROLE owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
        // Roles.
        "CREATE ROLE app_user NOLOGIN",
        "CREATE ROLE authenticator LOGIN NOINHERIT PASSWORD 'x' IN ROLE web",
        "CREATE USER api WITH PASSWORD 'secret'",
        "ALTER ROLE app_user SET search_path = app, public",
        "DROP ROLE IF EXISTS old_role",
        "REASSIGN OWNED BY old_role TO app_admin",
        // Comments.
        "COMMENT ON TABLE app.accounts IS 'who may log in'",
        "COMMENT ON FUNCTION app.login(text, text) IS $$logs in$$",
        // Functions and procedures, created, altered, dropped.
        "CREATE FUNCTION app.purge() RETURNS void LANGUAGE sql AS $$ DELETE FROM app.t $$",
        "CREATE OR REPLACE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
         AS $$ BEGIN NEW.updated = now(); RETURN NEW; END $$",
        "CREATE PROCEDURE p() LANGUAGE sql AS $$ DELETE FROM t $$",
        "ALTER FUNCTION app.purge() OWNER TO app_admin",
        "DROP FUNCTION IF EXISTS app.purge()",
        // Triggers and policies.
        "CREATE TRIGGER touch BEFORE UPDATE ON app.accounts FOR EACH ROW EXECUTE FUNCTION app.touch()",
        "CREATE CONSTRAINT TRIGGER chk AFTER INSERT ON t DEFERRABLE FOR EACH ROW EXECUTE PROCEDURE f()",
        "ALTER TRIGGER touch ON app.accounts RENAME TO touched",
        "CREATE POLICY own_rows ON app.accounts FOR ALL TO app_user USING (owner = current_user)",
        "ALTER POLICY own_rows ON app.accounts TO app_user, app_admin",
        "DROP POLICY own_rows ON app.accounts",
        // Types, domains, schemas, extensions, sequences, indexes, views.
        "CREATE TYPE app.mood AS ENUM ('sad', 'ok')",
        "ALTER TYPE app.mood ADD VALUE 'happy'",
        "CREATE DOMAIN app.email AS text CHECK (VALUE ~ '@')",
        "ALTER DOMAIN app.email ADD CONSTRAINT has_dot CHECK (VALUE ~ '[.]')",
        "CREATE SCHEMA IF NOT EXISTS app AUTHORIZATION app_admin",
        "ALTER SCHEMA app OWNER TO app_admin",
        "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public",
        "CREATE EXTENSION postgis",
        "ALTER EXTENSION pgcrypto SET SCHEMA ext",
        "CREATE SEQUENCE app.ids START 100",
        "ALTER SEQUENCE app.ids RESTART WITH 1000",
        "CREATE VIEW app.active AS SELECT * FROM app.accounts WHERE active",
        "CREATE OR REPLACE VIEW app.active AS SELECT * FROM app.accounts",
        "ALTER VIEW app.active OWNER TO app_admin",
        "ALTER INDEX app.accounts_email RENAME TO accounts_mail",
        // CREATE DATABASE, and the other database-level statements.
        "CREATE DATABASE app_test OWNER app_admin",
        "CREATE DATABASE \"App\" WITH OWNER = app_admin TEMPLATE = template0 ENCODING = 'UTF8'",
        "ALTER DATABASE app SET timezone TO 'UTC'",
        // Settings.
        "SET statement_timeout = 0",
        "SET LOCAL search_path = app",
        "RESET ALL",
        "SET client_min_messages TO warning",
        // Maintenance and the rest of the list.
        "ANALYZE app.accounts",
        "VACUUM (ANALYZE) app.accounts",
        "REINDEX TABLE app.accounts",
        "CLUSTER app.accounts USING accounts_pkey",
        "LOCK TABLE app.accounts IN SHARE MODE",
        "SHOW search_path",
        "SECURITY LABEL FOR selinux ON TABLE app.accounts IS 'x'",
        "CREATE AGGREGATE app.total(int) (SFUNC = int4pl, STYPE = int)",
        "CREATE OPERATOR app.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq)",
        "CREATE COLLATION app.nocase (provider = icu, locale = 'und-u-ks-level2')",
        "CREATE TEXT SEARCH CONFIGURATION app.en (COPY = english)",
        "CREATE STATISTICS app.s ON a, b FROM app.accounts",
        "CREATE PUBLICATION pub FOR TABLE app.accounts",
        "CREATE SERVER remote FOREIGN DATA WRAPPER postgres_fdw",
        "CREATE FOREIGN TABLE app.remote_t (id int) SERVER remote",
        "ALTER MATERIALIZED VIEW app.totals OWNER TO app_admin",
        "DROP VIEW IF EXISTS app.active",
        "DROP SEQUENCE app.ids",
        "DROP TRIGGER touch ON app.accounts",
        "DROP INDEX app.accounts_email",
        "DROP TYPE app.mood",
        "DROP EXTENSION IF EXISTS pgcrypto",
        "ALTER ROUTINE app.purge() SET search_path = app",
        "ALTER PROCEDURE p() OWNER TO app_admin",
        "CREATE OR REPLACE TRIGGER touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()",
        "CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t; END $$",
        "CREATE TEMP SEQUENCE s",
        "CREATE RECURSIVE VIEW v (n) AS VALUES (1) UNION ALL SELECT n + 1 FROM v WHERE n < 5",
        "CREATE TRUSTED PROCEDURAL LANGUAGE plx",
        "ALTER DATABASE app OWNER TO app_admin",
        "ALTER USER api WITH PASSWORD 'x'",
        "GRANT SELECT ON app.accounts TO app_user GRANTED BY app_admin",
        // Forms a real sqitch or Supabase-style project uses.
        "CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA extensions",
        "CREATE POLICY own ON app.todos FOR UPDATE USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id)",
        "GRANT ALL ON ALL SEQUENCES IN SCHEMA app TO app_user",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC",
        "GRANT CONNECT ON DATABASE app TO app_user",
        "ALTER TYPE app.mood ADD VALUE IF NOT EXISTS 'great' AFTER 'ok'",
        "COMMENT ON COLUMN app.accounts.owner IS 'the role that owns the row'",
        "ALTER FUNCTION app.login(text, text) SECURITY DEFINER",
        "CREATE TYPE app.pair AS (a int, b int)",
        "SET check_function_bodies = false",
        "CREATE FUNCTION app.one() RETURNS int LANGUAGE sql IMMUTABLE RETURN 1",
        "CREATE OR REPLACE FUNCTION app.two() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 2; END",
        "ALTER DEFAULT PRIVILEGES FOR ROLE owner IN SCHEMA app GRANT EXECUTE ON FUNCTIONS TO app_user",
        "ALTER ROLE app_user WITH LOGIN PASSWORD 'x'",
        "CREATE ROLE web WITH LOGIN PASSWORD 'y' VALID UNTIL 'infinity'",
        "CREATE OR REPLACE VIEW app.mine WITH (security_barrier) AS SELECT * FROM app.accounts",
        "CREATE FUNCTION app.audit() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN INSERT INTO app.log VALUES (NEW.id); RETURN NEW; END $f$",
        "CREATE OR REPLACE PROCEDURE app.archive() LANGUAGE plpgsql AS $$ BEGIN DELETE FROM app.old; END $$",
        // A new table.
        "CREATE TABLE app.accounts (id bigint PRIMARY KEY, owner name DEFAULT current_user)",
        "CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        "CREATE UNLOGGED TABLE scratch (LIKE app.accounts INCLUDING ALL)",
    ] {
        let a = pg(sql);
        let free = a
            .steps
            .iter()
            .all(|s| matches!(s.effect, Effect::DataFree(_) | Effect::Creates(_)));
        if !a.certain || decision(&a) != "none" || !free {
            wrong.push(format!("{sql}: {:?} {:?}", a.findings, a.tables));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Data-free statements that name an existing table keep naming it: the
/// table's definition changes, so a change without a down script still
/// gets a table-level snapshot of it (never the whole database), and one
/// with a down script none.
#[test]
fn data_free_statements_on_a_table_name_only_that_table() {
    for sql in [
        "ALTER TABLE app.accounts ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE app.accounts FORCE ROW LEVEL SECURITY",
        "ALTER TABLE ONLY app.accounts NO FORCE ROW LEVEL SECURITY, OWNER TO app_admin",
        "ALTER TABLE app.accounts OWNER TO \"App Admin\"",
        "CREATE INDEX accounts_email ON app.accounts (email)",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_email ON app.accounts (email)",
    ] {
        let a = pg(sql);
        assert!(a.certain, "{sql}: {:?}", a.findings);
        assert_eq!(tables(&a), ["app.accounts"], "{sql}");
        assert!(!a.has(Kind::Destructive), "{sql}");
        assert!(a.written.is_empty(), "{sql}");
    }
}

/// What can change rows stays protected.
#[test]
fn statements_that_can_change_rows_stay_protected() {
    for (sql, decided, why) in [
        (
            "DO $$ BEGIN PERFORM app.purge(); END $$",
            "whole database",
            "DO block",
        ),
        ("CALL app.archive()", "whole database", "procedure"),
        ("CALL app.archive(1, 'x') ", "whole database", "procedure"),
        ("SELECT app.purge()", "whole database", "app.purge()"),
        (
            "SELECT * FROM app.backfill(10)",
            "whole database",
            "backfill",
        ),
        (
            "ALTER EXTENSION postgis UPDATE TO '3.4.0'",
            "whole database",
            "update script",
        ),
        (
            "CREATE MATERIALIZED VIEW totals AS SELECT app.tally()",
            "whole database",
            "app.tally()",
        ),
        (
            "CREATE EVENT TRIGGER audit ON ddl_command_end EXECUTE FUNCTION f()",
            "whole database",
            "cannot read",
        ),
        ("DROP OWNED BY old_role", "whole database", "cannot read"),
        ("DROP SCHEMA legacy CASCADE", "whole database", "schema"),
        (
            "CREATE TABLE copy AS SELECT app.snapshot_rows()",
            "whole database",
            "snapshot_rows",
        ),
        (
            "ALTER TABLE app.accounts ALTER COLUMN email TYPE text USING app.normalize(email)",
            "whole database",
            "normalize",
        ),
        (
            "ALTER TABLE app.accounts ADD COLUMN token text DEFAULT app.new_token()",
            "whole database",
            "new_token",
        ),
        (
            "ALTER TABLE app.accounts ALTER COLUMN id TYPE bigint",
            "tables",
            "",
        ),
        ("UPDATE app.accounts SET email = lower(email)", "tables", ""),
    ] {
        let a = pg(sql);
        assert_eq!(decision(&a), decided, "{sql}: {:?}", a.findings);
        assert!(
            details(&a, Kind::Uncertain).contains(why),
            "{sql}: {:?}",
            a.findings
        );
    }
    // A column type change rewrites and converts: destructive, snapshotted.
    let a = pg("ALTER TABLE app.accounts ALTER COLUMN id TYPE bigint");
    assert!(a.has(Kind::Destructive) && a.has(Kind::Rewrite));
}

/// A trigger is data-free where it is created, but the change's own DML on
/// its table afterwards runs the trigger's function, which can change any
/// table.
#[test]
fn dml_after_a_trigger_created_in_the_same_change_is_uncertain() {
    let trigger = "CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS \
                   $$ BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END $$;
                   CREATE TRIGGER logged AFTER INSERT ON accounts FOR EACH ROW \
                   EXECUTE FUNCTION log_it();";
    let a = pg(trigger);
    assert!(a.certain, "{:?}", a.findings);
    assert_eq!(decision(&a), "none");

    for dml in [
        "INSERT INTO accounts VALUES (1)",
        "UPDATE public.accounts SET id = 2",
        "DELETE FROM accounts",
        "TRUNCATE accounts",
    ] {
        let a = pg(&format!("{trigger}\n{dml};"));
        assert!(!a.certain, "{dml}");
        assert!(details(&a, Kind::Uncertain).contains("fires the trigger created on it at line"));
    }
    // DML before the trigger exists, or on another table, fires nothing.
    let a = pg(&format!(
        "INSERT INTO accounts VALUES (1);\n{trigger}\nINSERT INTO other VALUES (1);"
    ));
    assert!(a.certain, "{:?}", a.findings);
    assert_eq!(tables(&a), ["accounts", "other"]);
    assert_eq!(a.written.len(), 2);

    // The same on SQLite, whose trigger bodies are inline.
    let sqlite = |sql: &str| {
        analyze(
            sql,
            &Options {
                dialect: Dialect::Sqlite,
                ..Options::default()
            },
        )
    };
    let body = "CREATE TRIGGER logged AFTER INSERT ON accounts BEGIN \
                INSERT INTO audit VALUES (NEW.id); END;";
    let a = sqlite(body);
    assert!(a.certain, "{:?}", a.findings);
    let a = sqlite(&format!("{body}\nINSERT INTO accounts VALUES (1);"));
    assert!(!a.certain);
}

#[test]
fn sqlite_data_free_statements() {
    let sqlite = |sql: &str| {
        analyze(
            sql,
            &Options {
                dialect: Dialect::Sqlite,
                ..Options::default()
            },
        )
    };
    for sql in [
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
        "CREATE VIEW v AS SELECT * FROM t",
        "CREATE TRIGGER tr AFTER UPDATE ON t BEGIN UPDATE t SET v = 'x' WHERE id = NEW.id; END",
        "DROP VIEW IF EXISTS v",
        "DROP TRIGGER tr",
        "ANALYZE",
    ] {
        let a = sqlite(sql);
        assert!(a.certain, "{sql}: {:?}", a.findings);
        assert_eq!(decision(&a), "none", "{sql}");
    }
    let a = sqlite("CREATE INDEX t_v ON t (v)");
    assert_eq!(tables(&a), ["t"]);
    let a = sqlite("SELECT load_extension('x')");
    assert!(!a.certain);
}

/// `--explain` shows each statement with what it does.
#[test]
fn each_statement_has_a_step() {
    let a = pg("GRANT SELECT ON t TO r;
        CREATE TABLE n (id int);
        ALTER TABLE t DROP COLUMN c;
        SELECT app.purge();
        GRANT r TO s;");
    let effects: Vec<String> = a
        .steps
        .iter()
        .map(|s| format!("{}: {}", s.line, s.effect))
        .collect();
    assert_eq!(
        effects,
        [
            "1: changes no rows (grants or revokes)",
            "2: creates n",
            "3: changes t, destroying data",
            "4: uncertain: calls app.purge(), which may change tables the script does not name",
            "5: changes no rows (grants or revokes)",
        ]
    );
}

/// A trigger function that only sets columns of the row in hand changes no
/// other table; anything that reads or writes tables, runs dynamic SQL or
/// calls other code may.
#[test]
fn trigger_bodies_that_touch_only_their_row() {
    for code in [
        "BEGIN NEW.updated = now(); RETURN NEW; END",
        "BEGIN IF (TG_OP = 'UPDATE') THEN NEW.version := OLD.version + 1; END IF; \
         NEW.email := lower(trim(NEW.email)); RETURN NEW; END",
        "BEGIN IF NEW.amount < 0 THEN RAISE EXCEPTION 'negative: %', NEW.amount; END IF; \
         NEW.price := NEW.amount::numeric(10, 2); RETURN NEW; END",
        "BEGIN NEW.search := pg_catalog.to_char(NEW.created, 'YYYY'); RETURN NEW; END",
        "OLD.* IS DISTINCT FROM NEW.*",
    ] {
        assert!(row_local(code), "{code}");
    }
    for code in [
        "BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END",
        "BEGIN UPDATE totals SET n = n + 1; RETURN NEW; END",
        "BEGIN DELETE FROM cache WHERE id = OLD.id; RETURN OLD; END",
        "BEGIN PERFORM app.log(NEW.id); RETURN NEW; END",
        "BEGIN EXECUTE format('DELETE FROM %I', TG_ARGV[0]); RETURN NEW; END",
        "BEGIN NEW.total := app.recompute(NEW.id); RETURN NEW; END",
        "BEGIN NEW.name := app.lower(NEW.name); RETURN NEW; END",
        "BEGIN NEW.n := (SELECT count(*) FROM other); RETURN NEW; END",
        "BEGIN PERFORM set_config('search_path', 'x', true); RETURN NEW; END",
        "BEGIN NEW.x := \"Odd\"(1); RETURN NEW; END",
        "BEGIN NEW.x := 'unterminated; END",
    ] {
        assert!(!row_local(code), "{code}");
    }
}

#[test]
fn gexec_queries_are_analysed_as_the_statements_they_select() {
    let marker = crate::psql::GEXEC_MARKER;
    // Whole statements as literals: what they do, and the comparison
    // literal is not taken for one.
    let a = pg(&format!(
        "{marker}SELECT 'DELETE FROM audit' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'x');"
    ));
    assert!(a.certain, "{:?}", a.findings);
    assert_eq!(tables(&a), ["audit"]);
    // A database made by \gexec cannot run in a transaction.
    let a = pg(&format!(
        "{marker}SELECT 'CREATE DATABASE app' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app');"
    ));
    assert!(a.no_transaction(), "{:?}", a.findings);
    // Built statements cannot be told, but their first words still can.
    let a = pg(&format!(
        "{marker}SELECT 'CREATE DATABASE ' || name FROM wanted;"
    ));
    assert!(!a.certain);
    assert!(a.no_transaction(), "{:?}", a.findings);
    assert!(details(&a, Kind::Uncertain).contains("\\gexec"));
    // From quoted names, what the first words say is all it can do.
    let a = pg(&format!(
        "{marker}SELECT 'CREATE DATABASE ' || quote_ident(name) FROM wanted;"
    ));
    assert!(a.certain, "{:?}", a.findings);
    assert!(a.no_transaction(), "{:?}", a.findings);
    // The statement keeps its marker, for the engine.
    let s = statements(
        &format!("SELECT 1;\n{marker}SELECT 'SELECT 2';"),
        Dialect::Postgres,
    )
    .unwrap();
    assert!(crate::psql::is_gexec(&s[1].sql), "{:?}", s[1]);
    assert!(!crate::psql::is_gexec(&s[0].sql));
}

/// A database or grant made through psql's `\gexec` from quoted names is
/// data-free; a statement spliced from unquoted values is not.
#[test]
fn gexec_statements_built_from_quoted_names_are_data_free() {
    let marker = crate::psql::GEXEC_MARKER;
    for query in [
        "SELECT 'CREATE DATABASE app OWNER app_admin' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app')",
        "SELECT format('CREATE DATABASE %I OWNER %I', 'app', 'app_admin') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app')",
        "SELECT 'CREATE DATABASE ' || quote_ident(name) || ' OWNER ' || quote_ident(owner) FROM wanted",
        "SELECT 'GRANT SELECT ON ' || quote_ident(t) || ' TO app_user' FROM pg_tables WHERE schemaname = 'app'",
    ] {
        let a = pg(&format!("{marker}{query};"));
        assert!(a.certain, "{query}: {:?}", a.findings);
        assert!(a.tables.is_empty(), "{query}");
    }
    for query in [
        "SELECT 'CREATE DATABASE ' || name FROM wanted",
        "SELECT format('GRANT SELECT ON %s TO app_user', t) FROM wanted",
        "SELECT 'GRANT SELECT ON ' || (t) || ' TO app_user' FROM wanted",
        "SELECT 'DELETE FROM ' || quote_ident(t) FROM wanted",
        "SELECT 'CREATE ' || quote_ident(kind) || ' x' FROM wanted",
    ] {
        let a = pg(&format!("{marker}{query};"));
        assert!(!a.certain, "{query}");
    }
}

/// Roles created under a `DO`-block guard, the way most projects make a
/// role idempotent, got a whole-database snapshot: every `DO` block counted
/// as "runs code that can change any table". A block that only runs
/// data-free statements under conditions reading the catalog needs none.
#[test]
fn do_blocks_that_only_create_roles_under_catalog_guards_are_data_free() {
    for sql in [
        "DO $$\nBEGIN\n    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'shop_auditor') THEN\n\
         \x20       CREATE ROLE shop_auditor NOLOGIN;\n    END IF;\nEND\n$$",
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = lower('Web')) THEN \
         CREATE ROLE web NOLOGIN; GRANT web TO api; ELSE RAISE NOTICE 'role % exists', 'web'; END IF; END $$",
        "DO LANGUAGE plpgsql $$ BEGIN CREATE ROLE web; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        "DO $body$ BEGIN IF NOT EXISTS (SELECT FROM information_schema.schemata WHERE schema_name = 'api') \
         THEN CREATE SCHEMA api; COMMENT ON SCHEMA api IS 'x'; END IF; END $body$",
        "DO $$ BEGIN ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO web; END $$",
    ] {
        let a = pg(sql);
        assert_eq!(decision(&a), "none", "{sql}: {:?}", a.findings);
    }
}

/// What a `DO` block can do to rows keeps it uncertain: DML, dynamic SQL,
/// calls, loops over queries, reads of tables outside the catalog, other
/// languages, and statements on tables (not tracked from inside a block).
#[test]
fn do_blocks_that_can_change_rows_stay_uncertain() {
    for sql in [
        "DO $$ BEGIN UPDATE t SET a = 1; END $$",
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'x') THEN EXECUTE 'CREATE ROLE x'; END IF; END $$",
        "DO $$ BEGIN IF EXISTS (SELECT FROM app.flags WHERE on) THEN CREATE ROLE x; END IF; END $$",
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles, app.t) THEN CREATE ROLE x; END IF; END $$",
        "DO $$ BEGIN IF app.ready() THEN CREATE ROLE x; END IF; END $$",
        "DO $$ BEGIN PERFORM app.purge(); END $$",
        "DO $$ DECLARE r record; BEGIN FOR r IN SELECT * FROM t LOOP DELETE FROM t; END LOOP; END $$",
        "DO $$ BEGIN CREATE TABLE t2 AS SELECT * FROM t; END $$",
        "DO $$ BEGIN ALTER TABLE t DROP COLUMN a; END $$",
        "DO LANGUAGE plperl $$ spi_exec_query('DELETE FROM t') $$",
        "DO $$ BEGIN CREATE ROLE x; EXCEPTION WHEN others THEN DELETE FROM t; END $$",
    ] {
        let a = pg(sql);
        assert_eq!(decision(&a), "whole database", "{sql}: {:?}", a.findings);
    }
}
