//! The catalog on PostgreSQL (`[catalog] url`), shared by hosts: the
//! `ripcord` binary against a throwaway cluster. Two processes with
//! different `RIPCORD_HOSTNAME` stand for two hosts.

use std::process::{Child, Stdio};
use std::time::Duration;

use ripcord_testing::pg::{self, PgCluster};
use ripcord_testing::{data, process, Workspace};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

fn cluster() -> &'static PgCluster {
    pg::shared()
}

/// A workspace with a dir target `app`, its catalog in a new database of
/// the shared cluster; returns the database's name.
fn shared_workspace(name: &str, seed: u64) -> (Workspace, String) {
    let db = cluster()
        .create_database(name)
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    let mut ws = Workspace::new(bin());
    let layout = data::standard_tree(&ws.path("app"), seed);
    ws.dir_target("app", "app", &layout.excludes());
    ws.append_config(&format!("[catalog]\nurl = \"{}\"\n", cluster().url(&db)));
    ws.init();
    (ws, db)
}

fn scalar(db: &str, sql: &str) -> Option<String> {
    cluster()
        .psql(db, sql)
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
}

#[test]
fn a_cli_workflow_keeps_its_state_in_postgres() {
    let (mut ws, db) = shared_workspace("catalog_cli", 41);
    ws.ok(&["snapshot"]);
    ws.ok(&["audit", "--verify"])
        .assert_stdout_has("audit chain intact");
    let check = ws.ok(&["check"]);
    check.assert_stdout_has(&format!("127.0.0.1:{}/{db}", cluster().port()));
    assert!(
        !check.all_text().contains(pg::PASSWORD),
        "the password shows: {check}"
    );
    ws.append_config(
        "[runbooks.emergency]\nsteps = [{ kind = \"restore\", target = \"app\", snapshot = \"latest\" }]\n",
    );
    ws.ok(&["recover", "--level", "emergency", "--reason", "drill on pg"]);
    let runs = ws.json(&["runs"]);
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["result"], "succeeded", "{runs}");
    // Another snapshot seals the head the catalog holds now.
    ws.ok(&["snapshot"]);
    let verified = ws.ok(&["audit", "--verify"]);
    verified.assert_stdout_has("audit chain intact");

    // No SQLite file appeared: the state is in the database.
    assert!(!ws.path(".ripcord/catalog.db").exists());
    let entries = scalar(&db, "SELECT count(*) FROM ripcord.audit").unwrap();
    assert!(entries.parse::<u32>().unwrap() >= 3, "{entries} entries");
    assert_eq!(
        scalar(&db, "SELECT result FROM ripcord.runs").as_deref(),
        Some("succeeded")
    );

    // An entry changed in the database is named.
    cluster().psql(&db, "UPDATE ripcord.audit SET result = 'ok!' WHERE seq = 2");
    ws.run(&["audit", "--verify"])
        .assert_code(1)
        .assert_stderr_has("broken at entry 2");
}

#[test]
fn path_and_url_together_or_an_unreachable_url_are_usage_errors() {
    let mut ws = Workspace::new(bin());
    ws.append_config("[catalog]\npath = \"c.db\"\nurl = \"postgres://u:pw@127.0.0.1/x\"\n");
    ws.run(&["runs"])
        .assert_code(2)
        .assert_stderr_has("catalog.path and catalog.url are both set");

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut ws = Workspace::new(bin());
    ws.set_env(
        "RIPCORD_CATALOG__URL",
        &format!("postgres://u:s3cret@127.0.0.1:{port}/x?connect_timeout=2"),
    );
    let out = ws.run(&["runs"]);
    out.assert_code(2)
        .assert_stderr_has("cannot connect to the catalog")
        .assert_stderr_has("[catalog] url");
    assert!(!out.all_text().contains("s3cret"), "{out}");
}

const RECOVER: &[&str] = &["recover", "--level", "emergency", "--reason", "race"];

/// `ripcord recover` as host `host`.
fn recover_on(ws: &Workspace, host: &str) -> Child {
    let mut cmd = ws.command(RECOVER);
    cmd.env("RIPCORD_HOSTNAME", host)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

#[test]
fn two_hosts_race_for_one_run_and_the_survivor_takes_over_a_dead_one() {
    let (mut ws, db) = shared_workspace("catalog_hosts", 42);
    // The step lasts while the file `slow` is there (ripcord keeps its
    // RIPCORD_* variables from commands, so the host cannot be asked).
    ws.append_config(
        "[runbooks.emergency]\n\
         steps = [{ kind = \"command\", run = \"if [ -e slow ]; then echo $$ > sleeper.pid; exec sleep 60; fi\" }]\n",
    );
    std::fs::write(ws.path("slow"), "").unwrap();

    // Both start at once: exactly one flies, the other is refused and
    // names the holder's host.
    let a = recover_on(&ws, "host-a");
    let b = recover_on(&ws, "host-b");
    let holder_host = || scalar(&db, "SELECT host FROM ripcord.flight");
    assert!(
        process::wait_until(Duration::from_secs(20), || holder_host().is_some()),
        "nobody took the flight"
    );
    let (mut winner, loser, winner_host, loser_host) = if holder_host().as_deref() == Some("host-a")
    {
        (a, b, "host-a", "host-b")
    } else {
        (b, a, "host-b", "host-a")
    };
    let lost = loser.wait_with_output().unwrap();
    let lost_err = String::from_utf8_lossy(&lost.stderr);
    assert_eq!(lost.status.code(), Some(3), "{lost_err}");
    assert!(
        lost_err.contains(&format!("is in progress: pid {}", winner.id()))
            && lost_err.contains(&format!("on {winner_host}")),
        "{lost_err}"
    );
    // Asked again while the winner acts: refused again.
    ws.run_env(RECOVER, &[("RIPCORD_HOSTNAME", loser_host)])
        .assert_code(3)
        .assert_stderr_has(&format!("on {winner_host}"));
    let dead_run = scalar(&db, "SELECT run FROM ripcord.flight").unwrap();
    let status = ws.json(&["status"]);
    assert_eq!(status["alive"], true, "{status}");

    // The winner dies. The other host cannot see its process, but its
    // session is gone: it takes over without `ripcord unlock`.
    assert!(process::wait_until(Duration::from_secs(10), || ws
        .path("sleeper.pid")
        .exists()));
    let (_, killed) = process::kill9_child(&mut winner);
    assert!(killed);
    if let Ok(pid) = std::fs::read_to_string(ws.path("sleeper.pid")) {
        process::kill9(pid.trim().parse().unwrap());
    }
    std::fs::remove_file(ws.path("slow")).unwrap();
    let mut out = ws.run_env(RECOVER, &[("RIPCORD_HOSTNAME", loser_host)]);
    // The server closes a dead client's session within moments.
    for _ in 0..50 {
        if out.code() != 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        out = ws.run_env(RECOVER, &[("RIPCORD_HOSTNAME", loser_host)]);
    }
    out.assert_ok()
        .assert_stderr_has(&format!("run {dead_run}"))
        .assert_stderr_has(&format!("on {winner_host}"))
        .assert_stderr_has("ended without finishing");
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM ripcord.flight").as_deref(),
        Some("0")
    );
    // The dead run is left for `ripcord resume`, from any host.
    assert_eq!(
        scalar(
            &db,
            &format!("SELECT result FROM ripcord.runs WHERE id = '{dead_run}'")
        )
        .as_deref(),
        Some("running")
    );
    ws.ok(&["audit", "--verify"])
        .assert_stdout_has("audit chain intact");
}

#[test]
fn hosts_sharing_a_catalog_take_turns_at_schedule_passes() {
    let (ws, _db) = shared_workspace("ripcord_schedule_hosts", 4);
    let mut ws = ws;
    ws.append_config("[tiers.hot]\nevery = \"1h\"\n");
    // The other host: its own folder (its own lock file), the same
    // repository, targets and shared catalog.
    let mut other = Workspace::new(bin());
    other.use_repository(&ws.repo_url(), "");
    std::fs::write(other.config_path(), ws.config_text()).unwrap();
    let paused = ws.path("paused");
    let pause = format!("before-manifest={}", paused.display());
    let mut first = ws.spawn(
        &["schedule", "run"],
        &[("RIPCORD_PAUSE", &pause), ("RIPCORD_HOSTNAME", "host-a")],
    );
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while !paused.exists() {
        assert!(
            std::time::Instant::now() < until,
            "the first pass never paused"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = other.run_env(
        &["--json", "schedule", "run"],
        &[("RIPCORD_HOSTNAME", "host-b")],
    );
    out.assert_ok();
    let second = out.json();
    assert_eq!(second["skipped"], true, "{second}");
    assert!(
        second["holder"]
            .as_str()
            .unwrap()
            .contains("a session from"),
        "{second}"
    );
    std::fs::remove_file(&paused).unwrap();
    assert!(first.wait().unwrap().success());
    // Once the first host is done, the other one finds nothing due.
    let after = other.run_env(
        &["--json", "schedule", "run"],
        &[("RIPCORD_HOSTNAME", "host-b")],
    );
    after.assert_ok();
    assert_eq!(after.json()["skipped"], false, "{}", after.stdout);
    let snaps = ws.json(&["snapshots"]);
    assert_eq!(
        snaps.as_array().unwrap().len(),
        1,
        "one snapshot in all: {snaps}"
    );
}
