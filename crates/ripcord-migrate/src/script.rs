//! One SQL script and its checksum.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The SQL of one step of a change (up, down or verify), as written in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The file it was read from.
    pub path: PathBuf,
    /// The SQL, byte for byte as in the file (a leading BOM removed), so that
    /// string literals spanning lines keep their line endings.
    pub sql: String,
    /// BLAKE3 (hex) of the SQL with line endings normalised; see [`checksum`].
    pub checksum: String,
}

impl Script {
    pub fn new(path: impl Into<PathBuf>, sql: impl Into<String>) -> Script {
        let sql = sql.into();
        let checksum = checksum(&sql);
        Script {
            path: path.into(),
            sql,
            checksum,
        }
    }

    /// Reads a script file; `Ok(None)` when it does not exist.
    pub fn read_optional(path: &Path) -> Result<Option<Script>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(Script::new(path, text(path, bytes)?))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// True when the script holds no statement: only whitespace and comments.
    /// Such a down script undoes nothing.
    pub fn is_blank(&self) -> bool {
        is_blank(&self.sql)
    }
}

/// Reads a text file that must exist.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    text(path, bytes)
}

fn text(path: &Path, mut bytes: Vec<u8>) -> Result<String> {
    // Editors on Windows like to add a BOM; no database wants it in the SQL.
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|_| Error::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// BLAKE3 (hex) of `sql` with CRLF and lone CR turned into LF, so that a file
/// checked out with other line endings is not taken for a changed one.
pub fn checksum(sql: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut rest = sql.as_bytes();
    while let Some(i) = rest.iter().position(|&b| b == b'\r') {
        hasher.update(&rest[..i]);
        hasher.update(b"\n");
        rest = &rest[i + 1..];
        if rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
    }
    hasher.update(rest);
    hasher.finalize().to_hex().to_string()
}

/// True when `sql` holds only whitespace, `--` comments and `/* */` comments.
pub(crate) fn is_blank(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |i| &after[i..]).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            match after.find("*/") {
                Some(i) => rest = after[i + 2..].trim_start(),
                None => return true,
            }
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_do_not_change_the_checksum() {
        let lf = checksum("select 1;\nselect 2;\n");
        assert_eq!(lf, checksum("select 1;\r\nselect 2;\r\n"));
        assert_eq!(lf, checksum("select 1;\rselect 2;\r"));
        assert_ne!(lf, checksum("select 1;\nselect 3;\n"));
        assert_eq!(checksum("a\r\r\nb"), checksum("a\n\nb"));
    }

    #[test]
    fn blank_scripts() {
        assert!(is_blank(""));
        assert!(is_blank("  -- nothing to undo\n\n/* really */\n"));
        assert!(!is_blank("-- drop it\ndrop table t;"));
        assert!(!is_blank("/* x */ select 1"));
    }
}
