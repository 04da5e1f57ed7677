//! The checksums other tools record for a script, computed as they compute
//! them, from the file's bytes.

use sha1::{Digest, Sha1};

/// Flyway's checksum: CRC-32 of the script's lines (a leading BOM removed),
/// each without its line break (`\n`, `\r\n` or `\r`), as a signed 32-bit
/// integer.
pub fn flyway_checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = crc32fast::Hasher::new();
    let mut rest = text.as_bytes();
    while let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
        crc.update(&rest[..i]);
        let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[i + skip..];
    }
    crc.update(rest);
    crc.finalize() as i32
}

/// sqitch's `script_hash`: the SHA-1 (hex) of the deploy script's bytes.
pub fn sqitch_script_hash(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flyway_ignores_line_endings_only() {
        // zlib.crc32(b"CREATE TABLE t (id int);SELECT 1;") as a signed int.
        let lf = flyway_checksum("CREATE TABLE t (id int);\nSELECT 1;\n");
        assert_eq!(lf, -1_645_056_791);
        assert_eq!(lf, flyway_checksum("CREATE TABLE t (id int);\r\nSELECT 1;"));
        assert_eq!(
            lf,
            flyway_checksum("\u{feff}CREATE TABLE t (id int);\rSELECT 1;\n")
        );
        assert_ne!(lf, flyway_checksum("CREATE TABLE t (id int); SELECT 1;\n"));
    }

    #[test]
    fn sqitch_hashes_the_bytes() {
        // printf 'abc' | sha1sum
        assert_eq!(
            sqitch_script_hash(b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }
}
