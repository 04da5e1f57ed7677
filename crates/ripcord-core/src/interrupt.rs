//! Cleaning up when the user presses Ctrl-C or the system sends SIGTERM.
//!
//! Work that leaves something behind until it finishes (a scratch database,
//! a temporary repository) registers its cleanup with [`on_interrupt`]. When
//! SIGINT, SIGTERM or SIGHUP arrives, [`install`]'s thread runs every
//! registered cleanup, newest first, then ends the process the way the
//! signal would have (so the exit status still says which signal). A second
//! signal while cleaning up ends it at once.
//!
//! A cleanup runs once: either on a signal, or through [`Cleanup::run`] on
//! the normal path, or never when the guard is [dismissed](Cleanup::dismiss).
//! Work that must not be cut in half by a cleanup (creating the database the
//! cleanup drops) runs inside [`critical`], which the signal thread waits for.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

type Action = Box<dyn FnOnce() + Send>;

fn registry() -> &'static Mutex<BTreeMap<u64, Action>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<u64, Action>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Held for reading by [`critical`] sections, for writing while cleaning up.
fn gate() -> &'static RwLock<()> {
    static GATE: RwLock<()> = RwLock::new(());
    &GATE
}

static NEXT: AtomicU64 = AtomicU64::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A registered cleanup. Dropping the guard without [`run`](Self::run) or
/// [`dismiss`](Self::dismiss) runs it, as an interruption would.
#[must_use = "the cleanup runs when the guard is dropped"]
pub struct Cleanup {
    id: u64,
}

/// Registers `action` to run if the process is interrupted before the
/// returned guard is run or dismissed.
pub fn on_interrupt(action: impl FnOnce() + Send + 'static) -> Cleanup {
    let id = NEXT.fetch_add(1, Ordering::SeqCst);
    lock(registry()).insert(id, Box::new(action));
    Cleanup { id }
}

impl Cleanup {
    /// Runs the cleanup now (unless a signal already ran it).
    pub fn run(self) {
        // Drop does it.
    }

    /// Forgets the cleanup: what it would remove is kept.
    pub fn dismiss(self) {
        lock(registry()).remove(&self.id);
        std::mem::forget(self);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let action = lock(registry()).remove(&self.id);
        if let Some(action) = action {
            action();
        }
    }
}

/// Runs `f` with cleanups on a signal held back until it returns.
pub fn critical<T>(f: impl FnOnce() -> T) -> T {
    let _held = gate().read().unwrap_or_else(|e| e.into_inner());
    f()
}

/// Whether a signal has arrived (the process is about to end).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Runs every registered cleanup, newest first.
fn run_all() {
    let _gate = gate().write().unwrap_or_else(|e| e.into_inner());
    loop {
        let next = lock(registry()).pop_last();
        match next {
            Some((_, action)) => action(),
            None => break,
        }
    }
}

/// Starts the thread that turns SIGINT, SIGTERM and SIGHUP into cleanup
/// and exit. Call once, early; later calls do nothing.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    INSTALLED.get_or_init(|| ());
    std::thread::Builder::new()
        .name("ripcord-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    // A second signal while cleaning up: stop at once.
                    die(signal);
                }
                std::thread::spawn(move || {
                    run_all();
                    die(signal);
                });
            }
        })?;
    Ok(())
}

/// Ends the process as `signal`'s default action does.
fn die(signal: i32) -> ! {
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    // SIGINT, SIGTERM and SIGHUP terminate by default; this is not reached.
    std::process::exit(128 + signal)
}

/// When a signal arrived, waits for its cleanup to end the process. Called
/// before exiting normally, so that an error the cleanup caused (a dropped
/// database under a running query) does not end the process before the
/// cleanup is done.
pub fn settle() {
    if interrupted() {
        loop {
            std::thread::park();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_cleanup_runs_once() {
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        let guard = on_interrupt(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        guard.run();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        run_all();
        assert_eq!(count.load(Ordering::SeqCst), 1);

        let c = count.clone();
        let guard = on_interrupt(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        run_all();
        assert_eq!(count.load(Ordering::SeqCst), 2);
        drop(guard);
        assert_eq!(count.load(Ordering::SeqCst), 2);

        let c = count.clone();
        on_interrupt(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .dismiss();
        run_all();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }
}
