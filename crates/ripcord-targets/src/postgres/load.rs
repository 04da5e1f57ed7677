//! Loading a whole database, and checking each table as soon as it is in.
//!
//! Each table is loaded by one worker in one transaction that empties it
//! first, so that COPY writes its rows frozen and its pages all-visible:
//! nothing later (the check, the index builds, the first queries) has to
//! look up or set hint bits, or rewrite the pages for them. As soon as a
//! table is committed, its read-back (in block ranges) goes to the front of
//! the shared queue, so it runs while other tables load, on pages still in
//! memory, and the largest table's is shared by every worker. Once a
//! table is checked, its indexes are built (`build`, for the tables marked
//! in `early`) while the other tables still load and are checked: the
//! build takes locks the read-back would wait for, so it comes after it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::Client;
use ripcord_repo::index::Index;
use ripcord_repo::manifest::PgTable;
use ripcord_repo::Repository;

use super::catalog::TableInfo;
use super::conn::{pg_err, Target};
use super::copy::{RowStats, Scanner};
use super::parallel::{on_workers, plan, Job, Reader};
use super::restore::{checks, copy_in_with, quoted, TableCheck};
use super::SPLIT_BYTES;
use crate::error::{Error, Result};
use crate::Progress;

enum Work<'a> {
    /// Load table `.1` (its position in the list): all of it in one
    /// transaction with FREEZE, or only part `.2` (of a table loaded by
    /// several workers at once).
    Load(&'a PgTable, usize, Option<usize>),
    Check(Job),
    /// Build the indexes of table `.0`.
    Index(usize),
}

struct Queue<'a> {
    items: VecDeque<Work<'a>>,
    /// Items taken but not finished: they may queue more.
    busy: usize,
}

/// Loads `tables` on `jobs` workers and reads every one back; returns the
/// checks in the order of `tables`.
#[allow(clippy::too_many_arguments)] // the index builds: which tables, and how
pub(super) fn load_and_check(
    repo: &Repository,
    index: &Index,
    target: &Target,
    tables: &[&PgTable],
    jobs: usize,
    early: &[bool],
    build: &(dyn Fn(usize) -> Result<()> + Sync),
    progress: &dyn Progress,
) -> Result<Vec<TableCheck>> {
    let infos: Vec<TableInfo> = tables.iter().map(|t| info(t)).collect();
    let mut items = VecDeque::new();
    let mut loads: Vec<(&PgTable, usize)> = Vec::new();
    // Checks of each table not yet done; the last one queues its indexes.
    let mut checks_left: Vec<usize> = vec![0; tables.len()];
    for (i, t) in tables.iter().enumerate() {
        if t.parts.is_empty() {
            // Nothing to load: the check still proves the table is empty.
            let checks = jobs_for(&infos[i], i);
            checks_left[i] = checks.len();
            items.extend(checks.into_iter().map(Work::Check));
        } else {
            loads.push((t, i));
        }
    }
    // A table larger than a worker's share of the whole would keep one
    // worker busy while the others have nothing left to do: its parts are
    // loaded by all of them at once, each in a transaction of its own.
    let total: u64 = loads.iter().map(|(t, _)| t.size).sum();
    let share = total / jobs.max(1) as u64;
    let mut parts_left: Vec<usize> = vec![0; tables.len()];
    let mut split: Vec<(u64, Work)> = Vec::new();
    for (t, i) in loads {
        if jobs > 1 && t.parts.len() > 1 && t.size > share {
            parts_left[i] = t.parts.len();
            split.extend((0..t.parts.len()).map(|p| (t.parts[p].size, Work::Load(t, i, Some(p)))));
        } else {
            split.push((t.size, Work::Load(t, i, None)));
        }
    }
    split.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    items.extend(split.into_iter().map(|(_, w)| w));
    let parts_left = Mutex::new(parts_left);
    let workers = jobs.min(items.len()).max(1);
    let queue = Mutex::new(Queue { items, busy: 0 });
    let checks_left = Mutex::new(checks_left);
    let changed = Condvar::new();
    let sizes: Mutex<Vec<Option<u64>>> = Mutex::new(vec![None; tables.len()]);
    let sums: Mutex<Vec<RowStats>> = Mutex::new(vec![RowStats::default(); tables.len()]);
    on_workers(workers, &|stop: &AtomicBool| {
        let mut loader: Option<Client> = None;
        let mut reader: Option<Reader> = None;
        let result = (|| loop {
            let work = {
                let mut q = queue.lock().expect("queue");
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    if let Some(w) = q.items.pop_front() {
                        q.busy += 1;
                        break w;
                    }
                    if q.busy == 0 {
                        return Ok(());
                    }
                    // Woken when a load queues its checks; the timeout sees a stop.
                    q = changed
                        .wait_timeout(q, Duration::from_millis(50))
                        .expect("queue")
                        .0;
                }
            };
            match work {
                Work::Load(t, i, part) => {
                    let client = match &mut loader {
                        Some(c) => c,
                        None => loader.insert(loader_connection(target)?),
                    };
                    if let Some(p) = part {
                        copy_in_with(repo, index, client, t, &t.parts[p], false, progress)?;
                        ripcord_core::failpoint::hit("pg-part-loaded");
                        let mut left = parts_left.lock().expect("parts");
                        left[i] -= 1;
                        if left[i] > 0 {
                            drop(left);
                            queue.lock().expect("queue").busy -= 1;
                            changed.notify_all();
                            continue;
                        }
                    } else {
                        load_table(repo, index, client, t, progress)?;
                    }
                    let size: i64 = client
                        .query_one(
                            "SELECT pg_relation_size($1::text::regclass)::int8",
                            &[&quoted(t)],
                        )
                        .map_err(pg_err(format!("sizing {}", t.qualified())))?
                        .get(0);
                    sizes.lock().expect("sizes")[i] = Some(size as u64);
                    let mut sized = info(t);
                    sized.relation_size = size as u64;
                    let checks = jobs_for(&sized, i);
                    checks_left.lock().expect("checks")[i] = checks.len();
                    let mut q = queue.lock().expect("queue");
                    // Largest first, ahead of the loads still waiting.
                    for job in checks.into_iter().rev() {
                        q.items.push_front(Work::Check(job));
                    }
                    q.busy -= 1;
                    changed.notify_all();
                }
                Work::Check(job) => {
                    let reader = match &reader {
                        Some(r) => r,
                        None => reader.insert(Reader::connect(target)?),
                    };
                    let mut sized = info(tables[job.table]);
                    sized.relation_size = sizes.lock().expect("sizes")[job.table].unwrap_or(0);
                    let mut scanner = Scanner::new();
                    reader.copy(&sized, &job, &mut scanner, &|s, block| {
                        s.feed(block);
                        Ok(())
                    })?;
                    let stats = scanner.finish().map_err(|detail| Error::Pg {
                        context: format!("reading {}", tables[job.table].qualified()),
                        detail,
                    })?;
                    sums.lock().expect("sums")[job.table].add(stats);
                    let done = {
                        let mut left = checks_left.lock().expect("checks");
                        left[job.table] -= 1;
                        left[job.table] == 0
                    };
                    let mut q = queue.lock().expect("queue");
                    if done && early[job.table] {
                        q.items.push_front(Work::Index(job.table));
                    }
                    q.busy -= 1;
                    changed.notify_all();
                }
                Work::Index(i) => {
                    build(i)?;
                    ripcord_core::failpoint::hit("pg-table-indexed");
                    queue.lock().expect("queue").busy -= 1;
                    changed.notify_all();
                }
            }
        })();
        if result.is_err() {
            // Wake the others now rather than at their next timeout.
            stop.store(true, Ordering::Relaxed);
            changed.notify_all();
        }
        result
    })?;
    Ok(checks(tables, sums.into_inner().expect("sums")))
}

fn loader_connection(target: &Target) -> Result<Client> {
    let mut client = target.connect()?;
    // Each table commits on its own; the load is checked as a whole, and
    // one durable commit at the end covers every earlier one.
    client
        .batch_execute("SET synchronous_commit = off")
        .map_err(pg_err("preparing a loader"))?;
    Ok(client)
}

/// The read-back jobs of one table, numbered as table `i`.
fn jobs_for(t: &TableInfo, i: usize) -> Vec<Job> {
    let mut jobs = plan(std::slice::from_ref(t), SPLIT_BYTES);
    for j in &mut jobs {
        j.table = i;
    }
    jobs
}

fn info(t: &PgTable) -> TableInfo {
    TableInfo {
        schema: t.schema.clone(),
        name: t.name.clone(),
        oid: 0,
        kind: if t.partitioned { 'p' } else { 'r' },
        parents: t.parents.clone(),
        relation_size: 0,
        columns: t.columns.clone(),
        indexes: vec![],
    }
}

/// One table in one transaction: emptied first (it is new, but another
/// transaction created it), then every part copied in with FREEZE. Where it
/// cannot be emptied (a foreign key of a table outside the snapshot points
/// at it), its parts are copied in plainly.
fn load_table(
    repo: &Repository,
    index: &Index,
    client: &mut Client,
    t: &PgTable,
    progress: &dyn Progress,
) -> Result<()> {
    let what = format!("loading {}", t.qualified());
    let mut tx = client.transaction().map_err(pg_err(&what))?;
    let freeze = tx
        .batch_execute(&format!("TRUNCATE ONLY {}", quoted(t)))
        .is_ok();
    if !freeze {
        tx.rollback().map_err(pg_err(&what))?;
        tx = client.transaction().map_err(pg_err(&what))?;
    }
    for part in &t.parts {
        copy_in_with(repo, index, &mut tx, t, part, freeze, progress)?;
        ripcord_core::failpoint::hit("pg-part-loaded");
    }
    tx.commit().map_err(pg_err(&what))
}
