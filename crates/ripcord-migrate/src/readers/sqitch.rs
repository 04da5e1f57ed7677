//! sqitch: `sqitch.plan` names the changes, their requirements and tags;
//! the scripts are `deploy/NAME.sql`, `revert/NAME.sql` and `verify/NAME.sql`.
//!
//! A tag closes a phase holding the changes since the previous tag; changes
//! after the last tag belong to no phase.
//!
//! Limitations: only the default layout is read (a `sqitch.conf` that moves
//! the plan or the script folders is not followed). A reworked change (one
//! that appears again after a tag, usually as `name [name@tag]`) keeps only
//! its latest definition: its current scripts, its latest requirements and
//! its latest place in the plan; the earlier versions kept in
//! `deploy/name@tag.sql` are not read, and the change leaves the phase it was
//! first in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::plan::{Change, Format, Phase, Plan};
use crate::script::{read_text, Script};

pub(crate) const PLAN_FILE: &str = "sqitch.plan";

const LINE_HINT: &str = "sqitch.plan lines look like `name [requires] 2024-01-31T12:00:00Z \
                         Planner Name <planner@example.com> # note`, or `@tag …` for tags";

/// A change line as written, before its scripts are read.
struct Entry {
    name: String,
    line: usize,
    requires: Vec<String>,
    conflicts: Vec<String>,
    external: Vec<String>,
    /// How many tags came before it, to tell a rework from a duplicate.
    tags_before: usize,
}

pub(super) fn read(dir: &Path) -> Result<Plan> {
    let plan_path = dir.join(PLAN_FILE);
    let text = read_text(&plan_path)?;
    let malformed =
        |line: usize, detail: String| Error::malformed(&plan_path, line, detail, LINE_HINT);

    let mut project: Option<String> = None;
    let mut entries: Vec<Entry> = Vec::new();
    let mut phases: Vec<Phase> = Vec::new();
    // Tag name → the change it was placed on, for `@tag` requirements.
    let mut tags: HashMap<String, Option<String>> = HashMap::new();
    let mut since_tag: Vec<String> = Vec::new();

    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(pragma) = line.strip_prefix('%') {
            let (key, value) = pragma
                .split_once('=')
                .ok_or_else(|| malformed(line_no, format!("pragma {line:?} has no '='")))?;
            if key.trim() == "project" {
                project = Some(value.trim().to_string());
            }
            continue;
        }
        let parsed = parse_line(line).map_err(|detail| malformed(line_no, detail))?;
        if let Some(tag) = parsed.name.strip_prefix('@') {
            if !parsed.deps.is_empty() {
                return Err(malformed(
                    line_no,
                    format!("tag @{tag} cannot have requirements"),
                ));
            }
            if tags.contains_key(tag) {
                return Err(malformed(line_no, format!("tag @{tag} is declared twice")));
            }
            tags.insert(tag.to_string(), entries.last().map(|e| e.name.clone()));
            phases.push(Phase {
                name: tag.to_string(),
                changes: std::mem::take(&mut since_tag),
            });
            continue;
        }

        let name = parsed.name;
        let mut entry = Entry {
            name: name.to_string(),
            line: line_no,
            requires: Vec::new(),
            conflicts: Vec::new(),
            external: Vec::new(),
            tags_before: phases.len(),
        };
        for dep in parsed.deps {
            let (conflict, dep) = match dep.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, dep),
            };
            // `project:change` names this project or another one.
            let local = match dep.split_once(':') {
                Some((p, rest)) if Some(p) == project.as_deref() => rest,
                Some(_) => {
                    if !conflict {
                        entry.external.push(dep.to_string());
                    }
                    continue;
                }
                None => dep,
            };
            if conflict {
                entry.conflicts.push(local.to_string());
                continue;
            }
            // `change@tag` pins a version of a change; only the change is kept.
            // `@tag` means the change the tag is on.
            let target = match local.split_once('@') {
                Some(("", tag)) => match tags.get(tag) {
                    Some(Some(on)) => on.clone(),
                    _ => {
                        return Err(malformed(
                            line_no,
                            format!("{name} requires @{tag}, which no earlier line tags"),
                        ))
                    }
                },
                Some((change, _)) => change.to_string(),
                None => local.to_string(),
            };
            // A rework requires its own earlier version, which is itself.
            if target != name && !entry.requires.contains(&target) {
                entry.requires.push(target);
            }
        }

        if let Some(pos) = entries.iter().position(|e| e.name == name) {
            if entries[pos].tags_before == phases.len() {
                return Err(Error::Duplicate {
                    change: name.to_string(),
                    first: line_path(&plan_path, entries[pos].line),
                    second: line_path(&plan_path, line_no),
                });
            }
            // Reworked: keep the latest definition, at its latest place.
            entries.remove(pos);
            for phase in &mut phases {
                phase.changes.retain(|c| c != name);
            }
        }
        since_tag.push(name.to_string());
        entries.push(entry);
    }

    let mut changes = Vec::with_capacity(entries.len());
    for entry in entries {
        let deploy = dir.join("deploy").join(format!("{}.sql", entry.name));
        let up = Script::read_optional(&deploy)?.ok_or_else(|| Error::MissingScript {
            change: entry.name.clone(),
            path: deploy.clone(),
            hint: format!(
                "{}:{} names it; add the deploy script or remove the line",
                plan_path.display(),
                entry.line
            ),
        })?;
        let mut change = Change::new(entry.name.clone(), up);
        change.down =
            Script::read_optional(&dir.join("revert").join(format!("{}.sql", entry.name)))?;
        change.verify =
            Script::read_optional(&dir.join("verify").join(format!("{}.sql", entry.name)))?;
        change.requires = entry.requires;
        change.conflicts = entry.conflicts;
        change.external_requires = entry.external;
        change.phase = phases
            .iter()
            .find(|p| p.changes.contains(&entry.name))
            .map(|p| p.name.clone());
        changes.push(change);
    }
    Ok(Plan {
        format: Format::Sqitch,
        changes,
        phases,
    })
}

fn line_path(plan: &Path, line: usize) -> PathBuf {
    PathBuf::from(format!("{}:{line}", plan.display()))
}

/// A change or tag line split into its parts.
struct Line<'a> {
    /// The change name, or `@tag` for a tag.
    name: &'a str,
    deps: Vec<&'a str>,
}

/// Parses `name [deps] timestamp planner <email> # note`.
fn parse_line(line: &str) -> std::result::Result<Line<'_>, String> {
    let (name, mut rest) = line
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("{line:?} has no timestamp and planner"))?;
    let bare = name.strip_prefix('@').unwrap_or(name);
    if !valid_name(bare) {
        return Err(format!("{name:?} is not a valid sqitch name"));
    }
    rest = rest.trim_start();
    let mut deps = Vec::new();
    if let Some(after) = rest.strip_prefix('[') {
        let end = after
            .find(']')
            .ok_or_else(|| format!("the requirements of {name} have no closing ']'"))?;
        deps = after[..end].split_whitespace().collect();
        rest = after[end + 1..].trim_start();
    }
    let (timestamp, planner) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !valid_timestamp(timestamp) {
        return Err(format!(
            "{name}: expected a timestamp like 2024-01-31T12:00:00Z, found {timestamp:?}"
        ));
    }
    let open = planner
        .find('<')
        .ok_or_else(|| format!("{name}: the planner has no <email>"))?;
    let close = planner[open..]
        .find('>')
        .ok_or_else(|| format!("{name}: the planner's <email> has no closing '>'"))?;
    if planner[..open].trim().is_empty() {
        return Err(format!("{name}: no planner name before <email>"));
    }
    let after = planner[open + close + 1..].trim_start();
    if !after.is_empty() && !after.starts_with('#') {
        return Err(format!(
            "{name}: unexpected {after:?} after the planner; notes start with '#'"
        ));
    }
    Ok(Line { name, deps })
}

/// sqitch's rule: no blanks, `:`, `@` or `#`, and no punctuation other than
/// `_` at either end.
fn valid_name(name: &str) -> bool {
    const PUNCT: &str = "-!\"#$%&'()*+,./:;<=>?@[\\]^`{|}~";
    let edge = |c: Option<char>| c.is_some_and(|c| !PUNCT.contains(c));
    edge(name.chars().next())
        && edge(name.chars().last())
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ':' | '@' | '#'))
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form sqitch writes.
fn valid_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_change_and_tag_lines() {
        let l = parse_line(
            "users [appschema !old] 2024-01-31T12:00:00Z Ann Lee <ann@example.com> # Adds users.",
        )
        .unwrap();
        assert_eq!(l.name, "users");
        assert_eq!(l.deps, ["appschema", "!old"]);
        let l = parse_line("@v1.0 2024-02-01T08:00:00Z Ann <ann@example.com>").unwrap();
        assert_eq!(l.name, "@v1.0");
        assert!(l.deps.is_empty());
        assert!(parse_line("_private/x.y 2024-01-31T12:00:00Z Ann <a@b>").is_ok());
    }

    #[test]
    fn rejects_broken_lines() {
        for bad in [
            "users",
            "users [appschema 2024-01-31T12:00:00Z Ann <a@b>",
            "users 2024-01-31 Ann <a@b>",
            "users 2024-01-31T12:00:00Z <a@b>",
            "users 2024-01-31T12:00:00Z Ann a@b",
            "users 2024-01-31T12:00:00Z Ann <a@b> trailing",
            "us:ers 2024-01-31T12:00:00Z Ann <a@b>",
            "users- 2024-01-31T12:00:00Z Ann <a@b>",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}
