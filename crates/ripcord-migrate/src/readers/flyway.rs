//! Flyway: `V<version>__<desc>.sql` in version order, each undone by
//! `U<version>__<desc>.sql` when there is one, then the repeatable
//! `R__<desc>.sql` in description order. Subfolders are scanned as Flyway
//! does. A script's `<file>.conf` with `executeInTransaction=false` marks the
//! change to run outside a transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::walk;
use crate::error::{Error, Result};
use crate::plan::{Change, Format, Plan};
use crate::script::{read_text, Script};
use crate::version::Version;

pub(crate) enum FlywayName<'a> {
    Versioned { version: &'a str, parsed: Version },
    Undo { version: &'a str, parsed: Version },
    Repeatable,
}

/// Classifies a file name; `None` when Flyway would not run it.
pub(crate) fn parse_name(file: &str) -> Option<FlywayName<'_>> {
    let stem = file.strip_suffix(".sql")?;
    if stem.starts_with("R__") {
        return Some(FlywayName::Repeatable);
    }
    let (prefix, rest) = stem.split_at_checked(1)?;
    let (version, _description) = rest.split_once("__")?;
    let parsed = Version::parse(version)?;
    match prefix {
        "V" => Some(FlywayName::Versioned { version, parsed }),
        "U" => Some(FlywayName::Undo { version, parsed }),
        _ => None,
    }
}

/// Names Flyway would skip without a word although they were surely meant as
/// migrations (`V1_init.sql` with one underscore).
fn meant_as_migration(file: &str) -> bool {
    let b = file.as_bytes();
    file.ends_with(".sql")
        && b.len() > 1
        && (matches!(b[0], b'V' | b'U') && b[1].is_ascii_digit() || file.starts_with("R_"))
}

pub(super) fn read(dir: &Path) -> Result<Plan> {
    let mut versioned: Vec<(Version, String, PathBuf)> = Vec::new();
    let mut undo: BTreeMap<Version, PathBuf> = BTreeMap::new();
    let mut repeatable: Vec<(String, PathBuf)> = Vec::new();
    for file in walk(dir)? {
        let stem = file.name.trim_end_matches(".sql").to_string();
        match parse_name(&file.name) {
            Some(FlywayName::Versioned { version, parsed }) => {
                versioned.push((parsed, version.replace('_', "."), file.path));
            }
            Some(FlywayName::Undo { version, parsed }) => {
                if let Some(first) = undo.insert(parsed, file.path.clone()) {
                    return Err(Error::DuplicateVersion {
                        version: version.replace('_', "."),
                        first,
                        second: file.path,
                    });
                }
            }
            Some(FlywayName::Repeatable) => repeatable.push((stem, file.path)),
            None if meant_as_migration(&file.name) => {
                return Err(Error::misnamed(
                    &file.path,
                    "not a Flyway migration name, so Flyway would skip it",
                    "name it V<version>__<description>.sql (two underscores), \
                     U<version>__<description>.sql or R__<description>.sql",
                ))
            }
            None => {}
        }
    }
    versioned.sort_by(|a, b| a.0.cmp(&b.0));
    // Flyway runs repeatable migrations by description, which is the name.
    repeatable.sort();

    let mut changes = Vec::with_capacity(versioned.len() + repeatable.len());
    for (parsed, version, path) in versioned {
        let mut change = Change::new(stem(&path), read_script(&path)?);
        change.no_transaction = outside_transaction(&path)?;
        if let Some(undo_path) = undo.remove(&parsed) {
            change.no_transaction |= outside_transaction(&undo_path)?;
            change.down = Some(read_script(&undo_path)?);
        }
        change.version = Some(version);
        changes.push(change);
    }
    if let Some((_, orphan)) = undo.into_iter().next() {
        return Err(Error::misnamed(
            orphan,
            "undo script without a V migration of the same version",
            "give it the version of the migration it undoes, or remove it",
        ));
    }
    for (name, path) in repeatable {
        let mut change = Change::new(name, read_script(&path)?);
        change.no_transaction = outside_transaction(&path)?;
        change.repeatable = true;
        changes.push(change);
    }
    Ok(Plan {
        format: Format::Flyway,
        changes,
        phases: Vec::new(),
    })
}

fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.trim_end_matches(".sql").to_string()
}

fn read_script(path: &Path) -> Result<Script> {
    Ok(Script::new(path, read_text(path)?))
}

/// Flyway's per-script configuration: `V1__x.sql.conf` beside the script.
fn outside_transaction(script: &Path) -> Result<bool> {
    let mut conf = script.as_os_str().to_owned();
    conf.push(".conf");
    let conf = PathBuf::from(conf);
    if !conf.is_file() {
        return Ok(false);
    }
    Ok(read_text(&conf)?.lines().any(|line| {
        line.split_once('=').is_some_and(|(k, v)| {
            k.trim() == "executeInTransaction" && v.trim().eq_ignore_ascii_case("false")
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(matches!(
            parse_name("V1_1__add.sql"),
            Some(FlywayName::Versioned { version: "1_1", .. })
        ));
        assert!(matches!(
            parse_name("U2__x.sql"),
            Some(FlywayName::Undo { version: "2", .. })
        ));
        assert!(matches!(
            parse_name("R__views.sql"),
            Some(FlywayName::Repeatable)
        ));
        assert!(parse_name("V1_add.sql").is_none());
        assert!(parse_name("V1__add.txt").is_none());
        assert!(parse_name("seed.sql").is_none());
        assert!(meant_as_migration("V1_add.sql"));
        assert!(meant_as_migration("R_views.sql"));
        assert!(!meant_as_migration("seed.sql"));
        assert!(!meant_as_migration("Views.sql"));
    }
}
