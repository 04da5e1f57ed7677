//! Timeouts of the built-in steps (snapshot, restore, migrate-down). They
//! run in this process and cannot be stopped half way by any means short of
//! ending it; ending it is as safe as `kill -9`, which every built-in step
//! survives (the target is left old, new, or finished by its next restore).
//! So a step that overruns its `timeout` is journaled as failed, and the
//! front end's [`Overrun`] replaces the process with `ripcord resume RUN`,
//! which goes on from the failed step: to the next level.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ripcord_catalog::runs::{StepEnd, StepState};

/// Ends this process and goes on with the run (`ripcord resume RUN`);
/// returns only when it could not.
pub type Overrun = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Finished,
    Fired,
}

/// Watches one step; [`Watchdog::finished`] when it ends in time.
pub struct Watchdog {
    state: Arc<Mutex<State>>,
    done: mpsc::Sender<()>,
}

impl Watchdog {
    pub fn start(
        catalog: ripcord_catalog::Location,
        run: &str,
        seq: u32,
        timeout: Duration,
        overrun: Overrun,
    ) -> Watchdog {
        let state = Arc::new(Mutex::new(State::Running));
        let (done, wait) = mpsc::channel::<()>();
        let watched = Arc::clone(&state);
        let run = run.to_string();
        std::thread::spawn(move || {
            if wait.recv_timeout(timeout) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            // Held until the process is replaced: the step cannot end now.
            let mut s = watched.lock().unwrap_or_else(|e| e.into_inner());
            if *s != State::Running {
                return;
            }
            *s = State::Fired;
            let end = StepEnd {
                state: StepState::Failed,
                output: Some(format!(
                    "timed out after {}: stopped as kill -9 would stop it; the run goes on \
                     from here",
                    ripcord_core::duration::short(timeout)
                )),
                detail: None,
            };
            let journaled =
                ripcord_catalog::open(&catalog).and_then(|mut c| c.end_step(&run, seq, &end));
            if journaled.is_ok() {
                overrun(&run);
            }
            // Could not go on elsewhere: let the step finish after all.
            *s = State::Running;
        });
        Watchdog { state, done }
    }

    /// The step ended. If its time ran out just before, this waits for
    /// the process to be replaced.
    pub fn finished(self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s = State::Finished;
        let _ = self.done.send(());
    }
}
