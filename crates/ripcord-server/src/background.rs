//! What `serve --guard` and `serve --schedule` run beside the API: the
//! guard's watch on its own thread (it blocks between samples), and a
//! schedule pass every minute, audited when it did something.

use std::sync::Arc;
use std::time::Duration;

use ripcord_ops::audit::{self, Record};
use ripcord_ops::Ctx;

use crate::board::Boards;

pub fn guard(ctx: &Ctx, auto_rollback: bool, boards: Arc<Boards>) {
    let ctx = ctx.clone();
    let started = std::thread::Builder::new()
        .name("guard".into())
        .spawn(move || {
            let opts = ripcord_guard::watch::WatchOptions {
                duration: None,
                auto_rollback,
                stop_after_rollback: false,
            };
            let mut rollback = ripcord_guard::watch::recovery_run(&ctx);
            let mut wrapped = |rule: &ripcord_core::config::guard::GuardRule,
                               evidence: &[String]| {
                let run = rollback(rule, evidence);
                boards.redraw.notify_one();
                run
            };
            if let Err(e) =
                ripcord_guard::watch::watch(&ctx, &ctx.config.guard_spec.rules, &opts, &mut wrapped)
            {
                eprintln!("the guard's watch stopped: {}", e.chain());
            }
        });
    if let Err(e) = started {
        eprintln!("cannot start the guard's watch: {e}");
    }
}

pub fn schedule(ctx: &Ctx, every: Duration, boards: Arc<Boards>) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        loop {
            let c = ctx.clone();
            let _ = tokio::task::spawn_blocking(move || pass(&c)).await;
            boards.redraw.notify_one();
            tokio::time::sleep(every).await;
        }
    });
}

/// One pass, audited as `schedule run` is when it did or tried something.
fn pass(ctx: &Ctx) {
    let (result, acted) = match ripcord_ops::schedule::run(ctx) {
        Ok(r) => {
            let failed = r.actions.iter().filter(|a| !a.ok).count();
            let acted = !r.actions.is_empty();
            let result = if failed == 0 {
                "ok".to_string()
            } else {
                format!("failed: {failed} of its actions failed")
            };
            (result, acted)
        }
        Err(e) => {
            eprintln!("schedule pass: {}", e.chain());
            (format!("failed: {}", e.chain()), true)
        }
    };
    if acted {
        audit::record(
            ctx,
            &Record {
                command: "schedule run",
                args: &[],
                reason: None,
                result,
                run: None,
            },
        );
    }
}
