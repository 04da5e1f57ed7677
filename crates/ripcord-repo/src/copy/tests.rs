use std::sync::Arc;

use super::*;
use crate::backend::LocalBackend;
use crate::manifest::Node;

fn fresh(pass: Option<&str>) -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(Arc::new(LocalBackend::new(dir.path())), pass).unwrap();
    (dir, repo)
}

fn file(name: &str, chunks: Vec<Id>, size: u64) -> Node {
    Node {
        content: chunks,
        size,
        ..Node::new(name.as_bytes(), NodeKind::File)
    }
}

fn dir(name: &str, subtree: Id) -> Node {
    Node {
        subtree: Some(subtree),
        ..Node::new(name.as_bytes(), NodeKind::Dir)
    }
}

fn target(name: &str, content: Content) -> TargetSnapshot {
    TargetSnapshot {
        name: name.into(),
        source: "/src".into(),
        size: 0,
        items: 3,
        git_commit: None,
        migration_version: None,
        migration: None,
        entries: Some(10),
        content,
    }
}

fn manifest(targets: Vec<TargetSnapshot>, parent: Option<Id>) -> Snapshot {
    Snapshot {
        time: chrono::Utc::now(),
        host: "h".into(),
        user: "u".into(),
        tags: vec!["t".into()],
        tier: Some("hot".into()),
        parent,
        targets,
        program_version: "test".into(),
        audit: None,
        copied_from: None,
    }
}

/// A snapshot of a dir target (`a`, `sub/b`, sharing a blob) and a SQLite
/// image; `extra` adds a file with new content.
fn take(repo: &Repository, extra: Option<&[u8]>, parent: Option<Id>) -> Id {
    let mut index = repo.load_index().unwrap();
    repo.index_orphan_packs(&mut index).unwrap();
    let saver = Saver::new(repo, Arc::new(index), SaverOptions::default());
    let blob = |data: &[u8]| saver.save(BlobKind::Data, data.to_vec()).unwrap();
    let (c1, c2, c3) = (blob(b"one"), blob(b"two"), blob(b"three"));
    let tree = |nodes: Vec<Node>| {
        saver
            .save(BlobKind::Tree, serde_json::to_vec(&Tree { nodes }).unwrap())
            .unwrap()
    };
    let sub = tree(vec![file("b", vec![c2, c3], 8)]);
    let mut nodes = vec![file("a", vec![c1, c2], 6), dir("sub", sub)];
    if let Some(x) = extra {
        nodes.push(file("x", vec![blob(x)], x.len() as u64));
    }
    let root = tree(nodes);
    let image = Stream {
        size: 9,
        checksum: "c".into(),
        chunks: vec![c1, blob(b"image")],
    };
    saver.finish().unwrap();
    let snap = manifest(
        vec![
            target("app", Content::Dir { tree: root }),
            target(
                "db",
                Content::Sqlite {
                    image,
                    tables: vec![],
                    stamp: None,
                },
            ),
        ],
        parent,
    );
    repo.save_snapshot(&snap).unwrap()
}

/// Every file of a dir target as (path, plaintext), and a SQLite image.
fn contents(repo: &Repository, snap: &Snapshot) -> Vec<(String, Vec<u8>)> {
    let index = repo.load_index().unwrap();
    let mut out = Vec::new();
    crate::walk::walk_snapshot(repo, &index, snap, &mut |item| match item {
        crate::walk::Item::Chunks { path, chunks } => {
            let data: Vec<u8> = chunks
                .iter()
                .flat_map(|c| repo.read_blob(&index, c).unwrap())
                .collect();
            out.push((path.to_string(), data));
        }
        crate::walk::Item::BrokenTree { error, .. } => panic!("{error}"),
        crate::walk::Item::Tree { .. } => {}
    })
    .unwrap();
    out.sort();
    out
}

fn copy_all(src: &Repository, dst: &Repository, ids: &[Id]) -> (Vec<Id>, CopyStats) {
    let index = src.load_index().unwrap();
    let mut copier = Copier::new(src, &index, dst, SaverOptions::default()).unwrap();
    let mut out = Vec::new();
    for id in ids {
        let snap = src.load_snapshot(id).unwrap();
        let copy = match copier.existing(*id, &snap) {
            Some(c) => c,
            None => copier.copy(*id, &snap, &|_| {}).unwrap(),
        };
        out.push(copy);
    }
    (out, copier.stats())
}

#[test]
fn ids_are_rewritten_with_the_destination_key() {
    let (_s, src) = fresh(Some("source"));
    let (_d, dst) = fresh(None);
    let id = take(&src, None, None);
    let (copies, stats) = copy_all(&src, &dst, &[id]);
    // 4 data blobs and 2 trees, the shared ones once.
    assert_eq!(stats.blobs_sent, 6, "{stats:?}");
    assert_eq!(stats.blobs_present, 0, "{stats:?}");

    let a = src.load_snapshot(&id).unwrap();
    let b = dst.load_snapshot(&copies[0]).unwrap();
    assert_eq!(b.copied_from, Some(id));
    assert_eq!((b.time, &b.tags, &b.tier), (a.time, &a.tags, &a.tier));
    assert_eq!(contents(&src, &a), contents(&dst, &b));
    let (Content::Dir { tree: ta }, Content::Dir { tree: tb }) =
        (&a.targets[0].content, &b.targets[0].content)
    else {
        panic!("dir targets")
    };
    assert_ne!(ta, tb, "tree ids are keyed per repository");
    // The copied tree is what the destination itself would have written.
    let index = dst.load_index().unwrap();
    let tree = dst.load_tree(&index, tb).unwrap();
    assert_eq!(tree.nodes[0].content[0], dst.keys().blob_id(b"one"));
    let sub = dst
        .load_tree(&index, &tree.nodes[1].subtree.unwrap())
        .unwrap();
    assert_eq!(
        sub.nodes[0].content,
        vec![dst.keys().blob_id(b"two"), dst.keys().blob_id(b"three")]
    );
    let Content::Sqlite { image, .. } = &b.targets[1].content else {
        panic!("sqlite target")
    };
    assert_eq!(image.chunks[0], dst.keys().blob_id(b"one"));

    let report = crate::verify::verify_snapshots(&dst, &copies, None, &|_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.blobs_checked, 6);
}

#[test]
fn a_copy_already_there_is_found_and_only_new_blobs_are_sent() {
    let (_s, src) = fresh(None);
    let (_d, dst) = fresh(Some("destination"));
    let first = take(&src, None, None);
    let (copies, _) = copy_all(&src, &dst, &[first]);

    // Again: found by the id it was first taken as.
    let (again, stats) = copy_all(&src, &dst, &[first]);
    assert_eq!(again, copies);
    assert_eq!(stats.blobs_sent, 0, "{stats:?}");

    // A later snapshot with one new file: its blob and the changed root.
    let second = take(&src, Some(b"new file"), Some(first));
    let (later, stats) = copy_all(&src, &dst, &[second]);
    assert_eq!(stats.blobs_sent, 2, "{stats:?}");
    let copy = dst.load_snapshot(&later[0]).unwrap();
    assert_eq!(
        copy.parent,
        Some(copies[0]),
        "the parent is the parent's copy"
    );
    let a = src.load_snapshot(&second).unwrap();
    assert_eq!(contents(&src, &a), contents(&dst, &copy));

    // Copying back finds the originals, also through a copy of a copy.
    let (back, stats) = copy_all(&dst, &src, &[copies[0], later[0]]);
    assert_eq!(back, vec![first, second]);
    assert_eq!(stats.blobs_sent, 0);
}

#[test]
fn an_interrupted_copy_is_completed_from_the_packs_it_left() {
    let (_s, src) = fresh(None);
    let (_d, dst) = fresh(None);
    let id = take(&src, Some(b"more"), None);
    // Packs written, no index and no manifest: what a kill leaves.
    let index = src.load_index().unwrap();
    {
        let dst_index = Arc::new(dst.load_index().unwrap());
        let mut copier = Copier::new(&src, &index, &dst, SaverOptions::default()).unwrap();
        let snap = src.load_snapshot(&id).unwrap();
        let saver = Saver::new(&dst, dst_index, SaverOptions::default());
        copier
            .copy_target(&saver, &snap.targets[0], &|_| {})
            .unwrap();
        let stats = saver.finish().unwrap();
        assert!(stats.new_blobs > 0);
        for (f, _) in dst.backend().list("index").unwrap() {
            dst.backend().delete(&f).unwrap();
        }
    }
    let (copies, stats) = copy_all(&src, &dst, &[id]);
    // Only the SQLite image's new blob was missing.
    assert_eq!(stats.blobs_sent, 1, "{stats:?}");
    let report = crate::verify::verify(&dst, &Default::default(), &|_, _| {}).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(
        contents(&src, &src.load_snapshot(&id).unwrap()),
        contents(&dst, &dst.load_snapshot(&copies[0]).unwrap())
    );
}

#[test]
fn a_damaged_copied_blob_is_named_with_its_file() {
    let (_s, src) = fresh(None);
    let (d, dst) = fresh(Some("destination"));
    let id = take(&src, None, None);
    let (copies, _) = copy_all(&src, &dst, &[id]);
    let index = dst.load_index().unwrap();
    let loc = index.get(&dst.keys().blob_id(b"three")).unwrap();
    let path = d.path().join(crate::pack::path(&loc.pack));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[loc.offset as usize + 30] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let report = crate::verify::verify_snapshots(&dst, &copies, None, &|_, _| {}).unwrap();
    assert!(!report.ok());
    let text = format!("{:?}", report.problems);
    assert!(text.contains("app/sub/b"), "{text}");
}
