//! ripcord's own layout: one folder per change holding `up.sql` and
//! optionally `down.sql` and `verify.sql`, in folder-name order, with phases,
//! requirements and transaction opt-outs in an optional `plan.toml`:
//!
//! ```toml
//! [[phase]]
//! name = "expand"
//! changes = ["0001_add_col", "0002_backfill"]
//!
//! [changes.0002_backfill]
//! requires = ["0001_add_col"]
//! no_transaction = false
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::list;
use crate::error::{Error, Result};
use crate::near::near;
use crate::plan::{Change, Format, Phase, Plan};
use crate::script::{read_text, Script};

const PLAN_FILE: &str = "plan.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    #[serde(default)]
    phase: Vec<PhaseEntry>,
    #[serde(default)]
    changes: BTreeMap<String, ChangeEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseEntry {
    name: String,
    #[serde(default)]
    changes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeEntry {
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    no_transaction: bool,
}

pub(super) fn read(dir: &Path) -> Result<Plan> {
    let mut changes = Vec::new();
    for entry in list(dir)?.into_iter().filter(|e| e.is_dir) {
        let up_path = entry.path.join("up.sql");
        let up = Script::read_optional(&up_path)?.ok_or_else(|| Error::MissingScript {
            change: entry.name.clone(),
            path: up_path.clone(),
            hint: "every change folder needs an up.sql; keep other folders out of the \
                   migrations folder"
                .into(),
        })?;
        let mut change = Change::new(entry.name, up);
        change.down = Script::read_optional(&entry.path.join("down.sql"))?;
        change.verify = Script::read_optional(&entry.path.join("verify.sql"))?;
        changes.push(change);
    }
    let mut plan = Plan {
        format: Format::Native,
        changes,
        phases: Vec::new(),
    };
    let plan_path = dir.join(PLAN_FILE);
    if plan_path.is_file() {
        apply(&mut plan, &plan_path)?;
    }
    Ok(plan)
}

/// Adds what `plan.toml` declares to the changes found in folders.
fn apply(plan: &mut Plan, path: &Path) -> Result<()> {
    let text = read_text(path)?;
    let file: PlanFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map_or(1, |span| text[..span.start].matches('\n').count() + 1);
        Error::malformed(
            path,
            line,
            e.message().to_string(),
            "plan.toml holds [[phase]] tables (name, changes) and [changes.NAME] tables \
             (requires, no_transaction)",
        )
    })?;
    let unknown = |plan: &Plan, name: &str| Error::UnknownChange {
        change: name.to_string(),
        file: path.to_path_buf(),
        near: near(name, plan.changes.iter().map(|c| c.name.as_str())),
    };
    for entry in file.phase {
        if entry.name.is_empty() || entry.name.starts_with('@') {
            return Err(Error::malformed(
                path,
                1,
                format!("phase name {:?} is not usable", entry.name),
                "name phases with letters, digits, '-' or '_'",
            ));
        }
        if plan.phase(&entry.name).is_some() {
            return Err(Error::DuplicatePhase {
                phase: entry.name,
                file: path.to_path_buf(),
            });
        }
        for name in &entry.changes {
            let pos = plan
                .changes
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| unknown(plan, name))?;
            let change = &mut plan.changes[pos];
            if change.phase.as_deref() == Some(entry.name.as_str()) {
                return Err(Error::malformed(
                    path,
                    1,
                    format!("phase {} lists {name} twice", entry.name),
                    "list each change once",
                ));
            }
            if let Some(first) = &change.phase {
                return Err(Error::InTwoPhases {
                    change: name.clone(),
                    first: first.clone(),
                    second: entry.name.clone(),
                    file: path.to_path_buf(),
                });
            }
            change.phase = Some(entry.name.clone());
        }
        plan.phases.push(Phase {
            name: entry.name,
            changes: entry.changes,
        });
    }
    for (name, entry) in file.changes {
        let pos = plan
            .changes
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| unknown(plan, &name))?;
        plan.changes[pos].requires = entry.requires;
        plan.changes[pos].no_transaction = entry.no_transaction;
    }
    Ok(())
}
