//! The audit trail as operations use it: an entry for every command that
//! changes something, the chain's head sealed into each snapshot, and the
//! check of the chain, against itself and against those seals.

use ripcord_catalog::audit::{AuditEntry, AuditInput, AuditVerdict, BadEntry, GENESIS};
use ripcord_core::Class;
use ripcord_repo::manifest::AuditSeal;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::Result;

/// One command, as the audit records it.
#[derive(Clone, Debug, Default)]
pub struct Record<'a> {
    /// As typed after `ripcord`: `snapshot`, `migrate up`, `key add`.
    pub command: &'a str,
    /// Its arguments; secrets are redacted here.
    pub args: &'a [String],
    pub reason: Option<&'a str>,
    /// `ok`, `failed: …`, `refused: …` ([`outcome`]).
    pub result: String,
    pub run: Option<&'a str>,
}

/// What an entry says of an outcome: `None` (no entry) for bad input,
/// which changes nothing.
pub fn outcome(error: Option<(Class, &str)>) -> Option<String> {
    const MAX: usize = 300;
    let short = |m: &str| {
        let m = ripcord_targets::postgres::redact(m.lines().next().unwrap_or_default());
        match m.char_indices().nth(MAX) {
            Some((at, _)) => format!("{}…", &m[..at]),
            None => m,
        }
    };
    match error {
        None => Some("ok".into()),
        Some((Class::Usage, _)) => None,
        Some((Class::Refused, m)) => Some(format!("refused: {}", short(m))),
        Some((_, m)) => Some(format!("failed: {}", short(m))),
    }
}

/// Appends `record` to the chain. The command has already acted, so a
/// catalog that cannot be written is a warning, never the command's failure.
pub fn record(ctx: &Ctx, record: &Record<'_>) -> Option<AuditEntry> {
    let appended = ctx.catalog().and_then(|mut c| {
        c.append_audit(&AuditInput {
            actor: ctx.actor(),
            command: record.command.to_string(),
            args: record
                .args
                .iter()
                .map(|a| ripcord_catalog::audit::redact(a))
                .collect(),
            reason: record.reason.map(str::to_string),
            result: record.result.clone(),
            run: record.run.map(str::to_string),
        })
    });
    match appended {
        Ok(e) => Some(e),
        Err(e) => {
            ctx.warn(format!(
                "`{}` is not in the audit: {e}; check that {} can be written",
                record.command,
                catalog_name(ctx)
            ));
            None
        }
    }
}

/// How seals name the catalog: its file's absolute path, or its URL
/// without the password.
fn catalog_name(ctx: &Ctx) -> String {
    ctx.catalog_location().name()
}

/// The chain's head, for the manifest of a snapshot about to be saved.
/// The catalog is created if it is not there yet: the snapshot's own entry
/// goes into it.
pub fn seal(ctx: &Ctx) -> Option<AuditSeal> {
    let head = ctx.catalog().and_then(|mut c| c.audit_head());
    match head {
        Ok(head) => {
            let (seq, hash) = head.unwrap_or((0, GENESIS.to_string()));
            Some(AuditSeal {
                host: ripcord_repo::hostname(),
                catalog: catalog_name(ctx),
                seq,
                hash,
            })
        }
        Err(e) => {
            ctx.warn(format!("the snapshot does not seal the audit chain: {e}"));
            None
        }
    }
}

/// The audit entries, oldest first; with `since`, those written at or
/// after it. No catalog yet: none.
pub fn entries(ctx: &Ctx, since: Option<chrono::DateTime<chrono::Utc>>) -> Result<Vec<AuditEntry>> {
    let Some(mut catalog) = ctx.catalog_if_exists()? else {
        return Ok(Vec::new());
    };
    let mut entries = catalog.audit_entries(1)?;
    if let Some(since) = since {
        entries
            .retain(|e| chrono::DateTime::parse_from_rfc3339(&e.time).map_or(true, |t| t >= since));
    }
    Ok(entries)
}

/// `ripcord audit --verify`: the chain recomputed, then compared with the
/// heads this catalog sealed into the repository's snapshots.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct AuditCheck {
    #[serde(flatten)]
    pub chain: AuditVerdict,
    /// Snapshots whose seal of this catalog's chain was compared.
    pub sealed_snapshots: u64,
    /// Why the chain was not compared with the repository, if it was not.
    pub repository_note: Option<String>,
}

impl AuditCheck {
    pub fn ok(&self) -> bool {
        self.chain.ok()
    }
}

pub fn verify(ctx: &Ctx) -> Result<AuditCheck> {
    let entries = match ctx.catalog_if_exists()? {
        Some(mut catalog) => catalog.audit_entries(1)?,
        None => Vec::new(),
    };
    let chain = ripcord_catalog::audit::verify(&entries);
    let mut check = AuditCheck {
        chain,
        sealed_snapshots: 0,
        repository_note: None,
    };
    let seals = match sealed(ctx) {
        Ok(s) => s,
        Err(why) => {
            check.repository_note = Some(why);
            return Ok(check);
        }
    };
    check.sealed_snapshots = seals.len() as u64;
    if !check.chain.ok() {
        return Ok(check);
    }
    // The lowest broken seal is where the chain stops matching.
    let broken = seals
        .iter()
        .filter(|(_, _, seal)| seal.seq > 0)
        .filter_map(|(id, time, seal)| {
            let problem = match entries.get(seal.seq as usize - 1) {
                None => format!(
                    "entry {} is missing: snapshot {} (taken {}) sealed the chain at entry {}, \
                     and the catalog holds {}; the catalog was deleted, cut short or replaced",
                    seal.seq,
                    id.short(),
                    time,
                    seal.seq,
                    ripcord_core::text::count(entries.len() as u64, "entry", "entries")
                ),
                Some(e) if e.hash != seal.hash => format!(
                    "entry {} is not the one snapshot {} (taken {}) sealed: the catalog was \
                     rewritten",
                    seal.seq,
                    id.short(),
                    time
                ),
                Some(_) => return None,
            };
            Some(BadEntry {
                seq: seal.seq,
                problem,
            })
        })
        .min_by_key(|b| b.seq);
    if let Some(bad) = broken {
        check.chain.head = None;
        check.chain.first_bad = Some(bad);
    }
    Ok(check)
}

/// The seals of this host's catalog at this path, from every snapshot; of
/// a shared catalog, the seals every host made of it.
fn sealed(ctx: &Ctx) -> std::result::Result<Vec<(ripcord_repo::Id, String, AuditSeal)>, String> {
    if ctx.config.repository_url().is_err() {
        return Err("no repository is configured".into());
    }
    let repo = ctx
        .open_repo()
        .map_err(|e| format!("the repository cannot be opened: {}", e.chain()))?;
    let list = repo
        .snapshot_list()
        .map_err(|e| format!("the repository's snapshots cannot be read: {e}"))?;
    let host = ripcord_repo::hostname();
    let catalog = catalog_name(ctx);
    let shared = ctx.catalog_location().is_shared();
    Ok(list
        .snapshots
        .into_iter()
        .filter_map(|(id, s)| {
            let seal = s.audit?;
            (seal.catalog == catalog && (shared || seal.host == host)).then(|| {
                (
                    id,
                    s.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    seal,
                )
            })
        })
        .collect())
}
