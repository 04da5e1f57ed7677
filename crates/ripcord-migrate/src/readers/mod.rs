//! One reader per format. Each reads a team's files as its tool writes them,
//! so a team adopts ripcord without renaming anything.

mod dbmate;
mod flyway;
mod golang;
mod liquibase;
mod native;
mod sqitch;
mod timestamp;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::plan::{Format, Plan};

pub(crate) use dbmate::has_marker as dbmate_marker;
pub(crate) use flyway::{parse_name as flyway_name, FlywayName};
pub(crate) use golang::parse_name as golang_name;
pub(crate) use liquibase::{is_formatted_sql as liquibase_sql, is_master as liquibase_master};
pub(crate) use sqitch::PLAN_FILE as SQITCH_PLAN;
pub(crate) use timestamp::parse_name as timestamp_name;

/// Reads the plan in `dir`, whose format [`crate::detect`] picks.
pub fn read(dir: &Path) -> Result<Plan> {
    let format = crate::detect(dir)?;
    read_as(dir, format)
}

/// Reads the plan in `dir` as `format`, checked: unique names, known
/// requirements, no cycle.
pub fn read_as(dir: &Path, format: Format) -> Result<Plan> {
    if !dir.is_dir() {
        return Err(Error::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let plan = match format {
        Format::Native => native::read(dir)?,
        Format::Sqitch => sqitch::read(dir)?,
        Format::Flyway => flyway::read(dir)?,
        Format::GolangMigrate => golang::read(dir)?,
        Format::Dbmate => dbmate::read(dir)?,
        Format::Timestamp => timestamp::read(dir)?,
        Format::Liquibase => liquibase::read(dir)?,
    };
    plan.check()?;
    Ok(plan)
}

/// A folder entry, for readers that look at names.
pub(crate) struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub is_dir: bool,
}

/// The entries of `dir` sorted by name, without hidden ones (`.git`, editor
/// backups). Names that are not UTF-8 cannot be migration names and are left
/// out.
pub(crate) fn list(dir: &Path) -> Result<Vec<Entry>> {
    let context = || format!("listing {}", dir.display());
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(context(), e))? {
        let entry = entry.map_err(|e| Error::io(context(), e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: a linked change folder is still a change folder.
        let is_dir = path.is_dir();
        entries.push(Entry { name, path, is_dir });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Files under `dir` at any depth, sorted by path (Flyway scans recursively).
pub(crate) fn walk(dir: &Path) -> Result<Vec<Entry>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    // A symlink back up the tree must not make the walk endless.
    let mut seen = std::collections::HashSet::new();
    while let Some(folder) = pending.pop() {
        if !seen.insert(folder.canonicalize().unwrap_or_else(|_| folder.clone())) {
            continue;
        }
        for entry in list(&folder)? {
            if entry.is_dir {
                pending.push(entry.path);
            } else {
                files.push(entry);
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Builds changes from up scripts `(key, version, name, path)` in order,
/// attaching the undo script of the same key; an undo left over is an error
/// (`orphan` = what it is, and how to fix it).
pub(crate) fn pair_with_undo<K: Ord>(
    ups: Vec<(K, String, String, std::path::PathBuf)>,
    mut undos: std::collections::BTreeMap<K, std::path::PathBuf>,
    orphan: (&str, &str),
) -> Result<Vec<crate::plan::Change>> {
    use crate::script::{read_text, Script};
    let mut changes = Vec::with_capacity(ups.len());
    for (key, version, name, path) in ups {
        let mut change = crate::plan::Change::new(name, Script::new(&path, read_text(&path)?));
        if let Some(undo) = undos.remove(&key) {
            change.down = Some(Script::new(&undo, read_text(&undo)?));
        }
        change.version = Some(version);
        changes.push(change);
    }
    if let Some((_, path)) = undos.into_iter().next() {
        return Err(crate::error::Error::misnamed(path, orphan.0, orphan.1));
    }
    Ok(changes)
}
