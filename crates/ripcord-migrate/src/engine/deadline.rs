//! `[migrations] timeout`: a change that runs longer is stopped where it
//! is and undone like any change that fails. PostgreSQL's statement is
//! cancelled from another thread at the deadline (one bound for the whole
//! script, where `statement_timeout` would bound each statement); SQLite's
//! through its interrupt handle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::db::Conn;

/// Armed while a change's script runs; disarmed when dropped.
pub struct Deadline {
    fired: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    limit: Duration,
}

impl Deadline {
    /// Arms the deadline `limit` from now on `conn`; `None` arms nothing.
    pub fn arm(conn: Conn<'_>, limit: Option<Duration>) -> Option<Deadline> {
        let limit = limit?;
        let fired = Arc::new(AtomicBool::new(false));
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
        let (stop, wait) = mpsc::channel::<()>();
        let flag = Arc::clone(&fired);
        std::thread::spawn(move || {
            if wait.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
                flag.store(true, Ordering::SeqCst);
                stop_statement();
            }
        });
        Some(Deadline {
            fired,
            stop: Some(stop),
            limit,
        })
    }

    /// Whether the deadline stopped the script.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// The message of a change the deadline stopped.
    pub fn message(&self) -> String {
        format!(
            "it ran past the change timeout of {} ([migrations] timeout) and was stopped",
            ripcord_core::duration::short(self.limit)
        )
    }

    /// Disarms it: the script ended first.
    pub fn disarm(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
