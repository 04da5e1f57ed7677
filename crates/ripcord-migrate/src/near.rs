//! Near matches for a mistyped name, for "did you mean …?" hints.

/// Up to five candidates that look like `wanted`: within a small edit
/// distance, or containing it (people type a part of a long change name).
pub(crate) fn near<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted_lower = wanted.to_lowercase();
    let len = wanted.chars().count();
    // One edit turns any short name into any other; be stricter there.
    let limit = if len < 5 { 1 } else { (len / 3).max(2) };
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let lower = c.to_lowercase();
            let d = strsim::levenshtein(&wanted_lower, &lower);
            if d <= limit {
                Some((d, c))
            } else if wanted_lower.len() >= 3 && lower.contains(&wanted_lower) {
                Some((limit + 1, c))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(5)
        .map(|(_, c)| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_parts() {
        let names = ["0001_add_col", "0002_backfill", "0003_drop_old"];
        assert_eq!(near("0002_bakfill", names), ["0002_backfill"]);
        assert_eq!(near("backfill", names), ["0002_backfill"]);
        assert!(near("zzzzzzzz", names).is_empty());
    }
}
