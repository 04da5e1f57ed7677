//! In-place restores never delete what they cannot bring back: names that
//! are not UTF-8, fifos, sockets and device nodes are stored and restored;
//! excluded and protected paths stay exactly where they are; a symlinked
//! target path is followed and kept; a target of `.` holding the repository
//! restores.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use ripcord_testing::data::write_file;
use ripcord_testing::fingerprint::Kind;
use ripcord_testing::{Fingerprint, Workspace};

use crate::common::*;

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .expect("mkfifo");
}

/// A socket file: bound, then the listener is dropped (the file stays).
fn mksocket(path: &Path) {
    drop(std::os::unix::net::UnixListener::bind(path).expect("bind a socket"));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A target `app` with a non-UTF-8 file name, folder name and link target,
/// a fifo and a socket.
fn odd_workspace() -> (Workspace, PathBuf) {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &["*.tmp"]);
    write_file(&app.join("plain.txt"), b"plain\n");
    write_file(&app.join(os(b"caf\xe9.txt")), b"latin-1 name\n");
    write_file(&app.join(os(b"dir-\xff")).join("inner.txt"), b"inside\n");
    std::os::unix::fs::symlink(os(b"caf\xe9.txt"), app.join("link-latin1")).unwrap();
    mkfifo(&app.join("pipe"));
    mksocket(&app.join("sock"));
    ws.init();
    (ws, app)
}

#[test]
fn non_utf8_names_fifos_and_sockets_survive_an_in_place_restore() {
    let (ws, app) = odd_workspace();
    let before = Fingerprint::of(&app);
    let snap = ws.snapshot(&[] as &[&str]);
    let out = ws.run(&["snapshot"]);
    assert!(
        !out.all_text().contains("skipped"),
        "nothing is skipped any more:\n{out}"
    );
    let id = snap["snapshot"].as_str().unwrap().to_string();

    // --into brings every entry back, with its kind and bytes.
    let into = ws.path("into");
    ws.ok(&["restore", &id, "--into", into.to_str().unwrap()]);
    let into = into.join("app");
    Fingerprint::of(&into).assert_same(&before, "restore --into");
    assert!(std::fs::symlink_metadata(into.join("pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(into.join("sock"))
        .unwrap()
        .file_type()
        .is_socket());
    assert_eq!(
        std::fs::read_link(into.join("link-latin1")).unwrap(),
        Path::new(os(b"caf\xe9.txt"))
    );

    // In place, after the odd entries were removed and others changed:
    // everything comes back, and the safety snapshot holds the odd state.
    std::fs::remove_file(app.join(os(b"caf\xe9.txt"))).unwrap();
    std::fs::remove_file(app.join("pipe")).unwrap();
    write_file(&app.join(os(b"new-\xfe")), b"new odd name\n");
    mkfifo(&app.join("pipe2"));
    let changed = Fingerprint::of(&app);
    let r = ws.json(&["restore", &id]);
    Fingerprint::of(&app).assert_same(&before, "in-place restore");
    let safety = r["safety_snapshot"].as_str().expect("safety snapshot");
    assert_restores_to(&ws, safety, &changed, "the safety snapshot");
}

#[test]
fn device_nodes_are_stored_and_restored_when_root() {
    if !is_root() {
        eprintln!("skipped: creating device nodes needs root");
        return;
    }
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    write_file(&app.join("plain.txt"), b"plain\n");
    let null = app.join("null");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &null,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .expect("mknod c 1 3");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        app.join("loop"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o660),
        rustix::fs::makedev(7, 200),
    )
    .expect("mknod b 7 200");
    ws.init();
    let before = Fingerprint::of(&app);
    assert_eq!(before.get("null").unwrap().kind, Kind::CharDevice);
    let id = ws.snapshot_id(&[] as &[&str]);

    std::fs::remove_file(&null).unwrap();
    ws.ok(&["restore", &id]);
    Fingerprint::of(&app).assert_same(&before, "devices restored in place");
    let into = ws.path("into");
    ws.ok(&["restore", &id, "--into", into.to_str().unwrap()]);
    Fingerprint::of(&into.join("app")).assert_same(&before, "devices restored --into");
}

#[test]
fn live_excluded_file_is_not_replaced_by_an_older_copy() {
    // Saved while it was not excluded; excluded since. The restore leaves
    // the live file, newer and not in the safety snapshot, as it is.
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    write_file(&app.join("keep.txt"), b"v1\n");
    write_file(&app.join("cache/secret.tmp"), b"old secret\n");
    ws.init();
    let id = ws.snapshot_id(&[] as &[&str]);
    let text = ws
        .config_text()
        .replace("exclude = []", "exclude = [\"*.tmp\"]");
    std::fs::write(ws.config_path(), text).unwrap();
    write_file(&app.join("keep.txt"), b"v2\n");
    write_file(&app.join("cache/secret.tmp"), b"new secret\n");
    ws.ok(&["restore", &id]);
    assert_eq!(std::fs::read(app.join("keep.txt")).unwrap(), b"v1\n");
    assert_eq!(
        std::fs::read(app.join("cache/secret.tmp")).unwrap(),
        b"new secret\n"
    );
}

#[test]
fn excluded_file_is_never_moved_through_a_restored_symlink() {
    // The snapshot has `data` as a link to a folder outside the target; the
    // live `data` is a folder holding an excluded file. Moving that file
    // into the restored tree would put it outside: refused, nothing changed.
    let mut ws = workspace();
    let outside = ws.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let app = ws.dir_target("app", "app", &["*.tmp"]);
    write_file(&app.join("a.txt"), b"a\n");
    std::os::unix::fs::symlink(&outside, app.join("data")).unwrap();
    ws.init();
    let id = ws.snapshot_id(&[] as &[&str]);

    std::fs::remove_file(app.join("data")).unwrap();
    write_file(&app.join("data/secret.tmp"), b"secret\n");
    write_file(&app.join("data/real.txt"), b"real\n");
    let before = Fingerprint::of(&app);
    ws.run(&["restore", &id])
        .assert_code(3)
        .assert_stderr_has("secret.tmp")
        .assert_stderr_has("nothing was changed");
    Fingerprint::of(&app).assert_same(&before, "refused restore");
    assert!(names_in(&outside).is_empty(), "{:?}", names_in(&outside));
    assert_eq!(
        names_in(&app),
        ["a.txt", "data"],
        "no work folder left behind"
    );
    // The safety snapshot was taken; nothing else happened.
    assert_eq!(ws.snapshot_ids().len(), 2);
}

#[test]
fn symlinked_target_path_is_restored_into_the_linked_folder() {
    let mut ws = workspace();
    let r1 = ws.path("releases/r1");
    write_file(&r1.join("app.conf"), b"r1\n");
    write_file(&r1.join("bin/run"), b"run\n");
    std::os::unix::fs::symlink("releases/r1", ws.path("current")).unwrap();
    ws.dir_target("app", "current", &[]);
    ws.init();
    let before = Fingerprint::of(&r1);
    let id = ws.snapshot_id(&[] as &[&str]);

    write_file(&r1.join("app.conf"), b"broken\n");
    std::fs::remove_file(r1.join("bin/run")).unwrap();
    ws.ok(&["restore", &id]);
    assert_eq!(
        std::fs::read_link(ws.path("current")).unwrap(),
        Path::new("releases/r1"),
        "the link is kept"
    );
    Fingerprint::of(&r1).assert_same(&before, "the linked folder");
    assert_eq!(names_in(&ws.path("releases")), ["r1"]);

    // A link to a folder that is gone: restored there, the link kept.
    std::fs::remove_file(ws.path("current")).unwrap();
    std::os::unix::fs::symlink("releases/r2", ws.path("current")).unwrap();
    ws.ok(&["restore", &id]);
    assert_eq!(
        std::fs::read_link(ws.path("current")).unwrap(),
        Path::new("releases/r2")
    );
    Fingerprint::of(&ws.path("releases/r2")).assert_same(&before, "the new linked folder");
}

#[test]
fn repository_inside_the_target_is_left_out_and_survives_restore() {
    // `init` puts the repository in the folder it protects; a target of `.`
    // covers it, the configuration and the catalog.
    let mut ws = workspace();
    ws.append_config("[targets.here]\nkind = \"dir\"\npath = \".\"\n");
    ws.init();
    write_file(&ws.path("site/index.html"), b"<h1>v1</h1>\n");
    let snap = ws.run(&["snapshot"]);
    snap.assert_ok()
        .assert_stdout_has("left")
        .assert_stdout_has("repo")
        .assert_stdout_has("ripcord.toml")
        .assert_stdout_has(".ripcord");
    let id = ws.snapshot_ids()[0].clone();
    let copy = ws.path("copy");
    ws.ok(&["restore", &id, "--into", copy.to_str().unwrap()]);
    assert_eq!(
        names_in(&copy.join("here")),
        ["site"],
        "only the site was saved"
    );
    std::fs::remove_dir_all(&copy).unwrap();

    let config = std::fs::read(ws.config_path()).unwrap();
    write_file(&ws.path("site/index.html"), b"<h1>broken</h1>\n");
    write_file(&ws.path("site/extra.html"), b"extra\n");
    let entries_before = ws.json(&["audit"]).as_array().unwrap().len();
    ws.ok(&["restore", &id]);
    assert_eq!(
        std::fs::read(ws.path("site/index.html")).unwrap(),
        b"<h1>v1</h1>\n"
    );
    assert!(!ws.path("site/extra.html").exists());
    assert_eq!(std::fs::read(ws.config_path()).unwrap(), config);
    // The catalog was neither saved nor put back: it holds every entry,
    // the restore's too.
    let entries = ws.json(&["audit"]).as_array().unwrap().len();
    assert_eq!(entries, entries_before + 1);
    ws.ok(&["audit", "--verify"]);
    // Every snapshot is still there and the repository verifies.
    assert_eq!(
        ws.snapshot_ids().len(),
        2,
        "the snapshot and the safety snapshot"
    );
    let report = ws.json(&["verify", "--deep"]);
    assert!(
        report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
    // No work folder is left in the target.
    assert!(
        !names_in(ws.root())
            .iter()
            .any(|n| n.starts_with(".ripcord-restore")),
        "{:?}",
        names_in(ws.root())
    );
}

#[test]
fn old_snapshot_holding_the_repository_does_not_replace_it() {
    // A snapshot written before the repository was left out holds a copy
    // of it (crafted here: `repo/config` and `ripcord.toml` with stale
    // bytes). Restoring it in place keeps the live repository and
    // configuration: every snapshot survives.
    let mut ws = workspace();
    ws.append_config("[targets.here]\nkind = \"dir\"\npath = \".\"\n");
    ws.init();
    write_file(&ws.path("site/index.html"), b"v1\n");
    let real = ws.snapshot_id(&[] as &[&str]);
    let crafted = craft_here(
        &ws,
        &[
            ("repo/config", b"stale\n"),
            ("ripcord.toml", b"stale\n"),
            ("site/index.html", b"old\n"),
        ],
    );
    let config = std::fs::read(ws.config_path()).unwrap();
    let out = ws.run(&["restore", &crafted]);
    out.assert_ok();
    assert!(out.stdout.contains("kept"), "{out}");
    assert_eq!(std::fs::read(ws.path("site/index.html")).unwrap(), b"old\n");
    assert_eq!(std::fs::read(ws.config_path()).unwrap(), config);
    let ids = ws.snapshot_ids();
    assert!(ids.contains(&real) && ids.contains(&crafted), "{ids:?}");
    let report = ws.json(&["verify"]);
    assert!(
        report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

/// Stores a snapshot of target `here` holding `files` (relative path, content).
fn craft_here(ws: &Workspace, files: &[(&str, &[u8])]) -> String {
    use ripcord_repo::blob::BlobKind;
    use ripcord_repo::manifest::{Content, Node, NodeKind, Snapshot, TargetSnapshot, Tree};
    use ripcord_repo::saver::{Saver, SaverOptions};
    use std::collections::BTreeMap;

    // Folder -> its files; one level of folders is enough here.
    let mut dirs: BTreeMap<&str, Vec<Node>> = BTreeMap::new();
    let repo = open_repo(ws);
    let index = std::sync::Arc::new(repo.load_index().unwrap());
    let saver = Saver::new(&repo, index, SaverOptions::default());
    let mut size = 0;
    for (rel, content) in files {
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let id = saver.save(BlobKind::Data, content.to_vec()).unwrap();
        size += content.len() as u64;
        dirs.entry(dir).or_default().push(Node {
            mode: 0o644,
            mtime: 1_600_000_000_000_000_000,
            size: content.len() as u64,
            content: vec![id],
            ..Node::new(name.as_bytes(), NodeKind::File)
        });
    }
    let save = |mut nodes: Vec<Node>| {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        saver
            .save(BlobKind::Tree, serde_json::to_vec(&Tree { nodes }).unwrap())
            .unwrap()
    };
    let mut root = dirs.remove("").unwrap_or_default();
    for (dir, nodes) in dirs {
        let sub = save(nodes);
        root.push(Node {
            mode: 0o755,
            mtime: 1_600_000_000_000_000_000,
            subtree: Some(sub),
            ..Node::new(dir.as_bytes(), NodeKind::Dir)
        });
    }
    let tree = save(root);
    saver.finish().unwrap();
    let snapshot = Snapshot {
        time: chrono::Utc::now(),
        host: "old".into(),
        user: "old".into(),
        tags: vec![],
        tier: None,
        parent: None,
        targets: vec![TargetSnapshot {
            name: "here".into(),
            source: ws.root().display().to_string(),
            size,
            items: files.len() as u64,
            git_commit: None,
            migration_version: None,
            migration: None,
            entries: None,
            content: Content::Dir { tree },
        }],
        program_version: "old".into(),
        audit: None,
        copied_from: None,
    };
    repo.save_snapshot(&snapshot).unwrap().to_hex()
}
