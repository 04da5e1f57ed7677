//! Load on the read endpoints while a recovery run is active: 200
//! concurrent clients on 127.0.0.1 for 30 seconds, bounded (each waits for
//! its answer before it asks again). Every answer must be a 200, and the
//! 99th percentile of latency under 50 ms. Its own test binary, so nothing
//! else runs beside it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ripcord_testing::server::{token, Server};
use ripcord_testing::{process, Workspace};

const CLIENTS: usize = 200;
const DURATION: Duration = Duration::from_secs(30);
const P99_LIMIT: Duration = Duration::from_millis(50);

#[test]
fn two_hundred_readers_during_a_run_get_answers_under_50ms_at_p99() {
    let mut ws = Workspace::new(env!("CARGO_BIN_EXE_ripcord"));
    let dir = ws.dir_target("files", "data", &[]);
    ripcord_testing::data::standard_tree(&dir, 7);
    ws.append_config(
        "[tiers.hourly]\nevery = \"1h\"\nmax_age = \"2h\"\ntargets = [\"files\"]\n\n\
         [runbooks.long]\nsteps = [{ kind = \"snapshot\", targets = [\"files\"] }, \
         { kind = \"wait\", duration = \"45s\" }]\n",
    );
    ws.init();
    for _ in 0..3 {
        ws.ok(&["snapshot", "files", "--tier", "hourly"]);
    }
    let reader = token(&ws, "load", "reader");
    let operator = token(&ws, "op", "operator");
    let server = Server::start(&ws, &[]);
    let url = server.url.clone();

    let client = reqwest::blocking::Client::new();
    let started = client
        .post(format!("{url}/api/v1/recover"))
        .bearer_auth(&operator)
        .header("content-type", "application/json")
        .body(r#"{"level":"long","reason":"load test"}"#)
        .send()
        .unwrap();
    assert_eq!(started.status(), 202);
    let run: serde_json::Value = serde_json::from_str(&started.text().unwrap()).unwrap();
    let run = run["run"].as_str().unwrap().to_string();
    let active = || {
        let v: serde_json::Value = client
            .get(format!("{url}/api/v1/status"))
            .bearer_auth(&reader)
            .send()
            .and_then(|r| r.text())
            .map(|t| serde_json::from_str(&t).unwrap_or_default())
            .unwrap_or_default();
        v["step"] == "wait 45s"
    };
    assert!(process::wait_until(Duration::from_secs(30), active));

    let paths: Arc<Vec<String>> = Arc::new(vec![
        "/api/v1/targets".into(),
        "/api/v1/snapshots?limit=20".into(),
        "/api/v1/tiers".into(),
        "/api/v1/runs".into(),
        format!("/api/v1/runs/{run}"),
        "/api/v1/status".into(),
        "/api/v1/audit?limit=20".into(),
        "/api/v1/check".into(),
    ]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (latencies, errors) = rt.block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENTS)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let end = Instant::now() + DURATION;
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (http, paths, url, reader) = (
                http.clone(),
                Arc::clone(&paths),
                url.clone(),
                reader.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = Vec::new();
                let mut i = c;
                while Instant::now() < end {
                    let path = &paths[i % paths.len()];
                    i += 1;
                    let t = Instant::now();
                    let r = http
                        .get(format!("{url}{path}"))
                        .bearer_auth(&reader)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            lat.push(t.elapsed());
                        }
                        Ok(r) => errors.push(format!("{path}: {}", r.status())),
                        Err(e) => errors.push(format!("{path}: {e}")),
                    }
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = Vec::new();
        for t in tasks {
            let (l, e) = t.await.unwrap();
            all.extend(l);
            errors.extend(e);
        }
        (all, errors)
    });
    let mut latencies = latencies;
    latencies.sort();
    let n = latencies.len();
    let p = |q: f64| latencies[((n as f64 * q) as usize).min(n - 1)];
    let report = format!(
        "{n} requests in {:?} ({:.0}/s), {} errors; p50 {:?}, p99 {:?}, max {:?}",
        DURATION,
        n as f64 / DURATION.as_secs_f64(),
        errors.len(),
        p(0.50),
        p(0.99),
        latencies[n - 1]
    );
    println!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/server-load.txt");
    let _ = std::fs::write(out, format!("{report}\n"));
    assert!(
        errors.is_empty(),
        "{report}; first errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(p(0.99) < P99_LIMIT, "{report}");
    // The run was active throughout.
    assert!(active(), "the run ended before the load did");
    drop(server);
}
