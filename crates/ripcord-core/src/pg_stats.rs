//! The statement that flushes a PostgreSQL session's cumulative
//! statistics when it ends. A whole-database snapshot waits until every
//! other session's statistics are flushed before it trusts them to tell an
//! unchanged table (see docs/decisions.md); a session whose last statement
//! was this one need not be waited for.

pub const FLUSH_MARKER: &str = "SELECT pg_catalog.pg_stat_force_next_flush()";
