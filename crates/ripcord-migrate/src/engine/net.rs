//! The safety net: snapshots taken before each change, and putting tables
//! back from them. The repository lives above this crate, so the engine
//! sees it through this trait.

use std::collections::BTreeSet;

use ripcord_core::revert::TableRevert;

use super::db::Conn;
use crate::analyze::TableName;
use crate::Result;

pub trait SafetyNet {
    /// Before anything runs: the repository is reachable and writable, and
    /// has room for snapshots of `tables` (`None`: the whole database; an
    /// empty set when only reverts from snapshots are ahead).
    fn preflight(&mut self, tables: Option<&BTreeSet<TableName>>) -> Result<()>;

    /// Snapshots `tables` (`None`: the whole database) before `change`
    /// runs; tables that do not exist yet are left out. Returns the
    /// snapshot's id.
    fn snapshot(&mut self, change: &str, tables: Option<&BTreeSet<TableName>>) -> Result<String>;

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
