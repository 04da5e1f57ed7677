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
        .map(|d| d["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{plan}");
    assert!(kept.contains(&ids[2].as_str()) && kept.contains(&ids[3].as_str()));
    ws.ok(&["forget", "--keep-last", "1", "-n"])
        .assert_stdout_has("would remove 3 snapshots");
    assert_eq!(
        repo_hashes(&ws.repo()),
        before,
        "--dry-run changed the repository"
    );
    assert_eq!(ws.snapshot_ids(), ids);

    ws.ok(&["forget", "--keep-last", "2"])
        .assert_stdout_has("removed 2 snapshots");
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
        .map(|d| d["snapshot"].as_str().unwrap())
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
        .assert_stdout_has("removed 1 snapshot");
    assert_eq!(ws.snapshot_ids(), [a.clone(), c.clone()]);
    // Forgetting alone frees nothing; a dry-run prune neither.
    assert_eq!(dir_size(&ws.repo().join("data")), size_before);
    let hashes = repo_hashes(&ws.repo());
    let dry = ws.json(&["prune", "--dry-run"]);
    assert!(
        u64_of(&dry["freed_bytes"], "bytes_freed") >= unique as u64,
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
    assert_eq!(u64_of(&again["freed_bytes"], "bytes_freed"), 0, "{again}");
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

// ----- safety snapshots: `latest`, retention apart, --keep-tag -----

/// The decisions of `forget --json --dry-run ARGS`, as (id, keep).
fn plan(ws: &Workspace, args: &[&str]) -> Vec<(String, bool)> {
    let mut all = vec!["forget", "--dry-run"];
    all.extend_from_slice(args);
    let v = ws.json(&all);
    v["decisions"]
        .as_array()
        .unwrap_or_else(|| panic!("no decisions: {v}"))
        .iter()
        .map(|d| {
            (
                d["snapshot"].as_str().unwrap().to_string(),
                d["keep"] == true,
            )
        })
        .collect()
}

fn kept(plan: &[(String, bool)], id: &str) -> bool {
    plan.iter()
        .find(|(i, _)| i == id)
        .unwrap_or_else(|| panic!("{id} not judged: {plan:?}"))
        .1
}

/// The id of the safety snapshot an in-place `restore --json` took.
fn restore_in_place(ws: &Workspace, id: &str) -> String {
    let r = ws.json(&["restore", id]);
    r["safety_snapshot"]
        .as_str()
        .unwrap_or_else(|| panic!("no safety snapshot: {r}"))
        .to_string()
}

#[test]
fn a_second_restore_latest_does_not_restore_the_first_ones_safety_snapshot() {
    let (ws, ids, prints) = with_snapshots(2, 50);
    let app = ws.path("app");
    let good = &prints[1];
    // Damage, then `restore latest` twice, as a user unsure whether the
    // first one worked would.
    write_file(&app.join("base.txt"), b"damaged\n");
    let damaged = Fingerprint::of(&app);
    let safety = restore_in_place(&ws, "latest");
    Fingerprint::of(&app).assert_same(good, "after the first restore latest");
    write_file(&app.join("base.txt"), b"damaged again\n");
    ws.ok(&["restore", "latest"]);
    Fingerprint::of(&app).assert_same(good, "after the second restore latest");

    // Safety snapshots stay reachable: by selector, by tag, by id.
    let newest_safety = ws.json(&["show", "latest:safety"]);
    assert_ne!(newest_safety["snapshot"], ids[1].as_str());
    assert!(strings(&newest_safety["tags"]).contains(&"safety".to_string()));
    let tagged = ws.json(&["snapshots", "--tag", "safety"]);
    assert_eq!(tagged.as_array().unwrap().len(), 2, "{tagged}");
    assert_restores_to(&ws, &safety, &damaged, "the first safety snapshot, by id");
    assert_eq!(ws.json(&["show", "latest"])["snapshot"], ids[1].as_str());

    // latest:TAG finds the newest snapshot with any tag.
    let tagged_id = ws.snapshot_id(&["--tag", "pre-deploy"]);
    ws.snapshot_id(&[] as &[&str]);
    assert_eq!(
        ws.json(&["show", "latest:pre-deploy"])["snapshot"],
        tagged_id.as_str()
    );
    ws.run(&["show", "latest:nope"])
        .assert_code(2)
        .assert_stderr_has("snapshots --tag");
}

#[test]
fn latest_with_only_safety_snapshots_points_to_latest_safety() {
    let (ws, ids, _) = with_snapshots(1, 51);
    restore_in_place(&ws, &ids[0]);
    ws.ok(&["forget", &ids[0]]);
    ws.run(&["restore", "latest"])
        .assert_code(2)
        .assert_stderr_has("latest:safety");
    ws.ok(&["show", "latest:safety"]);
}

/// The README's `forget --keep-daily 7 --keep-weekly 4 --prune` once removed
/// the day's `pre-deploy` snapshot because a safety snapshot taken later
/// that day was the day's newest; and it kept the safety snapshot instead.
#[test]
fn readme_forget_keeps_the_pre_deploy_snapshot_not_a_later_safety_snapshot() {
    let (ws, ids, _) = with_snapshots(1, 52);
    let app = ws.path("app");
    write_file(&app.join("release.txt"), b"release 2\n");
    let deploy_print = Fingerprint::of(&app);
    let pre_deploy = ws.snapshot_id(&["--tag", "pre-deploy"]);
    // The deploy goes wrong; the user restores the earlier snapshot, which
    // takes a safety snapshot, the newest of the day.
    write_file(&app.join("release.txt"), b"broken release 3\n");
    let safety = restore_in_place(&ws, &ids[0]);

    ws.ok(&[
        "forget",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--prune",
    ]);
    let left = ws.snapshot_ids();
    assert!(left.contains(&pre_deploy), "pre-deploy removed: {left:?}");
    assert!(
        left.contains(&safety),
        "the safety snapshot is kept by its own policy"
    );
    assert!(
        !left.contains(&ids[0]),
        "the older snapshot of the day goes: {left:?}"
    );
    ws.ok(&["verify", "--deep"]);
    assert_restores_to(&ws, &pre_deploy, &deploy_print, "pre-deploy after forget");
    assert_eq!(
        ws.json(&["show", "latest"])["snapshot"],
        pre_deploy.as_str()
    );

    // A later snapshot the same day is the day's keeper; --keep-tag keeps
    // the pre-deploy one too, as the README's example does.
    ws.snapshot_id(&[] as &[&str]);
    let daily = ["--keep-daily", "7", "--keep-weekly", "4"];
    assert!(!kept(&plan(&ws, &daily), &pre_deploy));
    let mut with_tag = daily.to_vec();
    with_tag.extend(["--keep-tag", "pre-deploy"]);
    let p = plan(&ws, &with_tag);
    assert!(kept(&p, &pre_deploy), "{p:?}");
}

#[test]
fn safety_snapshots_are_kept_under_their_own_policy() {
    let (ws, ids, prints) = with_snapshots(2, 53);
    let app = ws.path("app");
    let mut safety = Vec::new();
    for i in 0..3 {
        write_file(&app.join("base.txt"), format!("damage {i}\n").as_bytes());
        safety.push(restore_in_place(&ws, &ids[1]));
    }
    // The user's --keep-last 1 counts the user's snapshots only; the
    // default safety policy (5 newest, 14 days) keeps all three.
    let p = plan(&ws, &["--keep-last", "1"]);
    assert!(kept(&p, &ids[1]) && !kept(&p, &ids[0]), "{p:?}");
    assert!(safety.iter().all(|s| kept(&p, s)), "{p:?}");

    // Flags set the safety policy...
    let p = plan(&ws, &["--keep-last", "1", "--keep-safety-last", "1"]);
    assert_eq!(
        safety.iter().map(|s| kept(&p, s)).collect::<Vec<_>>(),
        [false, false, true],
        "{p:?}"
    );
    // ...alone, they leave the user's snapshots be.
    let p = plan(&ws, &["--keep-safety-last", "2"]);
    assert!(kept(&p, &ids[0]) && kept(&p, &ids[1]), "{p:?}");
    assert!(!kept(&p, &safety[0]) && kept(&p, &safety[2]), "{p:?}");
    // --keep-tag applies to both.
    let p = plan(&ws, &["--keep-safety-last", "0", "--keep-tag", "safety"]);
    assert!(safety.iter().all(|s| kept(&p, s)), "{p:?}");

    // ...and so does [safety.keep] in ripcord.toml.
    let mut ws = ws;
    ws.append_config("[safety.keep]\nlast = 2\n");
    let p = plan(&ws, &["--keep-last", "1"]);
    assert_eq!(
        safety.iter().map(|s| kept(&p, s)).collect::<Vec<_>>(),
        [false, true, true],
        "{p:?}"
    );
    ws.ok(&["forget", "--keep-last", "1", "--prune"])
        .assert_stdout_has("removed 2 snapshots (1 of them a safety snapshot");
    ws.ok(&["verify", "--deep"]);
    assert_restores_to(&ws, &ids[1], &prints[1], "kept user snapshot");
}

#[test]
fn an_empty_safety_policy_is_refused() {
    let (mut ws, _, _) = with_snapshots(1, 54);
    ws.append_config("[safety.keep]\n");
    let before = repo_hashes(&ws.repo());
    ws.run(&["forget", "--keep-last", "1"])
        .assert_code(2)
        .assert_stderr_has("[safety.keep]");
    ws.append_config("within = \"soon\"\n");
    ws.run(&["forget", "--keep-last", "1"])
        .assert_code(2)
        .assert_stderr_has("duration");
    assert_eq!(repo_hashes(&ws.repo()), before);
}
