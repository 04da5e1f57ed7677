//! Repositories damaged or crafted by an attacker: a swapped config, planted
//! key files, decoders fed impossible counts, delta cycles, damaged
//! manifests and orphan packs. Nothing may leak, hang, crash or block
//! what is still intact.

use std::time::{Duration, Instant};

use ripcord_repo::blob::BlobKind;
use ripcord_repo::manifest::{Content, NodeKind};
use ripcord_repo::pack::PackEntry;
use ripcord_repo::Id;
use ripcord_testing::data::write_file;
use ripcord_testing::{repo_hashes, Fingerprint, Output, Workspace};

use crate::common::*;

/// Runs `ripcord ARGS` without any passphrase in the environment.
fn run_without_password(ws: &Workspace, args: &[&str]) -> Output {
    let mut cmd = ws.command(args);
    cmd.env_remove("RIPCORD_PASSWORD");
    ws.run_cmd(args, cmd)
}

/// The `config` file of a fresh unencrypted repository.
fn plain_config() -> Vec<u8> {
    let ws = workspace();
    run_without_password(&ws, &["init", "--insecure-no-encryption"]).assert_ok();
    std::fs::read(ws.repo().join("config")).expect("read the unencrypted config")
}

fn remove_all_in(ws: &Workspace, dir: &str) {
    for f in files_in(ws, dir) {
        std::fs::remove_file(&f).expect("remove");
    }
}

#[test]
fn plain_config_swapped_into_an_encrypted_repository_is_refused() {
    let s = DirSetup::new(801);
    let ws = &s.ws;
    ws.snapshot_id(&[] as &[&str]);
    std::fs::write(ws.repo().join("config"), plain_config()).expect("swap the config");
    let unchanged = |what: &'static str| {
        let before = repo_hashes(&ws.repo());
        move |ws: &Workspace| assert_eq!(repo_hashes(&ws.repo()), before, "{what}")
    };

    // Key files still there: the config lies.
    let check = unchanged("refused with key files");
    ws.run(&["snapshot"])
        .assert_code(3)
        .assert_stderr_has("it has 1 key file:")
        .assert_stderr_has("restore `config`");
    check(ws);
    // The attacker also deleted the key files: the manifest is encrypted.
    remove_all_in(ws, "keys");
    let check = unchanged("refused without key files");
    ws.run(&["snapshot"])
        .assert_code(3)
        .assert_stderr_has("is encrypted");
    run_without_password(ws, &["snapshot"])
        .assert_code(3)
        .assert_stderr_has("is encrypted");
    check(ws);
    // ... and every manifest and index file: a passphrase is still configured.
    remove_all_in(ws, "snapshots");
    remove_all_in(ws, "index");
    let check = unchanged("cleartext was written");
    ws.run(&["snapshot"])
        .assert_code(3)
        .assert_stderr_has("a passphrase is configured");
    check(ws);
}

#[test]
fn unencrypted_repository_opens_without_a_passphrase_only() {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    write_file(&app.join("a.txt"), b"plain\n");
    run_without_password(&ws, &["init", "--insecure-no-encryption"]).assert_ok();
    run_without_password(&ws, &["snapshot"]).assert_ok();
    run_without_password(&ws, &["verify", "--deep"]).assert_ok();
    ws.run(&["snapshots"])
        .assert_code(3)
        .assert_stderr_has("unset RIPCORD_PASSWORD");
}

#[test]
fn config_replaced_by_another_sealed_config_is_refused() {
    let s = DirSetup::new(802);
    let ws = &s.ws;
    ws.snapshot_id(&[] as &[&str]);
    // A config sealed with the same master key, but not the one the key was made for.
    let repo = open_repo(ws);
    let mut config = repo.config().clone();
    config.chunker.avg /= 2;
    let mut bytes = std::fs::read(ws.repo().join("config")).unwrap()[..9].to_vec();
    bytes.extend(repo.keys().seal(serde_json::to_vec(&config).unwrap()));
    std::fs::write(ws.repo().join("config"), bytes).unwrap();
    ws.run(&["snapshots"])
        .assert_code(3)
        .assert_stderr_has("not the one key");
}

/// Replaces the only key file with a copy whose `field` is `value`.
fn plant_key_file(ws: &Workspace, field: &str, value: serde_json::Value) -> Id {
    let keys = files_in(ws, "keys");
    assert_eq!(keys.len(), 1);
    let mut kf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&keys[0]).unwrap()).unwrap();
    kf[field] = value;
    let bytes = serde_json::to_vec_pretty(&kf).unwrap();
    let id = Id::of_file(&bytes);
    std::fs::write(ws.repo().join("keys").join(id.to_hex()), bytes).unwrap();
    id
}

#[test]
fn key_file_with_huge_kdf_cost_is_damaged_and_never_run() {
    let s = DirSetup::new(803);
    let ws = &s.ws;
    ws.snapshot_id(&[] as &[&str]);
    let good = files_in(ws, "keys").remove(0);
    let planted = plant_key_file(ws, "t_cost", 1_000_000.into());

    // Next to a good key it is skipped, listed as damaged, and can be
    // removed by id.
    ws.ok(&["snapshots"]);
    let listed = ws.run(&["key", "list", "--json"]);
    listed.assert_code(0).assert_stderr_has("out of range");
    let keys: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listed}");
    assert!(keys
        .iter()
        .any(|k| k["key"] == planted.to_hex() && k["damaged"].is_string()));
    ws.ok(&["key", "remove", &planted.to_hex()[..12]]);
    let planted = plant_key_file(ws, "m_cost", u32::MAX.into());
    std::fs::remove_file(&good).unwrap();

    // Alone it is reported as damaged, at once.
    let start = Instant::now();
    ws.run(&["snapshots"])
        .assert_code(1)
        .assert_stderr_has(&format!("keys/{}", planted.to_hex()))
        .assert_stderr_has("out of range")
        .assert_stderr_has("was not used");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "key derivation ran"
    );
}

#[test]
fn repository_without_key_files_says_no_key_found() {
    let s = DirSetup::new(804);
    let ws = &s.ws;
    remove_all_in(ws, "keys");
    let out = ws.run(&["snapshots"]);
    out.assert_code(1).assert_stderr_has("no key found");
    assert!(
        !out.stderr.contains("wrong passphrase"),
        "blames the passphrase\n{out}"
    );
}

#[test]
fn index_entry_count_0xffffffff_is_refused_without_allocating() {
    let s = DirSetup::new(805);
    let ws = &s.ws;
    ws.snapshot_id(&[] as &[&str]);
    let repo = open_repo(ws);
    let mut bytes = vec![0xab; 32];
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0; 45]);
    let bad = repo.save_file("index", &bytes).unwrap();

    let out = ws.run(&["verify"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains(&format!("index/{}", bad.to_hex()))
            && out.stdout.contains("4294967295 entries"),
        "{out}"
    );
    ws.run(&["snapshot"])
        .assert_code(1)
        .assert_stderr_has("4294967295 entries");
}

/// Two chunk ids of the snapshot's files, and where the first is stored.
fn two_chunks(ws: &Workspace, snapshot: &str) -> (Id, Id) {
    let repo = open_repo(ws);
    let index = repo.load_index().unwrap();
    let snap = repo.load_snapshot(&id(snapshot)).unwrap();
    let Content::Dir { tree } = &snap.targets[0].content else {
        panic!("dir target")
    };
    let mut chunks = Vec::new();
    let mut trees = vec![*tree];
    while let Some(t) = trees.pop() {
        for n in repo.load_tree(&index, &t).unwrap().nodes {
            match n.kind {
                NodeKind::Dir => trees.push(n.subtree.unwrap()),
                NodeKind::File => chunks.extend(n.content),
                _ => {}
            }
        }
    }
    chunks.sort();
    chunks.dedup();
    assert!(chunks.len() >= 2);
    (chunks[0], chunks[1])
}

#[test]
fn blob_delta_cycle_is_refused_not_a_stack_overflow() {
    let s = DirSetup::new(806);
    let ws = &s.ws;
    let snap = ws.snapshot_id(&[] as &[&str]);
    let (a, b) = two_chunks(ws, &snap);
    let repo = open_repo(ws);
    let index = repo.load_index().unwrap();
    // A new index file lists both blobs again, each as a delta of the other.
    let entry = |id: Id, base: Id| {
        let l = index.get(&id).unwrap();
        (
            l.pack,
            PackEntry {
                kind: BlobKind::Data,
                id,
                offset: l.offset,
                length: l.length,
                raw_length: l.raw_length,
                base: Some(base),
            },
        )
    };
    let (pa, ea) = entry(a, b);
    let (pb, eb) = entry(b, a);
    repo.save_index(&[(pa, vec![ea]), (pb, vec![eb])]).unwrap();

    let dest = ws.path("restored");
    // A damaged snapshot is refused (3), not a crash.
    ws.run(&["restore", &snap, "--into", dest.to_str().unwrap()])
        .assert_code(3)
        .assert_stderr_has("base chains longer than 1");
    let out = ws.run(&["verify", "--deep"]);
    out.assert_code(1);
    assert!(out.stdout.contains("itself a delta"), "{out}");
}

#[test]
fn damaged_manifest_blocks_nothing_else() {
    let s = DirSetup::new(807);
    let ws = &s.ws;
    let first = ws.snapshot_id(&[] as &[&str]);
    let expected = s.expected();
    write_file(&s.app.join("later.txt"), b"later\n");
    let second = ws.snapshot_id(&[] as &[&str]);
    // One manifest with modified bytes, one that decrypts but does not parse.
    flip_byte(&ws.repo().join("snapshots").join(&second), 40);
    let unparsable = open_repo(ws)
        .save_file("snapshots", b"{\"not\": \"a manifest\"}")
        .unwrap()
        .to_hex();
    let damaged = [&second[..8], &unparsable[..8]];

    let out = ws.ok(&["snapshots"]);
    out.assert_stdout_has(&first[..8]);
    for d in damaged {
        out.assert_stderr_has(&format!("skipped damaged snapshot {d}"))
            .assert_stderr_has(&format!("ripcord forget {d}"));
    }
    assert_eq!(snapshots(ws).len(), 1);

    // `latest` is the newest one that reads.
    let dest = ws.path("restored");
    ws.ok(&["restore", "latest", "--into", dest.to_str().unwrap()])
        .assert_stderr_has(&format!("skipped damaged snapshot {}", damaged[0]));
    Fingerprint::of(&dest.join("app")).assert_same(&expected, "restore of latest");

    // New snapshots and the safety snapshot of an in-place restore go on.
    write_file(&s.app.join("third.txt"), b"third\n");
    let third = ws.snapshot_id(&[] as &[&str]);
    let restored = ws.json(&["restore", &first]);
    assert!(restored["safety_snapshot"].is_string(), "{restored}");
    Fingerprint::of(&s.app)
        .without_all(&s.layout.excluded)
        .assert_same(&expected, "in-place restore");

    // verify still reports both, and prune refuses to guess what they use.
    let out = ws.run(&["verify"]);
    out.assert_code(1);
    for d in [&second, &unparsable] {
        assert!(out.stdout.contains(&format!("snapshots/{d}")), "{out}");
    }
    ws.run(&["prune"])
        .assert_code(3)
        .assert_stderr_has("ripcord forget");

    // forget removes them by id; then everything is clean again.
    ws.ok(&["forget", damaged[0], damaged[1]]);
    ws.ok(&["verify"]);
    ws.ok(&["prune"]);
    let left = ws.snapshot_ids();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.contains(&third));
}

#[test]
fn damaged_orphan_pack_fails_deep_verify() {
    let s = DirSetup::new(808);
    let ws = &s.ws;
    ws.snapshot_id(&[] as &[&str]);
    // A copy of a pack with one byte of its first blob changed, under its
    // own (matching) name, in no index file.
    let pack = files_in(ws, "data").remove(0);
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[30] ^= 0xff;
    let orphan = Id::of_file(&bytes);
    let path = ws.repo().join(ripcord_repo::pack::path(&orphan));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &bytes).unwrap();

    ws.ok(&["verify"]).assert_stderr_has("not in the index");
    let out = ws.run(&["verify", "--deep"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains(&ripcord_repo::pack::path(&orphan)),
        "{out}"
    );
}
