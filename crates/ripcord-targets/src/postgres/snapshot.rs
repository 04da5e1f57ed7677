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
}

pub fn snapshot(
    saver: &Saver,
    url: &str,
    opts: &PgSnapshotOptions,
    progress: &dyn Progress,
) -> Result<PgContent> {
    let target = Target::parse(url)?;
    let shown = target.redacted();
    let mut coord = target.connect()?;
    let (server_version, major) = catalog::server_version(&mut coord)?;
    let tools = Tools::find(major)?;

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
    let wanted = match (&opts.tables, opts.skip_missing) {
        (Some(names), true) => {
            let all = catalog::tables(&mut coord, None, &shown)?;
            let path = catalog::search_path(&mut coord)?;
            let present: Vec<String> = names
                .iter()
                .filter(|n| {
                    catalog::tables_from(&all, std::slice::from_ref(n), &path, &shown).is_ok()
                })
                .cloned()
                .collect();
            Some(present)
        }
        (names, _) => names.clone(),
    };
    let tables = catalog::tables(&mut coord, wanted.as_deref(), &shown)?;
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

    let schema = dump_schema(
        saver,
        &tools,
        &target,
        &snap_id,
        opts.tables.as_ref().map(|_| tables.as_slice()),
        progress,
    )?;

    let split = if opts.split_bytes == 0 {
        SPLIT_BYTES
    } else {
        opts.split_bytes
    };
    let jobs = plan(&tables, split);
    let workers = match opts.jobs {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let results: Mutex<Vec<(usize, usize, Stream, RowStats)>> = Mutex::new(Vec::new());
    let setup = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{snap_id}'"
    );
    let progress_fn = |n| progress.bytes(n);
    copy_out(
        &target,
        &setup,
        &tables,
        jobs,
        workers,
        &|job| {
            let t = &tables[job.table];
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
            let t = &tables[job.table];
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
    )?;
    coord.batch_execute("COMMIT").map_err(pg_err(&shown))?;

    let mut parts: Vec<Vec<(usize, Stream, RowStats)>> =
        (0..tables.len()).map(|_| Vec::new()).collect();
    for (table, part, stream, stats) in results.into_inner().expect("results") {
        parts[table].push((part, stream, stats));
    }
    let tables = tables
        .into_iter()
        .zip(parts)
        .map(|(t, mut ps)| {
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
    })
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
