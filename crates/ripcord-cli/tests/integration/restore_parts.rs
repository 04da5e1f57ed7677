//! Where `restore --into` puts targets (one rule for one target or many),
//! part of a dir target (`--include`), tables of a SQLite target
//! (`--tables`), and `ls`, which shows what a snapshot holds.

use std::path::{Path, PathBuf};

use ripcord_testing::data::write_file;
use ripcord_testing::{repo_hashes, sqlite, Fingerprint, Workspace};
use rusqlite::Connection;
use serde_json::Value;

use crate::common::*;

/// A dir target `app` (config files in two levels, a README, a link) and a
/// SQLite target `shop` whose orders point at customers, with an index.
struct Two {
    ws: Workspace,
    app: PathBuf,
    db: PathBuf,
    id: String,
}

fn two() -> Two {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    write_file(&app.join("config/app.toml"), b"port = 80\n");
    write_file(&app.join("config/db.toml"), b"url = \"db\"\n");
    write_file(&app.join("config/sub/deep.toml"), b"deep = true\n");
    write_file(&app.join("README"), b"hello\n");
    std::os::unix::fs::symlink("README", app.join("link")).unwrap();
    let db = ws.sqlite_target("shop", "data/shop.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             CREATE TABLE orders (id INTEGER PRIMARY KEY,
                                  customer INTEGER NOT NULL REFERENCES customers (id),
                                  total INTEGER NOT NULL);
             CREATE INDEX orders_customer ON orders (customer);
             CREATE TABLE notes (body TEXT);
             INSERT INTO customers VALUES (1, 'ada'), (2, 'bob');
             INSERT INTO orders VALUES (1, 1, 10), (2, 2, 20), (3, 1, 30);
             INSERT INTO notes VALUES ('first');",
        )
        .unwrap();
    ws.init();
    let id = ws.snapshot_id(&[] as &[&str]);
    Two { ws, app, db, id }
}

fn rows(db: &Path, sql: &str) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i).map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
            })
            .collect::<rusqlite::Result<Vec<_>>>()?
            .join("|"))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

// ---- one rule for --into ----

#[test]
fn into_with_one_sqlite_target_makes_a_folder_not_a_file_named_after_it() {
    // `--target shop --into check3` wrote the database as a file named
    // check3, while several targets went to check/shop/shop.db.
    let t = two();
    let check = t.ws.path("new/check3");
    let r = t.ws.json(&[
        "restore",
        &t.id,
        "--target",
        "shop",
        "--into",
        check.to_str().unwrap(),
    ]);
    assert!(check.is_dir(), "--into is a folder, made when missing");
    assert_eq!(names_in(&check), ["shop"]);
    let db = check.join("shop/shop.db");
    assert_eq!(r["targets"][0]["destination"], db.to_str().unwrap(), "{r}");
    assert_eq!(sqlite::dump(&db), sqlite::dump(&t.db));

    // The same place when it is restored with the other target.
    let both = t.ws.path("both");
    t.ws.ok(&["restore", &t.id, "--into", both.to_str().unwrap()]);
    assert_eq!(names_in(&both), ["app", "shop"]);
    assert_eq!(names_in(&both.join("shop")), ["shop.db"]);
    Fingerprint::of(&both.join("app")).assert_same(&Fingerprint::of(&t.app), "app under both");

    // And a dir target alone goes to DIR/app too.
    let one = t.ws.path("one");
    t.ws.ok(&[
        "restore",
        &t.id,
        "--target",
        "app",
        "--into",
        one.to_str().unwrap(),
    ]);
    assert_eq!(names_in(&one), ["app"]);
    Fingerprint::of(&one.join("app")).assert_same(&Fingerprint::of(&t.app), "app alone");
}

#[test]
fn into_a_file_or_a_database_url_for_a_folder_target_is_refused() {
    let t = two();
    let file = t.ws.path("a-file");
    std::fs::write(&file, b"mine\n").unwrap();
    t.ws.run(&["restore", &t.id, "--into", file.to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_has("is a file, not a folder");
    assert_eq!(std::fs::read(&file).unwrap(), b"mine\n");

    t.ws.run(&[
        "restore",
        &t.id,
        "--target",
        "app",
        "--into",
        "postgres://u@localhost/db",
    ])
    .assert_code(2)
    .assert_stderr_has("takes a folder for it, not a database URL");
}

#[test]
fn into_refuses_an_existing_database_file_before_writing_any_target() {
    let t = two();
    let into = t.ws.path("busy");
    write_file(&into.join("shop/shop.db"), b"not mine to replace\n");
    t.ws.run(&["restore", &t.id, "--into", into.to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_has("exists");
    assert_eq!(names_in(&into), ["shop"], "app was not written either");
    assert_eq!(
        std::fs::read(into.join("shop/shop.db")).unwrap(),
        b"not mine to replace\n"
    );
}

// ---- --include ----

#[test]
fn include_into_restores_only_the_matching_paths() {
    let t = two();
    let out = t.ws.path("part");
    t.ws.ok(&[
        "restore",
        &t.id,
        "--target",
        "app",
        "--include",
        "config/*.toml",
        "--into",
        out.to_str().unwrap(),
    ]);
    // `*` stays in its folder: config/sub/deep.toml is not matched.
    assert_eq!(names_in(&out.join("app")), ["config"]);
    assert_eq!(names_in(&out.join("app/config")), ["app.toml", "db.toml"]);
    assert_eq!(
        std::fs::read(out.join("app/config/app.toml")).unwrap(),
        b"port = 80\n"
    );

    // A folder brings everything below it; patterns repeat.
    let out2 = t.ws.path("part2");
    t.ws.ok(&[
        "restore",
        &t.id,
        "--target",
        "app",
        "--include",
        "config/sub",
        "--include",
        "README",
        "--into",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(names_in(&out2.join("app")), ["README", "config"]);
    assert_eq!(names_in(&out2.join("app/config")), ["sub"]);
    assert_eq!(names_in(&out2.join("app/config/sub")), ["deep.toml"]);
}

#[test]
fn in_place_restore_deletes_what_was_added_since_and_keeps_the_folder() {
    use std::os::unix::fs::MetadataExt;
    let t = two();
    let inode = std::fs::metadata(&t.app).unwrap().ino();
    write_file(&t.app.join("config/app.toml"), b"broken {{{\n");
    write_file(&t.app.join("config/new.toml"), b"added since\n");
    write_file(&t.app.join("new/deeper/file"), b"added since\n");
    t.ws.ok(&["restore", &t.id, "--target", "app"]);

    // The folder holds what the snapshot holds: changed files back, added
    // ones deleted.
    assert_eq!(
        std::fs::read(t.app.join("config/app.toml")).unwrap(),
        b"port = 80\n"
    );
    assert!(!t.app.join("config/new.toml").exists());
    assert!(!t.app.join("new").exists());
    // Swapped entry by entry: the folder itself stays, and no work folder
    // is left in it.
    assert_eq!(std::fs::metadata(&t.app).unwrap().ino(), inode);
    assert!(
        !names_in(&t.app)
            .iter()
            .any(|n| n.contains("ripcord-restore")),
        "{:?}",
        names_in(&t.app)
    );
    // The safety snapshot still has what was deleted.
    let ls = t.ws.json(&["ls", "latest:safety", "app/config"]);
    assert!(ls.to_string().contains("config/new.toml"), "{ls}");
}

#[test]
fn include_in_place_touches_only_the_included_paths() {
    let t = two();
    let before_snapshots = t.ws.snapshot_ids().len();
    write_file(&t.app.join("config/app.toml"), b"broken {{{\n");
    std::fs::remove_file(t.app.join("config/db.toml")).unwrap();
    write_file(&t.app.join("config/new.toml"), b"added since\n");
    write_file(
        &t.app.join("config/sub/deep.toml"),
        b"changed, not included\n",
    );
    write_file(&t.app.join("README"), b"changed, not included\n");
    // The staging of an earlier --include restore killed half-way (by a
    // process that is gone) is cleaned up.
    write_file(
        &t.ws.path(".app.ripcord-include-999999999/config/app.toml"),
        b"stale\n",
    );

    let r = t.ws.json(&[
        "restore",
        &t.id,
        "--target",
        "app",
        "--include",
        "config/*.toml",
    ]);
    assert!(r["safety_snapshot"].is_string(), "{r}");
    assert_eq!(r["targets"][0]["included"]["replaced_count"], 1, "{r}");
    assert_eq!(r["targets"][0]["included"]["added_count"], 1, "{r}");
    let read = |rel: &str| std::fs::read(t.app.join(rel)).unwrap();
    assert_eq!(read("config/app.toml"), b"port = 80\n");
    assert_eq!(read("config/db.toml"), b"url = \"db\"\n");
    // Matched by the pattern but not in the snapshot: left, not deleted.
    assert_eq!(read("config/new.toml"), b"added since\n");
    // Not matched: untouched.
    assert_eq!(read("config/sub/deep.toml"), b"changed, not included\n");
    assert_eq!(read("README"), b"changed, not included\n");
    assert_eq!(t.ws.snapshot_ids().len(), before_snapshots + 1);
    let leftovers: Vec<String> = names_in(t.ws.root())
        .into_iter()
        .filter(|n| n.contains("ripcord-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn include_that_matches_nothing_is_refused_and_changes_nothing() {
    let t = two();
    write_file(&t.app.join("config/app.toml"), b"broken\n");
    let before = Fingerprint::of(&t.app);
    let hashes = repo_hashes(&t.ws.repo());
    t.ws.run(&[
        "restore",
        &t.id,
        "--target",
        "app",
        "--include",
        "config/ap.toml",
    ])
    .assert_code(2)
    .assert_stderr_has("--include config/ap.toml matches nothing")
    .assert_stderr_has("did you mean config/app.toml?");
    Fingerprint::of(&t.app).assert_same(&before, "after the refused restore");
    assert_eq!(repo_hashes(&t.ws.repo()), hashes, "no safety snapshot");

    let out = t.ws.path("none");
    t.ws.run(&[
        "restore",
        &t.id,
        "--target",
        "app",
        "--include",
        "nothing/*",
        "--into",
        out.to_str().unwrap(),
    ])
    .assert_code(2)
    .assert_stderr_has("matches nothing");
    assert!(!out.exists());

    for bad in ["/etc/passwd", "../x", "a[b"] {
        t.ws.run(&["restore", &t.id, "--target", "app", "--include", bad])
            .assert_code(2)
            .assert_stderr_has(bad);
    }
    // Several targets: which one the pattern is for is not guessed.
    t.ws.run(&["restore", &t.id, "--include", "README"])
        .assert_code(2)
        .assert_stderr_has("--include applies to one dir target")
        .assert_stderr_has("--target app");
    Fingerprint::of(&t.app).assert_same(&before, "after every refusal");
}

#[test]
fn include_in_place_refuses_to_put_a_file_where_a_folder_is() {
    let t = two();
    std::fs::remove_file(t.app.join("README")).unwrap();
    write_file(&t.app.join("README/inside"), b"a folder now\n");
    let before = Fingerprint::of(&t.app);
    let hashes = repo_hashes(&t.ws.repo());
    t.ws.run(&["restore", &t.id, "--target", "app", "--include", "README"])
        .assert_code(3)
        .assert_stderr_has("README is a folder in the live folder")
        .assert_stderr_has("nothing was changed");
    Fingerprint::of(&t.app).assert_same(&before, "after the refusal");
    assert_eq!(repo_hashes(&t.ws.repo()), hashes, "no safety snapshot");
}

// ---- ls ----

#[test]
fn ls_lists_files_with_sizes_and_tables_with_rows() {
    let t = two();
    let all = t.ws.json(&["ls", &t.id]);
    let entries = all["entries"].as_array().unwrap();
    let find = |target: &str, path: &str| -> Value {
        entries
            .iter()
            .find(|e| e["target"] == target && e["path"] == path)
            .unwrap_or_else(|| panic!("no {target}/{path} in {all}"))
            .clone()
    };
    let toml = find("app", "config/app.toml");
    assert_eq!(toml["kind"], "file");
    assert_eq!(toml["bytes"], 10);
    assert_eq!(toml["mode"], "0644");
    assert!(
        toml["modified_at"].as_str().unwrap().ends_with('Z'),
        "{toml}"
    );
    assert_eq!(find("app", "config/sub/")["kind"], "dir");
    assert_eq!(find("app", "link")["link"], "README");
    let orders = find("shop", "orders");
    assert_eq!(
        (orders["kind"].clone(), orders["rows"].clone()),
        ("table".into(), 3.into())
    );
    assert_eq!(find("shop", "customers")["rows"], 2);

    // A folder: it and what it holds; a file: itself.
    let sub = t.ws.json(&["ls", &t.id, "app/config/sub"]);
    let paths: Vec<&str> = sub["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["config/sub/", "config/sub/deep.toml"]);
    let one = t.ws.json(&["ls", &t.id, "shop/orders"]);
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);

    let text = t.ws.ok(&["ls", &t.id, "app"]);
    text.assert_stdout_has("app/config/app.toml")
        .assert_stdout_has("10 B")
        .assert_stdout_has("0644")
        .assert_stdout_has("app/link -> README")
        .assert_stdout_has("4 files");
}

#[test]
fn ls_of_an_unknown_path_table_or_target_is_an_error_with_a_suggestion() {
    let t = two();
    t.ws.run(&["ls", &t.id, "app/config/ap.toml"])
        .assert_code(2)
        .assert_stderr_has("no path \"config/ap.toml\"")
        .assert_stderr_has("did you mean app/config/app.toml?");
    t.ws.run(&["ls", &t.id, "shop/ordrs"])
        .assert_code(2)
        .assert_stderr_has("no table \"ordrs\"")
        .assert_stderr_has("did you mean shop/orders?");
    t.ws.run(&["ls", &t.id, "ap/config"])
        .assert_code(2)
        .assert_stderr_has("no target \"ap\"")
        .assert_stderr_has("did you mean app?");
    t.ws.run(&["ls", &t.id, "app/README/x"]).assert_code(2);
}

// ---- SQLite --tables ----

#[test]
fn sqlite_tables_in_place_restore_only_those_tables_with_their_indexes() {
    let t = two();
    Connection::open(&t.db)
        .unwrap()
        .execute_batch(
            "DELETE FROM orders WHERE id = 2;
             UPDATE orders SET total = 0;
             DROP INDEX orders_customer;
             UPDATE customers SET name = 'renamed';
             INSERT INTO notes VALUES ('second');",
        )
        .unwrap();
    let r =
        t.ws.json(&["restore", &t.id, "--target", "shop", "--tables", "orders"]);
    assert!(r["safety_snapshot"].is_string(), "{r}");
    assert_eq!(
        r["targets"][0]["tables"],
        serde_json::json!([{"table": "orders", "rows": 3, "bytes": null}]),
        "{r}"
    );
    assert_eq!(r["targets"][0]["tables_verified"], 1, "{r}");
    assert_eq!(
        rows(&t.db, "SELECT id, customer, total FROM orders ORDER BY id"),
        ["1|1|10", "2|2|20", "3|1|30"]
    );
    assert_eq!(
        rows(&t.db, "SELECT name FROM sqlite_master WHERE type = 'index'"),
        ["orders_customer"],
        "the restored table's index is back"
    );
    // Tables not named are as they were.
    assert_eq!(
        rows(&t.db, "SELECT name FROM customers ORDER BY id"),
        ["renamed", "renamed"]
    );
    assert_eq!(rows(&t.db, "SELECT body FROM notes"), ["first", "second"]);
    assert_eq!(
        rows(&t.db, "PRAGMA foreign_key_check"),
        Vec::<String>::new()
    );

    // The safety snapshot holds the table as it was before.
    let safety = r["safety_snapshot"].as_str().unwrap();
    let copy = t.ws.path("before");
    t.ws.ok(&["restore", safety, "--into", copy.to_str().unwrap()]);
    assert_eq!(
        rows(
            &copy.join("shop/shop.db"),
            "SELECT total FROM orders ORDER BY id"
        ),
        ["0", "0"]
    );
}

#[test]
fn sqlite_tables_that_would_break_foreign_keys_are_refused_and_nothing_changes() {
    let t = two();
    // A customer and an order for it, both after the snapshot: putting
    // customers back would leave that order pointing at nothing.
    Connection::open(&t.db)
        .unwrap()
        .execute_batch(
            "INSERT INTO customers VALUES (3, 'cy'); INSERT INTO orders VALUES (4, 3, 40);",
        )
        .unwrap();
    let before = sqlite::dump(&t.db);
    t.ws.run(&[
        "restore",
        &t.id,
        "--target",
        "shop",
        "--tables",
        "customers",
    ])
    .assert_code(3)
    .assert_stderr_has("foreign keys")
    .assert_stderr_has("orders");
    assert_eq!(sqlite::dump(&t.db), before);
}

#[test]
fn sqlite_unknown_table_is_refused_with_a_suggestion_before_anything_changes() {
    let t = two();
    let hashes = repo_hashes(&t.ws.repo());
    let before = sqlite::dump(&t.db);
    t.ws.run(&["restore", &t.id, "--target", "shop", "--tables", "ordrs"])
        .assert_code(2)
        .assert_stderr_has("table ordrs does not exist in snapshot")
        .assert_stderr_has("did you mean orders?");
    t.ws.run(&[
        "restore",
        &t.id,
        "--target",
        "shop",
        "--tables",
        "orders,nope",
    ])
    .assert_code(2)
    .assert_stderr_has("nope");
    // --tables is for one database target.
    t.ws.run(&["restore", &t.id, "--tables", "orders"])
        .assert_code(2)
        .assert_stderr_has("--target shop");
    t.ws.run(&["restore", &t.id, "--target", "app", "--tables", "orders"])
        .assert_code(2);
    assert_eq!(sqlite::dump(&t.db), before);
    // No live database: there is nothing to put the tables into.
    let moved = t.ws.path("moved.db");
    std::fs::rename(&t.db, &moved).unwrap();
    t.ws.run(&["restore", &t.id, "--target", "shop", "--tables", "orders"])
        .assert_code(2)
        .assert_stderr_has("does not exist");
    assert!(!t.db.exists(), "no database was made");
    std::fs::rename(&moved, &t.db).unwrap();
    assert_eq!(repo_hashes(&t.ws.repo()), hashes, "no safety snapshot");
}

#[test]
fn sqlite_tables_into_a_copy_hold_only_those_tables() {
    let t = two();
    let out = t.ws.path("copy");
    t.ws.ok(&[
        "restore",
        &t.id,
        "--target",
        "shop",
        "--tables",
        "orders,customers",
        "--into",
        out.to_str().unwrap(),
    ]);
    let db = out.join("shop/shop.db");
    assert_eq!(
        rows(
            &db,
            "SELECT type || ' ' || name FROM sqlite_master ORDER BY 1"
        ),
        ["index orders_customer", "table customers", "table orders"]
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM orders"), ["3"]);

    // A foreign key to a table left out: the copy could not be used.
    let out2 = t.ws.path("copy2");
    t.ws.run(&[
        "restore",
        &t.id,
        "--target",
        "shop",
        "--tables",
        "orders",
        "--into",
        out2.to_str().unwrap(),
    ])
    .assert_code(2)
    .assert_stderr_has("foreign key to customers")
    .assert_stderr_has("--tables orders,customers");
    assert!(!out2.exists(), "nothing left behind");
}
