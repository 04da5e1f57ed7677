//! Consistent, parallel snapshots.

use std::sync::Mutex;

use ripcord_repo::chunk::save_stream;
use ripcord_repo::manifest::{PgContent, PgDependent, PgSequence, PgTable, Stream};
use ripcord_repo::saver::Saver;

use super::catalog::{self, TableInfo};
use super::chunker::RowChunker;
use super::conn::{ident, pg_err, Target};
use super::copy::{RowStats, Scanner};
use super::parallel::{copy_out, plan};
use super::reuse::{self, Stamps};
use super::tools::{self, Tools};
use super::SPLIT_BYTES;
use crate::error::{Error, Result};
use crate::Progress;

#[derive(Clone, Debug, Default)]
pub struct PgSnapshotOptions {
    /// Parallel workers; 0 means one per core.
    pub jobs: usize,
    /// Only these tables (`table` or `schema.table`).
    pub tables: Option<Vec<String>>,
    /// Leave out named tables that do not exist (a safety snapshot before
    /// restoring a dropped table has nothing to keep of it).
    pub skip_missing: bool,
    /// Tables larger than this are split into block ranges; 0 means [`SPLIT_BYTES`].
    pub split_bytes: u64,
    /// The previous snapshot of this database: changed chunks are stored as
    /// deltas against its chunks at the same place.
    pub parent: Option<PgContent>,
    /// The newest snapshot of this database with statistics stamps (a
    /// whole-database one): tables whose stamps have not moved since are
    /// taken over from it unread.
    pub stamped: Option<PgContent>,
    /// Leave out selected tables that cannot be read in full (a foreign
    /// table, no SELECT right, row-level security the role cannot bypass)
    /// instead of refusing; they are listed in the content.
    pub allow_unprotected: bool,
}

pub fn snapshot(
    saver: &Saver,
    url: &str,
    opts: &PgSnapshotOptions,
    progress: &dyn Progress,
) -> Result<PgContent> {
    snapshot_with(saver, url, opts, progress, &mut |_| {})
}

/// [`snapshot`], and `inspect` reads what else the caller wants on the
/// connection that holds the snapshot, in its transaction, so that it
/// agrees with the data (ripcord's migration state). It runs in a
/// savepoint that is rolled back afterwards: an error of its own does not
/// end the snapshot, and it cannot change what the snapshot reads.
pub fn snapshot_with(
    saver: &Saver,
    url: &str,
    opts: &PgSnapshotOptions,
    progress: &dyn Progress,
    inspect: &mut dyn FnMut(&mut postgres::Client),
) -> Result<PgContent> {
    let target = Target::parse(url)?;
    let shown = target.redacted();
    let mut coord = target.connect()?;
    let (server_version, major) = catalog::server_version(&mut coord)?;
    let tools = Tools::find(major)?;

    // A whole-database snapshot reuses the parent's entry of each table no
    // write reached since (see `reuse`): the statistics are read settled
    // once before the consistent point and once after it.
    let mut stats = match opts.tables.is_none() && reuse::supported(major) {
        true => Some(target.connect()?),
        false => None,
    };
    let mut own = Vec::new();
    for c in std::iter::once(&mut coord).chain(stats.as_mut()) {
        let pid: i32 = c
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(pg_err(&shown))?
            .get(0);
        own.push(pid);
    }
    let mut budget = std::time::Duration::ZERO;
    let before = match &mut stats {
        Some(c) => {
            let bytes: i64 = c
                .query_one("SELECT pg_database_size(current_database())", &[])
                .map_err(pg_err(&shown))?
                .get(0);
            let bytes = bytes.max(0) as u64;
            budget = reuse::budget(bytes);
            // Statistics that cannot be read only mean every table is read.
            match reuse::worth_it(bytes) {
                true => reuse::settled_read(c, &own, budget).ok().flatten(),
                false => None,
            }
        }
        None => None,
    };

    // Everything below reads through this exported snapshot.
    coord
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .map_err(pg_err(&shown))?;
    let row = coord
        .query_one(
            "SELECT pg_export_snapshot(), txid_snapshot_xmin(txid_current_snapshot()),
                    txid_current_snapshot()::text",
            &[],
        )
        .map_err(pg_err(&shown))?;
    let snap_id: String = row.get(0);
    let xmin: i64 = row.get(1);
    let txid_snapshot: String = row.get(2);
    // Rows row-level security would hide are an error, never left out.
    coord
        .batch_execute("SET LOCAL row_security = off; SAVEPOINT ripcord_inspect")
        .map_err(pg_err(&shown))?;
    inspect(&mut coord);
    coord
        .batch_execute("ROLLBACK TO SAVEPOINT ripcord_inspect; RELEASE SAVEPOINT ripcord_inspect")
        .map_err(pg_err(&shown))?;
    let all = catalog::listing(&mut coord)?;
    let path = catalog::search_path(&mut coord)?;
    let mut tables = match &opts.tables {
        None => all.iter().filter(|t| t.kind != 'f').cloned().collect(),
        Some(names) => {
            let names: Vec<String> = if opts.skip_missing {
                names
                    .iter()
                    .filter(|n| {
                        catalog::tables_from(&all, std::slice::from_ref(n), &path, &shown).is_ok()
                    })
                    .cloned()
                    .collect()
            } else {
                names.clone()
            };
            catalog::with_descendants(&all, catalog::tables_from(&all, &names, &path, &shown)?)
        }
    };
    let unprotected = catalog::unprotected(&mut coord, &tables)?;
    if !unprotected.is_empty() {
        if !opts.allow_unprotected {
            return Err(Error::Unprotected {
                target: shown,
                tables: unprotected
                    .into_iter()
                    .map(|u| (u.table, u.reason, u.fix))
                    .collect(),
            });
        }
        tables.retain(|t| !unprotected.iter().any(|u| u.table == t.qualified()));
        for u in &unprotected {
            progress.warn(format!("{} is not protected: {}", u.table, u.reason));
        }
    }
    let after = match (&before, &mut stats) {
        (Some(_), Some(c)) => reuse::settled_read(c, &own, budget).ok().flatten(),
        _ => None,
    };
    drop(stats);
    let steady = match (&before, &after) {
        (Some(b), Some(a)) => reuse::steady(b, a),
        _ => None,
    };
    let reused: Vec<Option<PgTable>> = tables
        .iter()
        .map(|t| reusable(t, steady.as_ref(), opts.stamped.as_ref(), saver))
        .collect();
    let reading: Vec<TableInfo> = tables
        .iter()
        .zip(&reused)
        .filter(|(_, r)| r.is_none())
        .map(|(t, _)| t.clone())
        .collect();

    // The schema is dumped through the same exported snapshot while the
    // rows are read: the transaction that exports it stays open until the
    // copy and the count are done, and the dump is waited for below.
    let only = opts.tables.as_ref().map(|_| tables.as_slice());
    let results: Mutex<Vec<(usize, usize, Stream, RowStats)>> = Mutex::new(Vec::new());
    let (dumped, sequences, dependents, counted, copied) = std::thread::scope(|outer| {
        let dump = outer.spawn(|| dump_schema(saver, &tools, &target, &snap_id, only, progress));
        let read = (|| -> Result<_> {
            let seq_names =
                catalog::sequences(&mut coord, opts.tables.as_ref().map(|_| tables.as_slice()))?;
            let mut sequences = Vec::new();
            for (schema, name, owner) in seq_names {
                let row = coord
                    .query_one(
                        &format!(
                            "SELECT last_value, is_called FROM {}.{}",
                            ident(&schema),
                            ident(&name)
                        ),
                        &[],
                    )
                    .map_err(pg_err(format!("reading sequence {schema}.{name}")))?;
                sequences.push(PgSequence {
                    schema,
                    name,
                    owner,
                    last_value: row.get(0),
                    is_called: row.get(1),
                });
            }

            let dependents = match &opts.tables {
                Some(_) => dependents(&mut coord, &tables, &shown)?,
                None => Vec::new(),
            };

            let split = if opts.split_bytes == 0 {
                SPLIT_BYTES
            } else {
                opts.split_bytes
            };
            let jobs = plan(&reading, split);
            let workers = match opts.jobs {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n,
            };
            let setup = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{snap_id}'; \
         SET LOCAL row_security = off"
    );
            // A safety snapshot must hold every row of the tables it names: each
            // tree is counted through its top table while the workers copy.
            let tops: Vec<usize> = match &opts.tables {
                Some(_) => (0..reading.len())
                    .filter(|&i| {
                        !reading
                            .iter()
                            .any(|p| reading[i].parents.contains(&p.qualified()))
                    })
                    .collect(),
                None => Vec::new(),
            };
            let progress_fn = |n| progress.bytes(n);
            let counting = &mut coord;
            let reading_ref = &reading;
            let (counted, copied) = std::thread::scope(|scope| {
                let counter = scope.spawn(move || -> Result<Vec<(usize, i64)>> {
                    let mut out = Vec::new();
                    for &i in &tops {
                        let t = &reading_ref[i];
                        let n: i64 = counting
                            .query_one(&format!("SELECT count(*) FROM {}", t.quoted()), &[])
                            .map_err(pg_err(format!("counting the rows of {}", t.qualified())))?
                            .get(0);
                        out.push((i, n));
                    }
                    Ok(out)
                });
                let copied = copy_out(
                    &target,
                    &setup,
                    &reading,
                    jobs,
                    workers,
                    &|job| {
                        let t = &reading[job.table];
                        let like = opts
                            .parent
                            .as_ref()
                            .and_then(|p| {
                                p.tables
                                    .iter()
                                    .find(|pt| pt.schema == t.schema && pt.name == t.name)
                            })
                            .and_then(|pt| pt.parts.get(job.part))
                            .map(|s| (s, saver.known()));
                        (RowChunker::new(saver, like, &progress_fn), Scanner::new())
                    },
                    &|(chunker, scanner), block| chunker.push(block, scanner),
                    &|job, (chunker, scanner)| {
                        let t = &reading[job.table];
                        let stream = chunker.finish()?;
                        let stats = scanner.finish().map_err(|detail| Error::Pg {
                            context: format!("copying {}.{}", t.schema, t.name),
                            detail,
                        })?;
                        ripcord_core::failpoint::hit("pg-part-copied");
                        results
                            .lock()
                            .expect("results")
                            .push((job.table, job.part, stream, stats));
                        Ok(())
                    },
                );
                (counter.join().expect("the row counter panicked"), copied)
            });
            Ok((sequences, dependents, counted, copied))
        })();
        let dumped = dump.join().expect("the schema dump panicked");
        match read {
            Ok((sequences, dependents, counted, copied)) => {
                (dumped, sequences, dependents, counted, copied)
            }
            Err(e) => (dumped, Vec::new(), Vec::new(), Err(e), Ok(())),
        }
    });
    copied?;
    let counted = counted?;
    let schema = dumped?;
    coord.batch_execute("COMMIT").map_err(pg_err(&shown))?;

    let mut parts: Vec<Vec<(usize, Stream, RowStats)>> =
        (0..reading.len()).map(|_| Vec::new()).collect();
    for (table, part, stream, stats) in results.into_inner().expect("results") {
        parts[table].push((part, stream, stats));
    }
    // Rows per table, to check each counted tree.
    let copied: Vec<u64> = parts
        .iter()
        .map(|ps| ps.iter().map(|p| p.2.rows).sum())
        .collect();
    for (top, expected) in counted {
        let mut tree = vec![top];
        let mut i = 0;
        while i < tree.len() {
            let q = reading[tree[i]].qualified();
            let children: Vec<usize> = (0..reading.len())
                .filter(|&j| reading[j].parents.contains(&q) && !tree.contains(&j))
                .collect();
            tree.extend(children);
            i += 1;
        }
        let got: u64 = tree.iter().map(|&j| copied[j]).sum();
        if got != expected as u64 {
            return Err(Error::Mismatch {
                detail: format!(
                    "the safety snapshot of {} holds {got} rows, the table has {expected}",
                    reading[top].qualified()
                ),
            });
        }
    }
    let mut parts = parts.into_iter();
    let tables = tables
        .into_iter()
        .zip(reused)
        .map(|(t, reused)| {
            if let Some(entry) = reused {
                return entry;
            }
            let mut ps = parts.next().expect("a part list per table read");
            ps.sort_by_key(|p| p.0);
            let mut stats = RowStats::default();
            for p in &ps {
                stats.add(p.2);
            }
            PgTable {
                schema: t.schema,
                name: t.name,
                rows: stats.rows,
                checksum: stats.checksum(),
                size: ps.iter().map(|p| p.1.size).sum(),
                relation_size: t.relation_size,
                columns: t.columns,
                indexes: t.indexes,
                parts: ps.into_iter().map(|p| p.1).collect(),
                partitioned: t.kind == 'p',
                stamp: steady.as_ref().and_then(|s| s.tables.get(&t.oid).copied()),
                reused: false,
                parents: t.parents,
            }
        })
        .collect();
    Ok(PgContent {
        server_version,
        schema,
        tables,
        sequences,
        partial: opts.tables.is_some(),
        xmin: u64::try_from(xmin).ok(),
        txid_snapshot: Some(txid_snapshot),
        dependents,
        unprotected: unprotected
            .into_iter()
            .map(|u| format!("{}: {}", u.table, u.reason))
            .collect(),
        stats_epoch: steady.map(|s| s.epoch),
    })
}

/// The parent's entry of `t`, taken over when its stamp in `steady` (the
/// statistics that hold for this snapshot) is the one the parent recorded,
/// under the same epoch, with the same columns, and every chunk it names is
/// in the repository.
fn reusable(
    t: &TableInfo,
    steady: Option<&Stamps>,
    parent: Option<&PgContent>,
    saver: &Saver,
) -> Option<PgTable> {
    let steady = steady?;
    let parent = parent?;
    let stamp = steady.tables.get(&t.oid)?;
    if parent.stats_epoch.as_deref() != Some(steady.epoch.as_str()) {
        return None;
    }
    let old = parent
        .tables
        .iter()
        .find(|p| p.schema == t.schema && p.name == t.name)?;
    let same = old.stamp.as_ref() == Some(stamp)
        && old.columns == t.columns
        && old.partitioned == t.partitioned()
        && old
            .parts
            .iter()
            .all(|s| s.chunks.iter().all(|c| saver.is_known(c)));
    same.then(|| PgTable {
        schema: t.schema.clone(),
        name: t.name.clone(),
        rows: old.rows,
        checksum: old.checksum.clone(),
        size: old.size,
        relation_size: t.relation_size,
        columns: t.columns.clone(),
        indexes: t.indexes.clone(),
        parts: old.parts.clone(),
        partitioned: old.partitioned,
        parents: t.parents.clone(),
        stamp: Some(*stamp),
        reused: true,
    })
}

/// The tables of `names` (`None`: every table), with their partitions and
/// inheritance children, that a snapshot could not hold in full, as
/// (`schema.name`, why, how to fix it). Names that do not exist are
/// skipped. Reads only the catalog.
pub fn unprotected(url: &str, names: Option<&[String]>) -> Result<Vec<(String, String, String)>> {
    let target = Target::parse(url)?;
    let shown = target.redacted();
    let mut client = target.connect()?;
    let all = catalog::listing(&mut client)?;
    let path = catalog::search_path(&mut client)?;
    let tables = match names {
        None => all.iter().filter(|t| t.kind != 'f').cloned().collect(),
        Some(names) => {
            let present: Vec<String> = names
                .iter()
                .filter(|n| {
                    catalog::tables_from(&all, std::slice::from_ref(n), &path, &shown).is_ok()
                })
                .cloned()
                .collect();
            catalog::with_descendants(&all, catalog::tables_from(&all, &present, &path, &shown)?)
        }
    };
    Ok(catalog::unprotected(&mut client, &tables)?
        .into_iter()
        .map(|u| (u.table, u.reason, u.fix))
        .collect())
}

/// What depends on `tables` and a `CASCADE` can take along (see
/// [`super::dependents`]), as the exported snapshot sees it.
fn dependents(
    coord: &mut postgres::Client,
    tables: &[TableInfo],
    shown: &str,
) -> Result<Vec<PgDependent>> {
    let names: Vec<String> = tables.iter().map(|t| t.quoted()).collect();
    // Definitions with every name qualified, to be valid whatever the
    // search_path of the revert.
    coord
        .batch_execute("SET LOCAL search_path = pg_catalog")
        .map_err(pg_err(shown))?;
    super::dependents::record(coord, &names)
}

fn dump_schema(
    saver: &Saver,
    tools: &Tools,
    target: &Target,
    snap_id: &str,
    only: Option<&[TableInfo]>,
    progress: &dyn Progress,
) -> Result<Stream> {
    let mut cmd = tools::command(&tools.pg_dump);
    cmd.arg("--schema-only")
        .arg("--format=custom")
        .arg(format!("--snapshot={snap_id}"))
        .arg("--no-password")
        .envs(target.tool_env());
    if let Some(tables) = only {
        if tables.is_empty() {
            return Ok(save_stream(saver, &[][..], "schema", &|_| {})?);
        }
        for t in tables {
            cmd.arg(format!("--table={}", t.quoted()));
        }
    }
    cmd.arg(format!("--dbname={}", target.tool_conninfo()));
    let archive = tools::run(cmd, "pg_dump --schema-only")?;
    Ok(save_stream(saver, &archive[..], "schema", &|n| {
        progress.bytes(n)
    })?)
}
