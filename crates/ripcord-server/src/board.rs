//! What the read endpoints, the dashboard and /metrics serve: one picture
//! of the repository, the catalog, the guard and the migrations, refreshed
//! in the background every few seconds and at once after a mutation. Reads
//! never wait on a database or a bucket, so a crowd of readers costs the
//! targets nothing and answers in microseconds.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ripcord_catalog::audit::AuditEntry;
use ripcord_catalog::runs::Run;
use ripcord_catalog::samples::Sample;
use ripcord_guard::check::GuardCheck;
use ripcord_ops::audit::AuditCheck;
use ripcord_ops::check::CheckReport;
use ripcord_ops::incident::IncidentReport;
use ripcord_ops::json::{SnapshotView, StatusReport as MigrateStatus};
use ripcord_ops::overview::{TargetOverview, TierFreshness};
use ripcord_ops::recover::StatusReport;
use ripcord_ops::Ctx;
use serde::Serialize;
use tokio::sync::Notify;

use crate::error::ErrorBody;

/// How often the picture is redrawn without a mutation.
pub const REFRESH: Duration = Duration::from_secs(2);
/// `check` reaches every target: it runs less often.
pub const CHECK_EVERY: Duration = Duration::from_secs(15);
/// How many of each probe's newest samples the guard's picture keeps.
const RECENT_SAMPLES: usize = 20;

/// A part that could not be read, as the API reports it.
pub type Part<T> = Result<T, ErrorBody>;

#[derive(Clone, Debug, Serialize)]
pub struct Board {
    pub at: DateTime<Utc>,
    /// Newest first.
    pub snapshots: Part<Vec<SnapshotView>>,
    pub targets: Vec<TargetOverview>,
    pub tiers: Vec<TierFreshness>,
    pub repository_bytes: Part<u64>,
    /// Newest first.
    pub runs: Part<Vec<Run>>,
    pub status: Part<StatusReport>,
    /// `None` when no migrations are configured.
    pub migrations: Option<Part<MigrateStatus>>,
    /// `None` when no guard probes are configured.
    pub guard: Option<Part<GuardView>>,
    pub audit: Part<AuditView>,
    pub catalog: Part<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct GuardView {
    #[serde(flatten)]
    pub check: GuardCheck,
    /// Each probe's newest samples, newest last.
    pub recent: Vec<ProbeSamples>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ProbeSamples {
    pub probe: String,
    pub samples: Vec<SampleView>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SampleView {
    /// RFC 3339, UTC.
    pub time: String,
    pub ok: bool,
    pub value: Option<f64>,
    pub latency_ms: f64,
    pub observed: String,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct AuditView {
    /// The chain checked against itself and the snapshots' seals.
    pub verification: AuditCheck,
    /// Oldest first.
    pub entries: Vec<AuditEntry>,
}

/// The picture, shared, with the bell that asks for a redraw.
pub struct Boards {
    current: RwLock<Arc<Board>>,
    check: RwLock<Option<Arc<CheckReport>>>,
    pub redraw: Notify,
}

impl Boards {
    pub fn new(first: Board) -> Boards {
        Boards {
            current: RwLock::new(Arc::new(first)),
            check: RwLock::new(None),
            redraw: Notify::new(),
        }
    }

    pub fn get(&self) -> Arc<Board> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn set(&self, board: Board) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(board);
    }

    /// Redraws now and waits for it: after a mutation, the next read sees it.
    pub async fn redraw_now(&self, ctx: &Ctx) {
        let c = ctx.clone();
        if let Ok(board) = tokio::task::spawn_blocking(move || draw(&c)).await {
            self.set(board);
        }
    }

    pub fn check(&self) -> Option<Arc<CheckReport>> {
        self.check.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_check(&self, report: CheckReport) {
        *self.check.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(report));
    }
}

fn part<T>(r: ripcord_ops::Result<T>) -> Part<T> {
    r.map_err(|e| crate::error::ApiError::from(e).body)
}

/// Reads everything once. Blocking: call it on the blocking pool.
pub fn draw(ctx: &Ctx) -> Board {
    let list = ripcord_ops::overview::snapshots(ctx);
    let none = Vec::new();
    let seen = list.as_ref().unwrap_or(&none);
    let targets = ripcord_ops::overview::targets(ctx, seen);
    let tiers = ripcord_ops::overview::tiers(ctx, seen);
    let snapshots = part(list.map(|list| {
        let mut views: Vec<SnapshotView> = list
            .iter()
            .map(|(id, s)| SnapshotView::of(*id, s))
            .collect();
        views.sort_by_key(|v| std::cmp::Reverse(v.time));
        views
    }));
    let catalog = ctx
        .catalog()
        .map(|c| c.location())
        .map_err(|e| crate::error::ApiError::from(e).body);
    let runs = part(
        ctx.catalog()
            .and_then(|mut c| c.runs())
            .map(|mut r| {
                r.sort_by(|a, b| b.started.cmp(&a.started));
                r
            })
            .map_err(Into::into),
    );
    Board {
        at: Utc::now(),
        snapshots,
        targets,
        tiers,
        repository_bytes: part(ripcord_ops::overview::repository_bytes(ctx)),
        runs,
        status: part(ripcord_ops::recover::status(ctx)),
        migrations: ctx
            .config
            .migrations
            .as_ref()
            .map(|_| part(ripcord_ops::migrate::status(ctx, None).map(|s| s.report))),
        guard: (!ctx.config.guard_spec.probes.is_empty()).then(|| part(guard(ctx))),
        audit: part(audit(ctx)),
        catalog,
    }
}

fn guard(ctx: &Ctx) -> ripcord_ops::Result<GuardView> {
    let check = ripcord_guard::check::status(ctx)?;
    let mut catalog = ctx.catalog()?;
    let since = Utc::now().timestamp_millis() - 3_600_000;
    let mut recent = Vec::new();
    for probe in ctx.config.guard_spec.probes.keys() {
        let all: Vec<Sample> = catalog.samples(probe, since)?;
        let from = all.len().saturating_sub(RECENT_SAMPLES);
        recent.push(ProbeSamples {
            probe: probe.clone(),
            samples: all[from..].iter().map(sample_view).collect(),
        });
    }
    Ok(GuardView { check, recent })
}

fn sample_view(s: &Sample) -> SampleView {
    SampleView {
        time: DateTime::from_timestamp_millis(s.at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default(),
        ok: s.ok,
        value: s.value,
        latency_ms: s.latency_ms,
        observed: s.observed.clone(),
    }
}

fn audit(ctx: &Ctx) -> ripcord_ops::Result<AuditView> {
    Ok(AuditView {
        verification: ripcord_ops::audit::verify(ctx)?,
        entries: ripcord_ops::audit::entries(ctx, None)?,
    })
}

/// Redraws the picture every [`REFRESH`], or at once when rung, and runs
/// `check` every [`CHECK_EVERY`]; for as long as the server runs.
pub async fn keep_drawing(ctx: Ctx, boards: Arc<Boards>) {
    let mut last_check: Option<std::time::Instant> = None;
    loop {
        let c = ctx.clone();
        if let Ok(board) = tokio::task::spawn_blocking(move || draw(&c)).await {
            boards.set(board);
        }
        if last_check.map_or(true, |t| t.elapsed() >= CHECK_EVERY) {
            last_check = Some(std::time::Instant::now());
            let (c, b) = (ctx.clone(), Arc::clone(&boards));
            // Slow targets must not hold the rest of the picture back.
            tokio::task::spawn_blocking(move || {
                if let Ok(report) = ripcord_ops::check::check(&c) {
                    b.set_check(report);
                }
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = boards.redraw.notified() => {}
        }
    }
}

/// How long a run's report is served from memory: a crowd reading a
/// running run's page costs the catalog one read a second.
const REPORT_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Reports not asked for this long are dropped.
const REPORT_KEEP: std::time::Duration = std::time::Duration::from_secs(60);

struct Cached {
    at: std::time::Instant,
    report: Arc<IncidentReport>,
    refreshing: bool,
}

/// Runs' reports, as recently read. When one is stale, one request reads
/// it again and the others are answered with the stale one meanwhile.
#[derive(Default)]
pub struct Reports(std::sync::Mutex<std::collections::HashMap<String, Cached>>);

impl Reports {
    /// The report to answer with, or `None` when this caller is to read it.
    pub fn get(&self, run: &str) -> Option<Arc<IncidentReport>> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let c = m.get_mut(run)?;
        if c.at.elapsed() < REPORT_TTL || c.refreshing {
            return Some(Arc::clone(&c.report));
        }
        c.refreshing = true;
        None
    }

    /// The read failed: the next request tries again.
    pub fn failed(&self, run: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get_mut(run) {
            c.refreshing = false;
        }
    }

    pub fn put(&self, run: &str, report: IncidentReport) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, c| c.at.elapsed() < REPORT_KEEP);
        m.insert(
            run.to_string(),
            Cached {
                at: std::time::Instant::now(),
                report: Arc::new(report),
                refreshing: false,
            },
        );
    }
}
