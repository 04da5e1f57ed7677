//! Writes made while a change's safety snapshot is taken, on PostgreSQL and
//! SQLite alike: they are captured and come back with `down`, writers are
//! not stalled for the length of the snapshot, `--lock-timeout` refuses
//! with nothing changed, and a run killed with the capture installed leaves
//! nothing that the next `up` does not clean.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ripcord_testing::data::write_file;
use ripcord_testing::pg::{self, PgCluster};
use ripcord_testing::process::wait_until;
use ripcord_testing::Workspace;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

fn cluster() -> &'static PgCluster {
    pg::shared()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Pg,
    Sqlite,
}

const BOTH: [Kind; 2] = [Kind::Pg, Kind::Sqlite];

/// A workspace with a repository and a migration target `app` of `kind`.
struct Case {
    ws: Workspace,
    kind: Kind,
    pg_db: String,
    path: PathBuf,
}

enum Session {
    Pg(postgres::Client),
    Lite(rusqlite::Connection),
}

impl Session {
    /// Runs one statement; the rows it changed.
    fn exec(&mut self, sql: &str) -> Result<u64, String> {
        match self {
            Session::Pg(c) => c.execute(sql, &[]).map_err(|e| {
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            }),
            Session::Lite(c) => c
                .execute(sql, [])
                .map(|n| n as u64)
                .map_err(|e| e.to_string()),
        }
    }

    fn batch(&mut self, sql: &str) {
        match self {
            Session::Pg(c) => c
                .batch_execute(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e:?}")),
            Session::Lite(c) => c
                .execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// Rows of a query, columns joined with `|`, NULL as empty.
    fn rows(&mut self, sql: &str) -> Vec<String> {
        match self {
            Session::Pg(c) => c
                .simple_query(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
                .iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("").to_string())
                            .collect::<Vec<_>>()
                            .join("|"),
                    ),
                    _ => None,
                })
                .collect(),
            Session::Lite(c) => {
                let mut stmt = c.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let n = stmt.column_count();
                let rows: Vec<String> = stmt
                    .query_map([], |r| {
                        Ok((0..n)
                            .map(|i| {
                                Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                                    rusqlite::types::Value::Null => String::new(),
                                    rusqlite::types::Value::Integer(i) => i.to_string(),
                                    rusqlite::types::Value::Real(f) => f.to_string(),
                                    rusqlite::types::Value::Text(t) => t,
                                    rusqlite::types::Value::Blob(b) => format!("{b:?}"),
                                })
                            })
                            .collect::<rusqlite::Result<Vec<_>>>()?
                            .join("|"))
                    })
                    .and_then(|rows| rows.collect())
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows
            }
        }
    }

    fn begin(&mut self) {
        match self {
            Session::Pg(_) => self.batch("BEGIN"),
            Session::Lite(_) => self.batch("BEGIN IMMEDIATE"),
        }
    }
}

impl Case {
    fn new(kind: Kind, name: &str) -> Case {
        let mut ws = Workspace::new(bin());
        let (pg_db, path) = match kind {
            Kind::Pg => {
                let db = cluster()
                    .create_database(name)
                    .unwrap_or_else(|e| panic!("create database {name}: {e}"));
                ws.append_config(&format!(
                    "[targets.app]\nkind = \"postgres\"\nurl = \"{}\"\n",
                    cluster().url(&db)
                ));
                (db, PathBuf::new())
            }
            Kind::Sqlite => {
                let path = ws.sqlite_target_created_by_migrate("app", "app.db");
                (String::new(), path)
            }
        };
        ws.append_config("[migrations]\ntarget = \"app\"\ndir = \"migrations\"\n");
        ws.init();
        Case {
            ws,
            kind,
            pg_db,
            path,
        }
    }

    /// A connection as the application's: SQLite in WAL mode.
    fn session(&self) -> Session {
        match self.kind {
            Kind::Pg => Session::Pg(cluster().client(&self.pg_db)),
            Kind::Sqlite => Session::Lite(ripcord_testing::sqlite::open_writer(&self.path)),
        }
    }

    fn rows(&self, sql: &str) -> Vec<String> {
        self.session().rows(sql)
    }

    fn exec(&self, sql: &str) {
        self.session().batch(sql);
    }

    fn write(&self, rel: &str, text: &str) {
        write_file(&self.ws.path(rel), text.as_bytes());
    }

    /// ripcord's capture triggers and logs still in the database.
    fn leftovers(&self) -> Vec<String> {
        match self.kind {
            Kind::Pg => {
                let mut found = self
                    .rows("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'ripcord\\_capture%'");
                if self.rows("SELECT to_regclass('ripcord.capture_log') IS NOT NULL") == ["t"] {
                    found.extend(self.rows("SELECT 'log row' FROM ripcord.capture_log"));
                }
                found
            }
            Kind::Sqlite => self.rows(
                "SELECT name FROM sqlite_master WHERE name LIKE 'ripcord\\_capture%' ESCAPE '\\'",
            ),
        }
    }

    /// Whether `table` has `column`.
    fn has_column(&self, table: &str, column: &str) -> bool {
        let sql = match self.kind {
            Kind::Pg => format!(
                "SELECT count(*) FROM information_schema.columns
                 WHERE table_name = '{table}' AND column_name = '{column}'"
            ),
            Kind::Sqlite => {
                format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = '{column}'")
            }
        };
        self.rows(&sql) == ["1"]
    }
}

/// Runs `up` until it reaches `point`, then `during`, then lets it finish.
fn up_paused_at(case: &Case, point: &str, during: impl FnOnce()) {
    let flag = case.ws.path("paused");
    let spec = format!("{point}={}", flag.display());
    let mut child = case
        .ws
        .spawn(&["migrate", "up"], &[("RIPCORD_PAUSE", spec.as_str())]);
    assert!(
        wait_until(Duration::from_secs(120), || flag.exists()),
        "migrate up never reached {point}"
    );
    during();
    std::fs::remove_file(&flag).expect("let migrate up go on");
    let status = child.wait().expect("wait for migrate up");
    assert!(status.success(), "migrate up failed: {status}");
}

/// `items` with a key and `lines` without one, seeded; then a change with
/// no down script that deletes rows of both and drops a column.
fn items_plan(case: &Case) {
    case.write(
        "migrations/0001_items/up.sql",
        "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, note text);\n\
         CREATE TABLE lines (line text, n integer);\n\
         INSERT INTO items VALUES (1, 'ann', 'a'), (2, 'bob', 'b'), (3, 'tmp-old', 'c');\n\
         INSERT INTO lines VALUES ('keep', 1), ('tmp', 2), ('keep', 1);\n",
    );
    case.write(
        "migrations/0001_items/down.sql",
        "DROP TABLE lines;\nDROP TABLE items;\n",
    );
    case.write(
        "migrations/0002_cleanup/up.sql",
        "DELETE FROM items WHERE name LIKE 'tmp%';\n\
         DELETE FROM lines WHERE line LIKE 'tmp%';\n\
         ALTER TABLE items DROP COLUMN note;\n",
    );
}

#[test]
fn writes_between_the_safety_snapshot_and_the_change_come_back_after_down() {
    for kind in BOTH {
        let case = Case::new(kind, "win_bug");
        items_plan(&case);
        case.ws.ok(&["migrate", "up", "--to", "0001_items"]);
        up_paused_at(&case, "migrate-snapshot-taken", || {
            // The snapshot is taken; the change has not begun.
            case.exec(
                "INSERT INTO items VALUES (10, 'tmp-window', 'w');
                 UPDATE items SET note = 'changed' WHERE id = 1;
                 DELETE FROM items WHERE id = 2;
                 INSERT INTO lines VALUES ('tmp', 7);
                 INSERT INTO lines VALUES ('keep', 1);
                 DELETE FROM lines WHERE line = 'tmp' AND n = 2;",
            );
        });
        assert!(!case.has_column("items", "note"), "{kind:?}");
        assert_eq!(case.leftovers(), Vec::<String>::new(), "{kind:?}");

        let out = case.ws.ok(&[
            "migrate",
            "down",
            "--to",
            "0001_items",
            "--on-conflict",
            "snapshot",
        ]);
        out.assert_stdout_has("data loss: none");
        // The row inserted in the window and deleted by the change, and the
        // value updated in the window in the dropped column, are back.
        assert_eq!(
            case.rows("SELECT id, name, note FROM items ORDER BY id"),
            ["1|ann|changed", "3|tmp-old|c", "10|tmp-window|w"],
            "{kind:?}"
        );
        assert_eq!(
            case.rows("SELECT line, n FROM lines ORDER BY line, n"),
            ["keep|1", "keep|1", "keep|1", "tmp|7"],
            "{kind:?}"
        );
        // The delta went with the revert.
        let deltas = match kind {
            Kind::Pg => case.rows("SELECT count(*) FROM ripcord.safety_delta"),
            Kind::Sqlite => case.rows("SELECT count(*) FROM ripcord_safety_delta"),
        };
        assert_eq!(deltas, ["0"], "{kind:?}");
    }
}

#[test]
fn writes_between_the_commit_and_the_fingerprint_count_as_the_applications() {
    for kind in BOTH {
        let case = Case::new(kind, "win_fp");
        items_plan(&case);
        case.ws.ok(&["migrate", "up", "--to", "0001_items"]);
        up_paused_at(&case, "migrate-change-committed", || {
            // The change committed; its fingerprint is not taken yet.
            case.exec(
                "UPDATE items SET name = 'ann2' WHERE id = 1;
                 DELETE FROM items WHERE id = 2;
                 INSERT INTO items VALUES (20, 'new');
                 INSERT INTO lines VALUES ('keep', 9);
                 DELETE FROM lines WHERE n = 1;
                 INSERT INTO lines VALUES ('keep', 1);",
            );
        });
        assert_eq!(case.leftovers(), Vec::<String>::new(), "{kind:?}");
        let out = case.ws.ok(&["migrate", "down", "--to", "0001_items"]);
        out.assert_stdout_has("data loss: none");
        // The application's writes stay as it left them, and what the
        // change did is undone: had the fingerprint been taken as the
        // tables stood when it ran, those writes would pass for the
        // change's own and be undone.
        assert_eq!(
            case.rows("SELECT id, name, coalesce(note, '-') FROM items ORDER BY id"),
            ["1|ann2|a", "3|tmp-old|c", "20|new|-"],
            "{kind:?}"
        );
        assert_eq!(
            case.rows("SELECT line, n FROM lines ORDER BY line, n"),
            ["keep|1", "keep|9", "tmp|2"],
            "{kind:?}"
        );
    }
}

#[test]
fn kill_9_between_the_commit_and_the_fingerprint_leaves_the_change_applied() {
    for kind in BOTH {
        let case = Case::new(kind, "win_fpkill");
        items_plan(&case);
        case.ws.ok(&["migrate", "up", "--to", "0001_items"]);
        let out = case.ws.run_env(
            &["migrate", "up"],
            &[("RIPCORD_FAILPOINT", "migrate-change-committed")],
        );
        assert_eq!(out.signal, Some(9), "{kind:?}: {out}");
        // The change committed; its triggers log what the application does.
        assert!(!case.has_column("items", "note"), "{kind:?}");
        assert!(!case.leftovers().is_empty(), "{kind:?}");
        case.exec("UPDATE items SET name = 'ann2' WHERE id = 1");
        case.ws.ok(&["unlock"]);
        case.ws.ok(&["verify"]);
        let status = case.ws.json(&["migrate", "status"]);
        assert_eq!(status["changes"][1]["state"], "applied", "{kind:?}");
        // Without a fingerprint the revert compares two ways, and says so.
        let down = case.ws.json(&["migrate", "down", "--to", "0001_items"]);
        assert_eq!(case.leftovers(), Vec::<String>::new(), "{kind:?}");
        let tables = down["changes"][0]["tables"].as_array().unwrap().clone();
        assert!(
            tables.iter().all(|t| t["three_way"] == false),
            "{kind:?}: {down}"
        );
        assert_eq!(
            case.rows("SELECT id, name, note FROM items ORDER BY id"),
            ["1|ann|a", "2|bob|b", "3|tmp-old|c"],
            "{kind:?}"
        );
        case.ws.ok(&["migrate", "up"]);
    }
}

/// One committed write of the writer.
#[derive(Clone, Debug)]
enum Op {
    Insert(i64, i64),
    Update(i64, i64),
    Delete(i64),
    EventInsert(i64),
    EventDelete(i64),
}

/// The tables as the test expects them: accounts (id → (v, note)), events
/// as a multiset of n.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    accounts: std::collections::BTreeMap<i64, (i64, String)>,
    events: Vec<i64>,
}

impl Model {
    fn read(s: &mut Session) -> Model {
        let accounts = s
            .rows("SELECT id, v, note FROM accounts ORDER BY id")
            .iter()
            .map(|r| {
                let f: Vec<&str> = r.split('|').collect();
                (
                    f[0].parse().unwrap(),
                    (f[1].parse().unwrap(), f[2].to_string()),
                )
            })
            .collect();
        let events = s
            .rows("SELECT n FROM events ORDER BY n")
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        Model { accounts, events }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Insert(id, v) => {
                self.accounts.insert(id, (v, String::new()));
            }
            Op::Update(id, v) => {
                if let Some(row) = self.accounts.get_mut(&id) {
                    row.0 = v;
                }
            }
            Op::Delete(id) => {
                self.accounts.remove(&id);
            }
            Op::EventInsert(n) => {
                self.events.push(n);
                self.events.sort();
            }
            Op::EventDelete(n) => {
                if let Some(i) = self.events.iter().position(|e| *e == n) {
                    self.events.remove(i);
                }
            }
        }
    }
}

/// What a writer did: each commit, whether it came before the change (the
/// change's column was still there inside its transaction), and its
/// longest transaction.
struct Written {
    commits: Vec<(Op, bool)>,
    longest: Duration,
}

/// Writes to accounts and events until `stop`, one statement per
/// transaction, and logs each commit.
fn writer(mut s: Session, kind: Kind, seed: u64, stop: &std::sync::atomic::AtomicBool) -> Written {
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |m: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % m
    };
    let (marker, one_event) = match kind {
        Kind::Pg => (
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'accounts'::regclass \
             AND attname = 'note' AND NOT attisdropped",
            "ctid = (SELECT ctid FROM events WHERE n = {n} LIMIT 1)",
        ),
        Kind::Sqlite => (
            "SELECT count(*) FROM pragma_table_info('accounts') WHERE name = 'note'",
            "rowid = (SELECT rowid FROM events WHERE n = {n} LIMIT 1)",
        ),
    };
    let mut out = Written {
        commits: Vec::new(),
        longest: Duration::ZERO,
    };
    let mut fresh = 1_000_000 + seed as i64 * 10_000;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let started = Instant::now();
        s.begin();
        let (sql, op) = match next(5) {
            0 => {
                fresh += 1;
                let v = next(1000) as i64;
                (
                    format!("INSERT INTO accounts (id, v) VALUES ({fresh}, {v})"),
                    Op::Insert(fresh, v),
                )
            }
            1 | 2 => {
                let id = next(300) as i64 + 1;
                let v = next(1000) as i64;
                (
                    format!("UPDATE accounts SET v = {v} WHERE id = {id}"),
                    Op::Update(id, v),
                )
            }
            3 => {
                let id = next(300) as i64 + 1;
                (
                    format!("DELETE FROM accounts WHERE id = {id}"),
                    Op::Delete(id),
                )
            }
            _ => {
                let n = next(40) as i64;
                if next(2) == 0 {
                    (
                        format!("INSERT INTO events (n) VALUES ({n})"),
                        Op::EventInsert(n),
                    )
                } else {
                    (
                        format!(
                            "DELETE FROM events WHERE {}",
                            one_event.replace("{n}", &n.to_string())
                        ),
                        Op::EventDelete(n),
                    )
                }
            }
        };
        let changed = s.exec(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let before = s.rows(marker) == ["1"];
        s.batch("COMMIT");
        out.longest = out.longest.max(started.elapsed());
        if changed > 0 {
            out.commits.push((op, before));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}

const CONTRACT: &str = "DELETE FROM accounts WHERE v % 5 = 0;\n\
                        DELETE FROM events WHERE n % 3 = 0;\n\
                        ALTER TABLE accounts DROP COLUMN note;\n";

fn accounts_plan(case: &Case, rows: u64, contract: &str) {
    case.write(
        "migrations/0001_accounts/up.sql",
        &format!(
            "CREATE TABLE accounts (id integer PRIMARY KEY, v integer NOT NULL, note text);\n\
             CREATE TABLE events (n integer NOT NULL);\n\
             WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {rows})\n\
             INSERT INTO accounts SELECT i, i * 7 % 1000, 'n' || i FROM s;\n\
             INSERT INTO events SELECT i % 40 FROM (SELECT 1 AS i UNION ALL SELECT 2 UNION ALL \
             SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5) t;\n"
        ),
    );
    case.write(
        "migrations/0001_accounts/down.sql",
        "DROP TABLE events;\nDROP TABLE accounts;\n",
    );
    case.write("migrations/0002_contract/up.sql", contract);
}

/// Runs `migrate up` while a writer writes; returns what it wrote and the
/// model of the tables when the change began.
fn up_under_writer(case: &Case, seed: u64) -> (Written, Model, Duration) {
    let mut before = Model::read(&mut case.session());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let session = case.session();
    let kind = case.kind;
    let (written, took) = std::thread::scope(|scope| {
        let w = scope.spawn(|| writer(session, kind, seed, &stop));
        std::thread::sleep(Duration::from_millis(30));
        let started = Instant::now();
        let out = case.ws.run(&["migrate", "up"]);
        let took = started.elapsed();
        std::thread::sleep(Duration::from_millis(30));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        out.assert_ok();
        (w.join().expect("writer"), took)
    });
    for (op, was_before) in &written.commits {
        if *was_before {
            before.apply(op);
        }
    }
    (written, before, took)
}

#[test]
fn concurrent_writer_during_up_everything_committed_before_the_change_comes_back() {
    let mut trials = 0;
    let mut longest = Duration::ZERO;
    for kind in BOTH {
        let case = Case::new(kind, "win_writer");
        accounts_plan(&case, 300, CONTRACT);
        case.ws.ok(&["migrate", "up", "--to", "0001_accounts"]);
        for trial in 0..10 {
            let (written, expected, _) = up_under_writer(&case, trial);
            let (during, after) =
                written.commits.iter().fold(
                    (0, 0),
                    |(b, a), (_, x)| {
                        if *x {
                            (b + 1, a)
                        } else {
                            (b, a + 1)
                        }
                    },
                );
            assert!(
                during > 0,
                "{kind:?} trial {trial}: no write before the change"
            );
            assert!(!case.has_column("accounts", "note"));
            case.ws.ok(&[
                "migrate",
                "down",
                "--to",
                "0001_accounts",
                "--on-conflict",
                "snapshot",
            ]);
            let got = Model::read(&mut case.session());
            assert_eq!(
                got, expected,
                "{kind:?} trial {trial}: {during} writes before the change, {after} after"
            );
            assert_eq!(case.leftovers(), Vec::<String>::new());
            longest = longest.max(written.longest);
            trials += 1;
        }
    }
    assert!(trials >= 20);
    eprintln!("writer's longest transaction over {trials} trials: {longest:?}");
    assert!(
        longest < Duration::from_secs(2),
        "a writer stalled for {longest:?}"
    );
}

#[test]
fn a_writer_is_not_stalled_for_the_length_of_the_safety_snapshot() {
    let rows: u64 = std::env::var("RIPCORD_STALL_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50_000);
    for kind in BOTH {
        let case = Case::new(kind, "win_stall");
        // A change whose own work does not grow with the table: what the
        // writer waits for is the capture's part.
        accounts_plan(
            &case,
            rows,
            "DELETE FROM events WHERE n % 3 = 0;\nALTER TABLE accounts DROP COLUMN note;\n",
        );
        case.ws.ok(&["migrate", "up", "--to", "0001_accounts"]);
        let (written, expected, took) = up_under_writer(&case, 99);
        eprintln!(
            "{kind:?}, {rows} rows: migrate up took {took:?}; the writer's longest transaction \
             {:?} over {} commits",
            written.longest,
            written.commits.len()
        );
        assert!(
            written.longest < Duration::from_secs(1),
            "{kind:?}: a writer stalled for {:?} (migrate up took {took:?})",
            written.longest
        );
        case.ws.ok(&[
            "migrate",
            "down",
            "--to",
            "0001_accounts",
            "--on-conflict",
            "snapshot",
        ]);
        assert_eq!(Model::read(&mut case.session()), expected, "{kind:?}");
    }
}

#[test]
fn lock_timeout_refuses_with_nothing_changed_and_no_trigger_left() {
    for kind in BOTH {
        let case = Case::new(kind, "win_lock");
        items_plan(&case);
        case.ws.ok(&["migrate", "up", "--to", "0001_items"]);
        // The lock held before `up` starts: the capture cannot be put in
        // place. (On SQLite the migration lock's own record of its holder
        // already needs the write lock and fails first, with exit code 1.)
        if kind == Kind::Pg {
            let mut holder = case.session();
            holder.batch("BEGIN; LOCK TABLE items IN SHARE MODE");
            let started = Instant::now();
            let out = case.ws.run(&["migrate", "up", "--lock-timeout", "300ms"]);
            out.assert_code(3)
                .assert_stderr_has("lock")
                .assert_stderr_has("items");
            assert!(started.elapsed() < Duration::from_secs(30));
            holder.batch("ROLLBACK");
            drop(holder);
            assert!(case.has_column("items", "note"), "{kind:?}");
            assert_eq!(
                case.rows("SELECT id FROM items ORDER BY id"),
                ["1", "2", "3"],
                "{kind:?}"
            );
            let status = case.ws.json(&["migrate", "status"]);
            assert_eq!(status["changes"][1]["state"], "pending", "{kind:?}");
            assert_eq!(case.leftovers(), Vec::<String>::new(), "{kind:?}");
        }

        // The lock taken once the capture is in place: the change refuses
        // to start, nothing changes, and the capture goes once it is free.
        let mut holder = case.session();
        up_paused_at_expecting(&case, "migrate-snapshot-taken", 3, || match kind {
            Kind::Pg => holder.batch("BEGIN; LOCK TABLE items IN SHARE MODE"),
            Kind::Sqlite => holder.batch("BEGIN IMMEDIATE; INSERT INTO lines VALUES ('held', 0)"),
        });
        holder.batch("ROLLBACK");
        drop(holder);
        assert!(case.has_column("items", "note"), "{kind:?}");
        assert_eq!(
            case.rows("SELECT id FROM items ORDER BY id"),
            ["1", "2", "3"],
            "{kind:?}"
        );
        let status = case.ws.json(&["migrate", "status"]);
        assert_eq!(status["changes"][1]["state"], "pending", "{kind:?}");
        // A bad value is a usage error.
        case.ws
            .run(&["migrate", "up", "--lock-timeout", "soon"])
            .assert_code(2);
        case.ws.ok(&["migrate", "up"]);
        assert!(!case.has_column("items", "note"), "{kind:?}");
        assert_eq!(case.leftovers(), Vec::<String>::new(), "{kind:?}");
    }
}

/// Like [`up_paused_at`], with `--lock-timeout 300ms`, expecting `code`.
fn up_paused_at_expecting(case: &Case, point: &str, code: i32, during: impl FnOnce()) {
    let flag = case.ws.path("paused");
    let spec = format!("{point}={}", flag.display());
    let mut child = case.ws.spawn(
        &["migrate", "up", "--lock-timeout", "300ms"],
        &[("RIPCORD_PAUSE", spec.as_str())],
    );
    assert!(
        wait_until(Duration::from_secs(120), || flag.exists()),
        "migrate up never reached {point}"
    );
    during();
    std::fs::remove_file(&flag).expect("let migrate up go on");
    let status = child.wait().expect("wait for migrate up");
    assert_eq!(status.code(), Some(code), "migrate up: {status}");
}

#[test]
fn kill_9_with_the_capture_installed_then_up_again_leaves_nothing_behind() {
    for kind in BOTH {
        let case = Case::new(kind, "win_kill");
        items_plan(&case);
        case.ws.ok(&["migrate", "up", "--to", "0001_items"]);
        let out = case.ws.run_env(
            &["migrate", "up"],
            &[("RIPCORD_FAILPOINT", "migrate-snapshot-taken")],
        );
        assert_eq!(out.signal, Some(9), "{kind:?}: {out}");
        assert!(
            !case.leftovers().is_empty(),
            "{kind:?}: the capture was installed"
        );
        // The application goes on writing; the triggers log it.
        case.exec("UPDATE items SET note = 'after kill' WHERE id = 2");
        assert!(case.has_column("items", "note"));
        case.ws.ok(&["unlock"]);
        case.ws.ok(&["migrate", "up"]);
        assert_eq!(case.leftovers(), Vec::<String>::new(), "{kind:?}");
        case.ws.ok(&[
            "migrate",
            "down",
            "--to",
            "0001_items",
            "--on-conflict",
            "snapshot",
        ]);
        assert_eq!(
            case.rows("SELECT id, name, note FROM items ORDER BY id"),
            ["1|ann|a", "2|bob|after kill", "3|tmp-old|c"],
            "{kind:?}"
        );
        case.ws.ok(&["verify"]);
    }
}
