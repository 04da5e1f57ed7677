//! Limits on input: numbers, durations, passphrases and waits that used to
//! panic, hang or weaken the repository.

use std::time::{Duration, Instant};

use ripcord_testing::{repo_hashes, Workspace};

use crate::common::*;

fn with_snapshot(seed: u64) -> (Workspace, String) {
    let mut ws = workspace();
    ripcord_testing::data::standard_tree(&ws.path("app"), seed);
    ws.dir_target("app", "app", &[]);
    ws.init();
    let id = ws.snapshot_id(&[] as &[&str]);
    (ws, id)
}

#[test]
fn jobs_100000_is_refused_before_taking_the_lock() {
    // It panicked and left a stale lock.
    let (ws, id) = with_snapshot(91);
    let before = repo_hashes(&ws.repo());
    for args in [
        vec!["snapshot", "--jobs", "100000"],
        vec!["restore", id.as_str(), "--into", "out", "--jobs", "100000"],
    ] {
        let out = ws.run(&args);
        out.assert_code(2).assert_stderr_has("limit of 256");
        assert!(!out.stderr.contains("panicked"), "{out}");
    }
    assert!(files_in(&ws, "locks").is_empty(), "a lock was left");
    assert_eq!(repo_hashes(&ws.repo()), before);
    assert!(!ws.path("out").exists());
    ws.ok(&["snapshot", "--jobs", "256"]);
}

#[test]
fn jobs_in_the_config_are_bounded() {
    let (mut ws, _) = with_snapshot(92);
    let before = repo_hashes(&ws.repo());
    ws.append_config("");
    let text = ws
        .config_text()
        .replace("compression = 1", "compression = 1\njobs = 100000");
    std::fs::write(ws.config_path(), text).unwrap();
    ws.run(&["snapshot"])
        .assert_code(2)
        .assert_stderr_has("snapshot.jobs")
        .assert_stderr_has("256");
    assert_eq!(repo_hashes(&ws.repo()), before);
}

#[test]
fn forget_keep_within_300000y_exits_2_instead_of_panicking() {
    let (ws, id) = with_snapshot(93);
    let before = repo_hashes(&ws.repo());
    let out = ws.run(&["forget", "--keep-within", "300000y"]);
    out.assert_code(2).assert_stderr_has("too long");
    assert!(!out.stderr.contains("panicked"), "{out}");
    assert_eq!(repo_hashes(&ws.repo()), before);
    assert_eq!(ws.snapshot_ids(), [id]);
    ws.ok(&["forget", "--keep-within", "1000y"]);
}

#[test]
fn password_command_that_hangs_times_out() {
    let (mut ws, _) = with_snapshot(94);
    ws.append_config("");
    let text = ws.config_text().replace(
        "[snapshot]",
        "password_command = \"sleep 600\"\npassword_command_timeout = \"1s\"\n\n[snapshot]",
    );
    std::fs::write(ws.config_path(), text).unwrap();
    let mut cmd = ws.command(&["snapshots"]);
    cmd.env_remove("RIPCORD_PASSWORD");
    let start = Instant::now();
    ws.run_cmd(&["snapshots"], cmd)
        .assert_code(1)
        .assert_stderr_has("did not finish within 1s")
        .assert_stderr_has("password_command_timeout");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn password_command_timeout_must_be_a_duration() {
    let (mut ws, _) = with_snapshot(95);
    ws.append_config("");
    let text = ws.config_text().replace(
        "[snapshot]",
        "password_command_timeout = \"soon\"\n\n[snapshot]",
    );
    std::fs::write(ws.config_path(), text).unwrap();
    ws.run(&["snapshots"])
        .assert_code(2)
        .assert_stderr_has("password_command_timeout");
}

#[test]
fn empty_passphrase_is_refused_by_init_and_keys() {
    let ws = workspace();
    ws.run_env(&["init"], &[("RIPCORD_PASSWORD", "")])
        .assert_code(2)
        .assert_stderr_has("new passphrase is empty");
    assert!(!ws.repo().exists(), "init created the repository");

    let (ws, _) = with_snapshot(96);
    let before = repo_hashes(&ws.repo());
    for args in [["key", "add"], ["key", "passwd"]] {
        ws.run_env(&args, &[("RIPCORD_NEW_PASSWORD", "")])
            .assert_code(2)
            .assert_stderr_has("new passphrase is empty");
    }
    assert_eq!(repo_hashes(&ws.repo()), before);
    ws.ok(&["snapshots"]);
}
