//! The embedded catalog on real SQLite files: schema upgrades, the run
//! journal, single flight under contention, safe mode, and an audit chain
//! that notices every kind of tampering done behind its back.

use std::path::Path;
use std::sync::{Arc, Barrier};

use ripcord_catalog::audit::{redact, AuditInput};
use ripcord_catalog::flight::{Acquired, Holder};
use ripcord_catalog::runs::{NewRun, RunResult, SafeMode, StepEnd, StepStart, StepState};
use ripcord_catalog::{Catalog, Error, SqliteCatalog, DEFAULT_PATH};
use ripcord_core::class::{Class, Classify};
use rusqlite::Connection;

fn entry(command: &str, n: usize) -> AuditInput {
    AuditInput {
        actor: "ops@host".into(),
        command: command.into(),
        args: vec![format!("--n={n}"), redact("postgres://app:s3cret@db/app")],
        reason: Some(format!("reason {n}")),
        result: "ok".into(),
        run: None,
    }
}

/// A catalog with five audit entries, and a plain connection to its file.
fn audited(dir: &Path) -> (SqliteCatalog, Connection) {
    let mut cat = SqliteCatalog::open(&dir.join(DEFAULT_PATH)).unwrap();
    for n in 1..=5 {
        cat.append_audit(&entry("snapshot", n)).unwrap();
    }
    let raw = Connection::open(dir.join(DEFAULT_PATH)).unwrap();
    (cat, raw)
}

#[test]
fn a_new_catalog_is_created_in_its_folder_at_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEFAULT_PATH);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert!(path.exists());
    let v = cat.version().unwrap();
    assert!(v >= 1);
    drop(cat);
    // Opening again changes nothing.
    assert_eq!(SqliteCatalog::open(&path).unwrap().version().unwrap(), v);
    let mode: String = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_catalog_from_a_newer_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    let Err(e) = SqliteCatalog::open(&path) else {
        panic!("a newer catalog was opened");
    };
    assert!(matches!(e, Error::Newer { found: 999, .. }), "{e}");
    assert_eq!(e.class(), Class::Refused);
    let tables: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 0, "nothing was created in it");
}

#[test]
fn the_journal_records_steps_before_and_after_and_counts_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let mut cat = SqliteCatalog::open(&dir.path().join("c.db")).unwrap();
    let run = cat
        .begin_run(&NewRun {
            id: ripcord_catalog::runs::new_run_id(),
            kind: "recover".into(),
            level: Some("emergency".into()),
            reason: "bad deploy".into(),
            trigger: "manual".into(),
            actor: "ops@host".into(),
        })
        .unwrap();
    let step = |seq, kind: &str| StepStart {
        seq,
        level: Some("emergency".into()),
        kind: kind.into(),
        name: format!("{kind} {seq}"),
    };
    cat.start_step(&run.run, &step(1, "command")).unwrap();
    // Journaled as started before it runs: what a crash leaves behind.
    let other = SqliteCatalog::open(&dir.path().join("c.db"))
        .unwrap()
        .steps(&run.run)
        .unwrap();
    assert_eq!(other[0].state, StepState::Started);
    cat.end_step(
        &run.run,
        1,
        &StepEnd {
            state: StepState::Succeeded,
            output: Some("stopped".into()),
            detail: Some(serde_json::json!({"exit_code": 0})),
        },
    )
    .unwrap();
    cat.start_step(&run.run, &step(2, "restore")).unwrap();
    // Resumed: the interrupted step starts again.
    cat.start_step(&run.run, &step(2, "restore")).unwrap();
    let steps = cat.steps(&run.run).unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].state, StepState::Succeeded);
    assert_eq!(steps[0].detail, Some(serde_json::json!({"exit_code": 0})));
    assert_eq!((steps[1].state, steps[1].attempts), (StepState::Started, 2));
    cat.finish_run(&run.run, RunResult::Failed).unwrap();
    let again = cat.run(&run.run).unwrap().unwrap();
    assert_eq!(again.result, RunResult::Failed);
    assert!(again.finished.is_some());
    assert_eq!(cat.runs().unwrap().len(), 1);
    assert!(matches!(
        cat.finish_run("nope", RunResult::Failed),
        Err(Error::UnknownRun(_))
    ));
}

#[test]
fn of_ten_runs_started_at_once_exactly_one_flies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEFAULT_PATH);
    SqliteCatalog::open(&path).unwrap();
    // Ten live processes to stand for ten runs, each racing on its own
    // connection.
    let mut sleepers: Vec<_> = (0..10)
        .map(|_| {
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap()
        })
        .collect();
    let barrier = Arc::new(Barrier::new(10));
    let handles: Vec<_> = sleepers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (path, barrier) = (path.clone(), barrier.clone());
            let holder = Holder {
                pid: p.id(),
                pid_start: None,
                ..Holder::this_process(&format!("run{i}"))
            };
            std::thread::spawn(move || {
                let mut cat = SqliteCatalog::open(&path).unwrap();
                barrier.wait();
                cat.acquire_flight(&holder).unwrap()
            })
        })
        .collect();
    let outcomes: Vec<Acquired> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for p in &mut sleepers {
        p.kill().ok();
        p.wait().ok();
    }
    let taken = outcomes.iter().filter(|o| **o == Acquired::Taken).count();
    assert_eq!(taken, 1, "{outcomes:?}");
    let mut cat = SqliteCatalog::open(&path).unwrap();
    let holder = cat.flight_holder().unwrap().unwrap();
    for o in &outcomes {
        if let Acquired::Held(h) = o {
            assert_eq!(h, &holder, "the refusal names the holder");
        }
    }
    // Released, the next one flies.
    cat.release_flight(&holder.run).unwrap();
    assert_eq!(
        cat.acquire_flight(&Holder::this_process("next")).unwrap(),
        Acquired::Taken
    );
}

#[test]
fn a_dead_holder_on_this_host_is_replaced_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut cat = SqliteCatalog::open(&dir.path().join("c.db")).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = Holder {
        pid: child.id(),
        ..Holder::this_process("crashed")
    };
    child.wait().unwrap();
    assert_eq!(cat.acquire_flight(&dead).unwrap(), Acquired::Taken);
    match cat.acquire_flight(&Holder::this_process("new")).unwrap() {
        Acquired::TakenOver(h) => assert_eq!(h.run, "crashed"),
        other => panic!("{other:?}"),
    }
    // A holder on another host cannot be judged from here: it holds.
    let remote = Holder {
        host: "elsewhere".into(),
        pid: 1,
        ..Holder::this_process("remote")
    };
    cat.release_flight("new").unwrap();
    cat.acquire_flight(&remote).unwrap();
    assert!(matches!(
        cat.acquire_flight(&Holder::this_process("x")).unwrap(),
        Acquired::Held(_)
    ));
}

#[test]
fn safe_mode_is_entered_and_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut cat = SqliteCatalog::open(&dir.path().join("c.db")).unwrap();
    assert_eq!(cat.safe_mode().unwrap(), None);
    let mode = SafeMode {
        run: Some("r1".into()),
        since: "2026-12-02T00:00:00Z".into(),
        reason: "every level failed".into(),
    };
    cat.enter_safe_mode(&mode).unwrap();
    assert_eq!(cat.safe_mode().unwrap(), Some(mode.clone()));
    assert_eq!(cat.leave_safe_mode().unwrap(), Some(mode));
    assert_eq!(cat.safe_mode().unwrap(), None);
}

#[test]
fn an_untouched_chain_verifies_and_keeps_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cat, raw) = audited(dir.path());
    let v = cat.verify_audit().unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.entries, 5);
    let last = cat.audit_entries(5).unwrap();
    assert_eq!(v.head.as_deref(), Some(last[0].hash.as_str()));
    let stored: String = raw
        .query_row("SELECT group_concat(args) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert!(!stored.contains("s3cret"), "{stored}");
}

fn first_bad(cat: &mut SqliteCatalog) -> u64 {
    let v = cat.verify_audit().unwrap();
    match &v.first_bad {
        Some(b) => b.seq,
        None => panic!("not detected: {v:?}"),
    }
}

#[test]
fn an_edited_entry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cat, raw) = audited(dir.path());
    raw.execute("UPDATE audit SET result = 'failed' WHERE seq = 3", [])
        .unwrap();
    assert_eq!(first_bad(&mut cat), 3);
}

#[test]
fn an_edit_that_rehashes_the_entry_breaks_the_next_link() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cat, raw) = audited(dir.path());
    let mut e = cat.audit_entries(3).unwrap().remove(0);
    e.input.reason = Some("nothing to see".into());
    let forged = ripcord_catalog::audit::hash(e.seq, &e.time, &e.input, &e.prev);
    raw.execute(
        "UPDATE audit SET reason = ?1, hash = ?2 WHERE seq = 3",
        rusqlite::params![e.input.reason, forged],
    )
    .unwrap();
    assert_eq!(first_bad(&mut cat), 4);
}

#[test]
fn a_deleted_entry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cat, raw) = audited(dir.path());
    raw.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    assert_eq!(first_bad(&mut cat), 2);
}

#[test]
fn reordered_entries_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cat, raw) = audited(dir.path());
    raw.execute_batch(
        "UPDATE audit SET seq = 100 WHERE seq = 2;
         UPDATE audit SET seq = 2 WHERE seq = 4;
         UPDATE audit SET seq = 4 WHERE seq = 100;",
    )
    .unwrap();
    assert_eq!(first_bad(&mut cat), 2);
}

#[test]
fn an_inserted_entry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cat, raw) = audited(dir.path());
    // Make room after entry 2 and slip one in, hashed as a forger would.
    raw.execute_batch("UPDATE audit SET seq = seq + 100 WHERE seq > 2; UPDATE audit SET seq = seq - 99 WHERE seq > 100;")
        .unwrap();
    let prev: String = raw
        .query_row("SELECT hash FROM audit WHERE seq = 2", [], |r| r.get(0))
        .unwrap();
    let input = entry("forget", 99);
    let time = "2026-12-02T00:00:00.000000Z";
    let hash = ripcord_catalog::audit::hash(3, time, &input, &prev);
    raw.execute(
        "INSERT INTO audit (seq, time, actor, command, args, reason, result, run, prev, hash)
         VALUES (3, ?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8)",
        rusqlite::params![
            time,
            input.actor,
            input.command,
            serde_json::to_string(&input.args).unwrap(),
            input.reason,
            input.result,
            prev,
            hash
        ],
    )
    .unwrap();
    assert_eq!(first_bad(&mut cat), 4);
}

#[test]
fn appends_from_many_connections_form_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    SqliteCatalog::open(&path).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut cat = SqliteCatalog::open(&path).unwrap();
                for n in 0..10 {
                    cat.append_audit(&entry("snapshot", t * 100 + n)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let v = SqliteCatalog::open(&path).unwrap().verify_audit().unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.entries, 40);
}

#[test]
fn samples_are_kept_by_probe_and_window_and_forgotten_after_retention() {
    use ripcord_catalog::samples::Sample;
    let dir = tempfile::tempdir().unwrap();
    let mut cat = SqliteCatalog::open(&dir.path().join(DEFAULT_PATH)).unwrap();
    let sample = |probe: &str, at_ms: i64, value: Option<f64>| Sample {
        probe: probe.into(),
        at_ms,
        ok: at_ms % 2 == 0,
        latency_ms: 1.5,
        value,
        observed: format!("at {at_ms}"),
    };
    cat.add_samples(&[
        sample("api", 1000, Some(1.0)),
        sample("api", 2000, None),
        sample("db", 2500, Some(f64::NAN)),
        sample("api", 3000, Some(3.0)),
    ])
    .unwrap();
    let api = cat.samples("api", 1000).unwrap();
    assert_eq!(
        api.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
        [2000, 3000],
        "the window starts after since_ms"
    );
    assert_eq!(api[0].value, None);
    assert!(api[0].ok && api[1].ok);
    // NaN is never stored as a number.
    assert_eq!(cat.samples("db", 0).unwrap()[0].value, None);
    assert_eq!(cat.forget_samples(2500).unwrap(), 2);
    assert_eq!(cat.samples("api", 0).unwrap().len(), 1);
}
