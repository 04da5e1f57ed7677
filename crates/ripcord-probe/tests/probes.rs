//! Probes against real things: an HTTP server on 127.0.0.1, a SQLite file,
//! a PostgreSQL cluster started for the test, and shell commands.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ripcord_core::config::runbook::{Probe, ProbeKind};
use ripcord_core::config::Config;

/// An HTTP server that answers the n-th request with `statuses[n]` (the
/// last one from then on); returns its URL and the request count.
fn server(statuses: Vec<u16>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let status = statuses[n.min(statuses.len() - 1)];
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, count)
}

fn probe(what: ProbeKind, retries: u32) -> Probe {
    Probe {
        what,
        retries,
        every: Duration::from_millis(50),
    }
}

fn never() -> bool {
    false
}

#[test]
fn http_retries_until_the_status_is_right() {
    let (url, count) = server(vec![503, 503, 200]);
    let p = probe(ProbeKind::Http { url, expect: 200 }, 5);
    let out = ripcord_probe::run(&p, &Config::default(), None, &never);
    assert!(out.ok, "{out:?}");
    assert_eq!(out.attempts.len(), 3);
    assert_eq!(out.attempts[0].observed, "HTTP 503");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn http_fails_when_retries_are_spent_and_says_what_it_saw() {
    let (url, _) = server(vec![500]);
    let p = probe(ProbeKind::Http { url, expect: 200 }, 2);
    let out = ripcord_probe::run(&p, &Config::default(), None, &never);
    assert!(!out.ok);
    assert_eq!(out.attempts.len(), 3);
    assert_eq!(out.last().observed, "HTTP 500");
    assert_eq!(out.last().expected, "HTTP 200");
}

#[test]
fn http_without_a_server_is_a_failure_not_a_hang() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = probe(
        ProbeKind::Http {
            url: format!("http://127.0.0.1:{port}/"),
            expect: 200,
        },
        0,
    );
    let out = ripcord_probe::run(&p, &Config::default(), Some(Duration::from_secs(2)), &never);
    assert!(!out.ok);
    assert!(out.last().observed.starts_with("no answer"), "{out:?}");
}

#[test]
fn a_stop_request_ends_the_retries() {
    let (url, count) = server(vec![503]);
    let p = probe(ProbeKind::Http { url, expect: 200 }, 100);
    let out = ripcord_probe::run(&p, &Config::default(), None, &|| true);
    assert!(!out.ok);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

fn config(text: &str) -> Config {
    Config::from_toml_str(text, None, &[]).unwrap()
}

#[test]
fn sql_on_sqlite_compares_the_first_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE orders (id INTEGER); INSERT INTO orders VALUES (1), (2);")
        .unwrap();
    let c = config(&format!(
        "[targets.app]\nkind = \"sqlite\"\npath = {:?}\n",
        db.display().to_string()
    ));
    let sql = |query: &str, expect: &str| {
        ripcord_probe::attempt(
            &ProbeKind::Sql {
                target: "app".into(),
                query: query.into(),
                expect: expect.into(),
            },
            &c,
            Duration::from_secs(5),
        )
    };
    assert!(sql("SELECT count(*) FROM orders", "2").ok);
    let wrong = sql("SELECT count(*) > 5 FROM orders", "1");
    assert!(!wrong.ok);
    assert_eq!(wrong.observed, "returned \"0\"");
    let broken = sql("SELECT * FROM nope", "1");
    assert!(broken.observed.contains("no such table"), "{broken:?}");
    // Read-only: a probe cannot change the database.
    let write = sql("DELETE FROM orders RETURNING 1", "1");
    assert!(!write.ok, "{write:?}");
    let left: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 2);
}

#[test]
fn sql_on_postgres_is_read_only_and_bounded() {
    let c = ripcord_testing::pg::shared();
    let db = c.create_database("probe").unwrap();
    c.psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let cfg = config(&format!(
        "[targets.pg]\nkind = \"postgres\"\nurl = {:?}\n",
        c.url(&db)
    ));
    let sql = |query: &str, expect: &str, timeout: Duration| {
        ripcord_probe::attempt(
            &ProbeKind::Sql {
                target: "pg".into(),
                query: query.into(),
                expect: expect.into(),
            },
            &cfg,
            timeout,
        )
    };
    let t = Duration::from_secs(5);
    assert!(sql("SELECT count(*) FROM t", "1", t).ok);
    assert!(sql("SELECT count(*) > 0 FROM t", "t", t).ok);
    let write = sql("DELETE FROM t RETURNING 1", "1", t);
    assert!(write.observed.contains("read-only"), "{write:?}");
    let start = Instant::now();
    let slow = sql("SELECT pg_sleep(30)", "", Duration::from_millis(500));
    assert!(slow.observed.contains("statement timeout"), "{slow:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(
        c.psql(&db, "SELECT count(*) FROM t")[0][0].as_deref(),
        Some("1")
    );
    c.drop_database(&db).ok();
}

#[test]
fn commands_by_exit_code_with_a_time_limit() {
    let c = Config::default();
    let t = Duration::from_secs(5);
    let ok = ripcord_probe::attempt(
        &ProbeKind::Command {
            run: "true".into(),
            expect: 0,
        },
        &c,
        t,
    );
    assert!(ok.ok);
    let bad = ripcord_probe::attempt(
        &ProbeKind::Command {
            run: "echo degraded; exit 2".into(),
            expect: 0,
        },
        &c,
        t,
    );
    assert_eq!(bad.observed, "exit 2: degraded");
    let start = Instant::now();
    let hang = ripcord_probe::attempt(
        &ProbeKind::Command {
            run: "sleep 30".into(),
            expect: 0,
        },
        &c,
        Duration::from_millis(300),
    );
    assert!(
        !hang.ok && hang.observed.contains("still running"),
        "{hang:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}
