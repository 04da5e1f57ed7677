//! The JSON API under `/api/v1`. Reads are served from the board; every
//! mutation calls the library as the command line does, acting as the
//! token's name, so the audit and the runs' journal name who did it.

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ripcord_catalog::runs::{new_run_id, Run};
use ripcord_catalog::tokens::{Role, TokenRecord};
use ripcord_ops::audit::{self, Record};
use ripcord_ops::json::SnapshotView;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::board::{Board, GuardView, Part};
use crate::error::{blocking, ApiError, ApiResult};
use crate::live::LiveReporter;
use crate::state::Shared;

/// Pages hold at most this many items.
pub const MAX_LIMIT: usize = 500;
const DEFAULT_LIMIT: usize = 50;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/targets", get(targets))
        .route("/snapshots", get(snapshots))
        .route("/tiers", get(tiers))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run_report))
        .route("/runs/{id}/resume", post(resume))
        .route("/status", get(status))
        .route("/migrations", get(migrations))
        .route("/guard", get(guard))
        .route("/audit", get(audit_log))
        .route("/check", get(check))
        .route("/recover", post(recover))
        .route("/rollback", post(rollback))
        .route("/ack", post(ack))
        .route("/tokens", get(tokens).post(add_token))
        .route("/tokens/{name}", delete(revoke_token))
        .route("/forget", post(forget))
        .route("/openapi.json", get(crate::openapi::document))
}

/// A query string, its errors as JSON.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// A JSON body, its errors as JSON.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(j) => Ok(Body(j.0)),
            Err(e) => {
                let status = e.status();
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    _ => "bad_request",
                };
                let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
                    StatusCode::BAD_REQUEST
                } else {
                    status
                };
                Err(ApiError::new(status, code, e.body_text()))
            }
        }
    }
}

/// A JSON body that may be left out: then `T::default()`.
pub struct MaybeBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for MaybeBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "payload_too_large", e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(MaybeBody)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid: {e}")))
    }
}

/// A path parameter, its errors as JSON.
pub struct P(pub String);

impl<S: Send + Sync> FromRequestParts<S> for P {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| P(p.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// A part of the board, or why it could not be read (503).
fn served<T: Clone>(part: &Part<T>) -> ApiResult<T> {
    seen(part).cloned()
}

/// The same, borrowed: lists are paged from the board without copying them.
fn seen<T>(part: &Part<T>) -> ApiResult<&T> {
    part.as_ref().map_err(|body| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        body: body.clone(),
    })
}

fn board(state: &Shared) -> std::sync::Arc<Board> {
    state.boards.get()
}

async fn targets(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<Vec<ripcord_ops::overview::TargetOverview>>> {
    p.need(Role::Reader)?;
    Ok(Json(board(&state).targets.clone()))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    /// Only snapshots holding this target.
    pub target: Option<String>,
    /// Only snapshots of this tier.
    pub tier: Option<String>,
    /// At most this many (1 to 500; 50 when not given).
    pub limit: Option<usize>,
    /// How many of the newest to pass over.
    pub offset: Option<usize>,
}

/// One page of a list, newest first.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Page<T> {
    /// How many there are in all (after the filters).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub items: Vec<T>,
}

fn page<T>(all: Vec<T>, limit: Option<usize>, offset: Option<usize>) -> ApiResult<Page<T>> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(
            ApiError::bad_request(format!("limit {limit} is out of range"))
                .hint(format!("give a limit from 1 to {MAX_LIMIT}")),
        );
    }
    let offset = offset.unwrap_or(0);
    Ok(Page {
        total: all.len(),
        offset,
        limit,
        items: all.into_iter().skip(offset).take(limit).collect(),
    })
}

async fn snapshots(
    State(state): State<Shared>,
    p: Principal,
    Q(q): Q<SnapshotQuery>,
) -> ApiResult<Response> {
    p.need(Role::Reader)?;
    let b = board(&state);
    let all: Vec<&SnapshotView> = seen(&b.snapshots)?
        .iter()
        .filter(|s| {
            q.target
                .as_ref()
                .map_or(true, |t| s.targets.iter().any(|x| &x.target == t))
        })
        .filter(|s| q.tier.is_none() || s.tier == q.tier)
        .collect();
    Ok(Json(page(all, q.limit, q.offset)?).into_response())
}

async fn tiers(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<Vec<ripcord_ops::overview::TierFreshness>>> {
    p.need(Role::Reader)?;
    Ok(Json(board(&state).tiers.clone()))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// At most this many (1 to 500; 50 when not given).
    pub limit: Option<usize>,
    /// How many of the newest to pass over.
    pub offset: Option<usize>,
}

async fn runs(
    State(state): State<Shared>,
    p: Principal,
    Q(q): Q<PageQuery>,
) -> ApiResult<Response> {
    p.need(Role::Reader)?;
    let b = board(&state);
    let all: Vec<&Run> = seen(&b.runs)?.iter().collect();
    Ok(Json(page(all, q.limit, q.offset)?).into_response())
}

async fn run_report(
    State(state): State<Shared>,
    p: Principal,
    P(id): P,
) -> ApiResult<Json<ripcord_ops::incident::IncidentReport>> {
    p.need(Role::Reader)?;
    if let Some(r) = state.reports.get(&id) {
        return Ok(Json((*r).clone()));
    }
    let ctx = state.ctx.clone();
    let reports = std::sync::Arc::clone(&state.reports);
    let report = blocking(move || {
        let known = ctx
            .catalog_if_exists()?
            .map(|mut c| c.run(&id))
            .transpose()?;
        if known.flatten().is_none() {
            return Err(ApiError::not_found(format!("no run {id:?}"))
                .hint("GET /api/v1/runs lists the runs"));
        }
        match ripcord_ops::incident::report(&ctx, &id) {
            Ok(r) => {
                reports.put(&id, r.clone());
                Ok(r)
            }
            Err(e) => {
                reports.failed(&id);
                Err(e.into())
            }
        }
    })
    .await?;
    Ok(Json(report))
}

/// The run in progress, how far it is, and safe mode.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct StatusView {
    #[serde(flatten)]
    pub status: ripcord_ops::recover::StatusReport,
    /// Runs this server is running now.
    pub server_runs: Vec<String>,
    /// What the server's run reported last, while one runs.
    pub progress: Option<crate::live::RunProgress>,
}

async fn status(State(state): State<Shared>, p: Principal) -> ApiResult<Json<StatusView>> {
    p.need(Role::Reader)?;
    Ok(Json(status_view(&state)?))
}

pub fn status_view(state: &Shared) -> ApiResult<StatusView> {
    let server_runs = state.runs.active();
    Ok(StatusView {
        status: served(&board(state).status)?,
        progress: (!server_runs.is_empty()).then(|| state.live.now()),
        server_runs,
    })
}

async fn migrations(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<ripcord_ops::json::StatusReport>> {
    p.need(Role::Reader)?;
    match &board(&state).migrations {
        None => Err(not_configured("migrations", "[migrations] in ripcord.toml")),
        Some(part) => Ok(Json(served(part)?)),
    }
}

fn not_configured(what: &str, how: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_configured",
        format!("no {what} are configured"),
    )
    .hint(format!("configure them with {how}"))
}

async fn guard(State(state): State<Shared>, p: Principal) -> ApiResult<Json<GuardView>> {
    p.need(Role::Reader)?;
    match &board(&state).guard {
        None => Err(not_configured(
            "guard probes",
            "[guard.probes.NAME] and [[guard.rules]]",
        )),
        Some(part) => Ok(Json(served(part)?)),
    }
}

/// What `GET /audit` answers: a `board::AuditView` of the newest entries.
#[derive(Serialize)]
struct AuditPage<'a> {
    verification: &'a ripcord_ops::audit::AuditCheck,
    entries: &'a [ripcord_catalog::audit::AuditEntry],
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only the newest this many entries (1 to 500; 50 when not given).
    pub limit: Option<usize>,
}

async fn audit_log(
    State(state): State<Shared>,
    p: Principal,
    Q(q): Q<AuditQuery>,
) -> ApiResult<Response> {
    p.need(Role::Reader)?;
    let b = board(&state);
    let view = seen(&b.audit)?;
    let limit = page(Vec::<()>::new(), q.limit, None)?.limit;
    let from = view.entries.len().saturating_sub(limit);
    Ok(Json(AuditPage {
        verification: &view.verification,
        entries: &view.entries[from..],
    })
    .into_response())
}

async fn check(
    State(state): State<Shared>,
    p: Principal,
) -> ApiResult<Json<ripcord_ops::check::CheckReport>> {
    p.need(Role::Reader)?;
    if let Some(c) = state.boards.check() {
        return Ok(Json((*c).clone()));
    }
    let ctx = state.ctx.clone();
    let report = blocking(move || Ok(ripcord_ops::check::check(&ctx)?)).await?;
    state.boards.set_check(report.clone());
    Ok(Json(report))
}

/// A run was started; follow it at `GET /api/v1/runs/{run}`.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct RunStarted {
    pub run: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// The runbook level to start at.
    pub level: String,
    /// Why: it goes into the journal, the audit and the report.
    pub reason: String,
}

async fn recover(
    State(state): State<Shared>,
    p: Principal,
    Body(req): Body<RecoverRequest>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    p.need(Role::Operator)?;
    let run = start_recover(&state, &p, req).await?;
    Ok((StatusCode::ACCEPTED, Json(RunStarted { run })))
}

/// Starts a recovery at `req.level` as `p`; the dashboard's button too.
pub async fn start_recover(
    state: &Shared,
    p: &Principal,
    req: RecoverRequest,
) -> ApiResult<String> {
    let ctx = acting(state, p);
    let id = new_run_id();
    let opts = ripcord_ops::recover::RecoverOptions {
        level: req.level,
        reason: req.reason,
        trigger: "manual".into(),
        run: Some(id.clone()),
        ..Default::default()
    };
    let c = ctx.clone();
    start(state, &ctx, id, move || {
        ripcord_ops::recover::recover(&c, &opts).map(|_| ())
    })
    .await
}

async fn start(
    state: &Shared,
    ctx: &ripcord_ops::Ctx,
    id: String,
    act: impl FnOnce() -> ripcord_ops::Result<()> + Send + 'static,
) -> ApiResult<String> {
    let boards = std::sync::Arc::clone(&state.boards);
    let run = state
        .runs
        .start(ctx, id, act, move || boards.redraw.notify_one())
        .await?;
    state.boards.redraw_now(&state.ctx).await;
    Ok(run)
}

/// The server's context acting as the token `p`, reporting live.
fn acting(state: &Shared, p: &Principal) -> ripcord_ops::Ctx {
    state
        .ctx
        .with_reporter(std::sync::Arc::new(LiveReporter(std::sync::Arc::clone(
            &state.live,
        ))))
        .acting_as(&p.name)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The change, version or `@phase` to go back to; `@root` for all,
    /// `@last-good` for the last state marked good.
    pub to: String,
    pub reason: String,
}

async fn rollback(
    State(state): State<Shared>,
    p: Principal,
    Body(req): Body<RollbackRequest>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    p.need(Role::Operator)?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::bad_request("a rollback needs a reason")
            .hint("say why in `reason`: it goes into the journal, the audit and the report"));
    }
    let ctx = acting(&state, &p);
    // A dry run first: a wrong `to`, a plan that does not read or a database
    // that does not answer is bad input, answered before any run begins.
    let (c, to) = (ctx.clone(), req.to.clone());
    blocking(move || {
        let dry = ripcord_ops::migrate::DownRequest {
            to,
            dry_run: true,
            ..Default::default()
        };
        ripcord_ops::migrate::down(&c, &dry, &mut |_| {})?;
        Ok(())
    })
    .await?;
    let id = new_run_id();
    let c = ctx.clone();
    let run = id.clone();
    let run = start(&state, &ctx, id, move || {
        let args = vec![format!("--to={}", req.to)];
        let call = ripcord_ops::way_back::Call {
            command: "rollback",
            args: &args,
            reason: Some(&req.reason),
            trigger: None,
            run: Some(&run),
        };
        let down = ripcord_ops::migrate::DownRequest {
            to: req.to.clone(),
            ..Default::default()
        };
        ripcord_ops::way_back::down(&c, &down, &mut |_| {}, &call).map(|_| ())
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(RunStarted { run })))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// What to do with a step a crash interrupted that is not safe to
    /// repeat: `rerun` or `skip`. Without it such a run is refused (409).
    pub interrupted: Option<InterruptedChoice>,
}

#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InterruptedChoice {
    Rerun,
    Skip,
}

async fn resume(
    State(state): State<Shared>,
    p: Principal,
    P(id): P,
    MaybeBody(req): MaybeBody<ResumeRequest>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    p.need(Role::Operator)?;
    let ctx = acting(&state, &p);
    {
        let (c, run) = (ctx.clone(), id.clone());
        let known = blocking(move || {
            Ok(c.catalog_if_exists()?
                .map(|mut c| c.run(&run))
                .transpose()?)
        })
        .await?
        .flatten();
        if known.is_none() {
            return Err(ApiError::not_found(format!("no run {id:?}"))
                .hint("GET /api/v1/runs lists the runs"));
        }
    }
    use ripcord_ops::recover::{Interrupted, ResumeOptions};
    let opts = ResumeOptions {
        run: Some(id.clone()),
        interrupted: match req.interrupted {
            Some(InterruptedChoice::Rerun) => Interrupted::Rerun,
            Some(InterruptedChoice::Skip) => Interrupted::Skip,
            None => Interrupted::Ask,
        },
        overrun: None,
    };
    let c = ctx.clone();
    // The run is journaled already: the answer waits only for a refusal.
    let boards = std::sync::Arc::clone(&state.boards);
    let run = state
        .runs
        .start_known(
            &ctx,
            id,
            move || ripcord_ops::recover::resume(&c, &opts).map(|_| ()),
            move || boards.redraw.notify_one(),
        )
        .await?;
    state.boards.redraw_now(&state.ctx).await;
    Ok((StatusCode::ACCEPTED, Json(RunStarted { run })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    pub reason: String,
}

async fn ack(
    State(state): State<Shared>,
    p: Principal,
    Body(req): Body<AckRequest>,
) -> ApiResult<Json<ripcord_ops::json::AckOutput>> {
    p.need(Role::Operator)?;
    let ctx = acting(&state, &p);
    let left = blocking(move || Ok(ripcord_ops::recover::ack(&ctx, &req.reason)?)).await?;
    state.boards.redraw_now(&state.ctx).await;
    Ok(Json(ripcord_ops::json::AckOutput {
        left_safe_mode: left.is_some(),
        run: left.as_ref().and_then(|m| m.run.clone()),
        since: left.as_ref().map(|m| m.since.clone()),
    }))
}

async fn tokens(State(state): State<Shared>, p: Principal) -> ApiResult<Json<Vec<TokenRecord>>> {
    p.need(Role::Admin)?;
    let ctx = state.ctx.clone();
    Ok(Json(
        blocking(move || Ok(ripcord_ops::tokens::list(&ctx)?)).await?,
    ))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    pub role: Role,
}

/// Runs a mutation as `p` and audits it, whatever its outcome.
async fn audited<T: Send + 'static>(
    state: &Shared,
    p: &Principal,
    command: &'static str,
    args: Vec<String>,
    act: impl FnOnce(&ripcord_ops::Ctx) -> ripcord_ops::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let ctx = acting(state, p);
    blocking(move || {
        let result = act(&ctx);
        let error = result
            .as_ref()
            .err()
            .map(|e| (ripcord_core::Classify::class(e), e.to_string()));
        if let Some(outcome) = audit::outcome(error.as_ref().map(|(c, m)| (*c, m.as_str()))) {
            audit::record(
                &ctx,
                &Record {
                    command,
                    args: &args,
                    reason: None,
                    result: outcome,
                    run: None,
                },
            );
        }
        Ok(result?)
    })
    .await
}

async fn add_token(
    State(state): State<Shared>,
    p: Principal,
    Body(req): Body<TokenRequest>,
) -> ApiResult<(StatusCode, Json<ripcord_ops::tokens::NewTokenReport>)> {
    p.need(Role::Admin)?;
    let args = vec![
        format!("--name={}", req.name),
        format!("--role={}", req.role),
    ];
    let made = audited(&state, &p, "token add", args, move |ctx| {
        ripcord_ops::tokens::add(ctx, &req.name, req.role)
    })
    .await?;
    state.auth.reload();
    Ok((StatusCode::CREATED, Json(made)))
}

async fn revoke_token(
    State(state): State<Shared>,
    p: Principal,
    P(name): P,
) -> ApiResult<Json<TokenRecord>> {
    p.need(Role::Admin)?;
    let n = name.clone();
    let revoked = audited(&state, &p, "token revoke", vec![name.clone()], move |ctx| {
        ripcord_ops::tokens::revoke(ctx, &n)
    })
    .await?;
    state.auth.reload();
    state.auth.drop_sessions_of(&name);
    Ok(Json(revoked))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgetRequest {
    /// The tier whose `keep` policy is applied to its snapshots.
    pub tier: String,
    /// Delete the data no snapshot uses any more afterwards.
    #[serde(default)]
    pub prune: bool,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ForgetResult {
    pub tier: String,
    /// The snapshots removed.
    pub forgotten: Vec<String>,
    /// Bytes freed by the prune, when one ran.
    pub pruned_bytes: Option<u64>,
}

async fn forget(
    State(state): State<Shared>,
    p: Principal,
    Body(req): Body<ForgetRequest>,
) -> ApiResult<Json<ForgetResult>> {
    p.need(Role::Admin)?;
    let mut args = vec![format!("--tier={}", req.tier)];
    if req.prune {
        args.push("--prune".into());
    }
    let result = audited(&state, &p, "forget", args, move |ctx| {
        let keep = ctx
            .config
            .tiers
            .get(&req.tier)
            .filter(|t| !t.is_geo())
            .map(|t| t.keep.clone())
            .ok_or_else(|| {
                ripcord_ops::Error::usage(
                    format!("tier {:?} is not a tier of the main repository", req.tier),
                    "name a tier configured under [tiers.NAME] without `repository`",
                )
            })?;
        let repo = ctx.open_repo()?;
        let gone = ripcord_ops::keep::apply(
            ctx,
            &repo,
            Some(&req.tier),
            &keep,
            &format!("tiers.{}", req.tier),
        )?;
        let pruned_bytes = if req.prune {
            Some(ripcord_ops::keep::prune(ctx, &repo)?.bytes_freed)
        } else {
            None
        };
        Ok(ForgetResult {
            tier: req.tier.clone(),
            forgotten: gone.iter().map(|id| id.to_string()).collect(),
            pruned_bytes,
        })
    })
    .await?;
    state.boards.redraw_now(&state.ctx).await;
    Ok(Json(result))
}
