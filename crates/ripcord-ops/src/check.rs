//! `ripcord check`: is this host ready to protect and to bring back? The
//! repository opens, every target can be reached, the migration plan reads,
//! the catalog works, and ripcord is not in safe mode or in a stopped run.
//! It reads and changes nothing.

use ripcord_core::config::TargetConfig;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CheckState {
    Ok,
    /// Works, but a person should look.
    Warning,
    Failed,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CheckItem {
    /// `repository`, `target NAME`, `migrations`, `catalog`, `safe mode`, `runs`, `audit`.
    pub what: String,
    pub state: CheckState,
    pub detail: String,
    /// What to do about it, when it is not ok.
    pub hint: Option<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CheckReport {
    /// No item failed.
    pub ok: bool,
    pub items: Vec<CheckItem>,
}

fn item(what: impl Into<String>, state: CheckState, detail: impl Into<String>) -> CheckItem {
    CheckItem {
        what: what.into(),
        state,
        detail: detail.into(),
        hint: None,
    }
}

fn failed(what: impl Into<String>, detail: impl Into<String>, hint: &str) -> CheckItem {
    CheckItem {
        hint: Some(hint.to_string()),
        ..item(what, CheckState::Failed, detail)
    }
}

pub fn check(ctx: &Ctx) -> Result<CheckReport> {
    let mut items = repository(ctx);
    for (name, target) in &ctx.config.targets {
        items.push(target_item(name, target));
    }
    if ctx.config.migrations.is_some() {
        items.push(migrations(ctx));
    }
    items.extend(geo(ctx));
    catalog(ctx, &mut items);
    items.push(audit(ctx));
    Ok(CheckReport {
        ok: items.iter().all(|i| i.state != CheckState::Failed),
        items,
    })
}

fn repository(ctx: &Ctx) -> Vec<CheckItem> {
    let url = match ctx.config.repository_url() {
        Ok(u) => u.to_string(),
        Err(e) => {
            return vec![failed(
                "repository",
                e.to_string(),
                "set [repository] url in ripcord.toml, or RIPCORD_REPOSITORY",
            )]
        }
    };
    let opened = ctx.open_repo().and_then(|repo| {
        let list = repo.snapshot_list()?;
        let stale = ripcord_repo::lock::removable_locks(&repo, false)?;
        Ok((repo.keys().is_encrypted(), list.snapshots, stale))
    });
    match opened {
        Ok((encrypted, snapshots, stale)) => {
            let mut items = vec![item(
                "repository",
                CheckState::Ok,
                format!(
                    "{url}: {}, {}",
                    if encrypted {
                        "encrypted"
                    } else {
                        "not encrypted"
                    },
                    ripcord_core::text::counted(snapshots.len() as u64, "snapshot")
                ),
            )];
            if !stale.is_empty() {
                items.push(CheckItem {
                    hint: Some("`ripcord unlock` removes locks whose process is gone".into()),
                    ..item(
                        "locks",
                        CheckState::Warning,
                        format!(
                            "{} left by a process that ended: {}",
                            ripcord_core::text::count(
                                stale.len() as u64,
                                "stale lock",
                                "stale locks"
                            ),
                            stale
                                .iter()
                                .map(|(_, shown)| shown.as_str())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    )
                });
            }
            items.extend(freshness(ctx, &snapshots));
            items.push(free_space("free space", &url, &snapshots));
            items
        }
        Err(e) => vec![CheckItem {
            hint: ripcord_core::Classify::hint(&e)
                .or_else(|| Some("`ripcord init` creates a repository".into())),
            ..item(
                "repository",
                CheckState::Failed,
                format!("{url}: {}", e.chain()),
            )
        }],
    }
}

/// For every tier with a `max_age`, each of its targets' newest snapshot
/// of that tier: fresh enough, or overdue.
fn freshness(
    ctx: &Ctx,
    snapshots: &[(ripcord_repo::Id, ripcord_repo::manifest::Snapshot)],
) -> Vec<CheckItem> {
    let mut items = Vec::new();
    for (tier, config) in &ctx.config.tiers {
        let Some(max) = config.max_age() else {
            continue;
        };
        // A geo tier's snapshots are in its own repository: see `geo`.
        if config.is_geo() {
            continue;
        }
        for target in crate::schedule::tier_targets(ctx, config) {
            let newest = snapshots
                .iter()
                .filter(|(_, s)| s.tier.as_deref() == Some(tier) && s.target(&target).is_some())
                .map(|(_, s)| s.time)
                .max();
            let hint = format!("`ripcord snapshot {target} --tier {tier}`");
            items.push(fresh(format!("tier {tier}: {target}"), newest, max, hint));
        }
    }
    items
}

/// The newest snapshot's age against `max`.
fn fresh(
    what: String,
    newest: Option<chrono::DateTime<chrono::Utc>>,
    max: std::time::Duration,
    hint: String,
) -> CheckItem {
    let now = chrono::Utc::now();
    let short = ripcord_core::duration::short;
    let hint = Some(hint);
    let age = newest.map(|t| (now - t).to_std().unwrap_or_default());
    match age {
        None => CheckItem {
            hint,
            ..item(
                what,
                CheckState::Failed,
                format!("no snapshot of this tier yet (max age {})", short(max)),
            )
        },
        Some(age) if age > max => CheckItem {
            hint,
            ..item(
                what,
                CheckState::Failed,
                format!(
                    "overdue: the newest is {} old (max age {})",
                    short(age),
                    short(max)
                ),
            )
        },
        Some(age) => item(
            what,
            CheckState::Ok,
            format!("the newest is {} old (max age {})", short(age), short(max)),
        ),
    }
}

/// Free space where the repository lives. A local folder warns under 10%
/// of its file system free, or under twice the newest snapshot's size (a
/// snapshot in which everything changed needs up to its size again);
/// object storage has no such limit.
fn free_space(
    what: &str,
    url: &str,
    snapshots: &[(ripcord_repo::Id, ripcord_repo::manifest::Snapshot)],
) -> CheckItem {
    if url.starts_with("s3://") {
        return item(what, CheckState::Ok, "object storage: no free-space limit");
    }
    let Ok(root) = ripcord_repo::backend::local_root(url) else {
        return item(what, CheckState::Ok, "not a local folder: not measured");
    };
    let stat = match rustix::fs::statvfs(&root) {
        Ok(s) => s,
        Err(e) => {
            return CheckItem {
                hint: Some("check that the repository's file system is mounted".into()),
                ..item(
                    what,
                    CheckState::Warning,
                    format!("cannot measure {}: {e}", root.display()),
                )
            }
        }
    };
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let total = stat.f_blocks.saturating_mul(stat.f_frsize);
    let newest = snapshots
        .iter()
        .max_by_key(|(_, s)| s.time)
        .map_or(0, |(_, s)| s.total_size());
    let bytes = crate::report::bytes;
    let percent = if total == 0 {
        100.0
    } else {
        free as f64 * 100.0 / total as f64
    };
    let detail = format!(
        "{} free of {} ({percent:.0}%) on the file system of {}",
        bytes(free),
        bytes(total),
        root.display()
    );
    let low_share = percent < 10.0;
    let low_room = free < newest.saturating_mul(2);
    if !low_share && !low_room {
        return item(what, CheckState::Ok, detail);
    }
    let why = if low_room {
        format!("; less than twice the newest snapshot ({})", bytes(newest))
    } else {
        "; less than 10%".into()
    };
    CheckItem {
        hint: Some(
            "free space there, move the repository to a larger disk, or forget snapshots and \
             prune (`ripcord forget --tier T --prune`)"
                .into(),
        ),
        ..item(what, CheckState::Warning, format!("{detail}{why}"))
    }
}

/// Each geo tier: its repository opens (with its own passphrase), has
/// room, and holds a fresh enough copy of each target.
fn geo(ctx: &Ctx) -> Vec<CheckItem> {
    let mut items = Vec::new();
    for (tier, config) in &ctx.config.tiers {
        let Some(url) = &config.repository else {
            continue;
        };
        let what = format!("tier {tier}: repository");
        let opened = crate::copy::open_other(ctx, url, config.password_command.as_deref())
            .and_then(|repo| Ok(repo.snapshot_list()?.snapshots));
        let snapshots = match opened {
            Ok(s) => s,
            Err(e) => {
                let e = crate::schedule::geo_error(tier, url, e);
                items.push(CheckItem {
                    hint: ripcord_core::Classify::hint(&e),
                    ..item(what, CheckState::Failed, e.to_string())
                });
                continue;
            }
        };
        items.push(item(
            what,
            CheckState::Ok,
            format!(
                "{url}: {}",
                ripcord_core::text::counted(snapshots.len() as u64, "snapshot")
            ),
        ));
        items.push(free_space(
            &format!("tier {tier}: free space"),
            url,
            &snapshots,
        ));
        let Some(max) = config.max_age() else {
            continue;
        };
        for target in crate::schedule::tier_targets(ctx, config) {
            let newest = snapshots
                .iter()
                .filter(|(_, s)| !s.is_safety() && s.target(&target).is_some())
                .map(|(_, s)| s.time)
                .max();
            let hint = "`ripcord schedule run` copies the newest snapshots there".to_string();
            items.push(fresh(format!("tier {tier}: {target}"), newest, max, hint));
        }
    }
    items
}

/// Sends `check-failed`, with the failed items, to the webhooks that take
/// it; returns one line per delivery that failed. `check` itself only
/// reads: the front end that runs it for a person or a timer sends this.
pub fn notify_failed(ctx: &Ctx, report: &CheckReport) -> Vec<String> {
    let failed: Vec<&CheckItem> = report
        .items
        .iter()
        .filter(|i| i.state == CheckState::Failed)
        .collect();
    if failed.is_empty() || ctx.config.notify.is_empty() {
        return Vec::new();
    }
    let text = format!(
        "check on {}: {} failed: {}",
        ripcord_repo::hostname(),
        ripcord_core::text::count(failed.len() as u64, "item", "items"),
        failed
            .iter()
            .map(|i| format!("{}: {}", i.what, i.detail))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let items = failed
        .iter()
        .map(|i| serde_json::to_value(i).expect("plain fields serialize"))
        .collect();
    crate::notify::send(
        &ctx.config,
        &crate::notify::Event::about("check-failed", text, items),
    )
}

fn target_item(name: &str, target: &TargetConfig) -> CheckItem {
    let what = format!("target {name}");
    match target {
        TargetConfig::Dir { path, .. } => match std::fs::read_dir(path) {
            Ok(_) => item(what, CheckState::Ok, format!("folder {}", path.display())),
            Err(e) => failed(
                what,
                format!("folder {}: {e}", path.display()),
                "check the target's path in ripcord.toml and that this user may read it",
            ),
        },
        TargetConfig::Sqlite { path, create, .. } => {
            if !path.exists() {
                return if *create {
                    item(
                        what,
                        CheckState::Warning,
                        format!(
                            "{} does not exist yet; `migrate up` creates it",
                            path.display()
                        ),
                    )
                } else {
                    failed(
                        what,
                        format!("{} does not exist", path.display()),
                        "check the target's path, or set create = true if `migrate up` should \
                         create it",
                    )
                };
            }
            let opened = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                    r.get::<_, i64>(0)
                })
            });
            match opened {
                Ok(n) => item(
                    what,
                    CheckState::Ok,
                    format!(
                        "SQLite {}: {}",
                        path.display(),
                        ripcord_core::text::counted(n as u64, "schema object")
                    ),
                ),
                Err(e) => failed(
                    what,
                    format!("SQLite {}: {e}", path.display()),
                    "check that the file is a SQLite database this user may read",
                ),
            }
        }
        TargetConfig::Postgres { url, .. } => {
            let shown = ripcord_targets::postgres::redact(url);
            let answered = ripcord_targets::postgres::Target::parse(url)
                .and_then(|t| t.connect())
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    c.query_one("SHOW server_version", &[])
                        .map(|r| r.get::<_, String>(0))
                        .map_err(|e| e.to_string())
                });
            match answered {
                Ok(v) => item(what, CheckState::Ok, format!("PostgreSQL {v} at {shown}")),
                Err(e) => failed(
                    what,
                    format!("{shown}: {e}"),
                    "check the URL, that the server is up, and the credentials",
                ),
            }
        }
    }
}

fn migrations(ctx: &Ctx) -> CheckItem {
    let setup = match crate::migrate::setup(ctx, None) {
        Ok(s) => s,
        Err(e) => {
            return CheckItem {
                hint: ripcord_core::Classify::hint(&e),
                ..item("migrations", CheckState::Failed, e.chain())
            }
        }
    };
    let total = setup.plan.changes.len();
    let recorded = match &setup.target {
        Some((_, t)) => ripcord_migrate::tracking::recorded(t),
        None => Ok(None),
    };
    match recorded {
        Ok(rows) => {
            let applied = rows.map_or(0, |r| r.len());
            item(
                "migrations",
                CheckState::Ok,
                format!(
                    "{}: {} in the plan, {} recorded as applied",
                    setup.dir.display(),
                    ripcord_core::text::counted(total as u64, "change"),
                    applied
                ),
            )
        }
        Err(e) => failed(
            "migrations",
            format!("the target's migration records cannot be read: {e}"),
            "check that the migration target can be reached (see its target line)",
        ),
    }
}

/// The catalog, safe mode, and a run in progress or stopped.
fn catalog(ctx: &Ctx, items: &mut Vec<CheckItem>) {
    let location = ctx.catalog_location();
    let mut catalog = match ripcord_catalog::open_existing(&location) {
        Ok(Some(c)) => c,
        Ok(None) => {
            items.push(item(
                "catalog",
                CheckState::Ok,
                format!(
                    "{} does not exist yet; the first command that changes something creates it",
                    location.name()
                ),
            ));
            return;
        }
        Err(e) => {
            items.push(CheckItem {
                hint: ripcord_core::Classify::hint(&e),
                ..item("catalog", CheckState::Failed, e.to_string())
            });
            return;
        }
    };
    items.push(item(
        "catalog",
        CheckState::Ok,
        format!(
            "{} (schema {})",
            location.name(),
            catalog.schema_version().unwrap_or_default()
        ),
    ));
    match catalog.safe_mode() {
        Ok(None) => items.push(item("safe mode", CheckState::Ok, "off")),
        Ok(Some(m)) => items.push(failed(
            "safe mode",
            format!(
                "on since {}{}: migrate up and automatic runs are refused",
                m.since,
                m.run
                    .as_ref()
                    .map_or(String::new(), |r| format!(", after run {r} failed"))
            ),
            "find what failed (`ripcord report RUN`), then `ripcord ack --reason TEXT`",
        )),
        Err(e) => items.push(failed("safe mode", e.to_string(), "check the catalog file")),
    }
    match catalog.last_drill() {
        Ok(Some((started, result))) => items.push(CheckItem {
            hint: (result != "passed")
                .then(|| "`ripcord drill` again, and find out why a restore failed".into()),
            ..item(
                "drill",
                if result == "passed" {
                    CheckState::Ok
                } else {
                    CheckState::Failed
                },
                format!("the last restore drill {result} ({started})"),
            )
        }),
        Ok(None) => items.push(CheckItem {
            hint: Some(
                "`ripcord drill` restores the latest snapshots into scratch and checks them".into(),
            ),
            ..item("drill", CheckState::Warning, "no restore drill yet")
        }),
        Err(e) => items.push(failed("drill", e.to_string(), "check the catalog file")),
    }
    if let Ok(Some(h)) = catalog.flight_holder() {
        let state = if catalog.holder_alive(&h).ok().flatten() == Some(false) {
            CheckItem {
                hint: Some(format!("`ripcord resume {}` goes on with it", h.run)),
                ..item(
                    "runs",
                    CheckState::Warning,
                    format!(
                        "run {} stopped part way (pid {} on {} is gone)",
                        h.run, h.pid, h.host
                    ),
                )
            }
        } else {
            item(
                "runs",
                CheckState::Warning,
                format!("run {} is in progress (pid {} on {})", h.run, h.pid, h.host),
            )
        };
        items.push(state);
    }
}

/// The audit chain, against itself and the heads snapshots sealed.
fn audit(ctx: &Ctx) -> CheckItem {
    match crate::audit::verify(ctx) {
        Ok(v) => match &v.chain.first_bad {
            None => item(
                "audit",
                CheckState::Ok,
                format!(
                    "chain intact, {}{}",
                    ripcord_core::text::count(v.chain.entries, "entry", "entries"),
                    if v.sealed_snapshots > 0 {
                        format!(
                            ", as {} sealed it",
                            ripcord_core::text::counted(v.sealed_snapshots, "snapshot")
                        )
                    } else {
                        String::new()
                    }
                ),
            ),
            Some(bad) => failed(
                "audit",
                format!("the chain is broken at entry {}: {}", bad.seq, bad.problem),
                "`ripcord audit --verify` tells more; find out who changed the catalog",
            ),
        },
        Err(e) => failed("audit", e.chain(), "check the catalog file"),
    }
}
