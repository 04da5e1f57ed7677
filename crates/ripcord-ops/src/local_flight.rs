//! One run at a time within this process. The catalog's single-flight
//! lock tells processes apart, and lets a process take its own lock back
//! (a holder it left behind); a server runs many requests in one process,
//! so runs started on its threads take this lock first.

use std::sync::Mutex;

use ripcord_catalog::flight::Holder;

use crate::Result;

static ACTIVE: Mutex<Option<String>> = Mutex::new(None);

/// Held while a run acts; dropping it lets the next one go.
#[must_use]
pub struct Claim(());

impl Drop for Claim {
    fn drop(&mut self) {
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Claims this process's one run for `run`, or refuses as the catalog's
/// lock would: another of its threads is running one.
pub fn claim(run: &str, hint: &str) -> Result<Claim> {
    let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(other) = &*active {
        return Err(crate::recover::in_progress(
            &Holder::this_process(other),
            hint,
        ));
    }
    *active = Some(run.to_string());
    Ok(Claim(()))
}
