//! `ripcord schedule run`: due snapshots once and nothing on a second pass,
//! one snapshot to catch up after missed periods, retention per tier, one
//! pass at a time, geo tiers copying to a repository with its own
//! passphrase; `check` failing on an overdue tier and telling a webhook;
//! `schedule install` printing units systemd accepts.

use std::time::{Duration, Instant};

use ripcord_testing::data::write_file;
use ripcord_testing::service::Receiver;
use ripcord_testing::Workspace;
use serde_json::Value;

use crate::common::*;

/// A workspace with dir targets `app` and `conf`, its repository created.
fn two_targets() -> Workspace {
    let mut ws = workspace();
    write_file(&ws.path("app/a.txt"), b"application\n");
    write_file(&ws.path("conf/c.toml"), b"setting = 1\n");
    ws.dir_target("app", "app", &[]);
    ws.dir_target("conf", "conf", &[]);
    ws
}

fn pass(ws: &Workspace) -> Value {
    ws.json(&["schedule", "run"])
}

fn actions<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["action"] == kind)
        .collect()
}

fn targets_of(action: &Value) -> Vec<String> {
    action["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["target"].as_str().unwrap().to_string())
        .collect()
}

/// Snapshots of the workspace's repository, by tier (`None`: no tier).
fn of_tier(ws: &Workspace, tier: Option<&str>) -> Vec<Value> {
    snapshots(ws)
        .into_iter()
        .filter(|s| s["tier"].as_str() == tier)
        .collect()
}

#[test]
fn due_tiers_get_one_snapshot_and_a_second_pass_does_nothing() {
    let mut ws = two_targets();
    ws.append_config(
        "[tiers.hot]\nevery = \"1h\"\ntargets = [\"app\"]\n\n[tiers.daily]\nevery = \"24h\"\n\n\
         [tiers.manual]\nmax_age = \"7d\"\n",
    );
    ws.init();
    let first = pass(&ws);
    assert_eq!(first["ok"], true, "{first}");
    let taken = actions(&first, "snapshot");
    assert_eq!(
        taken.len(),
        2,
        "one snapshot per tier with `every`: {first}"
    );
    let by_tier = |t: &str| *taken.iter().find(|a| a["tier"] == t).expect(t);
    assert_eq!(targets_of(by_tier("hot")), ["app"]);
    assert_eq!(targets_of(by_tier("daily")), ["app", "conf"]);
    assert_eq!(of_tier(&ws, Some("hot")).len(), 1);
    assert_eq!(of_tier(&ws, Some("daily")).len(), 1);
    assert!(
        of_tier(&ws, Some("manual")).is_empty(),
        "no `every`, no snapshot"
    );

    let second = pass(&ws);
    assert_eq!(second["actions"], Value::Array(vec![]), "{second}");
    assert_eq!(snapshots(&ws).len(), 2);
    ws.ok(&["schedule", "run"])
        .assert_stdout_has("nothing is due");

    // Passes that did something are audited; those with nothing due are not.
    let trail = ws.json(&["audit"]);
    let passes = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["command"] == "schedule run")
        .count();
    assert_eq!(passes, 1, "{trail}");
}

#[test]
fn a_pass_after_missed_periods_catches_up_with_one_snapshot() {
    let mut ws = two_targets();
    ws.append_config("[tiers.fast]\nevery = \"2s\"\ntargets = [\"app\"]\n");
    ws.init();
    assert_eq!(actions(&pass(&ws), "snapshot").len(), 1);
    // Two and a half periods go by with no pass, as with the machine off.
    std::thread::sleep(Duration::from_millis(5000));
    let late = pass(&ws);
    assert_eq!(actions(&late, "snapshot").len(), 1, "{late}");
    assert_eq!(
        of_tier(&ws, Some("fast")).len(),
        2,
        "one to catch up, not two"
    );
    let again = pass(&ws);
    assert!(actions(&again, "snapshot").is_empty(), "{again}");
    assert_eq!(of_tier(&ws, Some("fast")).len(), 2);
}

#[test]
fn a_tier_keep_policy_removes_only_that_tier_snapshots() {
    let mut ws = two_targets();
    ws.append_config(
        "[tiers.hot]\nevery = \"1h\"\nkeep = { last = 2 }\n\n[tiers.weekly]\nkeep = { last = 1 }\n",
    );
    ws.init();
    for _ in 0..3 {
        ws.snapshot_id(&["--tier", "hot"]);
    }
    for _ in 0..2 {
        ws.snapshot_id(&["--tier", "weekly"]);
    }
    ws.snapshot_id(&[] as &[&str]);
    let report = pass(&ws);
    assert!(
        actions(&report, "snapshot").is_empty(),
        "hot is fresh: {report}"
    );
    let forgot = actions(&report, "forget");
    assert_eq!(forgot.len(), 1, "{report}");
    assert_eq!(forgot[0]["tier"], "hot");
    assert_eq!(forgot[0]["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(actions(&report, "prune").len(), 1, "a prune after a forget");
    assert_eq!(of_tier(&ws, Some("hot")).len(), 2);
    // weekly has no `every`: the schedule leaves it to `forget --tier weekly`.
    assert_eq!(of_tier(&ws, Some("weekly")).len(), 2);
    assert_eq!(of_tier(&ws, None).len(), 1);
    let verified = ws.json(&["verify"]);
    assert!(
        verified["problems"].as_array().unwrap().is_empty(),
        "{verified}"
    );
    let again = pass(&ws);
    assert_eq!(again["actions"], Value::Array(vec![]), "{again}");
}

#[test]
fn two_passes_at_once_make_one_pass() {
    let mut ws = two_targets();
    ws.append_config("[tiers.hot]\nevery = \"1h\"\n");
    ws.init();
    // The first pass stops just before it writes its snapshot, lock held.
    let paused = ws.path("paused");
    let pause = format!("before-manifest={}", paused.display());
    let mut first = ws.spawn(&["schedule", "run"], &[("RIPCORD_PAUSE", &pause)]);
    let until = Instant::now() + Duration::from_secs(60);
    while !paused.exists() {
        assert!(
            Instant::now() < until,
            "the first pass never reached its snapshot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let second = ws.json(&["schedule", "run"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(second["skipped"], true, "{second}");
    assert!(
        second["holder"].as_str().unwrap().contains("pid"),
        "{second}"
    );
    ws.ok(&["schedule", "run"])
        .assert_stdout_has("another schedule pass is running");
    std::fs::remove_file(&paused).unwrap();
    assert!(first.wait().unwrap().success());
    assert_eq!(
        of_tier(&ws, Some("hot")).len(),
        1,
        "one pass took one snapshot"
    );
    let after = pass(&ws);
    assert_eq!(after["actions"], Value::Array(vec![]), "{after}");
}

const GEO_PASSWORD: &str = "the offsite passphrase";

/// A repository of its own passphrase, for a geo tier.
fn geo_repository() -> Workspace {
    let mut geo = workspace();
    geo.set_password(GEO_PASSWORD);
    geo.init();
    geo
}

#[test]
fn a_geo_tier_copies_the_newest_snapshot_and_keeps_its_own_policy_there() {
    let mut ws = two_targets();
    let geo = geo_repository();
    ws.append_config(&format!(
        "[tiers.geo]\nevery = \"2s\"\nmax_age = \"1h\"\nrepository = \"{}\"\n\
         password_command = \"echo '{GEO_PASSWORD}'\"\nkeep = {{ last = 1 }}\n",
        geo.repo().display()
    ));
    ws.init();
    let first = ws.snapshot_id(&[] as &[&str]);
    let report = pass(&ws);
    let copied = actions(&report, "copy");
    assert_eq!(copied.len(), 1, "{report}");
    assert_eq!(targets_of(copied[0]), ["app", "conf"]);
    let there = snapshots(&geo);
    assert_eq!(there.len(), 1);
    let copy = there[0]["snapshot"].as_str().unwrap().to_string();
    let show = geo.json(&["show", &copy]);
    assert_eq!(show["manifest"]["copied_from"], first.as_str(), "{show}");
    // The geo tier takes no snapshot of its own in the main repository.
    assert_eq!(snapshots(&ws).len(), 1);
    assert!(actions(&report, "snapshot").is_empty());
    ws.run(&["snapshot", "--tier", "geo"])
        .assert_code(2)
        .assert_stderr_has("is a geo tier");
    let again = pass(&ws);
    assert_eq!(again["actions"], Value::Array(vec![]), "{again}");

    // A period later, the newer snapshot goes there and `keep` applies there.
    std::thread::sleep(Duration::from_millis(2200));
    write_file(&ws.path("app/b.txt"), b"more\n");
    let second = ws.snapshot_id(&[] as &[&str]);
    let report = pass(&ws);
    assert_eq!(actions(&report, "copy").len(), 1, "{report}");
    let forgot = actions(&report, "forget");
    assert_eq!(forgot.len(), 1, "{report}");
    assert_eq!(forgot[0]["snapshots"][0], copy.as_str());
    assert_eq!(actions(&report, "prune").len(), 1, "{report}");
    let there = snapshots(&geo);
    assert_eq!(there.len(), 1, "keep last 1 in the geo repository");
    let newest = there[0]["snapshot"].as_str().unwrap().to_string();
    let show = geo.json(&["show", &newest]);
    assert_eq!(show["manifest"]["copied_from"], second.as_str());
    assert_eq!(snapshots(&ws).len(), 2, "the main repository keeps its own");
    let verified = geo.json(&["verify", "--deep"]);
    assert!(
        verified["problems"].as_array().unwrap().is_empty(),
        "{verified}"
    );

    // check reads the geo tier from its own repository.
    let checked = ws.json(&["check"]);
    let item = |what: &str| -> Value {
        checked["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["what"] == what)
            .unwrap_or_else(|| panic!("no {what} in {checked}"))
            .clone()
    };
    assert_eq!(item("tier geo: repository")["state"], "ok", "{checked}");
    assert_eq!(item("tier geo: app")["state"], "ok", "{checked}");
    assert_ne!(item("tier geo: free space")["state"], "failed");
    assert_ne!(item("free space")["state"], "failed");
}

#[test]
fn an_unreachable_geo_repository_fails_its_tier_and_the_others_still_run() {
    let mut ws = two_targets();
    let gone = ws.path("unmounted/offsite");
    let hook = Receiver::start();
    ws.append_config(&format!(
        "[tiers.hot]\nevery = \"1h\"\n\n[tiers.geo]\nevery = \"1h\"\nrepository = \"{}\"\n\n\
         [notify.oncall]\nurl = \"{}\"\nevents = [\"schedule-failed\"]\n",
        gone.display(),
        hook.url
    ));
    ws.init();
    let out = ws.run_env(
        &["--json", "schedule", "run"],
        &[("RIPCORD_TO_PASSWORD", GEO_PASSWORD)],
    );
    out.assert_code(1);
    let report = out.json();
    assert_eq!(report["ok"], false);
    assert_eq!(actions(&report, "snapshot")[0]["ok"], true, "{report}");
    let copy = actions(&report, "copy");
    assert_eq!(copy[0]["ok"], false, "{report}");
    assert!(copy[0]["hint"]
        .as_str()
        .unwrap()
        .contains("ripcord init --repository"));
    assert_eq!(of_tier(&ws, Some("hot")).len(), 1);
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let event: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(event["event"], "schedule-failed", "{event}");
    assert_eq!(event["items"][0]["action"], "copy", "{event}");
    assert_eq!(event["items"].as_array().unwrap().len(), 1, "{event}");

    let out = ws.run_env(
        &["--json", "check"],
        &[("RIPCORD_TO_PASSWORD", GEO_PASSWORD)],
    );
    out.assert_code(1);
    let checked: Value = serde_json::from_str(&out.stdout).unwrap();
    let item = checked["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["what"] == "tier geo: repository")
        .expect("the geo repository's item")
        .clone();
    assert_eq!(item["state"], "failed", "{item}");
    assert!(item["hint"].is_string(), "{item}");
}

#[test]
fn check_fails_on_an_overdue_tier_and_tells_the_webhooks_that_ask() {
    let mut ws = two_targets();
    let hook = Receiver::start();
    let other = Receiver::start();
    ws.append_config(&format!(
        "[tiers.hot]\nmax_age = \"4s\"\ntargets = [\"app\"]\n\n\
         [notify.oncall]\nurl = \"{}\"\nevents = [\"check-failed\"]\n\n\
         [notify.runs]\nurl = \"{}\"\nevents = [\"failure\"]\n",
        hook.url, other.url
    ));
    ws.init();
    ws.snapshot_id(&["--tier", "hot"]);
    ws.run(&["check"]).assert_ok();
    assert!(hook.bodies().is_empty(), "an ok check sends nothing");
    std::thread::sleep(Duration::from_millis(4500));
    let out = ws.run(&["--json", "check"]);
    out.assert_code(1);
    let checked: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(checked["ok"], false);
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let event: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(event["event"], "check-failed", "{event}");
    let items = event["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the failed items: {event}");
    assert_eq!(items[0]["what"], "tier hot: app");
    assert_eq!(items[0]["state"], "failed");
    assert!(
        event["text"].as_str().unwrap().contains("overdue"),
        "{event}"
    );
    assert!(
        other.bodies().is_empty(),
        "not asked for: {:?}",
        other.bodies()
    );
}

#[test]
fn schedule_install_prints_units_systemd_accepts() {
    let mut ws = two_targets();
    ws.append_config("[tiers.hot]\nevery = \"4h\"\n");
    ws.init();
    let out = ws.json(&["schedule", "install", "--systemd", "--cron"]);
    let files = out["files"].as_array().unwrap();
    let text = |name: &str| -> String {
        files
            .iter()
            .find(|f| f["file"] == name)
            .unwrap_or_else(|| panic!("no {name}"))["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let service = text("ripcord-schedule.service");
    let timer = text("ripcord-schedule.timer");
    let binary = std::fs::canonicalize(bin()).unwrap();
    let exec = format!(
        "ExecStart={} --config {} schedule run",
        binary.display(),
        ws.config_path().display()
    );
    assert!(service.contains(&exec), "{service}");
    assert!(service.contains("Type=oneshot"), "{service}");
    assert!(service.contains("systemctl enable --now ripcord-schedule.timer"));
    assert!(service.contains("NoNewPrivileges=yes"), "{service}");
    assert!(timer.contains("OnCalendar=minutely"), "{timer}");
    assert!(timer.contains("Persistent=true"), "{timer}");
    assert!(timer.contains("WantedBy=timers.target"), "{timer}");
    let cron = out["cron"].as_str().unwrap();
    assert!(cron.contains("* * * * * "), "{cron}");
    ws.ok(&["schedule", "install", "--systemd"])
        .assert_stdout_has("[Timer]");
    ws.run(&["schedule", "install"]).assert_code(2);

    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the units' syntax is not verified");
        return;
    };
    let dir = ws.path("units");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ripcord-schedule.service"), &service).unwrap();
    std::fs::write(dir.join("ripcord-schedule.timer"), &timer).unwrap();
    let verified = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(dir.join("ripcord-schedule.service"))
        .arg(dir.join("ripcord-schedule.timer"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert!(
        verified.status.success() && !stderr.contains("ripcord-schedule"),
        "systemd-analyze verify: {stderr}"
    );
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}
