//! `ripcord recover`, `runs`, `ack` and `audit` as a person and a script
//! run them: real processes, the catalog on disk, tampering with sqlite.

use std::process::Stdio;

use crate::common::*;

fn runbook(setup: &mut DirSetup, steps: &str) {
    setup.ws.append_config(&format!(
        "[runbooks.emergency]\nsteps = [{steps}]\nescalate_to = \"full\"\n\n\
         [runbooks.full]\nsteps = [{{ kind = \"command\", run = \"exit 7\" }}]\n"
    ));
}

#[test]
fn of_ten_recoveries_started_at_once_exactly_one_runs() {
    let mut s = DirSetup::new(11);
    runbook(&mut s, "{ kind = \"command\", run = \"sleep 2\" }");
    let children: Vec<_> = (0..10)
        .map(|_| {
            s.ws.command(&["recover", "--level", "emergency", "--reason", "race"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 3).count(), 9, "{codes:?}");
    let refused = outs.iter().find(|o| o.status.code() == Some(3)).unwrap();
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("is in progress: pid"), "{text}");
    let runs = s.ws.json(&["runs"]);
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
}

#[test]
fn escalation_then_safe_mode_then_ack_and_an_intact_audit() {
    let mut s = DirSetup::new(12);
    s.ws.ok(&["snapshot"]);
    runbook(
        &mut s,
        "{ kind = \"restore\", target = \"app\", snapshot = \"latest\" }, \
         { kind = \"check\", command = \"exit 1\" }",
    );
    let out =
        s.ws.run(&["recover", "--level", "emergency", "--reason", "bad deploy"]);
    out.assert_code(1)
        .assert_stdout_has("level emergency")
        .assert_stdout_has("level full")
        .assert_stderr_has("ripcord is in safe mode");
    let report = s.ws.json(&["report", "latest"]);
    assert_eq!(report["escalations"][0], "emergency -> full", "{report}");
    assert!(report["rto_seconds"].is_null(), "not recovered: {report}");
    let md = s.ws.ok(&["report", "latest"]);
    md.assert_stdout_has("# Incident report")
        .assert_stdout_has("safe mode because of this run");
    s.ws.run(&["ack", "--reason", ""]).assert_code(2);
    s.ws.ok(&["ack", "--reason", "looked at it"])
        .assert_stdout_has("left safe mode");
    s.ws.ok(&["audit", "--verify"])
        .assert_stdout_has("audit chain intact: 4 entries");
    s.ws.ok(&["audit"]).assert_stdout_has("looked at it");

    // An entry edited behind ripcord's back is named.
    let catalog = s.ws.root().join(".ripcord/catalog.db");
    let conn = rusqlite::Connection::open(&catalog).unwrap();
    // Entry 3 is the failed recovery.
    conn.execute("UPDATE audit SET result = 'ok' WHERE seq = 3", [])
        .unwrap();
    drop(conn);
    s.ws.run(&["audit", "--verify"])
        .assert_code(1)
        .assert_stderr_has("broken at entry 3");
}

#[test]
fn a_bad_runbook_stops_every_command_and_names_the_key() {
    let mut s = DirSetup::new(13);
    runbook(&mut s, "{ kind = \"restor\", target = \"app\" }");
    s.ws.run(&["snapshots"])
        .assert_code(2)
        .assert_stderr_has("runbooks.emergency.steps[0].kind")
        .assert_stderr_has("did you mean \"restore\"");
}

/// A runbook whose steps leave traces: a restore of `app`, a command that
/// is not idempotent (it appends to `ran.log`), and a check of its work.
fn traced(seed: u64) -> (DirSetup, ripcord_testing::Fingerprint) {
    let mut s = DirSetup::new(seed);
    let expected = s.expected();
    s.ws.ok(&["snapshot"]);
    runbook(
        &mut s,
        "{ kind = \"restore\", target = \"app\", snapshot = \"latest\" }, \
         { kind = \"command\", run = \"echo once >> ran.log\" }, \
         { kind = \"check\", command = \"test -f ran.log\" }",
    );
    std::fs::write(s.app.join("stray.txt"), "a bad deploy").unwrap();
    (s, expected)
}

const RECOVER: &[&str] = &["recover", "--level", "emergency", "--reason", "crash test"];

fn killed_at(s: &DirSetup, point: &str) {
    let out = s.ws.run_env(RECOVER, &[("RIPCORD_FAILPOINT", point)]);
    assert_eq!(out.signal, Some(9), "killed by the failpoint: {out}");
}

#[test]
fn a_run_killed_in_a_builtin_step_resumes_to_the_same_end() {
    let (s, expected) = traced(21);
    killed_at(&s, "recover-step-started:1");
    let runs = s.ws.json(&["runs"]);
    assert_eq!(runs[0]["result"], "running", "{runs}");
    // The lock of the dead run does not stop the resume.
    s.ws.ok(&["resume"])
        .assert_stdout_has("recovered at level emergency");
    assert_eq!(s.ws.json(&["runs"])[0]["result"], "succeeded");
    let restored = ripcord_testing::Fingerprint::of(&s.app).without_all(&s.layout.excluded);
    assert_eq!(restored, expected, "the interrupted restore ran again");
    assert_eq!(
        std::fs::read_to_string(s.ws.path("ran.log")).unwrap(),
        "once\n"
    );
    s.ws.run(&["resume"])
        .assert_code(2)
        .assert_stderr_has("nothing to resume");
    s.ws.ok(&["audit", "--verify"]);
}

#[test]
fn an_interrupted_command_needs_a_decision() {
    let (s, _) = traced(22);
    killed_at(&s, "recover-step-started:2");
    s.ws.run(&["resume"])
        .assert_code(3)
        .assert_stderr_has("not marked idempotent")
        .assert_stderr_has("--rerun");
    s.ws.ok(&["resume", "--rerun"]);
    assert_eq!(
        std::fs::read_to_string(s.ws.path("ran.log")).unwrap(),
        "once\n"
    );
    let trail = s.ws.json(&["audit"]);
    let resumed = trail
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["command"] == "resume")
        .expect("resume audited");
    assert!(
        resumed["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--rerun"),
        "{resumed}"
    );
}

#[test]
fn a_skipped_command_is_journaled_as_skipped() {
    let (s, _) = traced(23);
    killed_at(&s, "recover-step-started:2");
    // Without ran.log the check fails: the level escalates, then safe mode.
    s.ws.run(&["resume", "--skip"])
        .assert_code(1)
        .assert_stderr_has("safe mode");
    let run = s.ws.json(&["runs"])[0]["run"].as_str().unwrap().to_string();
    let conn = rusqlite::Connection::open(s.ws.root().join(".ripcord/catalog.db")).unwrap();
    let state: String = conn
        .query_row(
            "SELECT state FROM steps WHERE run = ?1 AND seq = 2",
            [&run],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "skipped");
    s.ws.run(&["resume", &run])
        .assert_code(2)
        .assert_stderr_has("already ended: failed");
}

#[test]
fn a_run_killed_after_its_last_step_ends_without_running_anything_again() {
    let (s, _) = traced(24);
    killed_at(&s, "recover-step-ended:3");
    s.ws.ok(&["resume"]);
    assert_eq!(
        std::fs::read_to_string(s.ws.path("ran.log")).unwrap(),
        "once\n"
    );
    assert_eq!(s.ws.json(&["runs"])[0]["result"], "succeeded");
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_newest_that_verifies() {
    let mut s = DirSetup::new(25);
    let good = s.ws.snapshot_id(&[] as &[&str]);
    let expected = s.expected();
    // A newer snapshot whose new data is then damaged on disk.
    std::fs::write(s.app.join("config/app.toml"), "port = 9999\n").unwrap();
    let bad = s.ws.snapshot_id(&[] as &[&str]);
    let blobs = file_blobs(&s.ws, &bad, "app", "config/app.toml");
    flip_byte(
        &pack_file(&s.ws, &blobs[0].pack),
        blobs[0].offset as u64 + blobs[0].length as u64 / 2,
    );
    runbook(
        &mut s,
        "{ kind = \"restore\", target = \"app\", snapshot = \"latest\" }",
    );
    std::fs::write(s.app.join("stray.txt"), "a bad deploy").unwrap();
    let out = s.ws.ok(RECOVER);
    out.assert_stdout_has(&format!("fell back to {}", short(&good)))
        .assert_stderr_has(&format!("snapshot {} is damaged", short(&bad)));
    let restored = ripcord_testing::Fingerprint::of(&s.app).without_all(&s.layout.excluded);
    assert_eq!(restored, expected, "the older snapshot was restored");
    let report = s.ws.json(&["report", "latest"]);
    assert!(
        report["fallbacks"][0]
            .as_str()
            .unwrap_or_default()
            .contains(&short(&good).to_string()),
        "{report}"
    );
    assert!(report["rpo_seconds"].as_f64().is_some(), "{report}");
    assert!(report["rto_seconds"].as_f64().is_some(), "{report}");
}

#[test]
fn the_demo_tells_the_recovery_run_and_its_objectives() {
    let ws = workspace();
    let out = ws.ok(&["demo"]);
    out.assert_stdout_has("recover --level emergency")
        .assert_stdout_has("migrate down to @last-good: succeeded")
        .assert_stdout_has("recovered: RTO")
        .assert_stdout_has("guard:health-down breached twice in a row")
        .assert_stdout_has("/health answers 200 again")
        .assert_stdout_has("done: the app was broken and is back");
}

#[test]
fn status_shows_the_run_in_progress_with_an_eta_and_a_dead_one() {
    let mut s = DirSetup::new(26);
    runbook(&mut s, "{ kind = \"command\", run = \"sleep 2\" }");
    s.ws.ok(&["status"])
        .assert_stdout_has("no recovery run in progress");
    // A first run gives the step's duration.
    s.ws.ok(RECOVER);
    let mut child =
        s.ws.command(RECOVER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        let v = s.ws.json(&["status"]);
        if !v["step"].is_null() || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status["step"], "run `sleep 2`", "{status}");
    assert_eq!(status["alive"], true, "{status}");
    let eta = status["eta_seconds"]
        .as_f64()
        .expect("an ETA from the first run");
    assert!(eta <= 2.5, "{status}");
    s.ws.ok(&["status"]).assert_stdout_has("left");
    assert!(child.wait().unwrap().success());

    // Killed: status says to resume.
    killed_at_step(&s);
    s.ws.ok(&["status"])
        .assert_stdout_has("stopped without finishing");
}

fn killed_at_step(s: &DirSetup) {
    let out =
        s.ws.run_env(RECOVER, &[("RIPCORD_FAILPOINT", "recover-step-started:1")]);
    assert_eq!(out.signal, Some(9), "{out}");
}
