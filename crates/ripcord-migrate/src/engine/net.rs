//! The safety net: snapshots taken before each change, and putting tables
//! back from them. The repository lives above this crate, so the engine
//! sees it through this trait.

use std::collections::BTreeSet;

use ripcord_core::revert::TableRevert;

use super::capture::Watched;
use super::db::Conn;
use crate::analyze::TableName;
use crate::Result;

/// A safety snapshot that a revert needs and cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unusable {
    pub change: String,
    pub snapshot: String,
    /// Why: missing, damaged, another database.
    pub reason: String,
}

pub trait SafetyNet {
    /// Before anything runs: the repository is reachable and writable, and
    /// has room for snapshots of `tables` (`None`: the whole database; an
    /// empty set when only reverts from snapshots are ahead).
    fn preflight(&mut self, tables: Option<&BTreeSet<TableName>>) -> Result<()>;

    /// Before a `down` reverts anything: whether each of `needed`
    /// (change, snapshot id) can be reverted from, that is, the snapshot
    /// exists, its manifest reads, it holds this database, and every blob it
    /// needs is in the repository. Reads no table data. Returns the changes
    /// whose snapshot cannot be used, each with the reason; `Err` only when
    /// the repository itself cannot be asked.
    fn check(&mut self, needed: &[(&str, &str)]) -> Result<Vec<Unusable>>;

    /// Snapshots `tables` (`None`: the whole database) before `change`
    /// runs; tables that do not exist yet are left out. Returns the
    /// snapshot's id.
    fn snapshot(&mut self, change: &str, tables: Option<&BTreeSet<TableName>>) -> Result<String>;

    /// The touched tables the last [`snapshot`](SafetyNet::snapshot) left
    /// out because they cannot be protected and that was allowed, each as
    /// `schema.name: why`.
    fn unprotected(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// How the last [`snapshot`](SafetyNet::snapshot) got its tables: read,
    /// or taken over from the previous snapshot.
    fn tables_taken(&mut self) -> Option<super::TablesTaken> {
        None
    }

    /// Right after `change` committed, on `conn` in transactions of its
    /// own: records the post-change fingerprint of `tables` (per row a hash
    /// of its key and of the whole row), corrected for the writes their
    /// logs hold, which came after the commit. It lets a revert tell the
    /// change's writes from the application's.
    fn fingerprint(&mut self, _conn: Conn<'_>, _change: &str, _tables: &[Watched]) -> Result<()> {
        Ok(())
    }

    /// Puts `tables` (`None`: every table the snapshot holds) back to their
    /// state in `snapshot`, schema and data, on `conn` inside the caller's
    /// open transaction. Rows written since are kept, discarded or set aside
    /// by each table's `on_conflict` policy.
    fn revert(
        &mut self,
        conn: Conn<'_>,
        snapshot: &str,
        tables: Option<&BTreeSet<TableName>>,
        change: &str,
    ) -> Result<Vec<TableRevert>>;
}
