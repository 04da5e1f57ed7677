//! The throwaway PostgreSQL cluster: logins, databases, crashes, cleanup.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, NoTls};
use ripcord_testing::pg::{self, PgCluster, PASSWORD, USER};

/// Set for the child process of `watchdog_removes_the_cluster_of_a_killed_process`.
const CHILD_ENV: &str = "RIPCORD_PG_WATCHDOG_CHILD";

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The SysV shared memory id from line 7 of postmaster.pid.
fn shm_id(data_dir: &Path) -> String {
    let pidfile = std::fs::read_to_string(data_dir.join("postmaster.pid")).unwrap();
    let line = pidfile.lines().nth(6).expect("line 7 of postmaster.pid");
    line.split_whitespace().nth(1).expect("shmid").to_owned()
}

fn shm_exists(id: &str) -> bool {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    table
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1) == Some(id))
}

#[test]
fn password_login_over_tcp() {
    let pg = pg::shared();
    assert_ne!(pg.port(), 5432);
    assert!(pg.bin_dir().join("pg_dump").is_file());

    let mut client = Client::connect(&pg.url("postgres"), NoTls).unwrap();
    let row = client
        .query_one(
            "SELECT current_user::text, inet_server_port(), current_setting('fsync')",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), USER);
    assert_eq!(row.get::<_, i32>(1), i32::from(pg.port()));
    assert_eq!(row.get::<_, String>(2), "off");

    let wrong = pg.url("postgres").replace(PASSWORD, "wrong-password");
    let Err(err) = Client::connect(&wrong, NoTls) else {
        panic!("logged in with a wrong password");
    };
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");

    let mut no_password = pg.config("postgres");
    no_password.password("");
    assert!(no_password.connect(NoTls).is_err());
}

#[test]
fn trusted_login_over_the_unix_socket() {
    let pg = pg::shared();
    let mut client = postgres::Config::new()
        .host_path(pg.socket_dir())
        .port(pg.port())
        .user(USER)
        .dbname("postgres")
        .connect(NoTls)
        .unwrap();
    let row = client.query_one("SELECT 1 + 1", &[]).unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);

    // psql from the same installation, as pg_dump would connect.
    let out = Command::new(pg.bin_dir().join("psql"))
        .args([
            "-X",
            "-At",
            "-U",
            USER,
            "-d",
            "postgres",
            "-c",
            "SELECT 40 + 2",
        ])
        .arg("-h")
        .arg(pg.socket_dir())
        .arg("-p")
        .arg(pg.port().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

#[test]
fn databases_are_separate_and_uniquely_named() {
    let pg = pg::shared();
    let a = pg.create_database("Test DB-a").unwrap();
    let b = pg.create_database("Test DB-a").unwrap();
    assert_ne!(a, b);
    assert!(a.starts_with("test_db_a_"), "{a}");

    pg.psql(&a, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)");
    let rows = pg.psql(&a, "SELECT x FROM t ORDER BY x");
    assert_eq!(rows, [[Some("1".to_owned())], [Some("2".to_owned())]]);
    let rows = pg.psql(&b, "SELECT count(*) FROM pg_tables WHERE tablename = 't'");
    assert_eq!(rows, [[Some("0".to_owned())]]);

    let mut client = pg.client(&b);
    client.batch_execute("CREATE TABLE u (y text)").unwrap();
    // An open session does not prevent the drop.
    pg.drop_database(&b).unwrap();
    pg.drop_database(&a).unwrap();
    pg.drop_database(&a).unwrap();
    let left = pg.psql(
        "postgres",
        &format!("SELECT datname FROM pg_database WHERE datname IN ('{a}', '{b}')"),
    );
    assert!(left.is_empty(), "{left:?}");
}

#[test]
#[should_panic(expected = "does_not_exist")]
fn psql_panics_with_the_server_message() {
    pg::shared().psql("postgres", "SELECT * FROM does_not_exist");
}

#[test]
fn killed_cluster_refuses_connections_and_is_cleaned_up() {
    let pg = PgCluster::start().unwrap();
    let root = pg.data_dir().parent().unwrap().to_path_buf();
    let mut session = pg.client("postgres");
    let shm = shm_id(&pg.data_dir());
    assert!(shm_exists(&shm));

    pg.kill();
    assert!(!pg.is_running());
    assert!(Client::connect(&pg.url("postgres"), NoTls).is_err());
    assert!(!port_open(pg.port()));
    // The session's backend notices its postmaster died.
    assert!(wait_until(Duration::from_secs(30), || session
        .simple_query("SELECT 1")
        .is_err()));

    let port = pg.port();
    drop(pg);
    assert!(!root.exists());
    assert!(!port_open(port));
    assert!(!shm_exists(&shm), "SysV segment {shm} left behind");
}

#[test]
fn stopped_cluster_refuses_connections_and_drop_removes_it() {
    let pg = PgCluster::start().unwrap();
    let root = pg.data_dir().parent().unwrap().to_path_buf();
    assert!(pg.data_dir().join("PG_VERSION").is_file());
    assert!(pg.is_running());

    pg.stop();
    assert!(!pg.is_running());
    assert!(Client::connect(&pg.url("postgres"), NoTls).is_err());
    assert!(pg.data_dir().exists(), "stop keeps the folder until drop");

    drop(pg);
    assert!(!root.exists());

    // Dropping a running cluster stops it.
    let pg = PgCluster::start().unwrap();
    let (root, port) = (pg.data_dir().parent().unwrap().to_path_buf(), pg.port());
    drop(pg);
    assert!(!root.exists());
    assert!(!port_open(port));
}

/// Not a test by itself: the child process of the next test.
#[test]
fn watchdog_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let pg = pg::shared();
    println!("cluster {} {}", pg.port(), pg.data_dir().display());
    // Killed by the parent; if it is not, exit without destructors.
    std::thread::sleep(Duration::from_secs(120));
    std::process::exit(0);
}

#[test]
fn watchdog_removes_the_cluster_of_a_killed_process() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "watchdog_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // libtest prints "test watchdog_child ... " before it on the same line.
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .find_map(|l| Some(l.split_once("cluster ")?.1.to_owned()))
        .expect("the child's cluster");
    let mut fields = line.split(' ');
    let port: u16 = fields.next().unwrap().parse().unwrap();
    let data_dir = PathBuf::from(fields.next().unwrap());
    assert!(data_dir.join("PG_VERSION").is_file());
    assert!(port_open(port));

    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    let root = data_dir.parent().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || !root.exists()
            && !port_open(port)),
        "{} or port {port} left behind",
        root.display()
    );
}
