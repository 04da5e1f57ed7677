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

fn sorted(v: &Value) -> Vec<String> {
    let mut s = strings(v);
    s.sort();
    s
}

#[test]
fn diff_names_changed_files_and_tables() {
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
    assert_eq!(d["a"], a.as_str());
    assert_eq!(d["b"], b.as_str());
    let t = target(&d, "app");
    assert!(t["status"].is_null(), "{t}");
    assert_eq!(sorted(&t["added"]), ["new/", "new/file.txt"], "{t}");
    assert_eq!(sorted(&t["removed"]), ["src/lib.rs"], "{t}");
    assert_eq!(
        sorted(&t["modified"]),
        ["bin/run.sh", "config/app.toml"],
        "{t}"
    );

    let t = target(&d, "shop");
    let modified = sorted(&t["modified"]);
    assert_eq!(modified.len(), 2, "only customers and orders changed: {t}");
    assert!(
        modified[0].starts_with("table customers") && modified[0].contains("content changed"),
        "{modified:?}"
    );
    assert!(
        modified[1].starts_with("table orders") && modified[1].contains("200 -> 202"),
        "{modified:?}"
    );
    assert_eq!(sorted(&t["added"]), ["table coupons (1 rows)"], "{t}");
    assert!(strings(&t["removed"]).is_empty(), "{t}");

    // The other direction swaps added and removed.
    let back = ws.json(&["diff", &b, &a]);
    let t = target(&back, "app");
    assert_eq!(sorted(&t["removed"]), ["new/", "new/file.txt"], "{t}");
    assert_eq!(sorted(&t["added"]), ["src/lib.rs"], "{t}");
    assert!(strings(&target(&back, "shop")["removed"])[0].starts_with("table coupons"));

    // A snapshot against itself: no change at all.
    let same = ws.json(&["diff", &a, &a]);
    for t in same["targets"].as_array().unwrap() {
        for k in ["added", "removed", "modified"] {
            assert!(strings(&t[k]).is_empty(), "{same}");
        }
    }

    // The text form lists the same paths.
    let text = ws.ok(&["diff", &a, &b]);
    text.assert_stdout_has("+ new/file.txt")
        .assert_stdout_has("- src/lib.rs")
        .assert_stdout_has("M config/app.toml");
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
    assert_eq!(target(&d, "etc")["status"], "removed", "{d}");
    assert_eq!(target(&d, "shop")["status"], "added", "{d}");
    ws.run(&["diff", &a, "ffffffff"])
        .assert_code(2)
        .assert_stderr_has("no snapshot matches");
}
