//! Runs started through the server: each acts on its own thread, through
//! the same library calls as the command line, journaled in the catalog.
//! The request is answered as soon as the run's journal begins, with its id;
//! bad input or a run already in progress is answered as an error instead.
//! On shutdown the server waits for them: a run that a kill -9 cuts short
//! is resumed like any other (`POST /api/v1/runs/{id}/resume`).

use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ripcord_ops::Ctx;

use crate::error::{ApiError, ApiResult};

/// How long a request waits for its run to be journaled.
const BEGIN_WITHIN: Duration = Duration::from_secs(20);
/// How long a resume's answer waits for a refusal before it says "started".
const REFUSED_WITHIN: Duration = Duration::from_millis(1500);

#[derive(Default)]
pub struct Runs {
    threads: Mutex<Vec<(String, JoinHandle<()>)>>,
}

impl Runs {
    /// Starts `act` as run `id` on its own thread, and returns once the run
    /// is in the journal, or with `act`'s error if it ended before that.
    /// `started` tells whether the journal has the run.
    pub async fn start(
        &self,
        ctx: &Ctx,
        id: String,
        act: impl FnOnce() -> ripcord_ops::Result<()> + Send + 'static,
        on_end: impl FnOnce() + Send + 'static,
    ) -> ApiResult<String> {
        self.spawn(ctx, id, false, act, on_end).await
    }

    /// As [`Runs::start`] for a run the journal has already (a resume):
    /// the answer waits only for a quick refusal.
    pub async fn start_known(
        &self,
        ctx: &Ctx,
        id: String,
        act: impl FnOnce() -> ripcord_ops::Result<()> + Send + 'static,
        on_end: impl FnOnce() + Send + 'static,
    ) -> ApiResult<String> {
        self.spawn(ctx, id, true, act, on_end).await
    }

    async fn spawn(
        &self,
        ctx: &Ctx,
        id: String,
        known: bool,
        act: impl FnOnce() -> ripcord_ops::Result<()> + Send + 'static,
        on_end: impl FnOnce() + Send + 'static,
    ) -> ApiResult<String> {
        let (tx, rx) = mpsc::channel::<ripcord_ops::Result<()>>();
        let handle = std::thread::Builder::new()
            .name(format!("run {id}"))
            .spawn(move || {
                let result = act();
                if let Err(e) = &result {
                    eprintln!("run ended: {}", e.chain());
                }
                let _ = tx.send(result);
                on_end();
            })
            .map_err(|e| {
                ApiError::unavailable(format!("cannot start a thread for the run: {e}"))
            })?;
        {
            let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            threads.retain(|(_, h)| !h.is_finished());
            threads.push((id.clone(), handle));
        }
        let ctx = ctx.clone();
        let run = id.clone();
        crate::error::blocking(move || {
            let start = Instant::now();
            loop {
                match rx.try_recv() {
                    Ok(Err(e)) => {
                        // Refused or bad input ends before the journal
                        // begins; a failure after it is in the run's report.
                        if known || !journaled(&ctx, &run) {
                            return Err(ApiError::from(e));
                        }
                        return Ok(run);
                    }
                    Ok(Ok(())) | Err(mpsc::TryRecvError::Disconnected) => return Ok(run),
                    Err(mpsc::TryRecvError::Empty) => {}
                }
                if known && start.elapsed() > REFUSED_WITHIN {
                    return Ok(run);
                }
                if !known && journaled(&ctx, &run) {
                    return Ok(run);
                }
                if start.elapsed() > BEGIN_WITHIN {
                    return Ok(run);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
    }

    /// The runs still acting.
    pub fn active(&self) -> Vec<String> {
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, h)| !h.is_finished())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Waits for every run this process started to end.
    pub fn wait_all(&self) {
        let threads: Vec<_> = self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for (id, h) in threads {
            if !h.is_finished() {
                eprintln!("waiting for run {id} to end");
            }
            let _ = h.join();
        }
    }
}

fn journaled(ctx: &Ctx, run: &str) -> bool {
    ctx.catalog()
        .and_then(|mut c| c.run(run))
        .is_ok_and(|r| r.is_some())
}
