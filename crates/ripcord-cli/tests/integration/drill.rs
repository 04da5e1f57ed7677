//! `ripcord drill`: the latest snapshots restored into scratch, checked,
//! timed, kept in the history, and the live targets left alone.

use ripcord_testing::app::{pg_app, rows, sqlite_exec};

use crate::common::*;

#[test]
fn a_drill_restores_every_target_into_scratch_and_leaves_the_live_ones_alone() {
    let mut s = DirSetup::new(51);
    let db = s.ws.path("app.db");
    sqlite_exec(
        &db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b');",
    );
    s.ws.append_config(&format!(
        "[targets.db]\nkind = \"sqlite\"\npath = \"{}\"\n\n[objectives]\nrto = \"5m\"\n",
        db.display()
    ));
    s.ws.ok(&["snapshot"]);
    let before = ripcord_testing::Fingerprint::of(&s.app);
    s.ws.ok(&["check"])
        .assert_stdout_has("no restore drill yet");
    let out = s.ws.run(&["--json", "drill", "--report", "drill.md"]);
    out.assert_ok();
    let doc = out.json();
    assert_eq!(doc["result"], "passed", "{doc}");
    assert_eq!(doc["targets"].as_array().unwrap().len(), 2, "{doc}");
    for t in doc["targets"].as_array().unwrap() {
        assert_eq!(t["rto_met"], true, "{t}");
        assert!(t["snapshot"].is_string(), "{t}");
    }
    let db_target = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "db")
        .unwrap();
    assert!(
        db_target["checked"]
            .as_str()
            .unwrap()
            .contains("1 table matching"),
        "{db_target}"
    );
    let md = std::fs::read_to_string(s.ws.path("drill.md")).unwrap();
    assert!(
        md.contains("# Restore drill") && md.contains("| db | sqlite |"),
        "{md}"
    );
    assert_eq!(ripcord_testing::Fingerprint::of(&s.app), before);
    s.ws.ok(&["check"])
        .assert_stdout_has("the last restore drill passed");
    s.ws.run(&["drill", "nope"]).assert_code(2);
}

#[test]
fn a_drill_over_a_damaged_snapshot_fails_and_says_which_target() {
    let s = DirSetup::new(52);
    let snap = s.ws.snapshot_id(&[] as &[&str]);
    let blobs = file_blobs(&s.ws, &snap, "app", "config/app.toml");
    flip_byte(
        &pack_file(&s.ws, &blobs[0].pack),
        blobs[0].offset as u64 + blobs[0].length as u64 / 2,
    );
    s.ws.run(&["drill"])
        .assert_code(1)
        .assert_stdout_has("FAILED")
        .assert_stderr_has("the drill failed: app did not restore");
    s.ws.run(&["check"])
        .assert_code(1)
        .assert_stdout_has("the last restore drill failed");
}

#[test]
fn a_drill_of_postgres_restores_into_a_new_database_and_drops_it() {
    let (ws, db) = pg_app(bin(), "drill_pg", "");
    ripcord_testing::app::exec(
        &db,
        "CREATE TABLE orders (id int PRIMARY KEY, total int); \
         INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 500) g;",
    );
    ws.ok(&["snapshot"]);
    let doc = ws.json(&["drill"]);
    assert_eq!(doc["result"], "passed", "{doc}");
    assert_eq!(doc["targets"][0]["kind"], "postgres", "{doc}");
    assert!(
        doc["targets"][0]["checked"]
            .as_str()
            .unwrap()
            .contains("matching the snapshot's rows and checksums"),
        "{doc}"
    );
    assert!(
        rows(
            "postgres",
            "SELECT datname FROM pg_database WHERE datname LIKE 'ripcord_drill_%'"
        )
        .is_empty(),
        "the scratch database is dropped"
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM orders"), ["500"]);
}

#[test]
fn check_says_when_a_tier_is_overdue_for_each_of_its_targets() {
    let mut s = DirSetup::new(53);
    s.ws.append_config(
        "[tiers.hot]\nevery = \"1h\"\nmax_age = \"2s\"\nkeep = { last = 3 }\ntargets = [\"app\"]\n",
    );
    s.ws.run(&["check"])
        .assert_code(1)
        .assert_stdout_has("tier hot: app")
        .assert_stdout_has("no snapshot of this tier yet");
    // A snapshot of another tier (none) does not count.
    s.ws.ok(&["snapshot"]);
    s.ws.run(&["check"]).assert_code(1);
    s.ws.ok(&["snapshot", "--tier", "hot"]);
    s.ws.ok(&["check"]).assert_stdout_has("max age 2s");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    s.ws.run(&["check"])
        .assert_code(1)
        .assert_stdout_has("overdue: the newest is");
    s.ws.append_config("[tiers.cold]\nmax_age = \"1d\"\ntargets = [\"nope\"]\n");
    s.ws.run(&["check"])
        .assert_code(2)
        .assert_stderr_has("tiers.cold.targets: no target \"nope\"");
}

#[test]
fn check_reports_a_stale_lock_until_unlock() {
    let s = DirSetup::new(54);
    let killed =
        s.ws.run_env(&["snapshot"], &[("RIPCORD_FAILPOINT", "before-manifest")]);
    assert_eq!(killed.signal, Some(9), "{killed}");
    s.ws.ok(&["check"])
        .assert_stdout_has("WARN   locks")
        .assert_stdout_has("1 stale lock left by a process that ended")
        .assert_stdout_has("ripcord unlock");
    s.ws.ok(&["unlock"]);
    let out = s.ws.ok(&["check"]);
    assert!(!out.stdout.contains("stale lock"), "{out}");
}
