//! Who is asking: a bearer token (the API) or a session cookie (the
//! dashboard), checked against the catalog's token hashes in constant time.
//! Repeated failures from one address are refused for a while.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use ripcord_catalog::tokens::{Role, TokenRecord};

use crate::error::ApiError;
use crate::state::Shared;

/// Tokens are read from the catalog at most this often: a token revoked
/// with `ripcord token revoke` stops working within it.
const TOKENS_TTL: Duration = Duration::from_secs(2);
/// Failures from one address within [`FAILURE_WINDOW`] before it is refused.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a dashboard session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
pub const SESSION_COOKIE: &str = "ripcord_session";

/// The token a request came with.
#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// 403 unless the token's role is at least `role`.
    pub fn need(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "token {:?} has the role {}; this needs {role}",
            self.name, self.role
        ))
        .hint(format!(
            "ask an admin for a token with the {role} role (`ripcord token add --role {role}`)"
        )))
    }
}

/// A dashboard login.
#[derive(Clone, Debug)]
pub struct Session {
    pub principal: Principal,
    /// What every form of this session carries back.
    pub csrf: String,
    pub last_seen: Instant,
}

#[derive(Default)]
pub struct Auth {
    tokens: Mutex<Option<(Instant, Vec<TokenRecord>)>>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    sessions: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes, hex: session ids and CSRF tokens.
pub fn random_hex() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

impl Auth {
    /// Forget the cached tokens: one was just added or revoked here.
    pub fn reload(&self) {
        *self.tokens.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn limited(&self, ip: IpAddr) -> bool {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.get(&ip)
            .is_some_and(|(since, n)| since.elapsed() < FAILURE_WINDOW && *n >= MAX_FAILURES)
    }

    fn failed(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
        let e = f.entry(ip).or_insert((Instant::now(), 0));
        e.1 += 1;
    }

    /// Checks a presented token: its name and role, else 401 (or 429 after
    /// too many failures from `ip`).
    pub async fn check(
        &self,
        state: &Shared,
        ip: IpAddr,
        token: &str,
    ) -> Result<Principal, ApiError> {
        if self.limited(ip) {
            return Err(rate_limited());
        }
        let records = self.records(state).await?;
        match ripcord_ops::tokens::authenticate(&records, token) {
            Some((name, role)) => Ok(Principal { name, role }),
            None => {
                self.failed(ip);
                Err(ApiError::unauthorized("the token is unknown or revoked"))
            }
        }
    }

    async fn records(&self, state: &Shared) -> Result<Vec<TokenRecord>, ApiError> {
        if let Some((at, records)) = &*self.tokens.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < TOKENS_TTL {
                return Ok(records.clone());
            }
        }
        let ctx = state.ctx.clone();
        let records =
            crate::error::blocking(move || ripcord_ops::tokens::list(&ctx).map_err(ApiError::from))
                .await?;
        *self.tokens.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), records.clone()));
        Ok(records)
    }

    pub fn open_session(&self, principal: Principal) -> (String, Session) {
        let id = random_hex();
        let session = Session {
            principal,
            csrf: random_hex(),
            last_seen: Instant::now(),
        };
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, v| v.last_seen.elapsed() < SESSION_IDLE);
        s.insert(id.clone(), session.clone());
        (id, session)
    }

    pub fn session(&self, id: &str) -> Option<Session> {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = s.get_mut(id)?;
        if session.last_seen.elapsed() >= SESSION_IDLE {
            s.remove(id);
            return None;
        }
        session.last_seen = Instant::now();
        Some(session.clone())
    }

    pub fn close_session(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Sessions of a token that is no longer valid end with it.
    pub fn drop_sessions_of(&self, name: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, v| v.principal.name != name);
    }
}

pub fn rate_limited() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many failed attempts from this address",
    )
    .hint("wait a minute, then try again with a valid token")
}

/// The peer's address; requests in tests without one count as localhost.
pub fn peer(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

impl FromRequestParts<Shared> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let ip = peer(parts);
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            if state.auth.limited(ip) {
                return Err(rate_limited());
            }
            return Err(ApiError::unauthorized("no token was sent"));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        match token {
            Some(t) => state.auth.check(state, ip, t).await,
            None => {
                state.auth.failed(ip);
                Err(ApiError::unauthorized(
                    "the Authorization header is not `Bearer TOKEN`",
                ))
            }
        }
    }
}
