//! `/metrics` in the Prometheus text format, drawn from the board at each
//! scrape: snapshot ages and tier freshness, the repository's size, runs
//! by level and result with a histogram of their durations, the guard's
//! rules and the migrations.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use ripcord_catalog::runs::RunResult;
use ripcord_ops::overview::Verdict;

use crate::board::Board;
use crate::state::Shared;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Run durations, in seconds: from a quick rollback to a long restore.
const DURATION_BUCKETS: [f64; 12] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The text a scrape gets.
pub fn render(board: &Board) -> String {
    let mut registry = Registry::with_prefix("ripcord");

    let age = Family::<Labels, FloatGauge>::default();
    let fresh = Family::<Labels, Gauge>::default();
    for t in &board.tiers {
        let l = labels(&[("target", &t.target), ("tier", &t.tier)]);
        if let Some(a) = t.age_seconds {
            age.get_or_create(&l).set(a);
        }
        let verdict = match t.verdict {
            Verdict::Green => "green",
            Verdict::Amber => "amber",
            Verdict::Red => "red",
            Verdict::Unjudged => "unjudged",
        };
        for v in ["green", "amber", "red", "unjudged"] {
            let mut l = l.clone();
            l.push(("verdict".into(), v.into()));
            fresh.get_or_create(&l).set(i64::from(v == verdict));
        }
    }
    for t in &board.targets {
        if let Some(a) = t.age_seconds {
            age.get_or_create(&labels(&[("target", &t.name), ("tier", "")]))
                .set(a);
        }
    }
    registry.register(
        "snapshot_age_seconds",
        "Age of the newest snapshot per target and tier (tier \"\": any snapshot)",
        age,
    );
    registry.register(
        "tier_freshness",
        "1 for the tier's verdict per target: green, amber, red (overdue or none) or unjudged (no max_age)",
        fresh,
    );

    let size = Gauge::<i64>::default();
    if let Ok(b) = &board.repository_bytes {
        size.set(i64::try_from(*b).unwrap_or(i64::MAX));
    }
    registry.register(
        "repository_bytes",
        "Bytes the repository's files hold",
        size,
    );
    let up = Gauge::<i64>::default();
    up.set(i64::from(
        board.repository_bytes.is_ok() && board.snapshots.is_ok(),
    ));
    registry.register("repository_up", "1 when the repository could be read", up);
    let count = Gauge::<i64>::default();
    if let Ok(s) = &board.snapshots {
        count.set(s.len() as i64);
    }
    registry.register("snapshots", "Snapshots in the repository", count);

    let runs = Family::<Labels, Counter>::default();
    let durations = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
    if let Ok(list) = &board.runs {
        for r in list {
            let level = r.level.clone().unwrap_or_default();
            let result = r.result.as_str();
            runs.get_or_create(&labels(&[
                ("kind", &r.kind),
                ("level", &level),
                ("result", result),
            ]))
            .inc();
            if r.result == RunResult::Running {
                continue;
            }
            let secs = r
                .finished
                .as_deref()
                .and_then(|f| ripcord_ops::incident::seconds(&r.started, f));
            if let Some(s) = secs {
                durations
                    .get_or_create(&labels(&[("kind", &r.kind), ("level", &level)]))
                    .observe(s);
            }
        }
    }
    registry.register("runs", "Runs by kind, level and result", runs);
    registry.register(
        "run_duration_seconds",
        "How long finished runs took, by kind and level",
        durations,
    );
    let active = Gauge::<i64>::default();
    let safe = Gauge::<i64>::default();
    if let Ok(s) = &board.status {
        active.set(i64::from(s.run.is_some()));
        safe.set(i64::from(s.safe_mode.is_some()));
    }
    registry.register(
        "run_in_progress",
        "1 while a run holds the single-flight lock",
        active,
    );
    registry.register("safe_mode", "1 while ripcord is in safe mode", safe);

    let rules = Family::<Labels, Gauge>::default();
    if let Some(Ok(g)) = &board.guard {
        for r in &g.check.rules {
            let state = serde_json::to_value(r.evaluation.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            for v in ["healthy", "breached", "inconclusive"] {
                rules
                    .get_or_create(&labels(&[
                        ("rule", &r.evaluation.rule),
                        ("severity", &r.severity),
                        ("state", v),
                    ]))
                    .set(i64::from(state == v));
            }
        }
    }
    registry.register("guard_rule", "1 for each guard rule's state now", rules);

    let migrations = Family::<Labels, Gauge>::default();
    if let Some(Ok(m)) = &board.migrations {
        let c = &m.counts;
        for (state, n) in [
            ("applied", c.applied),
            ("pending", c.pending),
            ("dirty", c.dirty),
            ("drifted", c.drifted),
            ("unknown", c.unknown),
        ] {
            migrations
                .get_or_create(&labels(&[("target", &m.target), ("state", state)]))
                .set(n as i64);
        }
    }
    registry.register(
        "migrations",
        "Changes of the migration plan by state",
        migrations,
    );

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

pub async fn metrics(State(state): State<Shared>) -> Response {
    let text = render(&state.boards.get());
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
