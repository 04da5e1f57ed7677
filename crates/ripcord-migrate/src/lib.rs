//! ripcord-migrate: database migrations that know how to undo themselves.
//!
//! This part reads a folder of migrations into a [`Plan`], without touching a
//! database. It reads ripcord's own layout and, unchanged, the files of
//! sqitch, Flyway, golang-migrate, dbmate and timestamped `_rollback.sql`
//! pairs, so a team adopts ripcord without rewriting its history.
//!
//! - [`plan`]: changes, phases, dependency order and `--to` targets.
//! - [`script`]: one SQL script and its line-ending-blind checksum.
//! - [`detect()`]: which format a folder holds.
//! - [`readers`]: one reader per format.
//! - [`analyze`]: what a script's SQL does: the tables a safety snapshot must
//!   cover, statements that cannot run in a transaction, destroyed data,
//!   rewrites and long locks.
//! - [`psql`]: psql meta-commands and variables, Flyway placeholders.
//! - [`tracking`]: the tables that record which changes a database has run,
//!   the migration lock, and [`tracking::status()`] against a plan.
//!
//! ```no_run
//! let plan = ripcord_migrate::read(std::path::Path::new("migrations"))?;
//! for change in plan.order()? {
//!     println!("{} {}", change.name, change.up.checksum);
//! }
//! let target = plan.resolve_target("@expand")?;
//! println!("up to {}", target.change());
//! # Ok::<(), ripcord_migrate::Error>(())
//! ```

pub mod adopt;
pub mod analyze;
mod detect;
pub mod engine;
pub mod error;
mod near;
pub mod plan;
pub mod psql;
pub mod readers;
pub mod script;
pub mod tracking;
mod version;

pub use detect::detect;
pub use error::{Error, Result};
pub use plan::{Change, Format, Phase, Plan, Target};
pub use readers::{read, read_as};
pub use script::{checksum, Script};
