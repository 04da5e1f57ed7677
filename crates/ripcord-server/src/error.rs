//! Errors as the API answers them: a status, a stable `code` a client can
//! match on, a message and a hint. Library errors keep their class: bad
//! input is 400, a refusal 409, a failure 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ripcord_core::{Class, Classify};
use serde::Serialize;

/// The body of every error answer.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// Stable: `unauthorized`, `forbidden`, `not_found`, `bad_request`,
    /// `refused`, `rate_limited`, `payload_too_large`, `timeout`,
    /// `failed`, `unavailable`.
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                hint: None,
            },
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> ApiError {
        self.body.hint = Some(hint.into());
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            .hint("send `Authorization: Bearer TOKEN` with a token from `ripcord token add`")
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl From<ripcord_ops::Error> for ApiError {
    fn from(e: ripcord_ops::Error) -> ApiError {
        // Whatever an error quotes, a database password never leaves.
        let message = ripcord_targets::postgres::redact(&e.chain());
        let (status, code) = match e.class() {
            Class::Usage => (StatusCode::BAD_REQUEST, "bad_request"),
            Class::Refused => (StatusCode::CONFLICT, "refused"),
            Class::Inconclusive => (StatusCode::SERVICE_UNAVAILABLE, "inconclusive"),
            Class::Failed => (StatusCode::INTERNAL_SERVER_ERROR, "failed"),
        };
        ApiError {
            status,
            body: ErrorBody {
                code: code.into(),
                message,
                hint: e.hint(),
            },
        }
    }
}

impl From<ripcord_catalog::Error> for ApiError {
    fn from(e: ripcord_catalog::Error) -> ApiError {
        ripcord_ops::Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("60"));
        }
        r
    }
}

/// A blocking library call on the blocking pool, its panic a 500.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            format!("the request's work ended abnormally: {e}"),
        )
    })?
}
