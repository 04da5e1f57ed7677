//! Liquibase's `databasechangelog`: a row per changeset run, by `id`,
//! `author` and `filename`, with `exectype` (EXECUTED, RERAN, MARK_RAN,
//! FAILED, SKIPPED) and `md5sum`. Checksums of version 9 (Liquibase 4.24
//! and later) are compared with the file's; older ones cannot be, and are
//! reported as such.

use super::{no_history, quoted, rows, Found};
use crate::engine::Database;
use crate::{Plan, Result};

pub(super) fn read(db: &mut dyn Database, plan: &Plan, table: Option<&str>) -> Result<Found> {
    let table = table.unwrap_or("databasechangelog");
    let sql = format!(
        "SELECT CAST(id AS text), CAST(author AS text), CAST(filename AS text),
                CAST(md5sum AS text), CAST(exectype AS text)
         FROM {} ORDER BY dateexecuted, orderexecuted",
        quoted(table)
    );
    let rows = rows(db, &sql)?.ok_or_else(|| no_history(table, "Liquibase"))?;
    let mut found = Found {
        table: table.to_string(),
        ..Found::default()
    };
    let mut old_checksums = 0;
    for row in rows {
        let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (id, author, filename, md5, exectype) = (get(0), get(1), get(2), get(3), get(4));
        let name = format!("{author}:{id}");
        let Some(change) = plan.change(&name) else {
            found.problems.push(format!(
                "the database ran changeset {name} ({filename}), which no changelog in the plan has"
            ));
            continue;
        };
        if let Some(source) = &change.source {
            if !same_file(&filename, source) {
                found.problems.push(format!(
                    "{name}: the database ran it from {filename}, the plan has it in {source}"
                ));
            }
        }
        match exectype.to_ascii_uppercase().as_str() {
            "EXECUTED" | "RERAN" | "MARK_RAN" => {}
            "FAILED" => {
                found
                    .problems
                    .push(format!("{name}: Liquibase recorded it as failed"));
                continue;
            }
            _ => continue,
        }
        let check = if md5.is_empty() {
            "no checksum recorded".to_string()
        } else if md5.starts_with("9:") {
            if change.tool_checksum.as_deref() == Some(md5.as_str()) {
                "checksum matches".into()
            } else if change.repeatable && !change.run_always {
                // runOnChange: Liquibase would run it again; so will `up`.
                found.notes.push(format!(
                    "{name}: changed since Liquibase ran it (runOnChange); the next `up` runs it \
                     again"
                ));
                found.forget(&name);
                continue;
            } else {
                found.problems.push(format!(
                    "{name}: the changeset has changed since Liquibase ran it (MD5SUM {md5} \
                     recorded, {} now)",
                    change.tool_checksum.as_deref().unwrap_or("none")
                ));
                "checksum differs".into()
            }
        } else {
            old_checksums += 1;
            "checksum of an older Liquibase, not checked".into()
        };
        found.seen(&name, check);
    }
    if old_checksums > 0 {
        found.notes.push(format!(
            "{} of a Liquibase older than 4.24, which \
             ripcord cannot compute: their files were not checked",
            ripcord_core::text::count(
                old_checksums as u64,
                "changeset carries checksums",
                "changesets carry checksums"
            )
        ));
    }
    Ok(found)
}

/// Whether the file the history names is the plan's: the same path once a
/// `classpath:` prefix and leading folders are set aside.
fn same_file(recorded: &str, source: &str) -> bool {
    let clean = |s: &str| {
        s.trim_start_matches("classpath:")
            .trim_start_matches("./")
            .trim_start_matches('/')
            .replace('\\', "/")
    };
    let (r, s) = (clean(recorded), clean(source));
    r == s || r.ends_with(&format!("/{s}")) || s.ends_with(&format!("/{r}"))
}
