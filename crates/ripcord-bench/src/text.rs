//! Pseudo-English, log-like, CSV-like and config-like text.
//!
//! All functions append to a `Vec<u8>` until it holds at least the requested
//! number of bytes; callers truncate to the exact size they need.

use std::fmt::Write as _;

use crate::rng::Rng;

/// Vocabulary for prose, names and identifiers.
#[rustfmt::skip]
pub const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "system", "data", "file",
    "record", "value", "server", "client", "request", "response", "backup", "snapshot", "archive",
    "storage", "network", "memory", "process", "thread", "queue", "cache", "index", "table",
    "column", "query", "result", "error", "warning", "message", "report", "account", "customer",
    "order", "invoice", "payment", "product", "service", "window", "river", "mountain", "garden",
    "morning", "evening", "letter", "summer", "winter", "village", "harbour", "station", "market",
    "language", "history", "science", "question", "answer", "problem", "number", "people",
    "country", "between", "through", "without", "against", "because", "however", "although",
    "quickly", "slowly", "carefully", "rarely", "usually", "always", "never", "often", "later",
    "early", "small", "large", "green", "bright", "quiet", "heavy", "simple", "careful", "strong",
    "ancient", "modern", "public", "private", "local", "remote", "stable", "broken", "empty",
    "full", "open", "closed", "ready", "pending", "running", "stopped", "failed", "complete",
    "write", "read", "send", "receive", "build", "deploy", "measure", "compare", "restore",
    "verify", "compress", "encrypt", "review", "update", "delete", "create", "manage", "observe",
    "describe", "remember", "consider", "develop", "provide", "include", "continue", "follow",
];

const LEVELS: &[&str] = &[
    "INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const STATUSES: &[u32] = &[200, 200, 200, 200, 201, 204, 304, 400, 404, 500];
const COUNTRIES: &[&str] = &[
    "DE", "FR", "US", "GB", "JP", "BR", "IN", "NL", "SE", "ES", "IT",
];
const COMPONENTS: &[&str] = &[
    "http",
    "db",
    "scheduler",
    "auth",
    "worker",
    "cache",
    "storage",
    "mailer",
];

/// A random word.
pub fn word(rng: &mut Rng) -> &'static str {
    rng.pick(WORDS)
}

/// Appends one sentence.
pub fn sentence(rng: &mut Rng, out: &mut Vec<u8>) {
    let n = rng.range(4, 18);
    for i in 0..n {
        let w = word(rng);
        if i == 0 {
            let mut cs = w.chars();
            if let Some(c) = cs.next() {
                out.extend(c.to_uppercase().to_string().as_bytes());
                out.extend(cs.as_str().as_bytes());
            }
        } else {
            out.push(b' ');
            out.extend(w.as_bytes());
            if rng.chance(0.08) {
                out.push(b',');
            }
        }
    }
    out.extend(if rng.chance(0.1) { b"? " } else { b". " });
}

/// Appends paragraphs of pseudo-English (optionally with a Markdown title)
/// until `out` holds at least `len` bytes.
pub fn prose(rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
    if rng.chance(0.5) {
        out.extend(b"# ");
        for _ in 0..rng.range(2, 6) {
            out.extend(word(rng).as_bytes());
            out.push(b' ');
        }
        out.extend(b"\n\n");
    }
    while out.len() < len {
        for _ in 0..rng.range(2, 7) {
            sentence(rng, out);
        }
        out.extend(b"\n\n");
    }
}

/// Formats `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS`.
pub fn timestamp(secs: u64, out: &mut String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
}

/// State of a log file being written: the clock only moves forward.
pub struct LogWriter {
    /// Current time in seconds since the Unix epoch.
    pub t: u64,
    /// Milliseconds part of the current time.
    pub ms: u64,
    line: String,
}

impl LogWriter {
    /// A log starting at `t` seconds since the epoch.
    pub fn new(t: u64) -> Self {
        LogWriter {
            t,
            ms: 0,
            line: String::with_capacity(256),
        }
    }

    /// Appends log lines until `out` holds at least `len` bytes.
    pub fn lines(&mut self, rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
        while out.len() < len {
            self.line(rng, out);
        }
    }

    /// Appends one log line.
    pub fn line(&mut self, rng: &mut Rng, out: &mut Vec<u8>) {
        self.ms += rng.below(400);
        self.t += self.ms / 1000;
        self.ms %= 1000;
        let l = &mut self.line;
        l.clear();
        timestamp(self.t, l);
        let level = rng.pick(LEVELS);
        let comp = rng.pick(COMPONENTS);
        let _ = write!(l, ".{:03}Z {level:<5} [{comp}-{}] ", self.ms, rng.below(16));
        match rng.below(4) {
            0 | 1 => {
                let _ = write!(
                    l,
                    "{} /api/v1/{}/{} status={} bytes={} latency_ms={} req={:08x}",
                    rng.pick(METHODS),
                    word(rng),
                    rng.below(100_000),
                    rng.pick(STATUSES),
                    rng.below(65_536),
                    rng.below(900) + 1,
                    rng.next_u64() as u32
                );
            }
            2 => {
                let _ = write!(
                    l,
                    "{} {} {} {} user={} took={}ms",
                    word(rng),
                    word(rng),
                    word(rng),
                    word(rng),
                    rng.below(50_000),
                    rng.below(5000)
                );
            }
            _ => {
                let _ = write!(
                    l,
                    "job {} {} after {} attempts: {} {} {}",
                    rng.below(1_000_000),
                    rng.pick(&["started", "finished", "retried", "failed"]),
                    rng.below(5) + 1,
                    word(rng),
                    word(rng),
                    word(rng)
                );
            }
        }
        l.push('\n');
        out.extend(l.as_bytes());
    }
}

/// State of a CSV export being written: ids increase.
pub struct CsvWriter {
    id: u64,
    t: u64,
    line: String,
}

impl CsvWriter {
    /// Header line of the CSV files.
    pub const HEADER: &'static str =
        "id,created_at,customer_id,country,amount,currency,status,note\n";

    /// A CSV export starting at id `id` and time `t`.
    pub fn new(id: u64, t: u64) -> Self {
        CsvWriter {
            id,
            t,
            line: String::with_capacity(256),
        }
    }

    /// Appends rows until `out` holds at least `len` bytes.
    pub fn rows(&mut self, rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
        while out.len() < len {
            self.row(rng, out);
        }
    }

    /// Appends one row.
    pub fn row(&mut self, rng: &mut Rng, out: &mut Vec<u8>) {
        self.id += 1;
        self.t += rng.below(30);
        let l = &mut self.line;
        l.clear();
        let _ = write!(l, "{},", self.id);
        timestamp(self.t, l);
        let _ = writeln!(
            l,
            ",{},{},{}.{:02},EUR,{},\"{} {} {}\"",
            rng.below(200_000),
            rng.pick(COUNTRIES),
            rng.below(5000),
            rng.below(100),
            rng.pick(&["paid", "paid", "paid", "open", "refunded", "cancelled"]),
            word(rng),
            word(rng),
            word(rng)
        );
        out.extend(l.as_bytes());
    }
}

/// Appends an INI/TOML-like configuration until `out` holds at least `len`
/// bytes.
pub fn config(rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
    let mut s = String::new();
    let _ = writeln!(s, "# {} {} configuration", word(rng), word(rng));
    while s.len() + out.len() < len {
        let _ = writeln!(s, "\n[{}.{}]", word(rng), word(rng));
        for _ in 0..rng.range(3, 12) {
            let key = format!("{}_{}", word(rng), word(rng));
            let _ = match rng.below(5) {
                0 => writeln!(s, "{key} = {}", rng.below(10_000)),
                1 => writeln!(s, "{key} = {}", rng.chance(0.5)),
                2 => writeln!(
                    s,
                    "{key} = \"/var/lib/{}/{}.{}\"",
                    word(rng),
                    word(rng),
                    rng.pick(&["db", "sock", "log", "pid"])
                ),
                3 => writeln!(
                    s,
                    "{key} = [\"{}\", \"{}\", \"{}\"]",
                    word(rng),
                    word(rng),
                    word(rng)
                ),
                _ => writeln!(s, "{key} = \"{} {} {}\"", word(rng), word(rng), word(rng)),
            };
        }
    }
    out.extend(s.as_bytes());
}

/// A JSON-like event payload of roughly 80..300 bytes.
pub fn payload(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "{{\"action\":\"{}\",\"object\":\"{}\",\"ref\":\"{:012x}\",\"amount\":{},\"tags\":[",
        word(rng),
        word(rng),
        rng.next_u64() >> 16,
        rng.below(100_000)
    );
    for i in 0..rng.range(1, 5) {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "\"{}\"", word(rng));
    }
    s.push_str("],\"note\":\"");
    for i in 0..rng.range(3, 25) {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(word(rng));
    }
    s.push_str("\"}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let mut s = String::new();
        timestamp(0, &mut s);
        assert_eq!(s, "1970-01-01T00:00:00");
        s.clear();
        timestamp(1_709_251_200 + 3661, &mut s);
        assert_eq!(s, "2024-03-01T01:01:01");
    }

    #[test]
    fn generators_reach_length() {
        let mut rng = Rng::new(1);
        for len in [1usize, 100, 5000] {
            let mut out = Vec::new();
            prose(&mut rng, &mut out, len);
            assert!(out.len() >= len);
            let mut out = Vec::new();
            config(&mut rng, &mut out, len);
            assert!(out.len() >= len);
            let mut out = Vec::new();
            LogWriter::new(1_700_000_000).lines(&mut rng, &mut out, len);
            assert!(out.len() >= len);
            let mut out = Vec::new();
            CsvWriter::new(0, 1_700_000_000).rows(&mut rng, &mut out, len);
            assert!(out.len() >= len);
        }
        assert!(payload(&mut rng).starts_with("{\"action\""));
    }
}
