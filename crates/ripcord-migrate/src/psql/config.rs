//! Where variables come from besides `--set`: sqitch.conf and Flyway's
//! configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::script::read_text;

/// sqitch.conf, read as git-config: `section.subsection.key` → value.
pub(super) struct Sqitch {
    keys: Vec<(String, String, String)>,
}

impl Sqitch {
    /// The variables of a step (`up`, `down` or `verify`), weakest first.
    pub fn variables(&self, step: &str) -> BTreeMap<String, String> {
        // sqitch's revert and verify read `[deploy.variables]` too, "on the
        // assumption that the values will generally be the same", and let
        // their own section override it.
        let own = match step {
            "up" => None,
            "down" => Some("revert"),
            _ => Some("verify"),
        };
        let target = self
            .get("engine.pg", "target")
            .or_else(|| self.get("core", "target"));
        let mut sections = vec!["core.variables".to_string(), "deploy.variables".to_string()];
        sections.extend(own.map(|s| format!("{s}.variables")));
        sections.push("engine.pg.variables".to_string());
        if let Some(t) = target {
            sections.push(format!("target.{t}.variables"));
        }
        // What sqitch's pg engine passes to psql itself.
        let registry = self
            .get("engine.pg", "registry")
            .or_else(|| self.get("core", "registry"))
            .unwrap_or_else(|| "sqitch".into());
        let mut vars = BTreeMap::from([
            ("ON_ERROR_STOP".to_string(), "1".to_string()),
            ("registry".to_string(), registry),
        ]);
        for section in &sections {
            for (s, k, v) in &self.keys {
                if s == section {
                    vars.insert(k.clone(), v.clone());
                }
            }
        }
        vars
    }

    fn get(&self, section: &str, key: &str) -> Option<String> {
        self.keys
            .iter()
            .rev()
            .find(|(s, k, _)| s == section && k.eq_ignore_ascii_case(key))
            .map(|(_, _, v)| v.clone())
    }
}

/// Reads `dir/sqitch.conf`; none is an empty configuration.
pub(super) fn sqitch(dir: &Path) -> Result<Sqitch> {
    let path = dir.join("sqitch.conf");
    if !path.is_file() {
        return Ok(Sqitch { keys: Vec::new() });
    }
    let text = read_text(&path)?;
    let mut keys = Vec::new();
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(inner) = line.strip_prefix('[') {
            let inner = inner.split(']').next().unwrap_or_default().trim();
            // `[target "prod"]` is section target, subsection prod.
            section = match inner.split_once(char::is_whitespace) {
                Some((name, sub)) => format!(
                    "{}.{}",
                    name.to_ascii_lowercase(),
                    sub.trim().trim_matches('"')
                ),
                None => inner.to_ascii_lowercase(),
            };
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            Error::malformed(
                &path,
                i + 1,
                format!("{line:?} is not `name = value`"),
                "sqitch.conf is in git-config form: [section] lines, then name = value",
            )
        })?;
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(v) => v.replace("\\\"", "\"").replace("\\\\", "\\"),
            None => {
                let cut = [" #", " ;"].iter().filter_map(|c| value.find(c)).min();
                value[..cut.unwrap_or(value.len())].trim_end().to_string()
            }
        };
        keys.push((section.clone(), key.trim().to_string(), value));
    }
    Ok(Sqitch { keys })
}

/// Flyway's placeholders: `${name}` (prefix and suffix configurable).
pub(super) struct Placeholders {
    values: BTreeMap<String, String>,
    prefix: String,
    suffix: String,
    enabled: bool,
    table: String,
}

impl Placeholders {
    /// `sql` with every placeholder replaced; an unknown one is an error, as
    /// in Flyway.
    pub fn replace(&self, path: &Path, sql: &str) -> Result<String> {
        if !self.enabled || !sql.contains(&self.prefix) {
            return Ok(sql.to_string());
        }
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(start) = rest.find(&self.prefix) {
            let after = &rest[start + self.prefix.len()..];
            let Some(end) = after.find(&self.suffix) else {
                break;
            };
            let name = &after[..end];
            if name.is_empty() || name.contains(char::is_whitespace) {
                out.push_str(&rest[..start + self.prefix.len()]);
                rest = after;
                continue;
            }
            let value = match name {
                "flyway:filename" => path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "flyway:table" => Some(self.table.clone()),
                _ => self.values.get(name).cloned().or_else(|| {
                    self.values
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                }),
            };
            let Some(value) = value else {
                let line = sql[..sql.len() - rest.len() + start].matches('\n').count() + 1;
                return Err(Error::malformed(
                    path,
                    line,
                    format!(
                        "no value provided for placeholder {}{name}{}",
                        self.prefix, self.suffix
                    ),
                    format!(
                        "set flyway.placeholders.{name}=VALUE in flyway.conf, or pass --set \
                         {name}=VALUE"
                    ),
                ));
            };
            out.push_str(&rest[..start]);
            out.push_str(&value);
            rest = &after[end + self.suffix.len()..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The configuration files Flyway would read for a migrations folder: its
/// own, its parent's (the project), and their `conf/`.
fn flyway_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut folders = vec![dir.to_path_buf()];
    if let Some(parent) = dir.parent() {
        folders.push(parent.to_path_buf());
    }
    let mut files = Vec::new();
    for folder in folders.iter().rev() {
        files.push(folder.join("conf").join(name));
        files.push(folder.join(name));
    }
    files.into_iter().filter(|f| f.is_file()).collect()
}

pub(super) fn flyway(dir: &Path, set: &[(String, String)]) -> Result<Placeholders> {
    let mut p = Placeholders {
        values: BTreeMap::new(),
        prefix: "${".into(),
        suffix: "}".into(),
        enabled: true,
        table: "flyway_schema_history".into(),
    };
    for path in flyway_files(dir, "flyway.conf") {
        for line in read_text(&path)?.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, value)) = line.split_once(['=', ':']) else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim().to_string());
            if let Some(name) = key.strip_prefix("flyway.placeholders.") {
                p.values.insert(name.to_string(), value);
            } else {
                p.setting(key.trim_start_matches("flyway."), value);
            }
        }
    }
    for path in flyway_files(dir, "flyway.toml") {
        let text = read_text(&path)?;
        let doc: toml::Table = toml::from_str(&text).map_err(|e| {
            Error::malformed(
                &path,
                1,
                e.message().to_string(),
                "flyway.toml is TOML with a [flyway] table",
            )
        })?;
        if let Some(toml::Value::Table(flyway)) = doc.get("flyway") {
            for (key, value) in flyway {
                match (key.as_str(), value) {
                    ("placeholders", toml::Value::Table(values)) => {
                        for (name, v) in values {
                            p.values.insert(name.clone(), scalar(v));
                        }
                    }
                    (_, v) => p.setting(key, scalar(v)),
                }
            }
        }
    }
    p.values.extend(set.iter().cloned());
    Ok(p)
}

impl Placeholders {
    fn setting(&mut self, key: &str, value: String) {
        match key {
            "placeholderPrefix" => self.prefix = value,
            "placeholderSuffix" => self.suffix = value,
            "placeholderReplacement" => self.enabled = !value.eq_ignore_ascii_case("false"),
            "table" => self.table = value,
            _ => {}
        }
    }
}

fn scalar(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
