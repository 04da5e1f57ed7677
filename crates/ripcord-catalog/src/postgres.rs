//! The shared catalog: a PostgreSQL database that several hosts use at
//! once (`[catalog] url`). Its tables live in the schema `ripcord`, created
//! and upgraded on open like the SQLite file's, with the version in
//! `ripcord.version`; a newer version than this build knows is refused.
//! Every call commits before it returns, with `synchronous_commit = on`
//! whatever the server's default.
//!
//! Locks are PostgreSQL advisory locks, keyed `(LOCK_CLASS, n)` in the
//! catalog's database:
//!
//! - The audit chain is appended under a transaction-level lock, so the
//!   head is read and the next entry written by one session at a time, and
//!   entries from many hosts still form one chain.
//! - Single flight is a session-level lock. The session of the holder's
//!   catalog takes it with the flight and keeps it until the flight is
//!   released or the session ends, which it does when the process dies, on
//!   whatever host. So liveness is judged across hosts: finding the lock
//!   free means any holder still recorded is dead, and is taken over; the
//!   lock busy means the recorded holder lives, and is named. The row in
//!   `ripcord.flight` only names the holder. Reading the row and taking
//!   (or releasing) the lock happen under a second, transaction-level lock,
//!   so nobody sees the lock taken and the row not yet written, or the lock
//!   free and the row not yet deleted.
//!
//! A host that vanishes without closing its connection (power, network)
//! holds the lock until the server notices the session is dead, which TCP
//! keepalives bound (`tcp_keepalives_idle` on the server).

use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls, Row};

use crate::audit::{self, AuditEntry, AuditInput, GENESIS};
use crate::error::pg_text;
use crate::flight::{self, Acquired, Holder};
use crate::runs::{
    LastGood, NewRun, Run, RunResult, SafeMode, Step, StepEnd, StepStart, StepState,
};
use crate::samples::Sample;
use crate::schema;
use crate::tokens::{NewToken, Role, TokenRecord};
use crate::{Catalog, Error, Result};

/// The first key of every advisory lock the catalog takes ("ripc").
const LOCK_CLASS: i32 = 0x7269_7063;
/// Held by the session of the run that flies, for as long as it flies.
const FLIGHT_LOCK: i32 = 1;
/// Guards the flight row and [`FLIGHT_LOCK`] together (transaction-level).
const FLIGHT_ROW_LOCK: i32 = 2;
/// Serializes appends to the audit chain (transaction-level).
const AUDIT_LOCK: i32 = 3;
/// Serializes schema upgrades (transaction-level).
const SCHEMA_LOCK: i32 = 4;
/// Named session locks ([`Catalog::try_shared_lock`]) are keyed from here on.
const NAMED_LOCKS: i32 = 1000;

/// How long acquiring waits for the session of a holder that has just
/// ended to be closed by the server.
const SESSION_END_WAIT: Duration = Duration::from_secs(5);

/// `UPGRADES[i]` takes version `i` to `i + 1`, table for table as
/// [`schema::UPGRADES`] does for SQLite: a version means the same tables
/// in both stores.
const UPGRADES: &[&str] = &[
    "CREATE TABLE ripcord.runs (
         id TEXT PRIMARY KEY,
         kind TEXT NOT NULL,
         level TEXT,
         reason TEXT NOT NULL,
         trigger TEXT NOT NULL,
         actor TEXT NOT NULL,
         host TEXT NOT NULL,
         pid BIGINT NOT NULL,
         started TEXT NOT NULL,
         finished TEXT,
         result TEXT NOT NULL DEFAULT 'running'
     );
     CREATE TABLE ripcord.steps (
         run TEXT NOT NULL REFERENCES ripcord.runs(id),
         seq BIGINT NOT NULL,
         level TEXT,
         kind TEXT NOT NULL,
         name TEXT NOT NULL,
         state TEXT NOT NULL,
         started TEXT NOT NULL,
         finished TEXT,
         attempts BIGINT NOT NULL DEFAULT 0,
         output TEXT,
         detail TEXT,
         PRIMARY KEY (run, seq)
     );
     CREATE TABLE ripcord.flight (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         run TEXT NOT NULL,
         host TEXT NOT NULL,
         pid BIGINT NOT NULL,
         pid_start BIGINT,
         started TEXT NOT NULL
     );
     CREATE TABLE ripcord.safe_mode (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         run TEXT,
         since TEXT NOT NULL,
         reason TEXT NOT NULL
     );
     CREATE TABLE ripcord.audit (
         seq BIGINT PRIMARY KEY,
         time TEXT NOT NULL,
         actor TEXT NOT NULL,
         command TEXT NOT NULL,
         args TEXT NOT NULL,
         reason TEXT,
         result TEXT NOT NULL,
         run TEXT,
         prev TEXT NOT NULL,
         hash TEXT NOT NULL
     );",
    "CREATE TABLE ripcord.last_good (
         target TEXT PRIMARY KEY,
         change TEXT,
         recorded TEXT NOT NULL,
         actor TEXT NOT NULL
     );",
    "CREATE TABLE ripcord.samples (
         probe TEXT NOT NULL,
         at_ms BIGINT NOT NULL,
         ok BOOLEAN NOT NULL,
         latency_ms DOUBLE PRECISION NOT NULL,
         value DOUBLE PRECISION,
         observed TEXT NOT NULL
     );
     CREATE INDEX samples_by_probe ON ripcord.samples (probe, at_ms);",
    "CREATE TABLE ripcord.drills (
         id BIGSERIAL PRIMARY KEY,
         started TEXT NOT NULL,
         result TEXT NOT NULL,
         report TEXT NOT NULL
     );",
    "CREATE TABLE ripcord.tokens (
         id BIGSERIAL PRIMARY KEY,
         name TEXT NOT NULL,
         role TEXT NOT NULL,
         hash TEXT NOT NULL UNIQUE,
         created TEXT NOT NULL,
         created_by TEXT NOT NULL,
         revoked TEXT
     );
     CREATE UNIQUE INDEX tokens_active_name ON ripcord.tokens (name) WHERE revoked IS NULL;",
];

pub struct PgCatalog {
    client: Client,
    /// The URL, password redacted.
    url: String,
    /// The run whose flight this session holds ([`FLIGHT_LOCK`]).
    flying: Option<String>,
}

impl PgCatalog {
    /// Connects to the database at `url` and creates or upgrades the
    /// `ripcord` schema in it.
    pub fn open(url: &str) -> Result<PgCatalog> {
        let shown = audit::redact(url);
        let connect_err = |e: postgres::Error| Error::Connect {
            url: shown.clone(),
            message: pg_text(&e),
        };
        let mut config: Config = url.parse().map_err(connect_err)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("ripcord");
        }
        let mut client = config.connect(NoTls).map_err(connect_err)?;
        // A journaled step is on the server's disk before the step runs.
        client
            .batch_execute("SET synchronous_commit = on")
            .map_err(|e| Error::postgres(&shown, &e))?;
        upgrade(&mut client, &shown)?;
        Ok(PgCatalog {
            client,
            url: shown,
            flying: None,
        })
    }

    /// The schema version the database has.
    pub fn version(&mut self) -> Result<u32> {
        let row = self
            .client
            .query_one("SELECT version FROM ripcord.version", &[])
            .map_err(|e| self.err(e))?;
        Ok(row.get::<_, i32>(0) as u32)
    }

    fn err(&self, e: postgres::Error) -> Error {
        Error::postgres(&self.url, &e)
    }
}

fn lock_sql(function: &str, key: i32) -> String {
    format!("SELECT {function}({LOCK_CLASS}, {key})")
}

fn upgrade(client: &mut Client, shown: &str) -> Result<()> {
    let err = |e: postgres::Error| Error::postgres(shown, &e);
    let mut tx = client.transaction().map_err(err)?;
    // Two hosts opening a new catalog do not both create it.
    tx.batch_execute(&lock_sql("pg_advisory_xact_lock", SCHEMA_LOCK))
        .map_err(err)?;
    let has_schema: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'ripcord')",
            &[],
        )
        .map_err(err)?
        .get(0);
    let has_version: bool = tx
        .query_one("SELECT to_regclass('ripcord.version') IS NOT NULL", &[])
        .map_err(err)?
        .get(0);
    let found = if has_version {
        tx.query_opt("SELECT version FROM ripcord.version", &[])
            .map_err(err)?
            .map_or(0, |r| r.get::<_, i32>(0) as u32)
    } else {
        0
    };
    let known = schema::current();
    if found > known {
        return Err(Error::Newer {
            path: shown.to_string(),
            found,
            known,
        });
    }
    if found == known {
        return tx.commit().map_err(err);
    }
    // An existing schema is used as it is: an administrator may create it
    // for a user who may not create schemas.
    if !has_schema {
        tx.batch_execute("CREATE SCHEMA ripcord").map_err(err)?;
    }
    if !has_version {
        tx.batch_execute(
            "CREATE TABLE ripcord.version (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 version INTEGER NOT NULL
             );
             INSERT INTO ripcord.version (id, version) VALUES (1, 0);",
        )
        .map_err(err)?;
    }
    for (i, sql) in UPGRADES.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO ripcord.version (id, version) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            &[&(i as i32 + 1)],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}

fn holder_from(r: &Row) -> Holder {
    Holder {
        run: r.get(0),
        host: r.get(1),
        pid: r.get::<_, i64>(2) as u32,
        pid_start: r.get::<_, Option<i64>>(3).map(|v| v as u64),
        started: r.get(4),
    }
}

const HOLDER_SELECT: &str =
    "SELECT run, host, pid, pid_start, started FROM ripcord.flight WHERE id = 1";

const RUN_COLUMNS: &str =
    "id, kind, level, reason, trigger, actor, host, pid, started, finished, result";

fn run_from(r: &Row) -> Run {
    Run {
        run: r.get(0),
        kind: r.get(1),
        level: r.get(2),
        reason: r.get(3),
        trigger: r.get(4),
        actor: r.get(5),
        host: r.get(6),
        pid: r.get::<_, i64>(7) as u32,
        started: r.get(8),
        finished: r.get(9),
        result: RunResult::parse(r.get(10)),
    }
}

/// What acquiring found; `None` when the lock is held by a session that
/// recorded no holder (not ripcord's way of taking it).
fn try_acquire(
    client: &mut Client,
    holder: &Holder,
    ours: bool,
    took: &mut bool,
) -> std::result::Result<Option<Acquired>, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(&lock_sql("pg_advisory_xact_lock", FLIGHT_ROW_LOCK))?;
    let current = tx.query_opt(HOLDER_SELECT, &[])?.map(|r| holder_from(&r));
    if !ours {
        *took = tx
            .query_one(&lock_sql("pg_try_advisory_lock", FLIGHT_LOCK), &[])?
            .get(0);
        if !*took {
            // Its session is alive: so is the run it recorded.
            return Ok(current.map(Acquired::Held));
        }
    }
    let same_process = |h: &Holder| h.host == holder.host && h.pid == holder.pid;
    let outcome = match current {
        Some(h) if same_process(&h) => Acquired::Taken,
        // This session flies already, for another process it recorded:
        // only that process can tell, as on SQLite.
        Some(h) if ours && h.is_alive() != Some(false) => return Ok(Some(Acquired::Held(h))),
        // The lock was free: the session that held it for this holder is gone.
        Some(dead) => Acquired::TakenOver(dead),
        None => Acquired::Taken,
    };
    tx.execute(
        "INSERT INTO ripcord.flight (id, run, host, pid, pid_start, started)
         VALUES (1, $1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET run = excluded.run, host = excluded.host,
             pid = excluded.pid, pid_start = excluded.pid_start, started = excluded.started",
        &[
            &holder.run,
            &holder.host,
            &(holder.pid as i64),
            &holder.pid_start.map(|v| v as i64),
            &holder.started,
        ],
    )?;
    tx.commit()?;
    Ok(Some(outcome))
}

impl Catalog for PgCatalog {
    fn location(&self) -> String {
        self.url.clone()
    }

    fn schema_version(&mut self) -> Result<u32> {
        self.version()
    }

    fn try_shared_lock(&mut self, name: &str) -> Result<Option<String>> {
        // A stable key per name: the first four bytes of its BLAKE3.
        let hash = blake3::hash(name.as_bytes());
        let n = i32::from_le_bytes(hash.as_bytes()[..4].try_into().expect("4 bytes"));
        let key = NAMED_LOCKS.wrapping_add(n & 0x7fff_ffff).max(NAMED_LOCKS);
        let took: bool = self
            .client
            .query_one(&lock_sql("pg_try_advisory_lock", key), &[])
            .map_err(|e| self.err(e))?
            .get(0);
        if took {
            return Ok(None);
        }
        // Who holds it: the session's client and when it connected.
        let who = self
            .client
            .query_opt(
                "SELECT coalesce(host(a.client_addr), 'local socket'), a.pid,
                        to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                  WHERE l.locktype = 'advisory' AND l.granted
                    AND l.classid = $1::int::oid AND l.objid = $2::int::oid",
                &[&LOCK_CLASS, &key],
            )
            .map_err(|e| self.err(e))?;
        Ok(Some(match who {
            Some(r) => format!(
                "a session from {} (server pid {}, connected {})",
                r.get::<_, String>(0),
                r.get::<_, i32>(1),
                r.get::<_, String>(2)
            ),
            None => "another session of the shared catalog".to_string(),
        }))
    }

    fn holder_alive(&mut self, holder: &Holder) -> Result<Option<bool>> {
        let recorded = self.flight_holder()?;
        if recorded.as_ref() != Some(holder) {
            // Not the holder of record: the lock says nothing about it.
            return Ok(holder.is_alive());
        }
        if self.flying.is_some() {
            return Ok(Some(true));
        }
        let held: bool = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks
                     WHERE locktype = 'advisory' AND granted
                       AND database = (SELECT oid FROM pg_database
                                       WHERE datname = current_database())
                       AND classid = $1::bigint::oid AND objid = $2::bigint::oid
                       AND objsubid = 2)",
                &[&(LOCK_CLASS as i64), &(FLIGHT_LOCK as i64)],
            )
            .map_err(|e| self.err(e))?
            .get(0);
        Ok(Some(held))
    }

    fn acquire_flight(&mut self, holder: &Holder) -> Result<Acquired> {
        let ours = self.flying.is_some();
        let deadline = Instant::now() + SESSION_END_WAIT;
        loop {
            let mut took = false;
            let found = match try_acquire(&mut self.client, holder, ours, &mut took) {
                Ok(found) => found,
                Err(e) => {
                    if took {
                        // Session locks outlive a rolled back transaction.
                        let _ = self
                            .client
                            .batch_execute(&lock_sql("pg_advisory_unlock", FLIGHT_LOCK));
                    }
                    return Err(self.err(e));
                }
            };
            // A holder that just ended (its process gone from this host,
            // or its flight released by another session) leaves a session
            // the server is about to close: wait for that, briefly.
            let ending = match &found {
                None => true,
                Some(Acquired::Held(h)) => !ours && h.is_alive() == Some(false),
                Some(_) => false,
            };
            if ending && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            return match found {
                Some(outcome) => {
                    if !matches!(outcome, Acquired::Held(_)) {
                        self.flying = Some(holder.run.clone());
                    }
                    Ok(outcome)
                }
                None => Err(Error::Postgres {
                    url: self.url.clone(),
                    message: format!(
                        "the single-flight lock (advisory lock {LOCK_CLASS}, {FLIGHT_LOCK}) is \
                         held by a session that recorded no run; pg_locks and \
                         pg_stat_activity show which"
                    ),
                }),
            };
        }
    }

    fn release_flight(&mut self, run: &str) -> Result<()> {
        let ours = self.flying.as_deref() == Some(run);
        let released = (|| {
            let mut tx = self.client.transaction()?;
            tx.batch_execute(&lock_sql("pg_advisory_xact_lock", FLIGHT_ROW_LOCK))?;
            tx.execute(
                "DELETE FROM ripcord.flight WHERE id = 1 AND run = $1",
                &[&run],
            )?;
            if ours {
                tx.batch_execute(&lock_sql("pg_advisory_unlock", FLIGHT_LOCK))?;
            }
            tx.commit()
        })();
        released.map_err(|e| self.err(e))?;
        if ours {
            self.flying = None;
        }
        Ok(())
    }

    fn flight_holder(&mut self) -> Result<Option<Holder>> {
        self.client
            .query_opt(HOLDER_SELECT, &[])
            .map(|r| r.map(|r| holder_from(&r)))
            .map_err(|e| self.err(e))
    }

    fn begin_run(&mut self, new: &NewRun) -> Result<Run> {
        let run = Run {
            run: new.id.clone(),
            kind: new.kind.clone(),
            level: new.level.clone(),
            reason: new.reason.clone(),
            trigger: new.trigger.clone(),
            actor: new.actor.clone(),
            host: flight::host(),
            pid: std::process::id(),
            started: flight::now(),
            finished: None,
            result: RunResult::Running,
        };
        self.client
            .execute(
                &format!(
                    "INSERT INTO ripcord.runs ({RUN_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10)"
                ),
                &[
                    &run.run,
                    &run.kind,
                    &run.level,
                    &run.reason,
                    &run.trigger,
                    &run.actor,
                    &run.host,
                    &(run.pid as i64),
                    &run.started,
                    &run.result.as_str(),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(run)
    }

    fn start_step(&mut self, run: &str, step: &StepStart) -> Result<()> {
        // Started again after a crash: one more attempt of the same step.
        self.client
            .execute(
                "INSERT INTO ripcord.steps AS s
                     (run, seq, level, kind, name, state, started, attempts)
                 VALUES ($1, $2, $3, $4, $5, 'started', $6, 1)
                 ON CONFLICT (run, seq) DO UPDATE SET state = 'started',
                     started = excluded.started, finished = NULL,
                     attempts = s.attempts + 1",
                &[
                    &run,
                    &(step.seq as i64),
                    &step.level,
                    &step.kind,
                    &step.name,
                    &flight::now(),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn end_step(&mut self, run: &str, seq: u32, end: &StepEnd) -> Result<()> {
        let detail = end.detail.as_ref().map(|d| d.to_string());
        let changed = self
            .client
            .execute(
                "UPDATE ripcord.steps SET state = $3, finished = $4, output = $5, detail = $6
                 WHERE run = $1 AND seq = $2",
                &[
                    &run,
                    &(seq as i64),
                    &end.state.as_str(),
                    &flight::now(),
                    &end.output,
                    &detail,
                ],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(Error::UnknownRun(format!("{run} (step {seq})")));
        }
        Ok(())
    }

    fn finish_run(&mut self, run: &str, result: RunResult) -> Result<()> {
        let changed = self
            .client
            .execute(
                "UPDATE ripcord.runs SET result = $2, finished = $3 WHERE id = $1",
                &[&run, &result.as_str(), &flight::now()],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(Error::UnknownRun(run.to_string()));
        }
        Ok(())
    }

    fn discard_run(&mut self, run: &str) -> Result<()> {
        let done = (|| {
            let mut tx = self.client.transaction()?;
            tx.execute("DELETE FROM ripcord.steps WHERE run = $1", &[&run])?;
            tx.execute("DELETE FROM ripcord.runs WHERE id = $1", &[&run])?;
            tx.commit()
        })();
        done.map_err(|e| self.err(e))
    }

    fn run(&mut self, id: &str) -> Result<Option<Run>> {
        self.client
            .query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM ripcord.runs WHERE id = $1"),
                &[&id],
            )
            .map(|r| r.map(|r| run_from(&r)))
            .map_err(|e| self.err(e))
    }

    fn runs(&mut self) -> Result<Vec<Run>> {
        self.client
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM ripcord.runs
                     ORDER BY started COLLATE \"C\" DESC, id COLLATE \"C\""
                ),
                &[],
            )
            .map(|rows| rows.iter().map(run_from).collect())
            .map_err(|e| self.err(e))
    }

    fn steps(&mut self, run: &str) -> Result<Vec<Step>> {
        let rows = self
            .client
            .query(
                "SELECT seq, level, kind, name, state, started, finished, attempts, output, detail
                 FROM ripcord.steps WHERE run = $1 ORDER BY seq",
                &[&run],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let detail: Option<String> = r.get(9);
                Step {
                    seq: r.get::<_, i64>(0) as u32,
                    level: r.get(1),
                    kind: r.get(2),
                    name: r.get(3),
                    state: StepState::parse(r.get(4)),
                    started: r.get(5),
                    finished: r.get(6),
                    attempts: r.get::<_, i64>(7) as u32,
                    output: r.get(8),
                    detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                }
            })
            .collect())
    }

    fn safe_mode(&mut self) -> Result<Option<SafeMode>> {
        self.client
            .query_opt(
                "SELECT run, since, reason FROM ripcord.safe_mode WHERE id = 1",
                &[],
            )
            .map(|r| {
                r.map(|r| SafeMode {
                    run: r.get(0),
                    since: r.get(1),
                    reason: r.get(2),
                })
            })
            .map_err(|e| self.err(e))
    }

    fn enter_safe_mode(&mut self, mode: &SafeMode) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO ripcord.safe_mode (id, run, since, reason) VALUES (1, $1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET run = excluded.run, since = excluded.since,
                     reason = excluded.reason",
                &[&mode.run, &mode.since, &mode.reason],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn leave_safe_mode(&mut self) -> Result<Option<SafeMode>> {
        self.client
            .query_opt(
                "DELETE FROM ripcord.safe_mode RETURNING run, since, reason",
                &[],
            )
            .map(|r| {
                r.map(|r| SafeMode {
                    run: r.get(0),
                    since: r.get(1),
                    reason: r.get(2),
                })
            })
            .map_err(|e| self.err(e))
    }

    fn append_audit(&mut self, input: &AuditInput) -> Result<AuditEntry> {
        let appended = (|| {
            let mut tx = self.client.transaction()?;
            // The head is read and the entry written by one session at a
            // time, whatever host it is on: one chain.
            tx.batch_execute(&lock_sql("pg_advisory_xact_lock", AUDIT_LOCK))?;
            let head = tx.query_opt(
                "SELECT seq, hash FROM ripcord.audit ORDER BY seq DESC LIMIT 1",
                &[],
            )?;
            let (seq, prev) = match head {
                Some(r) => (r.get::<_, i64>(0) as u64 + 1, r.get::<_, String>(1)),
                None => (1, GENESIS.to_string()),
            };
            let time = flight::now();
            let hash = audit::hash(seq, &time, input, &prev);
            let args = serde_json::to_string(&input.args).expect("strings serialize");
            tx.execute(
                "INSERT INTO ripcord.audit
                     (seq, time, actor, command, args, reason, result, run, prev, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &(seq as i64),
                    &time,
                    &input.actor,
                    &input.command,
                    &args,
                    &input.reason,
                    &input.result,
                    &input.run,
                    &prev,
                    &hash,
                ],
            )?;
            tx.commit()?;
            Ok(AuditEntry {
                seq,
                time,
                input: input.clone(),
                prev,
                hash,
            })
        })();
        appended.map_err(|e| self.err(e))
    }

    fn audit_head(&mut self) -> Result<Option<(u64, String)>> {
        self.client
            .query_opt(
                "SELECT seq, hash FROM ripcord.audit ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .map(|r| r.map(|r| (r.get::<_, i64>(0) as u64, r.get(1))))
            .map_err(|e| self.err(e))
    }

    fn audit_entries(&mut self, from: u64) -> Result<Vec<AuditEntry>> {
        let rows = self
            .client
            .query(
                "SELECT seq, time, actor, command, args, reason, result, run, prev, hash
                 FROM ripcord.audit WHERE seq >= $1 ORDER BY seq",
                &[&(from.min(i64::MAX as u64) as i64)],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let args: String = r.get(4);
                AuditEntry {
                    seq: r.get::<_, i64>(0) as u64,
                    time: r.get(1),
                    input: AuditInput {
                        actor: r.get(2),
                        command: r.get(3),
                        // Unreadable arguments hash differently: the
                        // chain reports the entry as changed.
                        args: serde_json::from_str(&args).unwrap_or_else(|_| vec![args]),
                        reason: r.get(5),
                        result: r.get(6),
                        run: r.get(7),
                    },
                    prev: r.get(8),
                    hash: r.get(9),
                }
            })
            .collect())
    }

    fn set_last_good(&mut self, target: &str, change: Option<&str>, actor: &str) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO ripcord.last_good (target, change, recorded, actor)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (target) DO UPDATE SET
                     change = excluded.change, recorded = excluded.recorded,
                     actor = excluded.actor",
                &[&target, &change, &flight::now(), &actor],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn last_good(&mut self, target: &str) -> Result<Option<LastGood>> {
        self.client
            .query_opt(
                "SELECT target, change, recorded, actor FROM ripcord.last_good WHERE target = $1",
                &[&target],
            )
            .map(|r| {
                r.map(|r| LastGood {
                    target: r.get(0),
                    change: r.get(1),
                    recorded: r.get(2),
                    actor: r.get(3),
                })
            })
            .map_err(|e| self.err(e))
    }

    fn add_samples(&mut self, samples: &[Sample]) -> Result<()> {
        let added = (|| {
            let mut tx = self.client.transaction()?;
            let insert = tx.prepare(
                "INSERT INTO ripcord.samples (probe, at_ms, ok, latency_ms, value, observed)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )?;
            for s in samples {
                let value = s.value.filter(|v| !v.is_nan());
                tx.execute(
                    &insert,
                    &[
                        &s.probe,
                        &s.at_ms,
                        &s.ok,
                        &s.latency_ms,
                        &value,
                        &s.observed,
                    ],
                )?;
            }
            tx.commit()
        })();
        added.map_err(|e| self.err(e))
    }

    fn samples(&mut self, probe: &str, since_ms: i64) -> Result<Vec<Sample>> {
        self.client
            .query(
                "SELECT probe, at_ms, ok, latency_ms, value, observed FROM ripcord.samples
                 WHERE probe = $1 AND at_ms > $2 ORDER BY at_ms",
                &[&probe, &since_ms],
            )
            .map(|rows| {
                rows.iter()
                    .map(|r| Sample {
                        probe: r.get(0),
                        at_ms: r.get(1),
                        ok: r.get(2),
                        latency_ms: r.get(3),
                        value: r.get(4),
                        observed: r.get(5),
                    })
                    .collect()
            })
            .map_err(|e| self.err(e))
    }

    fn forget_samples(&mut self, before_ms: i64) -> Result<u64> {
        self.client
            .execute(
                "DELETE FROM ripcord.samples WHERE at_ms < $1",
                &[&before_ms],
            )
            .map_err(|e| self.err(e))
    }

    fn add_drill(&mut self, started: &str, result: &str, report: &str) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO ripcord.drills (started, result, report) VALUES ($1, $2, $3)",
                &[&started, &result, &report],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn last_drill(&mut self) -> Result<Option<(String, String)>> {
        self.client
            .query_opt(
                "SELECT started, result FROM ripcord.drills
                 ORDER BY started COLLATE \"C\" DESC, id DESC LIMIT 1",
                &[],
            )
            .map(|r| r.map(|r| (r.get(0), r.get(1))))
            .map_err(|e| self.err(e))
    }

    fn add_token(&mut self, token: &NewToken) -> Result<()> {
        // The partial unique index on active names decides, also between
        // two hosts adding the same name at once.
        let added = self
            .client
            .execute(
                "INSERT INTO ripcord.tokens (name, role, hash, created, created_by)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) WHERE revoked IS NULL DO NOTHING",
                &[
                    &token.name,
                    &token.role.as_str(),
                    &token.hash,
                    &flight::now(),
                    &token.actor,
                ],
            )
            .map_err(|e| self.err(e))?;
        if added == 0 {
            return Err(Error::TokenExists(token.name.clone()));
        }
        Ok(())
    }

    fn tokens(&mut self) -> Result<Vec<TokenRecord>> {
        let rows = self
            .client
            .query(
                "SELECT name, role, hash, created, created_by, revoked FROM ripcord.tokens
                 ORDER BY created COLLATE \"C\", id",
                &[],
            )
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                let role = r
                    .get::<_, &str>(1)
                    .parse::<Role>()
                    .map_err(|e| Error::Postgres {
                        url: self.url.clone(),
                        message: format!("token {name:?}: {e}"),
                    })?;
                Ok(TokenRecord {
                    name,
                    role,
                    hash: r.get(2),
                    created: r.get(3),
                    created_by: r.get(4),
                    revoked: r.get(5),
                })
            })
            .collect()
    }

    fn revoke_token(&mut self, name: &str) -> Result<bool> {
        let changed = self
            .client
            .execute(
                "UPDATE ripcord.tokens SET revoked = $2 WHERE name = $1 AND revoked IS NULL",
                &[&name, &flight::now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_stores_have_the_same_versions() {
        assert_eq!(super::UPGRADES.len(), crate::schema::UPGRADES.len());
    }
}
