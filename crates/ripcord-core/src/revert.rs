//! What putting tables back from a safety snapshot did, shared by the
//! database targets that do it and the migration engine that reports it.

use serde::Serialize;

use crate::config::OnConflict;

/// One table put back from a safety snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableRevert {
    /// `schema.name` on PostgreSQL, `name` on SQLite.
    pub table: String,
    /// The policy applied: the configured one, or `review` when `keep-new`
    /// was asked for and rows cannot be kept (a table without a primary
    /// key, or a required column the rows written since lack).
    pub policy: Option<OnConflict>,
    /// Rows loaded from the snapshot.
    pub restored_rows: u64,
    /// Rows written since the change that are kept (`keep-new`).
    pub kept_rows: u64,
    /// Rows written since the change moved to the review table (`review`).
    pub review_rows: u64,
    /// Rows written since the change that are gone (`snapshot`): data loss.
    pub discarded_rows: u64,
    /// Rows that were there before the change and hold other values now
    /// (changed by the change itself, or updated since): the snapshot's
    /// values were put back. Under `review` they are also set aside.
    pub changed_rows: u64,
    /// The table did not exist any more and was created again.
    pub recreated: bool,
}
