//! `ripcord serve` started for a test on a free port of 127.0.0.1, with
//! its log kept in the workspace, and tokens of each role.

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Workspace;

pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    log: std::path::PathBuf,
}

impl Server {
    /// Starts `ripcord serve --listen 127.0.0.1:0 ARGS` in `ws` and waits
    /// until it listens.
    pub fn start(ws: &Workspace, args: &[&str]) -> Server {
        Server::start_env(ws, args, &[])
    }

    pub fn start_env(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let log = ws.path(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let mut cmd = ws.command(&all);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create the server's log"))
            .spawn()
            .expect("start ripcord serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep reading so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "ripcord serve did not start listening; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line of serve: {line}"))
            .to_string();
        Server { child, url, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to standard error.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`, and waits for it to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `within` for it to exit.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A new token of `role` named `name` (`ripcord token add -q`).
pub fn token(ws: &Workspace, name: &str, role: &str) -> String {
    let out = ws.ok(&["token", "add", "--name", name, "--role", role, "-q"]);
    out.stdout.trim().to_string()
}
