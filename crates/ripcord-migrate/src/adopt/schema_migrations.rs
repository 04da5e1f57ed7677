//! `schema_migrations`, as golang-migrate and dbmate keep it. golang-migrate
//! keeps one row: the version the database is at, and whether the
//! migration to it failed half way (`dirty`); every migration up to that
//! version is applied. dbmate keeps a row per applied version. Neither
//! records a checksum.

use super::{no_history, quoted, rows, truthy, Found};
use crate::engine::Database;
use crate::version::Version;
use crate::{Plan, Result};

pub(super) fn read_golang(
    db: &mut dyn Database,
    plan: &Plan,
    table: Option<&str>,
) -> Result<Found> {
    let table = table.unwrap_or("schema_migrations");
    let sql = format!(
        "SELECT CAST(version AS text), CAST(dirty AS text) FROM {}",
        quoted(table)
    );
    let rows = rows(db, &sql)?.ok_or_else(|| no_history(table, "golang-migrate"))?;
    let mut found = Found {
        table: table.to_string(),
        ..Found::default()
    };
    let [row] = rows.as_slice() else {
        if rows.len() > 1 {
            found.problems.push(format!(
                "{table} has {} rows; golang-migrate keeps one",
                rows.len()
            ));
        }
        return Ok(found);
    };
    let version = row.first().cloned().flatten().unwrap_or_default();
    let dirty = truthy(row.get(1).cloned().flatten().as_deref());
    let Some(at) = Version::parse(&version) else {
        found.problems.push(format!(
            "{table} holds version {version:?}, which is not a number"
        ));
        return Ok(found);
    };
    let mut reached = false;
    for change in &plan.changes {
        let Some(v) = change.version.as_deref().and_then(Version::parse) else {
            continue;
        };
        if v > at {
            continue;
        }
        if v == at {
            reached = true;
            if dirty {
                found.problems.push(format!(
                    "{}: golang-migrate marked it dirty: it failed half way",
                    change.name
                ));
                found.seen(&change.name, "dirty (accepted)");
                continue;
            }
        }
        found.seen(&change.name, "no checksum (golang-migrate keeps none)");
    }
    if !reached && at > Version::parse("0").expect("a version") {
        found.problems.push(format!(
            "the database is at version {version}, which no file in the plan has"
        ));
    }
    Ok(found)
}

pub(super) fn read_dbmate(
    db: &mut dyn Database,
    plan: &Plan,
    table: Option<&str>,
) -> Result<Found> {
    let table = table.unwrap_or("schema_migrations");
    let sql = format!(
        "SELECT CAST(version AS text) FROM {} ORDER BY version",
        quoted(table)
    );
    let rows = rows(db, &sql)?.ok_or_else(|| no_history(table, "dbmate"))?;
    let mut found = Found {
        table: table.to_string(),
        ..Found::default()
    };
    for row in rows {
        let version = row.into_iter().next().flatten().unwrap_or_default();
        match plan
            .changes
            .iter()
            .find(|c| c.version.as_deref() == Some(version.as_str()))
        {
            Some(change) => found.seen(&change.name, "no checksum (dbmate keeps none)"),
            None => found.problems.push(format!(
                "the database ran version {version}, which no file in the plan has"
            )),
        }
    }
    Ok(found)
}
