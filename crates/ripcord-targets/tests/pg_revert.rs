//! `revert_tables` against a real PostgreSQL server: a table-level safety
//! snapshot is taken, a migration runs, and the revert puts schema and rows
//! back inside a transaction the test owns.

use std::sync::{Arc, Mutex};

use ripcord_core::config::OnConflict;
use ripcord_core::revert::TableRevert;
use ripcord_repo::backend::LocalBackend;
use ripcord_repo::index::Index;
use ripcord_repo::manifest::PgContent;
use ripcord_repo::saver::{Saver, SaverOptions};
use ripcord_repo::Repository;
use ripcord_targets::postgres::{revert_tables, snapshot, PgSnapshotOptions, RevertTable};
use ripcord_targets::{Progress, Quiet};
use ripcord_testing::pg;

struct Fixture {
    _dir: tempfile::TempDir,
    repo: Repository,
    index: Index,
    content: PgContent,
    db: String,
}

#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);
impl Progress for Warnings {
    fn warn(&self, message: String) {
        self.0.lock().unwrap().push(message);
    }
}

/// A database built by `setup`, and a safety snapshot of `tables`.
fn fixture(name: &str, setup: &str, tables: &[&str]) -> Fixture {
    let cluster = pg::shared();
    let db = cluster.create_database(name).unwrap();
    cluster.psql(&db, setup);
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(
        Arc::new(LocalBackend::new(dir.path().join("repo"))),
        Some("test passphrase"),
    )
    .unwrap();
    let saver = Saver::new(
        &repo,
        Arc::new(repo.load_index().unwrap()),
        SaverOptions::default(),
    );
    let opts = PgSnapshotOptions {
        tables: Some(tables.iter().map(|t| t.to_string()).collect()),
        ..PgSnapshotOptions::default()
    };
    let content = snapshot(&saver, &cluster.url(&db), &opts, &Quiet).unwrap();
    saver.finish().unwrap();
    let index = repo.load_index().unwrap();
    Fixture {
        _dir: dir,
        repo,
        index,
        content,
        db,
    }
}

impl Fixture {
    fn sql(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        pg::shared().psql(&self.db, sql)
    }

    fn one(&self, sql: &str) -> String {
        self.sql(sql)[0][0].clone().unwrap_or_default()
    }

    /// Runs the revert in a transaction, then COMMIT (or ROLLBACK), on a
    /// session whose search_path is not the default; checks it is kept.
    fn revert(
        &self,
        tables: &[(&str, OnConflict)],
        commit: bool,
        progress: &dyn Progress,
    ) -> Vec<TableRevert> {
        let mut client = pg::shared().client(&self.db);
        client
            .batch_execute("SET search_path = public, pg_temp; SET client_min_messages = notice")
            .unwrap();
        let wanted: Vec<RevertTable> = tables
            .iter()
            .map(|(name, policy)| RevertTable {
                table: self
                    .content
                    .tables
                    .iter()
                    .find(|t| t.name == *name)
                    .unwrap(),
                policy: *policy,
            })
            .collect();
        client.batch_execute("BEGIN").unwrap();
        let report = revert_tables(
            &self.repo,
            &self.index,
            &self.content,
            &mut client,
            &wanted,
            "0002_drop_email",
            progress,
        )
        .unwrap_or_else(|e| panic!("revert failed: {e}"));
        let setting = |c: &mut postgres::Client, name: &str| -> String {
            c.query_one("SELECT current_setting($1)", &[&name])
                .unwrap()
                .get(0)
        };
        assert_eq!(setting(&mut client, "search_path"), "public, pg_temp");
        assert_eq!(setting(&mut client, "client_min_messages"), "notice");
        assert_eq!(setting(&mut client, "session_replication_role"), "origin");
        client
            .batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })
            .unwrap();
        assert_eq!(setting(&mut client, "search_path"), "public, pg_temp");
        assert_eq!(setting(&mut client, "client_min_messages"), "notice");
        assert_eq!(setting(&mut client, "session_replication_role"), "origin");
        assert_eq!(
            self.one("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ripcord_stash%'"),
            "0"
        );
        report
    }
}

const USERS: &str = "
    CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE);
    CREATE INDEX users_name ON users (name);
    INSERT INTO users (name, email) SELECT 'user' || i, 'u' || i || '@example.com' FROM generate_series(1, 100) i;
";

/// The migration: drop a column with data, then the application writes.
const MIGRATE: &str = "
    ALTER TABLE users DROP COLUMN email;
    INSERT INTO users (name) VALUES ('late');
";

fn emails_back(f: &Fixture) {
    assert_eq!(
        f.one(
            "SELECT count(*) FROM users WHERE id <= 100 AND email = 'u' || id || '@example.com'
               AND name = 'user' || id"
        ),
        "100"
    );
}

#[test]
fn drop_column_reverted_keeping_new_rows() {
    let f = fixture("revert_keep_new", USERS, &["users"]);
    f.sql(MIGRATE);
    let report = f.revert(&[("users", OnConflict::KeepNew)], true, &Quiet);
    assert_eq!(
        report,
        vec![TableRevert {
            table: "public.users".into(),
            policy: Some(OnConflict::KeepNew),
            restored_rows: 100,
            kept_rows: 1,
            ..TableRevert::default()
        }]
    );
    emails_back(&f);
    assert_eq!(f.one("SELECT count(*) FROM users"), "101");
    assert_eq!(
        f.sql("SELECT id::text, email FROM users WHERE name = 'late'"),
        vec![vec![Some("101".into()), None]]
    );
    // Indexes and constraints are back; the sequence did not go back to 100.
    assert_eq!(
        f.one("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'users'"),
        "users_email_key,users_name,users_pkey"
    );
    assert_eq!(
        f.one("INSERT INTO users (name) VALUES ('next') RETURNING id"),
        "102"
    );
}

#[test]
fn snapshot_policy_discards_and_counts() {
    let f = fixture("revert_snapshot", USERS, &["users"]);
    f.sql(MIGRATE);
    let report = f.revert(&[("users", OnConflict::Snapshot)], true, &Quiet);
    assert_eq!(report[0].discarded_rows, 1);
    assert_eq!(report[0].kept_rows, 0);
    assert_eq!(report[0].policy, Some(OnConflict::Snapshot));
    emails_back(&f);
    assert_eq!(f.one("SELECT count(*) FROM users"), "100");
    // The discarded row's id is not handed out again.
    assert_eq!(
        f.one("INSERT INTO users (name) VALUES ('next') RETURNING id"),
        "102"
    );
}

#[test]
fn review_policy_moves_new_rows_to_review() {
    let f = fixture("revert_review", USERS, &["users"]);
    f.sql(MIGRATE);
    let report = f.revert(&[("users", OnConflict::Review)], true, &Quiet);
    assert_eq!(report[0].review_rows, 1);
    assert_eq!(report[0].policy, Some(OnConflict::Review));
    emails_back(&f);
    assert_eq!(f.one("SELECT count(*) FROM users"), "100");
    assert_eq!(
        f.sql("SELECT change, table_name, row_data->>'name', row_data->>'id' FROM ripcord.review"),
        vec![vec![
            Some("0002_drop_email".into()),
            Some("public.users".into()),
            Some("late".into()),
            Some("101".into())
        ]]
    );
}

#[test]
fn table_without_primary_key_goes_to_review_under_keep_new() {
    let f = fixture(
        "revert_no_pk",
        "CREATE TABLE events (kind text, n int, note text);
         INSERT INTO events SELECT 'k' || (i % 3), i, 'note' || i FROM generate_series(1, 10) i;",
        &["events"],
    );
    // A duplicate of an old row is new too: rows are compared as a multiset.
    f.sql(
        "ALTER TABLE events DROP COLUMN note;
         INSERT INTO events VALUES ('k1', 1), ('new', 11);",
    );
    let report = f.revert(&[("events", OnConflict::KeepNew)], true, &Quiet);
    assert_eq!(report[0].policy, Some(OnConflict::Review));
    assert_eq!(report[0].review_rows, 2);
    assert_eq!(report[0].kept_rows, 0);
    assert_eq!(
        f.one("SELECT count(*) FROM events WHERE note = 'note' || n"),
        "10"
    );
    assert_eq!(
        f.one("SELECT string_agg(row_data->>'kind', ',' ORDER BY row_data->>'kind') FROM ripcord.review WHERE table_name = 'public.events'"),
        "k1,new"
    );
}

#[test]
fn a_log_table_with_json_and_no_key_reverts() {
    let f = fixture(
        "revert_json_log",
        "CREATE TABLE log (at int, payload json, spot point);
         INSERT INTO log SELECT i, json_build_object('i', i), point(i, i) FROM generate_series(1, 5) i;",
        &["log"],
    );
    f.sql("DELETE FROM log WHERE at > 3; INSERT INTO log VALUES (9, '{\"late\": true}', point(9, 9));");
    let report = f.revert(&[("log", OnConflict::KeepNew)], true, &Quiet);
    assert_eq!(report[0].policy, Some(OnConflict::Review));
    assert_eq!(report[0].review_rows, 1);
    assert_eq!(f.one("SELECT count(*) FROM log"), "5");
    assert_eq!(
        f.one("SELECT row_data->>'at' FROM ripcord.review WHERE table_name = 'public.log'"),
        "9"
    );
}

#[test]
fn rows_changed_since_are_counted_on_json_columns_too() {
    let f = fixture(
        "revert_json_keyed",
        "CREATE TABLE docs (id int PRIMARY KEY, body json);
         INSERT INTO docs SELECT i, json_build_object('v', i) FROM generate_series(1, 5) i;",
        &["docs"],
    );
    f.sql("UPDATE docs SET body = '{\"v\": 0}' WHERE id = 2");
    let report = f.revert(&[("docs", OnConflict::KeepNew)], true, &Quiet);
    assert_eq!(report[0].changed_rows, 1);
    assert_eq!(f.one("SELECT body->>'v' FROM docs WHERE id = 2"), "2");
}

#[test]
fn dropped_table_is_recreated() {
    let f = fixture("revert_dropped", USERS, &["users"]);
    f.sql("DROP TABLE users");
    let report = f.revert(&[("users", OnConflict::KeepNew)], true, &Quiet);
    assert_eq!(
        report,
        vec![TableRevert {
            table: "public.users".into(),
            policy: Some(OnConflict::KeepNew),
            restored_rows: 100,
            recreated: true,
            ..TableRevert::default()
        }]
    );
    emails_back(&f);
    assert_eq!(
        f.one("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'users'"),
        "users_email_key,users_name,users_pkey"
    );
    assert_eq!(
        f.one("INSERT INTO users (name) VALUES ('next') RETURNING id"),
        "101"
    );
}

#[test]
fn what_drop_cascade_took_comes_back_with_the_table() {
    let f = fixture(
        "revert_cascade",
        &format!(
            "{USERS}
             CREATE SCHEMA shop;
             CREATE TABLE shop.orders (id serial PRIMARY KEY, user_id int REFERENCES users (id));
             INSERT INTO shop.orders (user_id) VALUES (1), (2);
             CREATE VIEW named AS SELECT id, name FROM users;
             CREATE VIEW shop.busy AS SELECT n.name, count(*) AS orders
                 FROM named n JOIN shop.orders o ON o.user_id = n.id GROUP BY n.name;"
        ),
        &["users"],
    );
    let taken: Vec<(&str, &str)> = f
        .content
        .dependents
        .iter()
        .filter(|d| d.kind == "foreign-key" || d.kind == "view")
        .map(|d| (d.kind.as_str(), d.relation.as_str()))
        .collect();
    assert_eq!(
        taken,
        [
            ("foreign-key", "shop.orders"),
            ("view", "public.named"),
            ("view", "shop.busy")
        ],
        "{:?}",
        f.content.dependents
    );
    f.sql("DROP TABLE users CASCADE");
    assert_eq!(
        f.one("SELECT count(*) FROM pg_views WHERE viewname IN ('named', 'busy')"),
        "0"
    );
    let report = f.revert(&[("users", OnConflict::KeepNew)], true, &Quiet);
    assert!(report[0].recreated);
    // The key is back and enforced, and both views read the restored table.
    assert_eq!(
        f.one("SELECT convalidated::text FROM pg_constraint WHERE conname = 'orders_user_id_fkey'"),
        "true"
    );
    let mut client = pg::shared().client(&f.db);
    assert!(client
        .batch_execute("INSERT INTO shop.orders (user_id) VALUES (999)")
        .is_err());
    assert_eq!(f.one("SELECT count(*) FROM named"), "100");
    assert_eq!(f.one("SELECT sum(orders)::text FROM shop.busy"), "2");
}

#[test]
fn foreign_keys_and_views_on_the_table_survive() {
    let f = fixture(
        "revert_fk",
        &format!(
            "{USERS}
             CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users (id));
             INSERT INTO orders (user_id) SELECT i FROM generate_series(1, 50) i;
             CREATE VIEW user_names AS SELECT id, name FROM users WHERE id > 10;"
        ),
        &["users"],
    );
    f.sql(MIGRATE);
    let progress = Warnings::default();
    let report = f.revert(&[("users", OnConflict::KeepNew)], true, &progress);
    assert_eq!(report[0].kept_rows, 1);
    assert!(progress.0.lock().unwrap().is_empty());
    assert_eq!(
        f.sql(
            "SELECT conname::text, convalidated::text, confrelid::regclass::text FROM pg_constraint
             WHERE conrelid = 'orders'::regclass AND contype = 'f'"
        ),
        vec![vec![
            Some("orders_user_id_fkey".into()),
            Some("true".into()),
            Some("users".into())
        ]]
    );
    assert_eq!(f.one("SELECT count(*) FROM user_names"), "91");
    // The key is enforced against the new table.
    let err = pg::shared()
        .client(&f.db)
        .batch_execute("INSERT INTO orders (user_id) VALUES (5000)")
        .unwrap_err();
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(message.contains("foreign key"), "{message}");
}

#[test]
fn a_foreign_key_that_no_longer_holds_comes_back_not_valid() {
    let f = fixture(
        "revert_fk_broken",
        &format!(
            "{USERS}
             CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users (id));"
        ),
        &["users"],
    );
    // An order for the user added after the change, whom the snapshot lacks.
    f.sql(&format!(
        "{MIGRATE} INSERT INTO orders (user_id) SELECT id FROM users WHERE name = 'late';"
    ));
    let progress = Warnings::default();
    let report = f.revert(&[("users", OnConflict::Snapshot)], true, &progress);
    assert_eq!(report[0].discarded_rows, 1);
    assert_eq!(
        f.one("SELECT convalidated::text FROM pg_constraint WHERE conname = 'orders_user_id_fkey'"),
        "false"
    );
    let warnings = progress.0.lock().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("orders_user_id_fkey"), "{warnings:?}");
}

#[test]
fn rollback_leaves_the_post_change_state() {
    let f = fixture("revert_rollback", USERS, &["users"]);
    f.sql(MIGRATE);
    let before = f.one("SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM users u");
    let report = f.revert(&[("users", OnConflict::Review)], false, &Quiet);
    assert_eq!(report[0].review_rows, 1);
    assert_eq!(
        f.one("SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM users u"),
        before
    );
    assert_eq!(
        f.one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email'"),
        "0"
    );
    assert_eq!(f.one("SELECT to_regclass('ripcord.review') IS NULL"), "t");
    assert_eq!(
        f.one("INSERT INTO users (name) VALUES ('next') RETURNING id"),
        "102"
    );
}

#[test]
fn several_tables_with_identity_and_a_foreign_key_between_them() {
    let f = fixture(
        "revert_two",
        &format!(
            "{USERS}
             CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                  user_id int REFERENCES users (id), total numeric(10, 2));
             INSERT INTO orders (user_id, total) SELECT i, i * 1.5 FROM generate_series(1, 20) i;"
        ),
        &["users", "orders"],
    );
    f.sql(&format!(
        "{MIGRATE}
         ALTER TABLE orders ALTER COLUMN total TYPE bigint;
         INSERT INTO orders (user_id, total) SELECT id, 7 FROM users WHERE name = 'late';"
    ));
    let report = f.revert(
        &[
            ("orders", OnConflict::KeepNew),
            ("users", OnConflict::KeepNew),
        ],
        true,
        &Quiet,
    );
    assert_eq!(report[0].kept_rows, 1);
    assert_eq!(report[1].kept_rows, 1);
    emails_back(&f);
    assert_eq!(
        f.one("SELECT count(*) FROM orders WHERE total = id * 1.5"),
        "20"
    );
    assert_eq!(
        f.one("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'total'"),
        "numeric(10,2)"
    );
    assert_eq!(
        f.one("SELECT count(*) FROM pg_constraint WHERE conname = 'orders_user_id_fkey' AND convalidated"),
        "1"
    );
    assert_eq!(
        f.one("INSERT INTO orders (user_id) VALUES (1) RETURNING id"),
        "22"
    );
}

/// 1M rows; run with `--ignored --nocapture` to see the time.
#[test]
#[ignore]
fn million_rows_timing() {
    let f = fixture(
        "revert_million",
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text);
         INSERT INTO users (name, email) SELECT 'user' || i, 'u' || i || '@example.com' FROM generate_series(1, 1000000) i;",
        &["users"],
    );
    f.sql(MIGRATE);
    let start = std::time::Instant::now();
    let report = f.revert(&[("users", OnConflict::KeepNew)], true, &Quiet);
    eprintln!("revert of 1M rows: {:.2}s", start.elapsed().as_secs_f64());
    assert_eq!(report[0].restored_rows, 1_000_000);
    assert_eq!(report[0].kept_rows, 1);
}

#[test]
fn new_rows_lacking_a_required_column_go_to_review_under_keep_new() {
    let f = fixture(
        "revert_not_null",
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL);
         INSERT INTO users (name, email) SELECT 'user' || i, 'u' || i || '@example.com' FROM generate_series(1, 100) i;",
        &["users"],
    );
    // The new row has no email, which the snapshot's table requires.
    f.sql(MIGRATE);
    let report = f.revert(&[("users", OnConflict::KeepNew)], true, &Quiet);
    assert_eq!(report[0].policy, Some(OnConflict::Review));
    assert_eq!((report[0].kept_rows, report[0].review_rows), (0, 1));
    emails_back(&f);
    assert_eq!(f.one("SELECT count(*) FROM users"), "100");
    assert_eq!(
        f.one("SELECT row_data ->> 'name' FROM ripcord.review"),
        "late"
    );
}

#[test]
fn rows_changed_since_are_counted_and_reviewed() {
    for (policy, review) in [(OnConflict::KeepNew, 0), (OnConflict::Review, 2)] {
        let f = fixture("revert_changed", USERS, &["users"]);
        f.sql(MIGRATE);
        f.sql("UPDATE users SET name = 'renamed' WHERE id IN (3, 4)");
        let report = f.revert(&[("users", policy)], true, &Quiet);
        assert_eq!(report[0].changed_rows, 2, "{policy:?}");
        // The snapshot's values are back.
        assert_eq!(f.one("SELECT name FROM users WHERE id = 3"), "user3");
        if review > 0 {
            assert_eq!(
                f.one("SELECT count(*) FROM ripcord.review WHERE row_data ->> 'name' = 'renamed'"),
                review.to_string()
            );
        }
    }
}

#[test]
fn a_new_row_the_snapshot_rejects_fails_keep_new_and_changes_nothing() {
    let f = fixture(
        "revert_unique",
        "CREATE TABLE users (id serial PRIMARY KEY, name text UNIQUE, email text);
         INSERT INTO users (name, email) VALUES ('ann', 'a@x'), ('bob', 'b@x');",
        &["users"],
    );
    // The change drops the unique constraint; a duplicate name follows.
    f.sql(
        "ALTER TABLE users DROP CONSTRAINT users_name_key; ALTER TABLE users DROP COLUMN email;
           INSERT INTO users (name) VALUES ('ann');",
    );
    let mut client = pg::shared().client(&f.db);
    client.batch_execute("BEGIN").unwrap();
    let err = revert_tables(
        &f.repo,
        &f.index,
        &f.content,
        &mut client,
        &[RevertTable {
            table: &f.content.tables[0],
            policy: OnConflict::KeepNew,
        }],
        "0002_drop_email",
        &Quiet,
    )
    .unwrap_err();
    client.batch_execute("ROLLBACK").unwrap();
    assert!(err.to_string().contains("keeping rows"), "{err}");
    assert_eq!(f.one("SELECT count(*) FROM users WHERE name = 'ann'"), "2");

    let report = f.revert(&[("users", OnConflict::Review)], true, &Quiet);
    assert_eq!((report[0].kept_rows, report[0].review_rows), (0, 1));
    assert_eq!(f.one("SELECT count(*) FROM users"), "2");
}

#[test]
fn grants_and_comments_come_back() {
    let f = fixture(
        "revert_acl",
        &format!(
            "{USERS}
             DO $$ BEGIN CREATE ROLE ripcord_test_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             GRANT SELECT ON users TO ripcord_test_reader;
             COMMENT ON COLUMN users.email IS 'where to write';"
        ),
        &["users"],
    );
    f.sql(MIGRATE);
    f.revert(&[("users", OnConflict::KeepNew)], true, &Quiet);
    assert_eq!(
        f.one("SELECT has_table_privilege('ripcord_test_reader', 'users', 'SELECT')::text"),
        "true"
    );
    assert_eq!(
        f.one("SELECT col_description('users'::regclass, 3)"),
        "where to write"
    );
}

#[test]
fn refuses_to_run_outside_a_transaction() {
    let f = fixture("revert_autocommit", USERS, &["users"]);
    f.sql(MIGRATE);
    let mut client = pg::shared().client(&f.db);
    let err = revert_tables(
        &f.repo,
        &f.index,
        &f.content,
        &mut client,
        &[RevertTable {
            table: &f.content.tables[0],
            policy: OnConflict::KeepNew,
        }],
        "0002_drop_email",
        &Quiet,
    )
    .unwrap_err();
    assert!(err.to_string().contains("BEGIN"), "{err}");
    assert_eq!(f.one("SELECT count(*) FROM users"), "101");
}

#[test]
fn the_tables_own_foreign_key_comes_back_not_valid_when_parents_are_gone() {
    let f = fixture(
        "revert_own_fk",
        &format!(
            "{USERS}
             CREATE TABLE orders (id serial PRIMARY KEY, note text,
                                  user_id int REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED);
             INSERT INTO orders (user_id, note) SELECT i, 'n' || i FROM generate_series(1, 10) i;"
        ),
        &["orders"],
    );
    f.sql(
        "ALTER TABLE orders DROP COLUMN note;
         DELETE FROM orders WHERE user_id = 5; DELETE FROM users WHERE id = 5;",
    );
    let progress = Warnings::default();
    let report = f.revert(&[("orders", OnConflict::Snapshot)], true, &progress);
    assert_eq!(report[0].restored_rows, 10);
    assert_eq!(report[0].discarded_rows, 0);
    assert_eq!(
        f.one("SELECT count(*) FROM orders WHERE note = 'n' || id"),
        "10"
    );
    assert_eq!(
        f.one("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'orders_user_id_fkey'"),
        "FOREIGN KEY (user_id) REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED NOT VALID"
    );
    assert_eq!(progress.0.lock().unwrap().len(), 1);
}

#[test]
fn a_materialized_view_on_the_table_stops_the_revert_clearly() {
    let f = fixture(
        "revert_matview",
        &format!("{USERS} CREATE MATERIALIZED VIEW user_count AS SELECT count(*) FROM users;"),
        &["users"],
    );
    f.sql(MIGRATE);
    let mut client = pg::shared().client(&f.db);
    client.batch_execute("BEGIN").unwrap();
    let err = revert_tables(
        &f.repo,
        &f.index,
        &f.content,
        &mut client,
        &[RevertTable {
            table: &f.content.tables[0],
            policy: OnConflict::KeepNew,
        }],
        "0002_drop_email",
        &Quiet,
    )
    .unwrap_err();
    client.batch_execute("ROLLBACK").unwrap();
    assert!(
        err.to_string()
            .contains("materialized view public.user_count"),
        "{err}"
    );
    assert_eq!(f.one("SELECT count(*) FROM users"), "101");
}
