//! Reading several tables, or block ranges of one, at once.
//!
//! Each worker thread runs one async loop on its own connection: COPY sends
//! a message per row, and blocking on each would cost more than the row.
//! Messages are gathered into blocks before they reach the caller.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::catalog::TableInfo;
use super::conn::{classify, pg_err, Target};
use crate::error::{Error, Result};

/// Bytes of COPY messages gathered before they go to the caller.
const BLOCK: usize = 256 << 10;

/// One unit of copying: a whole table or a block range of one.
#[derive(Debug, Clone)]
pub struct Job {
    pub table: usize,
    pub part: usize,
    /// Block range `[from, to)`; `None` = the whole table.
    pub blocks: Option<(u64, Option<u64>)>,
    pub size: u64,
}

/// Splits tables larger than `split` bytes into block ranges, largest jobs first.
pub fn plan(tables: &[TableInfo], split: u64) -> Vec<Job> {
    let mut jobs = Vec::new();
    let per = (split / 8192).max(1);
    for (i, t) in tables.iter().enumerate() {
        // Its rows are in its partitions, which are tables of their own.
        if t.partitioned() {
            continue;
        }
        if t.relation_size <= split {
            jobs.push(Job {
                table: i,
                part: 0,
                blocks: None,
                size: t.relation_size,
            });
            continue;
        }
        let n = t.relation_size.div_ceil(8192).div_ceil(per);
        for p in 0..n {
            let from = p * per;
            // The last range is open: rows beyond the size seen are still taken.
            let to = if p + 1 == n { None } else { Some(from + per) };
            jobs.push(Job {
                table: i,
                part: p as usize,
                blocks: Some((from, to)),
                size: split,
            });
        }
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.size));
    jobs
}

pub fn copy_sql(t: &TableInfo, blocks: Option<(u64, Option<u64>)>) -> String {
    match blocks {
        None => format!(
            "COPY {} ({}) TO STDOUT (FORMAT binary)",
            t.quoted(),
            t.column_list()
        ),
        Some((from, to)) => {
            let upper = to
                .map(|to| format!(" AND ctid < '({to},0)'::tid"))
                .unwrap_or_default();
            format!(
                // ONLY: an inheritance parent's own rows, as COPY of a whole table.
                "COPY (SELECT {} FROM ONLY {} WHERE ctid >= '({from},0)'::tid{upper}) TO STDOUT (FORMAT binary)",
                t.column_list(),
                t.quoted()
            )
        }
    }
}

/// Copies one job out, handing its data to `feed` in blocks.
pub async fn copy_job<S>(
    client: &tokio_postgres::Client,
    t: &TableInfo,
    job: &Job,
    state: &mut S,
    feed: &(dyn Fn(&mut S, &[u8]) -> Result<()> + Sync),
) -> Result<()> {
    let what = format!("{}.{}", t.schema, t.name);
    let stream = client
        .copy_out(&copy_sql(t, job.blocks))
        .await
        .map_err(pg_err(format!("copying {what}")))?;
    futures_util::pin_mut!(stream);
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK + (64 << 10));
    while let Some(msg) = futures_util::StreamExt::next(&mut stream).await {
        let msg = msg.map_err(|e| pg_err(format!("copying {what}"))(e))?;
        block.extend_from_slice(&msg);
        if block.len() >= BLOCK {
            feed(state, &block)?;
            block.clear();
        }
    }
    feed(state, &block)
}

/// A connection for [`copy_job`] on a thread of its own: an async client
/// driven by a runtime of the thread.
pub struct Reader {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Reader {
    pub fn connect(target: &Target) -> Result<Reader> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start a copy worker", e))?;
        let client = rt.block_on(async {
            let (client, connection) = target
                .async_config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| classify(e, &target.redacted()))?;
            tokio::spawn(connection);
            Ok::<_, Error>(client)
        })?;
        Ok(Reader { rt, client })
    }

    pub fn copy<S>(
        &self,
        t: &TableInfo,
        job: &Job,
        state: &mut S,
        feed: &(dyn Fn(&mut S, &[u8]) -> Result<()> + Sync),
    ) -> Result<()> {
        self.rt
            .block_on(copy_job(&self.client, t, job, state, feed))
    }
}

/// Runs `work` on `workers` threads. Each gets a stop flag that is raised
/// when any of them fails; the first error is returned.
pub fn on_workers(workers: usize, work: &(dyn Fn(&AtomicBool) -> Result<()> + Sync)) -> Result<()> {
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                if let Err(e) = work(&stop) {
                    stop.store(true, Ordering::Relaxed);
                    first_error.lock().expect("error").get_or_insert(e);
                }
            });
        }
    });
    match first_error.into_inner().expect("error") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs `jobs` on up to `workers` connections. Each connection first runs
/// `setup` (e.g. joining an exported snapshot). For every job, `start`
/// makes a state, `feed` receives the data in blocks, and `finish` gets the
/// state at the end. The first error stops the other workers.
#[allow(clippy::too_many_arguments)] // three callbacks: start, feed, finish
pub fn copy_out<S>(
    target: &Target,
    setup: &str,
    tables: &[TableInfo],
    jobs: Vec<Job>,
    workers: usize,
    start: &(dyn Fn(&Job) -> S + Sync),
    feed: &(dyn Fn(&mut S, &[u8]) -> Result<()> + Sync),
    finish: &(dyn Fn(&Job, S) -> Result<()> + Sync),
) -> Result<()> {
    let shown = target.redacted();
    let workers = workers.min(jobs.len()).max(1);
    let queue = Mutex::new(jobs.into_iter().collect::<VecDeque<_>>());
    on_workers(workers, &|stop| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start a copy worker", e))?;
        rt.block_on(async {
            let (client, connection) = target
                .async_config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| classify(e, &shown))?;
            let conn = tokio::spawn(connection);
            if !setup.is_empty() {
                client.batch_execute(setup).await.map_err(pg_err(&shown))?;
            }
            while !stop.load(Ordering::Relaxed) {
                let Some(job) = queue.lock().expect("queue").pop_front() else {
                    break;
                };
                let mut state = start(&job);
                copy_job(&client, &tables[job.table], &job, &mut state, feed).await?;
                finish(&job, state)?;
            }
            drop(client);
            let _ = conn.await;
            Ok(())
        })
    })
}
