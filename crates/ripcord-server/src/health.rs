//! `/health`: ok when the catalog and the repository can be reached. It
//! asks them now, not the board, so a load balancer sees an outage at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use ripcord_targets::postgres::redact;

use crate::state::Shared;

#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok` or `failing`.
    pub status: &'static str,
    pub catalog: Part,
    pub repository: Part,
    pub version: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Part {
    pub ok: bool,
    /// Where it is (no credentials), or what went wrong.
    pub detail: String,
}

pub async fn health(State(state): State<Shared>) -> (StatusCode, Json<Health>) {
    let ctx = state.ctx.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let catalog = match ctx
            .catalog()
            .and_then(|mut c| c.schema_version().map(|_| c.location()))
        {
            Ok(location) => Part {
                ok: true,
                detail: location,
            },
            Err(e) => Part {
                ok: false,
                detail: redact(&e.to_string()),
            },
        };
        // Its config file answers: reachable and initialised, without
        // deriving the key.
        let repository = match ctx.backend() {
            Ok(b) => match b.exists("config") {
                Ok(true) => Part {
                    ok: true,
                    detail: redact(&b.location()),
                },
                Ok(false) => Part {
                    ok: false,
                    detail: format!(
                        "no repository at {}: `ripcord init` creates one",
                        redact(&b.location())
                    ),
                },
                Err(e) => Part {
                    ok: false,
                    detail: redact(&format!("{}: {e}", b.location())),
                },
            },
            Err(e) => Part {
                ok: false,
                detail: redact(&e.chain()),
            },
        };
        (catalog, repository)
    })
    .await;
    let (catalog, repository) = checked.unwrap_or_else(|e| {
        let p = || Part {
            ok: false,
            detail: format!("the check ended abnormally: {e}"),
        };
        (p(), p())
    });
    let ok = catalog.ok && repository.ok;
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if ok { "ok" } else { "failing" },
            catalog,
            repository,
            version: env!("CARGO_PKG_VERSION"),
        }),
    )
}
