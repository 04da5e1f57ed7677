//! What putting tables back from a safety snapshot did, shared by the
//! database targets that do it and the migration engine that reports it.

use serde::Serialize;

use crate::config::OnConflict;

/// One table put back from a safety snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TableRevert {
    /// `schema.name` on PostgreSQL, `name` on SQLite.
    pub table: String,
    /// The policy applied: the configured one, or `review` when `keep-new`
    /// was asked for and rows cannot be kept (a table without a primary
    /// key, or a required column the rows written since lack).
    pub policy: Option<OnConflict>,
    /// Rows loaded from the snapshot.
    pub restored_rows: u64,
    /// Rows written since the change that are kept (`keep-new`); with a
    /// three-way comparison, the rows the application inserted or updated
    /// that are in the table with its values.
    pub kept_rows: u64,
    /// Rows written since the change moved to the review table (`review`).
    pub review_rows: u64,
    /// Rows written since the change that are gone (`snapshot`): data loss.
    /// With a three-way comparison, the rows the application inserted or
    /// updated whose values are gone.
    pub discarded_rows: u64,
    /// Rows that were there before the change and hold other values now
    /// (changed by the change itself, or updated since): the snapshot's
    /// values were put back. Under `review` they are also set aside.
    pub changed_rows: u64,
    /// The table did not exist any more and was created again.
    pub recreated: bool,
    /// The rows were resolved by a three-way comparison of the snapshot,
    /// the fingerprint recorded right after the change, and the table as it
    /// is; the fields below are set only then. `false`: a change applied by
    /// an older version, compared two ways (snapshot and table).
    pub three_way: bool,
    /// With a three-way comparison: nothing was written to the table since
    /// the change (its write-mark trigger recorded none), so the table as
    /// it was is known without reading it, and was not read.
    pub unwritten_since: bool,
    /// What the application did to the table after the change: rows it
    /// inserted, updated (same key, other values) and deleted. Without a
    /// primary key an update counts as a delete and an insert.
    pub inserted_since: u64,
    pub updated_since: u64,
    pub deleted_since: u64,
    /// Rows the application wrote or deleted after the change that the
    /// change itself had changed too (rewrote, deleted, inserted, or
    /// altered the columns of): the policy decided them.
    pub conflicts: u64,
    /// Rows the application deleted after the change that stay deleted
    /// (`keep-new`); the others of `deleted_since` are back.
    pub deleted_kept: u64,
    /// Rows the change deleted or rewrote (also by dropping or altering a
    /// column) that are back as they were before it.
    pub undone_rows: u64,
    /// Rows the change inserted, removed again.
    pub removed_rows: u64,
}
