//! The OpenAPI 3.1 document of `/api/v1`. Its schemas are generated from
//! the Rust types the handlers answer with (schemars, the same derivations
//! that describe the command line's `--json` output), and its paths from
//! the table below, so the document cannot drift from the code.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use crate::api::*;
use crate::board::{AuditView, GuardView};
use crate::error::ErrorBody;

#[derive(Clone, Copy)]
enum Auth {
    Reader,
    Operator,
    Admin,
}

struct Endpoint {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: Auth,
    /// Query parameters: name, JSON type, description.
    query: &'static [(&'static str, &'static str, &'static str)],
    /// The request body's schema.
    body: Option<Value>,
    /// The success status and its body's schema.
    ok: (u16, Value),
    /// Error statuses besides 401, 403 and 429.
    errors: &'static [u16],
}

const PAGING: &[(&str, &str, &str)] = &[
    (
        "limit",
        "integer",
        "At most this many (1 to 500; 50 when not given)",
    ),
    ("offset", "integer", "How many of the newest to pass over"),
];

fn endpoints(g: &mut SchemaGenerator) -> Vec<Endpoint> {
    use Auth::*;
    let mut s = |f: fn(&mut SchemaGenerator) -> schemars::Schema| f(g).to_value();
    vec![
        Endpoint {
            method: "get",
            path: "/targets",
            summary: "Every configured target and its newest snapshot",
            auth: Reader,
            query: &[],
            body: None,
            ok: (
                200,
                s(|g| g.subschema_for::<Vec<ripcord_ops::overview::TargetOverview>>()),
            ),
            errors: &[],
        },
        Endpoint {
            method: "get",
            path: "/snapshots",
            summary: "Snapshots, newest first, a page at a time",
            auth: Reader,
            query: &[
                ("target", "string", "Only snapshots holding this target"),
                ("tier", "string", "Only snapshots of this tier"),
                (
                    "limit",
                    "integer",
                    "At most this many (1 to 500; 50 when not given)",
                ),
                ("offset", "integer", "How many of the newest to pass over"),
            ],
            body: None,
            ok: (
                200,
                s(|g| g.subschema_for::<Page<ripcord_ops::json::SnapshotView>>()),
            ),
            errors: &[400, 503],
        },
        Endpoint {
            method: "get",
            path: "/tiers",
            summary: "Each tier's freshness per target: green, amber or red",
            auth: Reader,
            query: &[],
            body: None,
            ok: (
                200,
                s(|g| g.subschema_for::<Vec<ripcord_ops::overview::TierFreshness>>()),
            ),
            errors: &[],
        },
        Endpoint {
            method: "get",
            path: "/runs",
            summary: "Runs, newest first, a page at a time",
            auth: Reader,
            query: PAGING,
            body: None,
            ok: (
                200,
                s(|g| g.subschema_for::<Page<ripcord_catalog::runs::Run>>()),
            ),
            errors: &[400, 503],
        },
        Endpoint {
            method: "get",
            path: "/runs/{id}",
            summary: "A run's report: its timeline, data accounting, RTO and RPO",
            auth: Reader,
            query: &[],
            body: None,
            ok: (
                200,
                s(|g| g.subschema_for::<ripcord_ops::incident::IncidentReport>()),
            ),
            errors: &[404],
        },
        Endpoint {
            method: "post",
            path: "/runs/{id}/resume",
            summary: "Resume a run a crash or a kill stopped",
            auth: Operator,
            query: &[],
            body: Some(s(|g| g.subschema_for::<ResumeRequest>())),
            ok: (202, s(|g| g.subschema_for::<RunStarted>())),
            errors: &[400, 404, 409],
        },
        Endpoint {
            method: "get",
            path: "/status",
            summary: "The run in progress, its progress, and safe mode",
            auth: Reader,
            query: &[],
            body: None,
            ok: (200, s(|g| g.subschema_for::<StatusView>())),
            errors: &[503],
        },
        Endpoint {
            method: "get",
            path: "/migrations",
            summary: "Each change's state on the migration target",
            auth: Reader,
            query: &[],
            body: None,
            ok: (
                200,
                s(|g| g.subschema_for::<ripcord_ops::json::StatusReport>()),
            ),
            errors: &[404, 503],
        },
        Endpoint {
            method: "get",
            path: "/guard",
            summary: "The guard's rules, their verdicts and each probe's recent samples",
            auth: Reader,
            query: &[],
            body: None,
            ok: (200, s(|g| g.subschema_for::<GuardView>())),
            errors: &[404, 503],
        },
        Endpoint {
            method: "get",
            path: "/audit",
            summary: "The newest audit entries and the chain's verification",
            auth: Reader,
            query: &[(
                "limit",
                "integer",
                "Only the newest this many (1 to 500; 50 when not given)",
            )],
            body: None,
            ok: (200, s(|g| g.subschema_for::<AuditView>())),
            errors: &[400, 503],
        },
        Endpoint {
            method: "get",
            path: "/check",
            summary: "Whether this host is ready to protect and to bring back",
            auth: Reader,
            query: &[],
            body: None,
            ok: (
                200,
                s(|g| g.subschema_for::<ripcord_ops::check::CheckReport>()),
            ),
            errors: &[],
        },
        Endpoint {
            method: "post",
            path: "/recover",
            summary: "Start a recovery run at a runbook level",
            auth: Operator,
            query: &[],
            body: Some(s(|g| g.subschema_for::<RecoverRequest>())),
            ok: (202, s(|g| g.subschema_for::<RunStarted>())),
            errors: &[400, 409],
        },
        Endpoint {
            method: "post",
            path: "/rollback",
            summary: "Revert migrations back to a change, restoring their data",
            auth: Operator,
            query: &[],
            body: Some(s(|g| g.subschema_for::<RollbackRequest>())),
            ok: (202, s(|g| g.subschema_for::<RunStarted>())),
            errors: &[400, 409],
        },
        Endpoint {
            method: "post",
            path: "/ack",
            summary: "Acknowledge safe mode and leave it",
            auth: Operator,
            query: &[],
            body: Some(s(|g| g.subschema_for::<AckRequest>())),
            ok: (
                200,
                s(|g| g.subschema_for::<ripcord_ops::json::AckOutput>()),
            ),
            errors: &[400],
        },
        Endpoint {
            method: "get",
            path: "/tokens",
            summary: "Every token, active and revoked (never the token itself)",
            auth: Admin,
            query: &[],
            body: None,
            ok: (
                200,
                s(|g| g.subschema_for::<Vec<ripcord_catalog::tokens::TokenRecord>>()),
            ),
            errors: &[],
        },
        Endpoint {
            method: "post",
            path: "/tokens",
            summary: "Add a token; the answer is the only time it is shown",
            auth: Admin,
            query: &[],
            body: Some(s(|g| g.subschema_for::<TokenRequest>())),
            ok: (
                201,
                s(|g| g.subschema_for::<ripcord_ops::tokens::NewTokenReport>()),
            ),
            errors: &[400],
        },
        Endpoint {
            method: "delete",
            path: "/tokens/{name}",
            summary: "Revoke a token",
            auth: Admin,
            query: &[],
            body: None,
            ok: (
                200,
                s(|g| g.subschema_for::<ripcord_catalog::tokens::TokenRecord>()),
            ),
            errors: &[400],
        },
        Endpoint {
            method: "post",
            path: "/forget",
            summary: "Apply a tier's keep policy to its snapshots, and prune",
            auth: Admin,
            query: &[],
            body: Some(s(|g| g.subschema_for::<ForgetRequest>())),
            ok: (200, s(|g| g.subschema_for::<ForgetResult>())),
            errors: &[400, 409],
        },
    ]
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted: the run has begun",
        400 => "Bad input; nothing changed",
        401 => "No token, or an unknown or revoked one",
        403 => "The token's role does not allow it",
        404 => "Not found, or not configured",
        409 => "Refused: acting would be unsafe now (a run in progress, safe mode)",
        413 => "The body is too large",
        415 => "The body is not sent as application/json",
        429 => "Too many failed attempts from this address",
        503 => "The repository or catalog cannot be read now",
        _ => "Error",
    }
}

fn build() -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas/".into())
        .into_generator();
    let error = g.subschema_for::<ErrorBody>().to_value();
    let list = endpoints(&mut g);
    let mut paths = Map::new();
    for e in &list {
        let mut params: Vec<Value> = e
            .query
            .iter()
            .map(|(name, ty, description)| {
                let schema = if *ty == "integer" {
                    json!({"type": "integer", "minimum": 0})
                } else {
                    json!({"type": ty})
                };
                json!({"name": name, "in": "query", "required": false,
                       "description": description, "schema": schema})
            })
            .collect();
        for segment in e.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let schema = if name == "name" {
                    json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"})
                } else {
                    json!({"type": "string"})
                };
                params
                    .push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
            }
        }
        let mut responses = Map::new();
        responses.insert(
            e.ok.0.to_string(),
            json!({"description": reason(e.ok.0),
                   "content": {"application/json": {"schema": e.ok.1}}}),
        );
        let mut errors = vec![401, 403, 429];
        errors.extend_from_slice(e.errors);
        if e.body.is_some() {
            errors.extend_from_slice(&[400, 413, 415]);
        }
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            responses.insert(
                status.to_string(),
                json!({"description": reason(status),
                       "content": {"application/json": {"schema": error}}}),
            );
        }
        let role = match e.auth {
            Auth::Reader => "reader",
            Auth::Operator => "operator",
            Auth::Admin => "admin",
        };
        let mut op = json!({
            "summary": e.summary,
            "description": format!("Needs the {role} role or above."),
            "operationId": format!("{}{}", e.method, e.path.replace(['/', '{', '}'], "_")),
            "parameters": params,
            "responses": responses,
            "security": [{"bearer": []}],
        });
        if let Some(body) = &e.body {
            op["requestBody"] = json!({"required": e.method != "post" || !e.path.ends_with("/resume"),
                                       "content": {"application/json": {"schema": body}}});
        }
        let item = paths
            .entry(format!("/api/v1{}", e.path))
            .or_insert_with(|| json!({}));
        item[e.method] = op;
    }
    let schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ripcord",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Backups, recovery runs, migrations and the guard of one ripcord \
                            installation. Tokens come from `ripcord token add`."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

/// The document, built once.
pub fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

pub async fn document() -> Response {
    Json(openapi().clone()).into_response()
}
