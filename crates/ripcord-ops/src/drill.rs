//! `ripcord drill`: proves the backups restore. The latest snapshot of each
//! target is restored into scratch (a temporary folder for folders and
//! SQLite files, a new database for PostgreSQL), checked as every restore
//! is (each blob re-hashed; each table's rows and checksum against the
//! manifest), timed against `[objectives] rto`, and thrown away, on every
//! way out.

use std::path::PathBuf;
use std::time::Instant;

use ripcord_core::config::TargetConfig;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::restore::{RestoreOptions, RestoreResult};
use crate::{Error, Result};

#[derive(Clone, Debug, Default)]
pub struct DrillOptions {
    /// Targets to drill; empty: every configured one.
    pub targets: Vec<String>,
}

/// One target's drill.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DrillTarget {
    pub target: String,
    pub kind: String,
    /// The snapshot restored, and when it was taken (RFC 3339).
    pub snapshot: Option<String>,
    pub snapshot_time: Option<String>,
    /// `passed` or `failed`.
    pub result: String,
    /// How long the restore took: this target's RTO.
    pub rto_seconds: f64,
    /// Whether it met `[objectives] rto`; none without an objective.
    pub rto_met: Option<bool>,
    /// What was checked: files and bytes, tables matched.
    pub checked: String,
    /// Why it failed.
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DrillReport {
    /// RFC 3339, UTC.
    pub started: String,
    /// `passed` when every target restored and checked, else `failed`.
    pub result: String,
    pub rto_objective_seconds: Option<f64>,
    pub targets: Vec<DrillTarget>,
    pub seconds: f64,
}

pub fn drill(ctx: &Ctx, opts: &DrillOptions) -> Result<DrillReport> {
    let start = Instant::now();
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let names: Vec<String> = if opts.targets.is_empty() {
        ctx.config.targets.keys().cloned().collect()
    } else {
        for t in &opts.targets {
            ctx.config.target(t)?;
        }
        opts.targets.clone()
    };
    if names.is_empty() {
        return Err(Error::usage(
            "there is no target to drill",
            "configure targets under [targets.NAME] in ripcord.toml",
        ));
    }
    // Opening the repository is the first check: without it nothing restores.
    ctx.open_repo()?;
    let objective = ctx.config.objectives.rto().map(|d| d.as_secs_f64());
    let scratch = tempfile::Builder::new()
        .prefix("ripcord-drill-")
        .tempdir()
        .map_err(|e| Error::failed(format!("cannot make a scratch folder for the drill: {e}")))?;
    let mut targets = Vec::new();
    for name in &names {
        let config = ctx.config.target(name)?.clone();
        ctx.say(format!(
            "drill {name}: restoring its latest snapshot into scratch"
        ));
        let began = Instant::now();
        let outcome = drill_one(ctx, name, &config, scratch.path().join(name));
        let seconds = began.elapsed().as_secs_f64();
        let t = match outcome {
            Ok(r) => DrillTarget {
                target: name.clone(),
                kind: config.kind().into(),
                snapshot: Some(r.snapshot.to_string()),
                snapshot_time: Some(r.snapshot_time.clone()),
                result: "passed".into(),
                rto_seconds: seconds,
                rto_met: objective.map(|o| seconds <= o),
                checked: checked(&r),
                error: None,
            },
            Err(e) => DrillTarget {
                target: name.clone(),
                kind: config.kind().into(),
                snapshot: None,
                snapshot_time: None,
                result: "failed".into(),
                rto_seconds: seconds,
                rto_met: None,
                checked: String::new(),
                error: Some(ripcord_targets::postgres::redact(&e.chain())),
            },
        };
        targets.push(t);
    }
    let passed = targets.iter().all(|t| t.result == "passed");
    let report = DrillReport {
        started,
        result: if passed { "passed" } else { "failed" }.into(),
        rto_objective_seconds: objective,
        targets,
        seconds: start.elapsed().as_secs_f64(),
    };
    // The history `ripcord check` reads the last drill's age from.
    let kept = ctx.catalog().and_then(|mut c| {
        c.add_drill(
            &report.started,
            &report.result,
            &serde_json::to_string(&report).expect("plain fields serialize"),
        )
    });
    if let Err(e) = kept {
        ctx.warn(format!("the drill is not in the catalog's history: {e}"));
    }
    crate::audit::record(
        ctx,
        &crate::audit::Record {
            command: "drill",
            args: &names,
            reason: None,
            result: report.result.clone(),
            run: None,
        },
    );
    Ok(report)
}

/// Restores `name`'s latest snapshot into scratch: `folder` for files, a
/// new database beside the live one for PostgreSQL, dropped afterwards.
fn drill_one(
    ctx: &Ctx,
    name: &str,
    config: &TargetConfig,
    folder: PathBuf,
) -> Result<RestoreResult> {
    let mut opts = RestoreOptions {
        snapshot: "latest".into(),
        targets: vec![name.to_string()],
        ..Default::default()
    };
    match config {
        TargetConfig::Postgres { url, .. } => {
            let live = ripcord_targets::postgres::Target::parse(url)?;
            let scratch = format!("ripcord_drill_{}", ripcord_catalog::runs::new_run_id());
            let drop_scratch = {
                let (live, scratch) = (live.clone(), scratch.clone());
                move || {
                    if let Ok(mut c) = live.with_dbname("postgres").connect() {
                        let _ = c.batch_execute(&format!(
                            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                            ripcord_targets::postgres::conn::ident(&scratch)
                        ));
                    }
                }
            };
            // Dropped on every way out: an error, a signal, or done.
            let cleanup = ripcord_core::interrupt::on_interrupt(drop_scratch);
            opts.into = Some(PathBuf::from(
                ripcord_targets::postgres::conn::url_with_dbname(url, &scratch),
            ));
            opts.create = true;
            let result = crate::restore::run(ctx, &opts);
            cleanup.run();
            result
        }
        TargetConfig::Dir { .. } | TargetConfig::Sqlite { .. } => {
            std::fs::create_dir_all(&folder)?;
            opts.into = Some(folder.clone());
            let result = crate::restore::run(ctx, &opts);
            let _ = std::fs::remove_dir_all(&folder);
            result
        }
    }
}

fn checked(r: &RestoreResult) -> String {
    let mut parts = Vec::new();
    for t in &r.targets {
        if let Some(files) = t.files {
            parts.push(format!(
                "{}, {} re-hashed",
                ripcord_core::text::counted(files, "file"),
                ripcord_core::text::count(t.stats.bytes, "byte", "bytes")
            ));
        }
        if t.stats.tables_verified > 0 {
            parts.push(format!(
                "{} matching the snapshot's rows and checksums",
                ripcord_core::text::counted(t.stats.tables_verified, "table")
            ));
        }
    }
    for db in &r.databases {
        let ok = db
            .checks
            .iter()
            .filter(|c| c.checksum_matches && c.rows == c.expected_rows)
            .count();
        parts.push(format!(
            "{} of {} matching the snapshot's rows and checksums",
            ok,
            ripcord_core::text::counted(db.checks.len() as u64, "table")
        ));
    }
    parts.join("; ")
}

/// The report as Markdown.
pub fn to_markdown(r: &DrillReport) -> String {
    let mut m = format!(
        "# Restore drill, {}\n\nResult: **{}**, in {:.1}s. RTO objective: {}.\n\n",
        r.started,
        r.result,
        r.seconds,
        r.rto_objective_seconds
            .map_or("none".to_string(), |s| format!("{s:.0}s"))
    );
    m.push_str("| target | kind | snapshot | result | RTO | met | checked |\n");
    m.push_str("|---|---|---|---|---|---|---|\n");
    for t in &r.targets {
        m.push_str(&format!(
            "| {} | {} | {} | {} | {:.2}s | {} | {} |\n",
            t.target,
            t.kind,
            t.snapshot.as_deref().map_or("-", |s| &s[..8.min(s.len())]),
            t.result,
            t.rto_seconds,
            match t.rto_met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            },
            t.error.as_deref().unwrap_or(&t.checked)
        ));
    }
    m
}
