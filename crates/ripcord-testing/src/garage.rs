//! A real S3 server for the tests: Garage, single node, on free ports of
//! 127.0.0.1, with its metadata and data in a temporary folder.
//!
//! [`Garage::start`] runs the `garage` binary (on PATH or in
//! `~/.cargo/bin`, where `scripts/test` installs it with `cargo install`),
//! lays out the one node, and imports one access key. Each test makes its
//! own bucket ([`Garage::bucket`]). [`Garage::stop`] and
//! [`Garage::restart`] take the server down and bring it back on the same
//! ports and data, for tests of an outage in the middle of an operation.
//!
//! Cleanup does not depend on destructors alone: a watchdog shell holds
//! the read end of a pipe whose write end only the test process holds; when
//! the test process ends in any way, the watchdog kills the server whose
//! pid is in the folder and removes the folder.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::pg::{alive, free_port};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The access key every test server has (Garage's key id format: `GK` and
/// 24 hex digits; the secret is 64 hex digits).
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
pub const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
pub const REGION: &str = "garage";

/// `$1` is the folder. Prints its own pid; EOF on stdin kills the server
/// whose pid is in `$1/pid` and removes the folder.
const WATCHDOG: &str = r#"
root=$1
echo "$$"
finish() {
    if [ -f "$root/pid" ]; then kill -KILL "$(cat "$root/pid")" 2>/dev/null; fi
    rm -rf "$root"
    exit 0
}
trap finish HUP TERM
while read -r line; do :; done
finish
"#;

/// A running single-node Garage. Dropping it kills the server and removes
/// its folder.
pub struct Garage {
    dir: tempfile::TempDir,
    bin: PathBuf,
    s3_port: u16,
    server: Option<Child>,
    watchdog: Option<Child>,
}

impl Garage {
    /// Starts a server and waits until it serves S3 requests. Fails with
    /// [`io::ErrorKind::NotFound`] and what to install when there is no
    /// `garage` binary.
    pub fn start() -> io::Result<Garage> {
        let bin = find_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("ripcord-garage-")
            .tempdir()?;
        let root = dir.path();
        let (s3_port, rpc_port, admin_port) = (free_port()?, free_port()?, free_port()?);
        let secret = crate::data::random_bytes(rpc_port as u64, 32)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        std::fs::write(
            root.join("garage.toml"),
            format!(
                "metadata_dir = \"{root}/meta\"\ndata_dir = \"{root}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin_port}\"\nadmin_token = \"{secret}\"\n",
                root = root.display()
            ),
        )?;
        // Its first line says it is watching.
        let (watchdog, _) = crate::watchdog::spawn(
            crate::watchdog::command(WATCHDOG, "garage-watchdog").arg(root),
        )?;
        let mut garage = Garage {
            dir,
            bin,
            s3_port,
            server: None,
            watchdog: Some(watchdog),
        };
        garage.launch()?;
        garage.wait_for(&["status"])?;
        let node = garage.cli(&["node", "id", "-q"])?;
        let node = String::from_utf8_lossy(&node.stdout);
        let node = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
        garage.cli(&["layout", "apply", "--version", "1"])?;
        garage.cli(&[
            "key",
            "import",
            "--yes",
            "-n",
            "ripcord-tests",
            KEY_ID,
            SECRET,
        ])?;
        Ok(garage)
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Creates `name` and lets the test key read and write it.
    pub fn bucket(&self, name: &str) -> io::Result<()> {
        self.wait_for(&["bucket", "create", name])?;
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", KEY_ID,
        ])?;
        Ok(())
    }

    /// `[repository.s3]` for this server, to append to a ripcord.toml.
    pub fn config_toml(&self) -> String {
        format!(
            "[repository.s3]\nendpoint = \"{}\"\nregion = \"{REGION}\"\naccess_key_id = \"{KEY_ID}\"\n\
             secret_access_key = \"{SECRET}\"\npath_style = true\nretries = 3\nretry_timeout = \"10s\"\n",
            self.endpoint()
        )
    }

    /// The same settings as environment variables, for tools such as restic.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_REGION", REGION.into()),
        ]
    }

    /// Kills the server (SIGKILL): an outage, not a shutdown.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.launch()?;
        self.wait_for(&["status"])?;
        // Ready once a bucket listing answers through the S3 port.
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            if started.elapsed() > START_TIMEOUT {
                return Err(io::Error::other("garage's S3 port did not open again"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn launch(&mut self) -> io::Result<()> {
        let root = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("garage.log"))?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(root.join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()?;
        std::fs::write(root.join("pid"), child.id().to_string())?;
        self.server = Some(child);
        Ok(())
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("-c").arg(self.dir.path().join("garage.toml"));
        c
    }

    /// Runs a `garage` CLI command against the server; an error carries
    /// its output and the server's log.
    fn cli(&self, args: &[&str]) -> io::Result<Output> {
        let out = self.command().args(args).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "garage {}: {}{}\nserver log:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            )));
        }
        Ok(out)
    }

    /// Retries a CLI command while the server boots.
    fn wait_for(&self, args: &[&str]) -> io::Result<Output> {
        let started = Instant::now();
        loop {
            match self.cli(args) {
                Ok(out) => return Ok(out),
                Err(e) if started.elapsed() > START_TIMEOUT => return Err(e),
                Err(_) => {
                    if let Some(pid) = self.server.as_ref().map(|c| c.id()) {
                        if !alive(pid) {
                            return Err(io::Error::other(format!(
                                "garage exited while starting:\n{}",
                                self.log()
                            )));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
        // EOF on the watchdog's stdin: it removes the folder.
        if let Some(mut w) = self.watchdog.take() {
            drop(w.stdin.take());
            let _ = w.wait();
        }
    }
}

/// `garage` on PATH, or where `cargo install` puts it.
fn find_binary() -> io::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("garage"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME").or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").into_os_string())
    }) {
        candidates.push(PathBuf::from(home).join("bin/garage"));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no garage binary: `cargo install garage --locked` (scripts/test does it) installs it",
        )
    })
}

/// One server for the whole test process, with the bucket [`SHARED_BUCKET`];
/// tests keep apart by prefix ([`fresh_url`]). Tests that stop the server
/// start their own with [`Garage::start`].
pub fn shared() -> &'static Garage {
    static SHARED: std::sync::OnceLock<Garage> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let g = Garage::start().unwrap_or_else(|e| panic!("cannot start garage: {e}"));
        g.bucket(SHARED_BUCKET)
            .unwrap_or_else(|e| panic!("cannot create the test bucket: {e}"));
        g
    })
}

pub const SHARED_BUCKET: &str = "ripcord-tests";

/// An `s3://` URL under a prefix no other test of any process uses.
pub fn fresh_url(name: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("s3://{SHARED_BUCKET}/{name}-{}-{n}", std::process::id())
}
