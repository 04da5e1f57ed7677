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
        (
            "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ DELETE FROM t $$",
            "function",
        ),
        (
            "CREATE PROCEDURE p() LANGUAGE sql AS $$ DELETE FROM t $$",
            "procedure",
        ),
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
        "{marker}SELECT 'CREATE DATABASE ' || quote_ident(name) FROM wanted;"
    ));
    assert!(!a.certain);
    assert!(a.no_transaction(), "{:?}", a.findings);
    assert!(details(&a, Kind::Uncertain).contains("\\gexec"));
    // The statement keeps its marker, for the engine.
    let s = statements(
        &format!("SELECT 1;\n{marker}SELECT 'SELECT 2';"),
        Dialect::Postgres,
    )
    .unwrap();
    assert!(crate::psql::is_gexec(&s[1].sql), "{:?}", s[1]);
    assert!(!crate::psql::is_gexec(&s[0].sql));
}
