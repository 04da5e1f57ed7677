//! API tokens: the bearer tokens the HTTP server accepts, each with a
//! name and a role. The catalog keeps only a hash of each token, never the
//! token itself; a revoked token stays listed, with when it was revoked.
//! One name belongs to at most one active token at a time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a token may do. The roles are ordered: each may do everything the
/// one before it may (`admin` > `operator` > `reader`), so a request that needs
/// a role accepts any role at least as high.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Operator,
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Reader, Role::Operator, Role::Admin];

    /// Its name: `reader`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a role.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a role: reader, operator or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// A token to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    /// The token's hash, in hex; the token itself is never stored.
    pub hash: String,
    /// `user@host` of who made it.
    pub actor: String,
}

/// A token as the catalog keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TokenRecord {
    /// The token's name: 1 to 64 letters, digits, `.`, `_` or `-`.
    pub name: String,
    pub role: Role,
    /// The token's hash, in hex; never printed.
    #[serde(skip)]
    pub hash: String,
    /// When it was made, RFC 3339 UTC.
    pub created: String,
    /// `user@host` of who made it.
    pub created_by: String,
    /// When it was revoked, RFC 3339 UTC; `null` while it is active.
    pub revoked: Option<String>,
}

impl TokenRecord {
    /// Not revoked.
    pub fn is_active(&self) -> bool {
        self.revoked.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn roles_are_ordered_and_read_back_from_their_names() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Reader);
        assert!(Role::Admin.allows(Role::Reader));
        assert!(!Role::Reader.allows(Role::Operator));
        for r in Role::ALL {
            assert_eq!(r.to_string().parse::<Role>(), Ok(r));
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::Value::String(r.to_string())
            );
        }
        let e = "Admin".parse::<Role>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"Admin\" is not a role: reader, operator or admin"
        );
    }
}
