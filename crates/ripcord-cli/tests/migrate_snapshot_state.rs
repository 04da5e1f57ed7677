//! Snapshots know the migration state they hold, on PostgreSQL (a real
//! cluster) and SQLite through one suite: a snapshot after two of four
//! changes records the second; a restore of it over the fully migrated
//! database says so before it starts, and leaves tracking tables that
//! agree with the restored schema, so that the next `up` applies exactly
//! the last two changes.

use ripcord_testing::app::{AppDb, Engine, ENGINES};
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

/// Four changes in two phases: `expand` (a table, a column of it) and
/// `contract` (another column, another table).
fn plan(db: &AppDb) {
    db.write(
        "migrations/0001_items/up.sql",
        "CREATE TABLE items (id integer PRIMARY KEY, name text);\n",
    );
    db.write("migrations/0001_items/down.sql", "DROP TABLE items;\n");
    db.write(
        "migrations/0002_price/up.sql",
        "ALTER TABLE items ADD COLUMN price integer;\n",
    );
    db.write(
        "migrations/0002_price/down.sql",
        "ALTER TABLE items DROP COLUMN price;\n",
    );
    db.write(
        "migrations/0003_note/up.sql",
        "ALTER TABLE items ADD COLUMN note text;\n",
    );
    db.write(
        "migrations/0003_note/down.sql",
        "ALTER TABLE items DROP COLUMN note;\n",
    );
    db.write(
        "migrations/0004_tags/up.sql",
        "CREATE TABLE tags (id integer PRIMARY KEY, item integer, tag text);\n",
    );
    db.write("migrations/0004_tags/down.sql", "DROP TABLE tags;\n");
    db.write(
        "migrations/plan.toml",
        "[[phase]]\nname = \"expand\"\nchanges = [\"0001_items\", \"0002_price\"]\n\n\
         [[phase]]\nname = \"contract\"\nchanges = [\"0003_note\", \"0004_tags\"]\n",
    );
}

/// The plan, applied up to `0002_price`, with rows.
fn at_change_two(db: &AppDb) {
    plan(db);
    db.ws.ok(&["migrate", "up", "--to", "0002_price"]);
    db.exec("INSERT INTO items VALUES (1, 'one', 10), (2, 'two', 20);");
}

/// The one target of a `show --json` or a `snapshots --json` entry.
fn target(snapshot: &Value) -> &Value {
    let targets = snapshot["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1, "{snapshot}");
    &targets[0]
}

fn applied(status: &Value) -> Vec<String> {
    names_in(status, "applied")
}

fn names_in(status: &Value, state: &str) -> Vec<String> {
    status["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes: {status}"))
        .iter()
        .filter(|c| c["state"] == state)
        .map(|c| c["change"].as_str().expect("name").to_string())
        .collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The table of fingerprints a run left to take, created as `migrate up`
/// creates it, with one row in it.
fn leave_a_pending_fingerprint(db: &AppDb) {
    match db.engine {
        Engine::Postgres => db.exec(
            "CREATE TABLE IF NOT EXISTS ripcord.fingerprint_pending (change text NOT NULL, rel oid NOT NULL);
             INSERT INTO ripcord.fingerprint_pending VALUES ('0002_price', 'items'::regclass);",
        ),
        Engine::Sqlite => db.exec(
            "CREATE TABLE IF NOT EXISTS ripcord_fingerprint_pending (change TEXT NOT NULL, tbl TEXT NOT NULL, log TEXT NOT NULL);
             INSERT INTO ripcord_fingerprint_pending VALUES ('0002_price', 'items', 'ripcord_capture_1');",
        ),
    }
}

#[test]
fn snapshot_records_the_migration_state_and_restore_brings_it_back() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "snapver_restore");
        at_change_two(&db);

        // The snapshot records change 2, in phase expand.
        let id = db.ws.snapshot_id(&["app"]);
        let shown = db.ws.json(&["show", &id]);
        let t = target(&shown);
        assert_eq!(t["migration_version"], "0002_price", "{kind:?}: {t}");
        assert_eq!(t["migration"]["change"], "0002_price", "{kind:?}: {t}");
        assert_eq!(t["migration"]["applied"], 2, "{kind:?}: {t}");
        assert_eq!(t["migration"]["phase"], "expand", "{kind:?}: {t}");
        db.ws
            .ok(&["show", &id])
            .assert_stdout_has("migration 0002_price (2 applied, phase @expand)");
        let listed = db.ws.json(&["snapshots"]);
        let entry = listed
            .as_array()
            .expect("list")
            .iter()
            .find(|s| s["snapshot"] == id.as_str())
            .expect("the snapshot is listed");
        assert_eq!(target(entry)["migration"]["change"], "0002_price");
        let text = db.ws.ok(&["snapshots"]);
        text.assert_stdout_has("MIGRATION");
        text.assert_stdout_has("0002_price");
        // Nothing written since: a SQLite snapshot reuses the image, and
        // still records the state.
        let again = db.ws.snapshot_id(&["app"]);
        let again = db.ws.json(&["show", &again]);
        assert_eq!(
            target(&again)["migration"]["change"],
            "0002_price",
            "{kind:?}: {again}"
        );

        // Everything applied, then the snapshot restored over it.
        db.ws.ok(&["migrate", "up"]);
        db.exec("INSERT INTO tags VALUES (1, 1, 'red');");
        assert!(db.has_column("items", "note"));
        let out = db.ws.run(&["--json", "restore", &id]);
        out.assert_ok();
        // Said before it starts, naming both states.
        out.assert_stderr_has("migration state 0002_price (2 applied")
            .assert_stderr_has("live database is at 0004_tags (4 applied");
        let v = out.json();
        let m = &v["migrations"][0];
        assert_eq!(m["target"], "app", "{kind:?}: {v}");
        assert_eq!(m["differs"], true, "{kind:?}: {v}");
        assert_eq!(m["tracking_restored"], true, "{kind:?}: {v}");
        assert_eq!(
            m["snapshot_migration"]["change"], "0002_price",
            "{kind:?}: {v}"
        );
        assert_eq!(m["live_migration"]["change"], "0004_tags", "{kind:?}: {v}");
        assert_eq!(m["live_migration"]["phase"], "contract", "{kind:?}: {v}");
        assert_eq!(
            m["restored_migration"]["change"], "0002_price",
            "{kind:?}: {v}"
        );
        assert_eq!(m["restored_migration"]["applied"], 2, "{kind:?}: {v}");

        // The schema is change 2's, and the tracking tables say so.
        assert!(!db.has_column("items", "note"), "{kind:?}");
        assert!(!db.has_relation("tags"), "{kind:?}");
        let status = db.ws.json(&["migrate", "status"]);
        assert_eq!(applied(&status), strs(&["0001_items", "0002_price"]));
        assert_eq!(
            names_in(&status, "pending"),
            strs(&["0003_note", "0004_tags"])
        );
        assert_eq!(status["phase"], "expand", "{kind:?}: {status}");
        db.ws.ok(&["migrate", "status"]);

        // The next up applies exactly changes 3 and 4.
        let up = db.ws.json(&["migrate", "up"]);
        let ran: Vec<&str> = up["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|c| c["change"].as_str().expect("name"))
            .collect();
        assert_eq!(ran, ["0003_note", "0004_tags"], "{kind:?}: {up}");
        assert!(db.has_column("items", "note"));
        assert_eq!(
            db.rows("SELECT id, name, price FROM items ORDER BY id"),
            strs(&["1|one|10", "2|two|20"])
        );
        let status = db.ws.json(&["migrate", "status"]);
        assert_eq!(applied(&status).len(), 4, "{kind:?}: {status}");
    }
}

/// A snapshot holding a fingerprint a run had left to take: restored, the
/// row would send the next `up` after tables the restore replaced (on
/// PostgreSQL, by an oid they no longer have). The restore forgets it.
#[test]
fn restore_forgets_a_stale_pending_fingerprint() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "snapver_pending");
        at_change_two(&db);
        leave_a_pending_fingerprint(&db);
        let id = db.ws.snapshot_id(&["app"]);
        db.exec(&format!(
            "DELETE FROM {}",
            db.ripcord_table("fingerprint_pending")
        ));
        db.ws.ok(&["migrate", "up"]);

        let v = db.ws.json(&["restore", &id]);
        assert_eq!(
            v["migrations"][0]["pending_fingerprints_forgotten"], 1,
            "{kind:?}: {v}"
        );
        let pending = format!(
            "SELECT count(*) FROM {}",
            db.ripcord_table("fingerprint_pending")
        );
        assert_eq!(db.one(&pending), "0", "{kind:?}");
        let up = db.ws.ok(&["migrate", "up"]);
        assert!(
            !up.all_text().contains("fingerprint"),
            "{kind:?}: the next up still went after the stale fingerprint\n{up}"
        );
    }
}

/// The same restore when nothing differs: no warning, and the field says so.
#[test]
fn restore_at_the_same_state_says_nothing() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "snapver_same");
        at_change_two(&db);
        let id = db.ws.snapshot_id(&["app"]);
        db.exec("INSERT INTO items VALUES (3, 'three', 30);");
        let out = db.ws.run(&["--json", "restore", &id]);
        out.assert_ok();
        assert!(
            !out.stderr.contains("migration state"),
            "{kind:?}: unexpected warning\n{out}"
        );
        let v = out.json();
        assert_eq!(v["migrations"][0]["differs"], false, "{kind:?}: {v}");
        assert_eq!(
            v["migrations"][0]["restored_migration"]["change"],
            "0002_price"
        );
    }
}

/// A database ripcord has never migrated: its snapshot records no state,
/// shown as nothing, and a restore of it warns about none.
#[test]
fn snapshot_of_an_unmigrated_target_records_no_state() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "snapver_plain");
        db.exec("CREATE TABLE plain (id integer PRIMARY KEY); INSERT INTO plain VALUES (1);");
        let id = db.ws.snapshot_id(&["app"]);
        let shown = db.ws.json(&["show", &id]);
        let t = target(&shown);
        assert!(t["migration_version"].is_null(), "{kind:?}: {t}");
        assert!(t["migration"].is_null(), "{kind:?}: {t}");
        let text = db.ws.ok(&["show", &id]);
        assert!(!text.stdout.contains("migration"), "{kind:?}\n{text}");
        let listed = db.ws.json(&["snapshots"]);
        assert!(target(&listed[0])["migration"].is_null(), "{listed}");

        let out = db.ws.run(&["--json", "restore", &id]);
        out.assert_ok();
        assert!(!out.stderr.contains("migration"), "{kind:?}\n{out}");
        let v = out.json();
        assert_eq!(v["migrations"][0]["differs"], false, "{kind:?}: {v}");
        assert!(
            v["migrations"][0]["restored_migration"].is_null(),
            "{kind:?}: {v}"
        );
    }
}

/// Safety snapshots of `migrate up` record the state before their change.
#[test]
fn safety_snapshots_record_the_state_before_their_change() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "snapver_safety");
        at_change_two(&db);
        // Change 3 rewrites rows: it gets a safety snapshot.
        db.write(
            "migrations/0003_note/up.sql",
            "ALTER TABLE items ADD COLUMN note text;\nUPDATE items SET price = price * 2;\n",
        );
        db.ws.ok(&["migrate", "up", "--to", "0003_note"]);
        let listed = db.ws.json(&["snapshots", "--tag", "migrate:0003_note"]);
        let safety = listed
            .as_array()
            .and_then(|l| l.first())
            .unwrap_or_else(|| panic!("{kind:?}: no safety snapshot before 0003_note: {listed}"));
        let m = &target(safety)["migration"];
        assert_eq!(m["change"], "0002_price", "{kind:?}: {safety}");
        assert_eq!(m["applied"], 2, "{kind:?}: {safety}");
    }
}

/// PostgreSQL `--tables`: only the named tables come back, the tracking
/// tables stay as they are (the other tables are still at the live
/// state), and the warning names the changes since that changed a
/// restored table.
#[test]
fn restore_of_selected_tables_names_the_changes_that_touched_them() {
    let db = AppDb::new(bin(), Engine::Postgres, "snapver_tables");
    at_change_two(&db);
    let id = db.ws.snapshot_id(&["app"]);
    db.ws.ok(&["migrate", "up"]);

    let out = db.ws.run(&["--json", "restore", &id, "--tables", "items"]);
    out.assert_ok();
    out.assert_stderr_has("tracking tables are left as they are")
        .assert_stderr_has("0003_note");
    let v = out.json();
    let m = &v["migrations"][0];
    assert_eq!(m["differs"], true, "{v}");
    assert_eq!(m["tracking_restored"], false, "{v}");
    // 0004_tags made another table: it did not change items.
    assert_eq!(m["tables_changed_since"], serde_json::json!(["0003_note"]));
    assert_eq!(m["restored_migration"]["change"], "0004_tags", "{v}");
    let status = db.ws.json(&["migrate", "status"]);
    assert_eq!(applied(&status).len(), 4, "{status}");
    assert!(db.has_relation("tags"));

    // Naming the tracking table restores it too, and the warning says what
    // that leaves.
    let out = db.ws.run(&[
        "--json",
        "restore",
        &id,
        "--tables",
        "items,ripcord.changes",
    ]);
    out.assert_ok();
    out.assert_stderr_has("they include the tracking table");
    let v = out.json();
    let m = &v["migrations"][0];
    assert_eq!(m["tracking_restored"], true, "{v}");
    assert_eq!(m["restored_migration"]["change"], "0002_price", "{v}");
    let status = db.ws.json(&["migrate", "status"]);
    assert_eq!(applied(&status), strs(&["0001_items", "0002_price"]));
}

/// A snapshot taken before the first migration, restored over the migrated
/// database: the tracking tables go with the rest, every change is pending
/// again, and the next `up` applies them all.
#[test]
fn restore_from_before_the_first_migration_makes_every_change_pending() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "snapver_before");
        plan(&db);
        db.exec("CREATE TABLE plain (id integer PRIMARY KEY); INSERT INTO plain VALUES (1);");
        let id = db.ws.snapshot_id(&["app"]);
        db.ws.ok(&["migrate", "up"]);

        let out = db.ws.run(&["--json", "restore", &id]);
        out.assert_ok();
        out.assert_stderr_has("no recorded migration state")
            .assert_stderr_has("0004_tags (4 applied");
        let v = out.json();
        let m = &v["migrations"][0];
        assert_eq!(m["differs"], true, "{kind:?}: {v}");
        assert!(m["restored_migration"].is_null(), "{kind:?}: {v}");
        assert!(!db.has_relation("items"), "{kind:?}");
        let status = db.ws.json(&["migrate", "status"]);
        assert_eq!(names_in(&status, "pending").len(), 4, "{kind:?}: {status}");
        let up = db.ws.json(&["migrate", "up"]);
        assert_eq!(up["changes"].as_array().map(Vec::len), Some(4), "{up}");
        assert_eq!(db.one("SELECT count(*) FROM plain"), "1");
    }
}

/// The migration lock, held as a migration holds it.
enum Held {
    Postgres(#[allow(dead_code)] postgres::Client),
    Sqlite(#[allow(dead_code)] rusqlite::Connection),
}

fn hold_migration_lock(db: &AppDb) -> Held {
    match db.engine {
        Engine::Postgres => {
            let url = ripcord_testing::pg::shared().url(&db.pg);
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            c.execute("SELECT pg_advisory_lock($1)", &[&0x7269_7063_6f72_6400_i64])
                .expect("advisory lock");
            Held::Postgres(c)
        }
        Engine::Sqlite => {
            let mut lock = db.path.clone().into_os_string();
            lock.push("-ripcord-lock");
            let c = rusqlite::Connection::open(lock).expect("open the lock file");
            c.execute_batch(
                "PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE;
                 CREATE TABLE IF NOT EXISTS ripcord_lock (held INTEGER);",
            )
            .expect("lock");
            Held::Sqlite(c)
        }
    }
}

/// A restore in place does not replace a database a migration is running
/// on: it refuses (exit 3) with nothing changed, and goes ahead once the
/// lock is free.
#[test]
fn restore_in_place_refuses_while_a_migration_runs() {
    for kind in ENGINES {
        let db = AppDb::new(bin(), kind, "snapver_lock");
        at_change_two(&db);
        let id = db.ws.snapshot_id(&["app"]);
        db.ws.ok(&["migrate", "up"]);
        let before = db.ws.snapshot_ids().len();

        let held = hold_migration_lock(&db);
        let out = db.ws.run(&["restore", &id]);
        out.assert_code(3).assert_stderr_has("migration lock");
        assert!(
            db.has_relation("tags"),
            "{kind:?}: the restore changed the database"
        );
        assert_eq!(
            db.ws.snapshot_ids().len(),
            before,
            "{kind:?}: a refused restore took a safety snapshot"
        );
        drop(held);

        db.ws.ok(&["restore", &id]);
        assert!(!db.has_relation("tags"), "{kind:?}");
    }
}
