//! Snapshot and restore of directory targets: into a path, several targets at
//! once, and in place behind a safety snapshot.

use ripcord_testing::data::{self, write_file};
use ripcord_testing::{sqlite, Fingerprint};

use crate::common::*;

#[test]
fn dir_roundtrip_is_byte_identical_and_honours_excludes() {
    let s = DirSetup::new(1);
    let expected = s.expected();
    // The fixture has what the comparison must cover.
    for rel in [
        &s.layout.large,
        "bin/run.sh",
        "config/secrets.env",
        "link-to-readme",
        "dangling",
        "empty-dir",
        "empty.txt",
    ] {
        assert!(expected.get(rel).is_some(), "fixture lacks {rel}");
    }
    assert_eq!(expected.get("bin/run.sh").unwrap().mode, 0o755);
    assert_eq!(expected.get("config/secrets.env").unwrap().mode, 0o600);

    let snap = s.ws.snapshot(&[] as &[&str]);
    assert_eq!(
        u64_of(&snap["files"], "files"),
        s.layout.files.len() as u64,
        "files counted: {snap}"
    );
    let id = snap["snapshot"].as_str().unwrap();
    let out = s.ws.path("out");
    let r = s.ws.json(&["restore", id, "--into", out.to_str().unwrap()]);
    assert!(
        r["safety_snapshot"].is_null(),
        "no safety snapshot for --into: {r}"
    );
    assert_eq!(
        u64_of(&r["targets"][0]["files"], "restored files"),
        s.layout.files.len() as u64
    );

    // One target among one: DIR/<target name>, as for several.
    assert_eq!(names_in(&out), ["app"]);
    let got = Fingerprint::of(&out.join("app"));
    got.assert_same(&expected, "restore --into");
    for ex in &s.layout.excluded {
        assert!(got.get(ex).is_none(), "excluded {ex} was restored");
    }
    // The source itself was not touched by snapshot and restore.
    Fingerprint::of(&s.app)
        .without_all(&s.layout.excluded)
        .assert_same(&expected, "source after snapshot");
}

#[test]
fn restore_by_prefix_and_latest() {
    let s = DirSetup::new(2);
    let expected = s.expected();
    let id = s.ws.snapshot_id(&[] as &[&str]);
    for (n, which) in [short(&id), "latest"].into_iter().enumerate() {
        let out = s.ws.path(format!("out{n}"));
        s.ws.ok(&["restore", which, "--into", out.to_str().unwrap()]);
        Fingerprint::of(&out.join("app")).assert_same(&expected, which);
    }
}

#[test]
fn restore_into_a_non_empty_folder_is_refused() {
    let s = DirSetup::new(3);
    let id = s.ws.snapshot_id(&[] as &[&str]);
    let out = s.ws.path("busy");
    write_file(&out.join("app/keep.txt"), b"mine\n");
    let before = Fingerprint::of(&out);
    let r = s.ws.run(&["restore", &id, "--into", out.to_str().unwrap()]);
    r.assert_code(2).assert_stderr_has("not empty");
    Fingerprint::of(&out).assert_same(&before, "refused destination");
}

#[test]
fn several_targets_restore_each_under_its_name() {
    let mut ws = workspace();
    let app_layout = data::standard_tree(&ws.path("app"), 4);
    let app = ws.dir_target("app", "app", &app_layout.excludes());
    let etc = ws.dir_target("etc", "etc", &[]);
    write_file(&etc.join("hosts"), b"127.0.0.1 localhost\n");
    write_file(&etc.join("app/settings.json"), b"{\"debug\": false}\n");
    let db = ws.sqlite_target("shop", "db/shop.db");
    sqlite::create_shop(&db);
    ws.init();
    let app_fp = Fingerprint::of(&app).without_all(&app_layout.excluded);
    let etc_fp = Fingerprint::of(&etc);
    let shop_rows = sqlite::dump(&db);

    let snap = ws.snapshot(&[] as &[&str]);
    let mut names: Vec<String> = snap["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["target"].as_str().expect("target").to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["app", "etc", "shop"]);
    let id = snap["snapshot"].as_str().unwrap();

    let out = ws.path("out");
    ws.ok(&["restore", id, "--into", out.to_str().unwrap()]);
    assert_eq!(names_in(&out), ["app", "etc", "shop"]);
    Fingerprint::of(&out.join("app")).assert_same(&app_fp, "app target");
    Fingerprint::of(&out.join("etc")).assert_same(&etc_fp, "etc target");
    let restored_db = out.join("shop/shop.db");
    assert!(
        restored_db.is_file(),
        "sqlite goes to PATH/<name>/<file name>"
    );
    assert_eq!(sqlite::dump(&restored_db), shop_rows);

    // One target of several: straight into PATH.
    let one = ws.path("one");
    ws.ok(&[
        "restore",
        id,
        "--target",
        "etc",
        "--into",
        one.to_str().unwrap(),
    ]);
    // One target goes where it goes among many: DIR/<name>.
    assert_eq!(names_in(&one), ["etc"]);
    Fingerprint::of(&one.join("etc")).assert_same(&etc_fp, "--target etc");

    // `latest --target etc` is the newest snapshot holding etc, although a
    // newer one holds only the database.
    ws.snapshot(&["shop"]);
    let latest = ws.path("latest-etc");
    ws.ok(&[
        "restore",
        "latest",
        "--target",
        "etc",
        "--into",
        latest.to_str().unwrap(),
    ]);
    Fingerprint::of(&latest.join("etc")).assert_same(&etc_fp, "latest --target etc");
    let r = ws.run(&[
        "restore",
        id,
        "--target",
        "nope",
        "--into",
        ws.path("x").to_str().unwrap(),
    ]);
    r.assert_code(2).assert_stderr_has("no target");
    assert!(!ws.path("x").exists());
}

#[test]
fn in_place_restore_takes_a_safety_snapshot_first() {
    let s = DirSetup::new(5);
    let original = s.expected();
    let id = s.ws.snapshot_id(&[] as &[&str]);

    // A bad deploy: new files, a deleted file, changed content, mode and link.
    write_file(&s.app.join("new.txt"), b"stray\n");
    write_file(
        &s.app.join("newdir/inner/x.bin"),
        &data::random_bytes(50, 3000),
    );
    std::fs::remove_file(s.app.join("src/lib.rs")).unwrap();
    std::fs::remove_dir_all(s.app.join("src/a")).unwrap();
    write_file(&s.app.join("config/app.toml"), b"broken = {{{\n");
    data::set_mode(&s.app.join("bin/run.sh"), 0o644);
    std::fs::remove_file(s.app.join("link-to-readme")).unwrap();
    std::os::unix::fs::symlink("config/app.toml", s.app.join("link-to-readme")).unwrap();
    let damaged = Fingerprint::of(&s.app).without_all(&s.layout.excluded);
    assert!(!damaged.differences(&original).is_empty());

    let r = s.ws.json(&["restore", &id]);
    let safety = r["safety_snapshot"]
        .as_str()
        .unwrap_or_else(|| panic!("in-place restore reports its safety snapshot: {r}"))
        .to_string();

    // The live folder is the snapshot again: extra files gone, deleted ones back,
    // and the excluded files ripcord does not manage left where they were.
    let after = Fingerprint::of(&s.app);
    after
        .without_all(&s.layout.excluded)
        .assert_same(&original, "live folder after in-place restore");
    for rel in &s.layout.excluded {
        assert!(s.app.join(rel).exists(), "excluded {rel} was kept");
    }
    // No staging folder is left beside it.
    let leftovers: Vec<String> = names_in(s.ws.root())
        .into_iter()
        .filter(|n| n.contains("ripcord-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "left beside the target: {leftovers:?}"
    );

    // The safety snapshot is listed, tagged, and holds the state before the restore.
    let listed = snapshots(&s.ws);
    let entry = listed
        .iter()
        .find(|v| v["snapshot"] == safety.as_str())
        .unwrap_or_else(|| panic!("safety snapshot {safety} not in `snapshots --json`"));
    let tags = strings(&entry["tags"]);
    assert!(tags.contains(&"safety".to_string()), "tags: {tags:?}");
    assert!(
        tags.contains(&format!("before-restore-{}", short(&id))),
        "tags: {tags:?}"
    );
    let tagged = s.ws.json(&["snapshots", "--tag", "safety"]);
    assert_eq!(tagged.as_array().unwrap().len(), 1, "{tagged}");
    assert_restores_to(&s.ws, &safety, &damaged, "safety snapshot");
}
