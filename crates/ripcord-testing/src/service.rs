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

/// A webhook receiver on 127.0.0.1: answers 200 to every request and
/// keeps each request's body.
pub struct Receiver {
    pub url: String,
    bodies: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        use std::io::Read;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let (mut line, mut len) = (String::new(), 0usize);
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_ok() {
                    keep.lock()
                        .expect("bodies")
                        .push(String::from_utf8_lossy(&body).into_owned());
                }
                let _ = write!(
                    &stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { url, bodies }
    }

    /// The bodies received so far, oldest first.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().expect("bodies").clone()
    }
}
