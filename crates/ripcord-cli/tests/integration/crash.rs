//! Crash safety with real SIGKILLs: at fault-injection points
//! (`RIPCORD_FAILPOINT=name[:n]`) and from outside at random moments.
//! Afterwards the repository verifies, nothing half-done is visible, and the
//! next run reuses what the killed one uploaded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

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
        u64_of(&report["pack_count"], "pack_count"),
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
    ws.ok(&["unlock"]).assert_stdout_has("1 lock removed");
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
    let id = k.next["snapshot"].as_str().unwrap();
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
    ws.ok(&["unlock"]).assert_stdout_has("1 lock removed");

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
    assert_eq!(u64_of(&again["freed_bytes"], "bytes_freed"), 0, "{again}");
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
            u64_of(&report["snapshot_count"], "snapshot_count"),
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
        last["snapshot"].as_str().unwrap(),
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
        safety[0]["snapshot"].as_str().unwrap(),
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

// ----- (e) kill -9 at random moments of prune and of an in-place SQLite restore -----

/// How many kills each random-moment test lands.
const RANDOM_KILLS: usize = 20;

/// The lock files in the repository, without the temporary files a lock
/// is written through (a kill can leave one; nothing reads them).
fn lock_files(ws: &Workspace) -> Vec<PathBuf> {
    files_in(ws, "locks")
        .into_iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

/// Starts `ripcord ARGS` and waits, polling closely, until it holds its
/// repository lock, so that a delay lands in the work rather than in
/// deriving the key. Returns the child and when the lock appeared; `None`
/// when the run ended before its lock was seen.
fn spawn_locked(ws: &Workspace, args: &[&str]) -> (std::process::Child, Option<Instant>) {
    assert!(lock_files(ws).is_empty(), "a lock is left over");
    let mut child = ws.spawn(args, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if !lock_files(ws).is_empty() {
            return (child, Some(Instant::now()));
        }
        if child.try_wait().unwrap().is_some() {
            return (child, None);
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} neither took its lock nor ended"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Kills runs of one command at random moments of their work, which is
/// measured as it goes: the moment is drawn within the shortest run seen
/// uninterrupted so far, from when the run holds its lock.
struct RandomKiller {
    rng: Rng,
    work: Option<Duration>,
    killed: usize,
    runs: usize,
    moments: Vec<Duration>,
}

impl RandomKiller {
    fn new(seed: u64) -> RandomKiller {
        RandomKiller {
            rng: Rng::new(seed),
            work: None,
            killed: 0,
            runs: 0,
            moments: Vec::new(),
        }
    }

    /// Runs `ARGS` to the end, to learn how long its work takes.
    fn measure(&mut self, ws: &Workspace, args: &[&str]) {
        let (mut child, locked) = spawn_locked(ws, args);
        let status = child.wait().unwrap();
        assert!(status.success(), "{args:?} failed on its own: {status}");
        if let Some(locked) = locked {
            self.learn(locked.elapsed());
        }
    }

    fn learn(&mut self, took: Duration) {
        self.work = Some(self.work.map_or(took, |w| w.min(took)));
    }

    /// Runs `ARGS` and kills it at a random moment of its work. Returns
    /// when it was killed (`None`: it ended first, successfully).
    fn run(&mut self, ws: &Workspace, args: &[&str]) -> Option<Duration> {
        self.runs += 1;
        assert!(
            self.runs <= 3 * RANDOM_KILLS,
            "only {} of {} runs of {args:?} were killed mid-way (their work takes {:?})",
            self.killed,
            self.runs,
            self.work
        );
        let work = self.work.expect("measured first");
        let at = Duration::from_micros(self.rng.below(work.as_micros().max(1) as u64));
        let (mut child, locked) = spawn_locked(ws, args);
        if let Some(locked) = locked {
            std::thread::sleep(at.saturating_sub(locked.elapsed()));
        }
        let (status, was_killed) = kill9_child(&mut child);
        if was_killed {
            self.killed += 1;
            self.moments.push(at);
            Some(at)
        } else {
            assert!(status.success(), "{args:?} failed on its own: {status}");
            if let Some(locked) = locked {
                self.learn(locked.elapsed());
            }
            None
        }
    }

    /// What the kills hit, for the log.
    fn summary(&self, what: &str) -> String {
        let mut ms: Vec<f64> = self.moments.iter().map(|m| m.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let ms: Vec<String> = ms.iter().map(|m| format!("{m:.1}")).collect();
        format!(
            "{what}: {} of {} runs killed, work about {:?}; killed at [{}] ms",
            self.killed,
            self.runs,
            self.work.unwrap_or_default(),
            ms.join(" ")
        )
    }
}

/// Prune, killed at random moments of its work. Before each run a new
/// snapshot replaces a file and the oldest snapshot is forgotten, so every
/// prune has packs to delete and to repack. After each kill, the repository
/// verifies deep, the snapshots are the ones kept, and one of them restores
/// exactly (all of them at the end).
#[test]
fn prune_killed_from_outside_at_random_moments() {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    write_file(&app.join("base.txt"), &data::text(140, 20_000));
    write_file(&app.join("keep.bin"), &data::random_bytes(141, 300_000));
    ws.init();
    let mut kept: std::collections::VecDeque<(String, Fingerprint)> = Default::default();
    // Each round's pack holds a file that the next snapshots keep
    // (`kept-N.bin`, for three rounds) and one they do not (`changing.bin`):
    // every prune repacks a pack, and deletes one whose kept files are
    // gone by now; the repository stays small.
    let round = |kept: &mut std::collections::VecDeque<(String, Fingerprint)>, i: u64| {
        write_file(
            &app.join("changing.bin"),
            &data::random_bytes(2000 + i, 512 << 10),
        );
        write_file(
            &app.join(format!("kept-{i}.bin")),
            &data::random_bytes(4000 + i, 512 << 10),
        );
        if let Some(old) = i.checked_sub(3) {
            let _ = std::fs::remove_file(app.join(format!("kept-{old}.bin")));
        }
        write_file(&app.join("round.txt"), &data::text(3000 + i, 3_000));
        let print = Fingerprint::of(&app);
        kept.push_back((ws.snapshot_id(&[] as &[&str]), print));
        if kept.len() > 2 {
            let (old, _) = kept.pop_front().unwrap();
            ws.ok(&["forget", &old]);
        }
    };
    let mut killer = RandomKiller::new(0x9121);
    for i in 0..5 {
        round(&mut kept, i);
        if i < 2 {
            continue;
        }
        let plan = ws.json(&["prune", "--dry-run"]);
        assert!(u64_of(&plan["packs_repacked"], "repacked") >= 1, "{plan}");
        killer.measure(&ws, &["prune"]);
    }
    let started = Instant::now();
    while killer.killed < RANDOM_KILLS {
        round(&mut kept, 10 + killer.runs as u64);
        let Some(at) = killer.run(&ws, &["prune"]) else {
            continue;
        };
        ws.ok(&["unlock"]);
        let ids: Vec<String> = kept.iter().map(|(id, _)| id.clone()).collect();
        let mut listed: Vec<String> = names_in(&ws.repo().join("snapshots"));
        listed.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(listed, want, "after a prune killed at {at:?}");
        verify_ok(&ws, true);
        let (id, print) = &kept[killer.killed % kept.len()];
        assert_restores_to(
            &ws,
            id,
            print,
            &format!("{id} after a prune killed at {at:?}"),
        );
    }
    eprintln!("{}, in {:?}", killer.summary("prune"), started.elapsed());
    // A last, whole prune leaves nothing behind.
    ws.ok(&["prune"]);
    let report = verify_ok(&ws, true);
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let again = ws.json(&["prune", "--dry-run"]);
    assert_eq!(u64_of(&again["freed_bytes"], "bytes_freed"), 0, "{again}");
    for (id, print) in &kept {
        assert_restores_to(&ws, id, print, &format!("{id} after the last prune"));
    }
}

/// Every row of every table, after opening the database the way an
/// application would (which rolls back a hot journal a kill left).
fn sqlite_content(db: &std::path::Path) -> std::collections::BTreeMap<String, Vec<String>> {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .unwrap_or_else(|e| panic!("open {} after the kill: {e}", db.display()));
    ripcord_testing::sqlite::dump(db)
}

/// An in-place restore of a SQLite database, killed at random moments of
/// its work (staging the image, the safety snapshot, copying it in). Two
/// snapshots with different content are restored in turn; after each kill
/// the database holds exactly one of them, the repository verifies deep,
/// and the next restore runs.
#[test]
fn in_place_sqlite_restore_killed_at_random_moments() {
    let mut ws = workspace();
    let db = ws.sqlite_target("app", "app.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE tags (doc INTEGER NOT NULL, tag TEXT NOT NULL);",
        )
        .unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        for i in 0..6_000u64 {
            let body = String::from_utf8(data::text(5000 + i, 300)).unwrap();
            tx.execute(
                "INSERT INTO docs VALUES (?1, ?2)",
                rusqlite::params![i, body],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO tags VALUES (?1, ?2)",
                rusqlite::params![i, format!("t{}", i % 7)],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    ws.init();
    let a = (ws.snapshot_id(&[] as &[&str]), sqlite_content(&db));
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "UPDATE docs SET body = upper(body) WHERE id % 5 = 0;
             DELETE FROM tags WHERE doc % 3 = 0;
             CREATE TABLE audit (at TEXT, what TEXT);
             INSERT INTO audit VALUES ('now', 'changed after a');",
        )
        .unwrap();
    let b = (ws.snapshot_id(&[] as &[&str]), sqlite_content(&db));
    assert_ne!(a.1, b.1);
    let states = [a, b];

    // The database holds b; restoring a, then b, is the work to measure.
    let mut killer = RandomKiller::new(0xdb5);
    killer.measure(&ws, &["restore", &states[0].0]);
    killer.measure(&ws, &["restore", &states[1].0]);
    let mut now = 1;
    assert!(sqlite_content(&db) == states[now].1, "b restored");

    let started = Instant::now();
    while killer.killed < RANDOM_KILLS {
        let want = 1 - now;
        let killed_at = killer.run(&ws, &["restore", &states[want].0]);
        let content = sqlite_content(&db);
        let Some(at) = killed_at else {
            assert!(
                content == states[want].1,
                "restore {} did not restore",
                killer.runs
            );
            now = want;
            continue;
        };
        now = states
            .iter()
            .position(|(_, c)| *c == content)
            .unwrap_or_else(|| {
                panic!("restore killed at {at:?}: the database is neither old nor new")
            });
        ws.ok(&["unlock"]);
        verify_ok(&ws, true);
    }
    eprintln!("{}, in {:?}", killer.summary("restore"), started.elapsed());
    // What a kill left beside the database (a staged image) does not stop
    // the next restore, which removes it.
    let want = 1 - now;
    ws.ok(&["restore", &states[want].0]);
    assert!(sqlite_content(&db) == states[want].1);
    let leftovers: Vec<String> = names_in(ws.root())
        .into_iter()
        .filter(|n| n.contains("ripcord-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    verify_ok(&ws, true);
}
