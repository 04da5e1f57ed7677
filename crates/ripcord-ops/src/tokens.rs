//! API tokens: the bearer tokens the HTTP server accepts, each with a name
//! and a [`Role`].
//!
//! A token is `rc_` followed by 43 characters of URL-safe base64 without
//! padding (`A-Z a-z 0-9 - _`): 32 bytes from the operating system's
//! random generator, 256 bits. It is shown once, when it is made; the
//! catalog keeps only the BLAKE3 hash (hex) of the whole token string.
//! Whoever reads the catalog can neither use nor recover a token, and
//! revoking one is marking its record revoked.

use base64::Engine as _;
use rand::RngCore as _;
use ripcord_catalog::tokens::NewToken;
use schemars::JsonSchema;
use serde::Serialize;

pub use ripcord_catalog::tokens::{Role, TokenRecord, UnknownRole};

use crate::ctx::Ctx;
use crate::{Error, Result};

/// What every token starts with, so that one found lying about is known
/// for what it is.
pub const PREFIX: &str = "rc_";

/// How long a token is: [`PREFIX`] and 43 characters of base64.
pub const TOKEN_LEN: usize = 46;

/// The longest name a token may have.
pub const MAX_NAME: usize = 64;

/// `ripcord token add`: the token, shown this once.
#[derive(Clone, Serialize, JsonSchema)]
pub struct NewTokenReport {
    /// The token's name: 1 to 64 letters, digits, `.`, `_` or `-`.
    pub name: String,
    pub role: Role,
    /// The token itself (`rc_` and 43 characters). It is not kept
    /// anywhere: it cannot be shown again.
    pub token: String,
}

impl std::fmt::Debug for NewTokenReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTokenReport")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &"rc_***")
            .finish()
    }
}

/// A new token: [`PREFIX`] and 32 random bytes from the operating system,
/// in URL-safe base64 without padding.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    bytes.fill(0);
    token
}

/// The hash the catalog keeps of `token`: BLAKE3, in hex. A fast hash is
/// right here: a token has 256 random bits, so no guess can be made
/// faster to test, and a slow hash would only slow every request.
pub fn hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Checks a token's name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_name(name: &str) -> Result<()> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if fine {
        return Ok(());
    }
    Err(Error::usage(
        format!("{name:?} is not a token name"),
        format!(
            "a name is 1 to {MAX_NAME} letters, digits, `.`, `_` or `-`, such as ci-deploy \
             or grafana.reader"
        ),
    ))
}

/// Makes a token named `name` with `role`, keeps its hash in the catalog,
/// and returns it: the only time it is seen. A name an active token has
/// already is a usage error; a revoked token's name may be taken again.
pub fn add(ctx: &Ctx, name: &str, role: Role) -> Result<NewTokenReport> {
    check_name(name)?;
    let mut catalog = ctx.catalog()?;
    let token = generate();
    let added = catalog.add_token(&NewToken {
        name: name.to_string(),
        role,
        hash: hash(&token),
        actor: ctx.actor(),
    });
    match added {
        Ok(()) => Ok(NewTokenReport {
            name: name.to_string(),
            role,
            token,
        }),
        Err(ripcord_catalog::Error::TokenExists(_)) => Err(Error::usage(
            format!("a token named {name:?} exists"),
            format!(
                "revoke it first (`ripcord token revoke {name}`) or pick another name; \
                 `ripcord token list` lists the tokens"
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Every token, active and revoked, oldest first; never a token or its
/// hash (the hash is left out of every document). No catalog yet: none.
pub fn list(ctx: &Ctx) -> Result<Vec<TokenRecord>> {
    match ctx.catalog_if_exists()? {
        Some(mut catalog) => Ok(catalog.tokens()?),
        None => Ok(Vec::new()),
    }
}

/// Revokes the active token named `name`, and returns its record, revoked.
/// A name no active token has is a usage error that names the active ones.
pub fn revoke(ctx: &Ctx, name: &str) -> Result<TokenRecord> {
    let Some(mut catalog) = ctx.catalog_if_exists()? else {
        return Err(no_active(name, &[]));
    };
    if !catalog.revoke_token(name)? {
        return Err(no_active(name, &catalog.tokens()?));
    }
    // Of this name's revoked records, the one revoked last is this one.
    catalog
        .tokens()?
        .into_iter()
        .filter(|t| t.name == name && t.revoked.is_some())
        .max_by(|a, b| a.revoked.cmp(&b.revoked))
        .ok_or_else(|| Error::failed(format!("token {name:?} was revoked and is not listed")))
}

fn no_active(name: &str, tokens: &[TokenRecord]) -> Error {
    let active: Vec<&str> = tokens
        .iter()
        .filter(|t| t.is_active())
        .map(|t| t.name.as_str())
        .collect();
    let was_revoked = tokens.iter().any(|t| t.name == name);
    let message = if was_revoked {
        format!("the token named {name:?} is revoked already")
    } else {
        format!("no token is named {name:?}")
    };
    let hint = if active.is_empty() {
        "there is no active token; `ripcord token list` lists the revoked ones".to_string()
    } else {
        format!("the active tokens: {}", active.join(", "))
    };
    Error::usage(message, hint)
}

/// The active tokens, ready to authenticate requests: a server builds it
/// from [`list`] (or the catalog's `tokens`) and asks it for each request.
#[derive(Clone)]
pub struct TokenCheck {
    active: Vec<(String, Role, blake3::Hash)>,
}

impl TokenCheck {
    /// The active ones of `records`; a revoked token is left out and never
    /// authenticates. A record whose hash does not read is left out too.
    pub fn new(records: &[TokenRecord]) -> TokenCheck {
        TokenCheck {
            active: records
                .iter()
                .filter(|r| r.is_active())
                .filter_map(|r| {
                    let hash = blake3::Hash::from_hex(&r.hash).ok()?;
                    Some((r.name.clone(), r.role, hash))
                })
                .collect(),
        }
    }

    /// The name and role of the active token `presented` is, if any. The
    /// presented token's hash is compared with every active token's, each
    /// in constant time (`blake3::Hash`'s equality) and with no early exit,
    /// so the time taken does not tell whether or which token matched.
    pub fn authenticate(&self, presented: &str) -> Option<(String, Role)> {
        let presented = blake3::hash(presented.as_bytes());
        let mut found: Option<usize> = None;
        for (i, (_, _, hash)) in self.active.iter().enumerate() {
            let matched = *hash == presented;
            found = if matched { Some(i) } else { found };
        }
        found.map(|i| {
            let (name, role, _) = &self.active[i];
            (name.clone(), *role)
        })
    }

    /// How many active tokens it knows.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCheck")
            .field("active", &self.active.len())
            .finish()
    }
}

/// The name and role of the active token of `records` that `presented`
/// is, if any: [`TokenCheck::authenticate`] on them.
pub fn authenticate(records: &[TokenRecord], presented: &str) -> Option<(String, Role)> {
    TokenCheck::new(records).authenticate(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, role: Role, token: &str, revoked: bool) -> TokenRecord {
        TokenRecord {
            name: name.into(),
            role,
            hash: hash(token),
            created: "2026-12-01T00:00:00.000000Z".into(),
            created_by: "ops@host".into(),
            revoked: revoked.then(|| "2026-12-02T00:00:00.000000Z".into()),
        }
    }

    #[test]
    fn tokens_are_the_prefix_and_43_characters_of_url_safe_base64() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert_eq!(t.len(), TOKEN_LEN, "{t}");
            let body = t.strip_prefix(PREFIX).unwrap();
            assert_eq!(body.len(), 43);
            assert!(body
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .unwrap();
            assert_eq!(bytes.len(), 32);
        }
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn authenticate_names_the_active_token_presented_and_nothing_else() {
        let (ci, deploy, old) = (generate(), generate(), generate());
        let records = [
            record("ci", Role::Reader, &ci, false),
            record("old", Role::Admin, &old, true),
            record("deploy", Role::Operator, &deploy, false),
        ];
        assert_eq!(
            authenticate(&records, &ci),
            Some(("ci".into(), Role::Reader))
        );
        assert_eq!(
            authenticate(&records, &deploy),
            Some(("deploy".into(), Role::Operator))
        );
        // A revoked token, a wrong one, an empty one, a near one.
        assert_eq!(authenticate(&records, &old), None);
        assert_eq!(authenticate(&records, &generate()), None);
        assert_eq!(authenticate(&records, ""), None);
        assert_eq!(authenticate(&records, &ci[..ci.len() - 1]), None);
        assert_eq!(authenticate(&records, &format!("{ci} ")), None);
        // The hash itself is not a token.
        assert_eq!(authenticate(&records, &records[0].hash), None);
        assert_eq!(authenticate(&[], &ci), None);
        // A record whose hash does not read is left out.
        let mut broken = records[0].clone();
        broken.hash = "not hex".into();
        let check = TokenCheck::new(&[broken, records[2].clone()]);
        assert_eq!(check.len(), 1);
        assert_eq!(check.authenticate(&ci), None);
        assert_eq!(
            check.authenticate(&deploy),
            Some(("deploy".into(), Role::Operator))
        );
    }

    #[test]
    fn names_are_short_plain_words() {
        for ok in ["ci", "ci-deploy", "grafana.reader", "A_1", &"x".repeat(64)] {
            check_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "has space", "ci/deploy", "é", "a\nb", &"x".repeat(65)] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(
                ripcord_core::Classify::class(&e),
                ripcord_core::Class::Usage
            );
        }
    }

    #[test]
    fn the_debug_of_a_new_token_hides_it() {
        let t = generate();
        let report = NewTokenReport {
            name: "ci".into(),
            role: Role::Admin,
            token: t.clone(),
        };
        assert!(!format!("{report:?}").contains(&t));
    }
}
