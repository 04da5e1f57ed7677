//! Finding `pg_dump` and `pg_restore` whose major version matches the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Tools {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    pub major: u32,
}

/// A command for a client tool, its environment rid of ripcord's secrets.
pub fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    super::redact::scrub_env(&mut cmd);
    cmd
}

/// The major version `binary` reports, asked once per process: every
/// snapshot and restore looks its tools up, and each question is a process.
fn major_of(binary: &Path) -> Option<u32> {
    static SEEN: Mutex<BTreeMap<PathBuf, Option<u32>>> = Mutex::new(BTreeMap::new());
    if let Some(known) = SEEN.lock().ok().and_then(|m| m.get(binary).copied()) {
        return known;
    }
    let major = ask_major(binary);
    if let Ok(mut m) = SEEN.lock() {
        m.insert(binary.to_path_buf(), major);
    }
    major
}

fn ask_major(binary: &Path) -> Option<u32> {
    let out = command(binary)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    // "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2)?;
    version.split('.').next()?.parse().ok()
}

fn candidates(name: &str, major: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os("RIPCORD_PG_BINDIR") {
        out.push(PathBuf::from(dir).join(name));
        return out; // an explicit choice is the only choice
    }
    out.push(PathBuf::from(format!(
        "/usr/lib/postgresql/{major}/bin/{name}"
    )));
    out.push(PathBuf::from(format!("/usr/pgsql-{major}/bin/{name}")));
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            out.push(dir.join(name));
        }
    }
    out
}

fn find(name: &str, major: u32) -> Result<PathBuf> {
    let mut seen = Vec::new();
    for c in candidates(name, major) {
        if !c.is_file() {
            continue;
        }
        match major_of(&c) {
            Some(m) if m == major => return Ok(c),
            Some(m) => seen.push(format!("{} is version {m}", c.display())),
            None => seen.push(format!("{} did not report a version", c.display())),
        }
    }
    Err(Error::Tool {
        message: if seen.is_empty() {
            format!("{name} for PostgreSQL {major} was not found")
        } else {
            format!("no {name} matches the server's major version {major} ({})", seen.join("; "))
        },
        hint: format!(
            "install the PostgreSQL {major} client tools (Debian: apt-get install postgresql-client-{major}) or point RIPCORD_PG_BINDIR at their bin folder"
        ),
    })
}

impl Tools {
    pub fn find(major: u32) -> Result<Tools> {
        Ok(Tools {
            pg_dump: find("pg_dump", major)?,
            pg_restore: find("pg_restore", major)?,
            major,
        })
    }
}

/// Runs a tool; returns its stdout, or an error with its stderr.
pub fn run(mut cmd: Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("cannot run {what}"), e))?;
    if !out.status.success() {
        return Err(Error::ToolFailed {
            what: what.to_string(),
            status: out.status.to_string(),
            stderr: super::redact(String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(out.stdout)
}
