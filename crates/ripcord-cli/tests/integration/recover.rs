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
    s.ws.run(&["ack", "--reason", ""]).assert_code(2);
    s.ws.ok(&["ack", "--reason", "looked at it"])
        .assert_stdout_has("left safe mode");
    s.ws.ok(&["audit", "--verify"])
        .assert_stdout_has("audit chain intact: 2 entries");
    s.ws.ok(&["audit"]).assert_stdout_has("looked at it");

    // An entry edited behind ripcord's back is named.
    let catalog = s.ws.root().join(".ripcord/catalog.db");
    let conn = rusqlite::Connection::open(&catalog).unwrap();
    conn.execute("UPDATE audit SET result = 'ok' WHERE seq = 1", [])
        .unwrap();
    drop(conn);
    s.ws.run(&["audit", "--verify"])
        .assert_code(1)
        .assert_stderr_has("broken at entry 1");
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
