//! `ripcord copy`: snapshots copied to a repository with another
//! passphrase (and so other keys), restored from there byte for byte; only
//! missing blobs are sent; a copy killed at any point leaves the
//! destination verifying and the next run completes it; bad input changes
//! nothing.

use std::path::PathBuf;

use ripcord_testing::data::{self, write_file};
use ripcord_testing::fingerprint::{hash_file, repo_hashes};
use ripcord_testing::{sqlite, Fingerprint, Output, Workspace};
use serde_json::Value;

use crate::common::*;

const TO_PASSWORD: &str = "another passphrase entirely";

/// A source workspace with a dir target `app` and a SQLite target `shop`,
/// snapshotted once.
struct Source {
    ws: Workspace,
    app: PathBuf,
    db: PathBuf,
    first: String,
}

fn source(seed: u64) -> Source {
    let mut ws = workspace();
    data::standard_tree(&ws.path("app"), seed);
    let app = ws.dir_target("app", "app", &[]);
    let db = ws.sqlite_target("shop", "db/shop.db");
    sqlite::create_shop(&db);
    ws.init();
    let first = ws.snapshot_id(&[] as &[&str]);
    Source { ws, app, db, first }
}

/// An initialised repository with a passphrase of its own, and no targets.
fn destination() -> Workspace {
    let mut ws = workspace();
    ws.set_password(TO_PASSWORD);
    ws.init();
    ws
}

fn to(dst: &Workspace) -> String {
    dst.repo().display().to_string()
}

fn copy(src: &Workspace, dst: &Workspace, snapshots: &[&str]) -> Value {
    let out = copy_run(src, dst, snapshots, &[]);
    out.assert_ok();
    out.json()
}

fn copy_run(src: &Workspace, dst: &Workspace, snapshots: &[&str], env: &[(&str, &str)]) -> Output {
    let target = to(dst);
    let mut args = vec!["--json", "copy", "--to", &target];
    args.extend_from_slice(snapshots);
    let mut all = vec![("RIPCORD_TO_PASSWORD", TO_PASSWORD)];
    all.extend_from_slice(env);
    src.run_env(&args, &all)
}

fn sent(report: &Value) -> u64 {
    u64_of(&report["stats"]["blobs_sent"], "blobs_sent")
}

fn verify_deep(ws: &Workspace) {
    let report = ws.json(&["verify", "--deep"]);
    assert!(
        report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

/// Restores `copy` from the destination and `original` from the source:
/// both byte for byte the same, and the same as the live targets.
fn assert_restores(s: &Source, original: &str, dst: &Workspace, copy: &str) {
    let from_copy = dst.path(format!("out-{}", short(copy)));
    dst.ok(&["restore", copy, "--into", from_copy.to_str().unwrap()]);
    let from_source = s.ws.path(format!("out-{}", short(original)));
    s.ws.ok(&["restore", original, "--into", from_source.to_str().unwrap()]);
    let app = Fingerprint::of(&from_copy.join("app"));
    app.assert_same(
        &Fingerprint::of(&from_source.join("app")),
        "app: copy and original",
    );
    app.assert_same(&Fingerprint::of(&s.app), "app");
    let db = from_copy.join("shop/shop.db");
    assert_eq!(
        hash_file(&db),
        hash_file(&from_source.join("shop/shop.db")),
        "shop.db byte for byte"
    );
    assert_eq!(sqlite::dump(&db), sqlite::dump(&s.db));
    std::fs::remove_dir_all(&from_copy).unwrap();
    std::fs::remove_dir_all(&from_source).unwrap();
}

#[test]
fn copies_restore_identically_and_only_missing_blobs_are_sent() {
    let s = source(71);
    let dst = destination();

    let first = copy(&s.ws, &dst, &[]);
    assert_eq!(first["copied_count"], 1, "{first}");
    assert_eq!(first["present_count"], 0, "{first}");
    assert!(sent(&first) > 0, "{first}");
    assert_eq!(
        u64_of(&first["verify"]["blobs_checked"], "blobs_checked"),
        sent(&first),
        "every blob sent is read back: {first}"
    );
    let copy_id = first["snapshots"][0]["copy_snapshot"].as_str().unwrap();
    assert_ne!(copy_id, s.first);
    assert_eq!(dst.snapshot_ids(), vec![copy_id.to_string()]);
    let show = dst.json(&["show", copy_id]);
    assert_eq!(show["manifest"]["copied_from"], s.first.as_str(), "{show}");
    verify_deep(&dst);
    assert_restores(&s, &s.first, &dst, copy_id);

    // Again: the snapshot is there, nothing is sent or read.
    let again = copy(&s.ws, &dst, &["latest"]);
    assert_eq!(again["copied_count"], 0, "{again}");
    assert_eq!(again["present_count"], 1, "{again}");
    assert_eq!(sent(&again), 0, "{again}");
    assert_eq!(again["snapshots"][0]["copy_snapshot"], copy_id);
    assert!(again["verify"].is_null(), "{again}");
    assert_eq!(dst.snapshot_ids().len(), 1);

    // A later snapshot: the destination lacks what the source lacked.
    write_file(&s.app.join("new/notes.txt"), &data::text(5, 200_000));
    let later = s.ws.snapshot(&[] as &[&str]);
    let later_id = later["snapshot"].as_str().unwrap().to_string();
    let report = copy(&s.ws, &dst, &[]);
    assert_eq!(report["copied_count"], 1, "{report}");
    assert_eq!(report["present_count"], 1, "{report}");
    assert_eq!(
        sent(&report),
        u64_of(&later["stats"]["new_blobs"], "new_blobs"),
        "copy: {report}\nsnapshot: {later}"
    );
    let copied = report["snapshots"][1]["copy_snapshot"].as_str().unwrap();
    let show = dst.json(&["show", copied]);
    assert_eq!(show["manifest"]["parent"], copy_id, "{show}");
    verify_deep(&dst);
    assert_restores(&s, &later_id, &dst, copied);

    // The destination is a repository like any other: copy back finds both.
    let back = dst.run_env(
        &["--json", "copy", "--to", s.ws.repo().to_str().unwrap()],
        &[("RIPCORD_TO_PASSWORD", s.ws.password())],
    );
    back.assert_ok();
    let back = back.json();
    assert_eq!(back["present_count"], 2, "{back}");
    assert_eq!(sent(&back), 0, "{back}");
}

#[test]
fn a_dry_run_says_what_would_be_copied_and_writes_nothing() {
    let s = source(72);
    let dst = destination();
    let before = repo_hashes(&dst.repo());
    let out = copy_run(&s.ws, &dst, &["--dry-run"], &[]);
    out.assert_ok();
    let plan = out.json();
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(plan["copied_count"], 1, "{plan}");
    assert!(plan["snapshots"][0]["copy_snapshot"].is_null(), "{plan}");
    assert_eq!(repo_hashes(&dst.repo()), before);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let s = source(73);
    let dst = destination();
    let src_before = repo_hashes(&s.ws.repo());
    let dst_before = repo_hashes(&dst.repo());
    let missing = s.ws.path("nowhere").display().to_string();
    let dst_url = to(&dst);
    let src_url = s.ws.repo().display().to_string();
    let unchanged = |what: &str| {
        assert_eq!(repo_hashes(&s.ws.repo()), src_before, "source after {what}");
        assert_eq!(
            repo_hashes(&dst.repo()),
            dst_before,
            "destination after {what}"
        );
    };
    // What, the arguments, the environment, and a phrase the error has.
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "an unknown snapshot",
            vec!["copy", "--to", &dst_url, "deadbeef"],
            vec![("RIPCORD_TO_PASSWORD", TO_PASSWORD)],
            "no snapshot matches",
        ),
        (
            "a destination that is no repository",
            vec!["copy", "--to", &missing],
            vec![("RIPCORD_TO_PASSWORD", TO_PASSWORD)],
            "ripcord init --repository",
        ),
        (
            "a wrong destination passphrase",
            vec!["copy", "--to", &dst_url],
            vec![("RIPCORD_TO_PASSWORD", "not it")],
            "RIPCORD_TO_PASSWORD",
        ),
        (
            "no destination passphrase",
            vec!["copy", "--to", &dst_url],
            vec![],
            "RIPCORD_TO_PASSWORD",
        ),
        (
            "the source as destination",
            vec!["copy", "--to", &src_url],
            vec![("RIPCORD_TO_PASSWORD", TO_PASSWORD)],
            "source repository itself",
        ),
    ];
    for (what, args, env, phrase) in &cases {
        let out = s.ws.run_env(args, env);
        out.assert_code(2);
        out.assert_stderr_has(phrase);
        assert!(out.stderr.contains("hint:"), "{what}: {out}");
        unchanged(what);
    }
    // The same repository by another spelling of its path.
    let other = format!("file://{}/./repo", s.ws.root().display());
    let out =
        s.ws.run_env(&["copy", "--to", &other], &[("RIPCORD_TO_PASSWORD", "x")]);
    out.assert_code(2);
    out.assert_stderr_has("source repository itself");
    unchanged("the source by another path");
    // A password command for the destination works as RIPCORD_TO_PASSWORD does.
    let cmd = format!("echo '{TO_PASSWORD}'");
    s.ws.ok(&["copy", "--to", &dst_url, "--to-password-command", &cmd]);
    assert_eq!(dst.snapshot_ids().len(), 1);
}

/// Enough incompressible data for a few packs.
const BIG: usize = 40 << 20;

#[test]
fn a_copy_killed_anywhere_leaves_the_destination_verifying_and_a_rerun_completes_it() {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    data::random_files(&app.join("blobs"), 74, BIG, 6 << 20);
    write_file(&app.join("notes.txt"), &data::text(74, 5000));
    ws.init();
    ws.snapshot_id(&[] as &[&str]);
    let dst = destination();

    for failpoint in ["pack-written:2", "index-written", "copy-before-manifest"] {
        let out = copy_run(&ws, &dst, &[], &[("RIPCORD_FAILPOINT", failpoint)]);
        assert_eq!(out.signal, Some(9), "{failpoint} did not kill: {out}");
        // Readers pass the killed process's stale lock.
        let report = dst.json(&["verify"]);
        assert!(
            report["problems"].as_array().unwrap().is_empty(),
            "after {failpoint}: {report}"
        );
        assert!(dst.snapshot_ids().is_empty(), "after {failpoint}");
        dst.ok(&["unlock"]);
    }
    // Everything was sent before the last kill: the rerun only writes the manifest.
    let out = copy_run(&ws, &dst, &[], &[("RIPCORD_FAILPOINT", "snapshot-written")]);
    assert_eq!(out.signal, Some(9), "snapshot-written did not kill: {out}");
    verify_deep(&dst);
    assert_eq!(dst.snapshot_ids().len(), 1);
    dst.ok(&["unlock"]);

    let report = copy(&ws, &dst, &[]);
    assert_eq!(report["copied_count"], 0, "{report}");
    assert_eq!(report["present_count"], 1, "{report}");
    assert_eq!(sent(&report), 0, "{report}");
    let copied = report["snapshots"][0]["copy_snapshot"].as_str().unwrap();
    let into = dst.path("out");
    dst.ok(&["restore", copied, "--into", into.to_str().unwrap()]);
    Fingerprint::of(&into.join("app")).assert_same(&Fingerprint::of(&app), "restored copy");
    // The packs the killed runs left and no snapshot uses, prune removes.
    dst.ok(&["prune"]);
    verify_deep(&dst);
}

#[test]
fn a_copy_damaged_before_it_is_read_back_fails_and_names_the_damage() {
    let s = source(75);
    let dst = destination();
    let pause = s.ws.path("paused");
    let target = to(&dst);
    let mut cmd = s.ws.command(&["copy", "--to", &target]);
    cmd.env("RIPCORD_TO_PASSWORD", TO_PASSWORD).env(
        "RIPCORD_PAUSE",
        format!("copy-before-manifest={}", pause.display()),
    );
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("start ripcord copy");
    assert!(
        ripcord_testing::process::wait_until(std::time::Duration::from_secs(60), || pause.exists()),
        "the copy never reached its pause"
    );
    // Packs and index are written: damage every pack, then let it go on.
    let packs = {
        let mut v = Vec::new();
        let mut stack = vec![dst.repo().join("data")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p)
                } else {
                    v.push(p)
                }
            }
        }
        v
    };
    assert!(!packs.is_empty());
    for p in &packs {
        flip_byte(p, 40);
    }
    std::fs::remove_file(&pause).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not verify"), "{stderr}");
    assert!(stderr.contains("shop/<sqlite image>"), "{stderr}");
}
