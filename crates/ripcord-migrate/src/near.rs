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
            let d = distance(&wanted_lower, &lower);
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

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_parts() {
        assert_eq!(distance("kitten", "sitting"), 3);
        let names = ["0001_add_col", "0002_backfill", "0003_drop_old"];
        assert_eq!(near("0002_bakfill", names), ["0002_backfill"]);
        assert_eq!(near("backfill", names), ["0002_backfill"]);
        assert!(near("zzzzzzzz", names).is_empty());
    }
}
