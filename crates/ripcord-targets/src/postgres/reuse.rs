//! Reusing a table's entry from the parent snapshot when its rows cannot
//! have changed since, told from the server's cumulative statistics.
//!
//! PostgreSQL 15 and later keep per-table counters of rows inserted,
//! updated and deleted (aborted writes included) in shared memory; a
//! TRUNCATE or a rewrite gives the table a new relfilenode. The counters
//! lag: a backend flushes its pending counts when it goes idle, at most
//! 10 s later (`PGSTAT_IDLE_INTERVAL`), or right away after
//! `pg_stat_force_next_flush()`, and when it exits. So a read is trusted
//! only once it is *settled*: every other backend of the database is idle
//! and has either been idle that long or last ran [`FLUSH_MARKER`]; then a
//! grace period covers backends that were exiting. A settled read counts
//! every write committed before it was settled.
//!
//! A snapshot reads the counters settled before its consistent point and
//! again after it. A table whose stamp is the same in both had no write
//! between them: the stamp describes the rows the snapshot holds. A later
//! snapshot whose settled read after its own point gives the same stamp,
//! under the same epoch, holds the same rows, and takes the entry as it is.
//! docs/decisions.md has the reasoning and what is left to chance.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use postgres::Client;
use ripcord_repo::manifest::PgTableStamp;

use super::conn::pg_err;
use crate::error::Result;

use ripcord_core::pg_stats::FLUSH_MARKER;

/// The longest a backend holds counts before it flushes them when idle,
/// with a margin.
const IDLE_FLUSH: Duration = Duration::from_secs(11);

/// How long a snapshot waits for the statistics to settle before it gives
/// up and reads every table: about what reading the database would take
/// (at [`READ_RATE`]), within these bounds. A busy database never settles;
/// it should not cost more than it could save.
const SETTLE_MIN: Duration = Duration::from_secs(2);
const SETTLE_MAX: Duration = Duration::from_secs(12);
const READ_RATE: f64 = 100e6;

/// After the backends are seen settled: a backend that exited just before
/// flushes right after it leaves pg_stat_activity.
const GRACE: Duration = Duration::from_millis(500);

/// A settled read of the statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    pub epoch: String,
    /// By table oid; tables whose rows a stamp cannot vouch for (a column
    /// whose binary form depends on other catalogs, like an enum's) are
    /// left out.
    pub tables: HashMap<u32, PgTableStamp>,
}

/// Whether the server keeps exact counters (shared-memory statistics).
pub fn supported(major: u32) -> bool {
    major >= 15
}

/// Below this size a database is read whole: the two settled reads of the
/// statistics cost at least 2 x [`GRACE`], a fifth or more of what reading
/// it takes, and reuse saves only the tables nothing wrote.
const REUSE_MIN_BYTES: u64 = 1 << 30;

/// Whether a database of `bytes` is worth stamping.
/// `RIPCORD_PG_REUSE_MIN_BYTES` overrides the size (tests use small databases).
pub fn worth_it(bytes: u64) -> bool {
    let min = std::env::var("RIPCORD_PG_REUSE_MIN_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(REUSE_MIN_BYTES);
    bytes >= min
}

/// How long to wait for the statistics of a database of `bytes`.
pub fn budget(bytes: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / READ_RATE).clamp(SETTLE_MIN, SETTLE_MAX)
}

/// Waits for the statistics to settle and reads them; `None` when they do
/// not settle in time (then nothing is reused). `own` are the backends of
/// this snapshot, which write nothing.
pub fn settled_read(client: &mut Client, own: &[i32], budget: Duration) -> Result<Option<Stamps>> {
    // A standby replays the primary's writes without counting them.
    let standby: bool = client
        .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
        .map_err(pg_err("asking whether the server is a standby"))?
        .get(0);
    if standby {
        return Ok(None);
    }
    let deadline = Instant::now() + budget;
    loop {
        let unsettled: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_stat_activity
                 WHERE datname = current_database() AND pid <> ALL($1)
                   AND backend_type NOT IN ('autovacuum worker', 'walsender')
                   AND NOT (state IS NOT DISTINCT FROM 'idle'
                            AND (state_change <= clock_timestamp() - $2::float8 * interval '1 second'
                                 OR query = $3))",
                &[&own, &IDLE_FLUSH.as_secs_f64(), &FLUSH_MARKER],
            )
            .map_err(pg_err("reading pg_stat_activity"))?
            .get(0);
        if unsettled == 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(GRACE);
    read(client)
}

/// The stamps, or `None` when the statistics were reset while they were
/// read (the epoch before and after differ).
fn read(client: &mut Client) -> Result<Option<Stamps>> {
    // pg_control_system() may be kept from the role; the server's start
    // time still tells another server.
    let may: bool = client
        .query_one(
            "SELECT pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')",
            &[],
        )
        .map_err(pg_err("reading the statistics epoch"))?
        .get(0);
    let system: String = match may {
        true => client
            .query_one(
                "SELECT system_identifier::text FROM pg_catalog.pg_control_system()",
                &[],
            )
            .map_err(pg_err("reading the statistics epoch"))?
            .get(0),
        false => "?".into(),
    };
    let epoch = epoch_of(client, &system)?;
    // Only columns whose binary form is the stored value alone: base types,
    // arrays of them and domains over them (an enum's is its label, which
    // ALTER TYPE can rename without touching the table).
    let rows = client
        .query(
            "SELECT c.oid, c.relfilenode, s.n_tup_ins, s.n_tup_upd, s.n_tup_del
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
             WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
               AND NOT EXISTS (
                 SELECT 1 FROM pg_catalog.pg_attribute a
                 JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                 LEFT JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype
                 LEFT JOIN pg_catalog.pg_type e ON e.oid = coalesce(b.typelem, t.typelem)
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   AND NOT ((coalesce(b.typtype, t.typtype) = 'b'
                             AND coalesce(b.typelem, t.typelem) = 0)
                            OR e.typtype IS NOT DISTINCT FROM 'b'))",
            &[],
        )
        .map_err(pg_err("reading the table statistics"))?;
    let tables = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, u32>(0),
                PgTableStamp {
                    relfilenode: r.get(1),
                    inserted: r.get(2),
                    updated: r.get(3),
                    deleted: r.get(4),
                },
            )
        })
        .collect();
    if epoch_of(client, &system)? != epoch {
        return Ok(None);
    }
    Ok(Some(Stamps { epoch, tables }))
}

fn epoch_of(client: &mut Client, system: &str) -> Result<String> {
    // Session-independent text: the epoch must compare equal across runs.
    Ok(client
        .query_one(
            "SELECT $1 || ':' || d.oid::text
                    || ':' || extract(epoch FROM pg_catalog.pg_postmaster_start_time())::text
                    || ':' || coalesce(extract(epoch FROM s.stats_reset)::text, '-')
             FROM pg_catalog.pg_database d
             LEFT JOIN pg_catalog.pg_stat_database s ON s.datid = d.oid
             WHERE d.datname = current_database()",
            &[&system],
        )
        .map_err(pg_err("reading the statistics epoch"))?
        .get(0))
}

/// The stamps that hold for the snapshot taken between `before` and
/// `after`: the tables no write reached in between.
pub fn steady(before: &Stamps, after: &Stamps) -> Option<Stamps> {
    if before.epoch != after.epoch {
        return None;
    }
    Some(Stamps {
        epoch: after.epoch.clone(),
        tables: after
            .tables
            .iter()
            .filter(|(oid, s)| before.tables.get(oid) == Some(s))
            .map(|(oid, s)| (*oid, *s))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamps(epoch: &str, tables: &[(u32, i64)]) -> Stamps {
        Stamps {
            epoch: epoch.into(),
            tables: tables
                .iter()
                .map(|&(oid, n)| {
                    (
                        oid,
                        PgTableStamp {
                            relfilenode: oid,
                            inserted: n,
                            updated: 0,
                            deleted: 0,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn only_tables_nothing_reached_between_the_reads_keep_a_stamp() {
        let before = stamps("e", &[(1, 10), (2, 5), (3, 0)]);
        let after = stamps("e", &[(1, 10), (2, 6), (4, 0)]);
        let held = steady(&before, &after).unwrap();
        let mut kept: Vec<u32> = held.tables.keys().copied().collect();
        kept.sort();
        assert_eq!(kept, [1]);
        assert!(steady(&before, &stamps("reset", &[(1, 10)])).is_none());
    }

    #[test]
    fn the_wait_follows_the_database_size_within_bounds() {
        assert_eq!(budget(0), SETTLE_MIN);
        assert_eq!(budget(500_000_000), Duration::from_secs(5));
        assert_eq!(budget(u64::MAX), SETTLE_MAX);
    }
}
