//! Version numbers of numbered migrations (`1`, `1.1`, `2_1`, `202401311200`),
//! compared numerically part by part as Flyway does.

use std::cmp::Ordering;

#[derive(Clone, Debug)]
pub struct Version {
    /// Parts without leading zeros, trailing zero parts dropped, so that
    /// `01.1`, `1_1` and `1.1.0` compare equal.
    parts: Vec<String>,
}

impl Version {
    /// Digits in parts separated by `.` or `_`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = Vec::new();
        for part in text.split(['.', '_']) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let trimmed = part.trim_start_matches('0');
            parts.push(if trimmed.is_empty() { "0" } else { trimmed }.to_string());
        }
        while parts.len() > 1 && parts.last().is_some_and(|p| p == "0") {
            parts.pop();
        }
        Some(Version { parts })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        // Without leading zeros a longer part is a bigger number; parts may
        // exceed u64 (long timestamps with seconds and more).
        for (a, b) in self.parts.iter().zip(&other.parts) {
            let by_part = a.len().cmp(&b.len()).then_with(|| a.cmp(b));
            if by_part != Ordering::Equal {
                return by_part;
            }
        }
        self.parts.len().cmp(&other.parts.len())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn numeric_by_parts() {
        assert!(v("2") < v("10"));
        assert!(v("1.1") < v("1.2"));
        assert!(v("1.2") < v("1.10"));
        assert!(v("1") < v("1.1"));
        assert!(v("1.9") < v("2"));
        assert_eq!(v("1_1"), v("1.1"));
        assert_eq!(v("01.1"), v("1.1"));
        assert_eq!(v("1.0"), v("1"));
        assert!(v("99999999999999999999") < v("100000000000000000000"));
    }

    #[test]
    fn rejects_non_versions() {
        for bad in ["", "1.", ".1", "1..2", "1a", "v1", "1-2"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }
}
