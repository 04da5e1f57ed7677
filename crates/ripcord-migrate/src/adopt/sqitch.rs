//! sqitch's registry: `changes` has a row per deployed change, with the
//! SHA-1 of its deploy script (`script_hash`); `tags` has a row per tag
//! deployed, naming the change it is on. On PostgreSQL the registry is the
//! schema `sqitch`; on SQLite it is the file `sqitch.db` beside the
//! database, attached for the read.

use std::path::{Path, PathBuf};

use super::{no_history, quoted, rows, Found};
use crate::adopt::checksums::sqitch_script_hash;
use crate::engine::{Conn, Database};
use crate::{Error, Plan, Result};

pub(super) fn read(db: &mut dyn Database, plan: &Plan, registry: Option<&str>) -> Result<Found> {
    let project = project(plan)?;
    let literal = format!("'{}'", project.replace('\'', "''"));
    let (schema, attached) = match db.conn() {
        Conn::Postgres(_) => (registry.unwrap_or("sqitch").to_string(), false),
        Conn::Sqlite(conn) => {
            let file = match registry {
                Some(r) => PathBuf::from(r),
                None => conn
                    .path()
                    .map(Path::new)
                    .and_then(Path::parent)
                    .map(|d| d.join("sqitch.db"))
                    .unwrap_or_else(|| PathBuf::from("sqitch.db")),
            };
            if !file.is_file() {
                return Err(no_history(&file.display().to_string(), "sqitch"));
            }
            conn.execute(
                "ATTACH DATABASE ?1 AS ripcord_sqitch",
                [file.to_string_lossy()],
            )
            .map_err(Error::sqlite("attach the sqitch registry"))?;
            ("ripcord_sqitch".to_string(), true)
        }
    };
    let result = read_registry(db, plan, &schema, &literal);
    if attached {
        if let Conn::Sqlite(conn) = db.conn() {
            let _ = conn.execute_batch("DETACH DATABASE ripcord_sqitch");
        }
    }
    let mut found = result?;
    found.table = match registry {
        Some(r) => r.to_string(),
        None if attached => "sqitch.db".into(),
        None => "sqitch.changes".into(),
    };
    Ok(found)
}

fn read_registry(db: &mut dyn Database, plan: &Plan, schema: &str, project: &str) -> Result<Found> {
    let schema_q = quoted(schema);
    let changes = rows(
        db,
        &format!(
            "SELECT CAST(change_id AS text), CAST(change AS text), CAST(script_hash AS text)
             FROM {schema_q}.changes WHERE project = {project} ORDER BY committed_at, change_id"
        ),
    )?
    .ok_or_else(|| no_history(&format!("{schema}.changes"), "sqitch"))?;
    let mut found = Found::default();
    let mut ids: Vec<(String, String)> = Vec::new();
    let names: Vec<String> = changes
        .iter()
        .map(|r| r.get(1).cloned().flatten().unwrap_or_default())
        .collect();
    for (i, row) in changes.iter().enumerate() {
        let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (id, name, hash) = (get(0), get(1), row.get(2).cloned().flatten());
        ids.push((id, name.clone()));
        // A reworked change was deployed once per version; the files hold
        // the latest, which the latest row is of.
        if names[i + 1..].contains(&name) {
            continue;
        }
        let Some(change) = plan.change(&name) else {
            found.problems.push(format!(
                "the database has {name} deployed, which sqitch.plan does not have"
            ));
            continue;
        };
        let check = match hash {
            None => "no checksum recorded".to_string(),
            Some(hash) => {
                let bytes = std::fs::read(&change.up.path)
                    .map_err(|e| Error::io(format!("reading {}", change.up.path.display()), e))?;
                if sqitch_script_hash(&bytes) == hash {
                    "script hash matches".into()
                } else {
                    found.problems.push(format!(
                        "{name}: its deploy script has changed since sqitch deployed it \
                         (script_hash differs)"
                    ));
                    "script hash differs".into()
                }
            }
        };
        found.seen(&name, check);
    }
    let tags = rows(
        db,
        &format!(
            "SELECT CAST(tag AS text), CAST(change_id AS text)
             FROM {schema_q}.tags WHERE project = {project}"
        ),
    )?
    .unwrap_or_default();
    for row in tags {
        let tag = row.first().cloned().flatten().unwrap_or_default();
        let id = row.get(1).cloned().flatten().unwrap_or_default();
        let on = ids.iter().find(|(i, _)| *i == id).map(|(_, n)| n.as_str());
        let name = tag.trim_start_matches('@');
        let Some(phase) = plan.phase(name) else {
            found.problems.push(format!(
                "the database has tag {tag} deployed, which sqitch.plan does not have"
            ));
            continue;
        };
        let last = phase.changes.last().map(String::as_str);
        if on.is_some() && last.is_some() && on != last {
            found.problems.push(format!(
                "tag {tag} is on {} in the database, but on {} in sqitch.plan",
                on.unwrap_or("?"),
                last.unwrap_or("?")
            ));
        }
    }
    Ok(found)
}

/// The project name, from `%project=` in `sqitch.plan`.
fn project(plan: &Plan) -> Result<String> {
    let dir = plan
        .changes
        .first()
        .and_then(|c| c.up.path.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let path = dir.join(crate::readers::SQITCH_PLAN);
    let text = crate::script::read_text(&path)?;
    text.lines()
        .find_map(|l| {
            let (k, v) = l.trim().strip_prefix('%')?.split_once('=')?;
            (k.trim() == "project").then(|| v.trim().to_string())
        })
        .ok_or_else(|| {
            Error::malformed(
            &path,
            1,
            "no %project= line",
            "sqitch.plan starts with %syntax-version=1.0.0 and %project=NAME; sqitch's registry \
             records changes by project",
        )
        })
}
