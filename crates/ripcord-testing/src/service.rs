//! A real HTTP service on 127.0.0.1 that a test flips between healthy and
//! failing: every request gets the current status and `{"status": N}`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

pub struct Service {
    pub url: String,
    status: Arc<AtomicU16>,
}

impl Service {
    /// Starts answering `status` to every request, on its own thread, for
    /// as long as the test process lives.
    pub fn start(status: u16) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let url = format!("http://{}/health", listener.local_addr().expect("address"));
        let current = Arc::new(AtomicU16::new(status));
        let shared = Arc::clone(&current);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut line = String::new();
                    // The request line and headers, up to the blank line.
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if line == "\r\n" || line == "\n" {
                            break;
                        }
                        line.clear();
                    }
                    let code = shared.load(Ordering::SeqCst);
                    let body = format!("{{\"status\": {code}}}");
                    let _ = write!(
                        &stream,
                        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Service {
            url,
            status: current,
        }
    }

    /// Every request from now on gets `status`.
    pub fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}
