//! End-to-end tests of the `ripcord` binary: one test binary, one module per
//! area. Every test works in its own temporary folder and may run in parallel.

#[path = "integration/common.rs"]
mod common;

#[path = "integration/audit.rs"]
mod audit;
#[path = "integration/backends.rs"]
mod backends;
#[path = "integration/bad_input.rs"]
mod bad_input;
#[path = "integration/copy.rs"]
mod copy;
#[path = "integration/crash.rs"]
mod crash;
#[path = "integration/diff.rs"]
mod diff;
#[path = "integration/drill.rs"]
mod drill;
#[path = "integration/first_contact.rs"]
mod first_contact;
#[path = "integration/forget.rs"]
mod forget;
#[path = "integration/hostile_repo.rs"]
mod hostile_repo;
#[path = "integration/incremental.rs"]
mod incremental;
#[path = "integration/keys.rs"]
mod keys;
#[path = "integration/limits.rs"]
mod limits;
#[path = "integration/locks.rs"]
mod locks;
#[path = "integration/migrate.rs"]
mod migrate;
#[path = "integration/migrate_adopt.rs"]
mod migrate_adopt;
#[path = "integration/migrate_apply.rs"]
mod migrate_apply;
#[path = "integration/migrate_blocks.rs"]
mod migrate_blocks;
#[path = "integration/migrate_exit_codes.rs"]
mod migrate_exit_codes;
#[path = "integration/path_escape.rs"]
mod path_escape;
#[path = "integration/recover.rs"]
mod recover;
#[path = "integration/restore_parts.rs"]
mod restore_parts;
#[path = "integration/roundtrip.rs"]
mod roundtrip;
#[path = "integration/schedule.rs"]
mod schedule;
#[path = "integration/selection.rs"]
mod selection;
#[path = "integration/special_files.rs"]
mod special_files;
#[path = "integration/sqlite.rs"]
mod sqlite;
#[path = "integration/sqlite_files.rs"]
mod sqlite_files;
#[path = "integration/strict_config.rs"]
mod strict_config;
#[path = "integration/target_names.rs"]
mod target_names;
#[path = "integration/tokens.rs"]
mod tokens;
#[path = "integration/verify.rs"]
mod verify;
