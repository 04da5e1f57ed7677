//! Three-way merge on rollback, on PostgreSQL (a real cluster) and SQLite
//! through one suite: a destructive change (a dropped column, deleted rows,
//! updated rows) is applied, the application then inserts, updates and
//! deletes rows (some the change had touched, some it had not), and
//! `migrate down` runs under each policy. Every row and every count is
//! checked.

use ripcord_testing::app::{AppDb, Engine, ENGINES};
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

/// `items` (keyed), `people` (keyed; the change drops its e-mail column),
/// `events` (no key; nobody writes to it after the change) and `tags` (no
/// key; the application writes to it), seeded; the change, without a down
/// script, deletes and rewrites rows and drops a column.
fn seed(db: &AppDb) {
    db.exec(
        "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, price integer NOT NULL);
         INSERT INTO items VALUES (1, 'n1', 10), (2, 'n2', 20), (3, 'n3', 30), (4, 'n4', 40),
             (5, 'n5', 50), (6, 'n6', 60), (7, 'n7', 70), (8, 'n8', 80), (9, 'n9', 90),
             (10, 'n10', 100);
         CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL, email text);
         INSERT INTO people VALUES (1, 'ann', 'ann@x'), (2, 'bob', 'bob@x'),
             (3, 'cy', 'cy@x'), (4, 'di', 'di@x');
         CREATE TABLE events (kind text, n integer);
         INSERT INTO events VALUES ('a', 1), ('a', 1), ('b', 2), ('gone', 0);
         CREATE TABLE tags (name text);
         INSERT INTO tags VALUES ('x'), ('x'), ('y');",
    );
    db.write(
        "migrations/0001_destroy/up.sql",
        "DELETE FROM items WHERE id IN (9, 10);
         UPDATE items SET price = price * 2 WHERE id IN (7, 8);
         ALTER TABLE people DROP COLUMN email;
         DELETE FROM events WHERE kind = 'gone';
         DELETE FROM tags WHERE name = 'y';\n",
    );
}

/// The application, after the change: on `items` an insert (11), an
/// update of a row the change left alone (2) and of one it rewrote (7), a
/// delete of a row it left alone (3) and of one it rewrote (8), and the
/// insert again of a row it deleted (9); on `people` (whose e-mail column
/// the change dropped) an update (1), a delete (2) and an insert (5); on
/// `tags` one copy of `x` deleted and `z` inserted.
fn application_writes(db: &AppDb) {
    let one_x = match db.engine {
        Engine::Postgres => {
            "DELETE FROM tags WHERE ctid = (SELECT ctid FROM tags WHERE name = 'x' LIMIT 1)"
        }
        Engine::Sqlite => {
            "DELETE FROM tags WHERE rowid = (SELECT rowid FROM tags WHERE name = 'x' LIMIT 1)"
        }
    };
    db.exec(&format!(
        "INSERT INTO items VALUES (11, 'n11', 110);
         UPDATE items SET price = 25 WHERE id = 2;
         UPDATE items SET name = 'seven', price = 777 WHERE id = 7;
         DELETE FROM items WHERE id = 3;
         DELETE FROM items WHERE id = 8;
         INSERT INTO items VALUES (9, 'again', 999);
         UPDATE people SET name = 'ann2' WHERE id = 1;
         DELETE FROM people WHERE id = 2;
         INSERT INTO people VALUES (5, 'eve');
         {one_x};
         INSERT INTO tags VALUES ('z');"
    ));
}

fn table(change: &Value, name: &str) -> Value {
    change["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables in {change}"))
        .iter()
        .find(|t| {
            let n = t["table"].as_str().unwrap_or_default();
            n == name || n.ends_with(&format!(".{name}"))
        })
        .unwrap_or_else(|| panic!("no table {name} in {change}"))
        .clone()
}

/// The counts of a table's report, in the order of `FIELDS`.
fn counts(t: &Value) -> Vec<u64> {
    FIELDS
        .iter()
        .map(|f| t[*f].as_u64().unwrap_or_else(|| panic!("no {f} in {t}")))
        .collect()
}

const FIELDS: [&str; 11] = [
    "inserted_since",
    "updated_since",
    "deleted_since",
    "conflicts",
    "kept_rows",
    "deleted_kept",
    "review_rows",
    "discarded_rows",
    "undone_rows",
    "removed_rows",
    "restored_rows",
];

fn down(db: &AppDb, policy: &str) -> Value {
    let v = db
        .ws
        .json(&["migrate", "down", "--to", "@root", "--on-conflict", policy]);
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(1), "{v}");
    v
}

fn apply(db: &AppDb) {
    seed(db);
    db.ws.ok(&["migrate", "up"]);
    application_writes(db);
}

const ITEMS: &str = "SELECT id, name, price FROM items ORDER BY id";
const PEOPLE: &str = "SELECT id, name, email FROM people ORDER BY id";
const EVENTS: &str = "SELECT kind, n FROM events ORDER BY kind, n";
const TAGS: &str = "SELECT name FROM tags ORDER BY name";

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn keep_new_keeps_the_applications_writes_and_undoes_the_change() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "merge_keep_new");
        apply(&db);
        let v = down(&db, "keep-new");
        let c = &v["changes"][0];
        assert_eq!(
            db.rows(ITEMS),
            strs(&[
                "1|n1|10",
                "2|n2|25",
                "4|n4|40",
                "5|n5|50",
                "6|n6|60",
                "7|seven|777",
                "9|again|999",
                "10|n10|100",
                "11|n11|110"
            ]),
            "{kind:?}"
        );
        // The e-mail column is back; the application's name wins.
        assert_eq!(
            db.rows(PEOPLE),
            strs(&["1|ann2|ann@x", "3|cy|cy@x", "4|di|di@x", "5|eve|"]),
            "{kind:?}"
        );
        assert_eq!(db.rows(EVENTS), strs(&["a|1", "a|1", "b|2", "gone|0"]));
        assert_eq!(db.rows(TAGS), strs(&["x", "y", "z"]), "{kind:?}");
        // inserted, updated, deleted, conflicts, kept, deletions kept,
        // review, discarded, undone, removed, restored
        assert_eq!(
            counts(&table(c, "items")),
            [2, 2, 2, 3, 4, 2, 0, 0, 1, 0, 10],
            "{kind:?} {c}"
        );
        assert_eq!(
            counts(&table(c, "people")),
            [1, 1, 1, 2, 2, 1, 0, 0, 2, 0, 4],
            "{kind:?} {c}"
        );
        assert_eq!(
            counts(&table(c, "events")),
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4],
            "{kind:?} {c}"
        );
        assert_eq!(
            counts(&table(c, "tags")),
            [1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 3],
            "{kind:?} {c}"
        );
        assert_eq!(v["rows_lost"], 0, "{kind:?} {v}");
        assert!(table(c, "items")["three_way"].as_bool().unwrap());
        if kind == Engine::Postgres {
            // Only `events` was left alone since: only it was not read.
            assert!(
                table(c, "events")["unwritten_since"].as_bool().unwrap(),
                "{c}"
            );
            for written in ["items", "people", "tags"] {
                assert!(
                    !table(c, written)["unwritten_since"].as_bool().unwrap(),
                    "{c}"
                );
            }
        }
        // The fingerprint is forgotten with the change.
        let left = match kind {
            Engine::Postgres => {
                "SELECT (SELECT count(*) FROM ripcord.fingerprint)
                      + (SELECT count(*) FROM pg_catalog.pg_class c
                         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = 'ripcord' AND c.relname ~ '^fingerprint_[0-9]+$')"
            }
            Engine::Sqlite => "SELECT count(*) FROM ripcord_fingerprint",
        };
        assert_eq!(db.rows(left), strs(&["0"]), "{kind:?}");
    }
}

/// The rollback of `DROP COLUMN` hashed the whole live table although
/// nothing had been written to it since the change (2.9x pg_restore, from
/// 11.0x): with no write marked since, the live table is not read, and the
/// result is the same. Writes under `session_replication_role = replica`
/// and a TRUNCATE are marked too.
#[test]
fn a_rollback_with_no_writes_since_the_change_does_not_read_the_live_table() {
    let db = AppDb::new(bin(), Engine::Postgres, "merge_unwritten");
    seed(&db);
    let before = [
        db.rows(ITEMS),
        db.rows(PEOPLE),
        db.rows(EVENTS),
        db.rows(TAGS),
    ];
    db.ws.ok(&["migrate", "up"]);
    let v = down(&db, "keep-new");
    let c = &v["changes"][0];
    for name in ["items", "people", "events", "tags"] {
        let t = table(c, name);
        assert!(t["three_way"].as_bool().unwrap(), "{c}");
        assert!(t["unwritten_since"].as_bool().unwrap(), "{name}: {c}");
    }
    // inserted, updated, deleted, conflicts, kept, deletions kept,
    // review, discarded, undone, removed, restored
    assert_eq!(
        counts(&table(c, "items")),
        [0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 10],
        "{c}"
    );
    assert_eq!(
        counts(&table(c, "people")),
        [0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 4],
        "{c}"
    );
    assert_eq!(
        [
            db.rows(ITEMS),
            db.rows(PEOPLE),
            db.rows(EVENTS),
            db.rows(TAGS)
        ],
        before
    );
    assert_eq!(v["rows_lost"], 0, "{v}");
    let left = "SELECT (SELECT count(*) FROM ripcord.written_watch) + (SELECT count(*) FROM ripcord.written_since)";
    assert_eq!(db.rows(left), strs(&["0"]));

    // Again, with writes the statement trigger must see.
    db.ws.ok(&["migrate", "up"]);
    db.exec(
        "SET session_replication_role = replica; UPDATE items SET price = 1 WHERE id = 1;
         RESET session_replication_role; TRUNCATE tags;",
    );
    let v = down(&db, "keep-new");
    let c = &v["changes"][0];
    for (name, unwritten) in [
        ("items", false),
        ("people", true),
        ("events", true),
        ("tags", false),
    ] {
        assert_eq!(
            table(c, name)["unwritten_since"].as_bool().unwrap(),
            unwritten,
            "{name}: {c}"
        );
    }
    assert_eq!(
        db.rows("SELECT price FROM items WHERE id = 1"),
        strs(&["1"])
    );
    // The application emptied it; the row the change deleted is back.
    assert_eq!(db.rows(TAGS), strs(&["y"]));
}

#[test]
fn snapshot_puts_back_the_snapshot_exactly() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "merge_snapshot");
        apply(&db);
        let v = down(&db, "snapshot");
        let c = &v["changes"][0];
        assert_eq!(
            db.rows(ITEMS),
            (1..=10)
                .map(|i| format!("{i}|n{i}|{}", i * 10))
                .collect::<Vec<_>>(),
            "{kind:?}"
        );
        assert_eq!(
            db.rows(PEOPLE),
            strs(&["1|ann|ann@x", "2|bob|bob@x", "3|cy|cy@x", "4|di|di@x"])
        );
        assert_eq!(db.rows(EVENTS), strs(&["a|1", "a|1", "b|2", "gone|0"]));
        assert_eq!(db.rows(TAGS), strs(&["x", "x", "y"]), "{kind:?}");
        assert_eq!(
            counts(&table(c, "items")),
            [2, 2, 2, 3, 0, 0, 0, 4, 1, 0, 10],
            "{kind:?} {c}"
        );
        assert_eq!(
            counts(&table(c, "people")),
            [1, 1, 1, 2, 0, 0, 0, 2, 2, 0, 4],
            "{kind:?} {c}"
        );
        assert_eq!(
            counts(&table(c, "tags")),
            [1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 3],
            "{kind:?} {c}"
        );
        // The application's inserts and updates are gone: data loss.
        assert_eq!(v["rows_lost"], 7, "{kind:?} {v}");
    }
}

#[test]
fn review_puts_back_the_snapshot_and_sets_the_applications_writes_aside() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "merge_review");
        apply(&db);
        let v = down(&db, "review");
        let c = &v["changes"][0];
        assert_eq!(
            db.rows(ITEMS),
            (1..=10)
                .map(|i| format!("{i}|n{i}|{}", i * 10))
                .collect::<Vec<_>>(),
            "{kind:?}"
        );
        assert_eq!(db.rows(TAGS), strs(&["x", "x", "y"]), "{kind:?}");
        assert_eq!(
            counts(&table(c, "items")),
            [2, 2, 2, 3, 0, 0, 6, 0, 1, 0, 10],
            "{kind:?} {c}"
        );
        assert_eq!(
            counts(&table(c, "people")),
            [1, 1, 1, 2, 0, 0, 3, 0, 2, 0, 4],
            "{kind:?} {c}"
        );
        assert_eq!(
            counts(&table(c, "tags")),
            [1, 0, 1, 0, 0, 0, 2, 0, 1, 0, 3],
            "{kind:?} {c}"
        );
        assert_eq!(v["rows_lost"], 0, "{kind:?} {v}");
        // Every write of the application is in the review table, labelled.
        let reasons = db.rows(&format!(
            "SELECT table_name, reason FROM {} ORDER BY 1, 2",
            db.ripcord_table("review")
        ));
        assert_eq!(reasons.len(), 11, "{kind:?} {reasons:?}");
        let items: Vec<&String> = reasons.iter().filter(|r| r.contains("items|")).collect();
        assert_eq!(
            items.iter().filter(|r| r.contains("(conflict)")).count(),
            3,
            "{items:?}"
        );
        let seven = db.rows(&format!(
            "SELECT row_data FROM {} WHERE reason LIKE 'updated%conflict%' AND table_name LIKE '%items'",
            db.ripcord_table("review")
        ));
        assert_eq!(seven.len(), 1, "{kind:?} {seven:?}");
        assert!(seven[0].contains("777"), "{seven:?}");
    }
}

#[test]
fn bug6_rows_deleted_by_the_application_after_the_change_stay_deleted() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "merge_bug6");
        seed(&db);
        db.ws.ok(&["migrate", "up"]);
        db.exec("DELETE FROM items WHERE id IN (1, 2); DELETE FROM people WHERE id = 4");
        let v = down(&db, "keep-new");
        let c = &v["changes"][0];
        assert_eq!(
            db.rows("SELECT id FROM items ORDER BY id"),
            strs(&["3", "4", "5", "6", "7", "8", "9", "10"]),
            "{kind:?}"
        );
        assert_eq!(
            db.rows("SELECT id FROM people ORDER BY id"),
            strs(&["1", "2", "3"])
        );
        assert_eq!(table(c, "items")["deleted_kept"], 2, "{kind:?} {c}");
        assert_eq!(table(c, "people")["deleted_kept"], 1, "{kind:?} {c}");
        // The rows the change rewrote are back as they were.
        assert_eq!(
            db.rows("SELECT price FROM items WHERE id IN (7, 8) ORDER BY id"),
            strs(&["70", "80"])
        );
    }
}

#[test]
fn keyless_table_with_nothing_written_since_sets_nothing_aside() {
    for kind in ENGINES {
        for policy in ["keep-new", "review", "snapshot"] {
            let db = AppDb::new(bin(), kind, "merge_keyless");
            seed(&db);
            // Enough duplicate and distinct rows that a wrong multiset
            // comparison would show.
            let many = match kind {
                Engine::Postgres => {
                    "INSERT INTO events SELECT 'k' || (i % 50), i % 7 FROM generate_series(1, 5000) i"
                }
                Engine::Sqlite => {
                    "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 5000)
                     INSERT INTO events SELECT 'k' || (i % 50), i % 7 FROM s"
                }
            };
            db.exec(many);
            let before = db.rows(EVENTS);
            db.ws.ok(&["migrate", "up"]);
            let v = down(&db, policy);
            let t = table(&v["changes"][0], "events");
            assert_eq!(
                counts(&t),
                [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5004],
                "{kind:?} {policy} {t}"
            );
            assert_eq!(db.rows(EVENTS), before, "{kind:?} {policy}");
            assert_eq!(v["rows_lost"], 0, "{kind:?} {policy} {v}");
        }
    }
}

#[test]
fn a_change_without_a_fingerprint_is_reverted_two_ways_as_before() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "merge_no_fingerprint");
        seed(&db);
        db.ws.ok(&["migrate", "up"]);
        // As a change applied by a version that recorded no fingerprint.
        match kind {
            Engine::Postgres => db.exec("TRUNCATE ripcord.fingerprint_tables, ripcord.fingerprint"),
            Engine::Sqlite => {
                db.exec("DELETE FROM ripcord_fingerprint_tables; DELETE FROM ripcord_fingerprint")
            }
        }
        db.exec("INSERT INTO items VALUES (11, 'n11', 110); DELETE FROM items WHERE id = 1");
        let v = down(&db, "keep-new");
        let t = table(&v["changes"][0], "items");
        assert_eq!(t["three_way"], false, "{kind:?} {t}");
        assert_eq!(t["kept_rows"], 1, "{kind:?} {t}");
        // Two ways only, the row deleted since comes back: what the
        // fingerprint fixes (bug 6 above).
        assert_eq!(db.rows("SELECT count(*) FROM items"), strs(&["11"]));
        assert_eq!(
            db.rows("SELECT name FROM items WHERE id = 1"),
            strs(&["n1"])
        );
    }
}

#[test]
fn down_prints_what_the_change_and_the_application_did() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "merge_text");
        apply(&db);
        let out = db.ws.ok(&["migrate", "down", "--to", "@root"]);
        let text = out.all_text();
        assert!(
            text.contains(
                "written by the application since: 2 inserted, 2 updated, 2 deleted; 3 conflicts \
                 with the change, decided by keep-new"
            ),
            "{kind:?}\n{text}"
        );
        assert!(
            text.contains("kept as the application left them: 4 rows and 2 deletions"),
            "{kind:?}\n{text}"
        );
        assert!(text.contains("data loss: none"), "{kind:?}\n{text}");
    }
}

/// A partitioned table (`orders`, by region) whose change drops a column,
/// deletes a row, rewrites one and moves one to another partition; the
/// application then inserts, updates (one the change rewrote), deletes and
/// moves a row to another partition. Rows are merged through the tree:
/// their key holds the partition key, so a moved row is a delete and an
/// insert.
fn seed_partitioned(db: &AppDb) {
    db.exec(
        "CREATE TABLE orders (id int, region text, qty int, note text, PRIMARY KEY (id, region))
             PARTITION BY LIST (region);
         CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
         CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');
         INSERT INTO orders VALUES (1, 'eu', 10, 'n1'), (2, 'eu', 20, 'n2'), (3, 'eu', 30, 'n3'),
             (4, 'us', 40, 'n4'), (5, 'us', 50, 'n5'), (6, 'us', 60, 'n6'), (8, 'eu', 80, 'n8');",
    );
    db.write(
        "migrations/0001_orders/up.sql",
        "ALTER TABLE orders DROP COLUMN note;
         DELETE FROM orders WHERE id = 6;
         UPDATE orders SET qty = qty * 2 WHERE id = 5;
         UPDATE orders SET region = 'us' WHERE id = 8;\n",
    );
    db.ws.ok(&["migrate", "up"]);
    db.exec(
        "INSERT INTO orders VALUES (7, 'us', 70);
         UPDATE orders SET qty = 25 WHERE id = 2;
         UPDATE orders SET qty = 555 WHERE id = 5;
         DELETE FROM orders WHERE id = 3;
         UPDATE orders SET region = 'us' WHERE id = 1;",
    );
}

const ORDERS: &str = "SELECT tableoid::regclass, id, region, qty, note FROM orders ORDER BY id";

/// Before the change: every row in its partition.
fn orders_before() -> Vec<String> {
    strs(&[
        "orders_eu|1|eu|10|n1",
        "orders_eu|2|eu|20|n2",
        "orders_eu|3|eu|30|n3",
        "orders_us|4|us|40|n4",
        "orders_us|5|us|50|n5",
        "orders_us|6|us|60|n6",
        "orders_eu|8|eu|80|n8",
    ])
}

#[test]
fn partitioned_table_is_merged_three_ways_through_its_partitions() {
    for policy in ["keep-new", "snapshot", "review"] {
        let db = AppDb::new(bin(), Engine::Postgres, "merge_partitioned");
        seed_partitioned(&db);
        let v = down(&db, policy);
        let c = &v["changes"][0];
        let t = table(c, "orders");
        assert_eq!(t["three_way"], true, "{policy} {t}");
        // inserted, updated, deleted, conflicts (the column the change
        // dropped makes every row it kept one), then per policy: kept,
        // deletions kept, review, discarded; the change's own work undone
        // (the deleted row, the altered rows left alone) and removed (its
        // moved copy).
        let (rows, tail, lost) = match policy {
            "keep-new" => (
                strs(&[
                    // Moved by the application: a new row, without the
                    // dropped column's value.
                    "orders_us|1|us|10|",
                    "orders_eu|2|eu|25|n2",
                    "orders_us|4|us|40|n4",
                    "orders_us|5|us|555|n5",
                    "orders_us|6|us|60|n6",
                    "orders_us|7|us|70|",
                    // Moved by the change: back in its partition.
                    "orders_eu|8|eu|80|n8",
                ]),
                [4, 2, 0, 0],
                0,
            ),
            "snapshot" => (orders_before(), [0, 0, 0, 4], 4),
            _ => (orders_before(), [0, 0, 6, 0], 0),
        };
        assert_eq!(db.rows(ORDERS), rows, "{policy}");
        let mut want = vec![2, 2, 2, 4];
        want.extend(tail);
        want.extend([3, 1]);
        assert_eq!(counts(&t)[..10], want[..], "{policy} {t}");
        assert_eq!(v["rows_lost"], lost, "{policy} {v}");
        // The partitions' rows were resolved through the tree, not twice.
        for p in ["orders_eu", "orders_us"] {
            let t = table(c, p);
            assert_eq!(counts(&t)[..10], [0; 10], "{policy} {t}");
        }
        if policy == "review" {
            assert_eq!(
                db.rows("SELECT count(*) FROM ripcord.review WHERE table_name = 'public.orders'"),
                strs(&["6"])
            );
        }
    }
}

/// An inheritance tree: `vehicles` and its child `trucks`, each with a key
/// of its own. The change drops a column of the tree and deletes a row of
/// each; the application writes to both. Each table is merged three ways
/// on its own rows.
#[test]
fn inheritance_tree_is_merged_three_ways_table_by_table() {
    for policy in ["keep-new", "snapshot", "review"] {
        let db = AppDb::new(bin(), Engine::Postgres, "merge_inherit");
        db.exec(
            "CREATE TABLE vehicles (id int PRIMARY KEY, name text, colour text);
             CREATE TABLE trucks (load int) INHERITS (vehicles);
             ALTER TABLE trucks ADD PRIMARY KEY (id);
             INSERT INTO vehicles VALUES (1, 'c1', 'red'), (2, 'c2', 'red'), (3, 'c3', 'red'),
                 (4, 'c4', 'red');
             INSERT INTO trucks VALUES (5, 't5', 'blue', 50), (6, 't6', 'blue', 60),
                 (7, 't7', 'blue', 70), (8, 't8', 'blue', 80);",
        );
        let parent = "SELECT id, name, colour FROM ONLY vehicles ORDER BY id";
        let child = "SELECT id, name, colour, load FROM trucks ORDER BY id";
        let (p0, c0) = (db.rows(parent), db.rows(child));
        db.write(
            "migrations/0001_vehicles/up.sql",
            "ALTER TABLE vehicles DROP COLUMN colour;\nDELETE FROM vehicles WHERE id IN (4, 8);\n",
        );
        db.ws.ok(&["migrate", "up"]);
        db.exec(
            "UPDATE vehicles SET name = 'car one' WHERE id = 1;
             DELETE FROM vehicles WHERE id = 2;
             INSERT INTO trucks (id, name, load) VALUES (9, 't9', 90);
             UPDATE vehicles SET name = 'truck six' WHERE id = 6;
             DELETE FROM trucks WHERE id = 7;",
        );
        let v = down(&db, policy);
        let c = &v["changes"][0];
        let (vt, tt) = (table(c, "vehicles"), table(c, "trucks"));
        assert_eq!(vt["three_way"], true, "{policy} {vt}");
        assert_eq!(tt["three_way"], true, "{policy} {tt}");
        match policy {
            "keep-new" => {
                assert_eq!(
                    db.rows(parent),
                    strs(&["1|car one|red", "3|c3|red", "4|c4|red"])
                );
                assert_eq!(
                    db.rows(child),
                    strs(&[
                        "5|t5|blue|50",
                        "6|truck six|blue|60",
                        "8|t8|blue|80",
                        "9|t9||90"
                    ])
                );
            }
            _ => {
                assert_eq!(db.rows(parent), p0, "{policy}");
                assert_eq!(db.rows(child), c0, "{policy}");
            }
        }
        // inserted, updated, deleted, conflicts, kept, deletions kept,
        // review, discarded, undone, removed
        let (v_tail, t_tail, lost) = match policy {
            "keep-new" => ([1, 1, 0, 0], [2, 1, 0, 0], 0),
            "snapshot" => ([0, 0, 0, 1], [0, 0, 0, 2], 3),
            _ => ([0, 0, 2, 0], [0, 0, 3, 0], 0),
        };
        let with = |head: [u64; 4], tail: [u64; 4]| {
            let mut w = head.to_vec();
            w.extend(tail);
            w.extend([2, 0]);
            w
        };
        assert_eq!(
            counts(&vt)[..10],
            with([0, 1, 1, 2], v_tail)[..],
            "{policy} {vt}"
        );
        assert_eq!(
            counts(&tt)[..10],
            with([1, 1, 1, 2], t_tail)[..],
            "{policy} {tt}"
        );
        assert_eq!(v["rows_lost"], lost, "{policy} {v}");
    }
}

/// A partitioned table without a primary key is merged as a multiset of
/// whole rows through its partitions: the copies the application added or
/// removed, in whichever partition, are told apart from the change's own.
#[test]
fn keyless_partitioned_table_is_merged_as_a_multiset() {
    for policy in ["keep-new", "snapshot", "review"] {
        let db = AppDb::new(bin(), Engine::Postgres, "merge_partitioned_keyless");
        db.exec(
            "CREATE TABLE logs (region text, msg text) PARTITION BY LIST (region);
             CREATE TABLE logs_eu PARTITION OF logs FOR VALUES IN ('eu');
             CREATE TABLE logs_us PARTITION OF logs FOR VALUES IN ('us');
             INSERT INTO logs VALUES ('eu', 'a'), ('eu', 'a'), ('eu', 'gone'), ('us', 'a'),
                 ('us', 'b');",
        );
        let all = "SELECT tableoid::regclass, region, msg FROM logs ORDER BY 1, 2, 3";
        let before = db.rows(all);
        db.write(
            "migrations/0001_logs/up.sql",
            "DELETE FROM logs WHERE msg = 'gone';\n",
        );
        db.ws.ok(&["migrate", "up"]);
        db.exec(
            "DELETE FROM logs WHERE ctid = (SELECT ctid FROM logs_eu WHERE msg = 'a' LIMIT 1)
                 AND tableoid = 'logs_eu'::regclass;
             INSERT INTO logs VALUES ('us', 'c');",
        );
        let v = down(&db, policy);
        let t = table(&v["changes"][0], "logs");
        let (rows, tail) = match policy {
            "keep-new" => (
                strs(&[
                    "logs_eu|eu|a",
                    "logs_eu|eu|gone",
                    "logs_us|us|a",
                    "logs_us|us|b",
                    "logs_us|us|c",
                ]),
                [1, 1, 0, 0],
            ),
            "snapshot" => (before.clone(), [0, 0, 0, 1]),
            _ => (before.clone(), [0, 0, 2, 0]),
        };
        assert_eq!(db.rows(all), rows, "{policy}");
        let mut want = vec![1, 0, 1, 0];
        want.extend(tail);
        want.extend([1, 0]);
        assert_eq!(counts(&t)[..10], want[..], "{policy} {t}");
    }
}

/// The rollback of `DROP COLUMN` with nothing written since hashed every
/// restored row although an altered table's rows all count as changed, and
/// deleted the fingerprint row by row: now the keys alone are compared and
/// the fingerprint's own table is dropped. Rows the change deleted and
/// inserted next to the dropped column are still counted exactly.
#[test]
fn bug_drop_column_rollback_hashed_every_restored_row() {
    let db = AppDb::new(bin(), Engine::Postgres, "merge_altered_keys");
    db.exec(
        "CREATE TABLE wide (id integer PRIMARY KEY, a text NOT NULL, b text);
         INSERT INTO wide SELECT i, 'a' || i, 'b' || i FROM generate_series(1, 6) i;
         CREATE TABLE loose (id integer NOT NULL, b text);
         INSERT INTO loose VALUES (1, 'x'), (2, 'y'), (3, 'z'), (3, 'z2');",
    );
    // `loose` gets its key in the change: its snapshot's keys are not
    // unique, and are compared through a full join.
    db.write(
        "migrations/0001_drop_b/up.sql",
        "ALTER TABLE wide DROP COLUMN b;
         DELETE FROM wide WHERE id IN (5, 6);
         INSERT INTO wide VALUES (7, 'a7');
         DELETE FROM loose WHERE id = 3;
         ALTER TABLE loose DROP COLUMN b, ADD PRIMARY KEY (id);\n",
    );
    let all = "SELECT id, a, b FROM wide ORDER BY id";
    let before = db.rows(all);
    db.ws.ok(&["migrate", "up"]);
    let own = "SELECT count(*) FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'ripcord' AND c.relname ~ '^fingerprint_[0-9]+$'";
    assert_eq!(db.rows(own), strs(&["2"]));
    assert_eq!(
        db.rows("SELECT count(*) FROM ripcord.fingerprint"),
        strs(&["0"])
    );
    let v = down(&db, "keep-new");
    let t = table(&v["changes"][0], "wide");
    assert!(t["three_way"].as_bool().unwrap(), "{t}");
    assert!(t["unwritten_since"].as_bool().unwrap(), "{t}");
    // inserted, updated, deleted, conflicts, kept, deletions kept,
    // review, discarded, undone (4 altered + 2 deleted), removed (7),
    // restored
    assert_eq!(counts(&t), [0, 0, 0, 0, 0, 0, 0, 0, 6, 1, 6], "{t}");
    assert_eq!(t["changed_rows"], 4, "{t}");
    assert_eq!(db.rows(all), before);
    let t = table(&v["changes"][0], "loose");
    assert!(t["unwritten_since"].as_bool().unwrap(), "{t}");
    assert_eq!(counts(&t), [0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 4], "{t}");
    assert_eq!(
        db.rows("SELECT id, b FROM loose ORDER BY id, b"),
        strs(&["1|x", "2|y", "3|z", "3|z2"])
    );
    assert_eq!(db.rows(own), strs(&["0"]));
}

/// A fingerprint recorded by the previous layout (every table's rows in
/// the shared `ripcord.fingerprint`, by `tab`) still rolls back exactly,
/// with and without writes since, and is forgotten with its change.
#[test]
fn a_fingerprint_in_the_shared_table_of_older_versions_still_rolls_back() {
    let to_old_layout = "DO $$ DECLARE t bigint; BEGIN
             FOR t IN SELECT id FROM ripcord.fingerprint_tables LOOP
               EXECUTE format('INSERT INTO ripcord.fingerprint (tab, k, h, n)
                               SELECT %s, k, h, n FROM ripcord.%I', t, 'fingerprint_' || t);
               EXECUTE format('DROP TABLE ripcord.%I', 'fingerprint_' || t);
             END LOOP; END $$";
    let db = AppDb::new(bin(), Engine::Postgres, "merge_old_layout");
    seed(&db);
    let before = [
        db.rows(ITEMS),
        db.rows(PEOPLE),
        db.rows(EVENTS),
        db.rows(TAGS),
    ];
    let shared = "SELECT count(*) > 0 FROM ripcord.fingerprint";

    // Nothing written since.
    db.ws.ok(&["migrate", "up"]);
    db.exec(to_old_layout);
    assert_eq!(db.rows(shared), strs(&["t"]));
    let v = down(&db, "keep-new");
    let c = &v["changes"][0];
    assert!(table(c, "people")["unwritten_since"].as_bool().unwrap());
    assert_eq!(
        counts(&table(c, "items")),
        [0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 10],
        "{c}"
    );
    assert_eq!(
        counts(&table(c, "people")),
        [0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 4],
        "{c}"
    );
    assert_eq!(
        [
            db.rows(ITEMS),
            db.rows(PEOPLE),
            db.rows(EVENTS),
            db.rows(TAGS)
        ],
        before
    );
    assert_eq!(db.rows(shared), strs(&["f"]));

    // With the application's writes: as with the current layout.
    db.ws.ok(&["migrate", "up"]);
    db.exec(to_old_layout);
    application_writes(&db);
    let v = down(&db, "keep-new");
    let c = &v["changes"][0];
    assert!(table(c, "items")["three_way"].as_bool().unwrap(), "{c}");
    assert_eq!(
        counts(&table(c, "items")),
        [2, 2, 2, 3, 4, 2, 0, 0, 1, 0, 10],
        "{c}"
    );
    assert_eq!(
        counts(&table(c, "people")),
        [1, 1, 1, 2, 2, 1, 0, 0, 2, 0, 4],
        "{c}"
    );
    assert_eq!(
        counts(&table(c, "tags")),
        [1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 3],
        "{c}"
    );
    assert_eq!(
        db.rows(PEOPLE),
        strs(&["1|ann2|ann@x", "3|cy|cy@x", "4|di|di@x", "5|eve|"])
    );
    assert_eq!(db.rows(shared), strs(&["f"]));
    assert_eq!(
        db.rows("SELECT count(*) FROM ripcord.fingerprint_tables"),
        strs(&["0"])
    );
}

/// Converts every recorded fingerprint to the row hash of older versions
/// (the hash of `ROW(…)::text`, whole), as if they had recorded it. The
/// live tables must be as the fingerprints saw them.
const TO_ROW_TEXT_HASH: &str = "DO $$ DECLARE t record; cols text; keys text; BEGIN
     FOR t IN SELECT id, table_name, key_columns, columns FROM ripcord.fingerprint_tables LOOP
       SELECT string_agg('x.' || quote_ident(c), ', ' ORDER BY o) INTO cols
         FROM unnest(t.columns) WITH ORDINALITY u(c, o);
       IF cardinality(t.key_columns) = 0 THEN
         EXECUTE format('DELETE FROM ripcord.%I', 'fingerprint_' || t.id);
         EXECUTE format('INSERT INTO ripcord.%I (k, h, n) SELECT h, h, count(*)
                         FROM (SELECT hashtextextended(ROW(%s)::text, 0) AS h FROM ONLY %s x) y
                         GROUP BY h', 'fingerprint_' || t.id, cols, t.table_name);
       ELSE
         SELECT string_agg('x.' || quote_ident(c), ', ' ORDER BY o) INTO keys
           FROM unnest(t.key_columns) WITH ORDINALITY u(c, o);
         EXECUTE format('UPDATE ripcord.%I f SET h = hashtextextended(ROW(%s)::text, 0)
                         FROM ONLY %s x WHERE f.k = hashtextextended(ROW(%s)::text, 0)',
                        'fingerprint_' || t.id, cols, t.table_name, keys);
       END IF;
     END LOOP;
     UPDATE ripcord.fingerprint_tables SET row_hash = 'row-text';
   END $$";

/// Fingerprints now hash each column apart (several times cheaper than
/// printing the whole row as one record); one recorded by an older version
/// hashed the row's text whole, and still rolls back exactly, by the hash
/// it was recorded with.
#[test]
fn a_fingerprint_hashed_as_row_text_by_older_versions_still_rolls_back() {
    let db = AppDb::new(bin(), Engine::Postgres, "merge_row_text_hash");
    seed(&db);
    db.ws.ok(&["migrate", "up"]);
    assert_eq!(
        db.rows("SELECT DISTINCT row_hash FROM ripcord.fingerprint_tables"),
        strs(&["columns"])
    );
    db.exec(TO_ROW_TEXT_HASH);
    application_writes(&db);
    let v = down(&db, "keep-new");
    let c = &v["changes"][0];
    assert!(table(c, "items")["three_way"].as_bool().unwrap(), "{c}");
    assert_eq!(
        counts(&table(c, "items")),
        [2, 2, 2, 3, 4, 2, 0, 0, 1, 0, 10],
        "{c}"
    );
    assert_eq!(
        counts(&table(c, "people")),
        [1, 1, 1, 2, 2, 1, 0, 0, 2, 0, 4],
        "{c}"
    );
    assert_eq!(
        counts(&table(c, "tags")),
        [1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 3],
        "{c}"
    );
    assert_eq!(
        db.rows(PEOPLE),
        strs(&["1|ann2|ann@x", "3|cy|cy@x", "4|di|di@x", "5|eve|"])
    );
    assert_eq!(db.rows(TAGS), strs(&["x", "y", "z"]));
    assert_eq!(v["rows_lost"], 0, "{v}");
}

/// A column hashed apart keeps its own collation unless told otherwise: a
/// case-insensitive one would hash `bob` and `BOB` alike, and an update
/// by the application that only changes case would be taken for the
/// change's row and undone. Each value is hashed under "C".
#[test]
fn bug_a_case_only_write_under_a_case_insensitive_collation_is_kept() {
    let db = AppDb::new(bin(), Engine::Postgres, "merge_case_insensitive");
    db.exec(
        "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
         CREATE TABLE people (id integer PRIMARY KEY, name text COLLATE ci NOT NULL, score integer NOT NULL);
         INSERT INTO people VALUES (1, 'ann', 1), (2, 'bob', 2), (3, 'cy', 3);",
    );
    db.write(
        "migrations/0001_rescore/up.sql",
        "UPDATE people SET score = score * 10 WHERE id IN (1, 3);\n",
    );
    db.ws.ok(&["migrate", "up"]);
    db.exec(
        "UPDATE people SET name = 'BOB' WHERE id = 2; UPDATE people SET name = 'CY' WHERE id = 3",
    );
    let v = down(&db, "keep-new");
    let t = table(&v["changes"][0], "people");
    assert!(t["three_way"].as_bool().unwrap(), "{t}");
    // The change's scores are undone; both names the application wrote stay
    // (row 3 both had changed: the application's row wins).
    assert_eq!(
        db.rows("SELECT id, name, score FROM people ORDER BY id"),
        strs(&["1|ann|1", "2|BOB|2", "3|CY|30"])
    );
    assert_eq!(t["updated_since"], 2, "{t}");
    assert_eq!(v["rows_lost"], 0, "{v}");
}
