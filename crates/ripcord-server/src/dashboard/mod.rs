//! The dashboard: server-rendered pages (maud), no JavaScript. A person
//! logs in with a token; the session cookie is HttpOnly and SameSite=Strict,
//! and every form carries the session's CSRF token. Pages that show a run
//! in progress reload themselves every few seconds.

mod pages;

use axum::extract::{ConnectInfo, Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use ripcord_catalog::tokens::Role;
use serde::Deserialize;

use crate::auth::{Principal, Session, SESSION_COOKIE, SESSION_IDLE};
use crate::state::Shared;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/snapshots", get(snapshots))
        .route("/audit", get(audit))
        .route("/ui/recover", post(recover))
}

/// A logged-in person: their session, by its cookie.
pub struct Viewer {
    pub session: Session,
    pub id: String,
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        let id = cookie(&parts.headers, SESSION_COOKIE);
        match id.as_deref().and_then(|id| state.auth.session(id)) {
            Some(session) => Ok(Viewer {
                session,
                id: id.unwrap_or_default(),
            }),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

async fn login_page() -> Markup {
    pages::login(None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<Shared>,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = addr.ip();
    match state.auth.check(&state, ip, form.token.trim()).await {
        Ok(principal) => {
            let (id, _) = state.auth.open_session(principal);
            let cookie = format!(
                "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                SESSION_IDLE.as_secs(),
                if state.tls { "; Secure" } else { "" }
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(e) => (e.status, pages::login(Some(&e.body.message))).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// Whether a form's CSRF token is this session's, compared in constant time.
fn csrf_ok(session: &Session, given: &str) -> bool {
    let a = blake3::hash(session.csrf.as_bytes());
    let b = blake3::hash(given.as_bytes());
    a == b
}

async fn logout(
    State(state): State<Shared>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&viewer.session, &form.csrf) {
        return forbidden("the form is stale or forged: reload the page and try again");
    }
    state.auth.close_session(&viewer.id);
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

fn forbidden(why: &str) -> Response {
    (StatusCode::FORBIDDEN, pages::message("Refused", why)).into_response()
}

async fn overview(State(state): State<Shared>, viewer: Viewer) -> Markup {
    let board = state.boards.get();
    let status = crate::api::status_view(&state).ok();
    let levels: Vec<String> = state.ctx.config.runbooks.keys().cloned().collect();
    pages::overview(
        &viewer.session,
        &board,
        status.as_ref(),
        &levels,
        state.boards.check().as_deref(),
    )
}

async fn runs(State(state): State<Shared>, viewer: Viewer) -> Markup {
    pages::runs(&viewer.session, &state.boards.get())
}

async fn run(State(state): State<Shared>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let ctx = state.ctx.clone();
    let run_id = id.clone();
    let found = tokio::task::spawn_blocking(move || {
        let known = ctx
            .catalog_if_exists()
            .ok()
            .flatten()
            .and_then(|mut c| c.run(&run_id).ok().flatten());
        known.map(|_| ripcord_ops::incident::report(&ctx, &run_id))
    })
    .await
    .ok()
    .flatten();
    match found {
        None => (
            StatusCode::NOT_FOUND,
            pages::message("No such run", &format!("There is no run {id}.")),
        )
            .into_response(),
        Some(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::message("The report cannot be read", &e.chain()),
        )
            .into_response(),
        Some(Ok(report)) => {
            let live = state.runs.active().contains(&id).then(|| state.live.now());
            pages::run(&viewer.session, &report, live.as_ref()).into_response()
        }
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<usize>,
}

async fn snapshots(
    State(state): State<Shared>,
    viewer: Viewer,
    Query(q): Query<PageQuery>,
) -> Markup {
    pages::snapshots(
        &viewer.session,
        &state.boards.get(),
        q.page.unwrap_or(1).max(1),
    )
}

async fn audit(State(state): State<Shared>, viewer: Viewer) -> Markup {
    pages::audit(&viewer.session, &state.boards.get())
}

#[derive(Deserialize)]
struct RecoverForm {
    csrf: String,
    level: String,
    reason: String,
}

async fn recover(
    State(state): State<Shared>,
    viewer: Viewer,
    Form(form): Form<RecoverForm>,
) -> Response {
    if !csrf_ok(&viewer.session, &form.csrf) {
        return forbidden("the form is stale or forged: reload the page and try again");
    }
    let p: &Principal = &viewer.session.principal;
    if let Err(e) = p.need(Role::Operator) {
        return forbidden(&e.body.message);
    }
    let req = crate::api::RecoverRequest {
        level: form.level,
        reason: form.reason,
    };
    match crate::api::start_recover(&state, p, req).await {
        Ok(run) => Redirect::to(&format!("/runs/{run}")).into_response(),
        Err(e) => (
            e.status,
            pages::message(
                "The run did not start",
                &format!(
                    "{}{}",
                    e.body.message,
                    e.body.hint.map_or(String::new(), |h| format!(" ({h})"))
                ),
            ),
        )
            .into_response(),
    }
}
