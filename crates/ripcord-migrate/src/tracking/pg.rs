//! Tracking in a PostgreSQL database, in schema `ripcord`.
//!
//! The lock is a session advisory lock, `pg_try_advisory_lock(key)`, taken on
//! a connection of its own that the guard keeps open. The server releases it
//! when that session ends for any reason: the guard dropping, the process
//! dying, the backend being terminated. Advisory locks are per database, as
//! are the tracking tables.
//!
//! That session ends at once when its process is killed, but the session
//! running the changes does not: a backend busy with a statement only
//! notices its client is gone when the statement ends. So the connection
//! that runs the changes holds a second, shared advisory lock for as long
//! as it lives, and whoever takes the migration lock next waits until no
//! other session holding it is still running something (it may be idle: a
//! tracker whose guard was dropped), or refuses after a while
//! (`RIPCORD_MIGRATE_LOCK_WAIT`, 60 s by default). Ending that backend is
//! the operator's call, never ripcord's.

use std::str::FromStr;
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};

use chrono::{DateTime, Utc};

use super::{AppliedChange, EventKind, LockGuard, RecordState, RevertPlan, Tracker};
use crate::{Error, Result};

/// The advisory lock key: "ripcord\0" as a big-endian integer. PostgreSQL
/// shows its high half in `pg_locks.classid` and its low half in `objid`.
pub const LOCK_KEY: i64 = 0x7269_7063_6f72_6400;

/// Serialises schema creation, which `IF NOT EXISTS` alone does not make safe
/// against a concurrent creator.
const SCHEMA_KEY: i64 = LOCK_KEY | 1;

/// Held, shared, by every connection that runs changes, for as long as it
/// lives: its backend is still running a statement when the lock shows a
/// holder that is not idle.
pub const WORK_KEY: i64 = LOCK_KEY | 2;

/// How long the next migration waits for a killed one's statement.
fn work_wait() -> Duration {
    std::env::var("RIPCORD_MIGRATE_LOCK_WAIT")
        .ok()
        .and_then(|t| ripcord_core::duration::parse(&t).ok())
        .unwrap_or(Duration::from_secs(60))
}

const APPLICATION_NAME: &str = "ripcord";

const SCHEMA: &str = "
CREATE SCHEMA IF NOT EXISTS ripcord;
CREATE TABLE IF NOT EXISTS ripcord.changes (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    state text NOT NULL CHECK (state IN ('dirty', 'applied')),
    applied_at timestamptz NOT NULL,
    actor text NOT NULL,
    duration_ms bigint,
    safety_snapshot text,
    plan_order int NOT NULL
);
ALTER TABLE ripcord.changes ADD COLUMN IF NOT EXISTS transactional boolean NOT NULL DEFAULT true;
ALTER TABLE ripcord.changes ADD COLUMN IF NOT EXISTS revert_plan text;
CREATE TABLE IF NOT EXISTS ripcord.events (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    change text NOT NULL,
    kind text NOT NULL,
    actor text NOT NULL,
    detail text NOT NULL
);
-- The state of the tables a change touched, right after it ran: one row per
-- table, and per row a hash of its key and of the whole row (rows without a
-- key: the row's hash and its copies), in ripcord.fingerprint_<id>, one table
-- per fingerprinted table so that it is dropped whole. ripcord.fingerprint
-- holds the rows older versions recorded, by `tab`.
CREATE TABLE IF NOT EXISTS ripcord.fingerprint_tables (
    id bigserial PRIMARY KEY,
    change text NOT NULL,
    table_name text NOT NULL,
    key_columns text[] NOT NULL,
    columns text[] NOT NULL,
    types text[] NOT NULL,
    rows bigint NOT NULL
);
-- How each row was hashed: 'columns' (one hash per column, combined), or
-- 'row-text' (the row's text form whole), as older versions recorded.
ALTER TABLE ripcord.fingerprint_tables ADD COLUMN IF NOT EXISTS row_hash text NOT NULL DEFAULT 'row-text';
CREATE TABLE IF NOT EXISTS ripcord.fingerprint (
    tab bigint NOT NULL,
    k bigint NOT NULL,
    h bigint NOT NULL,
    n bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS fingerprint_tab ON ripcord.fingerprint USING brin (tab);
";

// Forgets the fingerprints of the change named by `ripcord.forget`.
use ripcord_core::pg_fingerprint::FORGET as FORGET_FINGERPRINT;

/// A timestamptz as RFC 3339 text in UTC.
const RFC3339: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"#;

/// Tracks migrations of one PostgreSQL database.
pub struct PostgresTracker {
    config: Config,
    client: Client,
    /// Whether `client` holds [`WORK_KEY`].
    marked: bool,
}

impl std::fmt::Debug for PostgresTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTracker")
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl PostgresTracker {
    /// Connects to the database a `postgres://` URL or `key=value` string
    /// names.
    pub fn connect(url: &str) -> Result<PostgresTracker> {
        let config = Config::from_str(url).map_err(Error::postgres("read the connection URL"))?;
        PostgresTracker::with_config(config)
    }

    /// Connects with `config`; sessions are named `ripcord` in
    /// `pg_stat_activity` unless it names them.
    pub fn with_config(mut config: Config) -> Result<PostgresTracker> {
        if config.get_application_name().is_none() {
            config.application_name(APPLICATION_NAME);
        }
        let client = connect(&config)?;
        Ok(PostgresTracker {
            config,
            client,
            marked: false,
        })
    }

    /// The connection scripts run on, so that a change and its tracking row
    /// share a transaction.
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Who holds the lock, from `pg_locks` and `pg_stat_activity`.
    fn holder(&mut self) -> Result<String> {
        let sql = format!(
            "SELECT l.pid, a.application_name, a.usename::text,
                    to_char(a.backend_start AT TIME ZONE 'UTC', {RFC3339})
             FROM pg_locks l
             LEFT JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1"
        );
        let high = (LOCK_KEY >> 32) & 0xffff_ffff;
        let low = LOCK_KEY & 0xffff_ffff;
        let rows = self
            .client
            .query(&sql, &[&high, &low])
            .map_err(Error::postgres("find the holder of the migration lock"))?;
        let Some(row) = rows.first() else {
            // Released between our attempt and this query.
            return Ok("another session, which has just released it; try again".into());
        };
        let pid: Option<i32> = row.get(0);
        let app: Option<String> = row.get(1);
        let user: Option<String> = row.get(2);
        let started: Option<String> = row.get(3);
        let mut holder = match pid {
            Some(pid) => format!("backend pid {pid}"),
            None => "a prepared transaction".into(),
        };
        match app.as_deref() {
            Some(app) if !app.is_empty() => holder.push_str(&format!(" ({app})")),
            _ => holder.push_str(" (no application_name)"),
        }
        if let Some(user) = user {
            holder.push_str(&format!(", user {user}"));
        }
        if let Some(started) = started {
            holder.push_str(&format!(", connected since {started}"));
        }
        Ok(holder)
    }
}

/// A session of an ended migration that still runs a statement.
struct Leftover {
    pid: i32,
    state: Option<String>,
    since: Option<String>,
    query: Option<String>,
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backend pid {}", self.pid)?;
        match &self.state {
            Some(state) => write!(f, " ({state}")?,
            None => f.write_str(" (state not visible to this user")?,
        }
        if let Some(since) = &self.since {
            write!(f, " since {since}")?;
        }
        f.write_str(")")?;
        if let Some(query) = &self.query {
            write!(f, ": {query}")?;
        }
        Ok(())
    }
}

impl PostgresTracker {
    /// Sessions, other than ours, that hold [`WORK_KEY`] and are not idle:
    /// the work of a migration whose process has ended.
    fn leftovers(lock_client: &mut Client, ours: i32) -> Result<Vec<Leftover>> {
        let sql = format!(
            "SELECT l.pid, a.state, to_char(a.state_change AT TIME ZONE 'UTC', {RFC3339}),
                    left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80)
             FROM pg_locks l
             LEFT JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1
               AND l.pid <> $3 AND l.pid <> pg_backend_pid()
               AND a.state IS DISTINCT FROM 'idle'
             ORDER BY l.pid"
        );
        let high = (WORK_KEY >> 32) & 0xffff_ffff;
        let low = WORK_KEY & 0xffff_ffff;
        let rows = lock_client
            .query(&sql, &[&high, &low, &ours])
            .map_err(Error::postgres(
                "look for the sessions of earlier migrations",
            ))?;
        Ok(rows
            .iter()
            .map(|r| Leftover {
                pid: r.get(0),
                state: r.get(1),
                since: r.get(2),
                query: r.get(3),
            })
            .collect())
    }

    /// A new session after the old one was lost: tried again after 0.25 s,
    /// then twice as long each time, for about 15 s in all.
    pub fn reconnect(&mut self) -> Result<()> {
        let mut pause = Duration::from_millis(250);
        let mut last = None;
        for _ in 0..6 {
            std::thread::sleep(pause);
            match connect(&self.config) {
                Ok(client) => {
                    self.client = client;
                    self.marked = false;
                    self.mark_work()?;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            pause *= 2;
        }
        Err(last.expect("tried at least once"))
    }

    /// Marks the connection that runs changes as such, once.
    fn mark_work(&mut self) -> Result<i32> {
        if !self.marked {
            self.client
                .execute("SELECT pg_advisory_lock_shared($1)", &[&WORK_KEY])
                .map_err(Error::postgres("mark the migration's session"))?;
            self.marked = true;
        }
        Ok(self
            .client
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(Error::postgres("mark the migration's session"))?
            .get(0))
    }
}

/// A string as an escape-string literal, right whatever
/// `standard_conforming_strings` says.
fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn connect(config: &Config) -> Result<Client> {
    let name = config
        .get_dbname()
        .map(str::to_owned)
        .unwrap_or_else(|| "the database".into());
    config
        .connect(NoTls)
        .map_err(Error::postgres(format!("connect to {name}")))
}

impl Tracker for PostgresTracker {
    fn ensure_schema(&mut self) -> Result<()> {
        let mut tx = self
            .client
            .transaction()
            .map_err(Error::postgres("create the ripcord schema"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_KEY])
            .map_err(Error::postgres("create the ripcord schema"))?;
        tx.batch_execute(SCHEMA)
            .map_err(Error::postgres("create the ripcord schema"))?;
        tx.commit()
            .map_err(Error::postgres("create the ripcord schema"))
    }

    fn lock(&mut self) -> Result<LockGuard> {
        let mut lock_client = connect(&self.config)?;
        let row = lock_client
            .query_one(
                "SELECT pg_try_advisory_lock($1), pg_backend_pid(),
                        current_setting('application_name')",
                &[&LOCK_KEY],
            )
            .map_err(Error::postgres("take the migration lock"))?;
        let (taken, pid, app): (bool, i32, String) = (row.get(0), row.get(1), row.get(2));
        if !taken {
            drop(lock_client);
            return Err(Error::Locked {
                holder: self.holder()?,
            });
        }
        // A killed migration's statement may still run on the server; the
        // lock is not ours until it has ended.
        let ours = self.mark_work()?;
        let deadline = Instant::now() + work_wait();
        loop {
            let left = PostgresTracker::leftovers(&mut lock_client, ours)?;
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = lock_client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
                return Err(Error::StillRunning {
                    sessions: left.iter().map(|l| l.to_string()).collect(),
                    pids: left.iter().map(|l| l.pid).collect(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // It writes nothing; ending on this statement tells the safety
        // snapshots its statistics are flushed (PostgreSQL 15 and later),
        // so they need not wait for it to be idle long.
        let _ = lock_client.batch_execute(ripcord_core::pg_stats::FLUSH_MARKER);
        let holder = format!("backend pid {pid} ({app})");
        Ok(LockGuard::new(holder, move || {
            // Closing the session releases the lock too; unlocking first
            // makes it immediate even if the close is slow.
            let _ = lock_client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
            drop(lock_client);
        }))
    }

    fn applied(&mut self) -> Result<Vec<AppliedChange>> {
        read_changes(&mut self.client)
    }

    fn record_start(
        &mut self,
        change: &str,
        plan_order: i32,
        checksum: &str,
        actor: &str,
        snapshot_id: Option<String>,
    ) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO ripcord.changes
                     (name, checksum, state, applied_at, actor, duration_ms, safety_snapshot,
                      plan_order)
                 VALUES ($1, $2, 'dirty', clock_timestamp(), $3, NULL, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET
                     checksum = excluded.checksum, state = 'dirty',
                     applied_at = excluded.applied_at, actor = excluded.actor,
                     duration_ms = NULL, safety_snapshot = excluded.safety_snapshot,
                     plan_order = excluded.plan_order",
                &[&change, &checksum, &actor, &snapshot_id, &plan_order],
            )
            .map_err(Error::postgres(format!("record the start of {change}")))?;
        Ok(())
    }

    fn record_done(&mut self, change: &str, duration: Duration) -> Result<()> {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let n = self
            .client
            .execute(
                "UPDATE ripcord.changes SET state = 'applied', duration_ms = $2 WHERE name = $1",
                &[&change, &ms],
            )
            .map_err(Error::postgres(format!("record the end of {change}")))?;
        if n == 0 {
            return Err(Error::NotRecorded {
                change: change.into(),
            });
        }
        Ok(())
    }

    fn record_applied(
        &mut self,
        change: &str,
        plan_order: i32,
        checksum: &str,
        actor: &str,
        snapshot_id: Option<String>,
        duration: Duration,
        detail: &str,
    ) -> Result<()> {
        let sql = self
            .applied_sql(
                change,
                plan_order,
                checksum,
                actor,
                snapshot_id.as_deref(),
                duration,
                detail,
            )
            .expect("PostgreSQL records with SQL text");
        self.client
            .batch_execute(&sql)
            .map_err(Error::postgres(format!("record {change} as applied")))
    }

    fn applied_sql(
        &self,
        change: &str,
        plan_order: i32,
        checksum: &str,
        actor: &str,
        snapshot_id: Option<&str>,
        duration: Duration,
        detail: &str,
    ) -> Option<String> {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let snapshot = snapshot_id.map_or_else(|| "NULL".to_string(), literal);
        Some(format!(
            "WITH c AS (
                 INSERT INTO ripcord.changes
                     (name, checksum, state, applied_at, actor, duration_ms, safety_snapshot,
                      plan_order)
                 VALUES ({change}, {checksum}, 'applied', clock_timestamp(), {actor}, {ms},
                         {snapshot}, {plan_order})
                 ON CONFLICT (name) DO UPDATE SET
                     checksum = excluded.checksum, state = 'applied',
                     applied_at = excluded.applied_at, actor = excluded.actor,
                     duration_ms = excluded.duration_ms,
                     safety_snapshot = excluded.safety_snapshot,
                     plan_order = excluded.plan_order, transactional = true
                 RETURNING 1)
             INSERT INTO ripcord.events (at, change, kind, actor, detail)
             SELECT clock_timestamp(), {change}, 'deploy', {actor}, {detail} FROM c",
            change = literal(change),
            checksum = literal(checksum),
            actor = literal(actor),
            detail = literal(detail),
        ))
    }

    fn reverted_sql(&self, change: &str, actor: &str, detail: &str) -> Option<String> {
        Some(format!(
            "DELETE FROM ripcord.changes WHERE name = {change};
             SELECT set_config('ripcord.forget', {change}, true);
             {FORGET_FINGERPRINT};
             INSERT INTO ripcord.events (at, change, kind, actor, detail)
             VALUES (clock_timestamp(), {change}, 'revert', {actor}, {detail})",
            change = literal(change),
            actor = literal(actor),
            detail = literal(detail),
        ))
    }

    fn record_plan(&mut self, change: &str, plan: &RevertPlan) -> Result<()> {
        let sql = self
            .plan_sql(change, plan)
            .expect("PostgreSQL records with SQL text");
        self.client
            .batch_execute(&sql)
            .map_err(Error::postgres(format!("record how to revert {change}")))
    }

    fn plan_sql(&self, change: &str, plan: &RevertPlan) -> Option<String> {
        Some(format!(
            "UPDATE ripcord.changes SET revert_plan = {} WHERE name = {}",
            literal(&plan.to_json()),
            literal(change)
        ))
    }

    fn record_non_transactional(&mut self, change: &str) -> Result<()> {
        self.client
            .execute(
                "UPDATE ripcord.changes SET transactional = false WHERE name = $1",
                &[&change],
            )
            .map_err(Error::postgres(format!("mark {change} non-transactional")))?;
        Ok(())
    }

    fn record_reverted(&mut self, change: &str) -> Result<()> {
        let n = self
            .client
            .execute("DELETE FROM ripcord.changes WHERE name = $1", &[&change])
            .map_err(Error::postgres(format!("record the revert of {change}")))?;
        if n == 0 {
            return Err(Error::NotRecorded {
                change: change.into(),
            });
        }
        self.client
            .execute("SELECT set_config('ripcord.forget', $1, true)", &[&change])
            .and_then(|_| self.client.batch_execute(FORGET_FINGERPRINT))
            .map_err(Error::postgres(format!(
                "forget the fingerprint of {change}"
            )))
    }

    fn record_event(
        &mut self,
        change: &str,
        kind: EventKind,
        actor: &str,
        detail: &str,
    ) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO ripcord.events (at, change, kind, actor, detail)
                 VALUES (clock_timestamp(), $1, $2, $3, $4)",
                &[&change, &kind.as_str(), &actor, &detail],
            )
            .map_err(Error::postgres(format!(
                "record a {} event for {change}",
                kind.as_str()
            )))?;
        Ok(())
    }
}

/// The rows of `ripcord.changes` in the order they were started, read on
/// `client` (in whatever transaction it has open).
pub(super) fn read_changes(client: &mut Client) -> Result<Vec<AppliedChange>> {
    let sql = "SELECT name, checksum, state, (extract(epoch FROM applied_at) * 1000000)::bigint,
                      actor, duration_ms, safety_snapshot, plan_order,
                      coalesce((to_jsonb(c) ->> 'transactional')::boolean, true),
                      to_jsonb(c) ->> 'revert_plan'
               FROM ripcord.changes c ORDER BY applied_at, plan_order, name";
    let rows = client
        .query(sql, &[])
        .map_err(Error::postgres("read ripcord.changes"))?;
    Ok(rows
        .iter()
        .map(|r| {
            // Every timestamptz fits; the default is never used.
            let applied_at = DateTime::<Utc>::from_timestamp_micros(r.get(3)).unwrap_or_default();
            AppliedChange {
                name: r.get(0),
                checksum: r.get(1),
                state: RecordState::parse(r.get(2)),
                applied_at,
                actor: r.get(4),
                duration_ms: r.get(5),
                safety_snapshot: r.get(6),
                plan_order: r.get(7),
                transactional: r.get(8),
                revert_plan: r.get(9),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::literal;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal("plain"), "E'plain'");
        assert_eq!(literal(r"it's a \ test"), r"E'it\'s a \\ test'");
        assert_eq!(
            literal(r"\'; DROP TABLE x; --"),
            r"E'\\\'; DROP TABLE x; --'"
        );
    }
}
