//! The audit of every changing command, the chain's head sealed into the
//! repository, the ways back as runs, `@last-good`, and `ripcord check`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ripcord_testing::app::{sqlite_app, sqlite_rows as rows, write};
use serde_json::Value;

use crate::common::*;

fn audit_commands(ws: &ripcord_testing::Workspace) -> Vec<(String, String)> {
    ws.json(&["audit"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["command"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_changing_command_is_audited_with_its_outcome_and_no_secret() {
    let s = DirSetup::new(41);
    let ws = &s.ws;
    ws.ok(&["snapshot"]);
    ws.ok(&["snapshot", "--dry-run"]);
    std::fs::write(s.app.join("stray.txt"), "a bad deploy").unwrap();
    ws.ok(&["restore", "latest", "--reason", "bad config push"]);
    ws.ok(&["restore", "latest", "--into", "out/x?token=hunter2"]);
    ws.run(&["restore", "latest", "--into", "/proc/no-such-folder"])
        .assert_code(1);
    // Bad input changes nothing, and is not audited.
    ws.run(&["restore", "latest", "--target", "nope"])
        .assert_code(2);
    ws.ok(&["forget", "--keep-last", "10"]);
    ws.ok(&["prune"]);
    ws.run_env(&["key", "add"], &[("RIPCORD_NEW_PASSWORD", "second pass")])
        .assert_code(0);
    ws.ok(&["unlock"]);
    ws.ok(&["repair", "index"]);
    let seen = audit_commands(ws);
    let commands: Vec<&str> = seen.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        commands,
        [
            "init",
            "snapshot",
            "restore",
            "restore",
            "restore",
            "forget",
            "prune",
            "key add",
            "unlock",
            "repair index"
        ],
        "{seen:?}"
    );
    assert!(seen[4].1.starts_with("failed: "), "{seen:?}");
    let trail = ws.json(&["audit"]);
    let in_place = &trail[2];
    assert_eq!(in_place["reason"], "bad config push", "{in_place}");
    assert!(
        in_place["run"].is_string(),
        "an in-place restore is a run: {in_place}"
    );
    assert!(trail[3]["run"].is_null(), "--into is not a run: {trail}");
    let text = trail.to_string();
    assert!(!text.contains("hunter2"), "a password in the audit: {text}");
    assert!(text.contains("out/x?token=***"), "{text}");
    ws.ok(&["audit", "--verify"])
        .assert_stdout_has("audit chain intact: 10 entries");
}

#[test]
fn a_catalog_deleted_or_replaced_is_caught_against_the_repository() {
    let s = DirSetup::new(42);
    let ws = &s.ws;
    ws.ok(&["snapshot"]);
    ws.ok(&["unlock"]);
    ws.ok(&["snapshot"]);
    ws.ok(&["audit", "--verify"])
        .assert_stdout_has("it matches what 2 snapshots sealed");
    let catalog = ws.root().join(".ripcord/catalog.db");
    let kept = ws.root().join("catalog.kept");
    std::fs::rename(&catalog, &kept).unwrap();
    ws.run(&["audit", "--verify"])
        .assert_code(1)
        .assert_stderr_has("broken at entry 1")
        .assert_stderr_has("the catalog was deleted, cut short or replaced");
    ws.run(&["check"])
        .assert_code(1)
        .assert_stdout_has("FAIL   audit");
    // A new chain as long as the old one is not the chain the snapshots sealed.
    for _ in 0..4 {
        ws.ok(&["unlock"]);
    }
    ws.run(&["audit", "--verify"])
        .assert_code(1)
        .assert_stderr_has("entry 1 is not the one snapshot")
        .assert_stderr_has("the catalog was rewritten");
    std::fs::rename(&kept, &catalog).unwrap();
    ws.ok(&["audit", "--verify"]);
}

/// Waits until `path` exists: the paused process reached its point.
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "never paused");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_in_place_restore_is_a_run_and_waits_for_a_recovery() {
    let mut s = DirSetup::new(43);
    s.ws.ok(&["snapshot"]);
    s.ws.append_config("[runbooks.slow]\nsteps = [{ kind = \"command\", run = \"true\" }]\n");
    let pause = s.ws.path("paused");
    let mut recovering =
        s.ws.command(&["recover", "--level", "slow", "--reason", "hold the lock"])
            .env(
                "RIPCORD_PAUSE",
                format!("recover-step-started={}", pause.display()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    wait_for(&pause);
    s.ws.run(&["restore", "latest"])
        .assert_code(3)
        .assert_stderr_has("is in progress: pid");
    std::fs::remove_file(&pause).unwrap();
    assert!(recovering.wait().unwrap().success());

    std::fs::write(s.app.join("stray.txt"), "a bad deploy").unwrap();
    let restored = s.ws.json(&["restore", "latest", "--reason", "bad deploy"]);
    let run = restored["run"].as_str().expect("a run").to_string();
    let runs = s.ws.json(&["runs"]);
    assert_eq!(runs[0]["run"], run.as_str(), "{runs}");
    assert_eq!(runs[0]["kind"], "restore", "{runs}");
    assert_eq!(runs[0]["result"], "succeeded", "{runs}");
    let report = s.ws.json(&["report", &run]);
    assert_eq!(report["run"]["reason"], "bad deploy", "{report}");
    assert_eq!(report["timeline"][0]["kind"], "restore", "{report}");
    assert!(report["rpo_seconds"].as_f64().is_some(), "{report}");
    // A restore killed part way is closed as failed by the next run, and
    // is not resumed: the same command again is safe.
    let killed = s.ws.run_env(
        &["restore", "latest"],
        &[("RIPCORD_FAILPOINT", "restore-swapped")],
    );
    assert_eq!(killed.signal, Some(9), "{killed}");
    s.ws.run(&["resume"]).assert_code(2);
    s.ws.ok(&["restore", "latest"])
        .assert_stderr_has("it is recorded as failed");
    assert_eq!(s.ws.json(&["runs"])[1]["result"], "failed");
}

#[test]
fn check_reports_safe_mode_until_ack() {
    let mut s = DirSetup::new(44);
    s.ws.append_config("[runbooks.only]\nsteps = [{ kind = \"command\", run = \"exit 1\" }]\n");
    s.ws.ok(&["check"]).assert_stdout_has("ok     safe mode");
    s.ws.run(&["recover", "--level", "only", "--reason", "test"])
        .assert_code(1);
    let out = s.ws.run(&["check"]);
    out.assert_code(1)
        .assert_stdout_has("FAIL   safe mode")
        .assert_stdout_has("ripcord ack --reason");
    let doc: Value = s.ws.run(&["--json", "check"]).json();
    assert_eq!(doc["ok"], false, "{doc}");
    s.ws.ok(&["ack", "--reason", "looked"]);
    s.ws.ok(&["check"]);
}

fn changes(ws: &ripcord_testing::Workspace, n: usize) {
    for i in 1..=n {
        write(
            ws,
            &format!("migrations/{i}_t{i}.up.sql"),
            &format!("CREATE TABLE t{i} (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO t{i} (v) VALUES ('x');\n"),
        );
        write(
            ws,
            &format!("migrations/{i}_t{i}.down.sql"),
            &format!("DROP TABLE t{i};\n"),
        );
    }
}

fn tables(db: &Path) -> Vec<String> {
    rows(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 't%' ORDER BY name",
    )
}

#[test]
fn last_good_is_the_state_before_the_latest_migrate_up() {
    let (mut ws, db) = sqlite_app(bin(), "");
    ws.init();
    changes(&ws, 2);
    ripcord_testing::app::sqlite_exec(&db, "CREATE TABLE kept (id INTEGER)");
    ws.run(&["migrate", "down", "@last-good"])
        .assert_code(2)
        .assert_stderr_has("no `migrate up` of app is recorded");
    ws.ok(&["migrate", "up"]);
    changes(&ws, 3);
    ws.ok(&["migrate", "up"]);
    // An up with nothing to do keeps the earlier state.
    ws.ok(&["migrate", "up"]);
    assert_eq!(tables(&db), ["t1", "t2", "t3"]);
    let down = ws.json(&["migrate", "down", "@last-good", "--reason", "bad release"]);
    assert_eq!(down["change_count"], 1, "{down}");
    assert_eq!(tables(&db), ["t1", "t2"]);
    let run = down["run"].as_str().expect("a run");
    let report = ws.json(&["report", run]);
    assert_eq!(report["run"]["kind"], "migrate-down", "{report}");
    // From a runbook too.
    ws.ok(&["migrate", "up"]);
    ws.append_config(
        "[runbooks.back]\nsteps = [{ kind = \"migrate-down\", to = \"@last-good\" }]\n",
    );
    ws.ok(&["recover", "--level", "back", "--reason", "bad release"]);
    assert_eq!(tables(&db), ["t1", "t2"]);
    let trail: Vec<String> = audit_commands(&ws).into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        trail,
        [
            "init",
            "migrate up",
            "migrate up",
            "migrate up",
            "migrate down",
            "migrate up",
            "recover"
        ],
    );
}

#[test]
fn a_recovery_killed_inside_a_migrate_down_resumes_to_the_same_end() {
    let (mut ws, db) = sqlite_app(bin(), "");
    ws.init();
    changes(&ws, 1);
    ws.ok(&["migrate", "up"]);
    changes(&ws, 3);
    ws.ok(&["migrate", "up"]);
    ws.append_config(
        "[runbooks.back]\nsteps = [{ kind = \"migrate-down\", to = \"@last-good\" }, \
         { kind = \"check\", command = \"true\" }]\n",
    );
    let recover = ["recover", "--level", "back", "--reason", "crash test"];
    // Killed after the first change's revert ran, before the second's.
    let killed = ws.run_env(&recover, &[("RIPCORD_FAILPOINT", "migrate-revert-ran")]);
    assert_eq!(killed.signal, Some(9), "{killed}");
    ws.ok(&["resume"]);
    assert_eq!(tables(&db), ["t1"]);
    let status = ws.json(&["migrate", "status"]);
    assert_eq!(status["counts"]["pending"], 2, "{status}");
    ws.ok(&["audit", "--verify"]);
}

#[test]
fn a_recovery_killed_inside_a_snapshot_or_a_restore_resumes_to_the_same_end() {
    for (seed, point) in [
        (45, "before-manifest"),
        (46, "restore-before-swap"),
        (47, "restore-swap-step:2"),
    ] {
        let mut s = DirSetup::new(seed);
        let expected = s.expected();
        s.ws.ok(&["snapshot", "--tag", "good"]);
        s.ws.append_config(
            "[runbooks.emergency]\nsteps = [{ kind = \"snapshot\", tag = \"before\" }, \
             { kind = \"restore\", target = \"app\", snapshot = \"latest:good\" }, \
             { kind = \"check\", command = \"true\" }]\n",
        );
        std::fs::write(s.app.join("stray.txt"), "a bad deploy").unwrap();
        let killed = s.ws.run_env(
            &["recover", "--level", "emergency", "--reason", "crash test"],
            &[("RIPCORD_FAILPOINT", point)],
        );
        assert_eq!(killed.signal, Some(9), "{point}: {killed}");
        s.ws.ok(&["resume"]);
        let after = ripcord_testing::Fingerprint::of(&s.app).without_all(&s.layout.excluded);
        assert_eq!(after, expected, "{point}");
        s.ws.ok(&["verify"]);
        s.ws.ok(&["audit", "--verify"]);
    }
}

#[test]
fn a_builtin_step_that_overruns_its_timeout_fails_and_the_run_escalates() {
    let mut s = DirSetup::new(48);
    s.ws.ok(&["snapshot"]);
    s.ws.append_config(
        "[runbooks.emergency]\nsteps = [{ kind = \"restore\", target = \"app\", \
         snapshot = \"latest\", timeout = \"1s\" }]\nescalate_to = \"full\"\n\n\
         [runbooks.full]\nsteps = [{ kind = \"command\", run = \"true\" }]\n",
    );
    std::fs::write(s.app.join("stray.txt"), "a bad deploy").unwrap();
    // The restore stops before its swap and would wait there for minutes.
    let pause = s.ws.path("paused");
    let started = Instant::now();
    let out = s.ws.run_env(
        &[
            "recover",
            "--level",
            "emergency",
            "--reason",
            "slow restore",
        ],
        &[(
            "RIPCORD_PAUSE",
            &format!("restore-before-swap={}", pause.display()),
        )],
    );
    out.assert_code(0)
        .assert_stdout_has("recovered at level full");
    assert!(started.elapsed() < Duration::from_secs(60), "{out}");
    let report = s.ws.json(&["report", "latest"]);
    assert_eq!(report["timeline"][0]["state"], "failed", "{report}");
    let output = report["timeline"][0]["output"].as_str().unwrap_or_default();
    assert!(output.contains("timed out after 1s"), "{report}");
    assert_eq!(report["escalations"][0], "emergency -> full", "{report}");
    // Stopped before the swap: the target is as it was.
    assert!(s.app.join("stray.txt").exists());
    let _ = std::fs::remove_file(&pause);
    s.ws.ok(&["verify"]);
}

#[test]
fn a_recovery_killed_from_outside_in_the_middle_of_a_restore_resumes_to_the_same_end() {
    let mut s = DirSetup::new(49);
    let expected = s.expected();
    s.ws.ok(&["snapshot"]);
    s.ws.append_config(
        "[runbooks.emergency]\nsteps = [{ kind = \"restore\", target = \"app\", \
         snapshot = \"latest\" }, { kind = \"check\", command = \"true\" }]\n",
    );
    std::fs::write(s.app.join("stray.txt"), "a bad deploy").unwrap();
    let pause = s.ws.path("paused");
    let mut child =
        s.ws.command(&["recover", "--level", "emergency", "--reason", "crash test"])
            .env(
                "RIPCORD_PAUSE",
                format!("restore-swap-step={}", pause.display()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    wait_for(&pause);
    // kill -9 from outside, half way through the swap.
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(&pause).unwrap();
    s.ws.ok(&["status"]).assert_stdout_has("resume");
    s.ws.ok(&["resume"]);
    let after = ripcord_testing::Fingerprint::of(&s.app).without_all(&s.layout.excluded);
    assert_eq!(after, expected);
    s.ws.ok(&["verify"]);
}
