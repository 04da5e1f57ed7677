//! ripcord-core: what every other ripcord crate shares.
//!
//! - [`config`]: `ripcord.toml`, its discovery and its `RIPCORD_*` environment overrides.
//! - [`class`]: how an error maps to an exit code (0 ok, 1 failed, 2 usage/config, 3 refused).
//! - [`host`]: this host's name, which `RIPCORD_HOSTNAME` overrides.
//! - [`failpoint`]: fault injection used by the crash-safety tests (`RIPCORD_FAILPOINT`).
//! - [`interrupt`]: cleanup on Ctrl-C and SIGTERM.
//! - [`duration`]: human durations such as `72h` or `30d`.
//! - [`revert`]: what putting tables back from a safety snapshot did.
//! - [`names`]: what a target name may be.
//! - [`table_name`]: table names as users type them and reports show them.
//! - [`limits`]: bounds on numbers from the user, such as `jobs`.
//! - [`pg_stats`]: flushing a PostgreSQL session's statistics.
//! - [`password`]: `password_command` with a timeout, and the rules for new passphrases.

pub mod class;
pub mod config;
pub mod duration;
pub mod failpoint;
pub mod host;
pub mod interrupt;
pub mod limits;
pub mod names;
pub mod password;
pub mod pg_fingerprint;
pub mod pg_stats;
pub mod revert;
pub mod shell;
pub mod table_name;
pub mod text;

pub use class::{Class, Classify};
