//! `ripcord diff A B`.

use ripcord_testing::data::{self, write_file};
use ripcord_testing::sqlite;
use serde_json::Value;

use crate::common::*;

fn target<'a>(diff: &'a Value, name: &str) -> &'a Value {
    diff["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets in {diff}"))
        .iter()
        .find(|t| t["target"] == name)
        .unwrap_or_else(|| panic!("no target {name} in {diff}"))
}

/// The paths of a target's entries that `change` (`added`, `removed`,
/// `modified`), sorted.
fn sorted(t: &Value, change: &str) -> Vec<String> {
    let mut s: Vec<String> = entries(t, change)
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_string())
        .collect();
    s.sort();
    s
}

fn entries<'a>(t: &'a Value, change: &str) -> Vec<&'a Value> {
    t["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {t}"))
        .iter()
        .filter(|e| e["change"] == change)
        .collect()
}

#[test]
fn diff_json_gives_structured_entries_not_sentences() {
    let mut ws = workspace();
    let layout = data::standard_tree(&ws.path("app"), 20);
    let app = ws.dir_target("app", "app", &layout.excludes());
    let db = ws.sqlite_target("shop", "shop.db");
    sqlite::create_shop(&db);
    ws.init();
    let a = ws.snapshot_id(&[] as &[&str]);

    write_file(&app.join("new/file.txt"), b"added\n");
    std::fs::remove_file(app.join("src/lib.rs")).unwrap();
    write_file(&app.join("config/app.toml"), b"changed = true\n");
    data::set_mode(&app.join("bin/run.sh"), 0o700);
    write_file(&app.join("scratch.tmp"), b"excluded, never in a diff\n");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "INSERT INTO orders (id, customer, total) VALUES (1000, 1, 9.5), (1001, 2, 3.0);
             UPDATE customers SET email = 'changed@example.com' WHERE id = 7;
             CREATE TABLE coupons (code TEXT PRIMARY KEY, pct INTEGER);
             INSERT INTO coupons VALUES ('SAVE10', 10);",
        )
        .unwrap();
    }
    let b = ws.snapshot_id(&[] as &[&str]);

    let d = ws.json(&["diff", &a, &b]);
    assert_eq!(d["from_snapshot"], a.as_str());
    assert_eq!(d["to_snapshot"], b.as_str());
    let t = target(&d, "app");
    assert_eq!(t["change"], "changed", "{t}");
    assert_eq!(sorted(t, "added"), ["new/", "new/file.txt"], "{t}");
    assert_eq!(sorted(t, "removed"), ["src/lib.rs"], "{t}");
    assert_eq!(
        sorted(t, "modified"),
        ["bin/run.sh", "config/app.toml"],
        "{t}"
    );
    assert_eq!(
        (
            t["added_count"].as_u64(),
            t["removed_count"].as_u64(),
            t["modified_count"].as_u64()
        ),
        (Some(2), Some(1), Some(2))
    );

    // Tables are entries too, with their rows before and after: data, not
    // sentences to parse.
    let t = target(&d, "shop");
    assert_eq!(sorted(t, "modified"), ["customers", "orders"], "{t}");
    let modified = entries(t, "modified");
    let customers = modified.iter().find(|e| e["path"] == "customers").unwrap();
    assert_eq!(customers["kind"], "table");
    assert_eq!(customers["content_changed"], true, "{t}");
    assert_eq!(customers["rows_before"], customers["rows_after"], "{t}");
    let orders = modified.iter().find(|e| e["path"] == "orders").unwrap();
    assert_eq!(
        (
            orders["rows_before"].as_u64(),
            orders["rows_after"].as_u64()
        ),
        (Some(200), Some(202)),
        "{t}"
    );
    let added = entries(t, "added");
    assert_eq!(added.len(), 1, "{t}");
    assert_eq!(added[0]["path"], "coupons");
    assert_eq!(added[0]["rows_after"], 1);
    assert!(added[0]["rows_before"].is_null(), "{t}");
    assert!(entries(t, "removed").is_empty(), "{t}");

    // The other direction swaps added and removed.
    let back = ws.json(&["diff", &b, &a]);
    let t = target(&back, "app");
    assert_eq!(sorted(t, "removed"), ["new/", "new/file.txt"], "{t}");
    assert_eq!(sorted(t, "added"), ["src/lib.rs"], "{t}");
    assert_eq!(sorted(target(&back, "shop"), "removed"), ["coupons"]);

    // A snapshot against itself: no change at all.
    let same = ws.json(&["diff", &a, &a]);
    for t in same["targets"].as_array().unwrap() {
        assert_eq!(t["change"], "same", "{same}");
        assert!(t["entries"].as_array().unwrap().is_empty(), "{same}");
    }

    // The text form lists the same paths.
    let text = ws.ok(&["diff", &a, &b]);
    text.assert_stdout_has("+ new/file.txt")
        .assert_stdout_has("- src/lib.rs")
        .assert_stdout_has("M config/app.toml")
        .assert_stdout_has("+ table coupons: 1 row\n")
        .assert_stdout_has("M table orders: rows 200 -> 202");
    assert!(!text.stdout.contains("scratch.tmp"), "{text}");
}

#[test]
fn diff_reports_targets_present_in_one_snapshot_only() {
    let mut ws = workspace();
    let etc = ws.dir_target("etc", "etc", &[]);
    write_file(&etc.join("a.conf"), b"a\n");
    let db = ws.sqlite_target("shop", "shop.db");
    sqlite::create_shop(&db);
    ws.init();
    let a = ws.snapshot_id(&["etc"]);
    let b = ws.snapshot_id(&["shop"]);
    let d = ws.json(&["diff", &a, &b]);
    assert_eq!(target(&d, "etc")["change"], "removed", "{d}");
    assert_eq!(target(&d, "shop")["change"], "added", "{d}");
    ws.run(&["diff", &a, "ffffffff"])
        .assert_code(2)
        .assert_stderr_has("no snapshot matches");
}
