//! `sqlite_revert::revert_tables` on real SQLite files and a real repository.

mod support;

use std::path::Path;

use ripcord_core::config::OnConflict;
use ripcord_core::revert::TableRevert;
use ripcord_targets::sqlite_revert::revert_tables;
use ripcord_targets::Quiet;
use rusqlite::Connection;
use support::sqlite_fixture::{Fixture, Safety};

impl Fixture {
    fn new(schema: &str) -> Fixture {
        Fixture::with(schema, open)
    }

    /// Reverts `tables` in one transaction, committed when `commit`.
    fn revert(
        &self,
        safety: &Safety,
        conn: &Connection,
        tables: &[(&str, OnConflict)],
        commit: bool,
    ) -> Vec<TableRevert> {
        conn.execute_batch("BEGIN").unwrap();
        let out = self
            .try_revert(safety, conn, tables, "0002_drop_email")
            .unwrap();
        conn.execute_batch(if commit { "COMMIT" } else { "ROLLBACK" })
            .unwrap();
        out
    }
}

/// Opens the database the way an application does, in WAL mode.
fn open(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn
}

const USERS: &str = "
    CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, avatar BLOB);
    CREATE INDEX users_name ON users(name);
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
    INSERT INTO users SELECT i, 'user' || i, 'user' || i || '@example.com', NULL FROM n;
    CREATE VIEW user_names AS SELECT id, name FROM users;
";

/// Drops `email` with its data, then writes a new row (id 201) and changes
/// an old one, the way the application would after the migration.
fn drop_email_and_write(conn: &Connection) {
    conn.execute_batch(
        "ALTER TABLE users DROP COLUMN email;
         INSERT INTO users (id, name, avatar) VALUES (201, 'newcomer', x'00ff');
         UPDATE users SET name = 'renamed' WHERE id = 1;",
    )
    .unwrap();
}

fn emails(conn: &Connection) -> Vec<(i64, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT id, email FROM users ORDER BY id")
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn drop_column_is_undone_with_its_data_and_new_rows_are_kept() {
    let fx = Fixture::new(USERS);
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    drop_email_and_write(&conn);

    let report = fx.revert(&safety, &conn, &[("users", OnConflict::KeepNew)], true);
    assert_eq!(
        report,
        vec![TableRevert {
            table: "users".into(),
            policy: Some(OnConflict::KeepNew),
            restored_rows: 200,
            kept_rows: 1,
            // Row 1 was renamed since: counted, and put back.
            changed_rows: 1,
            ..TableRevert::default()
        }]
    );
    let got = emails(&conn);
    assert_eq!(got.len(), 201);
    for (id, email) in &got[..200] {
        assert_eq!(
            email.as_deref(),
            Some(format!("user{id}@example.com").as_str())
        );
    }
    // The new row is kept; the column it never had is NULL.
    assert_eq!(got[200], (201, None));
    let (name, avatar): (String, Vec<u8>) = conn
        .query_row("SELECT name, avatar FROM users WHERE id = 201", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (name.as_str(), avatar.as_slice()),
        ("newcomer", &[0u8, 255][..])
    );
    // A change to an old row is the snapshot's again.
    assert_eq!(
        count(&conn, "SELECT count(*) FROM users WHERE name = 'renamed'"),
        0
    );
    // The snapshot's index is back and used.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'users_name'"
        ),
        1
    );
    // The view on the table survived the drop and reads the restored table.
    assert_eq!(count(&conn, "SELECT count(*) FROM user_names"), 201);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sqlite_temp_master WHERE name LIKE 'ripcord_stash_%'"
        ),
        0
    );
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn snapshot_policy_discards_new_rows_and_counts_them() {
    let fx = Fixture::new(USERS);
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    drop_email_and_write(&conn);
    conn.execute_batch("INSERT INTO users (id, name) VALUES (202, 'second')")
        .unwrap();

    let report = fx.revert(&safety, &conn, &[("users", OnConflict::Snapshot)], true);
    assert_eq!(report[0].policy, Some(OnConflict::Snapshot));
    assert_eq!(report[0].restored_rows, 200);
    assert_eq!(report[0].discarded_rows, 2);
    assert_eq!(report[0].kept_rows + report[0].review_rows, 0);
    assert_eq!(count(&conn, "SELECT count(*) FROM users"), 200);
    assert_eq!(count(&conn, "SELECT count(*) FROM users WHERE id > 200"), 0);
    assert_eq!(emails(&conn)[0].1.as_deref(), Some("user1@example.com"));
}

#[test]
fn review_policy_moves_new_rows_to_the_review_table_as_json() {
    let fx = Fixture::new(USERS);
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    drop_email_and_write(&conn);

    let report = fx.revert(&safety, &conn, &[("users", OnConflict::Review)], true);
    assert_eq!(report[0].policy, Some(OnConflict::Review));
    assert_eq!(report[0].review_rows, 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM users"), 200);

    let (change, table, data, reason, at): (String, String, String, String, String) = conn
        .query_row(
            "SELECT change, table_name, row_data, reason, at FROM ripcord_review",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(change, "0002_drop_email");
    assert_eq!(table, "users");
    assert!(!reason.is_empty());
    assert!(at.ends_with('Z'), "{at}");
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        data,
        serde_json::json!({"id": 201, "name": "newcomer", "avatar": {"$blob": "00FF"}})
    );
}

#[test]
fn table_without_primary_key_sends_new_rows_to_review_under_keep_new() {
    let fx = Fixture::new(
        "CREATE TABLE log (msg TEXT, n INTEGER);
         INSERT INTO log VALUES ('a', 1), ('a', 1), ('b', 2);",
    );
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    // One more copy of a row the snapshot has twice, one new row, one deleted.
    conn.execute_batch(
        "ALTER TABLE log ADD COLUMN extra TEXT;
         INSERT INTO log VALUES ('a', 1, 'x'), ('c', 3, NULL);
         DELETE FROM log WHERE msg = 'b';",
    )
    .unwrap();

    let report = fx.revert(&safety, &conn, &[("log", OnConflict::KeepNew)], true);
    assert_eq!(report[0].policy, Some(OnConflict::Review));
    assert_eq!(report[0].restored_rows, 3);
    assert_eq!(report[0].kept_rows, 0);
    // Multiset difference: the third 'a' and the 'c' are new.
    assert_eq!(report[0].review_rows, 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM log"), 3);
    let mut stmt = conn
        .prepare("SELECT row_data FROM ripcord_review ORDER BY id")
        .unwrap();
    let rows: Vec<serde_json::Value> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|s| serde_json::from_str(&s.unwrap()).unwrap())
        .collect();
    let mut msgs: Vec<String> = rows
        .iter()
        .map(|v| v["msg"].as_str().unwrap().to_string())
        .collect();
    msgs.sort();
    assert_eq!(msgs, ["a", "c"]);
}

#[test]
fn dropped_table_is_recreated_with_its_index_and_trigger() {
    let fx = Fixture::new(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, qty INTEGER);
         CREATE INDEX items_qty ON items(qty);
         CREATE TABLE audit (item INTEGER, what TEXT);
         CREATE TRIGGER items_audit AFTER INSERT ON items BEGIN
             INSERT INTO audit VALUES (new.id, 'insert');
         END;
         INSERT INTO items VALUES (1, 'a', 10), (2, 'b', 20);",
    );
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    conn.execute_batch("DROP TABLE items").unwrap();

    let report = fx.revert(&safety, &conn, &[("items", OnConflict::KeepNew)], true);
    assert_eq!(
        report,
        vec![TableRevert {
            table: "items".into(),
            restored_rows: 2,
            recreated: true,
            ..TableRevert::default()
        }]
    );
    assert_eq!(count(&conn, "SELECT sum(qty) FROM items"), 30);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE name IN ('items_qty', 'items_audit')"
        ),
        2
    );
    // Loading the rows did not fire the trigger; a new insert does.
    assert_eq!(count(&conn, "SELECT count(*) FROM audit"), 2);
    conn.execute_batch("INSERT INTO items VALUES (3, 'c', 5)")
        .unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM audit"), 3);
    // The UNIQUE constraint came back with the CREATE TABLE.
    assert!(conn
        .execute_batch("INSERT INTO items VALUES (4, 'a', 1)")
        .is_err());
}

#[test]
fn rollback_leaves_the_state_after_the_change() {
    let fx = Fixture::new(USERS);
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    drop_email_and_write(&conn);

    let report = fx.revert(&safety, &conn, &[("users", OnConflict::Snapshot)], false);
    assert_eq!(report[0].discarded_rows, 1);
    // Still without `email`, still with the new row and the changed one.
    assert!(conn.prepare("SELECT email FROM users").is_err());
    assert_eq!(count(&conn, "SELECT count(*) FROM users"), 201);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM users WHERE name = 'renamed'"),
        1
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM sqlite_temp_master"), 0);
    // Another connection sees the same.
    let other = open(&fx.db);
    assert_eq!(count(&other, "SELECT count(*) FROM users"), 201);
}

#[test]
fn autoincrement_counter_is_not_moved_back() {
    let fx = Fixture::new(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);
         INSERT INTO jobs (what) VALUES ('a'), ('b'), ('c');",
    );
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    // Ids 4 and 5 are handed out, then gone again.
    conn.execute_batch(
        "INSERT INTO jobs (what) VALUES ('d'), ('e');
         DELETE FROM jobs WHERE id > 3;",
    )
    .unwrap();

    fx.revert(&safety, &conn, &[("jobs", OnConflict::Snapshot)], true);
    assert_eq!(
        count(&conn, "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"),
        5
    );
    conn.execute_batch("INSERT INTO jobs (what) VALUES ('f')")
        .unwrap();
    assert_eq!(count(&conn, "SELECT max(id) FROM jobs"), 6);
}

#[test]
fn a_view_on_the_table_works_after_the_revert() {
    let fx = Fixture::new(USERS);
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    drop_email_and_write(&conn);
    // A view made after the change, naming the table, survives too.
    conn.execute_batch("CREATE VIEW newest AS SELECT max(id) AS id FROM users")
        .unwrap();

    fx.revert(&safety, &conn, &[("users", OnConflict::KeepNew)], true);
    assert_eq!(count(&conn, "SELECT count(*) FROM user_names"), 201);
    assert_eq!(count(&conn, "SELECT id FROM newest"), 201);
    let name: String = conn
        .query_row("SELECT name FROM user_names WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "user1");
}

#[test]
fn foreign_keys_to_the_table_survive_the_drop() {
    let fx = Fixture::new(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id));
         INSERT INTO users VALUES (1, 'a', 'a@x'), (2, 'b', 'b@x');
         INSERT INTO orders VALUES (10, 1), (11, 2);",
    );
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn.execute_batch(
        "ALTER TABLE users DROP COLUMN email;
         INSERT INTO users VALUES (3, 'c');
         INSERT INTO orders VALUES (12, 3);",
    )
    .unwrap();

    let report = fx.revert(&safety, &conn, &[("users", OnConflict::KeepNew)], true);
    assert_eq!(report[0].kept_rows, 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM orders"), 3);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM pragma_foreign_key_check"),
        0
    );

    // Discarding user 3 would orphan order 12: the foreign-key check before
    // COMMIT fails the revert, naming the rows; ROLLBACK is clean.
    conn.execute_batch("ALTER TABLE users DROP COLUMN email")
        .unwrap();
    let safety2 = safety;
    conn.execute_batch("BEGIN").unwrap();
    let e = revert_tables(
        &fx.repo,
        &safety2.index,
        &safety2.image,
        &safety2.tables,
        &conn,
        &[("users".to_string(), OnConflict::Snapshot)],
        "c",
        &Quiet,
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("1 row of orders points at rows of users"),
        "{text}"
    );
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM users"), 3);
}

#[test]
fn cascading_foreign_keys_are_refused_before_anything_changes() {
    let fx = Fixture::new(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE orders (id INTEGER PRIMARY KEY,
                              user_id INTEGER REFERENCES users(id) ON DELETE CASCADE);
         INSERT INTO users VALUES (1, 'a');
         INSERT INTO orders VALUES (10, 1);",
    );
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let err = revert_tables(
        &fx.repo,
        &safety.index,
        &safety.image,
        &safety.tables,
        &conn,
        &[("users".to_string(), OnConflict::KeepNew)],
        "c",
        &Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("orders"), "{err}");
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM orders"), 1);
}

#[test]
fn a_table_missing_from_the_snapshot_is_named_and_nothing_changes() {
    let fx = Fixture::new(USERS);
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    drop_email_and_write(&conn);
    conn.execute_batch("BEGIN").unwrap();
    let err = revert_tables(
        &fx.repo,
        &safety.index,
        &safety.image,
        &safety.tables,
        &conn,
        &[
            ("users".to_string(), OnConflict::KeepNew),
            ("invoices".to_string(), OnConflict::KeepNew),
        ],
        "c",
        &Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("invoices"), "{err}");
    conn.execute_batch("COMMIT").unwrap();
    assert!(conn.prepare("SELECT email FROM users").is_err());
}

#[test]
fn outside_a_transaction_it_refuses() {
    let fx = Fixture::new(USERS);
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    let result = revert_tables(
        &fx.repo,
        &safety.index,
        &safety.image,
        &safety.tables,
        &conn,
        &[("users".to_string(), OnConflict::KeepNew)],
        "c",
        &Quiet,
    );
    assert!(result.is_err());
}

#[test]
fn a_failure_midway_undoes_everything_it_did() {
    let fx = Fixture::new(
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, note TEXT);
         INSERT INTO tags VALUES (1, 'a', 'first');",
    );
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    // The new row takes a name the restored row has again: keeping it fails.
    conn.execute_batch(
        "ALTER TABLE tags DROP COLUMN note;
         UPDATE tags SET name = 'z' WHERE id = 1;
         INSERT INTO tags VALUES (2, 'a');",
    )
    .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let result = revert_tables(
        &fx.repo,
        &safety.index,
        &safety.image,
        &safety.tables,
        &conn,
        &[("tags".to_string(), OnConflict::KeepNew)],
        "c",
        &Quiet,
    );
    let err = result.unwrap_err().to_string();
    assert!(err.contains("UNIQUE"), "{err}");
    // Even committed, the transaction holds none of the revert's work.
    conn.execute_batch("COMMIT").unwrap();
    assert!(conn.prepare("SELECT note FROM tags").is_err());
    assert_eq!(count(&conn, "SELECT count(*) FROM tags"), 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM sqlite_temp_master"), 0);
}

#[test]
fn keep_new_reviews_rows_that_lack_a_required_column() {
    let fx = Fixture::new(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT NOT NULL);
         INSERT INTO users VALUES (1, 'a', 'a@x');",
    );
    let safety = fx.snapshot();
    let conn = open(&fx.db);
    conn.execute_batch(
        "ALTER TABLE users DROP COLUMN email;
         INSERT INTO users VALUES (2, 'b');",
    )
    .unwrap();
    let report = fx.revert(&safety, &conn, &[("users", OnConflict::KeepNew)], true);
    assert_eq!(report[0].policy, Some(OnConflict::Review));
    assert_eq!(report[0].review_rows, 1);
    let reason: String = conn
        .query_row("SELECT reason FROM ripcord_review", [], |r| r.get(0))
        .unwrap();
    assert!(reason.contains("email"), "{reason}");
}
