//! How operations talk to whoever runs them: messages, warnings, progress
//! bars and the passphrase prompt. A terminal front end draws them; a server
//! logs them; [`Silent`] drops them.

use ripcord_targets::Progress;

pub trait Reporter: Send + Sync {
    /// A line of progress text ("snapshot 1a2b3c4d saved").
    fn say(&self, text: &str);
    /// Something the user should know that does not stop the operation.
    fn warn(&self, text: &str);
    /// A byte-progress bar; `total` when the size is known.
    fn progress(&self, total: Option<u64>, message: &str) -> Box<dyn ProgressBar>;
    /// Asks a person for the passphrase; `None` when nobody can be asked.
    fn passphrase(&self, _prompt: &str) -> std::io::Result<Option<String>> {
        Ok(None)
    }
}

/// A progress bar of a [`Reporter`].
pub trait ProgressBar: Progress + Send {
    /// Done: the bar goes away.
    fn finish(&self) {}
}

/// The bar an operation draws on; finished when dropped.
pub struct Bar(Box<dyn ProgressBar>);

impl Bar {
    pub fn finish(&self) {
        self.0.finish();
    }
}

impl Progress for Bar {
    fn bytes(&self, n: u64) {
        self.0.bytes(n);
    }
    fn item(&self, path: &str) {
        self.0.item(path);
    }
    fn warn(&self, message: String) {
        self.0.warn(message);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Opens a bar of `reporter`.
pub fn bar(reporter: &dyn Reporter, total: Option<u64>, message: &str) -> Bar {
    Bar(reporter.progress(total, message))
}

/// Reports nothing: for operations run on behalf of another one (the
/// scratch copies of a rehearsal) and for callers that want no output.
pub struct Silent;

struct NoBar;
impl Progress for NoBar {}
impl ProgressBar for NoBar {}

impl Reporter for Silent {
    fn say(&self, _text: &str) {}
    fn warn(&self, _text: &str) {}
    fn progress(&self, _total: Option<u64>, _message: &str) -> Box<dyn ProgressBar> {
        Box::new(NoBar)
    }
}

/// A size for people: "512 B", "1.5 MiB". Every size ripcord prints goes
/// through here, the progress bars' too, so one size reads the same
/// everywhere: whole bytes below 1 KiB, else one decimal in the largest
/// unit that keeps the number below 1024 after rounding (never "1024.0 KiB").
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while u < UNITS.len() - 1 && (v * 10.0).round() / 10.0 >= 1024.0 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub use ripcord_core::text::{count, counted};

#[cfg(test)]
mod tests {
    use super::{bytes, counted};

    /// Sizes just below a unit were shown as "1024.0 KiB" next to "1.0 MiB".
    #[test]
    fn sizes_never_show_1024_of_a_unit() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1_048_575), "1.0 MiB");
        assert_eq!(bytes(1_048_000), "1023.4 KiB");
        assert_eq!(bytes(1 << 30), "1.0 GiB");
        assert_eq!(bytes((1 << 30) - 1), "1.0 GiB");
    }

    #[test]
    fn one_is_singular() {
        assert_eq!(counted(1u64, "file"), "1 file");
        assert_eq!(counted(0u64, "file"), "0 files");
        assert_eq!(counted(2u64, "file"), "2 files");
    }
}
