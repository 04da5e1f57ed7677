//! The Prometheus server of the tests and the exporter it scrapes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ripcord_testing::prometheus::{Exporter, Prometheus};

fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nhost: {address}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_exporter_serves_what_the_test_sets() {
    let exporter = Exporter::start("a 1\n").unwrap();
    let answer = get(&exporter.address(), "/metrics");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.ends_with("\r\n\r\na 1\n"), "{answer}");
    exporter.set("b 2\n");
    assert!(get(&exporter.address(), "/metrics").ends_with("\r\n\r\nb 2\n"));
    exporter.metrics().lock().unwrap().push_str("c 3\n");
    assert!(get(&exporter.address(), "/metrics").ends_with("\r\n\r\nb 2\nc 3\n"));
    assert!(get(&exporter.address(), "/other").starts_with("HTTP/1.1 404 "));
}

#[test]
fn dropping_the_server_kills_it_and_removes_its_folder() {
    let exporter = Exporter::start("").unwrap();
    let server = Prometheus::start(&exporter.address()).unwrap_or_else(|e| panic!("{e}"));
    let ready = get(&server.address().to_string(), "/-/ready");
    assert!(ready.starts_with("HTTP/1.0 200 "), "{ready}");
    let pid = server.pid();
    let dir = server.log_path().parent().unwrap().to_path_buf();
    let port = server.port();
    assert!(dir.is_dir());
    drop(server);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!dir.exists());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
