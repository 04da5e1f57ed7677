//! Timestamped files: `YYYYMMDDHHMM_name.sql`, undone by
//! `YYYYMMDDHHMM_name_rollback.sql`, in file-name (so time) order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{list, pair_with_undo};
use crate::error::{Error, Result};
use crate::plan::{Format, Plan};

pub(crate) struct TimestampName<'a> {
    pub version: &'a str,
    /// The change's name: `YYYYMMDDHHMM_name`, also for its rollback file.
    pub stem: &'a str,
    pub rollback: bool,
}

pub(crate) fn parse_name(file: &str) -> Option<TimestampName<'_>> {
    let stem = file.strip_suffix(".sql")?;
    // golang-migrate's names would otherwise pass for changes named `x.up`.
    if stem.ends_with(".up") || stem.ends_with(".down") {
        return None;
    }
    let (version, name) = stem.split_at_checked(12)?;
    if !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let name = name.strip_prefix('_')?;
    let (stem, rollback) = match name.strip_suffix("_rollback") {
        Some(base) if !base.is_empty() => (&stem[..stem.len() - "_rollback".len()], true),
        _ => (stem, false),
    };
    (!name.is_empty()).then_some(TimestampName {
        version,
        stem,
        rollback,
    })
}

pub(super) fn read(dir: &Path) -> Result<Plan> {
    let mut ups: Vec<(String, String, PathBuf)> = Vec::new();
    let mut rollbacks: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in list(dir)?.into_iter().filter(|e| !e.is_dir) {
        match parse_name(&file.name) {
            Some(n) if n.rollback => {
                rollbacks.insert(n.stem.to_string(), file.path);
            }
            Some(n) => ups.push((n.stem.to_string(), n.version.to_string(), file.path)),
            None if file.name.starts_with(|c: char| c.is_ascii_digit())
                && file.name.ends_with(".sql") =>
            {
                return Err(Error::misnamed(
                    &file.path,
                    "not a YYYYMMDDHHMM_name.sql migration name",
                    "name it with a 12-digit timestamp, YYYYMMDDHHMM_name.sql, and its undo \
                     YYYYMMDDHHMM_name_rollback.sql",
                ))
            }
            None => {}
        }
    }
    let changes = pair_with_undo(
        ups.into_iter()
            .map(|(stem, version, path)| (stem.clone(), version, stem, path))
            .collect(),
        rollbacks,
        (
            "rollback without a migration of the same name",
            "name it after the migration it undoes, with _rollback before .sql",
        ),
    )?;
    Ok(Plan {
        format: Format::Timestamp,
        changes,
        phases: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = parse_name("202401311200_add_users.sql").unwrap();
        assert_eq!(
            (n.version, n.stem, n.rollback),
            ("202401311200", "202401311200_add_users", false)
        );
        let n = parse_name("202401311200_add_users_rollback.sql").unwrap();
        assert_eq!((n.stem, n.rollback), ("202401311200_add_users", true));
        assert!(!parse_name("202401311200_rollback.sql").unwrap().rollback);
        for bad in [
            "20240131120_x.sql",
            "20240131120000_x.sql",
            "202401311200.sql",
            "202401311200_.sql",
            "202401311200_x.up.sql",
            "202401311200_x.txt",
        ] {
            assert!(parse_name(bad).is_none(), "{bad}");
        }
    }
}
