//! Counts in messages, singular or plural as the count wants, for every
//! crate that speaks to a person.

/// "1 file", "2 files": a count and its noun. `plural` is the noun's
/// plural ("entries", "data"...).
pub fn count(n: impl Into<u64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// A count with a noun that takes an `s` in the plural: "1 change", "3 changes".
pub fn counted(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
