//! Keeping PostgreSQL passwords out of everything ripcord prints, stores or
//! hands to another program.
//!
//! [`redact`] masks every password in a text: the `user:password@` of a
//! `postgres://` URL, a `password=` in its query, and a `password=` keyword of
//! a libpq key/value string, quoted or not. It works on free text (an error
//! message that quotes a URL) as well as on a bare URL, and never fails:
//! where a URL is malformed it masks more, not less. It is string-based on
//! purpose: the `url` crate rejects libpq URLs with several hosts
//! (`postgres://a:1,b:2/db`), and such a URL must be masked all the same.
//!
//! [`scrub_env`] removes from a child's environment the variables that hold
//! secrets: the repository passphrases and any `RIPCORD_*` setting (such as
//! `RIPCORD_TARGETS__DB__URL`) that carries a password.

use std::process::Command;

/// What a password is replaced with.
pub const MASK: &str = "***";

/// Variables no child process may see.
pub const SECRET_VARS: &[&str] = &[
    "RIPCORD_PASSWORD",
    "RIPCORD_NEW_PASSWORD",
    "RIPCORD_TO_PASSWORD",
];

/// `text` with every PostgreSQL password in it replaced by `***`.
pub fn redact(text: &str) -> String {
    redact_urls(text)
}

/// Removes [`SECRET_VARS`] and every `RIPCORD_*` variable that holds a
/// password from `cmd`'s environment.
pub fn scrub_env(cmd: &mut Command) -> &mut Command {
    for var in SECRET_VARS {
        cmd.env_remove(var);
    }
    for (key, value) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("RIPCORD_")
            && redact(&value.to_string_lossy()) != value.to_string_lossy()
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Masks the userinfo password and `password=` query values of every
/// `postgres://` or `postgresql://` URL in `text`, and `password` keywords
/// in the text between them.
fn redact_urls(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = next_url(&lower, pos) {
        let (_, body) = found;
        // The URL runs to the next whitespace: in free text that is where it
        // ends. A quote may belong to the password, so it does not end it.
        let end = text[body..]
            .find(char::is_whitespace)
            .map_or(text.len(), |i| body + i);
        out.push_str(&redact_keywords(&text[pos..body]));
        out.push_str(&redact_url_rest(&text[body..end]));
        pos = end;
    }
    out.push_str(&redact_keywords(&text[pos..]));
    out
}

/// The next URL at or after `from`: (start of the scheme, start after `://`).
fn next_url(lower: &str, from: usize) -> Option<(usize, usize)> {
    ["postgres://", "postgresql://"]
        .iter()
        .filter_map(|s| {
            lower[from..]
                .find(s)
                .map(|i| (from + i, from + i + s.len()))
        })
        .min()
}

/// The part of a URL after `scheme://`, its password masked.
fn redact_url_rest(rest: &str) -> String {
    // libpq ends the userinfo at the first '@' before the first '/',
    // tokio-postgres at the first '@' anywhere. A password holding an
    // unencoded '@' or '/' must still be masked whole: take the last '@'
    // before the first '/', else the first '@' at all.
    let slash = rest.find('/').unwrap_or(rest.len());
    let at = rest[..slash].rfind('@').or_else(|| rest.find('@'));
    let (userinfo, tail) = match at {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (None, rest),
    };
    let mut out = String::with_capacity(rest.len());
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
            }
            None => out.push_str(userinfo),
        }
    }
    match tail.split_once('?') {
        Some((before, query)) => {
            out.push_str(before);
            out.push('?');
            out.push_str(&redact_query(query));
        }
        None => out.push_str(tail),
    }
    out
}

/// A URL query with the values of `password` parameters masked.
fn redact_query(query: &str) -> String {
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let mut parts = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((key, _)) if is_password_key(&percent_decode(key)) => {
                parts.push(format!("{key}={MASK}"))
            }
            _ => parts.push(pair.to_string()),
        }
    }
    let mut out = parts.join("&");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

fn is_password_key(key: &str) -> bool {
    key.trim().eq_ignore_ascii_case("password")
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Masks the value of every `password` keyword (libpq key/value form:
/// `password=x`, `password = 'a b'`, `password='it\'s'`).
fn redact_keywords(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut search = 0;
    while let Some(i) = lower[search..].find("password").map(|i| search + i) {
        search = i + "password".len();
        // A keyword starts a word: `db_password=` or `PGPASSWORD=` are not it.
        let starts_word = i == 0 || {
            let b = bytes[i - 1];
            !(b.is_ascii_alphanumeric() || b == b'_')
        };
        if !starts_word {
            continue;
        }
        let mut j = search;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b'=' {
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() && bytes[j] != b'\n' {
            j += 1;
        }
        let value_end = value_end(bytes, j);
        if &text[j..value_end] == MASK {
            search = value_end;
            continue;
        }
        out.push_str(&text[pos..search]);
        out.push('=');
        out.push_str(MASK);
        pos = value_end;
        search = value_end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Where a key/value value starting at `start` ends: after its closing
/// quote (backslash escapes honoured; an unclosed quote runs to the end), or
/// at the next whitespace: anything else may belong to the password.
fn value_end(bytes: &[u8], start: usize) -> usize {
    let mut j = start;
    if j < bytes.len() && bytes[j] == b'\'' {
        j += 1;
        while j < bytes.len() {
            match bytes[j] {
                b'\\' => j += 2,
                b'\'' => return j + 1,
                _ => j += 1,
            }
        }
        return bytes.len();
    }
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b if b.is_ascii_whitespace() => break,
            _ => j += 1,
        }
    }
    j.min(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_userinfo() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(redact("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(redact("postgres://db/app"), "postgres://db/app");
        assert_eq!(
            redact("POSTGRESQL://app:s%40cret@db/app"),
            "POSTGRESQL://app:***@db/app"
        );
        assert_eq!(
            redact("postgres://:secret@db/app"),
            "postgres://:***@db/app"
        );
        assert_eq!(
            redact("postgres://app:secret@a:1,b:2/app"),
            "postgres://app:***@a:1,b:2/app"
        );
        assert_eq!(
            redact("postgres://app:secret@[::1]:5432/app"),
            "postgres://app:***@[::1]:5432/app"
        );
    }

    #[test]
    fn url_with_unencoded_delimiters_in_the_password() {
        // Malformed, but an error message quotes it: mask all of it.
        assert_eq!(
            redact("postgres://app:p@ss@db/app"),
            "postgres://app:***@db/app"
        );
        assert_eq!(
            redact("postgres://app:pa/ss@db/app"),
            "postgres://app:***@db/app"
        );
        assert_eq!(
            redact("postgres://app:pa?ss@db/app"),
            "postgres://app:***@db/app"
        );
    }

    #[test]
    fn url_query() {
        assert_eq!(
            redact("postgres://app@db/app?password=secret"),
            "postgres://app@db/app?password=***"
        );
        assert_eq!(
            redact("postgres://db/app?sslmode=disable&password=secret&application_name=x"),
            "postgres://db/app?sslmode=disable&password=***&application_name=x"
        );
        assert_eq!(
            redact("postgres://db/app?PASSWORD=secret#frag"),
            "postgres://db/app?PASSWORD=***#frag"
        );
        assert_eq!(
            redact("postgres://db/app?pass%77ord=secret"),
            "postgres://db/app?pass%77ord=***"
        );
        assert_eq!(
            redact("postgres://u:a@db/app?password=b"),
            "postgres://u:***@db/app?password=***"
        );
        assert_eq!(
            redact("postgres://db/app?passwordx=1&x=password"),
            "postgres://db/app?passwordx=1&x=password"
        );
    }

    #[test]
    fn keyword_form() {
        assert_eq!(redact("host=db password=secret"), "host=db password=***");
        assert_eq!(
            redact("host=db password = secret dbname=app"),
            "host=db password=*** dbname=app"
        );
        assert_eq!(
            redact("password='a b\\' c' dbname=app"),
            "password=*** dbname=app"
        );
        assert_eq!(redact("password='unclosed dbname=x"), "password=***");
        assert_eq!(redact("password=a\\ b host=x"), "password=*** host=x");
        assert_eq!(redact("Password=secret"), "Password=***");
        // Not the keyword.
        assert_eq!(
            redact("db_password=1 PGPASSWORD"),
            "db_password=1 PGPASSWORD"
        );
        assert_eq!(redact("the password is wrong"), "the password is wrong");
    }

    #[test]
    fn free_text() {
        assert_eq!(
            redact("cannot reach postgres://u:secret@h/db: refused"),
            "cannot reach postgres://u:***@h/db: refused"
        );
        assert_eq!(
            redact("invalid URL \"postgres://u:secret@h/db?password=x\" (bad)"),
            "invalid URL \"postgres://u:***@h/db?password=*** (bad)"
        );
        assert_eq!(
            redact("invalid URL \"postgres://u:it's@h/db\""),
            "invalid URL \"postgres://u:***@h/db\""
        );
        assert_eq!(
            redact("a postgres://u:x@h/a and postgresql://v:y@h/b"),
            "a postgres://u:***@h/a and postgresql://v:***@h/b"
        );
    }

    #[test]
    fn idempotent_and_total() {
        for s in [
            "postgres://u:secret@h/db?password=x",
            "host=h password='x y'",
            "postgres://",
            "password",
            "password=",
            "postgres://u:@",
            "%",
            "postgres://h/db?pass%7",
            "é password=é é",
        ] {
            let once = redact(s);
            assert_eq!(redact(&once), once, "{s}");
            assert!(!once.contains("secret"));
        }
    }

    #[test]
    fn scrubs_the_environment() {
        let mut cmd = Command::new("true");
        cmd.env("RIPCORD_PASSWORD", "x")
            .env("RIPCORD_NEW_PASSWORD", "y");
        scrub_env(&mut cmd);
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(removed.contains(&"RIPCORD_PASSWORD".to_string()));
        assert!(removed.contains(&"RIPCORD_NEW_PASSWORD".to_string()));
    }
}
