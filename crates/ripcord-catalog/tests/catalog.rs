//! The catalog's behaviour, run on each store: a fresh SQLite file and a
//! fresh PostgreSQL database (a throwaway cluster). Schema upgrades, the run
//! journal, single flight under contention, safe mode, last-good, samples,
//! drills, API tokens, and an audit chain that notices every kind of
//! tampering done behind its back.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ripcord_catalog::audit::{redact, AuditInput};
use ripcord_catalog::flight::{Acquired, Holder};
use ripcord_catalog::runs::{NewRun, RunResult, SafeMode, StepEnd, StepStart, StepState};
use ripcord_catalog::tokens::{NewToken, Role};
use ripcord_catalog::{Catalog, Error, Location, PgCatalog, SqliteCatalog, DEFAULT_PATH};
use ripcord_core::class::{Class, Classify};
use ripcord_testing::pg;
use rusqlite::Connection;

type Cat = Box<dyn Catalog + Send>;

/// One store to run a test on, and a way around the catalog to its tables.
struct Store {
    location: Location,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database's name.
    db: Option<String>,
}

/// A fresh store of each kind.
fn stores() -> Vec<Store> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store {
        location: Location::File(dir.path().join(DEFAULT_PATH)),
        _dir: Some(dir),
        db: None,
    };
    let db = pg::shared().create_database("catalog").unwrap();
    let postgres = Store {
        location: Location::Postgres(pg::shared().url(&db)),
        _dir: None,
        db: Some(db),
    };
    vec![sqlite, postgres]
}

impl Store {
    fn open(&self) -> Cat {
        ripcord_catalog::open(&self.location)
            .unwrap_or_else(|e| panic!("{}: {e}", self.location.name()))
    }

    fn name(&self) -> &'static str {
        if self.is_shared() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    fn is_shared(&self) -> bool {
        self.location.is_shared()
    }

    /// Runs `sql` straight on the store's tables; `{t}` stands for the
    /// tables' qualifier (none on SQLite, `ripcord.` on PostgreSQL).
    fn sql(&self, sql: &str) {
        match (&self.location, &self.db) {
            (Location::File(path), _) => Connection::open(path)
                .unwrap()
                .execute_batch(&sql.replace("{t}", ""))
                .unwrap(),
            (_, Some(db)) => {
                pg::shared().psql(db, &sql.replace("{t}", "ripcord."));
            }
            _ => unreachable!(),
        }
    }

    /// The first column of the first row of `sql`, as text.
    fn value(&self, sql: &str) -> Option<String> {
        match (&self.location, &self.db) {
            (Location::File(path), _) => Connection::open(path)
                .unwrap()
                .query_row(&sql.replace("{t}", ""), [], |r| {
                    r.get::<_, Option<String>>(0)
                })
                .unwrap(),
            (_, Some(db)) => pg::shared()
                .psql(db, &sql.replace("{t}", "ripcord."))
                .into_iter()
                .next()
                .and_then(|row| row.into_iter().next().flatten()),
            _ => unreachable!(),
        }
    }
}

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

/// The store's catalog with five audit entries.
fn audited(store: &Store) -> Cat {
    let mut cat = store.open();
    for n in 1..=5 {
        cat.append_audit(&entry("snapshot", n)).unwrap();
    }
    cat
}

fn first_bad(cat: &mut Cat) -> u64 {
    let v = cat.verify_audit().unwrap();
    match &v.first_bad {
        Some(b) => b.seq,
        None => panic!("not detected: {v:?}"),
    }
}

#[test]
fn a_new_sqlite_catalog_is_created_in_its_folder_at_the_current_version() {
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
fn a_new_postgres_catalog_is_created_in_its_schema_at_the_current_version() {
    let db = pg::shared().create_database("catalog_new").unwrap();
    let url = pg::shared().url(&db);
    let sqlite = tempfile::tempdir().unwrap();
    let known = SqliteCatalog::open(&sqlite.path().join("c.db"))
        .unwrap()
        .version()
        .unwrap();
    // Several hosts opening a new catalog at once create it once.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgCatalog::open(&url).unwrap().version().unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), known);
    }
    let tables = pg::shared().rows(
        &db,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'ripcord' ORDER BY 1",
    );
    assert_eq!(
        tables,
        [
            "audit",
            "drills",
            "flight",
            "last_good",
            "runs",
            "safe_mode",
            "samples",
            "steps",
            "tokens",
            "version"
        ]
    );
    let cat = PgCatalog::open(&url).unwrap();
    assert!(!cat.location().contains(pg::PASSWORD), "{}", cat.location());
    assert!(cat.location().contains(&db));
}

#[test]
fn a_catalog_from_a_newer_version_is_refused_and_left_alone() {
    for store in stores() {
        match &store.location {
            Location::File(path) => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                Connection::open(path)
                    .unwrap()
                    .pragma_update(None, "user_version", 999)
                    .unwrap();
            }
            Location::Postgres(_) => store.sql(
                "CREATE SCHEMA ripcord;
                 CREATE TABLE ripcord.version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL);
                 INSERT INTO ripcord.version VALUES (1, 999);",
            ),
        }
        let Err(e) = ripcord_catalog::open(&store.location) else {
            panic!("{}: a newer catalog was opened", store.name());
        };
        assert!(matches!(e, Error::Newer { found: 999, .. }), "{e}");
        assert_eq!(e.class(), Class::Refused);
        let tables = match &store.location {
            Location::File(_) => store.value("SELECT count(*) || '' FROM sqlite_master"),
            Location::Postgres(_) => store.value(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'ripcord' \
                 AND tablename <> 'version'",
            ),
        };
        assert_eq!(
            tables.as_deref(),
            Some("0"),
            "{}: nothing was created in it",
            store.name()
        );
    }
}

#[test]
fn an_unreachable_postgres_catalog_is_a_usage_error_without_its_password() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://ripcord:s3cret@127.0.0.1:{port}/ripcord?connect_timeout=2");
    let Err(e) = ripcord_catalog::open(&Location::Postgres(url)) else {
        panic!("nothing listens there");
    };
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert_eq!(e.class(), Class::Usage);
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert!(e.hint().unwrap().contains("[catalog] url"));
    // A database that does not exist, on a server that does.
    let url = pg::shared().url("no_such_database");
    let Err(e) = ripcord_catalog::open(&Location::Postgres(url)) else {
        panic!("no such database");
    };
    assert_eq!(e.class(), Class::Usage, "{e}");
    assert!(e.to_string().contains("no_such_database"), "{e}");
}

#[test]
fn the_journal_records_steps_before_and_after_and_counts_attempts() {
    for store in stores() {
        let mut cat = store.open();
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
        let other = store.open().steps(&run.run).unwrap();
        assert_eq!(other[0].state, StepState::Started, "{}", store.name());
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
        assert_eq!(steps[0].output.as_deref(), Some("stopped"));
        assert_eq!((steps[1].state, steps[1].attempts), (StepState::Started, 2));
        cat.finish_run(&run.run, RunResult::Failed).unwrap();
        let again = cat.run(&run.run).unwrap().unwrap();
        assert_eq!(again.result, RunResult::Failed);
        assert!(again.finished.is_some());
        assert_eq!(again.level.as_deref(), Some("emergency"));
        assert_eq!(cat.runs().unwrap().len(), 1);
        assert!(matches!(
            cat.finish_run("nope", RunResult::Failed),
            Err(Error::UnknownRun(_))
        ));
        assert!(matches!(
            cat.end_step(
                &run.run,
                9,
                &StepEnd {
                    state: StepState::Failed,
                    output: None,
                    detail: None
                }
            ),
            Err(Error::UnknownRun(_))
        ));
        // A run refused for bad input is removed with its steps.
        cat.discard_run(&run.run).unwrap();
        assert_eq!(cat.run(&run.run).unwrap(), None, "{}", store.name());
        assert!(cat.steps(&run.run).unwrap().is_empty());
    }
}

#[test]
fn runs_are_listed_newest_first() {
    for store in stores() {
        let mut cat = store.open();
        for id in ["a", "b", "c"] {
            cat.begin_run(&NewRun {
                id: id.into(),
                kind: "restore".into(),
                reason: "r".into(),
                trigger: "manual".into(),
                actor: "ops@host".into(),
                ..NewRun::default()
            })
            .unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let ids: Vec<_> = cat.runs().unwrap().into_iter().map(|r| r.run).collect();
        assert_eq!(ids, ["c", "b", "a"], "{}", store.name());
    }
}

#[test]
fn of_ten_runs_started_at_once_exactly_one_flies() {
    for store in stores() {
        store.open();
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
                let (location, barrier) = (store.location.clone(), barrier.clone());
                let holder = Holder {
                    pid: p.id(),
                    pid_start: None,
                    ..Holder::this_process(&format!("run{i}"))
                };
                std::thread::spawn(move || {
                    let mut cat = ripcord_catalog::open(&location).unwrap();
                    barrier.wait();
                    let outcome = cat.acquire_flight(&holder).unwrap();
                    // The catalog goes on living with its run.
                    (outcome, cat)
                })
            })
            .collect();
        let (outcomes, mut cats): (Vec<Acquired>, Vec<Cat>) =
            handles.into_iter().map(|h| h.join().unwrap()).unzip();
        let taken = outcomes.iter().filter(|o| **o == Acquired::Taken).count();
        assert_eq!(taken, 1, "{}: {outcomes:?}", store.name());
        let mut cat = store.open();
        let holder = cat.flight_holder().unwrap().unwrap();
        for o in &outcomes {
            if let Acquired::Held(h) = o {
                assert_eq!(h, &holder, "{}: the refusal names the holder", store.name());
            }
        }
        assert_eq!(cat.holder_alive(&holder).unwrap(), Some(true));
        // Released by its own run, the next one flies.
        let winner = outcomes.iter().position(|o| *o == Acquired::Taken).unwrap();
        cats[winner].release_flight(&holder.run).unwrap();
        assert_eq!(cat.flight_holder().unwrap(), None);
        assert_eq!(
            cat.acquire_flight(&Holder::this_process("next")).unwrap(),
            Acquired::Taken,
            "{}",
            store.name()
        );
        drop(cats);
        for p in &mut sleepers {
            p.kill().ok();
            p.wait().ok();
        }
    }
}

#[test]
fn a_dead_holder_is_replaced_and_named() {
    for store in stores() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = Holder {
            pid: child.id(),
            ..Holder::this_process("crashed")
        };
        child.wait().unwrap();
        // The crashed run's catalog is gone with its process.
        assert_eq!(store.open().acquire_flight(&dead).unwrap(), Acquired::Taken);
        let mut cat = store.open();
        assert_eq!(cat.holder_alive(&dead).unwrap(), Some(false));
        match cat.acquire_flight(&Holder::this_process("new")).unwrap() {
            Acquired::TakenOver(h) => assert_eq!(h.run, "crashed", "{}", store.name()),
            other => panic!("{}: {other:?}", store.name()),
        }
        cat.release_flight("new").unwrap();

        // A holder on another host, its catalog open: it holds.
        let remote = Holder {
            host: "elsewhere".into(),
            pid: 1,
            ..Holder::this_process("remote")
        };
        let mut elsewhere = store.open();
        assert_eq!(elsewhere.acquire_flight(&remote).unwrap(), Acquired::Taken);
        assert!(matches!(
            cat.acquire_flight(&Holder::this_process("x")).unwrap(),
            Acquired::Held(h) if h == remote
        ));
        drop(elsewhere);
        let mut after = cat.acquire_flight(&Holder::this_process("x")).unwrap();
        if store.is_shared() {
            // Its session ended: PostgreSQL tells, across hosts, once the
            // server has closed it.
            ripcord_testing::process::wait_until(Duration::from_secs(10), || {
                if matches!(after, Acquired::Held(_)) {
                    after = cat.acquire_flight(&Holder::this_process("x")).unwrap();
                }
                !matches!(after, Acquired::Held(_))
            });
            assert_eq!(after, Acquired::TakenOver(remote));
        } else {
            // SQLite cannot judge another host's process.
            assert_eq!(after, Acquired::Held(remote));
        }
    }
}

#[test]
fn the_same_process_takes_its_own_flight_again() {
    for store in stores() {
        let mut cat = store.open();
        let me = Holder::this_process("r1");
        assert_eq!(cat.acquire_flight(&me).unwrap(), Acquired::Taken);
        // As `resume` does after the process replaced itself.
        assert_eq!(cat.acquire_flight(&me).unwrap(), Acquired::Taken);
        cat.release_flight("r1").unwrap();
        assert_eq!(cat.flight_holder().unwrap(), None, "{}", store.name());
        // Releasing a run that does not hold it changes nothing.
        cat.acquire_flight(&me).unwrap();
        cat.release_flight("other").unwrap();
        assert_eq!(cat.flight_holder().unwrap(), Some(me.clone()));
    }
}

#[test]
fn safe_mode_is_entered_and_left() {
    for store in stores() {
        let mut cat = store.open();
        assert_eq!(cat.safe_mode().unwrap(), None);
        let mode = SafeMode {
            run: Some("r1".into()),
            since: "2026-12-02T00:00:00Z".into(),
            reason: "every level failed".into(),
        };
        cat.enter_safe_mode(&mode).unwrap();
        assert_eq!(store.open().safe_mode().unwrap(), Some(mode.clone()));
        let again = SafeMode {
            run: None,
            ..mode.clone()
        };
        cat.enter_safe_mode(&again).unwrap();
        assert_eq!(cat.leave_safe_mode().unwrap(), Some(again));
        assert_eq!(cat.safe_mode().unwrap(), None, "{}", store.name());
        assert_eq!(cat.leave_safe_mode().unwrap(), None);
    }
}

#[test]
fn last_good_is_recorded_per_target() {
    for store in stores() {
        let mut cat = store.open();
        assert_eq!(cat.last_good("app").unwrap(), None);
        cat.set_last_good("app", None, "ops@host").unwrap();
        assert_eq!(cat.last_good("app").unwrap().unwrap().change, None);
        cat.set_last_good("app", Some("0002_add_email"), "dev@host")
            .unwrap();
        cat.set_last_good("other", Some("x"), "dev@host").unwrap();
        let lg = store.open().last_good("app").unwrap().unwrap();
        assert_eq!(
            (lg.target.as_str(), lg.change.as_deref(), lg.actor.as_str()),
            ("app", Some("0002_add_email"), "dev@host"),
            "{}",
            store.name()
        );
    }
}

#[test]
fn drills_are_kept_and_the_newest_is_found() {
    for store in stores() {
        let mut cat = store.open();
        assert_eq!(cat.last_drill().unwrap(), None);
        cat.add_drill("2026-12-01T00:00:00Z", "passed", "{}")
            .unwrap();
        cat.add_drill("2026-12-03T00:00:00Z", "failed", "{}")
            .unwrap();
        cat.add_drill("2026-12-02T00:00:00Z", "passed", "{}")
            .unwrap();
        assert_eq!(
            cat.last_drill().unwrap(),
            Some(("2026-12-03T00:00:00Z".into(), "failed".into())),
            "{}",
            store.name()
        );
    }
}

fn token(name: &str, role: Role, n: u32) -> NewToken {
    NewToken {
        name: name.into(),
        role,
        hash: blake3::hash(format!("token {name} {n}").as_bytes())
            .to_hex()
            .to_string(),
        actor: "ops@host".into(),
    }
}

#[test]
fn tokens_are_added_listed_and_revoked_one_active_per_name() {
    for store in stores() {
        let mut cat = store.open();
        assert!(cat.tokens().unwrap().is_empty());
        cat.add_token(&token("ci", Role::Reader, 1)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        cat.add_token(&token("deploy", Role::Admin, 1)).unwrap();
        // A name an active token has is refused, and nothing is stored.
        let e = cat.add_token(&token("ci", Role::Admin, 2)).unwrap_err();
        assert!(matches!(&e, Error::TokenExists(n) if n == "ci"), "{e}");
        assert_eq!(e.class(), Class::Usage);
        assert!(e.hint().unwrap().contains("ripcord token revoke ci"), "{e}");
        let listed = store.open().tokens().unwrap();
        let names: Vec<_> = listed.iter().map(|t| (t.name.as_str(), t.role)).collect();
        assert_eq!(
            names,
            [("ci", Role::Reader), ("deploy", Role::Admin)],
            "{}",
            store.name()
        );
        let ci = &listed[0];
        assert_eq!(ci.hash, token("ci", Role::Reader, 1).hash);
        assert_eq!(ci.created_by, "ops@host");
        assert!(ci.is_active() && ci.created.ends_with('Z'), "{ci:?}");
        assert!(chrono::DateTime::parse_from_rfc3339(&ci.created).is_ok());

        // Revoked: kept and listed as revoked; its name may be taken again.
        assert!(cat.revoke_token("ci").unwrap(), "{}", store.name());
        assert!(!cat.revoke_token("ci").unwrap(), "revoked twice");
        assert!(!cat.revoke_token("nobody").unwrap());
        std::thread::sleep(Duration::from_millis(2));
        cat.add_token(&token("ci", Role::Operator, 3)).unwrap();
        let listed = cat.tokens().unwrap();
        let states: Vec<_> = listed
            .iter()
            .map(|t| (t.name.as_str(), t.role, t.is_active()))
            .collect();
        assert_eq!(
            states,
            [
                ("ci", Role::Reader, false),
                ("deploy", Role::Admin, true),
                ("ci", Role::Operator, true)
            ],
            "{}",
            store.name()
        );
        let revoked = listed[0].revoked.as_deref().unwrap();
        assert!(revoked >= listed[0].created.as_str(), "{revoked}");
        // Revoking the name revokes the active one only.
        assert!(cat.revoke_token("ci").unwrap());
        assert!(cat
            .tokens()
            .unwrap()
            .iter()
            .all(|t| t.name != "ci" || !t.is_active()));
    }
}

#[test]
fn of_one_name_added_at_once_from_many_connections_one_token_is_kept() {
    for store in stores() {
        store.open();
        let barrier = Arc::new(Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|n| {
                let (location, barrier) = (store.location.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut cat = ripcord_catalog::open(&location).unwrap();
                    barrier.wait();
                    cat.add_token(&token("race", Role::Operator, n))
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let added = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(added, 1, "{}: {results:?}", store.name());
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(matches!(r, Error::TokenExists(_)), "{r}");
        }
        assert_eq!(store.open().tokens().unwrap().len(), 1);
    }
}

#[test]
fn a_catalog_of_the_version_before_tokens_is_upgraded_and_keeps_its_data() {
    for store in stores() {
        let mut cat = audited(&store);
        let current = cat.schema_version().unwrap();
        drop(cat);
        // As the version before left it: no tokens table.
        match &store.location {
            Location::File(path) => {
                let conn = Connection::open(path).unwrap();
                conn.execute_batch("DROP TABLE tokens").unwrap();
                conn.pragma_update(None, "user_version", current - 1)
                    .unwrap();
            }
            Location::Postgres(_) => store.sql(&format!(
                "DROP TABLE ripcord.tokens; UPDATE ripcord.version SET version = {}",
                current - 1
            )),
        }
        let mut cat = store.open();
        assert_eq!(cat.schema_version().unwrap(), current, "{}", store.name());
        assert_eq!(cat.audit_entries(1).unwrap().len(), 5);
        assert!(cat.verify_audit().unwrap().ok());
        cat.add_token(&token("after", Role::Reader, 1)).unwrap();
        assert_eq!(cat.tokens().unwrap().len(), 1, "{}", store.name());
    }
}

#[test]
fn an_untouched_chain_verifies_and_keeps_no_secret() {
    for store in stores() {
        let mut cat = audited(&store);
        let v = cat.verify_audit().unwrap();
        assert!(v.ok(), "{}: {v:?}", store.name());
        assert_eq!(v.entries, 5);
        let last = cat.audit_entries(5).unwrap();
        assert_eq!(v.head.as_deref(), Some(last[0].hash.as_str()));
        assert_eq!(
            cat.audit_head().unwrap(),
            Some((5, last[0].hash.clone())),
            "{}",
            store.name()
        );
        let concat = if store.is_shared() {
            "string_agg(args, ',')"
        } else {
            "group_concat(args)"
        };
        let stored = store
            .value(&format!("SELECT {concat} FROM {{t}}audit"))
            .unwrap();
        assert!(stored.contains("--n=3"), "{stored}");
        assert!(!stored.contains("s3cret"), "{stored}");
    }
}

#[test]
fn the_same_entries_hash_the_same_in_either_store() {
    let stores = stores();
    let entries: Vec<_> = stores
        .iter()
        .map(|s| {
            let mut cat = audited(s);
            cat.audit_entries(1).unwrap()
        })
        .collect();
    // Times differ; the hashing is the one function of audit.rs.
    for (a, b) in entries[0].iter().zip(&entries[1]) {
        assert_eq!(a.input, b.input);
        assert_eq!(
            ripcord_catalog::audit::hash(b.seq, &b.time, &b.input, &b.prev),
            b.hash
        );
    }
}

#[test]
fn an_edited_entry_is_named() {
    for store in stores() {
        let mut cat = audited(&store);
        store.sql("UPDATE {t}audit SET result = 'failed' WHERE seq = 3");
        assert_eq!(first_bad(&mut cat), 3, "{}", store.name());
    }
}

#[test]
fn an_edit_that_rehashes_the_entry_breaks_the_next_link() {
    for store in stores() {
        let mut cat = audited(&store);
        let mut e = cat.audit_entries(3).unwrap().remove(0);
        e.input.reason = Some("nothing to see".into());
        let forged = ripcord_catalog::audit::hash(e.seq, &e.time, &e.input, &e.prev);
        store.sql(&format!(
            "UPDATE {{t}}audit SET reason = 'nothing to see', hash = '{forged}' WHERE seq = 3"
        ));
        assert_eq!(first_bad(&mut cat), 4, "{}", store.name());
    }
}

#[test]
fn a_deleted_entry_is_named() {
    for store in stores() {
        let mut cat = audited(&store);
        store.sql("DELETE FROM {t}audit WHERE seq = 2");
        assert_eq!(first_bad(&mut cat), 2, "{}", store.name());
    }
}

#[test]
fn reordered_entries_are_named() {
    for store in stores() {
        let mut cat = audited(&store);
        store.sql(
            "UPDATE {t}audit SET seq = 100 WHERE seq = 2;
             UPDATE {t}audit SET seq = 2 WHERE seq = 4;
             UPDATE {t}audit SET seq = 4 WHERE seq = 100;",
        );
        assert_eq!(first_bad(&mut cat), 2, "{}", store.name());
    }
}

#[test]
fn an_inserted_entry_is_named() {
    for store in stores() {
        let mut cat = audited(&store);
        // Make room after entry 2 and slip one in, hashed as a forger would.
        store.sql(
            "UPDATE {t}audit SET seq = seq + 100 WHERE seq > 2;
             UPDATE {t}audit SET seq = seq - 99 WHERE seq > 100;",
        );
        let prev = store
            .value("SELECT hash FROM {t}audit WHERE seq = 2")
            .unwrap();
        let input = entry("forget", 99);
        let time = "2026-12-02T00:00:00.000000Z";
        let hash = ripcord_catalog::audit::hash(3, time, &input, &prev);
        let args = serde_json::to_string(&input.args).unwrap();
        store.sql(&format!(
            "INSERT INTO {{t}}audit (seq, time, actor, command, args, reason, result, run, prev, hash)
             VALUES (3, '{time}', '{}', '{}', '{args}', '{}', '{}', NULL, '{prev}', '{hash}')",
            input.actor,
            input.command,
            input.reason.as_deref().unwrap(),
            input.result,
        ));
        assert_eq!(first_bad(&mut cat), 4, "{}", store.name());
    }
}

#[test]
fn appends_from_many_connections_form_one_chain() {
    for store in stores() {
        store.open();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let location = store.location.clone();
                std::thread::spawn(move || {
                    let mut cat = ripcord_catalog::open(&location).unwrap();
                    for n in 0..10 {
                        cat.append_audit(&entry("snapshot", t * 100 + n)).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let v = store.open().verify_audit().unwrap();
        assert!(v.ok(), "{}: {v:?}", store.name());
        assert_eq!(v.entries, 40);
    }
}

#[test]
fn samples_are_kept_by_probe_and_window_and_forgotten_after_retention() {
    use ripcord_catalog::samples::Sample;
    for store in stores() {
        let mut cat = store.open();
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
            "{}: the window starts after since_ms",
            store.name()
        );
        assert_eq!(api[0].value, None);
        assert_eq!(api[1].value, Some(3.0));
        assert_eq!(api[1].latency_ms, 1.5);
        assert_eq!(api[1].observed, "at 3000");
        assert!(api[0].ok && api[1].ok);
        // NaN is never stored as a number.
        assert_eq!(cat.samples("db", 0).unwrap()[0].value, None);
        assert_eq!(cat.forget_samples(2500).unwrap(), 2);
        assert_eq!(cat.samples("api", 0).unwrap().len(), 1);
    }
}

#[test]
fn a_missing_sqlite_catalog_is_not_created_by_open_existing() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join(DEFAULT_PATH);
    let location = Location::File(path.clone());
    assert!(ripcord_catalog::open_existing(&location).unwrap().is_none());
    assert!(!path.exists());
    ripcord_catalog::open(&location).unwrap();
    let cat = ripcord_catalog::open_existing(&location).unwrap().unwrap();
    assert_eq!(cat.location(), location.name());
    assert!(std::path::Path::new(&cat.location()).is_absolute());
}
