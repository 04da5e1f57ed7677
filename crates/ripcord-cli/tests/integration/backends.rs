//! The repository's work on every storage backend, through one suite: each
//! test runs its body on a local folder and on S3 (a real Garage server
//! that the harness starts). S3-only behaviour (an outage in the middle of
//! a snapshot, bad credentials, a missing bucket, an unreachable endpoint)
//! follows.

use std::path::Path;

use ripcord_testing::app::{sqlite_app, sqlite_rows, write};
use ripcord_testing::data;
use ripcord_testing::garage::{self, Garage};
use ripcord_testing::{Fingerprint, Workspace};

use crate::common::*;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Local,
    S3,
}

const BACKENDS: [Backend; 2] = [Backend::Local, Backend::S3];

impl Backend {
    /// Points `ws` at a new, empty repository on this backend.
    fn place(self, ws: &mut Workspace, name: &str) {
        if let Backend::S3 = self {
            let g = garage::shared();
            ws.use_repository(&garage::fresh_url(name), &g.config_toml());
        }
    }
}

/// A workspace on `backend` with the standard tree as dir target `app`,
/// a SQLite target `db`, and an initialised repository.
fn setup(backend: Backend, seed: u64, name: &str) -> DirSetup {
    let mut ws = workspace();
    let layout = data::standard_tree(&ws.path("app"), seed);
    let app = ws.dir_target("app", "app", &layout.excludes());
    let db = ws.sqlite_target("db", "db.sqlite");
    ripcord_testing::app::sqlite_exec(
        &db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t (v) SELECT printf('row %d', i) FROM n;",
    );
    backend.place(&mut ws, name);
    ws.init();
    DirSetup { ws, layout, app }
}

/// Restores `target` of snapshot `id` under `into` (as `into/TARGET`),
/// and returns where it is.
fn restore_into(ws: &Workspace, id: &str, target: &str, into: &Path) -> std::path::PathBuf {
    ws.ok(&[
        "restore",
        id,
        "--target",
        target,
        "--into",
        into.to_str().unwrap(),
    ]);
    into.join(target)
}

/// Waits until a process run with `RIPCORD_PAUSE=POINT=gate` has
/// reached its point.
fn wait_for_pause(gate: &Path) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !gate.exists() {
        assert!(
            std::time::Instant::now() < until,
            "the process never paused"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn snapshot_restore_verify_forget_and_prune_on_every_backend() {
    for backend in BACKENDS {
        let s = setup(backend, 71, "roundtrip");
        let ws = &s.ws;
        let first = ws.snapshot_id(&[] as &[&str]);
        let expected = s.expected();
        // Unchanged: the second snapshot stores nothing new.
        let again = ws.snapshot(&[] as &[&str]);
        let new = again["stats"]["new_bytes"].as_u64().unwrap();
        assert!(new < 100_000, "{backend:?}: {again}");
        data::write_file(&s.app.join("new.bin"), &data::random_bytes(7, 300_000));
        let third = ws.snapshot_id(&[] as &[&str]);

        let out = ws.path(format!("out-{backend:?}"));
        let out = restore_into(ws, &first, "app", &out);
        Fingerprint::of(&out).assert_same(&expected, &format!("{backend:?}: first snapshot"));
        let db_out = ws.path(format!("db-{backend:?}"));
        let db_out = restore_into(ws, &first, "db", &db_out).join("db.sqlite");
        assert_eq!(
            sqlite_rows(&db_out, "SELECT count(*), max(v) FROM t"),
            vec!["2000|row 999"],
            "{backend:?}"
        );

        ws.ok(&["verify", "--deep"]);
        ws.ok(&["forget", "--keep-last", "1", "--prune"]);
        assert_eq!(ws.snapshot_ids(), vec![third.clone()], "{backend:?}");
        ws.ok(&["verify", "--deep"]);
        let out3 = ws.path(format!("out3-{backend:?}"));
        let out3 = restore_into(ws, &third, "app", &out3);
        assert!(out3.join("new.bin").is_file(), "{backend:?}");
        ws.run(&["restore", &first, "--into", "x"]).assert_code(2);
    }
}

#[test]
fn a_snapshot_killed_at_any_point_leaves_a_repository_that_verifies_on_every_backend() {
    for backend in BACKENDS {
        for point in ["pack-written:1", "pack-written:2", "index-written"] {
            let s = setup(backend, 72, "crash");
            // Enough data for several packs.
            data::random_files(&s.app.join("big"), 3, 40 << 20, 4 << 20);
            let out = s.ws.run_env(&["snapshot"], &[("RIPCORD_FAILPOINT", point)]);
            assert_eq!(out.signal, Some(9), "{backend:?} {point}: {out}");
            s.ws.ok(&["verify"]);
            let id = s.ws.snapshot_id(&[] as &[&str]);
            s.ws.ok(&["verify", "--deep"]);
            let into = s.ws.path("restored");
            let into = restore_into(&s.ws, &id, "app", &into);
            Fingerprint::of(&into).assert_same(&s.expected(), &format!("{backend:?} {point}"));
        }
    }
}

#[test]
fn a_prune_killed_in_the_middle_leaves_a_repository_that_verifies_on_every_backend() {
    for backend in BACKENDS {
        let s = setup(backend, 73, "prune-crash");
        data::random_files(&s.app.join("big"), 4, 24 << 20, 2 << 20);
        s.ws.ok(&["snapshot"]);
        std::fs::remove_dir_all(s.app.join("big")).unwrap();
        let kept = s.ws.snapshot_id(&[] as &[&str]);
        s.ws.ok(&["forget", "--keep-last", "1"]);
        let out =
            s.ws.run_env(&["prune"], &[("RIPCORD_FAILPOINT", "prune-index-written")]);
        assert_eq!(out.signal, Some(9), "{backend:?}: {out}");
        s.ws.ok(&["verify", "--deep"]);
        // The dead prune's exclusive lock is stale, and only unlock removes it.
        s.ws.run(&["prune"]).assert_code(3);
        s.ws.ok(&["unlock"]);
        s.ws.ok(&["prune"]);
        s.ws.ok(&["verify", "--deep"]);
        let into = s.ws.path("restored");
        let into = restore_into(&s.ws, &kept, "app", &into);
        Fingerprint::of(&into).assert_same(&s.expected(), &format!("{backend:?}"));
    }
}

#[test]
fn an_exclusive_lock_refuses_while_a_snapshot_runs_on_every_backend() {
    for backend in BACKENDS {
        let s = setup(backend, 74, "locks");
        data::random_files(&s.app.join("big"), 5, 20 << 20, 4 << 20);
        let gate = s.ws.path("paused");
        let mut child = s.ws.spawn(
            &["snapshot"],
            &[("RIPCORD_PAUSE", &format!("pack-written={}", gate.display()))],
        );
        wait_for_pause(&gate);
        s.ws.run(&["prune"])
            .assert_code(3)
            .assert_stderr_has("locked by");
        std::fs::remove_file(&gate).unwrap();
        assert!(child.wait().unwrap().success(), "{backend:?}");
        s.ws.ok(&["prune"]);
    }
}

#[test]
fn migrations_keep_their_safety_snapshots_on_every_backend() {
    for backend in BACKENDS {
        let (mut ws, db) = sqlite_app(bin(), "");
        backend.place(&mut ws, "migrate");
        ws.init();
        write(
            &ws,
            "migrations/0001_users/up.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT);
             INSERT INTO users (name, email) VALUES ('ann', 'a@x'), ('bob', 'b@x');\n",
        );
        write(&ws, "migrations/0001_users/down.sql", "DROP TABLE users;\n");
        write(
            &ws,
            "migrations/0002_drop_email/up.sql",
            "ALTER TABLE users DROP COLUMN email;\n",
        );
        ws.ok(&["migrate", "up"]);
        let safety = ws.json(&["snapshots", "--tag", "safety"]);
        assert!(
            !safety.as_array().unwrap().is_empty(),
            "{backend:?}: no safety snapshot: {safety}"
        );
        ws.ok(&["migrate", "down", "--to", "0001_users"]);
        assert_eq!(
            sqlite_rows(&db, "SELECT name, email FROM users ORDER BY id"),
            vec!["ann|a@x", "bob|b@x"],
            "{backend:?}"
        );
        ws.ok(&["verify", "--deep"]);
    }
}

/// A workspace whose repository is on a Garage of its own, which the test
/// may stop.
fn own_garage(seed: u64) -> (Garage, DirSetup) {
    let g = Garage::start().expect("start garage");
    g.bucket("outage").unwrap();
    let mut ws = workspace();
    let layout = data::standard_tree(&ws.path("app"), seed);
    let app = ws.dir_target("app", "app", &layout.excludes());
    // Few retries, so that the outage is reported within seconds.
    let settings = g
        .config_toml()
        .replace("retries = 3", "retries = 2")
        .replace("retry_timeout = \"10s\"", "retry_timeout = \"3s\"");
    ws.use_repository("s3://outage/repo", &settings);
    ws.init();
    (g, DirSetup { ws, layout, app })
}

#[test]
fn garage_stopped_in_the_middle_of_a_snapshot_fails_it_clearly_and_loses_nothing() {
    let (mut g, s) = own_garage(75);
    let before = s.ws.snapshot_id(&[] as &[&str]);
    data::random_files(&s.app.join("big"), 6, 40 << 20, 4 << 20);
    let gate = s.ws.path("paused");
    let mut cmd = s.ws.command(&["snapshot"]);
    cmd.env("RIPCORD_PAUSE", format!("pack-written={}", gate.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_for_pause(&gate);
    g.stop();
    std::fs::remove_file(&gate).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("s3://outage/repo") && stderr.contains("after retries"),
        "the error names the repository and says it was retried: {stderr}"
    );
    g.restart().unwrap();
    s.ws.ok(&["verify", "--deep"]);
    assert_eq!(s.ws.snapshot_ids(), vec![before]);
    let after = s.ws.snapshot_id(&[] as &[&str]);
    let into = s.ws.path("restored");
    let into = restore_into(&s.ws, &after, "app", &into);
    Fingerprint::of(&into).assert_same(&s.expected(), "after the outage");
}

#[test]
fn bad_credentials_a_missing_bucket_or_no_server_exit_2_and_write_nothing() {
    let g = garage::shared();
    let url = garage::fresh_url("bad");
    let cases = [
        (
            url.clone(),
            g.config_toml().replace(garage::SECRET, &"f".repeat(64)),
            "access denied",
        ),
        (
            "s3://no-such-bucket/repo".to_string(),
            g.config_toml(),
            "no such bucket",
        ),
        (
            url.clone(),
            g.config_toml().replace(&g.endpoint(), "http://127.0.0.1:9"),
            "unreachable",
        ),
    ];
    for (repo, settings, said) in cases {
        let mut ws = workspace();
        ws.dir_target("app", "app", &[]);
        std::fs::create_dir_all(ws.path("app")).unwrap();
        ws.use_repository(&repo, &settings);
        for args in [&["init"][..], &["snapshot"], &["snapshots"]] {
            let out = ws.run(args);
            out.assert_code(2).assert_stderr_has(said);
            assert!(out.stderr.contains("hint"), "{out}");
        }
    }
    // Nothing was written under the prefix the good settings reach.
    let mut ws = workspace();
    ws.use_repository(&url, &g.config_toml());
    ws.run(&["snapshots"])
        .assert_code(2)
        .assert_stderr_has("no repository");
}

#[test]
fn copy_between_backends_survives_kill_9_and_sends_only_what_is_missing() {
    // Local to S3, and S3 to local.
    for (from, to) in [(Backend::Local, Backend::S3), (Backend::S3, Backend::Local)] {
        let mut s = setup(from, 76, "copy-src");
        data::random_files(&s.app.join("big"), 8, 24 << 20, 4 << 20);
        let snap = s.ws.snapshot_id(&[] as &[&str]);
        let mut dst = workspace();
        dst.set_password("the destination's own passphrase");
        to.place(&mut dst, "copy-dst");
        dst.init();
        // The source's configuration reaches S3 whichever side it is on.
        if let Backend::Local = from {
            s.ws.use_repository(
                &s.ws.repo().display().to_string(),
                &garage::shared().config_toml(),
            );
        }
        let env = [("RIPCORD_TO_PASSWORD", dst.password())];
        let killed = s.ws.run_env(
            &["copy", "--to", &dst.repo_url()],
            &[env[0], ("RIPCORD_FAILPOINT", "pack-written:1")],
        );
        assert_eq!(killed.signal, Some(9), "{from:?} -> {to:?}: {killed}");
        dst.ok(&["verify"]);
        let done =
            s.ws.run_env(&["--json", "copy", "--to", &dst.repo_url()], &env);
        done.assert_ok();
        let again =
            s.ws.run_env(&["--json", "copy", "--to", &dst.repo_url()], &env);
        again.assert_ok();
        assert_eq!(again.json()["stats"]["blobs_sent"], 0, "{}", again.stdout);
        dst.ok(&["verify", "--deep"]);
        let ids = dst.snapshot_ids();
        assert_eq!(ids.len(), 1, "{from:?} -> {to:?}");
        let into = dst.path("restored");
        dst.ok(&["restore", &ids[0], "--into", into.to_str().unwrap()]);
        Fingerprint::of(&into.join("app"))
            .assert_same(&s.expected(), &format!("{from:?} -> {to:?}"));
        assert_ne!(ids[0], snap, "a copy has an id of its own");
    }
}

#[test]
fn a_geo_tier_on_s3_gets_its_copies_and_check_reads_its_freshness_there() {
    let mut s = setup(Backend::Local, 77, "geo-main");
    let mut geo = workspace();
    geo.set_password("the geo repository passphrase");
    Backend::S3.place(&mut geo, "geo");
    geo.init();
    // The main configuration reaches S3 for the geo tier.
    s.ws.use_repository(
        &s.ws.repo().display().to_string(),
        &garage::shared().config_toml(),
    );
    s.ws.append_config(&format!(
        "[tiers.geo]\nevery = \"1h\"\nmax_age = \"1h\"\nrepository = \"{}\"\n\
         password_command = \"echo '{}'\"\nkeep = {{ last = 1 }}\n",
        geo.repo_url(),
        geo.password()
    ));
    let first = s.ws.snapshot_id(&[] as &[&str]);
    let pass = s.ws.json(&["schedule", "run"]);
    assert_eq!(pass["ok"], true, "{pass}");
    let there = geo.snapshot_ids();
    assert_eq!(there.len(), 1, "{pass}");
    let show = geo.json(&["show", &there[0]]);
    assert_eq!(show["manifest"]["copied_from"], first.as_str(), "{show}");
    geo.ok(&["verify", "--deep"]);
    let check = s.ws.run(&["--json", "check"]);
    let text = check.stdout.clone();
    assert!(text.contains(&geo.repo_url()), "{text}");
    assert!(!text.contains("overdue"), "{text}");
    // On S3 the repository has no free-space figure to warn about.
    let on_s3 = geo.run(&["check"]);
    on_s3.assert_stdout_has("object storage");
}
