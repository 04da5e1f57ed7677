//! The guard's measurements against real things: an HTTP server on
//! 127.0.0.1, a SQLite file, a PostgreSQL cluster started for the test,
//! shell commands, and a Prometheus server scraping an exporter of the test.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ripcord_core::config::guard::Measure;
use ripcord_core::config::Config;
use ripcord_probe::{measure, Measurement};
use ripcord_testing::prometheus::{Exporter, Prometheus};

const T: Duration = Duration::from_secs(5);

/// What the test server answers.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    /// Before the status line.
    delay: Duration,
    /// Between the headers and the body.
    body_delay: Duration,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.to_string(),
        delay: Duration::ZERO,
        body_delay: Duration::ZERO,
    }
}

/// An HTTP server that answers every request with the current reply;
/// returns its URL (`http://127.0.0.1:PORT`) and the reply to change.
fn server(first: Reply) -> (String, Arc<Mutex<Reply>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let current = Arc::new(Mutex::new(first));
    let state = current.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let r = state.lock().unwrap().clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                std::thread::sleep(r.delay);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n",
                    r.status,
                    r.body.len()
                );
                let _ = stream.flush();
                std::thread::sleep(r.body_delay);
                let _ = stream.write_all(r.body.as_bytes());
            });
        }
    });
    (url, current)
}

fn http(url: &str, json: Option<&str>, expect: Option<u16>) -> Measure {
    Measure::Http {
        url: url.to_string(),
        json: json.map(str::to_string),
        expect,
    }
}

fn take(m: &Measure) -> Measurement {
    measure(m, &Config::default(), T)
}

/// A port of 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn http_passes_on_2xx_or_the_expected_status_and_gives_the_status() {
    let (url, reply_with) = server(reply(200, "{}"));
    let m = take(&http(&url, None, None));
    assert!(m.ok, "{m:?}");
    assert_eq!(m.value, Some(200.0));
    assert!(m.observed.starts_with("HTTP 200 in "), "{m:?}");
    assert!(m.observed.ends_with(" ms"), "{m:?}");

    *reply_with.lock().unwrap() = reply(503, "{}");
    let m = take(&http(&url, None, None));
    assert!(!m.ok, "{m:?}");
    assert_eq!(m.value, Some(503.0));
    assert!(m.observed.starts_with("HTTP 503 in "), "{m:?}");
    assert!(take(&http(&url, None, Some(503))).ok);
    assert!(!take(&http(&url, None, Some(200))).ok);

    *reply_with.lock().unwrap() = reply(204, "");
    assert!(take(&http(&url, None, None)).ok);
    // A redirect is the endpoint's answer: it is not followed, and not 2xx.
    *reply_with.lock().unwrap() = reply(302, "");
    let m = take(&http(&url, None, None));
    assert!(!m.ok && m.value == Some(302.0), "{m:?}");
}

#[test]
fn http_reads_the_number_at_a_json_pointer() {
    let body = r#"{"db": {"lag": [3, 2.5]}, "up": true, "down": false, "count": "42",
        "state": "degraded", "none": null, "obj": {"x": 1}, "a/b": 7}"#;
    let (url, reply_with) = server(reply(200, body));
    let value = |pointer: &str| {
        let m = take(&http(&url, Some(pointer), None));
        assert!(m.ok, "{m:?}");
        m
    };
    let m = value("/db/lag/1");
    assert_eq!(m.value, Some(2.5));
    assert!(m.observed.ends_with(" ms, /db/lag/1 = 2.5"), "{m:?}");
    assert_eq!(value("/db/lag/0").value, Some(3.0));
    assert_eq!(value("/up").value, Some(1.0));
    assert_eq!(value("/down").value, Some(0.0));
    assert_eq!(value("/count").value, Some(42.0));
    assert_eq!(value("/a~1b").value, Some(7.0));

    let m = value("/state");
    assert_eq!(m.value, None);
    assert!(
        m.observed.ends_with(r#"/state = "degraded", not a number"#),
        "{m:?}"
    );
    assert_eq!(value("/none").value, None);
    assert_eq!(value("/obj").value, None);
    let m = value("/missing");
    assert_eq!(m.value, None);
    assert!(m.observed.ends_with("/missing not found"), "{m:?}");

    // A failing status still says its number; whether it passed is the status.
    *reply_with.lock().unwrap() = reply(503, r#"{"lag": 90}"#);
    let m = take(&http(&url, Some("/lag"), None));
    assert!(!m.ok);
    assert_eq!(m.value, Some(90.0));

    *reply_with.lock().unwrap() = reply(200, "<html>ok</html>");
    let m = take(&http(&url, Some("/lag"), None));
    assert!(m.ok);
    assert_eq!(m.value, None);
    assert!(m.observed.ends_with("body is not JSON"), "{m:?}");
}

#[test]
fn http_latency_is_measured_and_bounded_by_the_timeout() {
    let (url, reply_with) = server(Reply {
        delay: Duration::from_millis(300),
        ..reply(200, "{}")
    });
    let m = take(&http(&url, None, None));
    assert!(m.ok, "{m:?}");
    assert!(
        m.latency_ms >= 300.0 && m.latency_ms < 3000.0,
        "{}",
        m.latency_ms
    );

    // Too slow to answer.
    reply_with.lock().unwrap().delay = Duration::from_secs(5);
    let start = Instant::now();
    let m = measure(
        &http(&url, None, None),
        &Config::default(),
        Duration::from_millis(500),
    );
    assert!(!m.ok && m.value.is_none(), "{m:?}");
    assert!(m.observed.starts_with("no answer: "), "{m:?}");
    assert!(start.elapsed() < Duration::from_secs(3));

    // The status comes at once, the body too late: the deadline covers the body.
    *reply_with.lock().unwrap() = Reply {
        body_delay: Duration::from_secs(5),
        ..reply(200, r#"{"lag": 1}"#)
    };
    let start = Instant::now();
    let m = measure(
        &http(&url, Some("/lag"), None),
        &Config::default(),
        Duration::from_millis(500),
    );
    assert!(!m.ok && m.value.is_none(), "{m:?}");
    assert!(m.observed.starts_with("no answer: "), "{m:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(m.latency_ms < 3000.0);
}

#[test]
fn http_without_a_server_is_no_answer() {
    let url = format!("http://127.0.0.1:{}/health", closed_port());
    let m = take(&http(&url, None, None));
    assert!(!m.ok);
    assert_eq!(m.value, None);
    assert_eq!(m.observed, "no answer: connection refused");
}

fn config(text: &str) -> Config {
    Config::from_toml_str(text, None, &[]).unwrap()
}

fn sql(query: &str) -> Measure {
    Measure::Sql {
        target: "db".into(),
        query: query.into(),
    }
}

#[test]
fn sql_on_sqlite_gives_the_first_value_as_a_number() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER, state TEXT, note TEXT);
         INSERT INTO orders VALUES (1, 'paid', '12.5'), (2, 'open', NULL);",
    )
    .unwrap();
    let c = config(&format!(
        "[targets.db]\nkind = \"sqlite\"\npath = {:?}\n",
        db.display().to_string()
    ));
    let take = |query: &str| measure(&sql(query), &c, T);

    let m = take("SELECT count(*) FROM orders");
    assert!(m.ok);
    assert_eq!(m.value, Some(2.0));
    assert_eq!(m.observed, "returned 2");
    assert_eq!(take("SELECT avg(id) FROM orders").value, Some(1.5));
    // SQLite's booleans are integers.
    assert_eq!(take("SELECT count(*) > 1 FROM orders").value, Some(1.0));
    assert_eq!(take("SELECT true").value, Some(1.0));
    assert_eq!(take("SELECT false").value, Some(0.0));
    // Text that is one number is that number.
    assert_eq!(
        take("SELECT note FROM orders WHERE id = 1").value,
        Some(12.5)
    );

    let null = take("SELECT note FROM orders WHERE id = 2");
    assert!(null.ok);
    assert_eq!((null.value, null.observed.as_str()), (None, "NULL"));
    let none = take("SELECT id FROM orders WHERE id > 10");
    assert!(none.ok);
    assert_eq!((none.value, none.observed.as_str()), (None, "no row"));
    let text = take("SELECT state FROM orders WHERE id = 1");
    assert!(text.ok);
    assert_eq!(text.value, None);
    assert_eq!(text.observed, r#"returned "paid", not a number"#);
    assert_eq!(take("SELECT 'NaN'").value, None);
    assert_eq!(take("SELECT 1e999").value, None);

    let broken = take("SELECT * FROM nope");
    assert!(!broken.ok && broken.value.is_none());
    assert!(broken.observed.contains("no such table"), "{broken:?}");
    let write = take("DELETE FROM orders RETURNING 1");
    assert!(!write.ok, "{write:?}");
    let left: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 2);

    // A query that runs too long is interrupted at the deadline.
    let start = Instant::now();
    let slow = measure(
        &sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
              SELECT count(*) FROM n",
        ),
        &c,
        Duration::from_millis(300),
    );
    assert!(!slow.ok && slow.value.is_none(), "{slow:?}");
    assert!(slow.observed.contains("interrupted"), "{slow:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn sql_on_postgres_types_the_value_and_stays_read_only_and_bounded() {
    let c = ripcord_testing::pg::shared();
    let db = c.create_database("measure").unwrap();
    c.psql(
        &db,
        "CREATE DOMAIN percent AS int; CREATE TABLE t (id int, state text);
         INSERT INTO t VALUES (1, 't');",
    );
    let cfg = config(&format!(
        "[targets.db]\nkind = \"postgres\"\nurl = {:?}\n",
        c.url(&db)
    ));
    let take = |query: &str| measure(&sql(query), &cfg, T);

    let m = take("SELECT count(*) FROM t");
    assert!(m.ok, "{m:?}");
    assert_eq!((m.value, m.observed.as_str()), (Some(1.0), "returned 1"));
    assert_eq!(take("SELECT count(*) > 0 FROM t").value, Some(1.0));
    assert_eq!(take("SELECT false").value, Some(0.0));
    assert_eq!(take("SELECT 2.50::numeric").value, Some(2.5));
    assert_eq!(take("SELECT 0.25::float4").value, Some(0.25));
    assert_eq!(take("SELECT 7::percent").value, Some(7.0));
    assert_eq!(take("SELECT '42'::text").value, Some(42.0));
    // A text `t` is a letter, not true.
    let text = take("SELECT state FROM t");
    assert!(text.ok);
    assert_eq!(text.value, None);
    assert_eq!(text.observed, r#"returned "t", not a number"#);
    let nan = take("SELECT 'NaN'::float8");
    assert!(nan.ok && nan.value.is_none(), "{nan:?}");
    assert_eq!(take("SELECT 'Infinity'::float8").value, None);
    assert_eq!(take("SELECT now()").value, None);
    let null = take("SELECT NULL::int");
    assert_eq!((null.value, null.observed.as_str()), (None, "NULL"));
    let none = take("SELECT 1 WHERE false");
    assert!(none.ok);
    assert_eq!((none.value, none.observed.as_str()), (None, "no row"));

    let write = take("DELETE FROM t RETURNING 1");
    assert!(!write.ok && write.value.is_none());
    assert!(write.observed.contains("read-only"), "{write:?}");
    let start = Instant::now();
    let slow = measure(
        &sql("SELECT pg_sleep(30)"),
        &cfg,
        Duration::from_millis(500),
    );
    assert!(!slow.ok, "{slow:?}");
    assert!(slow.observed.contains("statement timeout"), "{slow:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(c.rows(&db, "SELECT count(*) FROM t"), ["1"]);
    c.drop_database(&db).ok();
}

fn command(run: &str) -> Measure {
    Measure::Command { run: run.into() }
}

#[test]
fn commands_pass_on_exit_0_and_give_the_number_they_print() {
    let m = take(&command("echo 42"));
    assert!(m.ok);
    assert_eq!(
        (m.value, m.observed.as_str()),
        (Some(42.0), "exit 0, printed 42")
    );
    assert_eq!(take(&command("printf ' 0.75\\n\\n'")).value, Some(0.75));

    let m = take(&command("exit 3"));
    assert!(!m.ok);
    assert_eq!((m.value, m.observed.as_str()), (None, "exit 3"));
    let m = take(&command("echo starting; echo degraded >&2; exit 2"));
    assert_eq!(m.observed, "exit 2: degraded");
    // A number on a failure is still its number.
    let m = take(&command("echo 17; exit 1"));
    assert!(!m.ok);
    assert_eq!(m.value, Some(17.0));

    for not_one_number in [
        "echo healthy",
        "echo 1 2",
        "printf '1\\n2\\n'",
        "echo nan",
        "echo inf",
        "echo 5 >&2",
        "true",
    ] {
        let m = take(&command(not_one_number));
        assert!(m.ok, "{not_one_number}: {m:?}");
        assert_eq!(m.value, None, "{not_one_number}: {m:?}");
        assert_eq!(m.observed, "exit 0", "{not_one_number}: {m:?}");
    }

    let m = take(&command("kill -9 $$"));
    assert!(!m.ok);
    assert_eq!(m.observed, "killed by signal 9");

    let start = Instant::now();
    let hang = measure(
        &command("sleep 30"),
        &Config::default(),
        Duration::from_millis(300),
    );
    assert!(!hang.ok && hang.value.is_none(), "{hang:?}");
    assert!(hang.observed.contains("still running"), "{hang:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// What the exporter serves at first: each Prometheus test has its own
/// series.
const METRICS: &str = "\
# TYPE ripcord_queue gauge
ripcord_queue 42
# TYPE ripcord_ratio gauge
ripcord_ratio NaN
ripcord_errors{route=\"/a\"} 1
ripcord_errors{route=\"/b\"} 2
";

/// One Prometheus server for these tests, scraping one exporter: a server
/// scrapes for the first time some 5 s after it starts (its service
/// discovery hands over targets every 5 s), so the tests share that wait.
/// Without the `prometheus` binary this fails, and says what to install.
fn prometheus() -> &'static (Prometheus, Exporter) {
    static SHARED: OnceLock<(Prometheus, Exporter)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let exporter = Exporter::start(METRICS).unwrap();
        let server = Prometheus::start(&exporter.address()).unwrap_or_else(|e| panic!("{e}"));
        (server, exporter)
    })
}

fn promql(server: &Prometheus, query: &str) -> Measurement {
    measure(
        &Measure::Prometheus {
            url: server.url(),
            query: query.into(),
        },
        &Config::default(),
        T,
    )
}

/// Queries until `done` holds: the server scrapes every second, so a new
/// value shows within a few (the first within some 6). Bounded.
fn until(server: &Prometheus, query: &str, done: impl Fn(&Measurement) -> bool) -> Measurement {
    let start = Instant::now();
    loop {
        let m = promql(server, query);
        if done(&m) {
            return m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{query}: still {m:?} after 20 s\n--- Prometheus log ---\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn prometheus_reads_a_gauge_back_and_follows_it() {
    let (server, exporter) = prometheus();
    let m = until(server, "ripcord_queue", |m| m.value.is_some());
    assert!(m.ok);
    assert_eq!((m.value, m.observed.as_str()), (Some(42.0), "returned 42"));
    assert!(m.latency_ms > 0.0 && m.latency_ms < 5000.0);

    {
        let metrics = exporter.metrics();
        let mut text = metrics.lock().unwrap();
        *text = text.replace("ripcord_queue 42\n", "ripcord_queue 7.5\n");
    }
    let m = until(server, "ripcord_queue", |m| m.value != Some(42.0));
    assert_eq!(m.value, Some(7.5));
    let m = promql(server, "ripcord_queue * 2");
    assert_eq!(m.value, Some(15.0));
    // A scalar answer.
    assert_eq!(promql(server, "scalar(ripcord_queue) + 1").value, Some(8.5));

    let missing = promql(server, "ripcord_no_such_metric");
    assert!(missing.ok, "{missing:?}");
    assert_eq!(missing.value, None);
    assert_eq!(missing.observed, "empty result");
}

#[test]
fn prometheus_nan_and_infinities_are_no_number() {
    let (server, _) = prometheus();
    let m = promql(server, "0/0");
    assert!(m.ok, "{m:?}");
    assert_eq!((m.value, m.observed.as_str()), (None, "NaN"));
    let m = promql(server, "1/0");
    assert_eq!((m.value, m.observed.as_str()), (None, "+Inf"));
    let m = promql(server, "-1/0");
    assert_eq!((m.value, m.observed.as_str()), (None, "-Inf"));

    let m = until(server, "ripcord_ratio", |m| m.observed != "empty result");
    assert!(m.ok, "{m:?}");
    assert_eq!((m.value, m.observed.as_str()), (None, "NaN"));
}

#[test]
fn prometheus_several_series_are_ambiguous() {
    let (server, _) = prometheus();
    let m = until(server, "ripcord_errors", |m| m.observed != "empty result");
    assert!(m.ok, "{m:?}");
    assert_eq!(m.value, None);
    assert_eq!(m.observed, "2 series: ambiguous, the query must give one");
    assert_eq!(promql(server, "sum(ripcord_errors)").value, Some(3.0));
    // A range vector is no single value either.
    let m = promql(server, "ripcord_errors{route=\"/a\"}[1m]");
    assert!(m.ok && m.value.is_none(), "{m:?}");
}

#[test]
fn prometheus_errors_are_failures() {
    let (prom, _) = prometheus();
    let m = promql(prom, "sum(");
    assert!(!m.ok && m.value.is_none(), "{m:?}");
    assert!(m.observed.starts_with("query failed: bad_data: "), "{m:?}");

    let down = measure(
        &Measure::Prometheus {
            url: format!("http://127.0.0.1:{}", closed_port()),
            query: "up".into(),
        },
        &Config::default(),
        T,
    );
    assert!(!down.ok);
    assert_eq!(down.observed, "no answer: connection refused");

    // Something that is not Prometheus.
    let (url, _) = server(reply(404, "no such page"));
    let m = measure(
        &Measure::Prometheus {
            url,
            query: "up".into(),
        },
        &Config::default(),
        T,
    );
    assert!(!m.ok);
    assert_eq!(m.observed, "HTTP 404, not a Prometheus answer");
}
