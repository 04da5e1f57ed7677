//! Fault injection for crash-safety tests.
//!
//! `RIPCORD_FAILPOINT=name[:n]` makes the process kill itself with SIGKILL the
//! n-th time (default: first) execution reaches `failpoint::hit("name")`. The
//! kill is real: no destructor, no flush, exactly like `kill -9` from outside.
//!
//! `RIPCORD_PAUSE=name=PATH` makes the process stop at `name` (the first
//! time): it creates the file PATH and waits until the test removes it (two
//! minutes at most), so that a test can act at exactly that point.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn spec() -> &'static Option<(String, u64)> {
    SPEC.get_or_init(|| {
        let raw = std::env::var("RIPCORD_FAILPOINT").ok()?;
        let (name, n) = match raw.split_once(':') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
            None => (raw, 1),
        };
        Some((name, n.max(1)))
    })
}

static PAUSE: OnceLock<Option<(String, std::path::PathBuf)>> = OnceLock::new();
static PAUSED: AtomicU64 = AtomicU64::new(0);

fn pause(name: &str) {
    let spec = PAUSE.get_or_init(|| {
        let raw = std::env::var("RIPCORD_PAUSE").ok()?;
        let (name, path) = raw.split_once('=')?;
        Some((name.to_string(), path.into()))
    });
    let Some((want, path)) = spec else { return };
    if want != name || PAUSED.fetch_add(1, Ordering::SeqCst) > 0 {
        return;
    }
    if std::fs::write(path, b"").is_err() {
        return;
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while path.exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Marks a point where a test may kill or pause the process.
pub fn hit(name: &str) {
    pause(name);
    if let Some((want, n)) = spec() {
        if want == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            kill_self();
        }
    }
}

#[allow(unsafe_code)]
fn kill_self() -> ! {
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}
