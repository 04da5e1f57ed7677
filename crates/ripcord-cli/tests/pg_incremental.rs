//! Whole-database safety snapshots are incremental on PostgreSQL: a table
//! no write reached since the previous snapshot is taken over from it
//! unread, and any write, truncation, rewrite or statistics reset makes it
//! read again. Checked through the manifests (`show --json`: which tables
//! were read) and by restoring the snapshots.

use ripcord_testing::app::{exec, one, pg_app, write};
use ripcord_testing::pg;
use ripcord_testing::Workspace;
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

/// Rows of the big table: enough that reading it shows.
const BIG_ROWS: u32 = 50_000;

/// `app` with a big table and a small one, created by the first change.
fn setup(name: &str) -> (Workspace, String) {
    let (mut ws, db) = pg_app(bin(), name, "");
    // These databases are far smaller than the size below which a snapshot
    // reads every table rather than wait for the statistics.
    ws.set_env("RIPCORD_PG_REUSE_MIN_BYTES", "0");
    write(
        &ws,
        "migrations/0001_tables/up.sql",
        &format!(
            "CREATE TABLE big (id int PRIMARY KEY, v text);\n\
             INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, {BIG_ROWS}) g;\n\
             CREATE TABLE notes (id int PRIMARY KEY, body text);\n"
        ),
    );
    write(
        &ws,
        "migrations/0001_tables/down.sql",
        "DROP TABLE notes, big;\n",
    );
    ws.ok(&["migrate", "up"]);
    (ws, db)
}

/// A change the analysis cannot see into (a DO block), writing only `notes`.
fn uncertain_change(ws: &Workspace, name: &str, id: u32) {
    write(
        ws,
        &format!("migrations/{name}/up.sql"),
        &format!("DO $$ BEGIN INSERT INTO notes VALUES ({id}, 'note {id}'); END $$;\n"),
    );
    write(
        ws,
        &format!("migrations/{name}/down.sql"),
        &format!("DELETE FROM notes WHERE id = {id};\n"),
    );
}

/// The manifest entry of `table` (`schema.name`) in snapshot `id`.
fn entry(ws: &Workspace, id: &str, table: &str) -> Value {
    let s = ws.json(&["show", id]);
    let tables = s["manifest"]["targets"][0]["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables in {s}"))
        .clone();
    tables
        .into_iter()
        .find(|t| {
            format!(
                "{}.{}",
                t["schema"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            ) == table
        })
        .unwrap_or_else(|| panic!("{table} not in snapshot {id}: {s}"))
}

fn reused(ws: &Workspace, id: &str, table: &str) -> bool {
    entry(ws, id, table)["reused"] == true
}

fn digest(db: &str, table: &str) -> String {
    one(
        db,
        &format!("SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"),
    )
}

/// Restores snapshot `id` into a new database and returns the digest of
/// `table` there.
fn restored_digest(ws: &Workspace, id: &str, table: &str, name: &str) -> String {
    let into = pg::shared().url(&format!("{name}_restored"));
    ws.ok(&["restore", id, "--into", &into, "--create"]);
    let d = digest(&format!("{name}_restored"), table);
    let _ = pg::shared().drop_database(&format!("{name}_restored"));
    d
}

#[test]
fn three_uncertain_changes_read_the_big_table_once() {
    let (ws, db) = setup("incr_three");
    let before = (digest(&db, "big"), digest(&db, "notes"));
    for (i, name) in ["0002_a", "0003_b", "0004_c"].iter().enumerate() {
        uncertain_change(&ws, name, i as u32 + 1);
    }
    ws.ok(&["migrate", "plan", "--explain"])
        .assert_stdout_has(
            "safety snapshots (3 whole database, 0 table-level, 0 schema-only, 1 none)",
        )
        .assert_stdout_has("reads only the tables written since the previous snapshot");
    let up = ws.json(&["migrate", "up"]);
    let changes = up["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{up}");
    let ids: Vec<String> = changes
        .iter()
        .map(|c| {
            assert_eq!(c["snapshot_scope"]["scope"], "database", "{up}");
            c["snapshot"].as_str().unwrap().to_string()
        })
        .collect();
    // The first reads everything; the next two read what the change
    // before them wrote, and take the big table over.
    assert!(!reused(&ws, &ids[0], "public.big"), "{up}");
    for (i, id) in ids.iter().enumerate().skip(1) {
        assert!(reused(&ws, id, "public.big"), "snapshot {i}: {up}");
        assert!(!reused(&ws, id, "public.notes"), "snapshot {i}: {up}");
        let taken = &changes[i]["snapshot_tables"];
        assert!(taken["reused"].as_u64().unwrap() >= 1, "{up}");
        assert!(taken["read"].as_u64().unwrap() >= 1, "{up}");
    }
    assert_eq!(changes[0]["snapshot_tables"]["reused"], 0, "{up}");
    // The reused entry is the one read first.
    assert_eq!(
        entry(&ws, &ids[2], "public.big")["parts"],
        entry(&ws, &ids[0], "public.big")["parts"]
    );
    assert_eq!(entry(&ws, &ids[2], "public.big")["rows"], BIG_ROWS);
    // The last snapshot restores the big table in full, and the notes as
    // the third change found them.
    assert_eq!(restored_digest(&ws, &ids[2], "big", "incr_three"), before.0);
    assert_eq!(
        restored_digest(&ws, &ids[2], "notes", "incr_three_n"),
        one(&db, "SELECT 2 || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM notes t WHERE id < 3")
    );
    // Rollback from the reused snapshots puts everything back exactly.
    ws.ok(&["migrate", "down", "--to", "0001_tables"]);
    assert_eq!((digest(&db, "big"), digest(&db, "notes")), before);
}

#[test]
fn a_table_written_between_two_safety_snapshots_is_read_again() {
    let (ws, db) = setup("incr_written");
    uncertain_change(&ws, "0002_a", 1);
    uncertain_change(&ws, "0003_b", 2);
    let first = ws.json(&["migrate", "up", "--to", "0002_a"]);
    let first_id = first["changes"][0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    // Another session writes the big table between the two snapshots.
    exec(
        &db,
        "UPDATE big SET v = 'written' WHERE id = 7; INSERT INTO big VALUES (0, 'new')",
    );
    let written = digest(&db, "big");
    let second = ws.json(&["migrate", "up"]);
    let second_id = second["changes"][0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!reused(&ws, &second_id, "public.big"), "{second}");
    assert_eq!(entry(&ws, &second_id, "public.big")["rows"], BIG_ROWS + 1);
    assert_eq!(entry(&ws, &first_id, "public.big")["rows"], BIG_ROWS);
    assert_eq!(
        restored_digest(&ws, &second_id, "big", "incr_written"),
        written
    );
    ws.ok(&["migrate", "down", "--to", "0001_tables"]);
    assert_eq!(digest(&db, "big"), written);
}

/// Plain `ripcord snapshot` of the target is incremental the same way; a
/// TRUNCATE, VACUUM FULL, a rewriting ALTER, a new column and a statistics
/// reset each make the table read again.
#[test]
fn truncate_rewrite_alter_and_stats_reset_force_a_reread() {
    let (ws, db) = setup("incr_rewrite");
    exec(
        &db,
        "CREATE TABLE empty (id int);
         CREATE TYPE mood AS ENUM ('sad', 'ok');
         CREATE TABLE moods (m mood);
         INSERT INTO moods VALUES ('ok')",
    );
    let snap = |ws: &Workspace| -> String {
        let v = ws.json(&["snapshot", "app"]);
        v["snapshot"].as_str().unwrap().to_string()
    };
    let _first = snap(&ws);
    let second = snap(&ws);
    assert!(reused(&ws, &second, "public.big"));
    assert!(reused(&ws, &second, "public.empty"));
    // An enum's binary form is its label, which can be renamed without
    // touching the table: such a table is always read.
    assert!(!reused(&ws, &second, "public.moods"));
    assert!(entry(&ws, &second, "public.moods")["stamp"].is_null());
    exec(&db, "ALTER TYPE mood RENAME VALUE 'ok' TO 'fine'");
    let id = snap(&ws);
    assert_eq!(
        restored_digest(&ws, &id, "moods", "incr_moods"),
        "1:".to_string() + &one(&db, "SELECT md5('(fine)')")
    );

    // TRUNCATE of an empty table counts no rows; its new file tells.
    exec(&db, "TRUNCATE empty");
    let id = snap(&ws);
    assert!(!reused(&ws, &id, "public.empty"));
    assert!(reused(&ws, &id, "public.big"));

    exec(&db, "VACUUM FULL big");
    let id = snap(&ws);
    assert!(!reused(&ws, &id, "public.big"));
    assert!(reused(&ws, &id, "public.empty"));

    exec(&db, "ALTER TABLE big ALTER COLUMN id TYPE bigint");
    let id = snap(&ws);
    assert!(!reused(&ws, &id, "public.big"));

    exec(&db, "ALTER TABLE big ADD COLUMN extra int DEFAULT 3");
    let id = snap(&ws);
    assert!(!reused(&ws, &id, "public.big"));
    let id = snap(&ws);
    assert!(reused(&ws, &id, "public.big"));
    assert_eq!(
        restored_digest(&ws, &id, "big", "incr_rewrite"),
        digest(&db, "big")
    );

    let epoch = |id: &str| ws.json(&["show", id])["manifest"]["targets"][0]["stats_epoch"].clone();
    let before_reset = epoch(&id);
    assert!(before_reset.is_string());
    exec(
        &db,
        "SELECT pg_stat_reset_single_table_counters('big'::regclass)",
    );
    let id = snap(&ws);
    assert!(!reused(&ws, &id, "public.big"));
    // The reset moves the epoch: counters grown back to the old values
    // would not pass for unchanged.
    assert_ne!(epoch(&id), before_reset);

    exec(&db, "SELECT pg_stat_reset()");
    let id = snap(&ws);
    assert!(!reused(&ws, &id, "public.big"));
    assert!(!reused(&ws, &id, "public.empty"));
    let again = ws.json(&["snapshot", "app"]);
    assert!(again["tables_reused"].as_u64().unwrap() >= 2, "{again}");
    let text = ws.ok(&["snapshot", "app"]).all_text();
    assert!(
        text.contains("unchanged since the previous snapshot (not read)"),
        "{text}"
    );
}

/// A session that wrote twice in quick succession and stays connected
/// holds the second write's counts for up to 10 s: the snapshot waits for
/// them instead of taking the table over unread.
#[test]
fn a_write_whose_statistics_are_not_flushed_yet_is_not_missed() {
    let (ws, db) = setup("incr_lag");
    ws.json(&["snapshot", "app"]);
    let mut writer = pg::shared().client(&db);
    // The first write's counts go out when the session goes idle; the
    // second, too soon after, waits in the session.
    writer
        .batch_execute("INSERT INTO notes VALUES (100, 'first')")
        .unwrap();
    writer
        .batch_execute("UPDATE big SET v = 'late' WHERE id = 9")
        .unwrap();
    let written = digest(&db, "big");
    let v = ws.json(&["snapshot", "app"]);
    let id = v["snapshot"].as_str().unwrap();
    assert!(!reused(&ws, id, "public.big"), "{v}");
    assert_eq!(restored_digest(&ws, id, "big", "incr_lag"), written);
    drop(writer);
}

/// A table-level safety snapshot between two whole-database ones carries
/// no stamps; the second whole-database one reuses from the first.
#[test]
fn a_table_level_snapshot_in_between_does_not_stop_the_reuse() {
    let (ws, db) = setup("incr_between");
    let before = (digest(&db, "big"), digest(&db, "notes"));
    uncertain_change(&ws, "0002_a", 1);
    write(
        &ws,
        "migrations/0003_forget/up.sql",
        "DELETE FROM notes WHERE id = 1;\n",
    );
    uncertain_change(&ws, "0004_c", 3);
    let up = ws.json(&["migrate", "up"]);
    let scopes: Vec<&str> = up["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["snapshot_scope"]["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["database", "tables", "database"], "{up}");
    let last = up["changes"][2]["snapshot"].as_str().unwrap();
    assert!(reused(&ws, last, "public.big"), "{up}");
    assert!(!reused(&ws, last, "public.notes"), "{up}");
    ws.ok(&["migrate", "down", "--to", "0001_tables"]);
    assert_eq!((digest(&db, "big"), digest(&db, "notes")), before);
}
