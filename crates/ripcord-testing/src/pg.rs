//! Throwaway PostgreSQL clusters.
//!
//! [`PgCluster::start`] runs `initdb` and `postgres` in a temporary folder and
//! listens on a free port of 127.0.0.1 (never 5432) and on a Unix socket in
//! that folder. [`shared`] gives one cluster per test process; tests isolate
//! themselves with [`PgCluster::create_database`].
//!
//! Logins: user [`USER`], trusted on the Unix socket, password [`PASSWORD`]
//! (SCRAM) over TCP.
//!
//! When the tests run as root, the server runs as the `postgres` system user,
//! because PostgreSQL refuses to run as root.
//!
//! Cleanup does not depend on destructors: a watchdog shell holds the read end
//! of a pipe whose write end only the test process holds. When the cluster is
//! dropped, or the process exits or dies (statics are never dropped, a killed
//! process runs nothing), the pipe reaches EOF and the watchdog stops the
//! server and removes the folder.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls, SimpleQueryMessage};

/// The superuser of every cluster.
pub const USER: &str = "postgres";
/// The password of [`USER`], required over TCP.
pub const PASSWORD: &str = "postgres-test-password";

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs as the server's user. `$1` is the cluster folder, the rest the
/// postgres command line. The line "start" launches the server and prints its
/// pid; EOF on stdin stops it (immediate mode: the data is thrown away
/// anyway) and removes the folder. The watchdog is the postmaster's parent,
/// so the pid cannot be reused before the watchdog reaps it. A killed
/// postmaster leaves its SysV shared memory segment behind: `finish` removes
/// it, its id is the second field of line 7 of the pid file.
const WATCHDOG: &str = r#"
root=$1
shift
pg=
finish() {
    if [ -n "$pg" ]; then
        kill -QUIT "$pg" 2>/dev/null
        wait "$pg"
        if [ -f "$root/data/postmaster.pid" ]; then
            set -- $(sed -n 7p "$root/data/postmaster.pid")
            [ -n "${2:-}" ] && ipcrm -m "$2" 2>/dev/null
        fi
    fi
    rm -rf "$root"
    exit 0
}
trap finish HUP TERM
if read -r line && [ "$line" = start ]; then
    "$@" </dev/null >>"$root/server.log" 2>&1 &
    pg=$!
    echo "$pg"
    while read -r line; do :; done
fi
finish
"#;

/// A running PostgreSQL server and its temporary folder. Dropping it stops
/// the server and removes the folder.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    pid: u32,
    watchdog: Option<Child>,
}

/// The cluster of this test process, started on first use and stopped when
/// the process exits. Do not [`stop`](PgCluster::stop) or
/// [`kill`](PgCluster::kill) it: it is not restarted, so the tests after would
/// fail. Tests that stop or kill the server start their own with
/// [`PgCluster::start`].
pub fn shared() -> &'static PgCluster {
    static SHARED: OnceLock<PgCluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        PgCluster::start().unwrap_or_else(|e| panic!("start the shared PostgreSQL cluster: {e}"))
    })
}

#[derive(Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

impl PgCluster {
    /// Creates and starts a new cluster, and waits until it accepts logins.
    pub fn start() -> io::Result<PgCluster> {
        let bin = find_bin_dir()?;
        let owner = if euid()? == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        // The free port may be taken by someone else before the server binds
        // it; then try another.
        let mut attempt = 1;
        loop {
            match PgCluster::start_once(&bin, owner) {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < 3 => attempt += 1,
                result => return result,
            }
        }
    }

    fn start_once(bin: &Path, owner: Option<Owner>) -> io::Result<PgCluster> {
        let dir = tempfile::Builder::new()
            .prefix("ripcord-pg-")
            .tempdir_in(base_dir(owner))?;
        let root = dir.path();
        let sock = root.join("sock");
        std::fs::create_dir(&sock)?;
        let pwfile = root.join("pwfile");
        std::fs::write(&pwfile, format!("{PASSWORD}\n"))?;
        if let Some(o) = owner {
            for path in [root, &sock, &pwfile] {
                std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))?;
            }
        }
        let port = free_port()?;

        // The watchdog comes first, so that the folder is removed even if
        // this process dies during initdb.
        let mut watchdog = crate::watchdog::command(WATCHDOG, "pg-watchdog");
        watchdog
            .arg(root)
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(root.join("data"))
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&sock)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "synchronous_commit=off"])
            .args(["-c", "max_connections=100"]);
        let mut cluster = PgCluster {
            watchdog: Some(as_owner(&mut watchdog, owner, root).spawn()?),
            dir,
            bin: bin.to_path_buf(),
            port,
            pid: 0,
        };
        let root = cluster.dir.path();

        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(root.join("data"))
            .args(["-U", USER])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .args(["--locale=C", "--encoding=UTF8", "--no-sync"]);
        let out = as_owner(&mut initdb, owner, root).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        std::fs::remove_file(&pwfile)?;

        cluster.pid = cluster.launch()?;
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Asks the watchdog to start the server; returns the postmaster's pid.
    fn launch(&mut self) -> io::Result<u32> {
        let watchdog = self.watchdog.as_mut().expect("watchdog");
        let stdin = watchdog.stdin.as_mut().expect("watchdog stdin");
        stdin.write_all(b"start\n")?;
        stdin.flush()?;
        let mut line = String::new();
        BufReader::new(watchdog.stdout.take().expect("watchdog stdout")).read_line(&mut line)?;
        line.trim()
            .parse()
            .map_err(|_| io::Error::other(format!("the watchdog printed {line:?}, not a pid")))
    }

    fn wait_ready(&self) -> io::Result<()> {
        let started = Instant::now();
        loop {
            let err = match self
                .config("postgres")
                .connect_timeout(Duration::from_secs(5))
                .connect(NoTls)
            {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let why = if !self.is_running() {
                format!("the server exited (last login attempt: {err})")
            } else if started.elapsed() > START_TIMEOUT {
                format!("no login within {START_TIMEOUT:?}: {err}")
            } else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let kind = if log.contains("could not bind") {
                io::ErrorKind::AddrInUse
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(
                kind,
                format!(
                    "PostgreSQL on port {} did not start: {why}\n--- {} ---\n{log}",
                    self.port,
                    self.log_path().display()
                ),
            ));
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder of the Unix socket (for `psql -h`, `PGHOST`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The folder of `initdb`, `pg_dump`, `psql`... of the server's version.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The postmaster's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A URL with the password, over TCP, for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// The connection settings of [`url`](Self::url).
    pub fn config(&self, db: &str) -> Config {
        let mut config = Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(USER)
            .password(PASSWORD)
            .dbname(db);
        config
    }

    /// Connects to `db` over TCP. Panics on failure.
    pub fn client(&self, db: &str) -> Client {
        self.config(db)
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url(db)))
    }

    /// Runs `sql` (one or more statements) in `db` and returns the rows of
    /// all statements, as text. Panics on failure.
    pub fn psql(&self, db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        let messages = self
            .client(db)
            .simple_query(sql)
            .unwrap_or_else(|e| panic!("in database {db}: {sql}: {}", error_text(&e)));
        messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    /// Like [`psql`](Self::psql), each row's columns joined with `|`, NULL
    /// as empty: easy to compare with expected text.
    pub fn rows(&self, db: &str, sql: &str) -> Vec<String> {
        self.psql(db, sql)
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(Option::unwrap_or_default)
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    /// Creates a database named after `name` plus a random suffix, so that
    /// tests sharing a cluster do not collide. Returns the name, which needs
    /// no quoting in SQL or URLs.
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        let mut base: String = name
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '_') => c,
                _ => '_',
            })
            .collect();
        // Identifiers longer than 63 bytes are silently truncated.
        base.truncate(50);
        let db = format!("{base}_{:08x}", rand::random::<u32>());
        self.execute("postgres", &format!("CREATE DATABASE {db}"))?;
        Ok(db)
    }

    /// Drops a database, disconnecting its sessions. Missing is fine.
    pub fn drop_database(&self, name: &str) -> io::Result<()> {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        self.execute(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"),
        )
    }

    fn execute(&self, db: &str, sql: &str) -> io::Result<()> {
        let run = || self.config(db).connect(NoTls)?.batch_execute(sql);
        run().map_err(|e| io::Error::other(format!("{sql}: {}", error_text(&e))))
    }

    /// Whether the postmaster is still running.
    pub fn is_running(&self) -> bool {
        alive(self.pid)
    }

    /// Stops the server (fast shutdown: sessions are disconnected) and waits
    /// until it has exited. The folder stays until the cluster is dropped.
    pub fn stop(&self) {
        self.signal("INT");
    }

    /// Kills the postmaster with SIGKILL, like a crash, and waits until it
    /// is gone; its backends exit on their own soon after. For "the server
    /// dies mid-operation" tests, which must use their own cluster: a killed
    /// [`shared`] cluster is not restarted.
    pub fn kill(&self) {
        self.signal("KILL");
    }

    fn signal(&self, signal: &str) {
        if !self.is_running() {
            return;
        }
        // The server may belong to another user: only root may signal it,
        // which is what this process is then.
        let _ = Command::new("/bin/sh")
            .args(["-c", "kill -s \"$1\" \"$2\"", "kill"])
            .args([signal, &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let started = Instant::now();
        while self.is_running() {
            assert!(
                started.elapsed() < STOP_TIMEOUT,
                "PostgreSQL (pid {}) still runs {STOP_TIMEOUT:?} after SIG{signal}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            // EOF makes the watchdog stop the server and remove the folder.
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
        // The TempDir removes whatever the watchdog could not.
    }
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("pid", &self.pid)
            .finish()
    }
}

/// The server's message (postgres::Error's Display only says "db error").
fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// Runs `cmd` as `owner` (when set) in `dir`.
fn as_owner<'a>(cmd: &'a mut Command, owner: Option<Owner>, dir: &Path) -> &'a mut Command {
    if let Some(o) = owner {
        cmd.uid(o.uid).gid(o.gid);
    }
    // The test's working folder may be closed to the server's user; English
    // messages, to recognise "could not bind".
    cmd.current_dir(dir).env("LC_ALL", "C")
}

/// Whether `pid` runs; a zombie (exited, not yet reaped) does not.
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// The newest `/usr/lib/postgresql/*/bin` (Debian, Ubuntu), else
/// `pg_config --bindir`, else the `initdb` on PATH.
fn find_bin_dir() -> io::Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let mut newest: Option<(Vec<u32>, PathBuf)> = None;
    for entry in std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name();
        // "15", or "9.6" before PostgreSQL 10.
        let Some(version) = name.to_str().and_then(|v| {
            v.split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<Vec<u32>>>()
        }) else {
            continue;
        };
        let bin = entry.path().join("bin");
        if has_server(&bin) && newest.as_ref().is_none_or(|(v, _)| version > *v) {
            newest = Some((version, bin));
        }
    }
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&bin) {
            return Ok(bin);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| has_server(dir))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no PostgreSQL server (initdb, postgres) in /usr/lib/postgresql/*/bin, \
                 pg_config --bindir or PATH; install it: apt-get install postgresql",
            )
        })
}

/// Where the cluster folder goes: the temp dir, unless the server's user
/// cannot reach it or it is too long for a Unix socket path (~107 bytes).
fn base_dir(owner: Option<Owner>) -> PathBuf {
    let tmp = std::env::temp_dir();
    let reachable = |dir: &Path| {
        dir.ancestors().all(|a| {
            a.metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
        })
    };
    if tmp.as_os_str().len() <= 60 && (owner.is_none() || reachable(&tmp)) {
        tmp
    } else {
        PathBuf::from("/tmp")
    }
}

pub(crate) fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The effective uid, without unsafe code.
fn euid() -> io::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| io::Error::other("no Uid line in /proc/self/status"))
}

/// The `postgres` system user, created when missing (the server packages
/// create it, a bare machine may not have it).
fn postgres_user() -> io::Result<Owner> {
    if let Some(owner) = lookup_user(USER) {
        return Ok(owner);
    }
    for useradd in ["useradd", "/usr/sbin/useradd"] {
        // Parallel tests may race to create it: look it up again either way.
        let _ = Command::new(useradd)
            .args(["--system", "--no-create-home", USER])
            .stderr(Stdio::null())
            .status();
        if let Some(owner) = lookup_user(USER) {
            return Ok(owner);
        }
    }
    Err(io::Error::other(
        "running as root, and there is no `postgres` user to run PostgreSQL as \
         (useradd --system --no-create-home postgres failed)",
    ))
}

fn lookup_user(name: &str) -> Option<Owner> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id")
            .args([flag, name])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then_some(())?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    let owner = Owner {
        uid: id("-u")?,
        gid: id("-g")?,
    };
    // Never "drop" root privileges to root.
    (owner.uid != 0).then_some(owner)
}
