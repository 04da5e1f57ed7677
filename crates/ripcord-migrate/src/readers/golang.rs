//! golang-migrate: `<N>_<name>.up.sql` and `<N>_<name>.down.sql`, in version
//! order, paired by version as golang-migrate pairs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{list, pair_with_undo};
use crate::error::{Error, Result};
use crate::plan::{Format, Plan};
use crate::version::Version;

pub(crate) struct GolangName<'a> {
    pub version: &'a str,
    pub parsed: Version,
    /// The name without `.up.sql` / `.down.sql`: `<N>_<name>`.
    pub stem: &'a str,
    pub up: bool,
}

pub(crate) fn parse_name(file: &str) -> Option<GolangName<'_>> {
    let (stem, up) = match file.strip_suffix(".up.sql") {
        Some(stem) => (stem, true),
        None => (file.strip_suffix(".down.sql")?, false),
    };
    let (version, _name) = stem.split_once('_')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parsed = Version::parse(version)?;
    Some(GolangName {
        version,
        parsed,
        stem,
        up,
    })
}

pub(super) fn read(dir: &Path) -> Result<Plan> {
    let mut ups: Vec<(Version, String, String, PathBuf)> = Vec::new();
    let mut downs: BTreeMap<Version, PathBuf> = BTreeMap::new();
    for file in list(dir)?.into_iter().filter(|e| !e.is_dir) {
        let Some(parsed) = parse_name(&file.name) else {
            if file.name.starts_with(|c: char| c.is_ascii_digit()) && file.name.ends_with(".sql") {
                return Err(Error::misnamed(
                    &file.path,
                    "not a golang-migrate migration name, so migrate would skip it",
                    "name it <N>_<name>.up.sql, with <N>_<name>.down.sql to undo it",
                ));
            }
            continue;
        };
        if parsed.up {
            ups.push((
                parsed.parsed,
                parsed.version.into(),
                parsed.stem.into(),
                file.path,
            ));
        } else if let Some(first) = downs.insert(parsed.parsed, file.path.clone()) {
            return Err(Error::DuplicateVersion {
                version: parsed.version.into(),
                first,
                second: file.path,
            });
        }
    }
    ups.sort_by(|a, b| a.0.cmp(&b.0));
    let changes = pair_with_undo(
        ups,
        downs,
        (
            "down migration without an up migration of the same version",
            "give it the version of the migration it undoes, or remove it",
        ),
    )?;
    Ok(Plan {
        format: Format::GolangMigrate,
        changes,
        phases: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = parse_name("0003_add_index.up.sql").unwrap();
        assert_eq!((n.version, n.stem, n.up), ("0003", "0003_add_index", true));
        assert!(!parse_name("3_x.down.sql").unwrap().up);
        assert!(parse_name("3_x.sql").is_none());
        assert!(parse_name("x_3.up.sql").is_none());
        assert!(parse_name("3.up.sql").is_none());
    }
}
