//! `verify`, and what restore does with a damaged snapshot.

use ripcord_testing::data::{self, write_file};
use ripcord_testing::{repo_hashes, Fingerprint};

use crate::common::*;

#[test]
fn verify_passes_on_a_healthy_repository() {
    let s = DirSetup::new(30);
    s.ws.snapshot_id(&[] as &[&str]);
    write_file(&s.app.join("more.txt"), b"more\n");
    s.ws.snapshot_id(&[] as &[&str]);
    let before = repo_hashes(&s.ws.repo());

    let quick = s.ws.json(&["verify"]);
    assert_eq!(
        u64_of(&quick["snapshot_count"], "snapshot_count"),
        2,
        "{quick}"
    );
    assert!(quick["problems"].as_array().unwrap().is_empty(), "{quick}");
    assert_eq!(u64_of(&quick["packs_read"], "packs_read"), 0, "{quick}");

    let deep = s.ws.json(&["verify", "--deep"]);
    assert!(deep["problems"].as_array().unwrap().is_empty(), "{deep}");
    let packs = files_in(&s.ws, "data").len() as u64;
    assert_eq!(u64_of(&deep["packs_read"], "packs_read"), packs, "{deep}");
    assert!(u64_of(&deep["blobs_checked"], "blobs") >= s.layout.files.len() as u64);
    assert!(u64_of(&deep["read_bytes"], "bytes_read") > data::LARGE_SIZE as u64 / 2);

    let text = s.ws.ok(&["verify", "--deep"]);
    text.assert_stdout_has("no problems");
    assert_eq!(
        repo_hashes(&s.ws.repo()),
        before,
        "verify changed the repository"
    );
}

#[test]
fn deep_verify_subset_reads_a_share_of_the_packs() {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    ws.init();
    // Every snapshot of new data writes at least one pack of its own.
    for n in 0..4 {
        write_file(
            &app.join(format!("f{n}.bin")),
            &data::random_bytes(300 + n, 100_000),
        );
        ws.snapshot_id(&[] as &[&str]);
    }
    let packs = files_in(&ws, "data").len() as u64;
    assert!(packs >= 4, "{packs} packs");
    let v = ws.json(&["verify", "--deep", "--subset", "50%"]);
    assert_eq!(
        u64_of(&v["packs_read"], "packs_read"),
        packs.div_ceil(2),
        "{v}"
    );
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
    let all = ws.json(&["verify", "--deep", "--subset", "100"]);
    assert_eq!(u64_of(&all["packs_read"], "packs_read"), packs, "{all}");

    ws.run(&["verify", "--subset", "50%"])
        .assert_code(2)
        .assert_stderr_has("--deep");
    ws.run(&["verify", "--deep", "--subset", "0%"])
        .assert_code(2);
    ws.run(&["verify", "--deep", "--subset", "150%"])
        .assert_code(2);
}

/// A snapshot of the standard tree with one byte flipped inside the stored
/// data of `config/app.toml` (a single-chunk file).
struct Damaged {
    s: DirSetup,
    id: String,
    victim: &'static str,
}

fn damaged(seed: u64) -> Damaged {
    let s = DirSetup::new(seed);
    let id = s.ws.snapshot_id(&[] as &[&str]);
    let victim = "config/app.toml";
    let blobs = file_blobs(&s.ws, &id, "app", victim);
    assert_eq!(blobs.len(), 1, "{victim} is one chunk");
    let loc = blobs[0];
    flip_byte(
        &pack_file(&s.ws, &loc.pack),
        loc.offset as u64 + loc.length as u64 / 2,
    );
    Damaged { s, id, victim }
}

#[test]
fn deep_verify_names_the_snapshot_and_file_of_a_flipped_byte() {
    let d = damaged(31);
    let ws = &d.s.ws;
    let before = repo_hashes(&ws.repo());

    let out = ws.run(&["verify", "--deep"]);
    out.assert_code(1).assert_stderr_has("problem");
    let affected = format!("snapshot {}: app/{}", short(&d.id), d.victim);
    out.assert_stdout_has(&affected);
    out.assert_stdout_has("damaged:");

    let json = ws.run(&["--json", "verify", "--deep"]);
    json.assert_code(1);
    let report = json.json();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(
        strings(&problems[0]["affects"]),
        [affected.as_str()],
        "{report}"
    );
    assert!(problems[0]["object"].as_str().unwrap().starts_with("data/"));

    // Limited to the snapshot, the same; a subset that reads every pack too.
    ws.run(&["verify", "--deep", short(&d.id)])
        .assert_code(1)
        .assert_stdout_has(&affected);
    ws.run(&["verify", "--deep", "--subset", "100%"])
        .assert_code(1)
        .assert_stdout_has(&affected);
    assert_eq!(
        repo_hashes(&ws.repo()),
        before,
        "verify changed the repository"
    );
}

#[test]
fn restore_of_a_damaged_snapshot_is_refused_and_changes_nothing() {
    let d = damaged(32);
    let ws = &d.s.ws;
    let before = repo_hashes(&ws.repo());
    let dest = ws.path("restored");
    let out = ws.run(&["restore", &d.id, "--into", dest.to_str().unwrap()]);
    out.assert_code(3)
        .assert_stderr_has("damaged")
        .assert_stderr_has(d.victim);
    assert!(
        !dest.exists(),
        "the refused restore created {}",
        dest.display()
    );
    assert_eq!(repo_hashes(&ws.repo()), before);

    // In place: refused before the safety snapshot, the live folder untouched.
    let live = Fingerprint::of(&d.s.app);
    ws.run(&["restore", &d.id])
        .assert_code(3)
        .assert_stderr_has(d.victim);
    Fingerprint::of(&d.s.app).assert_same(&live, "live folder after a refused restore");
    assert_eq!(repo_hashes(&ws.repo()), before);
}

#[test]
fn restore_of_a_snapshot_with_a_missing_pack_is_refused_and_changes_nothing() {
    let s = DirSetup::new(33);
    let id = s.ws.snapshot_id(&[] as &[&str]);
    let loc = file_blobs(&s.ws, &id, "app", &s.layout.large)[0];
    std::fs::remove_file(pack_file(&s.ws, &loc.pack)).unwrap();
    let before = repo_hashes(&s.ws.repo());

    let dest = s.ws.path("restored");
    let out =
        s.ws.run(&["restore", &id, "--into", dest.to_str().unwrap()]);
    out.assert_code(3)
        .assert_stderr_has(&format!("snapshot {} is damaged", short(&id)))
        .assert_stderr_has("--partial");
    assert!(
        !dest.exists(),
        "the refused restore created {}",
        dest.display()
    );

    // In place: the live folder is left alone.
    let live = Fingerprint::of(&s.app);
    s.ws.run(&["restore", &id]).assert_code(3);
    Fingerprint::of(&s.app).assert_same(&live, "live folder after a refused restore");
    assert_eq!(repo_hashes(&s.ws.repo()), before);

    s.ws.run(&["verify"])
        .assert_code(1)
        .assert_stdout_has("pack is missing");
}

#[test]
fn partial_restore_skips_the_damaged_file_and_names_it() {
    let d = damaged(34);
    let ws = &d.s.ws;
    let expected = d.s.expected().without(d.victim);
    let dest = ws.path("partial");
    let out = ws.run(&[
        "restore",
        &d.id,
        "--into",
        dest.to_str().unwrap(),
        "--partial",
    ]);
    // The restore is incomplete, so it does not report success.
    out.assert_code(1)
        .assert_stderr_has(&format!("not restored (damaged): {}", d.victim))
        .assert_stderr_has("partial");
    Fingerprint::of(&dest.join("app")).assert_same(&expected, "partial restore");

    let json = ws.run(&[
        "--json",
        "restore",
        &d.id,
        "--into",
        ws.path("partial2").to_str().unwrap(),
        "--partial",
    ]);
    json.assert_code(1);
    let report: serde_json::Value = json.json();
    assert_eq!(
        strings(&report["targets"][0]["skipped"]),
        [d.victim.to_string()],
        "{report}"
    );
}
