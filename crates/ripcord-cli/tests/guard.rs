//! The guard as a person and a script run it: a real HTTP service on
//! 127.0.0.1 flipped between healthy and failing, real catalogs, real
//! recovery runs and real migrations rolled back with their data.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ripcord_testing::app::{sqlite_app, sqlite_exec, sqlite_rows, write};
use ripcord_testing::service::Service;
use ripcord_testing::Workspace;
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

/// A workspace with a repository, a dir target and the guard on `svc`.
fn guarded(svc: &Service, rule: &str, runbook: &str) -> Workspace {
    let ws = configured(svc, rule, runbook);
    ws.init();
    ws
}

/// The same, without creating the repository.
fn configured(svc: &Service, rule: &str, runbook: &str) -> Workspace {
    let mut ws = Workspace::new(bin());
    std::fs::create_dir_all(ws.path("app")).unwrap();
    ws.dir_target("app", "app", &[]);
    ws.append_config(&format!(
        "[runbooks.emergency]\nsteps = [{runbook}]\n\n\
         [guard.probes.api]\nhttp = \"{}\"\ninterval = \"200ms\"\ntimeout = \"1s\"\n\n\
         [[guard.rules]]\nname = \"api-down\"\n{rule}\n",
        svc.url
    ));
    ws
}

const ROLLBACK: &str = "when = \"availability(api, 1s) < 100%\"\nfor = 2\n\
                        action = \"rollback\"\nlevel = \"emergency\"";

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn runs(ws: &Workspace) -> Vec<Value> {
    ws.json(&["runs"]).as_array().cloned().unwrap_or_default()
}

fn watching(ws: &Workspace, args: &[&str]) -> Child {
    let mut all = vec!["guard", "watch"];
    all.extend_from_slice(args);
    ws.command(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn bad_rules_and_unknown_probes_stop_every_command_and_point_at_the_column() {
    let svc = Service::start(200);
    let ws = configured(
        &svc,
        "when = \"availability(api, 30s) 95%\"",
        "{ kind = \"command\", run = \"true\" }",
    );
    let out = ws.run(&["snapshots"]);
    out.assert_code(2)
        .assert_stderr_has("guard.rules[0].when")
        .assert_stderr_has("column 24");
    let ws = configured(
        &svc,
        "when = \"availability(apii, 30s) < 95%\"",
        "{ kind = \"command\", run = \"true\" }",
    );
    ws.run(&["guard", "check"])
        .assert_code(2)
        .assert_stderr_has("no probe \"apii\" (did you mean \"api\"?)");
    let ws = configured(
        &svc,
        "when = \"value(api) > 1\"\naction = \"rollback\"",
        "{ kind = \"command\", run = \"true\" }",
    );
    ws.run(&["guard", "status"])
        .assert_code(2)
        .assert_stderr_has("missing `level`");
}

#[test]
fn guard_check_exits_0_healthy_1_critical_4_inconclusive() {
    let svc = Service::start(200);
    let ws = guarded(
        &svc,
        "when = \"availability(api, 1m) < 95%\"",
        "{ kind = \"command\", run = \"true\" }",
    );
    let ok = ws.json(&["guard", "check"]);
    assert_eq!(ok["result"], "ok", "{ok}");
    assert_eq!(ok["probes"][0]["ok"], true, "{ok}");
    svc.set(503);
    let out = ws.run(&["--json", "guard", "check"]);
    out.assert_code(1);
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["rules"][0]["verdict"], "breached", "{doc}");
    assert!(
        doc["rules"][0]["evidence"][0]
            .as_str()
            .unwrap()
            .contains("50.0%"),
        "{doc}"
    );

    // Low traffic: fewer samples than the rule demands is never healthy.
    let ws = guarded(
        &svc,
        "when = \"availability(api, 1m) < 95%\"\nmin_samples = 5",
        "{ kind = \"command\", run = \"true\" }",
    );
    svc.set(200);
    ws.run(&["guard", "check"])
        .assert_code(4)
        .assert_stdout_has("inconclusive")
        .assert_stdout_has("fewer than the 5 required");
}

#[test]
fn watch_rolls_back_after_consecutive_breaches_as_a_run_like_any_other() {
    let svc = Service::start(200);
    let ws = guarded(
        &svc,
        ROLLBACK,
        "{ kind = \"command\", run = \"echo rolled-back > rolled.txt\" }",
    );
    let watch = watching(&ws, &["--auto-rollback", "--for", "60s"]);
    std::thread::sleep(Duration::from_millis(800));
    assert!(runs(&ws).is_empty(), "healthy: no run");
    svc.set(500);
    wait_until("a rollback run", Duration::from_secs(20), || {
        runs(&ws).iter().any(|r| r["result"] == "succeeded")
    });
    let out = stop(watch);
    assert!(out.contains("rolling back"), "{out}");
    let run = &runs(&ws)[0];
    assert_eq!(run["trigger"], "guard:api-down", "{run}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("availability(api, 1s)"),
        "the evidence is the reason: {run}"
    );
    assert!(ws.path("rolled.txt").exists());
    let report = ws.json(&["report", run["run"].as_str().unwrap()]);
    assert_eq!(report["run"]["trigger"], "guard:api-down");
    let trail: Vec<String> = ws
        .json(&["audit"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["command"].as_str().unwrap().to_string())
        .collect();
    assert!(trail.contains(&"recover".to_string()), "{trail:?}");
    // The samples are in the catalog.
    let status = ws.json(&["guard", "status"]);
    assert!(
        status["probes"][0]["samples"].as_u64().unwrap() >= 5,
        "{status}"
    );
}

#[test]
fn observe_mode_and_a_watch_without_auto_rollback_never_act() {
    let svc = Service::start(500);
    let ws = guarded(
        &svc,
        &format!("{ROLLBACK}\nmode = \"observe\""),
        "{ kind = \"command\", run = \"touch acted\" }",
    );
    let out = ws.run(&["guard", "watch", "--auto-rollback", "--for", "3s"]);
    out.assert_ok()
        .assert_stdout_has("would roll back (observe)");
    assert!(runs(&ws).is_empty());

    let ws = guarded(
        &svc,
        ROLLBACK,
        "{ kind = \"command\", run = \"touch acted\" }",
    );
    let out = ws.run(&["guard", "watch", "--for", "3s"]);
    out.assert_ok().assert_stdout_has("without --auto-rollback");
    assert!(runs(&ws).is_empty());
    assert!(!ws.path("acted").exists());
}

#[test]
fn safe_mode_refuses_guard_started_runs() {
    let svc = Service::start(500);
    let ws = guarded(&svc, ROLLBACK, "{ kind = \"command\", run = \"exit 1\" }");
    // The first rollback fails at its only level: safe mode.
    let out = ws.run(&["guard", "watch", "--auto-rollback", "--for", "4s"]);
    out.assert_ok();
    assert_eq!(runs(&ws).len(), 1, "{out}");
    assert!(ws.json(&["status"])["safe_mode"].is_object());
    // Healthy, then failing again: the guard may not start another run.
    svc.set(200);
    std::thread::sleep(Duration::from_millis(300));
    let watch = watching(&ws, &["--auto-rollback", "--for", "6s"]);
    std::thread::sleep(Duration::from_millis(1500));
    svc.set(500);
    let out = stop_after(watch, Duration::from_secs(8));
    assert!(out.contains("safe mode"), "{out}");
    assert_eq!(runs(&ws).len(), 1, "no second run: {out}");
}

fn stop_after(child: Child, limit: Duration) -> String {
    let start = Instant::now();
    let mut child = child;
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(child)
}

/// From the service going bad to the rollback run starting: at most
/// interval × for + wait + 1 s, in 20 of 20 trials.
#[test]
fn detection_latency_is_bounded_in_20_of_20_trials() {
    let svc = Service::start(200);
    let ws = guarded(&svc, ROLLBACK, "{ kind = \"command\", run = \"true\" }");
    let bound = Duration::from_millis(200 * 2 + 1000);
    let watch = watching(&ws, &["--auto-rollback", "--for", "300s"]);
    std::thread::sleep(Duration::from_millis(1000));
    let mut delays = Vec::new();
    for trial in 0..20 {
        svc.set(500);
        let flipped = chrono::Utc::now();
        wait_until("the rollback run", Duration::from_secs(10), || {
            runs(&ws).len() > trial
        });
        let run = &runs(&ws)[0];
        let started = chrono::DateTime::parse_from_rfc3339(run["started"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        delays.push((started - flipped).to_std().unwrap_or_default());
        svc.set(200);
        // Healthy again over the whole window before the next trial.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let out = stop(watch);
    let mut sorted = delays.clone();
    sorted.sort();
    println!(
        "detection latency over 20 trials: min {:?}, median {:?}, max {:?} (bound {bound:?})",
        sorted[0], sorted[10], sorted[19]
    );
    assert!(sorted[19] <= bound, "{delays:?}\n{out}");
}

fn users(ws: &Workspace) {
    users_keyed(ws, "INTEGER PRIMARY KEY");
}

fn users_keyed(ws: &Workspace, key: &str) {
    write(
        ws,
        "migrations/1_users.up.sql",
        &format!("CREATE TABLE users (id {key}, name TEXT, email TEXT);\n\
         INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com'), ('bob', 'bob@example.com');\n"),
    );
    write(ws, "migrations/1_users.down.sql", "DROP TABLE users;\n");
}

fn drop_email(ws: &Workspace) {
    write(
        ws,
        "migrations/2_drop_email.up.sql",
        "ALTER TABLE users DROP COLUMN email;\n",
    );
}

#[test]
fn bake_reverts_exactly_this_ups_changes_with_their_data() {
    let svc = Service::start(200);
    let (mut ws, db) = sqlite_app(bin(), "");
    ws.append_config(&format!(
        "[guard.probes.api]\nhttp = \"{}\"\ninterval = \"200ms\"\n\n\
         [[guard.rules]]\nname = \"api-down\"\nwhen = \"availability(api, 1s) < 100%\"\n",
        svc.url
    ));
    ws.init();
    users(&ws);
    ws.ok(&["migrate", "up", "--bake", "1s"])
        .assert_stdout_has("baked for 1s");
    drop_email(&ws);
    let baking = ws
        .command(&["--json", "migrate", "up", "--bake", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    svc.set(500);
    let out = baking.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = doc["bake"]["reverted_run"]
        .as_str()
        .expect("a run")
        .to_string();
    assert_eq!(doc["bake"]["revert_to"], "1_users", "{doc}");
    // The dropped column is back with its data; the first change stayed.
    assert_eq!(
        sqlite_rows(&db, "SELECT name, email FROM users ORDER BY id"),
        ["ada|ada@example.com", "bob|bob@example.com"]
    );
    let status = ws.json(&["migrate", "status"]);
    assert_eq!(status["counts"]["pending"], 1, "{status}");
    let runs = runs(&ws);
    assert_eq!(runs[0]["run"], run.as_str());
    assert_eq!(runs[0]["kind"], "migrate-down");
    assert_eq!(runs[0]["trigger"], "guard:api-down");
    let report = ws.json(&["report", &run]);
    assert_eq!(report["timeline"][0]["kind"], "migrate-down", "{report}");
    sqlite_exec(&db, "SELECT 1");
}

#[test]
fn a_guard_killed_during_its_rollback_leaves_a_run_to_resume() {
    let svc = Service::start(200);
    let ws = guarded(
        &svc,
        ROLLBACK,
        "{ kind = \"command\", run = \"sleep 3\", idempotent = true }, \
         { kind = \"command\", run = \"touch done\" }",
    );
    let watch = watching(&ws, &["--auto-rollback", "--for", "60s"]);
    std::thread::sleep(Duration::from_millis(800));
    svc.set(500);
    wait_until("the rollback run", Duration::from_secs(20), || {
        !runs(&ws).is_empty()
    });
    // kill -9 while the run's first step sleeps.
    stop(watch);
    assert_eq!(runs(&ws)[0]["result"], "running");
    ws.ok(&["resume"]);
    assert_eq!(runs(&ws)[0]["result"], "succeeded");
    assert!(ws.path("done").exists());
}

/// `[migrations] timeout`: a change that runs longer is stopped and undone.
#[test]
fn a_change_past_its_timeout_is_stopped_and_undone_on_sqlite() {
    let (ws, db) = sqlite_app(bin(), "timeout = \"500ms\"\n");
    ws.init();
    users(&ws);
    write(
        &ws,
        "migrations/2_slow.up.sql",
        "CREATE TABLE big AS WITH RECURSIVE c(x) AS \
         (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000000) SELECT x FROM c;\n",
    );
    let started = Instant::now();
    let out = ws.run(&["migrate", "up"]);
    out.assert_code(1)
        .assert_stderr_has("ran past the change timeout of 500ms");
    assert!(started.elapsed() < Duration::from_secs(20), "{out}");
    assert!(sqlite_rows(&db, "SELECT name FROM sqlite_master WHERE name = 'big'").is_empty());
    let status = ws.json(&["migrate", "status"]);
    assert_eq!(status["counts"]["pending"], 1, "{status}");
    assert_eq!(status["counts"]["applied"], 1, "{status}");
}

#[test]
fn a_change_past_its_timeout_is_stopped_and_undone_on_postgres() {
    let (ws, db) = ripcord_testing::app::pg_app(bin(), "guard_timeout", "timeout = \"1s\"\n");
    write(
        &ws,
        "migrations/1_slow.up.sql",
        "CREATE TABLE t (id int);\nSELECT pg_sleep(30);\n",
    );
    let started = Instant::now();
    ws.run(&["migrate", "up"])
        .assert_code(1)
        .assert_stderr_has("ran past the change timeout of 1s");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        ripcord_testing::app::rows(&db, "SELECT 1 FROM pg_tables WHERE tablename = 't'").is_empty()
    );
}

/// A real Prometheus: a value read back is judged, and an empty result or
/// NaN is inconclusive (exit 4), never healthy.
#[test]
fn prometheus_values_are_judged_and_empty_or_nan_is_inconclusive() {
    use ripcord_testing::prometheus::{Exporter, Prometheus};
    let exporter =
        Exporter::start("# TYPE app_queue gauge\napp_queue 42\napp_ratio NaN\n").unwrap();
    let server = Prometheus::start(&exporter.address()).unwrap_or_else(|e| panic!("{e}"));
    let svc = Service::start(200);
    let mut ws = Workspace::new(bin());
    std::fs::create_dir_all(ws.path("app")).unwrap();
    ws.dir_target("app", "app", &[]);
    ws.append_config(&format!(
        "[guard.probes.api]\nhttp = \"{}\"\n\n\
         [guard.probes.queue]\nprometheus = \"{url}\"\nquery = \"app_queue\"\n\n\
         [guard.probes.missing]\nprometheus = \"{url}\"\nquery = \"no_such_metric\"\n\n\
         [guard.probes.ratio]\nprometheus = \"{url}\"\nquery = \"app_ratio\"\n\n\
         [[guard.rules]]\nname = \"queue-high\"\nwhen = \"value(queue) > 40\"\n",
        svc.url,
        url = server.url()
    ));
    ws.init();
    // The first scrape comes a few seconds after the server starts.
    wait_until("Prometheus scraped", Duration::from_secs(30), || {
        ws.run(&["guard", "check"]).code == Some(1)
    });
    let doc = ws.run(&["--json", "guard", "check"]);
    let doc: Value = serde_json::from_str(doc.stdout.trim()).unwrap();
    assert_eq!(doc["rules"][0]["verdict"], "breached", "{doc}");

    for (query, seen) in [("missing", "empty result"), ("ratio", "NaN")] {
        let mut ws2 = Workspace::new(bin());
        std::fs::create_dir_all(ws2.path("app")).unwrap();
        ws2.dir_target("app", "app", &[]);
        ws2.append_config(&format!(
            "[guard.probes.{query}]\nprometheus = \"{}\"\nquery = \"{}\"\n\n\
             [[guard.rules]]\nname = \"r\"\nwhen = \"value({query}) > 40\"\n",
            server.url(),
            if query == "missing" {
                "no_such_metric"
            } else {
                "app_ratio"
            }
        ));
        ws2.init();
        let out = ws2.run(&["--json", "guard", "check"]);
        out.assert_code(4);
        let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(doc["rules"][0]["verdict"], "inconclusive", "{doc}");
        assert!(
            doc["probes"][0]["observed"]
                .as_str()
                .unwrap()
                .contains(seen),
            "{doc}"
        );
    }
}

#[test]
fn bake_reverts_this_ups_changes_with_their_data_on_postgres() {
    use ripcord_testing::app::{exec, pg_app, rows};
    let svc = Service::start(200);
    let (ws, db) = pg_app(
        bin(),
        "guard_bake",
        &format!(
            "[guard.probes.api]\nhttp = \"{}\"\ninterval = \"200ms\"\n\n\
             [[guard.rules]]\nname = \"api-down\"\nwhen = \"availability(api, 1s) < 100%\"\n",
            svc.url
        ),
    );
    users_keyed(&ws, "serial PRIMARY KEY");
    ws.ok(&["migrate", "up"]);
    drop_email(&ws);
    let baking = ws
        .command(&["migrate", "up", "--bake", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // The application writes on while the change bakes.
    exec(&db, "INSERT INTO users (name) VALUES ('cy')");
    svc.set(500);
    let out = baking.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        rows(
            &db,
            "SELECT name, coalesce(email, '-') FROM users ORDER BY id"
        ),
        ["ada|ada@example.com", "bob|bob@example.com", "cy|-"],
        "the dropped column is back with its data, and the row written since is kept"
    );
    let runs = runs(&ws);
    assert_eq!(runs[0]["kind"], "migrate-down");
    assert_eq!(runs[0]["trigger"], "guard:api-down");
}

/// Ends ripcord's session that runs `pg_sleep` on `db`, once it does.
fn terminate_sleeping_session(db: String) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let ended = ripcord_testing::app::rows(
                &db,
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{db}' AND query LIKE '%pg_sleep(6)%' \
                     AND pid <> pg_backend_pid()"
                ),
            );
            if !ended.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// A connection lost in the middle of a change: reconnect, find out what the
/// server kept, and say so; never a change left silently half-applied.
#[test]
fn a_connection_lost_in_the_middle_of_a_change_is_reconciled() {
    use ripcord_testing::app::{pg_app, rows};
    // In a transaction: the server rolls it back; nothing of it stays.
    let (ws, db) = pg_app(bin(), "guard_lost_tx", "");
    write(
        &ws,
        "migrations/1_t.up.sql",
        "CREATE TABLE t (id int);\nSELECT pg_sleep(6);\n",
    );
    let killer = terminate_sleeping_session(db.clone());
    ws.run(&["migrate", "up"])
        .assert_code(1)
        .assert_stderr_has("the connection to the database was lost")
        .assert_stderr_has("no trace of it");
    killer.join().unwrap();
    assert!(rows(&db, "SELECT 1 FROM pg_tables WHERE tablename = 't'").is_empty());
    let status = ws.json(&["migrate", "status"]);
    assert_eq!(status["counts"]["pending"], 1, "{status}");
    assert_eq!(status["counts"]["dirty"], 0, "{status}");

    // Outside a transaction: what ran is reverted over a new session.
    let (ws, db) = pg_app(bin(), "guard_lost_notx", "");
    write(
        &ws,
        "migrations/plan.toml",
        "[changes.0001_t]\nno_transaction = true\n",
    );
    write(
        &ws,
        "migrations/0001_t/up.sql",
        "CREATE TABLE t (id int);\nSELECT pg_sleep(6);\n",
    );
    write(
        &ws,
        "migrations/0001_t/down.sql",
        "DROP TABLE IF EXISTS t;\n",
    );
    let killer = terminate_sleeping_session(db.clone());
    let out = ws.run(&["migrate", "up"]);
    killer.join().unwrap();
    out.assert_code(1)
        .assert_stderr_has("reconnected to revert it");
    assert!(
        rows(&db, "SELECT 1 FROM pg_tables WHERE tablename = 't'").is_empty(),
        "{out}"
    );
}
