//! Flyway's `flyway_schema_history`: one row per run, in `installed_rank`
//! order. A versioned migration is applied when its latest row succeeded
//! and no undo followed; a baseline marks every version up to it applied;
//! a repeatable one is up to date when its latest checksum is the file's.

use super::{no_history, quoted, rows, truthy, Found};
use crate::adopt::checksums::flyway_checksum;
use crate::engine::Database;
use crate::script::read_text;
use crate::version::Version;
use crate::{Plan, Result};

pub(super) fn read(db: &mut dyn Database, plan: &Plan, table: Option<&str>) -> Result<Found> {
    let table = table.unwrap_or("flyway_schema_history");
    let sql = format!(
        "SELECT CAST(installed_rank AS text), CAST(version AS text), CAST(description AS text),
                CAST(type AS text), CAST(script AS text), CAST(checksum AS text),
                CAST(success AS text)
         FROM {} ORDER BY installed_rank",
        quoted(table)
    );
    let rows = rows(db, &sql)?.ok_or_else(|| no_history(table, "Flyway"))?;
    let mut found = Found {
        table: table.to_string(),
        ..Found::default()
    };
    let by_version: Vec<(Version, &crate::Change)> = plan
        .changes
        .iter()
        .filter(|c| !c.repeatable)
        .filter_map(|c| Some((Version::parse(c.version.as_deref()?)?, c)))
        .collect();
    // Repeatable: the latest row of each.
    let mut repeatable: Vec<(String, Option<String>, bool)> = Vec::new();
    for row in &rows {
        let get = |i: usize| row.get(i).cloned().flatten();
        let (version, description, kind, script, checksum) =
            (get(1), get(2), get(3), get(4), get(5));
        let success = truthy(get(6).as_deref());
        let kind = kind.unwrap_or_default();
        let script = script.unwrap_or_default();
        match kind.as_str() {
            "SCHEMA" | "DELETE" => continue,
            "BASELINE" => {
                let Some(base) = version.as_deref().and_then(Version::parse) else {
                    continue;
                };
                for (v, c) in &by_version {
                    if *v <= base {
                        found.seen(
                            &c.name,
                            format!("below the baseline {}", version.as_deref().unwrap_or("")),
                        );
                    }
                }
                let mut seen = std::mem::take(&mut found.applied);
                seen.sort_by_key(|s| plan.changes.iter().position(|c| c.name == s.change));
                found.applied = seen;
                continue;
            }
            _ => {}
        }
        let Some(version) = version else {
            repeatable.retain(|(s, _, _)| *s != script);
            repeatable.push((script, checksum, success));
            continue;
        };
        let change = Version::parse(&version)
            .and_then(|v| by_version.iter().find(|(w, _)| *w == v).map(|(_, c)| *c));
        let Some(change) = change else {
            found.problems.push(format!(
                "the database ran version {version} ({script}), which no file in the plan has"
            ));
            continue;
        };
        let undo = kind.starts_with("UNDO");
        if !success {
            found.problems.push(format!(
                "{}: Flyway recorded it as failed (version {version})",
                change.name
            ));
            continue;
        }
        if undo {
            found.forget(&change.name);
            continue;
        }
        let check = compare(change, checksum.as_deref(), &mut found)?;
        if description.is_some_and(|d| !description_matches(&change.name, &d)) {
            found.notes.push(format!(
                "{}: the history's description differs from the file name",
                change.name
            ));
        }
        found.seen(&change.name, check);
    }
    for (script, checksum, success) in repeatable {
        let stem = script
            .rsplit('/')
            .next()
            .unwrap_or(&script)
            .trim_end_matches(".sql")
            .to_string();
        let Some(change) = plan.changes.iter().find(|c| c.repeatable && c.name == stem) else {
            found.problems.push(format!(
                "the database ran the repeatable migration {script}, which no file in the plan has"
            ));
            continue;
        };
        if !success {
            found.notes.push(format!(
                "{}: its last run failed; the next `up` runs it",
                change.name
            ));
            continue;
        }
        let file = flyway_checksum(&read_text(&change.up.path)?).to_string();
        if checksum.as_deref() == Some(file.as_str()) {
            found.seen(&change.name, "checksum matches");
        } else {
            // Flyway would run it again; so will the next `up`.
            found.notes.push(format!(
                "{}: changed since Flyway ran it; the next `up` runs it again",
                change.name
            ));
        }
    }
    Ok(found)
}

/// Compares the recorded checksum with the file's.
fn compare(change: &crate::Change, recorded: Option<&str>, found: &mut Found) -> Result<String> {
    let Some(recorded) = recorded else {
        return Ok("no checksum recorded".into());
    };
    let file = flyway_checksum(&read_text(&change.up.path)?);
    if recorded.trim() == file.to_string() {
        Ok("checksum matches".into())
    } else {
        found.problems.push(format!(
            "{}: the file has changed since Flyway ran it (checksum {recorded} recorded, {file} now)",
            change.name
        ));
        Ok("checksum differs".into())
    }
}

/// Flyway's description is the file name's, with `_` as blanks.
fn description_matches(name: &str, description: &str) -> bool {
    let from_name = name
        .split_once("__")
        .map(|(_, d)| d.replace('_', " "))
        .unwrap_or_default();
    from_name.trim() == description.trim()
}
