//! Writes made while migrations run, on PostgreSQL and SQLite alike: the
//! writes made while a change's safety snapshot is taken are captured and
//! come back with `down`; a writer that inserts, updates and deletes
//! through `up` and `down` finds every commit where the `on_conflict`
//! policy puts it, and is not stalled for long; `--lock-timeout` refuses
//! with nothing changed; and `up` or `down` killed with SIGKILL (at
//! failpoints, at random moments, with the writer running) leaves the
//! repository verifiable, the change applied or not with no commit lost,
//! and nothing that the next `up` or `down` does not finish.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ripcord_testing::data::{write_file, Rng};
use ripcord_testing::pg::{self, PgCluster};
use ripcord_testing::process::{kill9_child, wait_until};
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

    fn kind(&self) -> Kind {
        match self {
            Session::Pg(_) => Kind::Pg,
            Session::Lite(_) => Kind::Sqlite,
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
fn kill_9_between_the_commit_and_the_fingerprint_is_made_good_by_the_next_run() {
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
        case.exec(
            "UPDATE items SET name = 'ann2' WHERE id = 1;
             DELETE FROM items WHERE id = 2;
             INSERT INTO items VALUES (20, 'new');",
        );
        case.ws.ok(&["unlock"]);
        case.ws.ok(&["verify"]);
        let status = case.ws.json(&["migrate", "status"]);
        assert_eq!(status["changes"][1]["state"], "applied", "{kind:?}");
        // The next run takes the fingerprint from what the triggers logged,
        // so the revert still tells the application's writes from the
        // change's.
        let down = case.ws.json(&["migrate", "down", "--to", "0001_items"]);
        assert_eq!(case.leftovers(), Vec::<String>::new(), "{kind:?}");
        let tables = down["changes"][0]["tables"].as_array().unwrap().clone();
        assert!(
            tables.iter().all(|t| t["three_way"] == true),
            "{kind:?}: {down}"
        );
        assert_eq!(
            case.rows("SELECT id, name, coalesce(note, '-') FROM items ORDER BY id"),
            ["1|ann2|a", "3|tmp-old|c", "20|new|-"],
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

/// The tables as the test expects them: accounts (id → (v, note), an
/// empty note for NULL or a dropped column), events as a multiset of n.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    accounts: BTreeMap<i64, (i64, String)>,
    events: Vec<i64>,
}

impl Model {
    fn read(s: &mut Session) -> Model {
        let note = if s.rows(note_present(s.kind())) == ["1"] {
            "note"
        } else {
            "''"
        };
        let accounts = s
            .rows(&format!("SELECT id, v, {note} FROM accounts ORDER BY id"))
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

    /// What [`CONTRACT`] leaves of this state.
    fn contracted(&self) -> Model {
        Model {
            accounts: self
                .accounts
                .iter()
                .filter(|(_, (v, _))| v % 5 != 0)
                .map(|(id, (v, _))| (*id, (*v, String::new())))
                .collect(),
            events: self.events.iter().copied().filter(|n| n % 3 != 0).collect(),
        }
    }

    fn count(&self, n: i64) -> i64 {
        self.events.iter().filter(|e| **e == n).count() as i64
    }

    /// What `down --on-conflict policy` makes of the live state `live`, for
    /// a change that found `s` and left `p`, as docs/migrations.md states it.
    fn reverted(s: &Model, p: &Model, live: &Model, policy: Policy) -> Model {
        match policy {
            Policy::Snapshot | Policy::Review => s.clone(),
            Policy::KeepNew => {
                // Rows the application inserted or updated keep its values,
                // with the snapshot's note (or none for a new row); rows it
                // deleted stay deleted; rows the change deleted come back.
                let mut accounts: BTreeMap<i64, (i64, String)> = live
                    .accounts
                    .iter()
                    .map(|(id, (v, _))| {
                        let note = s.accounts.get(id).map(|r| r.1.clone()).unwrap_or_default();
                        (*id, (*v, note))
                    })
                    .collect();
                for (id, row) in &s.accounts {
                    if !p.accounts.contains_key(id) && !live.accounts.contains_key(id) {
                        accounts.insert(*id, row.clone());
                    }
                }
                // Without a key: the snapshot's copies, plus those the
                // application added, minus those it removed.
                let mut events = Vec::new();
                let mut ns: Vec<i64> = s.events.iter().chain(&live.events).copied().collect();
                ns.sort();
                ns.dedup();
                for n in ns {
                    let copies = s.count(n) + live.count(n) - p.count(n);
                    assert!(copies >= 0, "event {n}: {copies} copies");
                    events.extend(std::iter::repeat_n(n, copies as usize));
                }
                Model { accounts, events }
            }
        }
    }

    /// What `review` sets aside: each row the application inserted,
    /// updated or deleted after the change, as `table|reason|values`.
    fn review(p: &Model, live: &Model) -> Vec<String> {
        let mut out = Vec::new();
        for (id, (v, _)) in &live.accounts {
            match p.accounts.get(id) {
                None => out.push(format!("accounts|inserted|{id}|{v}")),
                Some((pv, _)) if pv != v => out.push(format!("accounts|updated|{id}|{v}")),
                Some(_) => {}
            }
        }
        for (id, (v, _)) in &p.accounts {
            if !live.accounts.contains_key(id) {
                out.push(format!("accounts|deleted|{id}|{v}"));
            }
        }
        let mut ns: Vec<i64> = p.events.iter().chain(&live.events).copied().collect();
        ns.sort();
        ns.dedup();
        for n in ns {
            let (was, is) = (p.count(n), live.count(n));
            for _ in is..was {
                out.push(format!("events|deleted|{n}"));
            }
            for _ in was..is {
                out.push(format!("events|inserted|{n}"));
            }
        }
        out.sort();
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Policy {
    KeepNew,
    Snapshot,
    Review,
}

const POLICIES: [Policy; 3] = [Policy::KeepNew, Policy::Snapshot, Policy::Review];

impl Policy {
    fn arg(self) -> &'static str {
        match self {
            Policy::KeepNew => "keep-new",
            Policy::Snapshot => "snapshot",
            Policy::Review => "review",
        }
    }
}

/// What the test knows of the tables, followed through the writer's
/// commits: `s` as the change found them and `p` as it left them while it
/// is applied, `live` as they are; and what `review` set aside so far.
#[derive(Clone, Debug)]
struct Expected {
    s: Model,
    p: Option<Model>,
    live: Model,
    review: Vec<String>,
}

impl Expected {
    fn new(live: Model) -> Expected {
        Expected {
            s: live.clone(),
            p: None,
            live,
            review: Vec::new(),
        }
    }

    /// The change committed (`applied`) or was reverted under `policy`
    /// since the last call, when it was not so already.
    fn settle(&mut self, applied: bool, policy: Policy) {
        match (&self.p, applied) {
            (None, true) => {
                self.s = self.live.clone();
                let p = self.s.contracted();
                self.live = p.clone();
                self.p = Some(p);
            }
            (Some(p), false) => {
                if policy == Policy::Review {
                    self.review.extend(Model::review(p, &self.live));
                    self.review.sort();
                }
                self.live = Model::reverted(&self.s, p, &self.live, policy);
                self.p = None;
            }
            _ => {}
        }
    }

    /// Replays the writer's commits; each says whether the change had
    /// committed when it did, so the change and its revert fall between
    /// them.
    fn replay(&mut self, commits: &[Commit], policy: Policy) {
        for c in commits {
            self.settle(!c.before, policy);
            self.live.apply(&c.op);
        }
    }
}

/// One committed write: whether the change's column was there (the change
/// had not committed, or its revert had), and when it committed.
#[derive(Clone, Debug)]
struct Commit {
    op: Op,
    before: bool,
    at: Instant,
}

/// What a writer did: each commit, and when each of its transactions
/// began and how long it took.
struct Written {
    commits: Vec<Commit>,
    waits: Vec<(Instant, Duration)>,
    longest: Duration,
}

impl Written {
    /// The longest transaction that overlapped `from..to`.
    fn longest_within(&self, from: Instant, to: Instant) -> Duration {
        self.waits
            .iter()
            .filter(|(began, took)| *began < to && *began + *took > from)
            .map(|(_, took)| *took)
            .max()
            .unwrap_or_default()
    }

    fn commits_within(&self, from: Instant, to: Instant) -> usize {
        self.commits
            .iter()
            .filter(|c| c.at > from && c.at < to)
            .count()
    }
}

/// Whether `accounts` has the column the change drops, as `1` or `0`.
fn note_present(kind: Kind) -> &'static str {
    match kind {
        Kind::Pg => {
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'accounts'::regclass \
             AND attname = 'note' AND NOT attisdropped"
        }
        Kind::Sqlite => "SELECT count(*) FROM pragma_table_info('accounts') WHERE name = 'note'",
    }
}

/// Writes to accounts and events until `stop`, one statement per
/// transaction, and logs each commit.
fn writer(mut s: Session, seed: u64, stop: &AtomicBool, committed: &AtomicUsize) -> Written {
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |m: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % m
    };
    let marker = note_present(s.kind());
    let one_event = match s.kind() {
        Kind::Pg => "ctid = (SELECT ctid FROM events WHERE n = {n} LIMIT 1)",
        Kind::Sqlite => "rowid = (SELECT rowid FROM events WHERE n = {n} LIMIT 1)",
    };
    let mut out = Written {
        commits: Vec::new(),
        waits: Vec::new(),
        longest: Duration::ZERO,
    };
    // Above any seeded id (the stall test seeds millions of rows).
    let mut fresh = 1_000_000_000 + seed as i64 * 10_000;
    while !stop.load(Ordering::SeqCst) {
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
        let took = started.elapsed();
        out.longest = out.longest.max(took);
        out.waits.push((started, took));
        if changed > 0 {
            out.commits.push(Commit {
                op,
                before,
                at: Instant::now(),
            });
            committed.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}

/// A [`writer`] on a thread of its own, on a connection of its own.
struct Writing {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Written>,
}

impl Writing {
    fn start(case: &Case, seed: u64) -> Writing {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicUsize::new(0));
        let session = case.session();
        let (flag, count) = (stop.clone(), commits.clone());
        let thread = std::thread::spawn(move || writer(session, seed, &flag, &count));
        let writing = Writing {
            stop,
            commits,
            thread,
        };
        writing.wait_for_commits(3);
        writing
    }

    /// Waits until the writer has committed `n` more writes.
    fn wait_for_commits(&self, n: usize) {
        let from = self.commits.load(Ordering::SeqCst);
        assert!(
            wait_until(Duration::from_secs(60), || {
                self.thread.is_finished() || self.commits.load(Ordering::SeqCst) >= from + n
            }),
            "the writer did not commit"
        );
    }

    /// Stops the writer once it has committed a few more writes.
    fn stop(self) -> Written {
        self.wait_for_commits(3);
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the writer failed")
    }
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
    let writing = Writing::start(case, seed);
    let started = Instant::now();
    let out = case.ws.run(&["migrate", "up"]);
    let took = started.elapsed();
    let written = writing.stop();
    out.assert_ok();
    for c in &written.commits {
        if c.before {
            before.apply(&c.op);
        }
    }
    (written, before, took)
}

impl Case {
    /// Whether `0002_contract` is applied, as `migrate status` says; it is
    /// never anything but applied or pending.
    fn contract_applied(&self) -> bool {
        let status = self.ws.json(&["migrate", "status"]);
        match status["changes"][1]["state"].as_str() {
            Some("applied") => true,
            Some("pending") => false,
            other => panic!("{:?}: 0002_contract is {other:?}: {status}", self.kind),
        }
    }

    /// Whether `0002_contract` has its post-change fingerprint.
    fn fingerprinted(&self) -> bool {
        let table = match self.kind {
            Kind::Pg => "ripcord.fingerprint_tables",
            Kind::Sqlite => "ripcord_fingerprint_tables",
        };
        let sql = format!("SELECT count(*) FROM {table} WHERE change = '0002_contract'");
        self.rows(&sql) != ["0"]
    }

    /// The rows `review` set aside, as [`Model::review`] writes them.
    fn review_rows(&self) -> Vec<String> {
        let (exists, table) = match self.kind {
            Kind::Pg => (
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'ripcord' AND tablename = 'review'",
                "ripcord.review",
            ),
            Kind::Sqlite => (
                "SELECT count(*) FROM sqlite_master WHERE name = 'ripcord_review'",
                "ripcord_review",
            ),
        };
        if self.rows(exists) != ["1"] {
            return Vec::new();
        }
        let number = |v: &serde_json::Value, k: &str| -> i64 {
            match &v[k] {
                serde_json::Value::Number(n) => n.as_i64().unwrap(),
                serde_json::Value::String(s) => s.parse().unwrap(),
                other => panic!("{k} in {v}: {other}"),
            }
        };
        let mut out: Vec<String> = self
            .rows(&format!("SELECT table_name, reason, row_data FROM {table}"))
            .iter()
            .map(|r| {
                let mut f = r.splitn(3, '|');
                let (table, reason, data) =
                    (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
                let table = table.rsplit('.').next().unwrap().trim_matches('"');
                let what = reason.split(' ').next().unwrap();
                let data: serde_json::Value =
                    serde_json::from_str(data).unwrap_or_else(|e| panic!("{data}: {e}"));
                match table {
                    "accounts" => format!(
                        "accounts|{what}|{}|{}",
                        number(&data, "id"),
                        number(&data, "v")
                    ),
                    _ => format!("{table}|{what}|{}", number(&data, "n")),
                }
            })
            .collect();
        out.sort();
        out
    }

    /// The live tables, `migrate status`, the schema, the review table and
    /// the capture are what `expected` says.
    fn assert_as_expected(&self, expected: &Expected, what: &str) {
        let kind = self.kind;
        let applied = expected.p.is_some();
        assert_eq!(self.contract_applied(), applied, "{kind:?} {what}");
        assert_eq!(
            self.has_column("accounts", "note"),
            !applied,
            "{kind:?} {what}"
        );
        let got = Model::read(&mut self.session());
        if got != expected.live {
            panic!(
                "{kind:?} {what}: the tables are not what the commits and the policy say\n{}",
                model_diff(&got, &expected.live)
            );
        }
        assert_eq!(self.review_rows(), expected.review, "{kind:?} {what}");
    }
}

/// What differs between two models, readably.
fn model_diff(got: &Model, want: &Model) -> String {
    let mut out = Vec::new();
    let ids: std::collections::BTreeSet<&i64> =
        got.accounts.keys().chain(want.accounts.keys()).collect();
    for id in ids {
        let (g, w) = (got.accounts.get(id), want.accounts.get(id));
        if g != w {
            out.push(format!("accounts {id}: got {g:?}, expected {w:?}"));
        }
    }
    if got.events != want.events {
        out.push(format!(
            "events: got {:?}, expected {:?}",
            got.events, want.events
        ));
    }
    out.join("\n")
}

/// The writer's commits as runs of the same `before`: `[true, false,
/// true]` when the change committed and was then reverted between them.
fn phases(commits: &[Commit]) -> Vec<bool> {
    let mut out: Vec<bool> = commits.iter().map(|c| c.before).collect();
    out.dedup();
    out
}

/// What a writer saw of one `migrate down`.
struct DownSeen {
    longest: Duration,
    commits: usize,
    took: Duration,
    up_took: Option<Duration>,
    longest_up: Duration,
}

/// With a writer running throughout: `migrate up` (when the change is not
/// applied), then `migrate down --on-conflict policy`; then every commit of
/// the writer is where the policy puts it.
fn up_and_down_under_writer(
    case: &Case,
    expected: &mut Expected,
    seed: u64,
    policy: Policy,
    what: &str,
) -> DownSeen {
    let run_up = expected.p.is_none();
    let writing = Writing::start(case, seed);
    let started = Instant::now();
    let up = run_up.then(|| case.ws.run(&["migrate", "up"]));
    let up_took = run_up.then(|| started.elapsed());
    let up_ended = Instant::now();
    // The application writes after the change.
    writing.wait_for_commits(3);
    let from = Instant::now();
    let down = case.ws.run(&[
        "migrate",
        "down",
        "--to",
        "0001_accounts",
        "--on-conflict",
        policy.arg(),
    ]);
    let to = Instant::now();
    let written = writing.stop();
    if let Some(up) = up {
        up.assert_ok();
    }
    down.assert_ok();
    if policy != Policy::Snapshot {
        down.assert_stdout_has("data loss: none");
    }
    let want: &[bool] = if run_up {
        &[true, false, true]
    } else {
        &[false, true]
    };
    assert_eq!(
        phases(&written.commits),
        want,
        "{:?} {what}: writes before the change, after it, after its revert",
        case.kind
    );
    expected.replay(&written.commits, policy);
    expected.settle(false, policy);
    case.assert_as_expected(expected, what);
    assert_eq!(
        case.leftovers(),
        Vec::<String>::new(),
        "{:?} {what}",
        case.kind
    );
    DownSeen {
        longest: written.longest_within(from, to),
        commits: written.commits_within(from, to),
        took: to - from,
        up_took,
        longest_up: written.longest_within(started, up_ended),
    }
}

#[test]
fn concurrent_writer_during_up_and_down_every_commit_is_where_the_policy_says() {
    let mut trials = 0;
    for kind in BOTH {
        let (mut longest_up, mut longest_down, mut during_down) =
            (Duration::ZERO, Duration::ZERO, 0);
        let case = Case::new(kind, "win_down");
        accounts_plan(&case, 300, CONTRACT);
        case.ws.ok(&["migrate", "up", "--to", "0001_accounts"]);
        let mut expected = Expected::new(Model::read(&mut case.session()));
        for trial in 0..12 {
            let policy = POLICIES[trial % POLICIES.len()];
            let what = format!("trial {trial}, {}", policy.arg());
            let seen = up_and_down_under_writer(&case, &mut expected, trial as u64, policy, &what);
            assert!(
                seen.commits > 0,
                "{kind:?} {what}: no write committed during down ({:?})",
                seen.took
            );
            longest_down = longest_down.max(seen.longest);
            longest_up = longest_up.max(seen.longest_up);
            during_down += seen.commits;
            trials += 1;
        }
        eprintln!(
            "{kind:?}: the writer's longest transaction over 12 trials: during `migrate up` \
             {longest_up:?}, during `migrate down` {longest_down:?} ({during_down} commits \
             during down)"
        );
        assert!(
            longest_up < Duration::from_secs(2),
            "{kind:?}: a writer stalled for {longest_up:?} during up"
        );
        // The revert of these small tables holds writers for a few hundred
        // milliseconds (debug build); the bound leaves room for a busy
        // machine.
        assert!(
            longest_down < Duration::from_secs(3),
            "{kind:?}: a writer stalled for {longest_down:?} during down"
        );
    }
    assert!(trials >= 20);
}

/// Where a run is killed with SIGKILL: at a failpoint, or after a delay.
#[derive(Clone, Copy, Debug)]
enum Kill {
    At(&'static str),
    After(Duration),
}

/// Runs ripcord with `args` and kills it as `kill` says; whether it was
/// killed (a run that ends before a delayed kill must have succeeded).
fn run_killed(case: &Case, args: &[&str], kill: Kill) -> bool {
    match kill {
        Kill::At(point) => {
            let out = case.ws.run_env(args, &[("RIPCORD_FAILPOINT", point)]);
            assert_eq!(
                out.signal,
                Some(9),
                "{:?}: {args:?} never reached {point}\n{out}",
                case.kind
            );
            true
        }
        Kill::After(delay) => {
            let mut child = case.ws.spawn(args, &[]);
            std::thread::sleep(delay);
            let (status, killed) = kill9_child(&mut child);
            assert!(
                killed || status.success(),
                "{:?}: {args:?}: {status}",
                case.kind
            );
            killed
        }
    }
}

/// With a writer running throughout, `migrate up` (or, once it is
/// applied, `migrate down`) killed as `kill` says, while the application
/// goes on writing; then the repository verifies, the change is applied or
/// not and the tables are what the commits say either way, and a
/// following up and down complete with every commit where it belongs.
fn killed_under_writer(
    case: &Case,
    expected: &mut Expected,
    seed: u64,
    down: bool,
    kill: Kill,
    policy: Policy,
) {
    let what = format!(
        "{kill:?} during {} ({})",
        if down { "down" } else { "up" },
        policy.arg()
    );
    let writing = Writing::start(case, seed);
    if down {
        case.ws.ok(&["migrate", "up"]);
        writing.wait_for_commits(3);
    }
    let args: &[&str] = if down {
        &[
            "migrate",
            "down",
            "--to",
            "0001_accounts",
            "--on-conflict",
            policy.arg(),
        ]
    } else {
        &["migrate", "up"]
    };
    let killed = run_killed(case, args, kill);
    // The application goes on writing after the kill.
    writing.wait_for_commits(3);
    let written = writing.stop();
    expected.replay(&written.commits, policy);
    case.ws.ok(&["unlock"]);
    case.ws.ok(&["verify"]);
    let applied = case.contract_applied();
    expected.settle(applied, policy);
    case.assert_as_expected(
        expected,
        &format!("{what} (killed: {killed}), applied: {applied}"),
    );
    // Killed after the commit and before its fingerprint, the change has
    // none: its rollback compares two ways, which only `snapshot` makes
    // the same as with one (docs/migrations.md, "Without a fingerprint").
    let fingerprinted = applied && case.fingerprinted();
    let policy = if applied && !fingerprinted {
        Policy::Snapshot
    } else {
        policy
    };
    let seen =
        up_and_down_under_writer(case, expected, seed + 500, policy, &format!("after {what}"));
    eprintln!(
        "{:?} {what}: killed {killed}, then applied {applied} (fingerprint: {fingerprinted}); \
         the next down took {:?}",
        case.kind, seen.took
    );
}

/// Kill points, and `random` moments within the run (the same for every
/// run of the test).
fn kills(case: &Case, points: &[&'static str], random: u32, down: bool) -> Vec<Kill> {
    // How long a run takes here, to choose moments within it (and a little
    // after: a run that ends first must have succeeded).
    let mut expected = Expected::new(Model::read(&mut case.session()));
    let seen = up_and_down_under_writer(case, &mut expected, 1, Policy::KeepNew, "a first run");
    let took = if down {
        seen.took
    } else {
        seen.up_took.unwrap()
    };
    let range = took.as_millis() as u64 * 6 / 5;
    let mut rng = Rng::new(7 + down as u64);
    let mut out: Vec<Kill> = points.iter().map(|p| Kill::At(p)).collect();
    out.extend((0..random).map(|_| Kill::After(Duration::from_millis(rng.below(range.max(1))))));
    out
}

fn kill_trials(down: bool, name: &str) {
    for kind in BOTH {
        let case = Case::new(kind, name);
        accounts_plan(&case, 300, CONTRACT);
        case.ws.ok(&["migrate", "up", "--to", "0001_accounts"]);
        let mut points = if down {
            vec!["migrate-revert-starting", "migrate-revert-ran"]
        } else {
            vec![
                "migrate-capture-installed",
                "pack-written",
                "snapshot-written",
                "migrate-snapshot-taken",
                "migrate-change-ran",
                "migrate-change-committed",
                "migrate-fingerprint-taken",
            ]
        };
        if kind == Kind::Pg && !down {
            points.push("pg-part-copied");
        }
        let plan = kills(&case, &points, if down { 4 } else { 3 }, down);
        let mut expected = Expected::new(Model::read(&mut case.session()));
        for (i, kill) in plan.into_iter().enumerate() {
            let policy = POLICIES[i % POLICIES.len()];
            killed_under_writer(
                &case,
                &mut expected,
                10 + i as u64 * 1000,
                down,
                kill,
                policy,
            );
        }
    }
}

#[test]
fn kill_9_during_up_with_a_writer_loses_no_committed_write() {
    kill_trials(false, "win_kill_up");
}

#[test]
fn kill_9_during_down_with_a_writer_loses_no_committed_write() {
    kill_trials(true, "win_kill_down");
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
        // writer waits for is the capture's part. (SQLite's DROP COLUMN
        // rewrites the table, so there the change destroys one value and
        // renames the column, which the writer goes by.)
        let contract = match kind {
            Kind::Pg => "DELETE FROM events WHERE n % 3 = 0;\nALTER TABLE accounts DROP COLUMN note;\n",
            Kind::Sqlite => {
                "DELETE FROM events WHERE n % 3 = 0;\nUPDATE accounts SET note = NULL WHERE id = 1;\n\
                 ALTER TABLE accounts RENAME COLUMN note TO note_gone;\n"
            }
        };
        accounts_plan(&case, rows, contract);
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
        // place. (On SQLite the migration lock's record of its holder, a
        // label, needed the write lock too and failed with exit code 1.)
        let mut holder = case.session();
        match kind {
            Kind::Pg => holder.batch("BEGIN; LOCK TABLE items IN SHARE MODE"),
            Kind::Sqlite => holder.batch("BEGIN IMMEDIATE; INSERT INTO lines VALUES ('held', 0)"),
        }
        let started = Instant::now();
        let out = case.ws.run(&["migrate", "up", "--lock-timeout", "300ms"]);
        out.assert_code(3)
            .assert_stderr_has("lock")
            .assert_stderr_has(match kind {
                Kind::Pg => "items",
                Kind::Sqlite => "SQLite database",
            });
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

/// Runs `migrate down --to 0001_accounts --on-conflict keep-new` until it
/// reaches `point`, then `during`, then lets it finish; its exit status.
fn down_paused_at(case: &Case, point: &str, during: impl FnOnce()) -> std::process::ExitStatus {
    let flag = case.ws.path("paused");
    let spec = format!("{point}={}", flag.display());
    let mut child = case.ws.spawn(
        &[
            "migrate",
            "down",
            "--to",
            "0001_accounts",
            "--on-conflict",
            "keep-new",
        ],
        &[("RIPCORD_PAUSE", spec.as_str())],
    );
    assert!(
        wait_until(Duration::from_secs(120), || flag.exists()),
        "migrate down never reached {point}"
    );
    during();
    std::fs::remove_file(&flag).expect("let migrate down go on");
    child.wait().expect("wait for migrate down")
}

#[test]
fn sqlite_revert_waits_for_a_writer_instead_of_failing_with_database_is_locked() {
    let case = Case::new(Kind::Sqlite, "win_revert_busy");
    accounts_plan(&case, 300, CONTRACT);
    case.ws.ok(&["migrate", "up", "--to", "0001_accounts"]);
    let mut expected = Expected::new(Model::read(&mut case.session()));
    case.ws.ok(&["migrate", "up"]);
    expected.settle(true, Policy::KeepNew);
    // The application holds the write lock as the revert begins, and
    // commits a moment later: the revert waits for it, then keeps its row.
    let mut app = case.session();
    let status = down_paused_at(&case, "migrate-revert-starting", || {
        app.begin();
        app.exec("INSERT INTO accounts (id, v) VALUES (5000, 1)")
            .expect("insert");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            app.batch("COMMIT");
        });
    });
    assert!(status.success(), "migrate down: {status}");
    expected.live.apply(&Op::Insert(5000, 1));
    expected.settle(false, Policy::KeepNew);
    case.assert_as_expected(&expected, "a writer at the revert's start");
}

#[test]
fn pg_down_behind_a_long_transaction_refuses_after_lock_timeout_instead_of_waiting() {
    let case = Case::new(Kind::Pg, "win_down_lock");
    items_plan(&case);
    case.ws.ok(&["migrate", "up"]);
    // A long report holds a lock on the table the revert puts back.
    let mut reader = case.session();
    reader.batch("BEGIN; SELECT count(*) FROM items");
    let (out, took) = std::thread::scope(|s| {
        let down = s.spawn(|| {
            let started = Instant::now();
            let out = case.ws.run(&[
                "migrate",
                "down",
                "--to",
                "0001_items",
                "--lock-timeout",
                "300ms",
            ]);
            (out, started.elapsed())
        });
        wait_until(Duration::from_secs(20), || down.is_finished());
        reader.batch("ROLLBACK");
        down.join().expect("migrate down")
    });
    assert!(
        took < Duration::from_secs(20),
        "down waited {took:?} behind the lock: {out}"
    );
    out.assert_code(3)
        .assert_stderr_has("lock")
        .assert_stderr_has("items");
    // Nothing was reverted; once the lock is free, down goes through.
    assert!(!case.has_column("items", "note"));
    assert_eq!(
        case.ws.json(&["migrate", "status"])["changes"][1]["state"],
        "applied"
    );
    case.ws.ok(&["migrate", "down", "--to", "0001_items"]);
    assert!(case.has_column("items", "note"));
}
