//! Human durations (`90s`, `72h`, `30d`, `1w`).

use std::time::Duration;

/// Parses a duration such as `72h`, `30d` or `1h 30m`.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e}; write it like 90s, 15m, 72h, 30d or 1w")
    })
}
