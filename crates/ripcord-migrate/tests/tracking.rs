//! The tracking tables and the migration lock, against a real SQLite file and
//! a throwaway PostgreSQL cluster, and status against a plan.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use ripcord_core::{Class, Classify};
use ripcord_migrate::tracking::{
    status, AppliedChange, ChangeState, EventKind, PostgresTracker, RecordState, SqliteTracker,
    Tracker,
};
use ripcord_migrate::{Change, Error, Format, Phase, Plan, Script};

fn plan() -> Plan {
    let change = |name: &str| {
        Change::new(
            name,
            Script::new(
                format!("{name}/up.sql"),
                format!("CREATE TABLE t_{name} (id int);\n"),
            ),
        )
    };
    Plan {
        format: Format::Native,
        changes: ["a", "b", "c", "d"].into_iter().map(change).collect(),
        phases: vec![
            Phase {
                name: "expand".into(),
                changes: vec!["a".into(), "b".into()],
            },
            Phase {
                name: "contract".into(),
                changes: vec!["c".into(), "d".into()],
            },
        ],
    }
}

fn sum(plan: &Plan, name: &str) -> String {
    plan.change(name).unwrap().up.checksum.clone()
}

fn row(name: &str, checksum: &str, state: RecordState, plan_order: i32) -> AppliedChange {
    AppliedChange {
        name: name.into(),
        checksum: checksum.into(),
        state,
        applied_at: Utc::now(),
        actor: "tester".into(),
        duration_ms: Some(1),
        safety_snapshot: None,
        plan_order,
        transactional: true,
        revert_plan: None,
    }
}

// ---- status, without a database ----

#[test]
fn status_of_an_empty_history_is_all_pending() {
    let plan = plan();
    let s = status(&plan, &[]);
    assert_eq!(s.in_state(ChangeState::Pending), ["a", "b", "c", "d"]);
    assert_eq!(s.phase, None);
    assert!(s.history_matches);
    assert_eq!(s.mismatch, None);
    assert_eq!(s.change("a").unwrap().phase.as_deref(), Some("expand"));
}

#[test]
fn status_names_every_state_and_the_phase() {
    let plan = plan();
    let applied = [
        row("a", &sum(&plan, "a"), RecordState::Applied, 0),
        row("b", "changed", RecordState::Applied, 1),
        row("c", &sum(&plan, "c"), RecordState::Dirty, 2),
    ];
    let s = status(&plan, &applied);
    assert_eq!(s.change("a").unwrap().state, ChangeState::Applied);
    assert_eq!(s.change("b").unwrap().state, ChangeState::Drifted);
    assert_eq!(s.change("c").unwrap().state, ChangeState::Dirty);
    assert_eq!(s.change("d").unwrap().state, ChangeState::Pending);
    // A drifted change is still in the database, so the phase is complete.
    assert_eq!(s.phase.as_deref(), Some("expand"));
    assert!(s.history_matches);

    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["changes"][1]["state"], "drifted");
    assert_eq!(json["phase"], "expand");
    assert_eq!(json["history_matches"], true);
}

#[test]
fn status_reports_unknown_changes_and_the_first_mismatch() {
    let plan = plan();
    let applied = [
        row("a", &sum(&plan, "a"), RecordState::Applied, 0),
        row("c", &sum(&plan, "c"), RecordState::Applied, 2),
        row("zz", "x", RecordState::Applied, 9),
    ];
    let s = status(&plan, &applied);
    assert_eq!(s.change("zz").unwrap().state, ChangeState::Unknown);
    assert_eq!(s.changes.last().unwrap().name, "zz");
    assert!(!s.history_matches);
    let m = s.mismatch.unwrap();
    assert_eq!((m.position, m.expected.as_deref()), (1, Some("b")));
    assert_eq!(m.found, "c");
    assert!(m.to_string().contains("plan has b"), "{m}");

    // An unknown change after a complete plan is past its end.
    let mut applied: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, n)| row(n, &sum(&plan, n), RecordState::Applied, i as i32))
        .collect();
    applied.push(row("zz", "x", RecordState::Applied, 4));
    let s = status(&plan, &applied);
    assert_eq!(s.phase.as_deref(), Some("contract"));
    let m = s.mismatch.unwrap();
    assert_eq!((m.position, m.expected), (4, None));
}

// ---- the same scenario on both databases ----

fn history(tracker: &mut dyn Tracker) -> Vec<String> {
    tracker
        .applied()
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect()
}

fn deploy(tracker: &mut dyn Tracker, plan: &Plan, name: &str, order: i32) {
    tracker
        .record_start(name, order, &sum(plan, name), "tester", None)
        .unwrap();
    tracker
        .record_done(name, Duration::from_millis(12))
        .unwrap();
    tracker
        .record_event(name, EventKind::Deploy, "tester", "ok")
        .unwrap();
}

fn scenario(open: &dyn Fn() -> Box<dyn Tracker>) {
    let plan = plan();
    let mut t = open();
    t.ensure_schema().unwrap();
    t.ensure_schema().unwrap();
    open().ensure_schema().unwrap();
    assert!(t.applied().unwrap().is_empty());

    // Started: dirty, before anything ran.
    t.record_start("a", 0, &sum(&plan, "a"), "alice", Some("snap-1".into()))
        .unwrap();
    let applied = t.applied().unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].state, RecordState::Dirty);
    assert_eq!(applied[0].duration_ms, None);
    let s = status(&plan, &applied);
    assert_eq!(s.change("a").unwrap().state, ChangeState::Dirty);
    assert_eq!(s.phase, None);

    // Done: applied, with its duration, actor and snapshot.
    t.record_done("a", Duration::from_millis(1500)).unwrap();
    t.record_event("a", EventKind::Deploy, "alice", "1.5s")
        .unwrap();
    let applied = t.applied().unwrap();
    let a = &applied[0];
    assert_eq!(a.state, RecordState::Applied);
    assert_eq!(a.duration_ms, Some(1500));
    assert_eq!(a.actor, "alice");
    assert_eq!(a.safety_snapshot.as_deref(), Some("snap-1"));
    assert_eq!(a.plan_order, 0);
    assert!((Utc::now() - a.applied_at).num_seconds().abs() < 60);
    assert_eq!(
        status(&plan, &applied).change("a").unwrap().state,
        ChangeState::Applied
    );

    // A second tracker on the same database sees the same rows.
    assert_eq!(history(&mut *open()), ["a"]);

    deploy(&mut *t, &plan, "b", 1);
    let s = status(&plan, &t.applied().unwrap());
    assert_eq!(s.phase.as_deref(), Some("expand"));
    assert!(s.history_matches);
    assert_eq!(s.in_state(ChangeState::Pending), ["c", "d"]);

    // The script changed after it ran.
    let mut edited = plan.clone();
    edited.changes[0].up = Script::new("a/up.sql", "CREATE TABLE t_a (id bigint);\n");
    let s = status(&edited, &t.applied().unwrap());
    assert_eq!(s.change("a").unwrap().state, ChangeState::Drifted);
    assert_eq!(
        s.change("a").unwrap().recorded_checksum.as_deref(),
        Some(sum(&plan, "a").as_str())
    );

    // Reverted: gone from the table, pending again.
    t.record_reverted("b").unwrap();
    t.record_event("b", EventKind::Revert, "alice", "down.sql")
        .unwrap();
    assert_eq!(history(&mut *t), ["a"]);
    let s = status(&plan, &t.applied().unwrap());
    assert_eq!(s.change("b").unwrap().state, ChangeState::Pending);
    assert_eq!(s.phase, None);

    // Out of plan order: c without b.
    std::thread::sleep(Duration::from_millis(5));
    deploy(&mut *t, &plan, "c", 2);
    let s = status(&plan, &t.applied().unwrap());
    assert!(!s.history_matches);
    let m = s.mismatch.unwrap();
    assert_eq!((m.position, m.expected.as_deref()), (1, Some("b")));
    assert_eq!(m.found, "c");

    // Retrying a started change replaces its row.
    t.record_start("c", 2, "other", "bob", None).unwrap();
    let c = t.applied().unwrap().pop().unwrap();
    assert_eq!((c.state, c.actor.as_str()), (RecordState::Dirty, "bob"));

    // Unknown names are refused rather than ignored.
    let e = t.record_done("nope", Duration::ZERO).unwrap_err();
    assert!(matches!(e, Error::NotRecorded { .. }), "{e}");
    assert!(t.record_reverted("nope").is_err());
}

/// A lock attempt that must fail because someone else holds it.
fn assert_refused(tracker: &mut dyn Tracker, holder_mentions: &str) {
    let e = tracker.lock().unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert_eq!(e.class(), Class::Refused);
    assert!(e.hint().is_some());
    let text = e.to_string();
    assert!(text.contains(holder_mentions), "{text}");
}

fn lock_scenario(open: &(dyn Fn() -> Box<dyn Tracker> + Sync), holder_mentions: &str) {
    let mut first = open();
    let mut second = open();
    first.ensure_schema().unwrap();

    let guard = first.lock().unwrap();
    assert!(guard.holder().contains(holder_mentions), "{guard:?}");
    assert_refused(&mut *second, holder_mentions);
    // The holder may write while it holds the lock.
    first.record_start("a", 0, "sum", "alice", None).unwrap();
    first.record_done("a", Duration::ZERO).unwrap();
    drop(guard);

    let guard = second.lock().unwrap();
    assert_refused(&mut *first, holder_mentions);
    drop(guard);

    // Released when the holding code fails with `?`.
    fn fails(tracker: &mut dyn Tracker) -> ripcord_migrate::Result<()> {
        let _guard = tracker.lock()?;
        tracker.record_done("missing", Duration::ZERO)?;
        Ok(())
    }
    assert!(fails(&mut *first).is_err());
    drop(second.lock().unwrap());

    // Released when the holding thread panics.
    let panicked = std::thread::scope(|s| {
        s.spawn(|| {
            let mut t = open();
            let _guard = t.lock().unwrap();
            panic!("the change failed");
        })
        .join()
    });
    assert!(panicked.is_err());
    drop(first.lock().unwrap());
}

fn sqlite_open(path: &Path) -> impl Fn() -> Box<dyn Tracker> + Sync + '_ {
    move || Box::new(SqliteTracker::open(path).unwrap()) as Box<dyn Tracker>
}

#[test]
fn sqlite_tracking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    scenario(&sqlite_open(&path));

    let conn = rusqlite::Connection::open(&path).unwrap();
    let kinds: Vec<String> = conn
        .prepare("SELECT kind FROM ripcord_events ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kinds, ["deploy", "deploy", "revert", "deploy"]);
    let at: String = conn
        .query_row("SELECT applied_at FROM ripcord_changes LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(&at).is_ok(), "{at}");
}

#[test]
fn sqlite_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let pid = format!("pid {}", std::process::id());
    lock_scenario(&sqlite_open(&path), &pid);

    // A holder row left by a crashed process does not keep the lock.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT OR REPLACE INTO ripcord_lock (id, pid, host, started)
         VALUES (1, 999999, 'gone', '2020-01-01T00:00:00Z')",
        [],
    )
    .unwrap();
    let mut t = SqliteTracker::open(&path).unwrap();
    let guard = t.lock().unwrap();
    assert_refused(&mut SqliteTracker::open(&path).unwrap(), &pid);
    drop(guard);
}

fn pg_open(url: String) -> impl Fn() -> Box<dyn Tracker> + Sync {
    move || Box::new(PostgresTracker::connect(&url).unwrap()) as Box<dyn Tracker>
}

#[test]
fn postgres_tracking() {
    let cluster = ripcord_testing::pg::shared();
    let db = cluster.create_database("tracking").unwrap();
    scenario(&pg_open(cluster.url(&db)));

    let rows = cluster.psql(
        &db,
        "SELECT kind FROM ripcord.events ORDER BY id;
         SELECT count(*) FROM ripcord.changes WHERE state = 'dirty'",
    );
    let kinds: Vec<_> = rows.iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(kinds, ["deploy", "deploy", "revert", "deploy", "1"]);
}

#[test]
fn postgres_schema_creation_is_safe_concurrently() {
    let cluster = ripcord_testing::pg::shared();
    let db = cluster.create_database("tracking_schema").unwrap();
    let open = pg_open(cluster.url(&db));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| open().ensure_schema())).collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    assert!(open().applied().unwrap().is_empty());
}

#[test]
fn postgres_lock() {
    let cluster = ripcord_testing::pg::shared();
    let db = cluster.create_database("tracking_lock").unwrap();
    lock_scenario(&pg_open(cluster.url(&db)), "(ripcord)");

    // The holder names its session by pid, application and start time.
    let open = pg_open(cluster.url(&db));
    let mut holder = open();
    let guard = holder.lock().unwrap();
    let e = open().lock().unwrap_err().to_string();
    assert!(e.contains(guard.holder()), "{e} / {}", guard.holder());
    assert!(e.contains("connected since"), "{e}");
    drop(guard);
}

#[test]
fn postgres_lock_ends_with_its_session() {
    let cluster = ripcord_testing::pg::shared();
    let db = cluster.create_database("tracking_kill").unwrap();
    let open = pg_open(cluster.url(&db));

    // A holder that never runs its guard's Drop, as when the process is
    // killed: the guard is leaked, then its backend is terminated.
    let url = cluster.url(&db);
    std::thread::spawn(move || {
        let mut t = PostgresTracker::connect(&url).unwrap();
        std::mem::forget(t.lock().unwrap());
    })
    .join()
    .unwrap();
    let mut waiting = open();
    assert_refused(&mut *waiting, "(ripcord)");

    // The migration lock's key is "ripcord\0": its low half is objid.
    let pids = cluster.psql(
        &db,
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND objid::bigint = x'6f726400'::bigint",
    );
    assert_eq!(pids.len(), 1);
    let pid = pids[0][0].clone().unwrap();
    cluster.psql(&db, &format!("SELECT pg_terminate_backend({pid})"));

    let deadline = Instant::now() + Duration::from_secs(10);
    let guard = loop {
        match waiting.lock() {
            Ok(guard) => break guard,
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("lock after the holder was terminated: {e}"),
        }
    };
    drop(guard);
}

/// Kills the child process on every path out of the test.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const HOLD: &str = "RIPCORD_TRACKING_TEST_HOLD";

#[test]
fn sqlite_lock_ends_with_its_process() {
    use std::io::BufRead;

    if let Ok(path) = std::env::var(HOLD) {
        // The child: take the lock and wait to be killed.
        let mut t = SqliteTracker::open(Path::new(&path)).unwrap();
        let _guard = t.lock().unwrap();
        println!("\nLOCKED");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let mut child = Child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sqlite_lock_ends_with_its_process",
                "--exact",
                "--nocapture",
            ])
            .env(HOLD, &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let locked = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line == "LOCKED");
    assert!(locked, "the child did not take the lock");

    let mut t = SqliteTracker::open(&path).unwrap();
    assert_refused(&mut t, &format!("pid {}", child.0.id()));

    // SIGKILL: no destructor runs, the operating system drops the lock.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let guard = t.lock().unwrap();
    assert!(guard
        .holder()
        .contains(&format!("pid {}", std::process::id())));
}
