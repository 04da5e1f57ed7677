//! Test fixtures for ripcord.
//!
//! - [`Workspace`]: a temporary folder with a `ripcord.toml`, a repository
//!   location and targets, and a way to run the `ripcord` binary in it.
//! - [`data`]: deterministic directory trees and file contents.
//! - [`fingerprint`]: byte-for-byte comparison of directory trees, and hashes
//!   of every file of a repository to prove it did not change.
//! - [`sqlite`]: small databases, and a bank whose invariants reveal torn copies.
//! - [`process`]: `kill -9`, and waiting by polling instead of sleeping.
//! - [`pg`]: throwaway PostgreSQL clusters.
//! - [`prometheus`]: a real Prometheus server, and an exporter it scrapes.
//! - [`app`]: the migration target `app` on PostgreSQL or SQLite, with a
//!   workspace around it.
//! - [`server`]: `ripcord serve` on a free port, and tokens for it.
//! - [`browser`]: headless Chromium through chromedriver, for the dashboard.
//! - [`watchdog`]: the shell watchdogs that end test servers with the tests.
//! - [`service`]: an HTTP service a test flips between healthy and failing.

pub mod app;
pub mod browser;
pub mod data;
pub mod fingerprint;
pub mod garage;
pub mod pg;
pub mod process;
pub mod prometheus;
pub mod server;
pub mod service;
pub mod sqlite;
pub mod watchdog;
mod workspace;

pub use fingerprint::{dir_size, repo_hashes, Fingerprint};
pub use workspace::{Output, Workspace};
