//! The keys `ripcord.toml` may hold, and the check that it holds no others.
//!
//! serde's `deny_unknown_fields` already refuses unknown keys in most tables,
//! but not at the top level (a misspelt `[targts.app]` was silently
//! ignored, and that target never backed up) and never says where the key
//! was or what was meant. This walk runs before deserializing, names the
//! table and the origin (the file or an environment variable), and suggests
//! the nearest valid key.
//!
//! A key added to a config struct must be added here too; the test
//! `every_listed_key_is_accepted` checks the other direction.

/// The shape of one value in the configuration.
enum Shape {
    /// A scalar or array: not walked.
    Value,
    /// A table with fixed keys.
    Table(&'static [(&'static str, Shape)]),
    /// A table whose keys the user names (`[targets.NAME]`), each of this shape.
    Named(&'static Shape),
    /// `[targets.NAME]`: its keys depend on its `kind`.
    Target,
}

use Shape::{Named, Table, Target, Value};

const KEEP: Shape = Table(&[
    ("last", Value),
    ("hourly", Value),
    ("daily", Value),
    ("weekly", Value),
    ("monthly", Value),
    ("yearly", Value),
    ("within", Value),
    ("tags", Value),
]);

const TIER: Shape = Table(&[
    ("every", Value),
    ("keep", KEEP),
    ("max_age", Value),
    ("targets", Value),
    ("repository", Value),
    ("password_command", Value),
]);

const TABLE_MIGRATION: Shape = Table(&[("on_conflict", Value)]);

const ROOT: Shape = Table(&[
    (
        "repository",
        Table(&[
            ("url", Value),
            ("password_command", Value),
            ("password_command_timeout", Value),
            (
                "s3",
                Table(&[
                    ("endpoint", Value),
                    ("region", Value),
                    ("access_key_id", Value),
                    ("secret_access_key", Value),
                    ("path_style", Value),
                    ("retries", Value),
                    ("retry_timeout", Value),
                ]),
            ),
        ]),
    ),
    ("targets", Named(&Target)),
    (
        "snapshot",
        Table(&[("compression", Value), ("jobs", Value)]),
    ),
    ("tiers", Named(&TIER)),
    ("safety", Table(&[("keep", KEEP)])),
    ("objectives", Table(&[("rto", Value), ("rpo", Value)])),
    (
        "notify",
        Named(&Table(&[
            ("url", Value),
            ("format", Value),
            ("events", Value),
            ("timeout", Value),
        ])),
    ),
    // Steps are checked, kind by kind, in `runbook`.
    (
        "runbooks",
        Named(&Table(&[("steps", Value), ("escalate_to", Value)])),
    ),
    ("catalog", Table(&[("path", Value), ("url", Value)])),
    // Probes and rules are checked key by key in `guard`.
    (
        "guard",
        Table(&[
            ("probes", Named(&Value)),
            ("rules", Value),
            ("retention", Value),
        ]),
    ),
    (
        "migrations",
        Table(&[
            ("target", Value),
            ("dir", Value),
            ("on_conflict", Value),
            ("tables", Named(&TABLE_MIGRATION)),
            ("snapshot", Value),
            ("lock_timeout", Value),
            ("timeout", Value),
        ]),
    ),
]);

/// The keys of a target table, by kind (besides `kind` itself).
pub(super) const TARGET_KINDS: &[(&str, &[&str])] = &[
    ("dir", &["path", "exclude"]),
    ("sqlite", &["path", "create"]),
    ("postgres", &["url", "split_mb"]),
];

/// An unknown key: where it is and what might have been meant.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct UnknownKey {
    /// The full dotted path of the key, e.g. `targets.app.paht`.
    pub path: Vec<String>,
    /// What the message says.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Checks every key of `root` against the known keys.
pub(super) fn check(root: &toml::Table) -> Result<(), UnknownKey> {
    walk(root, &ROOT, &mut Vec::new())
}

fn walk(table: &toml::Table, shape: &Shape, at: &mut Vec<String>) -> Result<(), UnknownKey> {
    match shape {
        Value => Ok(()),
        Table(fields) => {
            for (key, value) in table {
                let Some((_, inner)) = fields.iter().find(|(name, _)| name == key) else {
                    let valid: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
                    return Err(unknown(at, key, &valid, None));
                };
                if let Some(sub) = value.as_table() {
                    at.push(key.clone());
                    walk(sub, inner, at)?;
                    at.pop();
                }
            }
            Ok(())
        }
        Named(inner) => {
            for (name, value) in table {
                if let Some(sub) = value.as_table() {
                    at.push(name.clone());
                    walk(sub, inner, at)?;
                    at.pop();
                }
            }
            Ok(())
        }
        Target => {
            // An unknown or missing kind is left to the deserializer, which names the valid kinds.
            let Some(kind) = table.get("kind").and_then(|k| k.as_str()) else {
                return Ok(());
            };
            let Some((_, keys)) = TARGET_KINDS.iter().find(|(k, _)| *k == kind) else {
                return Ok(());
            };
            for key in table.keys() {
                if key == "kind" || keys.contains(&key.as_str()) {
                    continue;
                }
                let mut valid = vec!["kind"];
                valid.extend_from_slice(keys);
                // A key of another kind says so, e.g. `exclude` on a sqlite target.
                let elsewhere = TARGET_KINDS
                    .iter()
                    .filter(|(_, ks)| ks.contains(&key.as_str()))
                    .map(|(k, _)| format!("{k} targets"))
                    .collect::<Vec<_>>();
                let note = (!elsewhere.is_empty()).then(|| {
                    format!(
                        "`{key}` applies to {}, and this is a {kind} target",
                        elsewhere.join(" and ")
                    )
                });
                return Err(unknown(at, key, &valid, note));
            }
            Ok(())
        }
    }
}

fn unknown(at: &[String], key: &str, valid: &[&str], note: Option<String>) -> UnknownKey {
    let section = if at.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in [{}]", at.join("."))
    };
    // At the top level every key is a section: say `[targts]`, as it was written.
    let what = if at.is_empty() {
        format!("unknown section [{key}]")
    } else {
        format!("unknown key `{key}` {section}")
    };
    let message = match nearest(key, valid) {
        Some(near) if at.is_empty() => format!("{what}; did you mean [{near}]?"),
        Some(near) => format!("{what}; did you mean `{near}`?"),
        None => what,
    };
    let mut hint = format!("valid keys {section}: {}", valid.join(", "));
    if let Some(note) = note {
        hint = format!("{note}; {hint}");
    }
    let mut path = at.to_vec();
    path.push(key.to_string());
    UnknownKey {
        path,
        message,
        hint,
    }
}

/// The valid key closest to `key`, when it is close enough to be a typo.
pub(super) fn nearest<'a>(key: &str, valid: &[&'a str]) -> Option<&'a str> {
    let key = key.to_lowercase();
    valid
        .iter()
        .map(|v| (*v, strsim::jaro_winkler(&key, v)))
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(text: &str) -> Result<(), UnknownKey> {
        check(&text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn misspelt_targets_section_suggests_targets() {
        let e = check_text("[targts.app]\nkind = 'dir'\npath = '/x'").unwrap_err();
        assert_eq!(e.path, ["targts"]);
        assert!(
            e.message.contains("did you mean [targets]?"),
            "{}",
            e.message
        );
    }

    #[test]
    fn keys_inside_target_tables_are_checked_per_kind() {
        let e = check_text("[targets.app]\nkind = 'dir'\npaht = '/x'").unwrap_err();
        assert_eq!(e.path, ["targets", "app", "paht"]);
        assert!(e.message.contains("in [targets.app]"), "{}", e.message);
        assert!(e.message.contains("did you mean `path`?"), "{}", e.message);

        let e = check_text("[targets.db]\nkind = 'sqlite'\npath = '/x'\nexclude = []").unwrap_err();
        assert!(e.hint.contains("applies to dir targets"), "{}", e.hint);

        let e =
            check_text("[targets.pg]\nkind = 'postgres'\nurl = 'x'\nsplit_mbb = 1").unwrap_err();
        assert!(e.message.contains("`split_mb`"), "{}", e.message);
    }

    #[test]
    fn nested_tables_are_checked() {
        let e = check_text("[tiers.daily]\nkeep = { dailly = 3 }").unwrap_err();
        assert_eq!(e.path, ["tiers", "daily", "keep", "dailly"]);
        assert!(e.message.contains("`daily`"));
        let e = check_text("[migrations.tables.t]\non_conflit = 'review'").unwrap_err();
        assert!(e.message.contains("`on_conflict`"));
        let e = check_text("[repository]\npasword_command = 'x'").unwrap_err();
        assert!(e.message.contains("`password_command`"));
    }

    #[test]
    fn far_off_keys_get_no_suggestion_but_the_valid_list() {
        let e = check_text("[snapshot]\nzzz = 1").unwrap_err();
        assert!(!e.message.contains("did you mean"), "{}", e.message);
        assert!(e.hint.contains("compression, jobs"), "{}", e.hint);
    }

    #[test]
    fn every_listed_key_is_accepted() {
        let text = r#"
            [repository]
            url = "/r"
            password_command = "echo x"
            password_command_timeout = "5s"
            [targets.d]
            kind = "dir"
            path = "/d"
            exclude = []
            [targets.s]
            kind = "sqlite"
            path = "/s.db"
            create = true
            [targets.p]
            kind = "postgres"
            url = "postgres://localhost/x"
            split_mb = 10
            [snapshot]
            compression = 3
            jobs = 2
            [tiers.t]
            every = "1h"
            keep = { last = 1, hourly = 1, daily = 1, weekly = 1, monthly = 1, yearly = 1, within = "1d" }
            [tiers.g]
            every = "1d"
            repository = "/offsite"
            password_command = "echo y"
            [migrations]
            target = "s"
            dir = "m"
            on_conflict = "review"
            snapshot = "always"
            [migrations.tables.x]
            on_conflict = "snapshot"
            [objectives]
            rto = "15m"
            rpo = "5m"
            [notify.ops]
            url = "http://127.0.0.1:9000/hook"
            format = "slack"
            events = ["start", "failure"]
            timeout = "5s"
            [runbooks.emergency]
            steps = [{ kind = "notify", message = "x", timeout = "1s", retries = 1 }]
            escalate_to = "full"
            [runbooks.full]
            steps = [{ kind = "command", run = "true" }]
            [catalog]
            path = "state/catalog.db"
        "#;
        check_text(text).unwrap();
        crate::config::Config::from_toml_str(text, None, &[]).unwrap();
    }
}
