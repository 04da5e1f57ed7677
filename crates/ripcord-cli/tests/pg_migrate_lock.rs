//! PostgreSQL: the migration lock belongs to the work. A killed `up` does
//! not let the next one start while its statement still runs on the
//! server. (What `down` follows, the plan recorded at `up`, is tested on
//! both engines in migrate_recorded.rs.)

use std::time::{Duration, Instant};

use ripcord_testing::app::{exec, one, pg_app, write};
use ripcord_testing::pg;
use ripcord_testing::process::{kill9_child, wait_until};
use ripcord_testing::Workspace;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

fn setup(name: &str) -> (Workspace, String) {
    pg_app(bin(), name, "")
}

/// The change counts the other sessions still running it, then sleeps.
fn sleeping_change(ws: &Workspace, seconds: u32) {
    write(
        ws,
        "migrations/0001_slow/up.sql",
        &format!(
            "INSERT INTO overlap SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND state <> 'idle' \
             AND query LIKE '%pg_sleep({seconds})%' AND pid <> pg_backend_pid();\n\
             SELECT pg_sleep({seconds});\n"
        ),
    );
    write(
        ws,
        "migrations/0001_slow/down.sql",
        "DELETE FROM overlap;\n",
    );
}

/// Whether a statement of the change is running, and its backend.
fn sleeper(db: &str, seconds: u32) -> Option<String> {
    pg::shared()
        .psql(
            db,
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND state = 'active' AND query LIKE '%pg_sleep({seconds})%' \
                 AND pid <> pg_backend_pid()"
            ),
        )
        .first()
        .and_then(|r| r[0].clone())
}

/// Whether some session holds the migration lock ("ripcord\0": its low half
/// is `objid`).
fn lock_held(db: &str) -> bool {
    one(
        db,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND objid::bigint = x'6f726400'::bigint",
    ) != "0"
}

/// Bug: the lock lived on a connection of its own, which the server ends at
/// once when `up` is killed, while the killed run's statement went on: a
/// second `up` ran the change again alongside it.
#[test]
fn a_killed_up_does_not_let_the_next_one_run_beside_its_statement() {
    let (ws, db) = setup("lock_killed_up");
    exec(&db, "CREATE TABLE overlap (others bigint NOT NULL)");
    sleeping_change(&ws, 4);

    let mut first = ws.spawn(&["migrate", "up"], &[]);
    assert!(
        wait_until(Duration::from_secs(60), || sleeper(&db, 4).is_some()),
        "the first run never reached its statement"
    );
    let (_, killed) = kill9_child(&mut first);
    assert!(killed);
    // The killed run's lock session ends at once; its statement does not.
    assert!(wait_until(Duration::from_secs(10), || !lock_held(&db)));
    assert!(
        sleeper(&db, 4).is_some(),
        "the statement should outlive its process"
    );

    let started = Instant::now();
    let out = ws.run(&["migrate", "up"]);
    out.assert_code(0);
    // The second run waited for the killed one's statement to end...
    assert!(started.elapsed() >= Duration::from_secs(2), "{out}");
    // ...so its own change saw nobody else running it, and the killed run
    // committed nothing.
    assert_eq!(
        one(&db, "SELECT string_agg(others::text, ',') FROM overlap"),
        "0"
    );
}

#[test]
fn a_statement_left_running_refuses_the_next_run_after_the_wait() {
    let (ws, db) = setup("lock_left_running");
    exec(&db, "CREATE TABLE overlap (others bigint NOT NULL)");
    sleeping_change(&ws, 6);

    let mut first = ws.spawn(&["migrate", "up"], &[]);
    assert!(
        wait_until(Duration::from_secs(60), || sleeper(&db, 6).is_some()),
        "the first run never reached its statement"
    );
    kill9_child(&mut first);
    assert!(wait_until(Duration::from_secs(10), || !lock_held(&db)));
    let pid = sleeper(&db, 6).expect("the statement outlives its process");

    let out = ws.run_env(&["migrate", "up"], &[("RIPCORD_MIGRATE_LOCK_WAIT", "1s")]);
    out.assert_code(3)
        .assert_stderr_has("still runs on the server")
        .assert_stderr_has(&format!("backend pid {pid}"))
        .assert_stderr_has(&format!("pg_terminate_backend({pid})"));
    assert_eq!(one(&db, "SELECT count(*) FROM overlap"), "0");

    // Once it has ended, the next run goes ahead.
    assert!(wait_until(Duration::from_secs(30), || sleeper(&db, 6).is_none()));
    ws.ok(&["migrate", "up"]);
    assert_eq!(
        one(&db, "SELECT string_agg(others::text, ',') FROM overlap"),
        "0"
    );
}
