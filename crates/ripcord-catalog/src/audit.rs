//! The audit chain: every command that changes something appends an entry
//! whose hash covers the entry and the hash before it, so an entry edited,
//! deleted, reordered or inserted breaks the chain from there on.

use serde::{Deserialize, Serialize};

/// The hash the first entry follows.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a command records.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct AuditInput {
    /// `user@host`.
    pub actor: String,
    /// The command, as typed after `ripcord` (`migrate up`, `recover`).
    pub command: String,
    /// Its arguments, secrets redacted ([`redact`]).
    pub args: Vec<String>,
    pub reason: Option<String>,
    /// `ok`, `failed`, `refused`, or a short outcome.
    pub result: String,
    pub run: Option<String>,
}

/// An entry as stored: the input, its place in the chain and its hash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct AuditEntry {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    #[serde(flatten)]
    pub input: AuditInput,
    pub prev: String,
    pub hash: String,
}

/// The fields a hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    time: &'a str,
    actor: &'a str,
    command: &'a str,
    args: &'a [String],
    reason: Option<&'a str>,
    result: &'a str,
    run: Option<&'a str>,
    prev: &'a str,
}

/// The hash of an entry that follows `prev`.
pub fn hash(seq: u64, time: &str, input: &AuditInput, prev: &str) -> String {
    let fields = Hashed {
        seq,
        time,
        actor: &input.actor,
        command: &input.command,
        args: &input.args,
        reason: input.reason.as_deref(),
        result: &input.result,
        run: input.run.as_deref(),
        prev,
    };
    let bytes = serde_json::to_vec(&fields).expect("plain fields serialize");
    blake3::hash(&bytes).to_hex().to_string()
}

/// The outcome of recomputing the chain.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct AuditVerdict {
    /// Entries read.
    pub entries: u64,
    /// The last entry's hash when the chain holds.
    pub head: Option<String>,
    /// The first entry that breaks the chain.
    pub first_bad: Option<BadEntry>,
}

impl AuditVerdict {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct BadEntry {
    /// The sequence number where the chain breaks.
    pub seq: u64,
    pub problem: String,
}

/// Recomputes the chain of `entries` (in the order read by sequence).
pub fn verify(entries: &[AuditEntry]) -> AuditVerdict {
    let mut prev = GENESIS.to_string();
    for (i, e) in entries.iter().enumerate() {
        let expected = i as u64 + 1;
        let bad = |problem: String| AuditVerdict {
            entries: entries.len() as u64,
            head: None,
            first_bad: Some(BadEntry {
                seq: expected,
                problem,
            }),
        };
        if e.seq > expected {
            return bad(format!(
                "entry {expected} is missing: the chain goes from {} to {}",
                expected - 1,
                e.seq
            ));
        }
        if e.seq < expected {
            return bad(format!("entry {} appears twice or out of order", e.seq));
        }
        if e.prev != prev {
            return bad(format!(
                "entry {expected} does not follow entry {}: an entry was inserted, \
                 removed or reordered",
                expected - 1
            ));
        }
        if hash(e.seq, &e.time, &e.input, &e.prev) != e.hash {
            return bad(format!("entry {expected} was changed after it was written"));
        }
        prev = e.hash.clone();
    }
    AuditVerdict {
        entries: entries.len() as u64,
        head: entries.last().map(|e| e.hash.clone()),
        first_bad: None,
    }
}

/// An argument as the audit keeps it: the password of a URL
/// (`postgres://u:secret@h`) and the value of a query parameter that
/// carries a secret (`?token=…`) are replaced by `***`.
pub fn redact(arg: &str) -> String {
    let mut out = arg.to_string();
    if let Some(scheme) = out.find("://") {
        let rest = &out[scheme + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let start = scheme + 3 + colon + 1;
                out.replace_range(start..scheme + 3 + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "key",
        "signature",
        "sig",
    ]
    .iter()
    .any(|s| k.contains(s))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn secrets_in_urls_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db/app?sslmode=require"),
            "postgres://app:***@db/app?sslmode=require"
        );
        assert_eq!(
            redact("https://hooks.example/x?token=abc&x=1"),
            "https://hooks.example/x?token=***&x=1"
        );
        assert_eq!(redact("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(redact("--level"), "--level");
    }
}
