//! The pages, as maud templates. Plain HTML with one small style sheet;
//! tables scroll sideways on a phone rather than squeeze.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use ripcord_catalog::tokens::Role;
use ripcord_ops::check::{CheckReport, CheckState};
use ripcord_ops::incident::IncidentReport;
use ripcord_ops::overview::Verdict;

use crate::api::StatusView;
use crate::auth::Session;
use crate::board::Board;
use crate::live::RunProgress;

/// Snapshots per page.
const PER_PAGE: usize = 50;
/// How often a page that shows a run in progress reloads, in seconds.
const RELOAD: u32 = 2;

const STYLE: &str = r#"
:root{--fg:#1d2330;--muted:#5b6577;--line:#d9dee7;--bg:#f6f7f9;--green:#1e7b34;--amber:#9a6700;--red:#b42318}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}
header a{color:#fff;text-decoration:none;opacity:.85}header a:hover{opacity:1}
header .brand{font-weight:700;margin-right:.6rem}header .who{margin-left:auto;font-size:.85rem;opacity:.8}
header form{display:inline}header button{background:none;border:1px solid #fff6;color:#fff;border-radius:4px;padding:.15rem .5rem;cursor:pointer}
main{max-width:1100px;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem;margin-bottom:1rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top;white-space:nowrap}
td.wrap{white-space:normal;min-width:14rem}
th{color:var(--muted);font-weight:600}
.badge{display:inline-block;border-radius:999px;padding:.05rem .6rem;font-size:.8rem;font-weight:600;color:#fff}
.green{background:var(--green)}.amber{background:var(--amber)}.red{background:var(--red)}.grey{background:#6b7280}
.banner{border-radius:8px;padding:.7rem 1rem;margin-bottom:1rem;font-weight:600}
.banner.red{color:#fff}.banner.green{color:#fff}
.muted{color:var(--muted)}
progress{width:100%;height:1rem}
form.recover{display:grid;gap:.5rem;max-width:32rem}
label{font-weight:600;font-size:.9rem}
input,select,button{font:inherit;padding:.4rem .5rem;border:1px solid var(--line);border-radius:6px}
button.primary{background:#b42318;color:#fff;border-color:#b42318;cursor:pointer;font-weight:600}
.login{max-width:24rem;margin:12vh auto;background:#fff;border:1px solid var(--line);border-radius:8px;padding:1.2rem}
.login input{width:100%}
.error{color:var(--red);font-weight:600}
pre{white-space:pre-wrap;word-break:break-word;font-size:.82rem;background:var(--bg);padding:.4rem;border-radius:4px;margin:.2rem 0}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.6rem}
.kpi{border:1px solid var(--line);border-radius:6px;padding:.5rem}.kpi b{display:block;font-size:1.2rem}
section>:first-child{margin-top:0}section>:last-child{margin-bottom:0}
@media (max-width:480px){main{padding:.6rem}section{padding:.6rem .7rem}th,td{padding:.3rem .35rem}td.wrap{min-width:10rem}header{gap:.3rem .9rem}header .brand{margin-right:0}}
"#;

fn page(title: &str, session: Option<&Session>, reload: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if reload { meta http-equiv="refresh" content=(RELOAD); }
                title { (title) " · ripcord" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.brand { "ripcord" }
                    @if let Some(s) = session {
                        a href="/" { "Overview" }
                        a href="/runs" { "Runs" }
                        a href="/snapshots" { "Snapshots" }
                        a href="/audit" { "Audit" }
                        span.who { (s.principal.name) " · " (s.principal.role) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn login(error: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        false,
        html! {
            form.login method="post" action="/login" {
                h1 { "Log in" }
                p.muted { "With a token from " code { "ripcord token add" } "." }
                @if let Some(e) = error { p.error { (e) } }
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="off" required;
                p { button.primary type="submit" { "Log in" } }
            }
        },
    )
}

pub fn message(title: &str, text: &str) -> Markup {
    page(
        title,
        None,
        false,
        html! { h1 { (title) } section { p { (text) } p { a href="/" { "Back" } } } },
    )
}

/// "3m", "2h 5m", "4d": an age for people.
fn age(seconds: Option<f64>) -> String {
    match seconds {
        None => "never".into(),
        Some(s) => format!(
            "{} ago",
            ripcord_core::duration::short(std::time::Duration::from_secs(s.max(0.0) as u64))
        ),
    }
}

fn verdict_badge(v: Verdict) -> Markup {
    let (class, text) = match v {
        Verdict::Green => ("green", "fresh"),
        Verdict::Amber => ("amber", "due soon"),
        Verdict::Red => ("red", "overdue"),
        Verdict::Unjudged => ("grey", "no max age"),
    };
    html! { span class={ "badge " (class) } data-verdict=(text) { (text) } }
}

fn result_badge(result: &str) -> Markup {
    let class = match result {
        "succeeded" => "green",
        "running" | "started" => "amber",
        "failed" | "interrupted" => "red",
        _ => "grey",
    };
    html! { span class={ "badge " (class) } { (result) } }
}

/// A badge of `class` (a colour) saying `text`.
fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (text) } }
}

fn short(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}

pub fn overview(
    session: &Session,
    board: &Board,
    status: Option<&StatusView>,
    levels: &[String],
    check: Option<&CheckReport>,
) -> Markup {
    let running = status.and_then(|s| s.status.run.as_ref());
    let safe = status.and_then(|s| s.status.safe_mode.as_ref());
    let body = html! {
        h1 { "Overview" }
        @if let Some(m) = safe {
            div.banner.red { "Safe mode since " (short(&m.since)) ": migrations and automatic runs are refused until someone acknowledges it." }
        }
        section #targets {
            h2 { "Targets" }
            div.scroll { table {
                thead { tr { th { "Target" } th { "Kind" } th { "Last snapshot" } th { "Age" } th { "Snapshots" } } }
                tbody {
                    @for t in &board.targets {
                        tr {
                            td { b { (t.name) } }
                            td { (t.kind) }
                            td { @if let Some(id) = &t.last_snapshot { code { (id.get(..8).unwrap_or(id)) } } @else { span.muted { "none" } } }
                            td { (age(t.age_seconds)) }
                            td { (t.snapshots) }
                        }
                    }
                }
            } }
            @if let Err(e) = &board.snapshots { p.error { "The repository cannot be read: " (e.message) } }
        }
        section #tiers {
            h2 { "Tier freshness" }
            @if board.tiers.is_empty() {
                p.muted { "No tiers are configured." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Tier" } th { "Target" } th { "Newest" } th { "Max age" } th { "Freshness" } } }
                    tbody {
                        @for t in &board.tiers {
                            tr {
                                td { (t.tier) @if t.repository.is_some() { " " span.muted { "(geo)" } } }
                                td { (t.target) }
                                td { (age(t.age_seconds)) }
                                td { @if let Some(m) = t.max_age_seconds { (ripcord_core::duration::short(std::time::Duration::from_secs(m as u64))) } @else { "–" } }
                                td { (verdict_badge(t.verdict)) @if let Some(e) = &t.error { " " span.muted { (e) } } }
                            }
                        }
                    }
                } }
            }
        }
        section #run {
            h2 { "Current run" }
            @if let Some(run) = running {
                p {
                    a href={ "/runs/" (run.run) } { code { (run.run) } } " · " (run.kind)
                    @if let Some(l) = &run.level { " at level " b { (l) } }
                    " · " (run.reason)
                }
                @if let Some(s) = status {
                    p { "Step: " b { (s.status.step.clone().unwrap_or_default()) }
                        @if let Some(e) = s.status.elapsed_seconds { " · running for " (ripcord_core::duration::short(std::time::Duration::from_secs(e as u64))) }
                        @if let Some(eta) = s.status.eta_seconds { " · about " (ripcord_core::duration::short(std::time::Duration::from_secs(eta as u64))) " left" }
                    }
                    @if let Some(p) = &s.progress { (progress(p)) }
                    @if s.status.alive == Some(false) { p.error { "Its process is gone: resume it from the run's page or with " code { "ripcord resume" } "." } }
                }
            } @else {
                p.muted { "No run is in progress." }
            }
            @if session.principal.role >= Role::Operator && running.is_none() {
                h2 { "Start a recovery" }
                @if levels.is_empty() {
                    p.muted { "No runbook levels are configured." }
                } @else {
                    form.recover method="post" action="/ui/recover" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        label for="level" { "Level" }
                        select #level name="level" { @for l in levels { option value=(l) { (l) } } }
                        label for="reason" { "Reason (goes into the journal, the audit and the report)" }
                        input #reason type="text" name="reason" required minlength="3" placeholder="why this recovery";
                        button.primary #start type="submit" { "Start recovery" }
                    }
                }
            }
        }
        section #guard {
            h2 { "Guard" }
            @match &board.guard {
                None => p.muted { "No guard probes are configured." },
                Some(Err(e)) => p.error { (e.message) },
                Some(Ok(g)) => {
                    p { "Verdict: " b { (g.check.result) } }
                    div.scroll { table {
                        thead { tr { th { "Rule" } th { "State" } th { "Severity" } th { "Action" } th { "Evidence" } } }
                        tbody { @for r in &g.check.rules {
                            @let state = serde_json::to_value(r.evaluation.verdict).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                            tr {
                                td { (r.evaluation.rule) }
                                td { (badge(match state.as_str() { "healthy" => "green", "breached" => "red", _ => "grey" }, &state)) }
                                td { (r.severity) } td { (r.action) " (" (r.mode) ")" }
                                td.wrap { (r.evaluation.evidence.join("; ")) }
                            }
                        } }
                    } }
                }
            }
        }
        @if let Some(c) = check {
            section #check {
                h2 { "Check" }
                div.scroll { table {
                    tbody { @for i in &c.items {
                        tr {
                            td { (i.what) }
                            td { (match i.state { CheckState::Ok => badge("green", "ok"), CheckState::Warning => badge("amber", "warning"), CheckState::Failed => badge("red", "failed") }) }
                            td.wrap { (i.detail) }
                        }
                    } }
                } }
            }
        }
        p.muted { "As of " (board.at.format("%Y-%m-%d %H:%M:%S UTC")) }
    };
    page("Overview", Some(session), running.is_some(), body)
}

fn progress(p: &RunProgress) -> Markup {
    html! {
        @if let Some(bar) = &p.bar {
            p { (bar) ": " (ripcord_ops::report::bytes(p.done_bytes))
                @if let Some(t) = p.total_bytes { " of " (ripcord_ops::report::bytes(t)) } }
            @if let Some(t) = p.total_bytes { progress max=(t) value=(p.done_bytes.min(t)) {} }
        }
        @if !p.message.is_empty() { p.muted { (p.message) } }
    }
}

pub fn runs(session: &Session, board: &Board) -> Markup {
    let body = html! {
        h1 { "Runs" }
        section {
            @match &board.runs {
                Err(e) => p.error { (e.message) },
                Ok(runs) if runs.is_empty() => p.muted { "No run yet." },
                Ok(runs) => div.scroll { table {
                    thead { tr { th { "Run" } th { "Started" } th { "Kind" } th { "Level" } th { "Result" } th { "By" } th { "Reason" } } }
                    tbody { @for r in runs {
                        tr {
                            td { a href={ "/runs/" (r.run) } { code { (r.run) } } }
                            td { (short(&r.started)) }
                            td { (r.kind) } td { (r.level.clone().unwrap_or_default()) }
                            td { (result_badge(r.result.as_str())) }
                            td { (r.actor) }
                            td.wrap { (r.reason) }
                        }
                    } }
                } },
            }
        }
    };
    let running = board
        .runs
        .as_ref()
        .is_ok_and(|r| r.iter().any(|r| r.finished.is_none()));
    page("Runs", Some(session), running, body)
}

pub fn run(session: &Session, r: &IncidentReport, live: Option<&RunProgress>) -> Markup {
    let secs = |s: Option<f64>| s.map_or("–".to_string(), |s| format!("{s:.1} s"));
    let result = r.run.result.as_str();
    let body = html! {
        h1 { "Run " code { (r.run.run) } " " (result_badge(result)) }
        section #summary {
            p { (r.run.kind) @if let Some(l) = &r.run.level { " at level " b { (l) } } " · started " (short(&r.run.started)) " by " (r.run.actor) " (" (r.run.trigger) ")" }
            p { "Reason: " (r.run.reason) }
            @if let Some(p) = live { (progress(p)) }
        }
        section #report {
            h2 { "Report" }
            div.kpis {
                div.kpi { span.muted { "RTO" } b { (secs(r.rto_seconds)) } @if let Some(o) = r.rto_objective_seconds { span.muted { "objective " (secs(Some(o))) } } }
                div.kpi { span.muted { "RPO" } b { (secs(r.rpo_seconds)) } @if let Some(o) = r.rpo_objective_seconds { span.muted { "objective " (secs(Some(o))) } } }
                div.kpi { span.muted { "Rows restored" } b { (r.data.restored_rows) } }
                div.kpi { span.muted { "Rows kept" } b { (r.data.kept_rows) } }
                div.kpi { span.muted { "Rows to review" } b { (r.data.review_rows) } }
            }
            @if !r.escalations.is_empty() { p { "Escalations: " (r.escalations.join(", ")) } }
            @if !r.fallbacks.is_empty() { p { "Fallbacks: " (r.fallbacks.join("; ")) } }
            @if !r.checklist.is_empty() { h2 { "Still to do" } ul { @for c in &r.checklist { li { (c) } } } }
        }
        section #timeline {
            h2 { "Timeline" }
            div.scroll { table {
                thead { tr { th { "#" } th { "Level" } th { "Step" } th { "State" } th { "Started" } th { "Took" } th { "Output" } } }
                tbody { @for s in &r.timeline {
                    tr {
                        td { (s.seq) } td { (s.level.clone().unwrap_or_default()) }
                        td.wrap { (s.name) }
                        td { (result_badge(&s.state)) @if s.attempts > 1 { " ×" (s.attempts) } }
                        td { (short(&s.started)) } td { (secs(s.seconds)) }
                        td.wrap { @if let Some(o) = &s.output { pre { (o) } } }
                    }
                } }
            } }
        }
    };
    page(
        &format!("Run {}", r.run.run),
        Some(session),
        r.run.finished.is_none(),
        body,
    )
}

pub fn snapshots(session: &Session, board: &Board, page_no: usize) -> Markup {
    let body = html! {
        h1 { "Snapshots" }
        section {
            @match &board.snapshots {
                Err(e) => p.error { (e.message) },
                Ok(all) => {
                    @let pages = all.len().div_ceil(PER_PAGE).max(1);
                    @let shown = all.iter().skip((page_no - 1) * PER_PAGE).take(PER_PAGE);
                    div.scroll { table {
                        thead { tr { th { "Snapshot" } th { "Time" } th { "Tier" } th { "Tags" } th { "Targets" } th { "Size" } } }
                        tbody { @for s in shown {
                            tr {
                                td { code { (s.snapshot.short()) } }
                                td { (s.time.format("%Y-%m-%d %H:%M:%S")) }
                                td { (s.tier.clone().unwrap_or_default()) }
                                td { (s.tags.join(", ")) }
                                td { (s.targets.iter().map(|t| t.target.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (ripcord_ops::report::bytes(s.bytes)) }
                            }
                        } }
                    } }
                    p.muted {
                        (all.len()) " snapshots · page " (page_no) " of " (pages)
                        @if page_no > 1 { " · " a href={ "/snapshots?page=" (page_no - 1) } { "newer" } }
                        @if page_no < pages { " · " a href={ "/snapshots?page=" (page_no + 1) } { "older" } }
                    }
                }
            }
        }
    };
    page("Snapshots", Some(session), false, body)
}

pub fn audit(session: &Session, board: &Board) -> Markup {
    let body = html! {
        h1 { "Audit" }
        @match &board.audit {
            Err(e) => section { p.error { (e.message) } },
            Ok(a) => {
                @match &a.verification.chain.first_bad {
                    None => div.banner.green #chain data-chain="intact" {
                        "The chain verifies: " (a.verification.chain.entries) " entries"
                        @if a.verification.sealed_snapshots > 0 { ", matching what " (a.verification.sealed_snapshots) " snapshots sealed" }
                        "."
                    },
                    Some(bad) => div.banner.red #chain data-chain="broken" {
                        "The chain is broken at entry " (bad.seq) ": " (bad.problem)
                    },
                }
                section {
                    div.scroll { table {
                        thead { tr { th { "#" } th { "Time" } th { "Actor" } th { "Command" } th { "Result" } th { "Run" } th { "Reason" } } }
                        tbody { @for e in a.entries.iter().rev().take(200) {
                            tr {
                                td { (e.seq) } td { (short(&e.time)) } td { (e.input.actor) }
                                td { (e.input.command) } td.wrap { (e.input.result) }
                                td { @if let Some(r) = &e.input.run { a href={ "/runs/" (r) } { code { (r) } } } }
                                td.wrap { (e.input.reason.clone().unwrap_or_default()) }
                            }
                        } }
                    } }
                }
            }
        }
    };
    page("Audit", Some(session), false, body)
}
