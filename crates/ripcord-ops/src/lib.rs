//! ripcord's operations as a library: what a front end (the `ripcord`
//! command, recovery runs, the guard, the server) calls to act on
//! repositories and targets. Modelled on rustic_core: every operation takes
//! a [`Ctx`] (configuration and a [`Reporter`]) and an options struct that
//! does not depend on any argument parser, and returns a `Serialize` result
//! that the front end prints as it likes. Nothing here prints.
//!
//! - [`audit`]: the audit entry of every changing command, and its check.
//! - [`check`]: whether the repository, targets, migrations and catalog are ready.
//! - [`copy`]: snapshots copied to another repository, and read back there.
//! - [`drill`]: the latest snapshots restored into scratch, checked and timed.
//! - [`ctx`]: the configuration, the passphrase, opening and locking the repository.
//! - [`snapshot`]: one snapshot of configured targets.
//! - [`schedule`]: one pass over the tiers (due snapshots, retention, geo
//!   copies), and the units that run it every minute.
//! - [`keep`]: a tier's `keep` policy applied in a repository.
//! - [`overview`]: each target's newest snapshot and each tier's freshness,
//!   green, amber or red, for dashboards and metrics.
//! - [`restore`]: a restore, staged and checked, with a safety snapshot of
//!   what it replaces, then swapped in.
//! - [`net`]: the migration engine's safety net on a repository.
//! - [`migrate`]: the migration target, what it has recorded, and the review table.
//! - [`migration_state`]: the migration state a snapshot records, and what a
//!   restore makes of it.
//! - [`local_flight`]: one run at a time within a process (the server's threads).
//! - [`way_back`]: restore, migrate down and rollback by hand, as journaled runs.
//! - [`rehearse`]: the pending changes up, down and up again on a scratch copy.
//! - [`tokens`]: the API tokens the HTTP server accepts, with their roles:
//!   made, listed, revoked, and a presented token authenticated.
//! - [`report`]: the [`Reporter`] and progress bar traits a front end implements.
//! - [`error`]: the library's error, with a class (exit code) and a hint.

pub mod audit;
pub mod check;
pub mod copy;
pub mod ctx;
pub mod diff;
pub mod drill;
pub mod error;
pub mod incident;
pub mod json;
pub mod keep;
pub mod local_flight;
pub mod ls;
pub mod migrate;
pub mod migration_state;
pub mod net;
pub mod notify;
pub mod overrun;
pub mod overview;
pub mod recover;
pub mod rehearse;
pub mod report;
pub mod restore;
pub mod schedule;
pub mod select;
pub mod snapshot;
pub mod tokens;
pub mod way_back;

pub use ctx::Ctx;
pub use error::{Context, Error, Result};
pub use report::{Bar, ProgressBar, Reporter, Silent};
