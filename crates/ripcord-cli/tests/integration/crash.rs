//! Crash safety with real SIGKILLs: at fault-injection points
//! (`RIPCORD_FAILPOINT=name[:n]`) and from outside at random moments.
//! Afterwards the repository verifies, nothing half-done is visible, and the
//! next run reuses what the killed one uploaded.

use std::path::PathBuf;
use std::time::Duration;

use ripcord_testing::data::{self, write_file, Rng};
use ripcord_testing::process::{kill9_child, wait_until};
use ripcord_testing::{Fingerprint, Output, Workspace};
use serde_json::Value;

use crate::common::*;

const MIB: u64 = 1 << 20;

fn assert_killed(out: &Output) {
    assert_eq!(
        out.signal,
        Some(9),
        "the failpoint did not kill the process\n{out}"
    );
}

/// A workspace whose target `app` holds `size` bytes of incompressible data
/// in 6 MiB files, plus a few small text files.
fn big_workspace(seed: u64, size: usize) -> (Workspace, PathBuf) {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    data::random_files(&app.join("blobs"), seed, size, 6 << 20);
    for i in 0..5 {
        write_file(
            &app.join(format!("notes/{i}.txt")),
            &data::text(seed + i, 3000),
        );
    }
    ws.init();
    (ws, app)
}

/// Runs `verify --deep` (quick when `deep` is false) and checks it passes.
fn verify_ok(ws: &Workspace, deep: bool) -> Value {
    let args: &[&str] = if deep {
        &["--json", "verify", "--deep"]
    } else {
        &["--json", "verify"]
    };
    let out = ws.run(args);
    out.assert_ok();
    let report = out.json();
    assert!(
        report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
    report
}

// ----- (a) snapshot killed at each failpoint -----

const SNAPSHOT_DATA: usize = 36 << 20;

struct Killed {
    ws: Workspace,
    app: PathBuf,
    /// Packs in data/ right after the kill.
    packs: usize,
    /// The first snapshot after the kill (`snapshot --json`).
    next: Value,
}

fn snapshot_killed_at(failpoint: &str, seed: u64) -> Killed {
    let (ws, app) = big_workspace(seed, SNAPSHOT_DATA);
    let out = ws.run_env(&["snapshot"], &[("RIPCORD_FAILPOINT", failpoint)]);
    assert_killed(&out);
    let packs = files_in(&ws, "data").len();
    // The killed process could not remove its (shared) lock...
    assert_eq!(files_in(&ws, "locks").len(), 1, "one stale lock");
    // ...which does not block readers and appenders.
    let report = verify_ok(&ws, true);
    assert_eq!(
        u64_of(&report["packs_read"], "packs_read"),
        u64_of(&report["packs"], "packs"),
        "{report}"
    );
    let expect_snapshots = usize::from(failpoint == "snapshot-written");
    assert_eq!(
        ws.snapshot_ids().len(),
        expect_snapshots,
        "after {failpoint}"
    );

    let next = ws.snapshot(&[] as &[&str]);
    assert_eq!(ws.snapshot_ids().len(), expect_snapshots + 1);
    // unlock clears what the killed process left.
    ws.ok(&["unlock"]).assert_stdout_has("1 lock(s) removed");
    assert!(files_in(&ws, "locks").is_empty());
    Killed {
        ws,
        app,
        packs,
        next,
    }
}

fn stored(v: &Value) -> u64 {
    u64_of(&v["stats"]["stored_bytes"], "stored_bytes")
}

#[test]
fn snapshot_killed_after_the_first_pack() {
    let k = snapshot_killed_at("pack-written:1", 100);
    assert_eq!(k.packs, 1, "one pack was written before the kill");
    assert_eq!(
        u64_of(&k.next["recovered_packs"], "recovered_packs"),
        1,
        "{}",
        k.next
    );
    assert!(
        stored(&k.next) < SNAPSHOT_DATA as u64 - 14 * MIB,
        "the uploaded pack was not reused: {}",
        k.next
    );
    verify_ok(&k.ws, true);
}

#[test]
fn snapshot_killed_after_the_second_pack() {
    let k = snapshot_killed_at("pack-written:2", 101);
    assert_eq!(k.packs, 2);
    assert_eq!(
        u64_of(&k.next["recovered_packs"], "recovered_packs"),
        2,
        "{}",
        k.next
    );
    assert!(
        stored(&k.next) < SNAPSHOT_DATA as u64 - 30 * MIB,
        "the uploaded packs were not reused: {}",
        k.next
    );
    verify_ok(&k.ws, true);
    let id = k.next["id"].as_str().unwrap();
    assert_restores_to(
        &k.ws,
        id,
        &Fingerprint::of(&k.app),
        "snapshot after recovery",
    );
}

#[test]
fn snapshot_killed_after_the_index_was_written() {
    let k = snapshot_killed_at("index-written:1", 102);
    assert!(k.packs >= 2, "{} packs", k.packs);
    // Everything was indexed: nothing to recover, nothing new to store.
    assert_eq!(u64_of(&k.next["recovered_packs"], "recovered_packs"), 0);
    assert!(stored(&k.next) < MIB, "data stored twice: {}", k.next);
    verify_ok(&k.ws, false);
}

#[test]
fn snapshot_killed_before_the_manifest() {
    let k = snapshot_killed_at("before-manifest", 103);
    assert!(k.packs >= 2, "{} packs", k.packs);
    assert!(stored(&k.next) < MIB, "data stored twice: {}", k.next);
    verify_ok(&k.ws, false);
}

#[test]
fn snapshot_killed_after_the_manifest() {
    let k = snapshot_killed_at("snapshot-written", 104);
    // The snapshot is complete; the next one finds every file unchanged.
    assert_eq!(
        k.next["unchanged_files"], k.next["files"],
        "the recorded snapshot is the parent: {}",
        k.next
    );
    assert!(stored(&k.next) < MIB, "{}", k.next);
    verify_ok(&k.ws, false);
}

// ----- (b) prune killed at each failpoint -----

/// Four snapshots, the first two forgotten, so that prune repacks one pack
/// (half unused), deletes another (all unused) and keeps two.
/// Returns the remaining snapshots with what they hold.
fn prune_setup(seed: u64) -> (Workspace, Vec<(String, Fingerprint)>) {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    write_file(&app.join("base.txt"), &data::text(seed, 20_000));
    write_file(
        &app.join("keep1.bin"),
        &data::random_bytes(seed + 1, 1 << 20),
    );
    write_file(
        &app.join("drop1.bin"),
        &data::random_bytes(seed + 2, 1 << 20),
    );
    ws.init();
    let s1 = ws.snapshot_id(&[] as &[&str]);
    std::fs::remove_file(app.join("drop1.bin")).unwrap();
    write_file(
        &app.join("drop2.bin"),
        &data::random_bytes(seed + 3, 1 << 20),
    );
    let s2 = ws.snapshot_id(&[] as &[&str]);
    std::fs::remove_file(app.join("drop2.bin")).unwrap();
    write_file(
        &app.join("keep3.bin"),
        &data::random_bytes(seed + 4, 1 << 20),
    );
    let p3 = Fingerprint::of(&app);
    let s3 = ws.snapshot_id(&[] as &[&str]);
    write_file(&app.join("small.txt"), b"small\n");
    let p4 = Fingerprint::of(&app);
    let s4 = ws.snapshot_id(&[] as &[&str]);
    ws.ok(&["forget", &s1, &s2]);
    (ws, vec![(s3, p3), (s4, p4)])
}

fn prune_killed_at(failpoint: &str, seed: u64) {
    let (ws, remaining) = prune_setup(seed);
    let plan = ws.json(&["prune", "--dry-run"]);
    assert_eq!(u64_of(&plan["packs_repacked"], "repacked"), 1, "{plan}");
    assert_eq!(u64_of(&plan["packs_deleted"], "deleted"), 1, "{plan}");

    let out = ws.run_env(&["prune"], &[("RIPCORD_FAILPOINT", failpoint)]);
    assert_killed(&out);

    // The dead prune's exclusive lock blocks the next prune until unlock.
    ws.run(&["prune"])
        .assert_code(3)
        .assert_stderr_has("looks stale")
        .assert_stderr_has("ripcord unlock");
    ws.ok(&["unlock"]).assert_stdout_has("1 lock(s) removed");

    let ids: Vec<String> = remaining.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ws.snapshot_ids(), ids);
    verify_ok(&ws, true);
    for (id, print) in &remaining {
        assert_restores_to(
            &ws,
            id,
            print,
            &format!("{id} after a prune killed at {failpoint}"),
        );
    }

    // A second prune finishes the job.
    ws.ok(&["prune"]);
    let report = verify_ok(&ws, true);
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "unindexed packs left after a complete prune: {report}"
    );
    let again = ws.json(&["prune", "--dry-run"]);
    assert_eq!(u64_of(&again["bytes_freed"], "bytes_freed"), 0, "{again}");
    for (id, print) in &remaining {
        assert_restores_to(&ws, id, print, &format!("{id} after the second prune"));
    }
}

#[test]
fn prune_killed_after_writing_a_repacked_pack() {
    prune_killed_at("prune-pack-written", 110);
}

#[test]
fn prune_killed_after_writing_the_new_index() {
    prune_killed_at("prune-index-written", 111);
}

#[test]
fn prune_killed_after_deleting_the_old_index() {
    prune_killed_at("prune-old-index-deleted", 112);
}

#[test]
fn prune_killed_after_deleting_the_first_pack() {
    prune_killed_at("prune-pack-deleted:1", 113);
}

// ----- (c) snapshot killed from outside at random moments -----

#[test]
fn snapshot_killed_from_outside_at_random_moments() {
    let (ws, app) = big_workspace(120, 20 << 20);
    let mut rng = Rng::new(0x5eed);
    let mut killed = 0;
    for run in 0..5u64 {
        // New data each run, so every run has something to upload.
        write_file(
            &app.join("blobs/changing.bin"),
            &data::random_bytes(1000 + run, 4 << 20),
        );
        let delay = Duration::from_millis(rng.below(1500));
        let mut child = ws.spawn(&["snapshot"], &[]);
        // Count the delay from when the run holds its lock, so that it lands
        // while the run reads and uploads rather than while it derives keys.
        assert!(files_in(&ws, "locks").is_empty());
        wait_until(Duration::from_secs(30), || {
            !files_in(&ws, "locks").is_empty() || child.try_wait().unwrap().is_some()
        });
        std::thread::sleep(delay);
        let (status, was_killed) = kill9_child(&mut child);
        if was_killed {
            killed += 1;
        } else {
            assert!(status.success(), "run {run} failed on its own: {status}");
        }
        let report = verify_ok(&ws, true);
        assert_eq!(
            u64_of(&report["snapshots"], "snapshots"),
            ws.snapshot_ids().len() as u64
        );
        // Locks of killed runs do not block the next one.
        ws.ok(&["unlock"]);
    }
    assert!(killed >= 2, "only {killed} of 5 runs were killed mid-way");

    let last = ws.snapshot(&[] as &[&str]);
    let report = verify_ok(&ws, true);
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert_restores_to(
        &ws,
        last["id"].as_str().unwrap(),
        &Fingerprint::of(&app),
        "snapshot after the killed runs",
    );
}

// ----- (d) in-place restore killed while it swaps entries -----

/// Kills an in-place restore at `failpoint` and checks the target is its
/// old self, its new self, or (mid-swap) resumable: the journal waits in
/// the work folder and the next restore finishes it. Excluded files are
/// never touched.
fn in_place_restore_killed_at(failpoint: &str, seed: u64) {
    let s = DirSetup::new(seed);
    let old_print = s.expected();
    let id = s.ws.snapshot_id(&[] as &[&str]);

    write_file(&s.app.join("new.txt"), b"written after the snapshot\n");
    write_file(&s.app.join("src/lib.rs"), b"changed\n");
    std::fs::remove_file(s.app.join("README.md")).unwrap();
    let current = Fingerprint::of(&s.app);
    let excluded: Vec<(String, Vec<u8>)> = s
        .layout
        .excluded
        .iter()
        .map(|rel| (rel.clone(), std::fs::read(s.app.join(rel)).unwrap()))
        .collect();

    let out =
        s.ws.run_env(&["restore", &id], &[("RIPCORD_FAILPOINT", failpoint)]);
    assert_killed(&out);

    let work: Vec<String> = names_in(&s.app)
        .into_iter()
        .filter(|n| n.starts_with(".ripcord-restore-"))
        .collect();
    assert_eq!(work.len(), 1, "one work folder: {work:?}");
    let journal = s.app.join(&work[0]).join("journal").exists();
    let now = Fingerprint::of(&s.app).without(&work[0]);
    let is_old = now.differences(&current).is_empty();
    let is_new = now
        .without_all(&s.layout.excluded)
        .without_dir_times()
        .differences(&old_print.without_dir_times())
        .is_empty();
    match failpoint {
        "restore-before-swap" => {
            assert!(is_old, "nothing may change before the journal");
            assert!(!journal, "no journal yet");
        }
        "restore-journal-written" => {
            assert!(is_old, "the journal alone changes nothing");
            assert!(journal);
        }
        "restore-swapped" => assert!(is_new, "every entry was swapped"),
        _ => assert!(journal, "mid-swap: the journal is there to finish it"),
    }
    for (rel, bytes) in &excluded {
        assert_eq!(&std::fs::read(s.app.join(rel)).unwrap(), bytes, "{rel}");
    }

    // The safety snapshot was taken before anything moved.
    let safety = s.ws.json(&["snapshots", "--tag", "safety"]);
    let safety = safety.as_array().unwrap();
    assert_eq!(safety.len(), 1, "{safety:?}");
    assert_restores_to(
        &s.ws,
        safety[0]["id"].as_str().unwrap(),
        &current.without_all(&s.layout.excluded),
        "safety snapshot of the killed restore",
    );

    // Resumable: running the restore again completes it.
    s.ws.ok(&["unlock"]);
    let again = s.ws.run(&["restore", &id]);
    again.assert_ok();
    if journal {
        again.assert_stderr_has("finished an interrupted restore");
    }
    Fingerprint::of(&s.app)
        .without_all(&s.layout.excluded)
        .assert_same(&old_print, "the target after the restore was run again");
    for (rel, bytes) in &excluded {
        assert_eq!(&std::fs::read(s.app.join(rel)).unwrap(), bytes, "{rel}");
    }
    assert!(
        !names_in(&s.app)
            .iter()
            .any(|n| n.starts_with(".ripcord-restore-")),
        "work folder left: {:?}",
        names_in(&s.app)
    );
    verify_ok(&s.ws, false);
}

#[test]
fn in_place_restore_killed_before_the_swap() {
    in_place_restore_killed_at("restore-before-swap", 130);
}

#[test]
fn in_place_restore_killed_after_writing_the_journal() {
    in_place_restore_killed_at("restore-journal-written", 131);
}

#[test]
fn in_place_restore_killed_after_the_first_move() {
    in_place_restore_killed_at("restore-swap-step:2", 132);
}

#[test]
fn in_place_restore_killed_in_the_middle_of_the_swap() {
    in_place_restore_killed_at("restore-swap-step:5", 133);
}

#[test]
fn in_place_restore_killed_after_the_last_move() {
    in_place_restore_killed_at("restore-swapped", 134);
}
