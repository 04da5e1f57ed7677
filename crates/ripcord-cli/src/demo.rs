//! `ripcord demo`: the whole story on a throwaway app, with nothing but this
//! binary. It builds a small app (a SQLite database and a config folder),
//! snapshots it, breaks both, restores, and proves the result identical;
//! then migrates it in two phases, dropping a column full of data, and rolls
//! back with every value put back; then a bad deploy at night, undone by a
//! recovery run from a runbook, with its RTO and RPO.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use ripcord_core::config::Config;
use ripcord_repo::verify::{verify, VerifyOptions};
use ripcord_repo::Repository;

use ripcord_migrate::engine::{self, DownOptions, Note, Scope, UpOptions};
use ripcord_migrate::tracking::SqliteTracker;

use ripcord_ops::migrate::actor;
use ripcord_ops::net::{Repo, RepoNet};
use ripcord_ops::restore::RestoreOptions;
use ripcord_ops::{restore, snapshot};

use crate::commands::migrate::millis;
use crate::ctx::Ctx;
use crate::output;

fn step(n: u32, text: &str) {
    println!(
        "\n{} {text}",
        console::style(format!("[{n}]")).cyan().bold()
    );
}

fn note(text: impl AsRef<str>) {
    println!("    {}", text.as_ref());
}

pub fn run(keep: bool) -> Result<()> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("ripcord-demo-").tempdir()?;
    let root = tmp.path().to_path_buf();
    println!("ripcord demo: a small app, its backups, a bad day, and the way back.");
    println!("working in {}", root.display());

    step(1, "Create the app: a SQLite database and a config folder");
    let db = root.join("app/app.db");
    let conf = root.join("app/config");
    build_app(&db, &conf)?;
    note(format!("{} with tables customers and orders", db.display()));
    note(format!(
        "{} with settings, a nested folder and a symlink",
        conf.display()
    ));

    step(2, "Write ripcord.toml and create an encrypted repository");
    let toml = format!(
        "[repository]\nurl = \"{}\"\npassword_command = \"printf demo-passphrase\"\n\n[targets.db]\nkind = \"sqlite\"\npath = \"{}\"\n\n[targets.config]\nkind = \"dir\"\npath = \"{}\"\nexclude = [\"*.tmp\"]\n",
        root.join("repo").display(),
        db.display(),
        conf.display()
    );
    let config_path = root.join("ripcord.toml");
    fs::write(&config_path, &toml)?;
    let config = Config::load(&config_path, &[])?;
    let ctx = Ctx::new(config, Some(config_path), false, true);
    let pass = ctx.passphrase("")?.context("demo passphrase")?;
    fs::create_dir_all(root.join("repo"))?;
    let repo = Repository::init(ctx.backend()?, Some(&pass))?;
    note(format!(
        "repository {} (XChaCha20-Poly1305, key wrapped with Argon2id)",
        repo.config().id.short()
    ));

    step(3, "Snapshot both targets");
    let names = vec!["db".to_string(), "config".to_string()];
    let first = snapshot::take(&ctx, &repo, &names, &["demo".into()], None)?;
    note(format!(
        "snapshot {}: {} in {}, {} stored after dedup+zstd+encryption, {:.2}s",
        first.short_id,
        output::bytes(first.size),
        output::counted(first.files, "file"),
        output::bytes(first.stats.stored_bytes),
        first.seconds
    ));
    let before_tables =
        ripcord_targets::sqlite::table_stats(&rusqlite::Connection::open(&db)?, &db)?;
    let before_tree = fingerprint(&conf)?;
    let again = snapshot::take(&ctx, &repo, &names, &[], None)?;
    note(format!(
        "a second snapshot of the unchanged app: {} of {} files not even re-read, {} new, {:.2}s",
        again.unchanged_files,
        again.files,
        output::bytes(again.stats.new_bytes),
        again.seconds
    ));

    step(
        4,
        "A bad day: a faulty deploy damages the database and the config",
    );
    let conn = rusqlite::Connection::open(&db)?;
    let deleted = conn.execute("DELETE FROM orders WHERE id % 3 = 0", [])?;
    conn.execute("UPDATE customers SET email = NULL", [])?;
    conn.execute("DROP TABLE IF EXISTS audit", [])?;
    drop(conn);
    note(format!(
        "deleted {deleted} orders, wiped every customer email, dropped table audit"
    ));
    fs::write(conf.join("app.toml"), "this is not toml {{{")?;
    fs::remove_file(conf.join("features/flags.json"))?;
    fs::write(conf.join("stray.conf"), "left over from the bad deploy\n")?;
    note("overwrote app.toml, deleted features/flags.json, added stray.conf");
    if fingerprint(&conf)? == before_tree {
        bail!("the demo failed to damage the config folder");
    }

    step(5, "Restore the first snapshot in place");
    let args = RestoreOptions {
        snapshot: first.short_id.clone(),
        ..RestoreOptions::default()
    };
    let r = restore::restore(&ctx, &repo, &args)?;
    if let Some(s) = r.safety_snapshot {
        note(format!(
            "safety snapshot {} keeps the damaged state, in case it is needed",
            s.short()
        ));
    }
    for t in &r.targets {
        note(format!(
            "restored {}: {}, {}{}",
            t.name,
            output::counted(t.stats.files, "file"),
            output::bytes(t.stats.bytes),
            if t.stats.tables_verified > 0 {
                format!(
                    ", {} checked against the manifest",
                    output::counted(t.stats.tables_verified, "table")
                )
            } else {
                String::new()
            }
        ));
    }
    note(format!("restore took {:.2}s", r.seconds));

    step(6, "Prove the app is exactly as it was");
    let after_tables =
        ripcord_targets::sqlite::table_stats(&rusqlite::Connection::open(&db)?, &db)?;
    if after_tables != before_tables {
        bail!("database differs after restore");
    }
    for t in &after_tables {
        note(format!(
            "table {:<10} {:>6} rows, checksum {} matches",
            t.name,
            t.rows,
            &t.checksum[..16]
        ));
    }
    let after_tree = fingerprint(&conf)?;
    if after_tree != before_tree {
        bail!("config folder differs after restore");
    }
    note(format!(
        "config folder: every file, mode, mtime and symlink identical (fingerprint {})",
        &after_tree[..16]
    ));

    migration_story(&ctx, &repo, &root, &db)?;
    let config_path = recovery_story(&root, &conf, &toml)?;
    guard_story(&config_path, &db)?;

    step(
        11,
        "Verify the repository deeply: decrypt and re-hash every blob",
    );
    let report = verify(
        &repo,
        &VerifyOptions {
            deep: true,
            ..Default::default()
        },
        &|_, _| {},
    )?;
    if !report.ok() {
        bail!("verify found problems: {:?}", report.problems);
    }
    note(format!(
        "{}, {}, {} re-hashed: no problems",
        output::counted(report.snapshots as u64, "snapshot"),
        output::counted(report.packs_read as u64, "pack"),
        output::counted(report.blobs_checked as u64, "blob")
    ));

    println!(
        "\n{} the app was broken and is back, byte for byte, in {:.1}s overall.",
        output::green("done:"),
        started.elapsed().as_secs_f64()
    );
    if keep {
        let kept = tmp.keep();
        println!("kept the demo folder: {}", kept.display());
    }
    Ok(())
}

/// Step 9: a bad deploy at night (the contract phase again, and a broken
/// config), and `recover --level emergency` doing the whole way back from
/// the runbook, then its report with RTO and RPO.
fn recovery_story(root: &Path, conf: &Path, toml: &str) -> Result<PathBuf> {
    step(
        9,
        "3 a.m.: a bad deploy, and `ripcord recover --level emergency` from the runbook",
    );
    let app = root.join("app");
    let runbook = format!(
        r#"
[migrations]
target = "db"
dir = "{migrations}"

[objectives]
rto = "5m"
rpo = "1h"

[runbooks.emergency]
steps = [
  {{ kind = "command", run = "rm -f '{app}/running'", timeout = "10s" }},
  {{ kind = "restore", target = "config", snapshot = "latest:demo" }},
  {{ kind = "migrate-down", to = "@last-good" }},
  {{ kind = "check", sql = "SELECT count(*) FROM customers WHERE email IS NOT NULL", target = "db", expect = "500" }},
  {{ kind = "command", run = "touch '{app}/running'", idempotent = true }},
]
"#,
        migrations = app.join("migrations").display(),
        app = app.display()
    );
    let config_path = root.join("ripcord.toml");
    fs::write(&config_path, format!("{toml}{runbook}"))?;
    let config = Config::load(&config_path, &[])?;
    let ctx = Ctx::new(config, Some(config_path), false, true);
    note("ripcord.toml gains a runbook: stop the app, restore the config, migrate down to the state before the deploy (@last-good) with the data, check, start");

    fs::write(app.join("running"), "")?;
    ripcord_ops::migrate::up(
        &ctx.ops,
        &ripcord_ops::migrate::UpRequest::default(),
        &mut |_| {},
    )?;
    fs::write(conf.join("app.toml"), "listen = \"nowhere\"\n")?;
    note("the contract phase ships again (500 email addresses dropped) with a broken app.toml");

    let report = ripcord_ops::recover::recover(
        &ctx.ops,
        &ripcord_ops::recover::RecoverOptions {
            level: "emergency".into(),
            reason: "bad deploy at 3 a.m.".into(),
            trigger: "demo".into(),
            dry_run: false,
            overrun: None,
            run: None,
        },
    )?;
    for s in &report.steps {
        let detail = if s.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.detail)
        };
        note(format!("{}. {}: {}{detail}", s.seq, s.name, s.state));
    }
    if report.result != "succeeded" || !app.join("running").exists() {
        bail!("the recovery run did not succeed: {report:?}");
    }
    let incident = ripcord_ops::incident::report(&ctx.ops, &report.run)?;
    let secs = |s: Option<f64>| {
        s.map_or("-".into(), |s| {
            ripcord_core::duration::short(std::time::Duration::from_secs_f64(s.max(0.0)))
        })
    };
    note(format!(
        "run {} recovered: RTO {} (objective 5m), RPO {} (objective 1h); journaled and audited",
        report.run,
        secs(incident.rto_seconds),
        secs(incident.rpo_seconds)
    ));
    note("`ripcord report RUN` writes the whole incident report: timeline, data, checklist, KPIs");
    Ok(root.join("ripcord.toml"))
}

/// Step 10: the app's /health reads a customer's e-mail address. The
/// contract phase ships again with `migrate up --bake`; /health fails, and
/// the guard reverts exactly that change, data included, by itself.
fn guard_story(config_path: &Path, db: &Path) -> Result<()> {
    step(
        10,
        "The guard: `migrate up --bake` ships the contract phase again, /health fails, and the guard reverts it",
    );
    let url = health_service(db.to_path_buf())?;
    let guard = format!(
        r#"
[guard.probes.health]
http = "{url}"
interval = "200ms"
timeout = "1s"

[[guard.rules]]
name = "health-down"
when = "availability(health, 1s) < 100%"
for = 2
severity = "critical"
"#
    );
    let mut text = fs::read_to_string(config_path)?;
    text.push_str(&guard);
    fs::write(config_path, text)?;
    let config = Config::load(config_path, &[])?;
    let ctx = Ctx::new(config, Some(config_path.to_path_buf()), false, true);
    note(format!(
        "the app answers {url} by reading customer 1's e-mail address; the guard samples it every 200ms"
    ));
    let (applied, baked) = ripcord_guard::bake::up_and_bake(
        &ctx.ops,
        &ripcord_ops::migrate::UpRequest::default(),
        std::time::Duration::from_secs(10),
        &mut |_| {},
    )?;
    note(format!(
        "migrate up --bake 10s applied {}: customers.email is dropped, and /health starts failing",
        applied
            .report
            .changes
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let Some(run) = baked.and_then(|b| b.reverted_run) else {
        bail!("the guard did not revert the change");
    };
    let incident = ripcord_ops::incident::report(&ctx.ops, &run)?;
    let conn = rusqlite::Connection::open(db)?;
    let emails: i64 = conn.query_row(
        "SELECT count(*) FROM customers WHERE email IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    if !health_answers(&url)? {
        bail!("/health still fails after the guard's revert");
    }
    let rule = incident.run.trigger.clone();
    note(format!(
        "{rule} breached twice in a row: run {run} reverted the change; {emails} e-mail addresses are back"
    ));
    let secs = |s: Option<f64>| {
        s.map_or("-".into(), |s| {
            ripcord_core::duration::short(std::time::Duration::from_secs_f64(s.max(0.0)))
        })
    };
    note(format!(
        "/health answers 200 again; report of run {run}: RTO {}, RPO {}, data: {} rows restored, {} kept",
        secs(incident.rto_seconds),
        secs(incident.rpo_seconds),
        incident.data.restored_rows,
        incident.data.kept_rows
    ));
    if emails != 500 {
        bail!("the guard's revert left {emails} e-mail addresses, not 500");
    }
    Ok(())
}

/// Whether the health endpoint answers 200.
fn health_answers(url: &str) -> Result<bool> {
    use std::io::{Read, Write};
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(stream, "GET /health HTTP/1.1\r\nhost: {addr}\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.starts_with("HTTP/1.1 200"))
}

/// The demo app's health endpoint, on a thread of this process: 200 when
/// customer 1's e-mail address can be read, 500 when not.
fn health_service(db: PathBuf) -> Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/health", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let healthy = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .and_then(|c| {
                c.query_row("SELECT email FROM customers WHERE id = 1", [], |r| {
                    r.get::<_, Option<String>>(0)
                })
            })
            .is_ok_and(|e| e.is_some());
            let (code, body) = if healthy {
                (200, "ok")
            } else {
                (500, "no e-mail")
            };
            let _ = write!(
                &stream,
                "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(url)
}

/// Steps 7 and 8: a two-phase migration whose second phase drops a column
/// full of data, then a rollback that puts every value back.
fn migration_story(ctx: &Ctx, repo: &Repository, root: &Path, db: &Path) -> Result<()> {
    step(
        7,
        "Migrate in two phases: expand adds customers.phone, contract drops customers.email",
    );
    let dir = root.join("app/migrations");
    write_migrations(&dir)?;
    note(format!(
        "{}: 0001_add_phone (with down and verify), 0002_drop_email (no down script)",
        dir.display()
    ));
    let emails = |conn: &rusqlite::Connection| -> Result<Vec<(i64, Option<String>)>> {
        let mut stmt = conn.prepare("SELECT id, email FROM customers ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    };
    let before = emails(&rusqlite::Connection::open(db)?)?;
    let plan = ripcord_migrate::read(&dir)?;
    let mut tracker = SqliteTracker::open(db)?;
    let mut net = RepoNet {
        ctx: &ctx.ops,
        repo: Repo::Open(repo),
        target: "db".into(),
        policy: None,

        allow_unprotected: false,
        unprotected: Vec::new(),
        taken: None,
    };
    let actor = actor();
    let up = UpOptions {
        actor: actor.clone(),
        ..UpOptions::default()
    };
    engine::up(&mut tracker, &mut net, &plan, &up, &mut |n| match n {
        Note::Snapshot {
            change,
            id,
            scope: Scope::Tables(tables),
            ..
        } => note(format!(
            "safety snapshot {} of {} before {change}",
            &id[..8],
            tables.join(", ")
        )),
        Note::Applied(c) => note(format!(
            "applied {} in {}, in a transaction{}",
            c.name,
            millis(c.duration_ms),
            if c.verify { ", verified" } else { "" }
        )),
        _ => {}
    })?;
    let conn = rusqlite::Connection::open(db)?;
    let has_email: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('customers') WHERE name = 'email'",
        [],
        |r| r.get(0),
    )?;
    if has_email != 0 {
        bail!("the contract phase did not drop customers.email");
    }
    note(format!(
        "customers.email is gone, and with it {} addresses",
        before.iter().filter(|(_, e)| e.is_some()).count()
    ));
    conn.execute(
        "INSERT INTO customers (id, name, phone) VALUES (501, 'Customer 501', '+1-555-0501')",
        [],
    )?;
    drop(conn);
    note("the app keeps working and signs up customer 501 after the change");

    step(
        8,
        "Second thoughts: roll back to the expand phase, data included",
    );
    let down = DownOptions {
        to: "@expand".into(),
        actor,
        ..DownOptions::default()
    };
    let report = engine::down(&mut tracker, &mut net, &plan, &down, &mut |_| {})?;
    drop(tracker);
    for c in &report.changes {
        note(format!("reverted {} {}", c.name, c.how.describe()));
        for t in &c.tables {
            note(format!(
                "  {}: {} rows restored from the safety snapshot, {} newer row kept",
                t.table, t.restored_rows, t.kept_rows
            ));
        }
    }
    let after = emails(&rusqlite::Connection::open(db)?)?;
    let back = before.iter().filter(|row| after.contains(row)).count();
    if back != before.len() || after.len() != before.len() + 1 {
        bail!(
            "after the rollback {back} of {} emails are back and {} customers exist",
            before.len(),
            after.len()
        );
    }
    let lost: u64 = report.changes.iter().map(|c| c.rows_lost()).sum();
    note(format!(
        "all {back} email addresses are back in place, customer 501 is kept; data loss: {}",
        if lost == 0 {
            "none".to_string()
        } else {
            format!("{lost} rows")
        }
    ));
    Ok(())
}

fn write_migrations(dir: &Path) -> Result<()> {
    let files = [
        (
            "plan.toml",
            "[[phase]]\nname = \"expand\"\nchanges = [\"0001_add_phone\"]\n\n\
             [[phase]]\nname = \"contract\"\nchanges = [\"0002_drop_email\"]\n",
        ),
        (
            "0001_add_phone/up.sql",
            "ALTER TABLE customers ADD COLUMN phone TEXT;\n\
             UPDATE customers SET phone = printf('+1-555-%04d', id);\n",
        ),
        (
            "0001_add_phone/down.sql",
            "ALTER TABLE customers DROP COLUMN phone;\n",
        ),
        (
            "0001_add_phone/verify.sql",
            "SELECT 1 / (SELECT count(*) FROM customers WHERE phone IS NOT NULL);\n",
        ),
        (
            "0002_drop_email/up.sql",
            "-- contact goes by phone from now on\nALTER TABLE customers DROP COLUMN email;\n",
        ),
    ];
    for (rel, text) in files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("has parent"))?;
        fs::write(path, text)?;
    }
    Ok(())
}

fn build_app(db: &Path, conf: &Path) -> Result<()> {
    fs::create_dir_all(db.parent().expect("has parent"))?;
    let mut conn = rusqlite::Connection::open(db)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), total_cents INTEGER, note TEXT);
         CREATE TABLE audit (id INTEGER PRIMARY KEY, at TEXT, event TEXT);",
    )?;
    let tx = conn.transaction()?;
    for i in 1..=500 {
        tx.execute(
            "INSERT INTO customers (id, name, email) VALUES (?1, ?2, ?3)",
            rusqlite::params![i, format!("Customer {i}"), format!("c{i}@example.com")],
        )?;
    }
    for i in 1..=3000 {
        tx.execute(
            "INSERT INTO orders (id, customer_id, total_cents, note) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                i,
                (i * 7) % 500 + 1,
                (i * 137) % 100_000,
                format!("order {i} of the demo shop")
            ],
        )?;
    }
    for i in 1..=200 {
        tx.execute(
            "INSERT INTO audit (at, event) VALUES (?1, ?2)",
            rusqlite::params![format!("2026-11-{:02}", i % 28 + 1), format!("event {i}")],
        )?;
    }
    tx.commit()?;
    drop(conn);
    fs::create_dir_all(conf.join("features"))?;
    fs::write(
        conf.join("app.toml"),
        "[server]\nport = 8080\nworkers = 4\n\n[db]\npath = \"app.db\"\n",
    )?;
    fs::write(
        conf.join("features/flags.json"),
        "{\"new_checkout\": false, \"dark_mode\": true}\n",
    )?;
    fs::write(conf.join("secrets.env"), "API_TOKEN=demo-only\n")?;
    fs::set_permissions(conf.join("secrets.env"), fs::Permissions::from_mode(0o600))?;
    fs::write(
        conf.join("cache.tmp"),
        "excluded by the demo's exclude glob\n",
    )?;
    std::os::unix::fs::symlink("app.toml", conf.join("current.toml"))?;
    Ok(())
}

/// BLAKE3 over every entry's path, kind, mode, mtime and content (excluded files left out).
fn fingerprint(dir: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(dir.join(&rel))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            if name.to_string_lossy().ends_with(".tmp") {
                continue;
            }
            let path = rel.join(&name);
            let meta = fs::symlink_metadata(e.path())?;
            h.update(path.to_string_lossy().as_bytes());
            h.update(&meta.mode().to_le_bytes());
            if meta.file_type().is_symlink() {
                h.update(fs::read_link(e.path())?.to_string_lossy().as_bytes());
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                h.update(&meta.mtime().to_le_bytes());
                h.update(&fs::read(e.path())?);
            }
        }
    }
    Ok(h.finalize().to_hex().to_string())
}
