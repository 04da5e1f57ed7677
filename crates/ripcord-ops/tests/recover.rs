//! Recovery runs through the library, on a real folder, a real repository,
//! a real catalog and a real HTTP receiver for health checks and webhooks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ripcord_catalog::flight::Holder;
use ripcord_catalog::runs::{RunResult, StepState};
use ripcord_core::config::Config;
use ripcord_core::{Class, Classify};
use ripcord_ops::recover::{recover, RecoverOptions};
use ripcord_ops::{Ctx, Silent};
use ripcord_repo::Repository;
use ripcord_testing::fingerprint::Fingerprint;

/// Answers every request with `status` and keeps the bodies it got.
fn receiver(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                line.clear();
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            keep.lock().unwrap().push(String::from_utf8(body).unwrap());
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

/// A folder with a dir target, a repository with one snapshot of it, and
/// `runbooks` appended to the configuration.
fn setup(root: &Path, runbooks: &str) -> Ctx {
    let app = root.join("app");
    ripcord_testing::data::standard_tree(&app, 3);
    let config_path = root.join("ripcord.toml");
    std::fs::write(
        &config_path,
        format!(
            "[repository]\nurl = \"{}\"\n\n[targets.app]\nkind = \"dir\"\npath = \"{}\"\n\n{runbooks}",
            root.join("repo").display(),
            app.display()
        ),
    )
    .unwrap();
    std::env::set_var("RIPCORD_PASSWORD", "recover test passphrase");
    let config = Config::load(&config_path, &[]).unwrap();
    let ctx = Ctx::new(config, Some(config_path), Arc::new(Silent));
    std::fs::create_dir_all(root.join("repo")).unwrap();
    let pass = ctx.passphrase("").unwrap().unwrap();
    Repository::init(ctx.backend().unwrap(), Some(&pass)).unwrap();
    ripcord_ops::snapshot::snapshot(
        &ctx,
        &ripcord_ops::snapshot::SnapshotOptions {
            targets: vec!["app".into()],
            tags: vec!["pre-deploy".into()],
            ..Default::default()
        },
    )
    .unwrap();
    ctx
}

fn opts(level: &str) -> RecoverOptions {
    RecoverOptions {
        level: level.into(),
        reason: "bad deploy".into(),
        trigger: "manual".into(),
        dry_run: false,
        overrun: None,
        run: None,
    }
}

#[test]
fn a_level_that_works_restores_checks_and_is_journaled_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let (health, _) = receiver(200);
    let (hook, got) = receiver(200);
    let ctx = setup(
        tmp.path(),
        &format!(
            r#"
[notify.ops]
url = "{hook}/hook"

[runbooks.emergency]
steps = [
  {{ kind = "command", run = "echo stopping" }},
  {{ kind = "restore", target = "app", snapshot = "latest:pre-deploy" }},
  {{ kind = "check", http = "{health}/health", expect = 200 }},
]
"#
        ),
    );
    let app = tmp.path().join("app");
    let before = Fingerprint::of(&app);
    std::fs::write(app.join("stray.conf"), "a bad deploy").unwrap();

    let r = recover(&ctx, &opts("emergency")).unwrap();
    assert_eq!(r.result, "succeeded", "{r:?}");
    assert!(!r.safe_mode);
    assert_eq!(
        Fingerprint::of(&app),
        before,
        "the restore step put the folder back"
    );
    assert_eq!(r.steps.len(), 3);
    assert!(r.steps[2].detail.contains("HTTP 200"), "{r:?}");

    let mut cat = ctx.catalog().unwrap();
    let run = cat.run(&r.run).unwrap().unwrap();
    assert_eq!(run.result, RunResult::Succeeded);
    assert_eq!(run.reason, "bad deploy");
    let steps = cat.steps(&r.run).unwrap();
    assert!(
        steps.iter().all(|s| s.state == StepState::Succeeded),
        "{steps:?}"
    );
    assert_eq!(steps[0].output.as_deref(), Some("stopping\n"));
    assert_eq!(cat.flight_holder().unwrap(), None, "the lock is given back");
    let audit = cat.audit_entries(1).unwrap();
    assert_eq!(audit.last().unwrap().input.command, "recover");
    assert_eq!(
        audit.last().unwrap().input.run.as_deref(),
        Some(r.run.as_str())
    );
    assert!(cat.verify_audit().unwrap().ok());

    let events: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(events, ["start", "success"]);
}

#[test]
fn a_failed_level_escalates_and_the_last_failure_enters_safe_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let (health, _) = receiver(503);
    let (hook, got) = receiver(200);
    let ctx = setup(
        tmp.path(),
        &format!(
            r#"
[notify.chat]
url = "{hook}/slack"
format = "slack"

[runbooks.emergency]
steps = [{{ kind = "check", http = "{health}/", expect = 200, retries = 1, every = "10ms" }}]
escalate_to = "full"

[runbooks.full]
steps = [
  {{ kind = "command", run = "echo broken >&2; exit 4" }},
  {{ kind = "notify", message = "never reached" }},
]
"#
        ),
    );
    let r = recover(&ctx, &opts("emergency")).unwrap();
    assert_eq!(r.result, "failed");
    assert_eq!(r.levels, ["emergency", "full"]);
    assert_eq!(
        r.steps.len(),
        2,
        "the level stops at its failed step: {r:?}"
    );
    assert!(r.steps[0].detail.contains("HTTP 503"), "{r:?}");
    assert!(r.steps[1].detail.contains("exit 4"), "{r:?}");
    assert!(r.safe_mode);
    let mut cat = ctx.catalog().unwrap();
    let mode = cat.safe_mode().unwrap().expect("safe mode");
    assert_eq!(mode.run.as_deref(), Some(r.run.as_str()));
    assert_eq!(cat.run(&r.run).unwrap().unwrap().result, RunResult::Failed);
    let texts: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(texts.len(), 5, "{texts:?}");
    assert!(texts[0].contains("recovery started"), "{texts:?}");
    assert!(texts[1].contains("level emergency failed"), "{texts:?}");
    assert!(texts[2].contains("escalating to full"), "{texts:?}");
    assert!(texts[3].contains("level full failed"), "{texts:?}");
    assert!(texts[4].contains("safe mode"), "{texts:?}");
}

#[test]
fn a_second_run_is_refused_and_names_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = setup(
        tmp.path(),
        "[runbooks.emergency]\nsteps = [{ kind = \"command\", run = \"true\" }]\n",
    );
    let mut cat = ctx.catalog().unwrap();
    // Another live process holds the lock.
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let holder = Holder {
        pid: other.id(),
        pid_start: None,
        ..Holder::this_process("holder-run")
    };
    cat.acquire_flight(&holder).unwrap();
    let e = recover(&ctx, &opts("emergency")).unwrap_err();
    other.kill().ok();
    other.wait().ok();
    assert_eq!(e.class(), Class::Refused, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("holder-run") && text.contains(&holder.pid.to_string()),
        "{text}"
    );
    assert!(cat.runs().unwrap().is_empty(), "nothing ran");
}

#[test]
fn bad_requests_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = setup(
        tmp.path(),
        "[runbooks.emergency]\nsteps = [{ kind = \"command\", run = \"touch ran\" }]\n",
    );
    let e = recover(&ctx, &opts("emergncy")).unwrap_err();
    assert_eq!(e.class(), Class::Usage);
    assert!(e.to_string().contains("levels: emergency"), "{e}");
    let e = recover(
        &ctx,
        &RecoverOptions {
            reason: " ".into(),
            ..opts("emergency")
        },
    )
    .unwrap_err();
    assert_eq!(e.class(), Class::Usage);
    let plan = recover(
        &ctx,
        &RecoverOptions {
            dry_run: true,
            ..opts("emergency")
        },
    )
    .unwrap();
    assert_eq!(plan.result, "planned");
    assert_eq!(plan.steps[0].name, "run `touch ran`");
    assert!(!tmp.path().join("ran").exists());
    assert!(!std::env::current_dir().unwrap().join("ran").exists());
}

#[test]
fn safe_mode_refuses_migrate_up_until_ack() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("shop.db");
    let dir = tmp.path().join("migrations/0001_items");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("up.sql"), "CREATE TABLE items (id INTEGER);\n").unwrap();
    std::fs::write(dir.join("down.sql"), "DROP TABLE items;\n").unwrap();
    let ctx = setup(
        tmp.path(),
        &format!(
            "[targets.shop]\nkind = \"sqlite\"\npath = \"{}\"\ncreate = true\n\n\
             [migrations]\ntarget = \"shop\"\ndir = \"migrations\"\n\n\
             [runbooks.emergency]\nsteps = [{{ kind = \"command\", run = \"exit 1\" }}]\n",
            db.display()
        ),
    );
    let failed = recover(&ctx, &opts("emergency")).unwrap();
    assert!(failed.safe_mode);
    let up = || {
        ripcord_ops::migrate::up(
            &ctx,
            &ripcord_ops::migrate::UpRequest::default(),
            &mut |_| {},
        )
    };
    let e = up().err().expect("migrate up ran in safe mode");
    assert_eq!(e.class(), Class::Refused, "{e}");
    assert!(
        e.to_string().contains(&failed.run),
        "names the failed run: {e}"
    );
    assert!(!db.exists(), "nothing was done");

    let e = ripcord_ops::recover::ack(&ctx, "").unwrap_err();
    assert_eq!(e.class(), Class::Usage);
    let left = ripcord_ops::recover::ack(&ctx, "checked the app by hand").unwrap();
    assert_eq!(left.unwrap().run.as_deref(), Some(failed.run.as_str()));
    up().unwrap();
    assert!(db.exists());
    let mut cat = ctx.catalog().unwrap();
    let audit = cat.audit_entries(1).unwrap();
    let ack = audit
        .iter()
        .find(|e| e.input.command == "ack")
        .expect("ack audited");
    assert_eq!(ack.input.reason.as_deref(), Some("checked the app by hand"));
}
