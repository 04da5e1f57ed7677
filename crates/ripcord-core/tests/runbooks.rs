//! Runbooks are read and checked when the configuration loads: every step
//! kind with its fields, and each kind of mistake named at its key.

use std::time::Duration;

use ripcord_core::config::runbook::{Probe, ProbeKind, Step, StepKind};
use ripcord_core::config::Config;
use ripcord_core::{Class, Classify};

const TARGETS: &str = r#"
[targets.app]
kind = "sqlite"
path = "/srv/app.db"
[targets.config]
kind = "dir"
path = "/etc/app"
"#;

fn load(runbooks: &str) -> Result<Config, String> {
    let text = format!("{TARGETS}\n{runbooks}");
    Config::from_toml_str(&text, None, &[]).map_err(|e| {
        assert_eq!(e.class(), Class::Usage, "{e}");
        e.to_string()
    })
}

fn refused(runbooks: &str, key: &str, says: &str) {
    let e = load(runbooks).expect_err("accepted");
    assert!(e.contains(key), "does not name {key}: {e}");
    assert!(e.contains(says), "does not say {says:?}: {e}");
}

#[test]
fn the_example_runbook_reads_into_typed_steps() {
    let c = load(
        r#"
[objectives]
rto = "15m"
rpo = "5m"

[notify.ops]
url = "http://127.0.0.1:9000/hook"
format = "json"
events = ["start", "failure", "escalation", "success", "safe-mode"]

[runbooks.emergency]
steps = [
  { kind = "command", run = "systemctl stop app", timeout = "30s" },
  { kind = "migrate-down", to = "@last-good" },
  { kind = "restore", target = "config", snapshot = "latest:pre-deploy" },
  { kind = "check", http = "http://127.0.0.1:8080/health", expect = 200, retries = 5, every = "2s" },
]
escalate_to = "full"

[runbooks.full]
steps = [
  { kind = "snapshot", targets = ["app", "config"], tag = "before-full" },
  { kind = "restore", target = "app", tables = ["orders"] },
  { kind = "wait", duration = "5s" },
  { kind = "wait", until = { sql = "SELECT count(*) > 0 FROM orders", target = "app", expect = "1" } },
  { kind = "http", method = "post", url = "http://lb/flip", headers = { Authorization = "Bearer x" }, body = "{}", expect = 204, retries = 2 },
  { kind = "notify", message = "full restore done" },
  { kind = "command", run = "systemctl start app", idempotent = true },
]
"#,
    )
    .unwrap();
    assert_eq!(c.objectives.rto(), Some(Duration::from_secs(900)));
    let em = &c.levels["emergency"];
    assert_eq!(em.len(), 4);
    assert_eq!(
        em[0],
        Step {
            kind: StepKind::Command {
                run: "systemctl stop app".into(),
                idempotent: false
            },
            timeout: Some(Duration::from_secs(30)),
            retries: 0,
        }
    );
    assert_eq!(
        em[2].kind,
        StepKind::Restore {
            target: "config".into(),
            snapshot: "latest:pre-deploy".into(),
            tables: vec![]
        }
    );
    assert_eq!(
        em[3].kind,
        StepKind::Check(Probe {
            what: ProbeKind::Http {
                url: "http://127.0.0.1:8080/health".into(),
                expect: 200
            },
            retries: 5,
            every: Duration::from_secs(2),
        })
    );
    let full = &c.levels["full"];
    assert_eq!(full[1].kind.name(), "restore");
    match &full[4] {
        Step {
            kind:
                StepKind::Http {
                    method,
                    expect,
                    headers,
                    ..
                },
            retries: 2,
            ..
        } => {
            assert_eq!((method.as_str(), *expect), ("POST", 204));
            assert_eq!(headers["Authorization"], "Bearer x");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &full[3].kind,
        StepKind::Wait {
            duration: None,
            until: Some(Probe {
                what: ProbeKind::Sql { .. },
                ..
            })
        }
    ));
}

#[test]
fn an_unknown_kind_is_named_with_the_nearest() {
    refused(
        r#"[runbooks.db]
steps = [{ kind = "notify", message = "x" }, { kind = "restor", target = "app" }]"#,
        "runbooks.db.steps[1].kind",
        "did you mean \"restore\"",
    );
}

#[test]
fn an_unknown_key_of_a_kind_is_named() {
    refused(
        r#"[runbooks.db]
steps = [{ kind = "command", rn = "true" }]"#,
        "runbooks.db.steps[0].rn",
        "did you mean \"run\"",
    );
}

#[test]
fn a_missing_field_is_named() {
    refused(
        r#"[runbooks.db]
steps = [{ kind = "migrate-down" }]"#,
        "runbooks.db.steps[0]",
        "missing `to`",
    );
    refused(
        r#"[runbooks.db]
steps = [{ run = "true" }]"#,
        "runbooks.db.steps[0].kind",
        "missing",
    );
    refused(
        r#"[runbooks.db]
escalate_to = "x""#,
        "runbooks.db",
        "steps",
    );
}

#[test]
fn an_unknown_target_is_named() {
    refused(
        r#"[runbooks.db]
steps = [{ kind = "restore", target = "ap" }]"#,
        "runbooks.db.steps[0].target",
        "did you mean \"app\"",
    );
    refused(
        r#"[runbooks.db]
steps = [{ kind = "check", sql = "SELECT 1", target = "nope" }]"#,
        "runbooks.db.steps[0].target",
        "no target \"nope\"",
    );
}

#[test]
fn an_unknown_level_and_a_cycle_are_named() {
    refused(
        r#"[runbooks.emergency]
steps = [{ kind = "notify", message = "x" }]
escalate_to = "ful"
[runbooks.full]
steps = [{ kind = "notify", message = "x" }]"#,
        "runbooks.emergency.escalate_to",
        "did you mean \"full\"",
    );
    refused(
        r#"[runbooks.a]
steps = [{ kind = "notify", message = "x" }]
escalate_to = "b"
[runbooks.b]
steps = [{ kind = "notify", message = "x" }]
escalate_to = "c"
[runbooks.c]
steps = [{ kind = "notify", message = "x" }]
escalate_to = "a""#,
        "escalate_to",
        "a -> b -> c -> a",
    );
}

#[test]
fn bad_values_are_named() {
    refused(
        r#"[runbooks.db]
steps = [{ kind = "command", run = "true", timeout = "soon" }]"#,
        "runbooks.db.steps[0].timeout",
        "invalid duration",
    );
    refused(
        r#"[runbooks.db]
steps = [{ kind = "check", http = "http://x", expect = 42 }]"#,
        "runbooks.db.steps[0].expect",
        "HTTP status",
    );
    refused(
        r#"[runbooks.db]
steps = [{ kind = "check", http = "http://x", command = "true" }]"#,
        "runbooks.db.steps[0]",
        "exactly one of",
    );
    refused(
        r#"[runbooks.db]
steps = [{ kind = "wait" }]"#,
        "runbooks.db.steps[0]",
        "`duration` or `until`",
    );
    refused(
        r#"[notify.ops]
url = "http://x"
events = ["strat"]"#,
        "notify.ops.events",
        "unknown event",
    );
    refused(
        r#"[runbooks.db]
stepz = []"#,
        "runbooks.db",
        "stepz",
    );
}

#[test]
fn the_catalog_sits_beside_the_file_unless_moved() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ripcord.toml");
    std::fs::write(&file, "").unwrap();
    let c = Config::load(&file, &[]).unwrap();
    assert_eq!(c.catalog_path(), dir.path().join(".ripcord/catalog.db"));
    std::fs::write(&file, "[catalog]\npath = \"state/c.db\"\n").unwrap();
    let c = Config::load(&file, &[]).unwrap();
    assert_eq!(c.catalog_path(), dir.path().join("state/c.db"));
}

#[test]
fn the_catalog_may_be_a_postgres_url_but_not_also_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ripcord.toml");
    std::fs::write(&file, "[catalog]\nurl = \"postgres://u:pw@db/ripcord\"\n").unwrap();
    let c = Config::load(&file, &[]).unwrap();
    assert_eq!(c.catalog.url.as_deref(), Some("postgres://u:pw@db/ripcord"));
    let env = [(
        "RIPCORD_CATALOG__URL".to_string(),
        "postgres://u@other/ripcord".to_string(),
    )];
    let c = Config::load(&file, &env).unwrap();
    assert_eq!(c.catalog.url.as_deref(), Some("postgres://u@other/ripcord"));

    std::fs::write(
        &file,
        "[catalog]\npath = \"c.db\"\nurl = \"postgres://u:pw@db/ripcord\"\n",
    )
    .unwrap();
    let e = Config::load(&file, &[]).unwrap_err();
    assert_eq!(e.class(), Class::Usage);
    assert!(e.to_string().contains("both set"), "{e}");
    assert!(!e.to_string().contains("pw@"), "{e}");

    std::fs::write(&file, "[catalog]\nurl = \"mysql://u:pw@db/x\"\n").unwrap();
    let e = Config::load(&file, &[]).unwrap_err();
    assert!(e.to_string().contains("not a PostgreSQL URL"), "{e}");
    assert!(!e.to_string().contains("pw"), "{e}");
}
