//! The library against repository files crafted or damaged on disk.

use std::sync::Arc;

use ripcord_repo::backend::{Backend, LocalBackend};
use ripcord_repo::manifest::Snapshot;
use ripcord_repo::repo::open_small_file;
use ripcord_repo::{Error, Repository};

fn fresh(pass: Option<&str>) -> (tempfile::TempDir, Arc<LocalBackend>, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(LocalBackend::new(dir.path()));
    let repo = Repository::init(backend.clone(), pass).unwrap();
    (dir, backend, repo)
}

fn snapshot() -> Snapshot {
    Snapshot {
        time: chrono::Utc::now(),
        host: "h".into(),
        user: "u".into(),
        tags: vec![],
        tier: None,
        parent: None,
        targets: vec![],
        program_version: "test".into(),
        audit: None,
        copied_from: None,
    }
}

#[test]
fn plain_config_over_an_encrypted_repository_is_refused() {
    let (_d, backend, repo) = fresh(Some("pw"));
    repo.save_snapshot(&snapshot()).unwrap();
    let (_p, plain_backend, _) = fresh(None);
    let plain = plain_backend.get("config").unwrap();
    std::fs::write(backend.root().join("config"), &plain).unwrap();

    let err = Repository::open(backend.clone(), None).err().unwrap();
    assert!(matches!(err, Error::Untrusted { .. }), "{err}");
    assert!(err.to_string().contains("key file"), "{err}");
    for (k, _) in backend.list("keys").unwrap() {
        backend.delete(&k).unwrap();
    }
    let err = Repository::open(backend.clone(), None).err().unwrap();
    assert!(err.to_string().contains("is encrypted"), "{err}");
    // An honest unencrypted repository opens, but not with a passphrase.
    assert!(Repository::open(plain_backend.clone(), None).is_ok());
    let err = Repository::open(plain_backend, Some("pw")).err().unwrap();
    assert!(matches!(err, Error::Untrusted { .. }), "{err}");
}

#[test]
fn no_key_file_is_not_a_wrong_passphrase() {
    let (_d, backend, _) = fresh(Some("pw"));
    for (k, _) in backend.list("keys").unwrap() {
        backend.delete(&k).unwrap();
    }
    let err = Repository::open(backend, Some("pw")).err().unwrap();
    assert!(matches!(err, Error::NoKey { .. }), "{err}");
}

#[test]
fn damaged_manifests_are_listed_apart() {
    let (_d, _b, repo) = fresh(Some("pw"));
    let good = repo.save_snapshot(&snapshot()).unwrap();
    let bad = repo.save_file("snapshots", b"[1, 2, 3]").unwrap();
    let list = repo.snapshot_list().unwrap();
    assert_eq!(list.snapshots.len(), 1);
    assert_eq!(list.snapshots[0].0, good);
    assert_eq!(list.damaged.len(), 1);
    assert_eq!(list.damaged[0].id, bad);
    assert!(list.damaged[0]
        .warning()
        .contains(&format!("ripcord forget {}", bad.short())));
    let (found, skipped) = repo.find_snapshot_noting("latest").unwrap();
    assert_eq!(found.0, good);
    assert_eq!(skipped.len(), 1);
    // prune will not guess what a damaged manifest uses.
    let err = ripcord_repo::prune::prune(&repo, true).err().unwrap();
    assert!(err.to_string().contains("ripcord forget"), "{err}");
}

#[test]
fn small_files_do_not_expand_without_bound() {
    let keys = ripcord_repo::crypto::Keys::plain([3; 32]);
    let bomb = zstd::bulk::compress(&vec![b' '; 80 << 20], 3).unwrap();
    let err = open_small_file(&keys, &bomb).unwrap_err();
    assert!(err.contains("expands beyond"), "{err}");
    let ok = zstd::bulk::compress(b"{}", 3).unwrap();
    assert_eq!(open_small_file(&keys, &ok).unwrap(), b"{}");
}
