//! The progress of the run this server is running, as its reporter hears
//! it: the latest message and the byte count of the bar drawn now. The
//! dashboard shows it live; the server's log gets every line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ripcord_ops::{ProgressBar, Reporter};
use ripcord_targets::Progress;
use serde::Serialize;

#[derive(Default)]
pub struct Live {
    message: Mutex<String>,
    bar: Mutex<Option<String>>,
    done: AtomicU64,
    total: AtomicU64,
}

/// What the run is doing now.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct RunProgress {
    /// The newest line it reported.
    pub message: String,
    /// The bar in progress: what it counts, bytes done and the total if known.
    pub bar: Option<String>,
    pub done_bytes: u64,
    pub total_bytes: Option<u64>,
}

impl Live {
    pub fn now(&self) -> RunProgress {
        let total = self.total.load(Ordering::Relaxed);
        RunProgress {
            message: self
                .message
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            bar: self.bar.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            done_bytes: self.done.load(Ordering::Relaxed),
            total_bytes: (total > 0).then_some(total),
        }
    }
}

/// Logs to standard error and keeps the latest state in [`Live`].
pub struct LiveReporter(pub Arc<Live>);

impl Reporter for LiveReporter {
    fn say(&self, text: &str) {
        eprintln!("{text}");
        *self.0.message.lock().unwrap_or_else(|e| e.into_inner()) = text.to_string();
    }

    fn warn(&self, text: &str) {
        eprintln!("warning: {text}");
    }

    fn progress(&self, total: Option<u64>, message: &str) -> Box<dyn ProgressBar> {
        *self.0.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.to_string());
        self.0.done.store(0, Ordering::Relaxed);
        self.0.total.store(total.unwrap_or(0), Ordering::Relaxed);
        Box::new(LiveBar(Arc::clone(&self.0)))
    }
}

struct LiveBar(Arc<Live>);

impl Progress for LiveBar {
    fn bytes(&self, n: u64) {
        self.0.done.fetch_add(n, Ordering::Relaxed);
    }
}

impl ProgressBar for LiveBar {
    fn finish(&self) {
        *self.0.bar.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
