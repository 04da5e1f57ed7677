//! `[migrations] timeout`: a change that runs longer is stopped where it
//! is and undone like any change that fails. PostgreSQL's statement is
//! cancelled from another thread at the deadline (one bound for the whole
//! script, where `statement_timeout` would bound each statement); SQLite's
//! through its interrupt handle.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use super::db::Conn;

/// Where the watch stands; the thread and the engine change it under one
/// lock, so a statement is never cancelled after the script was done.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Armed,
    Fired,
    Disarmed,
}

/// Armed while a change's script runs.
pub struct Deadline {
    state: Arc<Mutex<State>>,
    stop: mpsc::Sender<()>,
    limit: Duration,
}

impl Deadline {
    /// Arms the deadline `limit` from now on `conn`; `None` arms nothing.
    pub fn arm(conn: Conn<'_>, limit: Option<Duration>) -> Option<Deadline> {
        let limit = limit?;
        // What stops the statement at the deadline, from another thread.
        let stop_statement: Box<dyn FnOnce() + Send> = match conn {
            Conn::Postgres(client) => {
                let token = client.cancel_token();
                Box::new(move || {
                    let _ = token.cancel_query(postgres::NoTls);
                })
            }
            Conn::Sqlite(conn) => {
                let handle = conn.get_interrupt_handle();
                Box::new(move || handle.interrupt())
            }
        };
        let state = Arc::new(Mutex::new(State::Armed));
        let (stop, wait) = mpsc::channel::<()>();
        let watched = Arc::clone(&state);
        std::thread::spawn(move || {
            if wait.recv_timeout(limit) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            let mut s = watched.lock().unwrap_or_else(|e| e.into_inner());
            if *s == State::Armed {
                *s = State::Fired;
                stop_statement();
            }
        });
        Some(Deadline { state, stop, limit })
    }

    /// The message of a change the deadline stopped.
    pub fn message(&self) -> String {
        format!(
            "it ran past the change timeout of {} ([migrations] timeout) and was stopped",
            ripcord_core::duration::short(self.limit)
        )
    }

    /// Disarms it once the script has returned; whether the deadline
    /// fired first (then the change failed, whatever the script said).
    pub fn disarm(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let fired = *s == State::Fired;
        *s = State::Disarmed;
        let _ = self.stop.send(());
        fired
    }
}
