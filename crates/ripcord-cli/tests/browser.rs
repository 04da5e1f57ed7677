//! The dashboard in a real browser (headless Chromium through
//! chromedriver): an operator logs in, sees the targets and their
//! freshness, starts a recovery, watches it finish and reads its report; a
//! reader sees no start button and a forged or unauthorised POST is
//! refused. Screenshots of the pages land in `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test installs
//! them); without them the test fails and says so.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use ripcord_testing::browser::{screenshots_dir, Browser};
use ripcord_testing::server::{token, Server};
use ripcord_testing::{data, Workspace};
use serde_json::{json, Value};

const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);
const TIMEOUT: Duration = Duration::from_secs(30);

/// A workspace with a dir target `app`, its `hourly` tier fresh, and two
/// runbook levels: `quick`, and `full`, which lasts a few seconds.
fn workspace() -> Workspace {
    let mut ws = Workspace::new(env!("CARGO_BIN_EXE_ripcord"));
    data::random_files(&ws.path("app"), 41, 24 * 1024, 4096);
    ws.dir_target("app", "app", &[]);
    ws.append_config(
        "[tiers.hourly]\nevery = \"1h\"\nmax_age = \"2h\"\ntargets = [\"app\"]\n\n\
         [runbooks.quick]\nsteps = [{ kind = \"command\", run = \"true\" }]\n\n\
         [runbooks.full]\nsteps = [{ kind = \"snapshot\" }, { kind = \"wait\", duration = \"4s\" }]\n",
    );
    ws.init();
    ws.ok(&["snapshot", "--tier", "hourly"]);
    ws
}

fn shot(name: &str) -> PathBuf {
    screenshots_dir(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn runs(ws: &Workspace) -> usize {
    ws.json(&["runs"]).as_array().expect("runs: an array").len()
}

async fn log_in(b: &Browser, url: &str, token: &str) {
    b.goto(&format!("{url}/login")).await.unwrap();
    let field = b.find(Locator::Css("input#token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    b.find(Locator::Css("form.login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("h1", "Overview", TIMEOUT).await;
    assert_eq!(b.current_url().await.unwrap().path(), "/");
}

/// Submits a form that the page did not offer: a POST to /ui/recover with
/// `csrf`, as a forger's page or a curious reader would. Returns the status
/// a `fetch` of the same POST gets; the browser is left on the page the
/// form's answer shows.
async fn forged_recover(b: &Browser, csrf: &str) -> u64 {
    let status = b
        .execute_async(
            "const [csrf, done] = arguments;\
             fetch('/ui/recover', { method: 'POST', redirect: 'manual',\
               body: new URLSearchParams({ csrf, level: 'quick', reason: 'forged request' }) })\
             .then(r => done(r.status), e => done(String(e)));",
            vec![json!(csrf)],
        )
        .await
        .unwrap();
    b.execute(
        "const f = document.createElement('form');\
         f.method = 'post'; f.action = '/ui/recover';\
         for (const [k, v] of Object.entries({ csrf: arguments[0], level: 'quick', reason: 'forged form' })) {\
           const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.append(i);\
         }\
         document.body.append(f); f.submit();",
        vec![json!(csrf)],
    )
    .await
    .unwrap();
    b.wait_for_text("h1", "Refused", TIMEOUT).await;
    status
        .as_u64()
        .unwrap_or_else(|| panic!("the fetch failed: {status}"))
}

/// The page fits the viewport's width: only the tables scroll sideways.
async fn fits_width(b: &Browser) {
    let v: Value = b
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        v[0].as_u64() <= v[1].as_u64(),
        "the page is wider than the viewport: {v}"
    );
}

async fn csrf_of(b: &Browser) -> String {
    b.find(Locator::Css("input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .expect("a csrf value")
}

#[tokio::test]
async fn an_operator_recovers_in_the_browser_and_a_reader_cannot() {
    let ws = workspace();
    let operator = token(&ws, "alice", "operator");
    let reader = token(&ws, "bob", "reader");
    let server = Server::start(&ws, &[]);
    let url = server.url.clone();
    let b = Browser::start(DESKTOP.0, DESKTOP.1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // 1. The login form; the overview needs it.
    b.goto(&format!("{url}/")).await.unwrap();
    assert_eq!(b.current_url().await.unwrap().path(), "/login");
    log_in(&b, &url, &operator).await;
    assert!(b.text("header .who").await.unwrap().contains("alice"));

    // 2. The targets, and the tier fresh after its snapshot.
    let targets = b.text("section#targets").await.unwrap();
    assert!(targets.contains("app"), "{targets}");
    let badge = b
        .find(Locator::Css("section#tiers [data-verdict]"))
        .await
        .unwrap();
    assert_eq!(
        badge.attr("data-verdict").await.unwrap().as_deref(),
        Some("fresh")
    );
    assert!(badge
        .attr("class")
        .await
        .unwrap()
        .unwrap()
        .contains("green"));
    assert!(b.text("section#tiers").await.unwrap().contains("hourly"));
    b.screenshot(&shot("overview-operator.png")).await.unwrap();

    // The page reads on a phone too: nothing but the tables scrolls sideways.
    b.resize(PHONE.0, PHONE.1).await.unwrap();
    b.refresh().await.unwrap();
    b.wait_for_text("h1", "Overview", TIMEOUT).await;
    fits_width(&b).await;
    b.screenshot(&shot("overview-phone.png")).await.unwrap();
    b.resize(DESKTOP.0, DESKTOP.1).await.unwrap();
    b.refresh().await.unwrap();
    fits_width(&b).await;

    // 3. A run at a chosen level, with a reason.
    let before = runs(&ws);
    b.find(Locator::Css("select#level"))
        .await
        .unwrap()
        .select_by_value("full")
        .await
        .unwrap();
    b.find(Locator::Css("input#reason"))
        .await
        .unwrap()
        .send_keys("bad deploy, from the dashboard")
        .await
        .unwrap();
    b.find(Locator::Css("button#start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // 4. Its page shows it running, reloading itself, then its end.
    let h1 = b.wait_for_text("h1", "running", TIMEOUT).await;
    let path = b.current_url().await.unwrap().path().to_string();
    let run = path
        .strip_prefix("/runs/")
        .unwrap_or_else(|| panic!("not a run's page: {path}"))
        .to_string();
    assert!(h1.contains(&run), "{h1}");
    assert!(
        b.has("meta[http-equiv=refresh]").await,
        "a running run's page reloads"
    );
    let summary = b.text("section#summary").await.unwrap();
    assert!(summary.contains("level full"), "{summary}");
    assert!(
        summary.contains("bad deploy, from the dashboard"),
        "{summary}"
    );
    assert!(summary.contains("alice"), "{summary}");
    b.wait_for_text("h1", "succeeded", TIMEOUT).await;
    assert!(
        !b.has("meta[http-equiv=refresh]").await,
        "a finished run's page stays"
    );
    assert_eq!(runs(&ws), before + 1);

    // 5. The report: the RTO, and every step on the timeline.
    let report = b.text("section#report").await.unwrap();
    assert!(report.contains("RTO"), "{report}");
    let rto = b.text("section#report .kpi b").await.unwrap();
    assert!(rto.ends_with(" s"), "the RTO is measured: {report}");
    let steps = b
        .find_all(Locator::Css("section#timeline tbody tr"))
        .await
        .unwrap();
    assert_eq!(
        steps.len(),
        2,
        "{}",
        b.text("section#timeline").await.unwrap()
    );
    let timeline = b.text("section#timeline").await.unwrap();
    assert!(timeline.contains("snapshot"), "{timeline}");
    assert!(timeline.contains("wait"), "{timeline}");
    b.screenshot(&shot("run-finished.png")).await.unwrap();

    // The operator's own session with a wrong CSRF token is refused.
    b.goto(&format!("{url}/")).await.unwrap();
    assert!(b.has("button#start").await);
    let status = forged_recover(&b, "not-the-sessions-token").await;
    assert_eq!(status, 403);
    let page = b.text("main").await.unwrap();
    assert!(page.contains("stale or forged"), "{page}");
    assert_eq!(runs(&ws), before + 1, "a forged form started a run");

    // The audit: intact, with the run and its actor.
    b.goto(&format!("{url}/audit")).await.unwrap();
    let chain = b.find(Locator::Css("#chain")).await.unwrap();
    assert_eq!(
        chain.attr("data-chain").await.unwrap().as_deref(),
        Some("intact")
    );
    let row = audit_row(&b, &run).await;
    assert!(
        row.contains("alice"),
        "the actor is the token's name: {row}"
    );
    assert!(row.contains("bad deploy, from the dashboard"), "{row}");

    // 6. Log out; then the reader.
    b.goto(&format!("{url}/")).await.unwrap();
    b.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("h1", "Log in", TIMEOUT).await;
    b.goto(&format!("{url}/")).await.unwrap();
    assert_eq!(
        b.current_url().await.unwrap().path(),
        "/login",
        "the session ended"
    );
    log_in(&b, &url, &reader).await;
    assert!(b.text("header .who").await.unwrap().contains("reader"));
    assert!(!b.has("button#start").await, "a reader has no start button");
    assert!(!b.has("form.recover").await);
    assert!(b.text("section#targets").await.unwrap().contains("app"));
    b.screenshot(&shot("overview-reader.png")).await.unwrap();
    // The check, once drawn, names each item's state.
    for item in b
        .find_all(Locator::Css("section#check .badge"))
        .await
        .unwrap()
    {
        let text = item.text().await.unwrap();
        assert!(
            ["ok", "warning", "failed"].contains(&text.as_str()),
            "{text}"
        );
    }

    // A reader's POST, with the session's own CSRF token, is refused.
    let csrf = csrf_of(&b).await;
    let status = forged_recover(&b, &csrf).await;
    assert_eq!(status, 403);
    let page = b.text("main").await.unwrap();
    assert!(
        page.contains("operator"),
        "the refusal names the role: {page}"
    );
    assert_eq!(runs(&ws), before + 1, "a reader started a run");

    b.close().await;
    drop(server);
}

/// The audit page's row for `run`, reloading until the board shows it.
async fn audit_row(b: &Browser, run: &str) -> String {
    let start = Instant::now();
    loop {
        for row in b
            .find_all(Locator::Css("section table tbody tr"))
            .await
            .unwrap_or_default()
        {
            let text = row.text().await.unwrap_or_default();
            if text.contains(run) {
                return text;
            }
        }
        if start.elapsed() > TIMEOUT {
            panic!(
                "the audit page has no entry of run {run}:\n{}",
                b.text("main").await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.refresh().await.unwrap();
    }
}
