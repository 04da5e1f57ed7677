//! `ripcord serve` as a client sees it: every endpoint for every role,
//! runs started, watched and resumed through the API, tokens, limits,
//! /metrics scraped by a real Prometheus, /health, TLS, and the OpenAPI
//! document checked by schemathesis against the live server.

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use ripcord_testing::server::{token, Server};
use ripcord_testing::{process, Workspace};
use serde_json::{json, Value};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

/// A database password that must never leave the server.
const SECRET: &str = "s3cr3t-pw-never-shown";

const CONFIG: &str = r#"
[tiers.hourly]
every = "1h"
max_age = "2h"
targets = ["files"]
keep = { last = 2 }

[runbooks.quick]
steps = [{ kind = "snapshot", targets = ["files"] }, { kind = "wait", duration = "1s" }]

[runbooks.slow]
steps = [
  { kind = "snapshot", targets = ["files"] },
  { kind = "wait", duration = "4s" },
  { kind = "command", run = "touch finished", idempotent = true },
]
"#;

/// A workspace with a dir target `files` (a snapshot of tier `hourly`
/// taken), runbook levels `quick` and `slow`, and an unreachable
/// PostgreSQL target whose URL holds a password.
fn workspace() -> Workspace {
    let mut ws = Workspace::new(bin());
    let dir = ws.dir_target("files", "data", &[]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "hello").unwrap();
    ws.append_config(CONFIG);
    ws.append_config(&format!(
        "[targets.db]\nkind = \"postgres\"\nurl = \"postgres://app:{SECRET}@127.0.0.1:1/app\"\n"
    ));
    ws.init();
    ws.ok(&["snapshot", "files", "--tier", "hourly"]);
    ws
}

struct Api {
    client: Client,
    url: String,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            url: server.url.clone(),
        }
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let url = format!("{}{path}", self.url);
        let mut req = match method {
            "GET" => self.client.get(&url),
            "POST" => self.client.post(&url),
            "DELETE" => self.client.delete(&url),
            m => panic!("method {m}"),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        req.send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// The status and the JSON body.
    fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let r = self.call(method, path, token, body);
        let status = r.status();
        let text = r.text().unwrap();
        assert!(
            !text.contains(SECRET),
            "{method} {path} shows the password: {text}"
        );
        let v = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("{method} {path} answered {status} with no JSON ({e}): {text}")
        });
        (status, v)
    }

    fn get(&self, path: &str, token: &str) -> Value {
        let (s, v) = self.json("GET", path, Some(token), None);
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    /// Starts a recovery at `level` as `token`; its run's id.
    fn recover(&self, token: &str, level: &str, reason: &str) -> String {
        let (s, v) = self.json(
            "POST",
            "/api/v1/recover",
            Some(token),
            Some(json!({"level": level, "reason": reason})),
        );
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        v["run"].as_str().unwrap().to_string()
    }

    /// Polls a run until it has finished; returns its report.
    fn finished(&self, run: &str, token: &str) -> Value {
        let mut last = Value::Null;
        let done = process::wait_until(Duration::from_secs(60), || {
            last = self.get(&format!("/api/v1/runs/{run}"), token);
            last["run"]["finished"].is_string()
        });
        assert!(done, "run {run} did not finish: {last}");
        last
    }
}

struct Tokens {
    reader: String,
    operator: String,
    admin: String,
}

fn tokens(ws: &Workspace) -> Tokens {
    Tokens {
        reader: token(ws, "rita", "reader"),
        operator: token(ws, "otto", "operator"),
        admin: token(ws, "ada", "admin"),
    }
}

#[test]
fn every_endpoint_answers_each_role_as_documented() {
    let ws = workspace();
    let t = tokens(&ws);
    let server = Server::start(&ws, &[]);
    let api = Api::new(&server);
    // (method, path, body, the least role, what that role gets)
    let cases: Vec<(&str, &str, Option<Value>, &str, u16)> = vec![
        ("GET", "/api/v1/targets", None, "reader", 200),
        ("GET", "/api/v1/snapshots?limit=1", None, "reader", 200),
        ("GET", "/api/v1/tiers", None, "reader", 200),
        ("GET", "/api/v1/runs", None, "reader", 200),
        ("GET", "/api/v1/runs/nosuchrun", None, "reader", 404),
        ("GET", "/api/v1/status", None, "reader", 200),
        ("GET", "/api/v1/migrations", None, "reader", 404),
        ("GET", "/api/v1/guard", None, "reader", 404),
        ("GET", "/api/v1/audit", None, "reader", 200),
        ("GET", "/api/v1/check", None, "reader", 200),
        (
            "POST",
            "/api/v1/recover",
            Some(json!({"level": "nope", "reason": "r"})),
            "operator",
            400,
        ),
        (
            "POST",
            "/api/v1/rollback",
            Some(json!({"to": "@root", "reason": "r"})),
            "operator",
            400,
        ),
        (
            "POST",
            "/api/v1/runs/nosuchrun/resume",
            None,
            "operator",
            404,
        ),
        (
            "POST",
            "/api/v1/ack",
            Some(json!({"reason": "checked"})),
            "operator",
            200,
        ),
        ("GET", "/api/v1/tokens", None, "admin", 200),
        (
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "bad name!", "role": "reader"})),
            "admin",
            400,
        ),
        ("DELETE", "/api/v1/tokens/nobody", None, "admin", 400),
        (
            "POST",
            "/api/v1/forget",
            Some(json!({"tier": "nope"})),
            "admin",
            400,
        ),
    ];
    let rank = |r: &str| {
        ["reader", "operator", "admin"]
            .iter()
            .position(|x| *x == r)
            .unwrap()
    };
    for (method, path, body, least, allowed) in &cases {
        let (s, v) = api.json(method, path, None, body.clone());
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token: {v}"
        );
        assert_eq!(v["code"], "unauthorized");
        for (role, tok) in [
            ("reader", &t.reader),
            ("operator", &t.operator),
            ("admin", &t.admin),
        ] {
            let (s, v) = api.json(method, path, Some(tok), body.clone());
            if rank(role) < rank(least) {
                assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} as {role}: {v}");
                assert_eq!(v["code"], "forbidden");
            } else {
                assert_eq!(s.as_u16(), *allowed, "{method} {path} as {role}: {v}");
                if *allowed >= 400 {
                    assert!(v["code"].is_string() && v["message"].is_string(), "{v}");
                }
            }
        }
    }
    // The reads say what they should.
    let targets = api.get("/api/v1/targets", &t.reader);
    let files = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "files")
        .unwrap();
    assert_eq!(files["snapshots"], 1);
    let db = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "db")
        .unwrap();
    assert!(!db["source"].as_str().unwrap().contains(SECRET));
    let tiers = api.get("/api/v1/tiers", &t.reader);
    assert_eq!(tiers[0]["verdict"], "green", "{tiers}");
    let snaps = api.get("/api/v1/snapshots?limit=1&offset=0", &t.reader);
    assert_eq!(snaps["total"], 1);
    assert_eq!(snaps["items"].as_array().unwrap().len(), 1);
    let (s, v) = api.json("GET", "/api/v1/snapshots?limit=0", Some(&t.reader), None);
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let audit = api.get("/api/v1/audit?limit=500", &t.reader);
    assert!(audit["verification"]["first_bad"].is_null(), "{audit}");
    // The operator's ack is in the audit under the token's name.
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["command"] == "ack" && e["actor"] == "otto"),
        "{audit}"
    );
    // An unknown route is JSON too.
    let (s, v) = api.json("GET", "/api/v1/nope", Some(&t.reader), None);
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    // No response carries a token or its hash.
    let listed = api.get("/api/v1/tokens", &t.admin).to_string();
    for secret in [&t.reader, &t.operator, &t.admin] {
        assert!(!listed.contains(secret.as_str()));
        assert!(!listed.contains(&blake3::hash(secret.as_bytes()).to_hex().to_string()));
    }
    // The check reaches the unreachable database and says so without its password.
    let check = api.get("/api/v1/check", &t.reader);
    assert_eq!(check["ok"], false, "{check}");
}

#[test]
fn an_operator_starts_a_recovery_and_reads_its_report() {
    let ws = workspace();
    let t = tokens(&ws);
    let server = Server::start(&ws, &[]);
    let api = Api::new(&server);
    let run = api.recover(&t.operator, "quick", "drill from the API");
    // A second run while it acts is refused: one at a time.
    let (s, v) = api.json(
        "POST",
        "/api/v1/recover",
        Some(&t.operator),
        Some(json!({"level": "quick", "reason": "again"})),
    );
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("refused")),
        "{v}"
    );
    let status = api.get("/api/v1/status", &t.reader);
    assert_eq!(status["run"]["run"], run.as_str(), "{status}");
    let report = api.finished(&run, &t.reader);
    assert_eq!(report["run"]["result"], "succeeded", "{report}");
    assert_eq!(report["run"]["actor"], "otto");
    assert_eq!(report["timeline"].as_array().unwrap().len(), 2);
    assert!(report["rto_seconds"].is_number(), "{report}");
    // The board catches up: the run is listed, and a second snapshot is there.
    assert!(process::wait_until(Duration::from_secs(10), || {
        api.get("/api/v1/runs", &t.reader)["items"][0]["result"] == "succeeded"
    }));
    let audit = api.get("/api/v1/audit", &t.reader);
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["command"] == "recover")
        .unwrap_or_else(|| panic!("no recover entry: {audit}"));
    assert_eq!(entry["actor"], "otto");
    assert_eq!(entry["run"], run.as_str());
    assert_eq!(entry["reason"], "drill from the API");
    // The command line sees the same run.
    let runs = ws.json(&["runs"]);
    assert_eq!(runs[0]["actor"], "otto");
}

#[test]
fn an_admin_manages_tokens_and_a_revoked_token_stops_working() {
    let ws = workspace();
    let t = tokens(&ws);
    let server = Server::start(&ws, &[]);
    let api = Api::new(&server);
    let (s, made) = api.json(
        "POST",
        "/api/v1/tokens",
        Some(&t.admin),
        Some(json!({"name": "ci", "role": "operator"})),
    );
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let ci = made["token"].as_str().unwrap().to_string();
    assert_eq!(api.get("/api/v1/status", &ci)["safe_mode"], Value::Null);
    let (s, v) = api.json(
        "POST",
        "/api/v1/tokens",
        Some(&t.admin),
        Some(json!({"name": "ci", "role": "reader"})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "a taken name: {v}");
    let (s, v) = api.json("DELETE", "/api/v1/tokens/ci", Some(&t.admin), None);
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["revoked"].is_string(), "{v}");
    let (s, _) = api.json("GET", "/api/v1/status", Some(&ci), None);
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A token revoked from the command line stops within seconds too.
    ws.ok(&["token", "revoke", "rita"]);
    assert!(process::wait_until(Duration::from_secs(5), || {
        api.call("GET", "/api/v1/status", Some(&t.reader), None)
            .status()
            == StatusCode::UNAUTHORIZED
    }));
    let entries = api.get("/api/v1/audit?limit=500", &t.admin)["entries"].clone();
    let by_ada: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "ada")
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    assert!(
        by_ada.contains(&"token add") && by_ada.contains(&"token revoke"),
        "{entries}"
    );
    assert!(!entries.to_string().contains(&ci));
    // forget: the tier's keep policy (last 2) as the admin.
    ws.ok(&["snapshot", "files", "--tier", "hourly"]);
    ws.ok(&["snapshot", "files", "--tier", "hourly"]);
    let (s, v) = api.json(
        "POST",
        "/api/v1/forget",
        Some(&t.admin),
        Some(json!({"tier": "hourly", "prune": true})),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["forgotten"].as_array().unwrap().len(), 1, "{v}");
    ws.ok(&["verify"]);
}

#[test]
fn failures_are_rate_limited_and_bodies_are_bounded() {
    let ws = workspace();
    let t = tokens(&ws);
    let server = Server::start(&ws, &[]);
    let api = Api::new(&server);
    let big = json!({"level": "quick", "reason": "x".repeat(100_000)});
    let (s, v) = api.json("POST", "/api/v1/recover", Some(&t.operator), Some(big));
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    let (s, v) = api.json(
        "POST",
        "/api/v1/recover",
        Some(&t.operator),
        Some(json!({"level": "quick"})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "a missing field: {v}");
    assert!(
        ws.json(&["runs"]).as_array().unwrap().is_empty(),
        "bad input started a run"
    );
    for i in 0..10 {
        let (s, _) = api.json("GET", "/api/v1/status", Some(&format!("rc_guess{i}")), None);
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let r = api.call("GET", "/api/v1/status", Some(&t.reader), None);
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even a good token waits"
    );
    assert!(r.headers().contains_key("retry-after"));
    // Health and metrics need no token and are not limited.
    assert_eq!(
        api.call("GET", "/health", None, None).status(),
        StatusCode::OK
    );
}

#[test]
fn health_says_when_the_repository_is_gone() {
    let ws = workspace();
    let server = Server::start(&ws, &[]);
    let api = Api::new(&server);
    let (s, v) = api.json("GET", "/health", None, None);
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["repository"]["ok"], true);
    std::fs::rename(ws.repo(), ws.path("moved")).unwrap();
    let (s, v) = api.json("GET", "/health", None, None);
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], "failing");
    assert_eq!(v["catalog"]["ok"], true);
    std::fs::rename(ws.path("moved"), ws.repo()).unwrap();
}

#[test]
fn a_run_cut_short_by_kill9_is_resumed_from_the_api() {
    let ws = workspace();
    let t = tokens(&ws);
    let mut server = Server::start(&ws, &[]);
    let api = Api::new(&server);
    let run = api.recover(&t.operator, "slow", "kill test");
    assert!(process::wait_until(Duration::from_secs(20), || {
        api.get("/api/v1/status", &t.reader)["step"] == "wait 4s"
    }));
    server.kill9();
    assert!(!ws.path("finished").exists());

    let server = Server::start(&ws, &[]);
    let api = Api::new(&server);
    let status = api.get("/api/v1/status", &t.reader);
    assert_eq!(status["run"]["run"], run.as_str(), "{status}");
    assert_eq!(status["alive"], false, "{status}");
    let (s, v) = api.json(
        "POST",
        &format!("/api/v1/runs/{run}/resume"),
        Some(&t.operator),
        None,
    );
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let report = api.finished(&run, &t.reader);
    assert_eq!(report["run"]["result"], "succeeded", "{report}");
    assert!(ws.path("finished").exists());
    ws.ok(&["verify"]);
    let audit = api.get("/api/v1/audit", &t.reader);
    assert!(audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["command"] == "resume" && e["actor"] == "otto"));
}

#[test]
fn sigterm_lets_the_run_in_progress_finish() {
    let ws = workspace();
    let t = tokens(&ws);
    let mut server = Server::start(&ws, &[]);
    let api = Api::new(&server);
    api.recover(&t.operator, "slow", "term test");
    let status = server
        .terminate(Duration::from_secs(30))
        .expect("serve exits after the run");
    assert!(status.success(), "{}", server.log());
    assert!(ws.path("finished").exists(), "{}", server.log());
    let runs = ws.json(&["runs"]);
    assert_eq!(runs[0]["result"], "succeeded", "{runs}");
}

#[test]
fn a_real_prometheus_scrapes_the_metrics() {
    let ws = workspace();
    let t = tokens(&ws);
    let server = Server::start(&ws, &[]);
    let api = Api::new(&server);
    let run = api.recover(&t.operator, "quick", "for the histogram");
    api.finished(&run, &t.reader);
    // The metrics are drawn from the picture, redrawn as the run ends.
    let mut text = String::new();
    process::wait_until(Duration::from_secs(10), || {
        text = api.call("GET", "/metrics", None, None).text().unwrap();
        text.contains("ripcord_run_duration_seconds_count")
    });
    for name in [
        "ripcord_snapshot_age_seconds{target=\"files\",tier=\"hourly\"}",
        "ripcord_tier_freshness{target=\"files\",tier=\"hourly\",verdict=\"green\"} 1",
        "ripcord_repository_bytes ",
        "ripcord_run_duration_seconds_bucket",
        "ripcord_safe_mode 0",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let target = server.url.trim_start_matches("http://").to_string();
    let prom = ripcord_testing::prometheus::Prometheus::start(&target).expect("start prometheus");
    let query = |q: &str| -> Value {
        let url = format!("{}/api/v1/query?query={q}", prom.url());
        reqwest::blocking::get(url)
            .and_then(|r| r.text())
            .map(|t| serde_json::from_str(&t).unwrap_or(Value::Null))
            .unwrap_or(Value::Null)
    };
    let mut seen = Value::Null;
    let scraped = process::wait_until(Duration::from_secs(30), || {
        seen = query("ripcord_runs_total");
        seen["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    assert!(
        scraped,
        "prometheus did not scrape ripcord: {seen}\n{}",
        prom.log()
    );
    let up = query("up");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let fresh = query("ripcord_tier_freshness%7Bverdict%3D%22green%22%7D");
    assert_eq!(fresh["data"]["result"][0]["value"][1], "1", "{fresh}");
}

#[test]
fn it_serves_https_with_a_given_certificate() {
    let ws = workspace();
    let t = tokens(&ws);
    let (cert, key) = (ws.path("cert.pem"), ws.path("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes a self-signed certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let server = Server::start(
        &ws,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let client = Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/api/v1/status", server.url))
        .bearer_auth(&t.reader)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A login cookie over TLS is Secure.
    let r = client
        .post(format!("{}/login", server.url))
        .form(&[("token", t.reader.as_str())])
        .send()
        .unwrap();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for flag in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    // Bad TLS files are bad input: exit 2 before listening.
    let out = ws.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "nope.pem",
        "--tls-key",
        "nope.pem",
    ]);
    out.assert_code(2).assert_stderr_has("nope.pem");
}

/// schemathesis, from PyPI, against the live server: a bounded number of
/// generated requests per operation, as admin, and no answer may be a
/// server error or break the document's schemas.
#[test]
fn schemathesis_finds_no_server_error_and_no_schema_break() {
    let exe = std::env::var("RIPCORD_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    if std::process::Command::new(&exe)
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("schemathesis is not installed: `pip install schemathesis` (scripts/test does)");
    }
    let ws = workspace();
    let t = tokens(&ws);
    let server = Server::start(&ws, &[]);
    let out = std::process::Command::new(&exe)
        .args(["run", &format!("{}/api/v1/openapi.json", server.url)])
        .args(["--header", &format!("Authorization: Bearer {}", t.admin)])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        .args(["--max-examples", "25", "--workers", "1", "--phases", "examples,coverage,fuzzing"])
        .args(["--seed", "20261202"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its caches go into the throwaway workspace, not the source tree.
        .current_dir(ws.root())
        .output()
        .expect("run schemathesis");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\nserver log:\n{}",
        server.log()
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn the_guard_runs_in_the_server_and_its_rollback_starts_a_run() {
    let svc = ripcord_testing::service::Service::start(200);
    let mut ws = Workspace::new(bin());
    let dir = ws.dir_target("files", "data", &[]);
    std::fs::create_dir_all(&dir).unwrap();
    ws.append_config(&format!(
        "[runbooks.emergency]\nsteps = [{{ kind = \"snapshot\", targets = [\"files\"] }}]\n\n\
         [guard.probes.api]\nhttp = \"{}\"\ninterval = \"200ms\"\ntimeout = \"1s\"\n\n\
         [[guard.rules]]\nname = \"api-down\"\nwhen = \"availability(api, 1s) < 100%\"\nfor = 2\n\
         action = \"rollback\"\nlevel = \"emergency\"\n",
        svc.url
    ));
    ws.init();
    let t = tokens(&ws);
    let server = Server::start(&ws, &["--guard", "--auto-rollback"]);
    let api = Api::new(&server);
    let mut guard = Value::Null;
    assert!(
        process::wait_until(Duration::from_secs(20), || {
            guard = api.get("/api/v1/guard", &t.reader);
            guard["recent"][0]["samples"]
                .as_array()
                .is_some_and(|s| s.len() >= 3)
                && guard["rules"][0]["verdict"] == "healthy"
        }),
        "{guard}"
    );
    svc.set(500);
    let mut runs = Value::Null;
    assert!(
        process::wait_until(Duration::from_secs(30), || {
            runs = api.get("/api/v1/runs", &t.reader);
            runs["items"][0]["result"] == "succeeded"
        }),
        "no rollback run: {runs}\n{}",
        server.log()
    );
    assert_eq!(runs["items"][0]["trigger"], "guard:api-down", "{runs}");
    let metrics = api.call("GET", "/metrics", None, None).text().unwrap();
    assert!(
        metrics.contains(
            "ripcord_guard_rule{rule=\"api-down\",severity=\"critical\",state=\"breached\"} 1"
        ) || metrics.contains("state=\"breached\"} 1"),
        "{metrics}"
    );
}

#[test]
fn the_scheduler_runs_in_the_server() {
    let mut ws = Workspace::new(bin());
    let dir = ws.dir_target("files", "data", &[]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "hello").unwrap();
    ws.append_config("[tiers.hourly]\nevery = \"1h\"\nmax_age = \"2h\"\ntargets = [\"files\"]\n");
    ws.init();
    let t = tokens(&ws);
    let server = Server::start(&ws, &["--schedule"]);
    let api = Api::new(&server);
    let mut tiers = Value::Null;
    assert!(
        process::wait_until(Duration::from_secs(30), || {
            tiers = api.get("/api/v1/tiers", &t.reader);
            tiers[0]["verdict"] == "green"
        }),
        "{tiers}\n{}",
        server.log()
    );
    let audit = api.get("/api/v1/audit", &t.reader);
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["command"] == "schedule run"),
        "{audit}"
    );
}

#[test]
fn migrations_are_shown_and_rolled_back_through_the_api() {
    use ripcord_testing::app::{sqlite_app, sqlite_rows, write};
    let (ws, db) = sqlite_app(bin(), "");
    ws.init();
    write(
        &ws,
        "migrations/plan.toml",
        "[[phase]]\nname = \"expand\"\nchanges = [\"0001_users\"]\n\n\
         [[phase]]\nname = \"contract\"\nchanges = [\"0002_drop_email\"]\n",
    );
    write(&ws, "migrations/0001_users/up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);\n\
         INSERT INTO users (name, email) VALUES ('ann', 'ann@example.com'), ('bob', 'bob@example.com');\n");
    write(&ws, "migrations/0001_users/down.sql", "DROP TABLE users;\n");
    write(
        &ws,
        "migrations/0002_drop_email/up.sql",
        "ALTER TABLE users DROP COLUMN email;\n",
    );
    ws.ok(&["migrate", "up"]);
    let t = tokens(&ws);
    let server = Server::start(&ws, &[]);
    let api = Api::new(&server);
    // The picture catches up as the run ends.
    let mut m = Value::Null;
    process::wait_until(Duration::from_secs(10), || {
        m = api.get("/api/v1/migrations", &t.reader);
        m["counts"]["pending"] == 1
    });
    assert_eq!(m["counts"]["applied"], 2, "{m}");
    let (s, v) = api.json(
        "POST",
        "/api/v1/rollback",
        Some(&t.operator),
        Some(json!({"to": "nope", "reason": "r"})),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "an unknown change: {v}");
    let (s, v) = api.json(
        "POST",
        "/api/v1/rollback",
        Some(&t.operator),
        Some(json!({"to": "@expand", "reason": "the contract broke the app"})),
    );
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let report = api.finished(v["run"].as_str().unwrap(), &t.reader);
    assert_eq!(report["run"]["result"], "succeeded", "{report}");
    assert_eq!(report["run"]["kind"], "rollback");
    assert_eq!(report["run"]["actor"], "otto");
    assert_eq!(
        sqlite_rows(&db, "SELECT id, name, email FROM users ORDER BY id"),
        ["1|ann|ann@example.com", "2|bob|bob@example.com"]
    );
    // The picture catches up as the run ends.
    let mut m = Value::Null;
    process::wait_until(Duration::from_secs(10), || {
        m = api.get("/api/v1/migrations", &t.reader);
        m["counts"]["pending"] == 1
    });
    assert_eq!(
        (
            m["counts"]["applied"].clone(),
            m["counts"]["pending"].clone()
        ),
        (json!(1), json!(1)),
        "{m}"
    );
    let metrics = api.call("GET", "/metrics", None, None).text().unwrap();
    assert!(
        metrics.contains("ripcord_migrations{target=\"app\",state=\"pending\"} 1"),
        "{metrics}"
    );
}
