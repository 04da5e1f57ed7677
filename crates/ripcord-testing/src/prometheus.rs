//! A real Prometheus server, and an exporter for it to scrape.
//!
//! [`Prometheus::start`] runs the `prometheus` binary (on PATH, or
//! `/usr/bin/prometheus` from Debian's package, which `scripts/test`
//! installs) on a free port of 127.0.0.1, with its data in a temporary
//! folder and a scrape configuration of its own: one job that scrapes the
//! address the test gives every second. It returns once `/-/ready` answers.
//!
//! [`Exporter`] serves `/metrics` in the Prometheus text format from a
//! string the test changes as it goes.
//!
//! Cleanup does not depend on destructors alone: like the PostgreSQL
//! clusters, the server runs under a watchdog shell that holds the read end
//! of a pipe whose write end only the test process holds. When the server
//! is dropped, or the test process exits or dies, the watchdog kills the
//! server and removes the folder.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::pg::{alive, free_port};

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `$1` is the folder, the rest the server's command line. Prints the
/// server's pid; EOF on stdin kills the server and removes the folder.
const WATCHDOG: &str = r#"
root=$1
shift
"$@" </dev/null >>"$root/prometheus.log" 2>&1 &
pid=$!
echo "$pid"
finish() {
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$root"
    exit 0
}
trap finish HUP TERM
while read -r line; do :; done
finish
"#;

/// A running Prometheus server. Dropping it kills the server and removes
/// its folder.
pub struct Prometheus {
    dir: tempfile::TempDir,
    port: u16,
    pid: u32,
    watchdog: Option<Child>,
}

impl Prometheus {
    /// Starts a server that scrapes `http://{target}/metrics` every second
    /// (`target` is `host:port`, an [`Exporter::address`]), and waits until
    /// it is ready. Fails with [`io::ErrorKind::NotFound`] and what to
    /// install when there is no `prometheus` binary.
    pub fn start(target: &str) -> io::Result<Prometheus> {
        let bin = find_binary()?;
        // The free port may be taken by someone else before the server binds
        // it; then try another.
        let mut attempt = 1;
        loop {
            match Prometheus::start_once(&bin, target) {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < 3 => attempt += 1,
                result => return result,
            }
        }
    }

    fn start_once(bin: &Path, target: &str) -> io::Result<Prometheus> {
        let dir = tempfile::Builder::new()
            .prefix("ripcord-prometheus-")
            .tempdir()?;
        let root = dir.path();
        let config = root.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: [{target:?}]\n"
            ),
        )?;
        let port = free_port()?;
        let (watchdog, line) = crate::watchdog::spawn(
            crate::watchdog::command(WATCHDOG, "prometheus-watchdog")
                .arg(root)
                .arg(bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    root.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .current_dir(root),
        )?;
        let pid = crate::watchdog::pid(&line)?;
        let server = Prometheus {
            dir,
            port,
            pid,
            watchdog: Some(watchdog),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> io::Result<()> {
        let started = Instant::now();
        loop {
            let last = match http_get(self.address(), "/-/ready") {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => format!("HTTP {status}: {}", body.trim()),
                Err(e) => e.to_string(),
            };
            let why = if !alive(self.pid) {
                format!("the server exited (last answer: {last})")
            } else if started.elapsed() > START_TIMEOUT {
                format!("not ready within {START_TIMEOUT:?}: {last}")
            } else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let log = self.log();
            let kind = if log.contains("address already in use") {
                io::ErrorKind::AddrInUse
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(
                kind,
                format!(
                    "Prometheus on port {} did not start: {why}\n--- {} ---\n{log}",
                    self.port,
                    self.log_path().display()
                ),
            ));
        }
    }

    /// `http://127.0.0.1:PORT`, what a `prometheus` probe's `url` is.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.log")
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            // EOF makes the watchdog kill the server and remove the folder.
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("pid", &self.pid)
            .finish()
    }
}

/// The `prometheus` binary: on PATH, else Debian's `/usr/bin/prometheus`.
pub fn find_binary() -> io::Result<PathBuf> {
    find_in(
        &std::env::var_os("PATH").unwrap_or_default(),
        Path::new("/usr/bin/prometheus"),
    )
}

fn find_in(path: &std::ffi::OsStr, fallback: &Path) -> io::Result<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join("prometheus"))
        .chain([fallback.to_path_buf()])
        .find(|bin| bin.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no `prometheus` binary on PATH or at /usr/bin/prometheus: run scripts/test, \
                 which installs it, or install it yourself (apt-get install prometheus)",
            )
        })
}

/// Serves `/metrics` from [`metrics`](Self::metrics), a string in the
/// Prometheus text format that the test changes as it goes. Any other path
/// is a 404. Stops when dropped.
pub struct Exporter {
    address: SocketAddr,
    metrics: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    /// Starts serving `text` on a free port of 127.0.0.1.
    pub fn start(text: &str) -> io::Result<Exporter> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let metrics = Arc::new(Mutex::new(text.to_string()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let metrics = metrics.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = serve_metrics(stream, &metrics);
                    }
                }
            })
        };
        Ok(Exporter {
            address,
            metrics,
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`, the scrape target of [`Prometheus::start`].
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The text served: lock it and change it.
    pub fn metrics(&self) -> Arc<Mutex<String>> {
        self.metrics.clone()
    }

    /// Serves `text` from now on.
    pub fn set(&self, text: &str) {
        *self.metrics.lock().unwrap_or_else(|e| e.into_inner()) = text.to_string();
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_metrics(mut stream: TcpStream, metrics: &Mutex<String>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 && line != "\r\n" && line != "\n" {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
        let text = metrics.lock().unwrap_or_else(|e| e.into_inner()).clone();
        ("200 OK", text)
    } else {
        ("404 Not Found", "not found\n".to_string())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// A plain HTTP/1.0 GET: the status and the body.
fn http_get(address: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nhost: {address}\r\nconnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP answer: {answer:?}")))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_what_to_install() {
        let e = find_in(
            std::ffi::OsStr::new(""),
            Path::new("/nonexistent/prometheus"),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let text = e.to_string();
        assert!(text.contains("scripts/test"), "{text}");
        assert!(text.contains("apt-get install prometheus"), "{text}");
    }
}
