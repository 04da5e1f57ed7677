//! Migrations against the configured target: the plan and the database it
//! belongs to, what that database has recorded, `up` and `down` through the
//! engine with the repository's safety net, and the rows a revert set aside
//! for review.

use std::path::{Path, PathBuf};

use ripcord_catalog::runs::LastGood;
use ripcord_core::config::{OnConflict, SnapshotWhen, TargetConfig};
use ripcord_migrate::analyze::Dialect;
use ripcord_migrate::engine::{
    self, AdoptOptions, AdoptReport, Conn, Database, DownOptions, DownReport, Note, UpOptions,
    UpReport, VerifyReport,
};
use ripcord_migrate::tracking::{AppliedChange, PostgresTracker, SqliteTracker};
use ripcord_migrate::{Format, Plan};

use crate::ctx::Ctx;
use crate::net::{Repo, RepoNet};
use crate::{Error, Result};

/// The plan and the database it belongs to, from `[migrations]`.
pub struct Setup {
    pub dir: PathBuf,
    /// The target's name and configuration; `None` when none is configured.
    pub target: Option<(String, TargetConfig)>,
    /// With psql variables and Flyway placeholders resolved.
    pub plan: Plan,
    /// What `\echo`, `\qecho` and `\warn` in the scripts print.
    pub messages: ripcord_migrate::psql::Messages,
}

impl Setup {
    pub fn dialect(&self) -> Dialect {
        match &self.target {
            Some((_, TargetConfig::Sqlite { .. })) => Dialect::Sqlite,
            _ => Dialect::Postgres,
        }
    }

    /// A SQLite target's file must exist unless the target says `create =
    /// true` (then `up` makes it, and until then nothing is recorded). Lint
    /// reads only the plan and does not ask.
    pub fn require_database(&self) -> Result<()> {
        if let Some((_, TargetConfig::Sqlite { path, create })) = &self.target {
            ripcord_targets::sqlite::require_file(path, *create)?;
        }
        Ok(())
    }

    pub fn target_name(&self) -> Option<&str> {
        self.target.as_ref().map(|(name, _)| name.as_str())
    }
}

/// Reads `[migrations]` and its plan as the files are, psql parts and
/// placeholders left unresolved: enough for what needs only the changes,
/// their order and their checksums (`plan`, `status`), without running a
/// backtick command or needing a variable. `format` overrides the detected
/// one.
pub fn setup(ctx: &Ctx, format: Option<&str>) -> Result<Setup> {
    read_setup(ctx, format)
}

/// [`setup`], then the scripts as they run: psql meta-commands and
/// variables (`set`: `--set name=value`) and Flyway placeholders resolved,
/// transaction control checked. Every failure names the file and line.
pub fn setup_with(ctx: &Ctx, format: Option<&str>, set: &[(String, String)]) -> Result<Setup> {
    let mut s = read_setup(ctx, format)?;
    let dialect = s.dialect();
    let connection = match &s.target {
        Some((_, TargetConfig::Postgres { url, .. })) => {
            ripcord_migrate::psql::connection_variables(url)
        }
        _ => Default::default(),
    };
    s.messages =
        ripcord_migrate::psql::prepare_plan(&mut s.plan, &s.dir, dialect, &connection, set)?;
    Ok(s)
}

fn read_setup(ctx: &Ctx, format: Option<&str>) -> Result<Setup> {
    let Some(migrations) = &ctx.config.migrations else {
        if !ctx.config.has_file() {
            return Err(ripcord_core::config::Config::no_file().into());
        }
        return Err(Error::usage(
            "ripcord.toml has no [migrations] section",
            "add [migrations] with target = \"NAME\" (a postgres or sqlite target) and \
             dir = \"migrations\"",
        ));
    };
    let target = match &migrations.target {
        Some(name) => {
            let config = ctx.config.target(name)?;
            if matches!(config, TargetConfig::Dir { .. }) {
                return Err(Error::usage(
                    format!("[migrations] target {name:?} is a dir target, not a database"),
                    "name a postgres or sqlite target in [migrations] target",
                ));
            }
            Some((name.clone(), config.clone()))
        }
        None => {
            let databases: Vec<(&String, &TargetConfig)> = ctx
                .config
                .targets
                .iter()
                .filter(|(_, t)| !matches!(t, TargetConfig::Dir { .. }))
                .collect();
            match databases.as_slice() {
                [(name, config)] => Some(((*name).clone(), (*config).clone())),
                _ => None,
            }
        }
    };
    let dir = migrations.dir.clone();
    let plan = match format {
        Some(name) => {
            let format: Format = name.parse()?;
            ripcord_migrate::read_as(&dir, format)
        }
        None => ripcord_migrate::read(&dir),
    }?;
    if plan.changes.is_empty() {
        return Err(Error::usage(
            format!("{} holds no {} migrations", shown(&dir), plan.format.name()),
            "leave out --format to detect the format, or name the one the folder holds",
        ));
    }
    Ok(Setup {
        dir,
        target,
        plan,
        messages: Default::default(),
    })
}

/// The plan `[migrations]` holds for target `name`, as the files are, to
/// name the phase a snapshot of it is in; `None` when `[migrations]` does
/// not migrate it or its plan cannot be read (a snapshot does not depend
/// on it).
pub fn plan_of(ctx: &Ctx, name: &str) -> Option<Plan> {
    ctx.config.migrations.as_ref()?;
    let s = read_setup(ctx, None).ok()?;
    (s.target_name() == Some(name)).then_some(s.plan)
}

/// What the target database has recorded: `None` when it has no tracking
/// tables (nothing has run yet). Never creates anything.
pub fn recorded(target: &TargetConfig) -> ripcord_migrate::Result<Option<Vec<AppliedChange>>> {
    ripcord_migrate::tracking::recorded(target)
}

/// What `migrate status` read: the report, the status it came from, and
/// whether the target has tracking tables yet.
pub struct StatusRead {
    pub report: crate::json::StatusReport,
    pub status: ripcord_migrate::tracking::Status,
    pub tracked: bool,
}

/// `migrate status`: each change's state on the target, and the counts.
pub fn status(ctx: &Ctx, format: Option<&str>) -> Result<StatusRead> {
    use ripcord_migrate::tracking::{self, ChangeState};
    let s = setup(ctx, format)?;
    s.require_database()?;
    let (name, target) = database_target(&s)?;
    let rows = crate::Context::context(
        tracking::recorded(&target),
        format!("cannot read what target {name} has recorded"),
    )?;
    let st = tracking::status(&s.plan, rows.as_deref().unwrap_or(&[]));
    let mut counts = crate::json::Counts::default();
    for c in &st.changes {
        match c.state {
            ChangeState::Applied => counts.applied += 1,
            ChangeState::Pending => counts.pending += 1,
            ChangeState::Drifted => counts.drifted += 1,
            ChangeState::Dirty => counts.dirty += 1,
            ChangeState::Unknown => counts.unknown += 1,
        }
    }
    let report = crate::json::StatusReport {
        format: s.plan.format.name().into(),
        target: name,
        phase: st.phase.clone(),
        history_matches: st.history_matches,
        mismatch: st.mismatch.as_ref().map(|m| m.to_string()),
        counts,
        changes: st.changes.clone(),
        change_count: st.changes.len(),
    };
    Ok(StatusRead {
        report,
        status: st,
        tracked: rows.is_some(),
    })
}

/// A path as shown to the user: relative to the working folder when inside it.
pub fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// `user@host`, recorded with each change.
pub fn actor() -> String {
    format!("{}@{}", ripcord_repo::username(), ripcord_repo::hostname())
}

pub fn database_target(s: &Setup) -> Result<(String, TargetConfig)> {
    s.target.clone().ok_or_else(|| {
        Error::usage(
            "[migrations] names no database target",
            "set [migrations] target = \"NAME\" to a configured postgres or sqlite target",
        )
    })
}

/// The database, connected; a failure is a failed pre-flight. A missing
/// SQLite file is created only when `create` is asked for here (by `up`) and
/// allowed by the target's `create = true`.
pub fn open(name: &str, target: &TargetConfig, create: bool) -> Result<Box<dyn Database>> {
    let refused = |e: ripcord_migrate::Error| -> Error {
        Error::Refused {
            message: format!("pre-flight: cannot open target {name}: {e}"),
            hint: "check the target's url or path in ripcord.toml and that the database is up"
                .into(),
        }
    };
    match target {
        TargetConfig::Postgres { url, .. } => {
            Ok(Box::new(PostgresTracker::connect(url).map_err(refused)?))
        }
        TargetConfig::Sqlite {
            path,
            create: may_create,
        } => {
            ripcord_targets::sqlite::require_file(path, create && *may_create)?;
            Ok(Box::new(SqliteTracker::open(path).map_err(refused)?))
        }
        TargetConfig::Dir { .. } => Err(Error::usage(
            format!("target {name} is a dir target, not a database"),
            "name a postgres or sqlite target in [migrations] target",
        )),
    }
}

/// The database `lint` asks whether a statement its SQL parser cannot read
/// is a syntax error: for SQLite an empty in-memory database (only a syntax
/// error counts, so the tables need not exist), for PostgreSQL the target
/// itself. `Err` says why there is none (the server cannot be reached).
pub fn syntax_checker(s: &Setup) -> std::result::Result<Box<dyn Database>, String> {
    match &s.target {
        Some((_, TargetConfig::Postgres { url, .. })) => PostgresTracker::connect(url)
            .map(|db| Box::new(db) as Box<dyn Database>)
            .map_err(|e| e.to_string()),
        _ if s.dialect() == Dialect::Sqlite => SqliteTracker::open(Path::new(":memory:"))
            .map(|db| Box::new(db) as Box<dyn Database>)
            .map_err(|e| e.to_string()),
        _ => Err("no PostgreSQL target is configured".into()),
    }
}

/// `migrate up`.
#[derive(Clone, Debug, Default)]
pub struct UpRequest {
    /// The plan's format, when not detected.
    pub format: Option<String>,
    /// A change, version or `@phase`; `None`: every pending change.
    pub to: Option<String>,
    pub dry_run: bool,
    pub allow_drift: bool,
    /// Apply changes whose touched tables cannot be protected, leaving those
    /// out of the safety snapshots.
    pub allow_unprotected: bool,
    /// How long to wait for a table's lock; `None`: `[migrations] lock_timeout`.
    pub lock_timeout: Option<std::time::Duration>,
    /// psql variables and Flyway placeholders (`--set name=value`).
    pub set: Vec<(String, String)>,
}

/// `migrate down` and `rollback`.
#[derive(Clone, Debug, Default)]
pub struct DownRequest {
    pub format: Option<String>,
    /// The change, version or `@phase` to go back to; `@root`: all.
    pub to: String,
    pub dry_run: bool,
    pub allow_drift: bool,
    /// Overrides every table's configured `on_conflict`.
    pub on_conflict: Option<OnConflict>,
    /// How long to wait for a table's lock; `None`: `[migrations] lock_timeout`.
    pub lock_timeout: Option<std::time::Duration>,
    /// psql variables and Flyway placeholders (`--set name=value`).
    pub set: Vec<(String, String)>,
}

/// What `up` did to the migration target.
pub struct Applied {
    /// The target's name.
    pub target: String,
    pub report: UpReport,
    /// What the scripts' `\echo` printed.
    pub messages: ripcord_migrate::psql::Messages,
}

/// What `down` did to the migration target.
pub struct Reverted {
    pub target: String,
    /// The run that journaled it: `ripcord report RUN`.
    pub run: Option<String>,
    pub report: DownReport,
    /// Rows this run set aside for review: (table, change, row as JSON), newest first.
    pub review: Vec<(String, String, String)>,
    /// What the scripts' `\echo` printed.
    pub messages: ripcord_migrate::psql::Messages,
}

/// Whether `[migrations] snapshot = "always"`.
fn snapshot_always(ctx: &Ctx) -> bool {
    ctx.config
        .migrations
        .as_ref()
        .is_some_and(|m| m.snapshot == SnapshotWhen::Always)
}

/// For each change of the plan, what its safety snapshot will cover and why,
/// read from the scripts alone (`migrate plan --explain`, `lint`).
pub fn explain(ctx: &Ctx, s: &Setup) -> Result<Vec<engine::Explained>> {
    let options = ripcord_migrate::analyze::Options {
        dialect: s.dialect(),
        server_version: None,
    };
    Ok(engine::explain(&s.plan, &options, snapshot_always(ctx))?)
}

fn config_lock_timeout(ctx: &Ctx) -> Option<std::time::Duration> {
    ctx.config.migrations.as_ref()?.lock_timeout()
}

/// Records in the catalog the change `target` is at (`@last-good`) before
/// a `migrate up` moves it on; returns the record it replaces.
fn remember_last_good(ctx: &Ctx, name: &str, target: &TargetConfig) -> Result<Option<LastGood>> {
    let applied = ripcord_migrate::tracking::recorded(target)?.unwrap_or_default();
    let head = applied
        .iter()
        .filter(|c| c.state == ripcord_migrate::tracking::RecordState::Applied)
        .max_by_key(|c| c.plan_order)
        .map(|c| c.name.clone());
    let mut catalog = ctx.catalog()?;
    let earlier = catalog.last_good(name)?;
    catalog.set_last_good(name, head.as_deref(), &ctx.actor())?;
    Ok(earlier)
}

/// `@last-good`: the change the target was at before the latest `migrate
/// up` (`@root` when none was applied then). Any other destination as is.
pub fn resolve_last_good(ctx: &Ctx, target: &str, to: &str) -> Result<String> {
    if !to.eq_ignore_ascii_case("@last-good") {
        return Ok(to.to_string());
    }
    let found = match ctx.catalog_if_exists()? {
        Some(mut c) => c.last_good(target)?,
        None => None,
    };
    match found {
        Some(lg) => Ok(lg.change.unwrap_or_else(|| "@root".into())),
        None => Err(Error::usage(
            format!(
                "@last-good: no `migrate up` of {target} is recorded in {}",
                ctx.catalog_location().name()
            ),
            "name the change or @phase to go back to (`ripcord migrate status` lists them)",
        )),
    }
}

/// Applies the pending changes, each behind a safety snapshot where it needs one.
pub fn up(ctx: &Ctx, req: &UpRequest, note: &mut dyn FnMut(Note<'_>)) -> Result<Applied> {
    if !req.dry_run {
        crate::recover::refuse_in_safe_mode(ctx, "migrate up")?;
    }
    let s = setup_with(ctx, req.format.as_deref(), &req.set)?;
    let (name, target) = database_target(&s)?;
    let mut db = open(&name, &target, true)?;
    let mut net = RepoNet {
        ctx,
        repo: Repo::Lazy(None, "migrate up"),
        target: name.clone(),
        policy: None,
        allow_unprotected: req.allow_unprotected,
        unprotected: Vec::new(),
        taken: None,
    };
    let opts = UpOptions {
        to: req.to.clone(),
        dry_run: req.dry_run,
        allow_drift: req.allow_drift,
        actor: ctx.actor(),
        snapshot_always: snapshot_always(ctx),
        lock_timeout: req.lock_timeout.or_else(|| config_lock_timeout(ctx)),
        change_timeout: ctx
            .config
            .migrations
            .as_ref()
            .and_then(|m| m.change_timeout()),
    };
    let before = if req.dry_run {
        None
    } else {
        Some(remember_last_good(ctx, &name, &target)?)
    };
    let report = engine::up(&mut *db, &mut net, &s.plan, &opts, note)?;
    if let (Some(Some(earlier)), true) = (&before, report.changes.is_empty()) {
        // Nothing ran: the state before the latest up that did stays the one.
        ctx.catalog()?
            .set_last_good(&name, earlier.change.as_deref(), &earlier.actor)?;
    }
    Ok(Applied {
        target: name,
        report,
        messages: s.messages,
    })
}

/// Reverts the changes after `req.to`, newest first, with their data.
pub fn down(ctx: &Ctx, req: &DownRequest, note: &mut dyn FnMut(Note<'_>)) -> Result<Reverted> {
    let s = setup_with(ctx, req.format.as_deref(), &req.set)?;
    let (name, target) = database_target(&s)?;
    let mut db = open(&name, &target, false)?;
    let mut net = RepoNet {
        ctx,
        repo: Repo::Lazy(None, "migrate down"),
        target: name.clone(),
        policy: req.on_conflict,
        allow_unprotected: false,
        unprotected: Vec::new(),
        taken: None,
    };
    let opts = DownOptions {
        to: resolve_last_good(ctx, &name, &req.to)?,
        dry_run: req.dry_run,
        allow_drift: req.allow_drift,
        actor: ctx.actor(),
        lock_timeout: req.lock_timeout.or_else(|| config_lock_timeout(ctx)),
    };
    let report = engine::down(&mut *db, &mut net, &s.plan, &opts, note)?;
    let review = if report.dry_run {
        Vec::new()
    } else {
        review_rows(&mut *db, &report)
    };
    Ok(Reverted {
        run: None,
        messages: s.messages,
        target: name,
        report,
        review,
    })
}

/// `migrate verify`: the verify script of every applied change, read-only.
pub fn verify(
    ctx: &Ctx,
    format: Option<&str>,
    set: &[(String, String)],
) -> Result<(String, VerifyReport)> {
    let s = setup_with(ctx, format, set)?;
    let (name, target) = database_target(&s)?;
    let mut db = open(&name, &target, false)?;
    let report = engine::verify(&mut *db, &s.plan)?;
    Ok((name, report))
}

/// `migrate adopt`.
#[derive(Clone, Debug, Default)]
pub struct AdoptRequest {
    pub format: Option<String>,
    pub accept: bool,
    pub dry_run: bool,
    /// Where the other tool keeps its history, when not in its default place.
    pub history: Option<String>,
}

/// Records the history another tool kept in the target database as
/// ripcord's, without running anything.
pub fn adopt(ctx: &Ctx, req: &AdoptRequest) -> Result<(String, AdoptReport)> {
    let s = setup(ctx, req.format.as_deref())?;
    let (name, target) = database_target(&s)?;
    let mut db = open(&name, &target, false)?;
    let opts = AdoptOptions {
        accept: req.accept,
        dry_run: req.dry_run,
        actor: ctx.actor(),
        history: req.history.clone(),
    };
    let report = engine::adopt(&mut *db, &s.plan, &opts)?;
    Ok((name, report))
}

/// The rows this run set aside for review, to print them.
pub fn review_rows(db: &mut dyn Database, report: &DownReport) -> Vec<(String, String, String)> {
    let changes: Vec<String> = report
        .changes
        .iter()
        .filter(|c| c.tables.iter().any(|t| t.review_rows > 0))
        .map(|c| c.name.clone())
        .collect();
    if changes.is_empty() {
        return Vec::new();
    }
    const LIMIT: i64 = 50;
    match db.conn() {
        Conn::Postgres(client) => client
            .query(
                "SELECT table_name, change, row_data::text FROM ripcord.review
                 WHERE change = ANY($1) ORDER BY id DESC LIMIT $2",
                &[&changes, &LIMIT],
            )
            .map(|rows| {
                rows.iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2)))
                    .collect()
            })
            .unwrap_or_default(),
        Conn::Sqlite(conn) => {
            // The names travel as one JSON array parameter.
            let names = serde_json::to_string(&changes).unwrap_or_default();
            conn.prepare(
                "SELECT table_name, change, row_data FROM ripcord_review
                 WHERE change IN (SELECT value FROM json_each(?1)) ORDER BY id DESC LIMIT ?2",
            )
            .and_then(|mut st| {
                st.query_map(rusqlite::params![names, LIMIT], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_default()
        }
    }
}
