//! Fault injection for crash-safety tests.
//!
//! `RIPCORD_FAILPOINT=name[:n]` makes the process kill itself with SIGKILL the
//! n-th time (default: first) execution reaches `failpoint::hit("name")`. The
//! kill is real: no destructor, no flush, exactly like `kill -9` from outside.

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

/// Marks a point where a test may kill the process.
pub fn hit(name: &str) {
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
