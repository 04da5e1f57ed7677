//! Target names. A name becomes a folder name under `restore --into` and a
//! label in manifests, so it must be a plain name: nothing that a path could
//! read as a separator, a parent or a root.

/// The longest target name allowed.
pub const MAX_NAME_LEN: usize = 64;

/// Why a target name is not a plain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target name {name:?} is not a plain name: {reason}")]
pub struct InvalidName {
    pub name: String,
    pub reason: &'static str,
}

/// Checks that `name` is a plain target name: 1 to 64 ASCII letters, digits,
/// `-` or `_`.
pub fn check_target_name(name: &str) -> Result<(), InvalidName> {
    let fail = |reason| {
        Err(InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return fail("it is longer than 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return fail("use only letters, digits, '-' and '_'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for ok in ["app", "web-2", "db_main", "A", &"x".repeat(64)] {
            assert_eq!(check_target_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn path_like_and_odd_names_are_refused() {
        for bad in [
            "",
            "../x",
            "/tmp/x",
            "a/b",
            "..",
            ".",
            "a b",
            "a\0b",
            "a\\b",
            "naïve",
            "x\n",
            &"x".repeat(65),
        ] {
            assert!(check_target_name(bad).is_err(), "{bad:?}");
        }
    }
}
