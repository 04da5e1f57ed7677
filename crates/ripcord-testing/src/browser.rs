//! A real browser for the dashboard's tests: headless Chromium driven
//! through chromedriver (WebDriver) with [`fantoccini`].
//!
//! [`Browser::start`] runs `chromedriver` on a free port of 127.0.0.1
//! (another port when that one is taken before it binds), waits until it
//! answers, and opens a session whose Chromium has a fresh profile and no
//! background networking. It fails, naming the Debian packages to install
//! (`chromium`, `chromium-driver`; `scripts/test` installs them), when
//! either binary is missing.
//!
//! Cleanup does not depend on destructors alone: chromedriver runs in a
//! session of its own under a watchdog shell that holds the read end of a
//! pipe whose write end only the test process holds. When the browser is
//! dropped (a panicking test too), or the test process exits or dies, the
//! watchdog kills chromedriver's whole process group, Chromium with it, and
//! removes the profile.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::pg::{alive, free_port};

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Debian's binaries.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// `$1` is the folder, the rest chromedriver's command line. Prints its
/// pid; EOF on stdin kills its process group and removes the folder.
const WATCHDOG: &str = r#"
root=$1
shift
setsid "$@" </dev/null >>"$root/chromedriver.log" 2>&1 &
pid=$!
echo "$pid"
finish() {
    kill -KILL "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$root"
    exit 0
}
trap finish HUP TERM
while read -r line; do :; done
finish
"#;

/// A headless Chromium in a WebDriver session. It dereferences to the
/// [`fantoccini::Client`]; the helpers below cover what the tests repeat.
pub struct Browser {
    client: Client,
    dir: tempfile::TempDir,
    port: u16,
    pid: u32,
    watchdog: Option<Child>,
}

impl Browser {
    /// Starts chromedriver and a Chromium whose window (and so viewport) is
    /// `width` × `height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> io::Result<Browser> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(bin).is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "no {bin}: the browser tests need Debian's packages chromium and \
                         chromium-driver (apt-get install chromium chromium-driver), which \
                         scripts/test installs"
                    ),
                ));
            }
        }
        // The free port may be taken by someone else before chromedriver
        // binds it; then try another.
        let mut attempt = 1;
        let (dir, port, pid, watchdog) = loop {
            match start_driver() {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < 3 => attempt += 1,
                result => break result?,
            }
        };
        let profile = dir.path().join("profile");
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", profile.display()),
            format!("--window-size={width},{height}"),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let caps = caps.as_object().cloned().expect("an object");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        // From here on, the browser's drop cleans up whatever happens.
        let mut pending = Pending {
            dir: Some(dir),
            watchdog: Some(watchdog),
        };
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| {
                io::Error::other(format!(
                    "chromedriver did not open a session: {e}\n--- chromedriver's log ---\n{}",
                    pending.log()
                ))
            })?;
        let browser = Browser {
            client,
            dir: pending.dir.take().expect("the folder"),
            port,
            pid,
            watchdog: pending.watchdog.take(),
        };
        browser.resize(width, height).await?;
        Ok(browser)
    }

    /// Makes the viewport `width` × `height` CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) -> io::Result<()> {
        self.client
            .set_window_size(width, height)
            .await
            .map_err(io::Error::other)?;
        // The window's size is not quite the viewport's everywhere: correct
        // by what the page reports.
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .map_err(io::Error::other)?;
        let (w, h) = (inner[0].as_i64(), inner[1].as_i64());
        if let (Some(w), Some(h)) = (w, h) {
            let dw = i64::from(width) - w;
            let dh = i64::from(height) - h;
            if dw != 0 || dh != 0 {
                self.client
                    .set_window_size(
                        (i64::from(width) + dw).max(1) as u32,
                        (i64::from(height) + dh).max(1) as u32,
                    )
                    .await
                    .map_err(io::Error::other)?;
            }
        }
        Ok(())
    }

    /// Saves a PNG of the viewport at `path`, creating its folder.
    pub async fn screenshot(&self, path: &Path) -> io::Result<()> {
        let png = self.client.screenshot().await.map_err(io::Error::other)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, png)
    }

    /// The text of the first element `css` matches, or `None` when there is
    /// none (or the page was replaced while it was read).
    pub async fn text(&self, css: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.text().await.ok()
    }

    /// Whether an element matches `css`.
    pub async fn has(&self, css: &str) -> bool {
        self.client
            .find_all(Locator::Css(css))
            .await
            .is_ok_and(|all| !all.is_empty())
    }

    /// Polls until the first element `css` matches holds `needle` in its
    /// text, or `timeout` passes. Returns the text; panics with the page's
    /// last text when it never held it.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.text(css).await;
            if let Some(t) = &text {
                if t.contains(needle) {
                    return t.clone();
                }
            }
            if start.elapsed() > timeout {
                let page = self.text("body").await.unwrap_or_default();
                panic!(
                    "{css} did not show {needle:?} within {timeout:?}; it showed {text:?}; \
                     the page:\n{page}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the WebDriver session (Chromium quits); dropping the browser
    /// then stops chromedriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        self.stop();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// chromedriver's pid; its process group holds Chromium.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What chromedriver has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            // EOF makes the watchdog kill chromedriver's process group and
            // remove the folder.
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("pid", &self.pid)
            .finish()
    }
}

/// A started chromedriver that has no session yet: stops it when dropped.
struct Pending {
    dir: Option<tempfile::TempDir>,
    watchdog: Option<Child>,
}

impl Pending {
    fn log(&self) -> String {
        self.dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.path().join("chromedriver.log")).ok())
            .unwrap_or_default()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// Starts chromedriver under its watchdog on a free port and waits until it
/// answers `/status`.
fn start_driver() -> io::Result<(tempfile::TempDir, u16, u32, Child)> {
    let dir = tempfile::Builder::new()
        .prefix("ripcord-browser-")
        .tempdir()?;
    let port = free_port()?;
    let (watchdog, line) = crate::watchdog::spawn(
        crate::watchdog::command(WATCHDOG, "chromedriver-watchdog")
            .arg(dir.path())
            .arg(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .current_dir(dir.path()),
    )?;
    let pending = Pending {
        dir: Some(dir),
        watchdog: Some(watchdog),
    };
    let pid = crate::watchdog::pid(&line)?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    loop {
        let last = match http_get(address, "/status") {
            Ok((200, body)) if body.contains("\"ready\":true") => break,
            Ok((status, body)) => format!("HTTP {status}: {}", body.trim()),
            Err(e) => e.to_string(),
        };
        let why = if !alive(pid) {
            format!("it exited (last answer: {last})")
        } else if started.elapsed() > START_TIMEOUT {
            format!("not ready within {START_TIMEOUT:?}: {last}")
        } else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let log = pending.log();
        let kind = if log.contains("already in use") || log.contains("not available") {
            io::ErrorKind::AddrInUse
        } else {
            io::ErrorKind::Other
        };
        return Err(io::Error::new(
            kind,
            format!("chromedriver on port {port} did not start: {why}\n--- its log ---\n{log}"),
        ));
    }
    let mut pending = pending;
    let dir = pending.dir.take().expect("the folder");
    let watchdog = pending.watchdog.take().expect("the watchdog");
    Ok((dir, port, pid, watchdog))
}

/// A GET over a fresh connection (HTTP/1.1: chromedriver refuses 1.0):
/// the status and the body, read up to its `Content-Length`.
fn http_get(address: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            });
            if n == 0 || length.is_some_and(|len| body.len() >= len) {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| io::Error::other(format!("not HTTP: {head:?}")))?;
                return Ok((status, body.to_string()));
            }
        }
        if n == 0 {
            return Err(io::Error::other(format!("not HTTP: {text:?}")));
        }
    }
}

/// Where the tests put their screenshots: `target/screenshots/` of the
/// workspace whose member crate is at `manifest_dir` (pass
/// `env!("CARGO_MANIFEST_DIR")`), or of `CARGO_TARGET_DIR` when set.
pub fn screenshots_dir(manifest_dir: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(manifest_dir).join("../../target"));
    target.join("screenshots")
}
