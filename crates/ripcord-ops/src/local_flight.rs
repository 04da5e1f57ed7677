//! One run at a time within this process, per catalog. The catalog's
//! single-flight lock tells processes apart, and lets a process take its
//! own lock back (a holder it left behind); a server runs many requests in
//! one process, so runs started on its threads take this lock first.

use std::collections::HashMap;
use std::sync::Mutex;

use ripcord_catalog::flight::Holder;

use crate::ctx::Ctx;
use crate::Result;

/// The run acting in this process, by the catalog it is journaled in.
static ACTIVE: Mutex<Option<HashMap<String, Holder>>> = Mutex::new(None);

/// Held while a run acts; dropping it lets the next one go.
#[must_use]
pub struct Claim {
    catalog: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = active.as_mut() {
            m.remove(&self.catalog);
        }
    }
}

/// Claims this process's one run on `ctx`'s catalog for `run`, or refuses
/// as the catalog's lock would: another of its threads is running one.
pub fn claim(ctx: &Ctx, run: &str, hint: &str) -> Result<Claim> {
    let catalog = ctx.catalog_location().name();
    let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    let m = active.get_or_insert_with(HashMap::new);
    if let Some(other) = m.get(&catalog) {
        return Err(crate::recover::in_progress(other, hint));
    }
    m.insert(catalog.clone(), Holder::this_process(run));
    Ok(Claim { catalog })
}
