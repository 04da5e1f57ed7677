//! Human durations (`90s`, `72h`, `30d`, `1w`).

use std::time::Duration;

/// The longest duration accepted: 1000 years (of 365.25 days, as humantime counts them). Longer ones mean nothing for
/// snapshots, and would overflow date arithmetic.
pub const MAX: Duration = Duration::from_secs(1000 * 31_557_600);

/// Parses a duration such as `72h`, `30d` or `1h 30m`, of at most [`MAX`].
pub fn parse(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e}; write it like 90s, 15m, 72h, 30d or 1w")
    })?;
    if d > MAX {
        return Err(format!(
            "duration {text:?} is too long; the longest allowed is 1000y"
        ));
    }
    Ok(d)
}

/// A duration as a person writes it: `2s`, `1m 30s`, `250ms`.
pub fn short(d: Duration) -> String {
    // Whole milliseconds: nobody reads nanoseconds in a step's line.
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_within_300000y_is_refused_not_a_panic() {
        assert!(parse("300000y").unwrap_err().contains("too long"));
        assert!(parse("99999999999999999999y").is_err());
        assert_eq!(parse("1000y").unwrap(), MAX);
        assert!(parse("1001y").is_err());
        assert_eq!(parse("72h").unwrap(), Duration::from_secs(72 * 3600));
    }
}
