//! The embedded catalog: one SQLite file in WAL mode, every write
//! committed with a full sync.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::audit::{self, AuditEntry, AuditInput, GENESIS};
use crate::flight::{self, Acquired, Holder};
use crate::runs::{
    LastGood, NewRun, Run, RunResult, SafeMode, Step, StepEnd, StepStart, StepState,
};
use crate::samples::Sample;
use crate::schema;
use crate::tokens::{NewToken, Role, TokenRecord};
use crate::{Catalog, Error, Result};

pub struct SqliteCatalog {
    conn: Connection,
    path: PathBuf,
}

impl SqliteCatalog {
    /// Opens the catalog at `path`, creating it (and its folder) when
    /// missing, and upgrades its schema to this version's.
    pub fn open(path: &Path) -> Result<SqliteCatalog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let shown = path.display().to_string();
        let err = sqlite_err(&shown);
        let mut conn = Connection::open(path).map_err(err)?;
        // Waits for another writer instead of failing: runs are journaled
        // while other commands audit.
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "wal")
            .map_err(err)?;
        // A journaled step is on disk before the step runs.
        conn.pragma_update(None, "synchronous", "full")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "on")
            .map_err(err)?;
        upgrade(&mut conn, &shown)?;
        Ok(SqliteCatalog {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens the catalog only if its file exists: commands that merely
    /// consult it (is safe mode on?) never create one.
    pub fn open_existing(path: &Path) -> Result<Option<SqliteCatalog>> {
        if !path.exists() {
            return Ok(None);
        }
        SqliteCatalog::open(path).map(Some)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the file has.
    pub fn version(&self) -> Result<u32> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        sqlite_err(&self.path.display().to_string())(source)
    }
}

/// Names the catalog's file in an SQLite error.
fn sqlite_err(path: &str) -> impl Fn(rusqlite::Error) -> Error + Copy + '_ {
    move |source| Error::Sqlite {
        path: path.to_string(),
        source,
    }
}

fn upgrade(conn: &mut Connection, shown: &str) -> Result<()> {
    let err = sqlite_err(shown);
    // IMMEDIATE: two processes opening a new catalog do not both upgrade.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let found: u32 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    let known = schema::current();
    if found > known {
        return Err(Error::Newer {
            path: shown.to_string(),
            found,
            known,
        });
    }
    for (i, sql) in schema::UPGRADES.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)
            .map_err(err)?;
    }
    tx.commit().map_err(err)
}

fn holder_from(r: &rusqlite::Row) -> rusqlite::Result<Holder> {
    Ok(Holder {
        run: r.get(0)?,
        host: r.get(1)?,
        pid: r.get(2)?,
        pid_start: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
        started: r.get(4)?,
    })
}

const RUN_COLUMNS: &str =
    "id, kind, level, reason, trigger, actor, host, pid, started, finished, result";

fn run_from(r: &rusqlite::Row) -> rusqlite::Result<Run> {
    Ok(Run {
        run: r.get(0)?,
        kind: r.get(1)?,
        level: r.get(2)?,
        reason: r.get(3)?,
        trigger: r.get(4)?,
        actor: r.get(5)?,
        host: r.get(6)?,
        pid: r.get(7)?,
        started: r.get(8)?,
        finished: r.get(9)?,
        result: RunResult::parse(&r.get::<_, String>(10)?),
    })
}

impl Catalog for SqliteCatalog {
    fn location(&self) -> String {
        crate::file_name(&self.path)
    }

    fn schema_version(&mut self) -> Result<u32> {
        self.version()
    }

    fn acquire_flight(&mut self, holder: &Holder) -> Result<Acquired> {
        let path = self.path.display().to_string();
        let err = sqlite_err(&path);
        // IMMEDIATE takes the write lock first: of many at once, one reads
        // an empty slot and fills it, the others then see it filled.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let current = tx
            .query_row(
                "SELECT run, host, pid, pid_start, started FROM flight WHERE id = 1",
                [],
                holder_from,
            )
            .optional()
            .map_err(err)?;
        let same_process = |h: &Holder| h.host == holder.host && h.pid == holder.pid;
        let outcome = match current {
            Some(h) if same_process(&h) => Acquired::Taken,
            // Another process, even for the same run (a second resume), while it lives.
            Some(h) if h.is_alive() != Some(false) => return Ok(Acquired::Held(h)),
            Some(dead) => Acquired::TakenOver(dead),
            None => Acquired::Taken,
        };
        tx.execute(
            "INSERT OR REPLACE INTO flight (id, run, host, pid, pid_start, started)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)",
            params![
                holder.run,
                holder.host,
                holder.pid,
                holder.pid_start.map(|v| v as i64),
                holder.started
            ],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(outcome)
    }

    fn release_flight(&mut self, run: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM flight WHERE id = 1 AND run = ?1", [run])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn flight_holder(&mut self) -> Result<Option<Holder>> {
        self.conn
            .query_row(
                "SELECT run, host, pid, pid_start, started FROM flight WHERE id = 1",
                [],
                holder_from,
            )
            .optional()
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
        self.conn
            .execute(
                &format!("INSERT INTO runs ({RUN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10)"),
                params![
                    run.run,
                    run.kind,
                    run.level,
                    run.reason,
                    run.trigger,
                    run.actor,
                    run.host,
                    run.pid,
                    run.started,
                    run.result.as_str()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(run)
    }

    fn start_step(&mut self, run: &str, step: &StepStart) -> Result<()> {
        // Started again after a crash: one more attempt of the same step.
        self.conn
            .execute(
                "INSERT INTO steps (run, seq, level, kind, name, state, started, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'started', ?6, 1)
                 ON CONFLICT (run, seq) DO UPDATE SET state = 'started',
                     started = excluded.started, finished = NULL,
                     attempts = steps.attempts + 1",
                params![
                    run,
                    step.seq,
                    step.level,
                    step.kind,
                    step.name,
                    flight::now()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn end_step(&mut self, run: &str, seq: u32, end: &StepEnd) -> Result<()> {
        let detail = end.detail.as_ref().map(|d| d.to_string());
        let changed = self
            .conn
            .execute(
                "UPDATE steps SET state = ?3, finished = ?4, output = ?5, detail = ?6
                 WHERE run = ?1 AND seq = ?2",
                params![
                    run,
                    seq,
                    end.state.as_str(),
                    flight::now(),
                    end.output,
                    detail
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
            .conn
            .execute(
                "UPDATE runs SET result = ?2, finished = ?3 WHERE id = ?1",
                params![run, result.as_str(), flight::now()],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(Error::UnknownRun(run.to_string()));
        }
        Ok(())
    }

    fn discard_run(&mut self, run: &str) -> Result<()> {
        let path = self.path.display().to_string();
        let tx = self.conn.transaction().map_err(sqlite_err(&path))?;
        tx.execute("DELETE FROM steps WHERE run = ?1", [run])
            .and_then(|_| tx.execute("DELETE FROM runs WHERE id = ?1", [run]))
            .map_err(sqlite_err(&path))?;
        tx.commit().map_err(sqlite_err(&path))
    }

    fn run(&mut self, id: &str) -> Result<Option<Run>> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_from,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn runs(&mut self) -> Result<Vec<Run>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY started DESC, id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], run_from)
            .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>());
        drop(stmt);
        rows.map_err(|e| self.err(e))
    }

    fn steps(&mut self, run: &str) -> Result<Vec<Step>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, level, kind, name, state, started, finished, attempts, output, detail
                 FROM steps WHERE run = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([run], |r| {
                let detail: Option<String> = r.get(9)?;
                Ok(Step {
                    seq: r.get(0)?,
                    level: r.get(1)?,
                    kind: r.get(2)?,
                    name: r.get(3)?,
                    state: StepState::parse(&r.get::<_, String>(4)?),
                    started: r.get(5)?,
                    finished: r.get(6)?,
                    attempts: r.get(7)?,
                    output: r.get(8)?,
                    detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                })
            })
            .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>());
        drop(stmt);
        rows.map_err(|e| self.err(e))
    }

    fn safe_mode(&mut self) -> Result<Option<SafeMode>> {
        self.conn
            .query_row(
                "SELECT run, since, reason FROM safe_mode WHERE id = 1",
                [],
                |r| {
                    Ok(SafeMode {
                        run: r.get(0)?,
                        since: r.get(1)?,
                        reason: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn enter_safe_mode(&mut self, mode: &SafeMode) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO safe_mode (id, run, since, reason) VALUES (1, ?1, ?2, ?3)",
                params![mode.run, mode.since, mode.reason],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn leave_safe_mode(&mut self) -> Result<Option<SafeMode>> {
        let was = self.safe_mode()?;
        self.conn
            .execute("DELETE FROM safe_mode", [])
            .map_err(|e| self.err(e))?;
        Ok(was)
    }

    fn append_audit(&mut self, input: &AuditInput) -> Result<AuditEntry> {
        let path = self.path.display().to_string();
        let err = sqlite_err(&path);
        // The head is read and the entry written under one write lock, so
        // two commands never chain onto the same entry.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let head: Option<(u64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(err)?;
        let (seq, prev) = match head {
            Some((s, h)) => (s + 1, h),
            None => (1, GENESIS.to_string()),
        };
        let time = flight::now();
        let hash = audit::hash(seq, &time, input, &prev);
        let args = serde_json::to_string(&input.args).expect("strings serialize");
        tx.execute(
            "INSERT INTO audit (seq, time, actor, command, args, reason, result, run, prev, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                seq,
                time,
                input.actor,
                input.command,
                args,
                input.reason,
                input.result,
                input.run,
                prev,
                hash
            ],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(AuditEntry {
            seq,
            time,
            input: input.clone(),
            prev,
            hash,
        })
    }

    fn audit_head(&mut self) -> Result<Option<(u64, String)>> {
        self.conn
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn set_last_good(&mut self, target: &str, change: Option<&str>, actor: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO last_good (target, change, recorded, actor) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (target) DO UPDATE SET
                     change = excluded.change, recorded = excluded.recorded, actor = excluded.actor",
                params![target, change, flight::now(), actor],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn last_good(&mut self, target: &str) -> Result<Option<LastGood>> {
        self.conn
            .query_row(
                "SELECT target, change, recorded, actor FROM last_good WHERE target = ?1",
                [target],
                |r| {
                    Ok(LastGood {
                        target: r.get(0)?,
                        change: r.get(1)?,
                        recorded: r.get(2)?,
                        actor: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn add_samples(&mut self, samples: &[Sample]) -> Result<()> {
        let path = self.path.display().to_string();
        let err = sqlite_err(&path);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO samples (probe, at_ms, ok, latency_ms, value, observed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for s in samples {
                let value = s.value.filter(|v| !v.is_nan());
                insert
                    .execute(params![
                        s.probe,
                        s.at_ms,
                        s.ok,
                        s.latency_ms,
                        value,
                        s.observed
                    ])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn samples(&mut self, probe: &str, since_ms: i64) -> Result<Vec<Sample>> {
        let path = self.path.display().to_string();
        let err = sqlite_err(&path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT probe, at_ms, ok, latency_ms, value, observed FROM samples
                 WHERE probe = ?1 AND at_ms > ?2 ORDER BY at_ms",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![probe, since_ms], |r| {
                Ok(Sample {
                    probe: r.get(0)?,
                    at_ms: r.get(1)?,
                    ok: r.get(2)?,
                    latency_ms: r.get(3)?,
                    value: r.get(4)?,
                    observed: r.get(5)?,
                })
            })
            .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(err)?;
        Ok(rows)
    }

    fn forget_samples(&mut self, before_ms: i64) -> Result<u64> {
        let n = self
            .conn
            .execute("DELETE FROM samples WHERE at_ms < ?1", [before_ms])
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    fn add_drill(&mut self, started: &str, result: &str, report: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO drills (started, result, report) VALUES (?1, ?2, ?3)",
                params![started, result, report],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn last_drill(&mut self) -> Result<Option<(String, String)>> {
        self.conn
            .query_row(
                "SELECT started, result FROM drills ORDER BY started DESC, rowid DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn add_token(&mut self, token: &NewToken) -> Result<()> {
        // The partial unique index on active names decides, also between
        // two processes adding the same name at once.
        let added = self
            .conn
            .execute(
                "INSERT INTO tokens (name, role, hash, created, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name) WHERE revoked IS NULL DO NOTHING",
                params![
                    token.name,
                    token.role.as_str(),
                    token.hash,
                    flight::now(),
                    token.actor
                ],
            )
            .map_err(|e| self.err(e))?;
        if added == 0 {
            return Err(Error::TokenExists(token.name.clone()));
        }
        Ok(())
    }

    fn tokens(&mut self) -> Result<Vec<TokenRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, role, hash, created, created_by, revoked FROM tokens
                 ORDER BY created, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let role: String = r.get(1)?;
                Ok(TokenRecord {
                    name: r.get(0)?,
                    role: role.parse::<Role>().map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            1,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?,
                    hash: r.get(2)?,
                    created: r.get(3)?,
                    created_by: r.get(4)?,
                    revoked: r.get(5)?,
                })
            })
            .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>());
        drop(stmt);
        rows.map_err(|e| self.err(e))
    }

    fn revoke_token(&mut self, name: &str) -> Result<bool> {
        let changed = self
            .conn
            .execute(
                "UPDATE tokens SET revoked = ?2 WHERE name = ?1 AND revoked IS NULL",
                params![name, flight::now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    fn audit_entries(&mut self, from: u64) -> Result<Vec<AuditEntry>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, time, actor, command, args, reason, result, run, prev, hash
                 FROM audit WHERE seq >= ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([from], |r| {
                let args: String = r.get(4)?;
                Ok(AuditEntry {
                    seq: r.get(0)?,
                    time: r.get(1)?,
                    input: AuditInput {
                        actor: r.get(2)?,
                        command: r.get(3)?,
                        // Unreadable arguments hash differently: the
                        // chain reports the entry as changed.
                        args: serde_json::from_str(&args).unwrap_or_else(|_| vec![args]),
                        reason: r.get(5)?,
                        result: r.get(6)?,
                        run: r.get(7)?,
                    },
                    prev: r.get(8)?,
                    hash: r.get(9)?,
                })
            })
            .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>());
        drop(stmt);
        rows.map_err(|e| self.err(e))
    }
}
