//! Scripts as the tools that wrote them run them.
//!
//! sqitch's PostgreSQL engine (and many teams) run scripts through psql, so
//! their scripts are psql scripts: `\set`, `:'name'`, `\if`, `\gexec`, `\i`.
//! ripcord interprets that part itself before anything runs ([`expand`]),
//! and runs what is left on its own connection, in the change's transaction
//! with its tracking row. Flyway's `${name}` placeholders are replaced the
//! same way. A meta-command ripcord does not interpret, a variable that is
//! not set, an unterminated `\if` or a failing backtick command stops every
//! command with exit code 2, naming the file and line, before anything runs.
//!
//! Variables come, from weakest to strongest, from sqitch.conf
//! (`[core.variables]`, then `[deploy.variables]`, then `[revert.variables]`
//! or `[verify.variables]` for a revert or verify script, then `[engine "pg"]` and the
//! default target's variables), then what psql sets when it connects
//! (`DBNAME`, `USER`, `HOST`, `PORT`), then `--set name=value`. Flyway
//! placeholders come from `flyway.conf` (or `flyway.toml`), then `--set`.

mod config;
mod expand;

use std::collections::BTreeMap;
use std::path::Path;

use crate::analyze::{transaction_blocks, Blocks, Dialect};
use crate::error::{Error, Result};
use crate::plan::{Format, Plan};
use crate::script::Script;

pub use expand::{expand, Expanded, GEXEC_MARKER};

/// What `\echo`, `\qecho` and `\warn` print, per change and step (`up`,
/// `down`, `verify`), as `file:line: text`.
pub type Messages = BTreeMap<(String, &'static str), Vec<String>>;

/// Resolves the psql parts (PostgreSQL; native, sqitch, golang-migrate,
/// dbmate and timestamped plans) or the
/// Flyway placeholders of every script of `plan`, read from `dir`. A
/// script's checksum stays that of its file, so drift is about what was
/// written, not about the variables of the day.
pub fn prepare_plan(
    plan: &mut Plan,
    dir: &Path,
    dialect: Dialect,
    connection: &BTreeMap<String, String>,
    set: &[(String, String)],
) -> Result<Messages> {
    let messages = resolve(plan, dir, dialect, connection, set)?;
    check_transactions(plan, dialect)?;
    Ok(messages)
}

/// Refuses transaction control ripcord cannot run inside its own
/// transaction: `PREPARE TRANSACTION`, `COMMIT AND CHAIN`, and, in deploy
/// and revert scripts, a `BEGIN` never committed (psql rolls its work back
/// when the script ends, which is surely not what was meant).
pub fn check_transactions(plan: &Plan, dialect: Dialect) -> Result<()> {
    for change in &plan.changes {
        for (script, mode) in [
            (Some(&change.up), Blocks::Change),
            (change.down.as_ref(), Blocks::Change),
            (change.verify.as_ref(), Blocks::Verify),
        ] {
            let Some(script) = script else { continue };
            if let Err((line, detail)) = transaction_blocks(&script.sql, dialect, mode) {
                return Err(Error::malformed(
                    &script.path,
                    line,
                    detail,
                    "end each BEGIN with COMMIT or ROLLBACK in the same script; ripcord runs \
                     every change in one transaction, its blocks as savepoints",
                ));
            }
        }
    }
    Ok(())
}

fn resolve(
    plan: &mut Plan,
    dir: &Path,
    dialect: Dialect,
    connection: &BTreeMap<String, String>,
    set: &[(String, String)],
) -> Result<Messages> {
    let mut messages = Messages::new();
    if plan.format == Format::Flyway {
        let placeholders = config::flyway(dir, set)?;
        for change in &mut plan.changes {
            for script in scripts(change) {
                let sql = placeholders.replace(&script.path, &script.sql)?;
                swap(script, sql);
            }
        }
        return Ok(messages);
    }
    // psql runs the scripts of these tools (sqitch's engine) or may (a
    // team's own runner); other tools run theirs through a driver, as written.
    let psql = matches!(
        plan.format,
        Format::Native
            | Format::Sqitch
            | Format::GolangMigrate
            | Format::Dbmate
            | Format::Timestamp
    );
    if dialect != Dialect::Postgres || !psql {
        return Ok(messages);
    }
    let sqitch = if plan.format == Format::Sqitch {
        Some(config::sqitch(dir)?)
    } else {
        None
    };
    for change in &mut plan.changes {
        let name = change.name.clone();
        for (step, script) in [
            ("up", Some(&mut change.up)),
            ("down", change.down.as_mut()),
            ("verify", change.verify.as_mut()),
        ] {
            let Some(script) = script else { continue };
            let mut vars = match &sqitch {
                Some(conf) => conf.variables(step),
                None => BTreeMap::new(),
            };
            // psql sets these when it connects, over what it was given.
            vars.extend(connection.clone());
            vars.extend(set.iter().cloned());
            let out = expand(&script.path, &script.sql, &vars, dir)?;
            if !out.messages.is_empty() {
                messages
                    .entry((name.clone(), step))
                    .or_default()
                    .extend(out.messages);
            }
            swap(script, out.sql);
        }
    }
    Ok(messages)
}

/// The variables psql sets when it connects to `url` and that can be told
/// without connecting: `DBNAME`, `USER`, `HOST` and `PORT`. Nothing when
/// the URL cannot be read (the connection will say why).
pub fn connection_variables(url: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let Ok(config) = url.parse::<postgres::Config>() else {
        return vars;
    };
    if let Some(db) = config.get_dbname() {
        vars.insert("DBNAME".into(), db.to_string());
    }
    if let Some(user) = config.get_user() {
        vars.insert("USER".into(), user.to_string());
        vars.entry("DBNAME".into())
            .or_insert_with(|| user.to_string());
    }
    match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => {
            vars.insert("HOST".into(), host.clone());
        }
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(path)) => {
            vars.insert("HOST".into(), path.display().to_string());
        }
        _ => {}
    }
    let port = config.get_ports().first().copied().unwrap_or(5432);
    vars.insert("PORT".into(), port.to_string());
    vars
}

/// Parses `--set name=value`.
pub fn parse_set(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(Error::Config {
            message: format!("--set {text:?} is not name=value"),
            hint: "give --set NAME=VALUE, once per variable".into(),
        }),
    }
}

fn scripts(change: &mut crate::Change) -> impl Iterator<Item = &mut Script> {
    std::iter::once(&mut change.up)
        .chain(change.down.as_mut())
        .chain(change.verify.as_mut())
}

fn swap(script: &mut Script, sql: String) {
    if sql != script.sql {
        script.sql = sql;
    }
}

/// Whether a statement is a `\gexec` query.
pub fn is_gexec(statement: &str) -> bool {
    statement.trim_start().starts_with(GEXEC_MARKER)
}

#[cfg(test)]
mod tests;
