//! Webhooks for runs, failed checks and scheduled passes: generic JSON, or
//! Slack-compatible `{"text": …}`.
//! A delivery is retried with backoff and bounded in time; one that still
//! fails is reported to the caller (who journals it) and never fails the
//! run.

use std::collections::BTreeMap;
use std::time::Duration;

use ripcord_core::config::runbook::NotifyFormat;
use ripcord_core::config::Config;
use serde::Serialize;

/// One event of a run, a check or a scheduled pass.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// `start`, `failure`, `escalation`, `success`, `safe-mode`,
    /// `check-failed`, `schedule-failed`, or `message` (a `notify` step,
    /// sent to every webhook).
    pub event: String,
    /// The run, for a run's events; left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    pub level: Option<String>,
    /// One line a person reads.
    pub text: String,
    /// RFC 3339, UTC.
    pub time: String,
    /// What failed (`check-failed`: the failed items; `schedule-failed`:
    /// the failed actions); left out when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<serde_json::Value>,
}

impl Event {
    /// An event that belongs to no run, with what failed.
    pub fn about(event: &str, text: String, items: Vec<serde_json::Value>) -> Event {
        Event {
            event: event.into(),
            run: None,
            level: None,
            text,
            time: now(),
            items,
        }
    }
}

/// The time an event carries: RFC 3339 UTC, to the second.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Attempts per webhook, and the pause before the second (doubled after).
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Sends `event` to every webhook that asked for it; returns one line per
/// delivery that failed, its URL redacted.
pub fn send(config: &Config, event: &Event) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, hook) in &config.notify {
        let wanted = event.event == "message"
            || hook
                .events
                .as_ref()
                .is_none_or(|list| list.contains(&event.event));
        if !wanted {
            continue;
        }
        let body = match hook.format {
            NotifyFormat::Json => serde_json::to_string(event),
            NotifyFormat::Slack => serde_json::to_string(&serde_json::json!({
                "text": match &event.run {
                    Some(run) => format!("ripcord run {run}: {}", event.text),
                    None => format!("ripcord: {}", event.text),
                }
            })),
        }
        .expect("plain fields serialize");
        let timeout = hook
            .timeout
            .as_deref()
            .and_then(|t| ripcord_core::duration::parse(t).ok())
            .unwrap_or(Duration::from_secs(10));
        let headers =
            BTreeMap::from([("content-type".to_string(), "application/json".to_string())]);
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(backoff);
                backoff *= 2;
            }
            match ripcord_probe::request("POST", &hook.url, &headers, Some(&body), timeout) {
                Ok(status) if (200..300).contains(&status) => {
                    last.clear();
                    break;
                }
                Ok(status) => last = format!("HTTP {status}"),
                Err(e) => last = e,
            }
        }
        if !last.is_empty() {
            failures.push(format!(
                "webhook {name} ({}) after {ATTEMPTS} attempts: {last}",
                redact_url(&hook.url)
            ));
        }
    }
    failures
}

/// A webhook URL as output shows it: the path and query, which often carry
/// the token (`/services/T000/B000/XXXX`, `?token=…`), are hidden.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or(rest);
            let host = host.rsplit('@').next().unwrap_or(host);
            if rest.len() > host.len() {
                format!("{scheme}://{host}/***")
            } else {
                format!("{scheme}://{host}")
            }
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn tokens_in_webhook_urls_are_hidden() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(
            redact_url("http://u:p@127.0.0.1:9000/hook?token=x"),
            "http://127.0.0.1:9000/***"
        );
        assert_eq!(redact_url("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
    }
}
