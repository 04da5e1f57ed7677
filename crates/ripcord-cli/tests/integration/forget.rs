//! `forget` by policy and by id, and `prune`.

use ripcord_repo::manifest::Snapshot;
use ripcord_testing::data::{self, write_file};
use ripcord_testing::{dir_size, repo_hashes, Fingerprint, Workspace};

use crate::common::*;

/// A workspace with target `app` and `n` snapshots, each after a small change.
/// Returns the ids, oldest first, and what each snapshot holds.
fn with_snapshots(n: usize, seed: u64) -> (Workspace, Vec<String>, Vec<Fingerprint>) {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    write_file(&app.join("base.txt"), &data::text(seed, 5_000));
    ws.init();
    let mut ids = Vec::new();
    let mut prints = Vec::new();
    for i in 0..n {
        write_file(
            &app.join(format!("step-{i}.txt")),
            &data::text(seed + i as u64 + 1, 800),
        );
        prints.push(Fingerprint::of(&app));
        ids.push(ws.snapshot_id(&[] as &[&str]));
    }
    (ws, ids, prints)
}

#[test]
fn keep_last_keeps_the_newest_and_dry_run_changes_nothing() {
    let (ws, ids, prints) = with_snapshots(4, 40);
    let before = repo_hashes(&ws.repo());

    let plan = ws.json(&["forget", "--keep-last", "2", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    let decisions = plan["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 4, "{plan}");
    let kept: Vec<&str> = decisions
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{plan}");
    assert!(kept.contains(&ids[2].as_str()) && kept.contains(&ids[3].as_str()));
    ws.ok(&["forget", "--keep-last", "1", "-n"])
        .assert_stdout_has("would remove 3 snapshot(s)");
    assert_eq!(
        repo_hashes(&ws.repo()),
        before,
        "--dry-run changed the repository"
    );
    assert_eq!(ws.snapshot_ids(), ids);

    ws.ok(&["forget", "--keep-last", "2"])
        .assert_stdout_has("removed 2 snapshot(s)");
    assert_eq!(ws.snapshot_ids(), ids[2..].to_vec());
    // Without prune, the data stays: the kept snapshots restore, verify passes.
    ws.ok(&["verify", "--deep"]);
    assert_restores_to(&ws, &ids[2], &prints[2], "kept snapshot 2");
    assert_restores_to(&ws, &ids[3], &prints[3], "kept snapshot 3");
}

#[test]
fn keep_within_measures_from_the_newest_snapshot() {
    let (ws, ids, _) = with_snapshots(1, 41);
    // Older copies of the snapshot, 2 and 10 days back.
    let repo = open_repo(&ws);
    let newest: Snapshot = repo.load_snapshot(&id(&ids[0])).unwrap();
    let aged = |days: i64| {
        let mut s = newest.clone();
        s.time -= chrono::Duration::days(days);
        s.tags = vec![format!("{days}d")];
        repo.save_snapshot(&s).unwrap().to_hex()
    };
    let two_days = aged(2);
    let ten_days = aged(10);
    let before = repo_hashes(&ws.repo());

    let plan = ws.json(&["forget", "--keep-within", "3d", "--dry-run"]);
    let removed: Vec<&str> = plan["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == false)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [ten_days.as_str()], "{plan}");
    assert_eq!(repo_hashes(&ws.repo()), before);

    ws.ok(&["forget", "--keep-within", "3d"]);
    let mut left = ws.snapshot_ids();
    left.sort();
    let mut want = vec![ids[0].clone(), two_days];
    want.sort();
    assert_eq!(left, want);

    ws.run(&["forget", "--keep-within", "soon"])
        .assert_code(2)
        .assert_stderr_has("duration");
}

#[test]
fn forget_refuses_without_ids_or_policy() {
    let (ws, ids, _) = with_snapshots(1, 42);
    let before = repo_hashes(&ws.repo());
    ws.run(&["forget"])
        .assert_code(2)
        .assert_stderr_has("refusing to remove every snapshot");
    ws.run(&["forget", &ids[0], "--keep-last", "1"])
        .assert_code(2);
    ws.run(&["forget", "0123abcd"])
        .assert_code(2)
        .assert_stderr_has("no snapshot matches");
    assert_eq!(repo_hashes(&ws.repo()), before);
}

#[test]
fn forget_by_id_with_prune_frees_its_unique_data() {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    write_file(&app.join("shared.txt"), &data::text(43, 20_000));
    write_file(&app.join("shared.bin"), &data::random_bytes(43, 500_000));
    ws.init();
    let a_print = Fingerprint::of(&app);
    let a = ws.snapshot_id(&[] as &[&str]);

    let unique = 2 << 20;
    write_file(&app.join("big-unique.bin"), &data::random_bytes(44, unique));
    let b = ws.snapshot_id(&[] as &[&str]);

    std::fs::remove_file(app.join("big-unique.bin")).unwrap();
    write_file(&app.join("later.txt"), b"later\n");
    let c_print = Fingerprint::of(&app);
    let c = ws.snapshot_id(&[] as &[&str]);

    let size_before = dir_size(&ws.repo().join("data"));
    ws.ok(&["forget", short(&b)])
        .assert_stdout_has("removed 1 snapshot(s)");
    assert_eq!(ws.snapshot_ids(), [a.clone(), c.clone()]);
    // Forgetting alone frees nothing; a dry-run prune neither.
    assert_eq!(dir_size(&ws.repo().join("data")), size_before);
    let hashes = repo_hashes(&ws.repo());
    let dry = ws.json(&["prune", "--dry-run"]);
    assert!(
        u64_of(&dry["bytes_freed"], "bytes_freed") >= unique as u64,
        "{dry}"
    );
    assert_eq!(
        repo_hashes(&ws.repo()),
        hashes,
        "prune --dry-run changed the repository"
    );

    // Forget (nothing left to forget) and prune in one go, as users do.
    ws.ok(&["forget", "--keep-last", "10", "--prune"]);
    let size_after = dir_size(&ws.repo().join("data"));
    assert!(
        size_after + (unique as u64) * 9 / 10 <= size_before,
        "data/ went from {size_before} to {size_after} bytes; expected to lose about {unique}"
    );

    ws.ok(&["verify", "--deep"])
        .assert_stdout_has("no problems");
    assert_restores_to(&ws, &a, &a_print, "snapshot a after prune");
    assert_restores_to(&ws, &c, &c_print, "snapshot c after prune");

    // A second prune has nothing to do.
    let again = ws.json(&["prune"]);
    assert_eq!(u64_of(&again["bytes_freed"], "bytes_freed"), 0, "{again}");
}

#[test]
fn forget_prune_after_forgetting_by_id() {
    let (ws, ids, prints) = with_snapshots(3, 45);
    ws.ok(&["forget", &ids[1], "--prune"]);
    assert_eq!(ws.snapshot_ids(), [ids[0].clone(), ids[2].clone()]);
    ws.ok(&["verify", "--deep"]);
    assert_restores_to(&ws, &ids[0], &prints[0], "first");
    assert_restores_to(&ws, &ids[2], &prints[2], "last");
}
