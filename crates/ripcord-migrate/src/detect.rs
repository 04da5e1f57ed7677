//! Telling the format of a folder of migrations from its files.

use std::path::Path;

use crate::error::{Error, Result};
use crate::plan::Format;
use crate::readers::{
    dbmate_marker, flyway_name, golang_name, liquibase_master, liquibase_sql, list, timestamp_name,
    walk, FlywayName,
};
use crate::script::read_text;

/// Picks the format of the migrations in `dir`. Fails when there are none,
/// or when files of more than one format are there, rather than guess.
pub fn detect(dir: &Path) -> Result<Format> {
    if !dir.is_dir() {
        return Err(Error::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    // Each format found, with a file that shows it.
    let mut found: Vec<(Format, String)> = Vec::new();
    let mut note = |format: Format, example: String| {
        if !found.iter().any(|(f, _)| *f == format) {
            found.push((format, example));
        }
    };
    let entries = list(dir)?;
    let sqitch = entries
        .iter()
        .any(|e| !e.is_dir && e.name == crate::readers::SQITCH_PLAN);
    if sqitch {
        note(Format::Sqitch, crate::readers::SQITCH_PLAN.into());
    }
    for entry in &entries {
        let lower = entry.name.to_ascii_lowercase();
        if !entry.is_dir
            && [".sql", ".xml", ".yaml", ".yml"]
                .iter()
                .any(|ext| lower.ends_with(ext))
        {
            // A Liquibase changelog is Liquibase's whatever its name says;
            // its head tells.
            let text = head(&entry.path)?;
            if liquibase_sql(&text) || liquibase_master(&entry.name, &text) {
                note(Format::Liquibase, entry.name.clone());
                continue;
            }
        }
        if entry.is_dir {
            if entry.path.join("up.sql").is_file() {
                note(Format::Native, format!("{}/up.sql", entry.name));
            }
        } else if golang_name(&entry.name).is_some_and(|n| n.up) {
            note(Format::GolangMigrate, entry.name.clone());
        } else if entry.name.ends_with(".sql")
            && entry.name.starts_with(|c: char| c.is_ascii_digit())
        {
            if dbmate_marker(&read_text(&entry.path)?) {
                note(Format::Dbmate, entry.name.clone());
            } else if timestamp_name(&entry.name).is_some_and(|n| !n.rollback) {
                note(Format::Timestamp, entry.name.clone());
            }
        }
    }
    // Flyway scans subfolders; a sqitch project's scripts are not Flyway's.
    if !sqitch {
        for file in walk(dir)? {
            if matches!(
                flyway_name(&file.name),
                Some(FlywayName::Versioned { .. } | FlywayName::Repeatable)
            ) {
                let shown = file.path.strip_prefix(dir).unwrap_or(&file.path);
                note(Format::Flyway, shown.display().to_string());
                break;
            }
        }
    }
    match found.as_slice() {
        [] => Err(Error::NoMigrations {
            dir: dir.to_path_buf(),
            inner: Some(dir.join("migrations")).filter(|d| d.is_dir()),
        }),
        [(format, _)] => Ok(*format),
        many => Err(Error::Ambiguous {
            dir: dir.to_path_buf(),
            found: many
                .iter()
                .map(|(f, example)| format!("{f} ({example})"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The first few kilobytes of a file, as text.
fn head(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut buf))
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}
