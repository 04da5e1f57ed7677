//! SQLite targets: table statistics, byte-identical images, consistency
//! while the database is being written, in-place restore.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ripcord_testing::data::Rng;
use ripcord_testing::fingerprint::hash_file;
use ripcord_testing::process::wait_until;
use ripcord_testing::sqlite;
use serde_json::Value;

use crate::common::*;

fn tables(show: &Value) -> Vec<(String, u64, String)> {
    show["manifest"]["targets"][0]["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables in {show}"))
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                u64_of(&t["rows"], "rows"),
                t["checksum"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn snapshot_records_tables_and_restore_is_byte_identical() {
    let mut ws = workspace();
    let db = ws.sqlite_target("shop", "db/shop.db");
    sqlite::create_shop(&db);
    ws.init();
    let rows = sqlite::dump(&db);

    let id = ws.snapshot_id(&[] as &[&str]);
    let show = ws.json(&["show", &id]);
    assert_eq!(show["manifest"]["targets"][0]["kind"], "sqlite", "{show}");
    let t = tables(&show);
    let counts: Vec<(&str, u64)> = t.iter().map(|(n, r, _)| (n.as_str(), *r)).collect();
    assert_eq!(counts, [("customers", 50), ("notes", 10), ("orders", 200)]);
    for (name, _, sum) in &t {
        assert_eq!(sum.len(), 64, "checksum of {name}: {sum}");
    }
    assert!(
        t[0].2 != t[1].2 && t[1].2 != t[2].2,
        "checksums differ per table"
    );
    let image = &show["manifest"]["targets"][0]["image"];

    // The database goes to DIR/<target name>/<its file name>, DIR made.
    let r = ws.json(&["restore", &id, "--into", ws.path("out").to_str().unwrap()]);
    let out = ws.path("out/shop/shop.db");
    assert_eq!(r["targets"][0]["destination"], out.to_str().unwrap(), "{r}");
    assert_eq!(
        u64_of(&r["targets"][0]["tables_verified"], "tables_verified"),
        3,
        "{r}"
    );
    assert_eq!(hash_file(&out), image["checksum"].as_str().unwrap());
    assert_eq!(file_len(&out), u64_of(&image["size"], "image size"));
    assert_eq!(sqlite::dump(&out), rows, "restored rows");

    // Into an existing folder: the same place below it.
    let dir = ws.path("outdir");
    std::fs::create_dir(&dir).unwrap();
    ws.ok(&["restore", &id, "--into", dir.to_str().unwrap()]);
    assert_eq!(
        hash_file(&dir.join("shop/shop.db")),
        image["checksum"].as_str().unwrap()
    );

    // A restore never overwrites an existing file.
    let before = hash_file(&out);
    ws.run(&["restore", &id, "--into", ws.path("out").to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_has("exists");
    assert_eq!(hash_file(&out), before);
}

#[test]
fn in_place_sqlite_restore_brings_back_the_rows() {
    let mut ws = workspace();
    let db = ws.sqlite_target("shop", "shop.db");
    sqlite::create_shop(&db);
    ws.init();
    let rows = sqlite::dump(&db);
    let id = ws.snapshot_id(&[] as &[&str]);

    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "DELETE FROM orders WHERE id % 3 = 0; UPDATE customers SET email = NULL; DROP TABLE notes;",
        )
        .unwrap();
    }
    let damaged = sqlite::dump(&db);
    assert_ne!(damaged, rows);

    let r = ws.json(&["restore", &id]);
    assert!(r["safety_snapshot"].is_string(), "{r}");
    assert_eq!(
        sqlite::dump(&db),
        rows,
        "live database after in-place restore"
    );
    let leftovers: Vec<String> = names_in(ws.root())
        .into_iter()
        .filter(|n| n.contains("ripcord-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The safety snapshot holds the damaged state.
    ws.ok(&[
        "restore",
        r["safety_snapshot"].as_str().unwrap(),
        "--into",
        ws.path("safety").to_str().unwrap(),
    ]);
    let out = ws.path("safety/shop/shop.db");
    assert_eq!(sqlite::dump(&out), damaged);
}

#[test]
fn snapshots_are_consistent_while_a_writer_runs() {
    const ACCOUNTS: u32 = 200;
    let mut ws = workspace();
    let db = ws.sqlite_target("bank", "bank.db");
    sqlite::create_bank(&db, ACCOUNTS);
    ws.init();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, done, db) = (stop.clone(), done.clone(), db.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let mut conn = sqlite::open_writer(&db);
            let mut rng = Rng::new(7);
            while !stop.load(Ordering::Relaxed) {
                sqlite::transfer(&mut conn, &mut rng, ACCOUNTS).map_err(|e| e.to_string())?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };

    let mut ids = Vec::new();
    let mut mark = 0;
    for _ in 0..4 {
        // Let the writer make progress between snapshots, so each one sees a
        // different state.
        let want = mark + 25;
        assert!(
            wait_until(Duration::from_secs(60), || done.load(Ordering::Relaxed)
                >= want),
            "the writer stalled at {} transfers",
            done.load(Ordering::Relaxed)
        );
        ids.push(ws.snapshot_id(&[] as &[&str]));
        mark = done.load(Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap().expect("writer failed");
    let total = done.load(Ordering::Relaxed);
    let live = sqlite::bank_state(&db);
    live.assert_consistent(ACCOUNTS, "live database");
    assert_eq!(live.counter as u64, total);

    let mut counters = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let into = ws.path(format!("restored-{n}"));
        ws.ok(&["restore", id, "--into", into.to_str().unwrap()]);
        let out = into.join("bank/bank.db");
        let state = sqlite::bank_state(&out);
        state.assert_consistent(ACCOUNTS, &format!("snapshot {n}"));
        let show = ws.json(&["show", id]);
        let recorded: Vec<(String, u64)> = tables(&show)
            .into_iter()
            .map(|(name, rows, _)| (name, rows))
            .collect();
        assert!(
            recorded.contains(&("transfers".to_string(), state.transfer_rows)),
            "manifest rows {recorded:?} vs restored {state:?}"
        );
        counters.push(state.counter);
    }
    assert!(
        counters.windows(2).all(|w| w[0] < w[1]),
        "each snapshot saw a later state: {counters:?}"
    );
    assert!(counters[0] > 0 && *counters.last().unwrap() <= total as i64);
}

#[test]
fn an_unchanged_database_is_not_read_again_and_a_written_one_is() {
    let mut ws = workspace();
    let db = ws.sqlite_target("shop", "db/shop.db");
    sqlite::create_shop(&db);
    ws.init();
    let first = ws.json(&["snapshot", "--json"]);
    assert_eq!(
        u64_of(&first["unchanged_files"], "unchanged_files"),
        0,
        "{first}"
    );

    let n_tables = u64_of(&first["tables_read"], "tables_read");
    assert!(n_tables >= 2, "{first}");
    assert_eq!(u64_of(&first["tables_reused"], "tables_reused"), 0);

    let again = ws.json(&["snapshot", "--json"]);
    assert_eq!(
        u64_of(&again["unchanged_files"], "unchanged_files"),
        1,
        "{again}"
    );
    assert_eq!(u64_of(&again["tables_read"], "tables_read"), 0, "{again}");
    assert_eq!(
        u64_of(&again["tables_reused"], "tables_reused"),
        n_tables,
        "{again}"
    );
    assert_eq!(
        u64_of(&again["stats"]["new_bytes"], "new_bytes"),
        0,
        "{again}"
    );
    let show_first = ws.json(&["show", first["snapshot"].as_str().unwrap()]);
    let show_again = ws.json(&["show", again["snapshot"].as_str().unwrap()]);
    assert_eq!(tables(&show_first), tables(&show_again));

    // One committed write changes the file (or its WAL): it is read again.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("DELETE FROM orders WHERE id % 2 = 0", [])
        .unwrap();
    drop(conn);
    let third = ws.json(&["snapshot", "--json"]);
    assert_eq!(
        u64_of(&third["unchanged_files"], "unchanged_files"),
        0,
        "{third}"
    );
    assert_eq!(u64_of(&third["tables_read"], "tables_read"), n_tables);
    let show_third = ws.json(&["show", third["snapshot"].as_str().unwrap()]);
    let orders = tables(&show_third)
        .into_iter()
        .find(|t| t.0 == "orders")
        .unwrap();
    assert_eq!(
        orders.1, 100,
        "the deleted rows are gone from the new snapshot"
    );
}
