//! Repository locks: live holders block, stale ones are reported and removed
//! only by `unlock`.

use ripcord_repo::lock::{LockGuard, LockInfo};
use ripcord_repo::{Id, Repository};
use ripcord_testing::process::dead_pid;
use ripcord_testing::repo_hashes;

use crate::common::*;

/// Writes a lock file the way a ripcord process does.
fn write_lock(repo: &Repository, info: &LockInfo) -> Id {
    let id = Id::random();
    let bytes = repo.keys().seal(serde_json::to_vec(info).unwrap());
    assert!(repo
        .backend()
        .put_if_absent(&format!("locks/{}", id.to_hex()), &bytes)
        .unwrap());
    id
}

fn lock_info(pid: u32, host: String, minutes_ago: i64) -> LockInfo {
    let t = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    LockInfo {
        exclusive: true,
        host,
        pid,
        user: "operator".into(),
        command: "prune".into(),
        created: t,
        refreshed: t,
    }
}

#[test]
fn a_live_exclusive_lock_blocks_and_names_its_holder() {
    let s = DirSetup::new(80);
    let id = s.ws.snapshot_id(&[] as &[&str]);
    let repo = open_repo(&s.ws);
    let guard = LockGuard::acquire(&repo, true, "integration-test", &|w| panic!("{w}"))
        .expect("take an exclusive lock");
    let pid = std::process::id();
    assert_eq!(files_in(&s.ws, "locks").len(), 1);
    let hashes = repo_hashes(&s.ws.repo());

    let holder = format!("pid {pid} (integration-test)");
    s.ws.run(&["prune"])
        .assert_code(3)
        .assert_stderr_has("the repository is locked by an exclusive lock held by")
        .assert_stderr_has(&holder)
        .assert_stderr_has("wait for the other ripcord process");
    // Readers and writers are blocked by an exclusive lock too.
    for args in [
        vec!["snapshot"],
        vec!["verify"],
        vec!["restore", id.as_str(), "--into", "out"],
    ] {
        s.ws.run(&args).assert_code(3).assert_stderr_has(&holder);
    }
    assert!(!s.ws.path("out").exists());
    // unlock leaves a live lock alone.
    s.ws.ok(&["unlock"]).assert_stdout_has("0 locks removed");
    assert_eq!(
        repo_hashes(&s.ws.repo()),
        hashes,
        "blocked commands changed the repository"
    );

    drop(guard);
    assert!(
        files_in(&s.ws, "locks").is_empty(),
        "the guard removes its lock"
    );
    s.ws.ok(&["prune"]);
}

#[test]
fn a_shared_lock_blocks_only_exclusive_commands() {
    let s = DirSetup::new(81);
    s.ws.snapshot_id(&[] as &[&str]);
    let repo = open_repo(&s.ws);
    let _guard = LockGuard::acquire(&repo, false, "integration-reader", &|w| panic!("{w}"))
        .expect("take a shared lock");
    s.ws.ok(&["snapshot"]);
    s.ws.ok(&["verify"]);
    s.ws.run(&["prune"])
        .assert_code(3)
        .assert_stderr_has("a shared lock held by");
    s.ws.run(&["forget", "--keep-last", "1"]).assert_code(3);
    assert_eq!(
        s.ws.snapshot_ids().len(),
        2,
        "the blocked forget removed nothing"
    );
}

#[test]
fn a_lock_of_a_dead_process_is_stale_and_unlock_removes_it() {
    let s = DirSetup::new(82);
    let id = s.ws.snapshot_id(&[] as &[&str]);
    let repo = open_repo(&s.ws);
    let pid = dead_pid();
    write_lock(&repo, &lock_info(pid, ripcord_repo::hostname(), 0));
    let hashes = repo_hashes(&s.ws.repo());

    // Exclusive commands refuse, and say the holder looks dead.
    s.ws.run(&["prune"])
        .assert_code(3)
        .assert_stderr_has(&format!("pid {pid} (prune)"))
        .assert_stderr_has("looks stale")
        .assert_stderr_has(&format!("process {pid} no longer runs"))
        .assert_stderr_has("ripcord unlock");
    assert_eq!(repo_hashes(&s.ws.repo()), hashes);

    // Shared commands proceed past it with a warning.
    s.ws.ok(&["verify"])
        .assert_stderr_has("warning: ignoring a stale lock");
    let out = s.ws.path("out");
    s.ws.ok(&["restore", &id, "--into", out.to_str().unwrap()])
        .assert_stderr_has("ignoring a stale lock");

    let unlocked = s.ws.ok(&["unlock"]);
    unlocked
        .assert_stdout_has(&format!(
            "removed an exclusive lock held by operator@{}",
            ripcord_repo::hostname()
        ))
        .assert_stdout_has("1 lock removed");
    assert!(files_in(&s.ws, "locks").is_empty());
    s.ws.ok(&["prune"]);
}

#[test]
fn a_lock_without_heartbeat_is_stale_even_from_another_host() {
    let s = DirSetup::new(83);
    s.ws.snapshot_id(&[] as &[&str]);
    let repo = open_repo(&s.ws);
    // Another host: liveness cannot be checked, only the heartbeat's age.
    write_lock(&repo, &lock_info(1, "elsewhere.example".into(), 10));
    s.ws.run(&["prune"])
        .assert_code(3)
        .assert_stderr_has("operator@elsewhere.example")
        .assert_stderr_has("wait for the other ripcord process");
    s.ws.ok(&["unlock"]).assert_stdout_has("0 locks removed");
    // --all removes it anyway.
    s.ws.ok(&["unlock", "--all"])
        .assert_stdout_has("1 lock removed");
    assert!(files_in(&s.ws, "locks").is_empty());

    let old = write_lock(&repo, &lock_info(1, "elsewhere.example".into(), 120));
    s.ws.run(&["prune"])
        .assert_code(3)
        .assert_stderr_has("no heartbeat for")
        .assert_stderr_has("ripcord unlock");
    s.ws.ok(&["unlock"]).assert_stdout_has("1 lock removed");
    assert!(!s.ws.repo().join(format!("locks/{}", old.to_hex())).exists());
    s.ws.ok(&["prune"]);
}

#[test]
fn an_unreadable_lock_blocks_exclusive_commands_until_unlock() {
    let s = DirSetup::new(84);
    s.ws.snapshot_id(&[] as &[&str]);
    let path = s.ws.repo().join(format!("locks/{}", Id::random().to_hex()));
    ripcord_testing::data::write_file(&path, b"garbage, not a sealed lock");
    s.ws.run(&["prune"])
        .assert_code(3)
        .assert_stderr_has("unreadable lock file");
    s.ws.ok(&["snapshot"]);
    s.ws.ok(&["unlock"]).assert_stdout_has("1 lock removed");
    assert!(!path.exists());
    s.ws.ok(&["prune"]);
}
