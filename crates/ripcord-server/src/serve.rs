//! `ripcord serve`: the API, the dashboard, /metrics and /health in one
//! process on tokio, and, when asked, the guard's watch and the scheduler
//! beside them. SIGTERM or Ctrl-C stops taking requests, lets those in
//! flight finish, and waits for the runs in progress to end.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use axum::routing::get;
use axum::Router;
use ripcord_ops::{Ctx, Error, Result};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::Auth;
use crate::board::{self, Boards};
use crate::error::ApiError;
use crate::live::{Live, LiveReporter};
use crate::runs::Runs;
use crate::state::{Shared, State};

/// The largest request body: every request is small JSON or a form.
pub const BODY_LIMIT: usize = 64 * 1024;
/// A request that takes longer is answered 408; runs go on in the
/// background and are not bound by it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connections may take to finish after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);
/// How often the in-process scheduler makes a pass.
const SCHEDULE_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Certificate chain and private key (PEM): serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Run the guard's watch in this process.
    pub guard: bool,
    /// Let the guard's rollback rules start recovery runs.
    pub auto_rollback: bool,
    /// Run a schedule pass every minute in this process.
    pub schedule: bool,
}

/// Every route, on `state`.
pub fn app(state: Shared) -> Router {
    Router::new()
        .nest("/api/v1", crate::api::router())
        .merge(crate::dashboard::router())
        .route("/health", get(crate::health::health))
        .route("/metrics", get(crate::metrics::metrics))
        .fallback(|| async { ApiError::not_found("no such page or endpoint") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(state)
}

/// Serves until SIGTERM or Ctrl-C. `ready` hears the address it listens on.
pub fn serve(ctx: &Ctx, opts: &ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    // The catalog must work before anyone can log in.
    ctx.catalog()?;
    let tls = match &opts.tls {
        Some((cert, key)) => Some(load_tls(cert, key)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ripcord-serve")
        .build()?;
    runtime.block_on(run(ctx, opts, tls, ready))
}

fn load_tls(cert: &PathBuf, key: &PathBuf) -> Result<axum_server::tls_rustls::RustlsConfig> {
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p).map_err(|e| {
            Error::usage(
                format!("cannot read the TLS {what} {}: {e}", p.display()),
                "give PEM files that exist and that ripcord may read: --tls-cert and --tls-key",
            )
        })
    };
    let (cert, key) = (read(cert, "certificate")?, read(key, "key")?);
    // The process's one TLS provider; an error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(axum_server::tls_rustls::RustlsConfig::from_pem(cert, key))
        .map_err(|e| {
            Error::usage(
                format!("the TLS certificate and key do not load: {e}"),
                "give a PEM certificate chain and its PEM private key",
            )
        })
}

async fn run(
    ctx: &Ctx,
    opts: &ServeOptions,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let live = Arc::new(Live::default());
    let server_ctx = ctx.with_reporter(Arc::new(LiveReporter(Arc::clone(&live))));
    let first = {
        let c = server_ctx.clone();
        tokio::task::spawn_blocking(move || board::draw(&c))
            .await
            .map_err(|e| Error::failed(format!("the first look at the repository failed: {e}")))?
    };
    let boards = Arc::new(Boards::new(first));
    let state: Shared = Arc::new(State {
        ctx: server_ctx.clone(),
        auth: Auth::default(),
        boards: Arc::clone(&boards),
        runs: Runs::default(),
        live,
        tls: tls.is_some(),
        reports: Arc::default(),
    });
    tokio::spawn(board::keep_drawing(server_ctx.clone(), Arc::clone(&boards)));
    if opts.guard {
        crate::background::guard(&server_ctx, opts.auto_rollback, Arc::clone(&boards));
    }
    if opts.schedule {
        crate::background::schedule(&server_ctx, SCHEDULE_EVERY, Arc::clone(&boards));
    }

    let listener = std::net::TcpListener::bind(opts.listen).map_err(|e| {
        Error::usage(
            format!("cannot listen on {}: {e}", opts.listen),
            "pick a free address and port with --listen HOST:PORT",
        )
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let app = app(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    tokio::spawn(stop_on_signal(handle.clone()));
    ready(addr);
    let served = match tls {
        Some(config) => {
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(app)
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(app)
                .await
        }
    };
    served.map_err(|e| Error::failed(format!("the server stopped: {e}")))?;
    // A run goes on to its end: stopping it halfway would leave work to resume.
    let state2 = Arc::clone(&state);
    tokio::task::spawn_blocking(move || state2.runs.wait_all())
        .await
        .ok();
    Ok(())
}

/// The first SIGTERM or Ctrl-C stops gracefully; a second ends the
/// process at once (a run cut short is resumed later, like after a crash).
async fn stop_on_signal(handle: axum_server::Handle) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("warning: cannot handle SIGTERM and Ctrl-C: stop the server with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!(
        "stopping: no new requests; waiting for those in flight and for runs in progress \
         (signal again to stop at once)"
    );
    handle.graceful_shutdown(Some(GRACE));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("stopped at once: `ripcord resume` goes on with a run that was cut short");
    std::process::exit(143);
}
