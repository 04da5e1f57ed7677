//! A malicious snapshot (crafted with the library) whose tree names entries
//! that would land outside the destination: restore refuses (exit 3) and
//! writes nothing outside the destination.

use std::path::Path;
use std::sync::Arc;

use ripcord_repo::blob::BlobKind;
use ripcord_repo::manifest::{Content, Node, NodeKind, Snapshot, TargetSnapshot, Tree};
use ripcord_repo::saver::{Saver, SaverOptions};
use ripcord_repo::Id;
use ripcord_testing::data::write_file;
use ripcord_testing::{repo_hashes, Fingerprint, Workspace};

use crate::common::*;

fn file(name: &str, content: Id, size: u64) -> Node {
    Node {
        mode: 0o644,
        mtime: 1_600_000_000_000_000_000,
        size,
        content: vec![content],
        ..Node::new(name.as_bytes(), NodeKind::File)
    }
}

fn dir(name: &str, subtree: Id) -> Node {
    Node {
        kind: NodeKind::Dir,
        mode: 0o755,
        content: vec![],
        size: 0,
        subtree: Some(subtree),
        ..file(name, subtree, 0)
    }
}

fn symlink(name: &str, target: &str) -> Node {
    Node {
        kind: NodeKind::Symlink,
        mode: 0o777,
        content: vec![],
        size: 0,
        target: Some(target.to_string()),
        ..file(name, Id::default(), 0)
    }
}

/// Stores a snapshot of target `app` whose root tree is built by `build`
/// (given the saver and the id of a 6-byte data blob "pwned\n").
fn craft(ws: &Workspace, build: impl FnOnce(&Saver, Id) -> Vec<Node>) -> String {
    let repo = open_repo(ws);
    let index = Arc::new(repo.load_index().expect("index"));
    let saver = Saver::new(&repo, index, SaverOptions::default());
    let pwned = saver.save(BlobKind::Data, b"pwned\n".to_vec()).unwrap();
    let nodes = build(&saver, pwned);
    let root = save_tree(&saver, nodes);
    saver.finish().unwrap();
    let snapshot = Snapshot {
        time: chrono::Utc::now(),
        host: "attacker".into(),
        user: "mallory".into(),
        tags: vec!["crafted".into()],
        tier: None,
        parent: None,
        targets: vec![TargetSnapshot {
            name: "app".into(),
            source: "/srv/app".into(),
            size: 6,
            items: 1,
            git_commit: None,
            migration_version: None,
            migration: None,
            entries: None,
            content: Content::Dir { tree: root },
        }],
        program_version: "crafted".into(),
        audit: None,
        copied_from: None,
    };
    repo.save_snapshot(&snapshot).unwrap().to_hex()
}

fn save_tree(saver: &Saver, nodes: Vec<Node>) -> Id {
    saver
        .save(BlobKind::Tree, serde_json::to_vec(&Tree { nodes }).unwrap())
        .unwrap()
}

/// Every path below `root` that is not inside `dest` or the repository.
fn outside(root: &Path) -> Vec<String> {
    Fingerprint::of(root)
        .without("repo")
        .without("sandbox/a/b/dest")
        .paths()
        .into_iter()
        .map(str::to_string)
        .collect()
}

fn assert_refused(name: &str, build: impl FnOnce(&Saver, Id, &Path) -> Vec<Node>) {
    let ws = workspace();
    ws.init();
    std::fs::create_dir_all(ws.path("sandbox/a/b")).unwrap();
    write_file(&ws.path("sandbox/a/b/neighbour.txt"), b"do not touch\n");
    let root = ws.root().to_path_buf();
    let id = craft(&ws, |saver, pwned| build(saver, pwned, &root));
    let before = outside(ws.root());
    let neighbour = Fingerprint::of(&ws.path("sandbox"));
    let hashes = repo_hashes(&ws.repo());

    let dest = ws.path("sandbox/a/b/dest");
    let out = ws.run(&["restore", &id, "--into", dest.to_str().unwrap()]);
    out.assert_code(3)
        .assert_stderr_has("refusing to restore")
        .assert_stderr_has("nothing outside it was written");

    assert_eq!(
        outside(ws.root()),
        before,
        "{name}: something was written outside the destination"
    );
    // Creating the destination changes its parent's time; nothing else may change.
    Fingerprint::of(&ws.path("sandbox"))
        .without("a/b/dest")
        .without_dir_times()
        .assert_same(&neighbour.without_dir_times(), name);
    for p in [
        "escape",
        "sandbox/escape",
        "sandbox/a/escape",
        "sandbox/a/b/escape",
    ] {
        assert!(!ws.path(p).exists(), "{name}: {p} was created");
    }
    assert_eq!(repo_hashes(&ws.repo()), hashes);
}

#[test]
fn parent_dir_name_is_refused() {
    assert_refused("../escape", |_, pwned, _| vec![file("../escape", pwned, 6)]);
}

#[test]
fn name_with_a_slash_is_refused() {
    assert_refused("x/../../escape", |_, pwned, _| {
        vec![file("x/../../escape", pwned, 6)]
    });
}

#[test]
fn absolute_name_is_refused() {
    assert_refused("/absolute", |_, pwned, root| {
        vec![file(&format!("{}/escape", root.display()), pwned, 6)]
    });
}

#[test]
fn dot_dot_directory_is_refused() {
    assert_refused("..", |saver, pwned, _| {
        let sub = save_tree(saver, vec![file("escape", pwned, 6)]);
        vec![dir("..", sub)]
    });
}

#[test]
fn escape_deep_in_the_tree_is_refused() {
    assert_refused("inner/../../escape", |saver, pwned, _| {
        let inner = save_tree(
            saver,
            vec![
                file("fine.txt", pwned, 6),
                file("../../../escape", pwned, 6),
            ],
        );
        vec![file("a-first.txt", pwned, 6), dir("inner", inner)]
    });
}

#[test]
fn symlink_and_directory_with_the_same_name_are_refused() {
    // A link to outside, then a folder of the same name whose file would be
    // written through the link.
    assert_refused("link then dir", |saver, pwned, root| {
        let sub = save_tree(saver, vec![file("escape", pwned, 6)]);
        vec![
            symlink("evil", &root.join("sandbox/a").display().to_string()),
            dir("evil", sub),
        ]
    });
}

#[test]
fn a_crafted_but_harmless_snapshot_restores() {
    // The same crafting, with safe names, restores: the refusals above are
    // about the names, not about crafted snapshots.
    let ws = workspace();
    ws.init();
    let id = craft(&ws, |saver, pwned| {
        let sub = save_tree(saver, vec![file("inner.txt", pwned, 6)]);
        vec![
            file("..hidden", pwned, 6),
            dir("d", sub),
            symlink("up", "../../elsewhere"),
        ]
    });
    ws.ok(&["restore", &id, "--into", ws.path("dest").to_str().unwrap()]);
    let dest = ws.path("dest/app");
    assert_eq!(std::fs::read(dest.join("..hidden")).unwrap(), b"pwned\n");
    assert_eq!(std::fs::read(dest.join("d/inner.txt")).unwrap(), b"pwned\n");
    // A symlink is restored as a link; nothing is written through it.
    assert_eq!(
        std::fs::read_link(dest.join("up")).unwrap(),
        Path::new("../../elsewhere")
    );
    assert!(!ws.path("elsewhere").exists());
}

/// Stores a snapshot with one dir target per `(name, nodes)`, each node
/// list built by `build` (given the saver and the "pwned" blob).
fn craft_targets(
    ws: &Workspace,
    names: &[&str],
    entries: Option<u64>,
    build: impl Fn(&Saver, Id, &str) -> Vec<Node>,
) -> String {
    let repo = open_repo(ws);
    let index = Arc::new(repo.load_index().expect("index"));
    let saver = Saver::new(&repo, index, SaverOptions::default());
    let pwned = saver.save(BlobKind::Data, b"pwned\n".to_vec()).unwrap();
    let targets = names
        .iter()
        .map(|name| {
            let root = save_tree(&saver, build(&saver, pwned, name));
            TargetSnapshot {
                name: name.to_string(),
                source: "/srv/app".into(),
                size: 6,
                items: 1,
                git_commit: None,
                migration_version: None,
                migration: None,
                entries,
                content: Content::Dir { tree: root },
            }
        })
        .collect();
    saver.finish().unwrap();
    let snapshot = Snapshot {
        time: chrono::Utc::now(),
        host: "attacker".into(),
        user: "mallory".into(),
        tags: vec!["crafted".into()],
        tier: None,
        parent: None,
        targets,
        program_version: "crafted".into(),
        audit: None,
        copied_from: None,
    };
    repo.save_snapshot(&snapshot).unwrap().to_hex()
}

/// `expected` is part of the error: names are refused when the manifest is
/// read, paths inside trees when the restore meets them.
fn assert_into_refused_leaving_nothing(
    names: &[&str],
    expected: &str,
    build: impl Fn(&Saver, Id, &str) -> Vec<Node>,
) {
    let ws = workspace();
    ws.init();
    std::fs::create_dir_all(ws.path("sandbox/a/b")).unwrap();
    let root = ws.root().to_path_buf();
    let id = craft_targets(&ws, names, None, build);
    // The catalog records the refusal in the audit.
    let before = Fingerprint::of(&root).without("repo").without(".ripcord");
    let dest = ws.path("sandbox/a/b/dest");
    ws.run(&["restore", &id, "--into", dest.to_str().unwrap()])
        .assert_code(3)
        .assert_stderr_has(expected);
    // Nothing outside, and nothing left inside: the destination is gone.
    assert!(!dest.exists(), "{:?}", Fingerprint::of(&dest));
    Fingerprint::of(&root)
        .without("repo")
        .without(".ripcord")
        .without_dir_times()
        .assert_same(&before.without_dir_times(), "after the refused restore");
    assert!(!Path::new("/tmp/ripcord-escape-test").exists());
}

#[test]
fn multi_target_into_with_a_parent_dir_target_name_is_refused() {
    assert_into_refused_leaving_nothing(
        &["app", "../escape"],
        "not a plain name",
        |_, pwned, _| vec![file("f.txt", pwned, 6)],
    );
}

#[test]
fn multi_target_into_with_an_absolute_target_name_is_refused() {
    assert_into_refused_leaving_nothing(
        &["app", "/tmp/ripcord-escape-test"],
        "not a plain name",
        |_, pwned, _| vec![file("f.txt", pwned, 6)],
    );
}

#[test]
fn refused_multi_target_into_restore_leaves_nothing_behind() {
    // The first target restores fine; the second is refused half-way: what
    // the first wrote is removed again.
    assert_into_refused_leaving_nothing(
        &["app", "bad"],
        "refusing to restore",
        |saver, pwned, name| {
            if name == "bad" {
                let sub = save_tree(saver, vec![file("../../escape", pwned, 6)]);
                vec![file("a.txt", pwned, 6), dir("inner", sub)]
            } else {
                vec![file("fine.txt", pwned, 6)]
            }
        },
    );
}

/// A chain of `depth` nested folders `d/d/d/...` ending in one file.
fn deep_chain(saver: &Saver, pwned: Id, depth: usize) -> Vec<Node> {
    let mut tree = save_tree(saver, vec![file("bottom.txt", pwned, 6)]);
    for _ in 1..depth {
        tree = save_tree(saver, vec![dir("d", tree)]);
    }
    vec![dir("d", tree)]
}

#[test]
fn a_30000_level_tree_is_refused_without_overflowing_the_stack() {
    let ws = workspace();
    ws.init();
    let id = craft_targets(&ws, &["app"], None, |saver, pwned, _| {
        deep_chain(saver, pwned, 30_000)
    });
    let dest = ws.path("dest");
    ws.run(&["restore", &id, "--into", dest.to_str().unwrap()])
        .assert_code(3)
        .assert_stderr_has("levels deep");
    assert!(!dest.exists());
    ws.run(&["verify"])
        .assert_code(1)
        .assert_stdout_has("levels deep");
    let other = craft_targets(&ws, &["app"], None, |saver, pwned, _| {
        deep_chain(saver, pwned, 29_999)
    });
    ws.run(&["diff", &id, &other])
        .assert_code(1)
        .assert_stderr_has("levels deep");
}

#[test]
fn a_tree_of_shared_subtrees_expanding_to_2_pow_40_is_refused_quickly() {
    let ws = workspace();
    ws.init();
    for entries in [None, Some(100)] {
        let id = craft_targets(&ws, &["app"], entries, |saver, pwned, _| {
            let mut tree = save_tree(saver, vec![file("leaf.txt", pwned, 6)]);
            for _ in 0..40 {
                tree = save_tree(saver, vec![dir("a", tree), dir("b", tree)]);
            }
            vec![dir("top", tree)]
        });
        let start = std::time::Instant::now();
        let dest = ws.path("dest");
        ws.run(&["restore", &id, "--into", dest.to_str().unwrap()])
            .assert_code(3)
            .assert_stderr_has("entries the snapshot recorded");
        assert!(!dest.exists());
        let out = ws.run(&["verify", &id]);
        out.assert_code(1)
            .assert_stdout_has("entries the snapshot recorded");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "took {:?}",
            start.elapsed()
        );
    }
}
