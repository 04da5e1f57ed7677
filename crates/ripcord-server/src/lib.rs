//! `ripcord serve`: the HTTP API (`/api/v1`, with roles and tokens), the
//! dashboard, `/metrics` and `/health`. It calls the same library as the
//! command line; nothing here prints but the server's log.
//!
//! - [`serve`]: the process: routes, limits, TLS, graceful shutdown.
//! - [`api`]: the JSON API. [`openapi`]: its OpenAPI document.
//! - [`auth`]: tokens, sessions, rate limiting of failures.
//! - [`board`]: the picture the reads are served from, kept fresh.
//! - [`runs`]: runs started through the server, on their own threads.
//! - [`dashboard`]: the pages. [`metrics`], [`health`].
//! - [`background`]: the guard's watch and the scheduler, in-process.

pub mod api;
pub mod auth;
mod background;
pub mod board;
mod dashboard;
pub mod error;
pub mod health;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod runs;
pub mod serve;
pub mod state;

pub use serve::{serve, ServeOptions};
