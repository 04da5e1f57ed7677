//! Bad input: each case gets a clear message on stderr, the documented exit
//! code, and leaves the repository exactly as it was.

use ripcord_testing::data::write_file;
use ripcord_testing::{repo_hashes, Output};

use crate::common::*;

/// The standard tree, one snapshot of it, and the snapshot id.
fn healthy(seed: u64) -> (DirSetup, String) {
    let s = DirSetup::new(seed);
    let id = s.ws.snapshot_id(&[] as &[&str]);
    (s, id)
}

/// Runs `f` and checks the repository files did not change.
fn unchanged<T>(s: &DirSetup, f: impl FnOnce() -> T) -> T {
    let before = repo_hashes(&s.ws.repo());
    assert!(!before.is_empty());
    let t = f();
    let after = repo_hashes(&s.ws.repo());
    assert_eq!(after, before, "the repository changed");
    t
}

fn the_one(s: &DirSetup, dir: &str) -> std::path::PathBuf {
    let files = files_in(&s.ws, dir);
    assert_eq!(files.len(), 1, "one file in {dir}/: {files:?}");
    files[0].clone()
}

#[test]
fn wrong_passphrase() {
    let (s, id) = healthy(60);
    unchanged(&s, || {
        for args in [
            vec!["snapshots"],
            vec!["snapshot"],
            vec!["restore", id.as_str(), "--into", "out"],
            vec!["prune"],
        ] {
            s.ws.run_env(&args, &[("RIPCORD_PASSWORD", "not the passphrase")])
                .assert_code(2)
                .assert_stderr_has("wrong passphrase")
                .assert_stderr_has("hint:");
        }
    });
    assert!(!s.ws.path("out").exists());
    assert_eq!(s.ws.snapshot_ids(), [id]);
}

#[test]
fn missing_passphrase() {
    let (s, _) = healthy(61);
    unchanged(&s, || {
        let mut cmd = s.ws.command(&["snapshots"]);
        cmd.env_remove("RIPCORD_PASSWORD");
        s.ws.run_cmd(&["snapshots"], cmd)
            .assert_code(2)
            .assert_stderr_has("no passphrase was given");
    });
}

#[test]
fn missing_repository() {
    let mut ws = workspace();
    let app = ws.dir_target("app", "app", &[]);
    write_file(&app.join("a.txt"), b"a\n");
    for args in [vec!["snapshots"], vec!["snapshot"], vec!["verify"]] {
        ws.run(&args)
            .assert_code(2)
            .assert_stderr_has("no repository at")
            .assert_stderr_has("ripcord init");
    }
    assert!(
        !ws.repo().exists(),
        "a command created the repository folder"
    );
}

#[test]
fn corrupt_repository_config() {
    let (s, _) = healthy(62);
    let config = s.ws.repo().join("config");
    let len = file_len(&config);
    flip_byte(&config, len - 5);
    unchanged(&s, || {
        for args in [vec!["snapshots"], vec!["snapshot"]] {
            s.ws.run(&args)
                .assert_code(1)
                .assert_stderr_has("repository file config is damaged");
        }
    });
}

#[test]
fn truncated_repository_config() {
    let (s, _) = healthy(63);
    let config = s.ws.repo().join("config");
    for len in [file_len(&config) / 2, 4] {
        truncate(&config, len);
        unchanged(&s, || {
            s.ws.run(&["snapshots"])
                .assert_code(1)
                .assert_stderr_has("repository file config is damaged");
        });
    }
}

#[test]
fn corrupt_index_file() {
    let (s, id) = healthy(64);
    let index = the_one(&s, "index");
    flip_byte(&index, file_len(&index) / 2);
    let dest = s.ws.path("out");
    unchanged(&s, || {
        let check = |o: Output| {
            o.assert_code(1)
                .assert_stderr_has("is damaged")
                .assert_stderr_has("index/")
                .assert_stderr_has("ripcord repair index");
        };
        check(s.ws.run(&["snapshot"]));
        check(s.ws.run(&["restore", &id, "--into", dest.to_str().unwrap()]));
    });
    assert!(!dest.exists());
    assert_eq!(
        s.ws.snapshot_ids(),
        [id.as_str()],
        "no snapshot was recorded"
    );

    // The documented way out: rebuild the index from the packs.
    s.ws.ok(&["repair", "index"]);
    s.ws.ok(&["verify", "--deep"]);
    assert_restores_to(&s.ws, &id, &s.expected(), "after repair index");
}

#[test]
fn truncated_pack_fails_quick_verify() {
    let (s, id) = healthy(65);
    let pack = the_one(&s, "data");
    truncate(&pack, file_len(&pack) - 100);
    let rel = pack
        .strip_prefix(s.ws.repo())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    unchanged(&s, || {
        s.ws.run(&["verify"])
            .assert_code(1)
            .assert_stdout_has(&format!("damaged: {rel}"))
            .assert_stderr_has("verify found 1 problem");
        let deep = s.ws.run(&["verify", "--deep"]);
        deep.assert_code(1)
            .assert_stdout_has(&format!("snapshot {}: app/", short(&id)));
    });
}

#[test]
fn corrupt_snapshot_manifest() {
    let (s, id) = healthy(66);
    let manifest = the_one(&s, "snapshots");
    flip_byte(&manifest, file_len(&manifest) / 2);
    let dest = s.ws.path("out");
    unchanged(&s, || {
        for args in [
            vec!["show", id.as_str()],
            vec!["restore", id.as_str(), "--into", dest.to_str().unwrap()],
        ] {
            s.ws.run(&args)
                .assert_code(1)
                .assert_stderr_has(&format!("snapshots/{id} is damaged"));
        }
        s.ws.run(&["verify"])
            .assert_code(1)
            .assert_stdout_has(&format!("snapshots/{id}"));
    });
    assert!(!dest.exists());
}

#[test]
fn unknown_snapshot_id() {
    let (s, id) = healthy(67);
    let other = if id.starts_with("ffff") {
        "0000aaaa"
    } else {
        "ffff0000"
    };
    let dest = s.ws.path("out");
    unchanged(&s, || {
        for args in [
            vec!["show", other],
            vec!["restore", other, "--into", dest.to_str().unwrap()],
            vec!["verify", other],
            vec!["show", "not-hex"],
            vec!["diff", id.as_str(), other],
        ] {
            s.ws.run(&args)
                .assert_code(2)
                .assert_stderr_has("no snapshot matches")
                .assert_stderr_has("ripcord snapshots");
        }
    });
    assert!(!dest.exists());
}

#[test]
fn missing_target_path() {
    let mut ws = workspace();
    ws.dir_target("app", "does-not-exist", &[]);
    ws.sqlite_target("db", "missing.db");
    ws.init();
    let before = repo_hashes(&ws.repo());
    for target in ["app", "db"] {
        ws.run(&["snapshot", target])
            .assert_code(2)
            .assert_stderr_has("does not exist")
            .assert_stderr_has("check the target's path");
    }
    assert_eq!(repo_hashes(&ws.repo()), before);
    assert!(ws.snapshot_ids().is_empty(), "a snapshot was recorded");
    assert!(!ws.path("does-not-exist").exists() && !ws.path("missing.db").exists());
}

#[test]
fn target_of_the_wrong_kind() {
    let mut ws = workspace();
    let not_a_dir = ws.dir_target("app", "file.txt", &[]);
    write_file(&not_a_dir, b"a file, not a folder\n");
    let not_a_db = ws.sqlite_target("db", "text.db");
    write_file(&not_a_db, &ripcord_testing::data::text(1, 8192));
    ws.init();
    let before = repo_hashes(&ws.repo());
    ws.run(&["snapshot", "app"])
        .assert_code(2)
        .assert_stderr_has("is not a directory");
    ws.run(&["snapshot", "db"])
        .assert_code(2)
        .assert_stderr_has("not a usable SQLite database");
    assert_eq!(repo_hashes(&ws.repo()), before);
    assert!(ws.snapshot_ids().is_empty());
}

#[test]
fn malformed_ripcord_toml() {
    let (s, _) = healthy(68);
    let good = std::fs::read_to_string(s.ws.config_path()).unwrap();
    let cases = [
        ("[repository\nurl = ", "is not valid"),
        (
            "[targets.typo]\nkind = \"dir\"\npaht = \"/x\"\n",
            "did you mean `path`?",
        ),
        (
            "[targets.bad]\nkind = \"mysql\"\npath = \"/x\"\n",
            "is not valid",
        ),
        (
            "[targets.other]\nkind = \"dir\"\npath = 5\n",
            "is not valid",
        ),
    ];
    unchanged(&s, || {
        for (text, phrase) in cases {
            let bad = if text.starts_with("[repository") {
                text.to_string()
            } else {
                format!("{good}\n{text}")
            };
            std::fs::write(s.ws.config_path(), &bad).unwrap();
            s.ws.run(&["snapshot"])
                .assert_code(2)
                .assert_stderr_has(phrase)
                .assert_stderr_has("ripcord.toml");
        }
    });
    std::fs::write(s.ws.config_path(), good).unwrap();
    s.ws.ok(&["snapshots"]);
}

#[test]
fn missing_config_file_given_explicitly() {
    let (s, _) = healthy(69);
    unchanged(&s, || {
        s.ws.run(&["--config", "nowhere.toml", "snapshots"])
            .assert_code(2)
            .assert_stderr_has("nowhere.toml does not exist");
    });
}

#[test]
fn unknown_target_name() {
    let (s, id) = healthy(70);
    unchanged(&s, || {
        s.ws.run(&["snapshot", "nope"])
            .assert_code(2)
            .assert_stderr_has("unknown target \"nope\"")
            .assert_stderr_has("configured targets: app");
        // One bad name among good ones fails the whole command.
        s.ws.run(&["snapshot", "app,nope"]).assert_code(2);
    });
    assert_eq!(s.ws.snapshot_ids(), [id]);
}

#[test]
fn init_without_a_passphrase_creates_nothing() {
    let ws = workspace();
    std::fs::remove_file(ws.config_path()).unwrap();
    let mut cmd = ws.command(&["init"]);
    cmd.env_remove("RIPCORD_PASSWORD");
    ws.run_cmd(&["init"], cmd)
        .assert_code(2)
        .assert_stderr_has("needs a passphrase")
        .assert_stderr_has("RIPCORD_PASSWORD");
    assert!(
        names_in(ws.root()).is_empty(),
        "init created {:?}",
        names_in(ws.root())
    );

    // With a configuration already there, it is left as it was.
    ws.write_config();
    let text = std::fs::read_to_string(ws.config_path()).unwrap();
    let mut cmd = ws.command(&["init"]);
    cmd.env_remove("RIPCORD_PASSWORD");
    ws.run_cmd(&["init"], cmd).assert_code(2);
    assert_eq!(names_in(ws.root()), ["ripcord.toml"]);
    assert_eq!(std::fs::read_to_string(ws.config_path()).unwrap(), text);
}

#[test]
fn init_on_an_existing_repository() {
    let (s, id) = healthy(71);
    let config = std::fs::read_to_string(s.ws.config_path()).unwrap();
    unchanged(&s, || {
        s.ws.run(&["init"])
            .assert_code(2)
            .assert_stderr_has("a repository already exists");
        s.ws.run_env(&["init"], &[("RIPCORD_PASSWORD", "another")])
            .assert_code(2);
    });
    assert_eq!(std::fs::read_to_string(s.ws.config_path()).unwrap(), config);
    assert_eq!(s.ws.snapshot_ids(), [id]);
}

#[test]
fn init_writes_a_config_and_an_encrypted_repository() {
    let ws = workspace();
    std::fs::remove_file(ws.config_path()).unwrap();
    let v = ws.json(&["init"]);
    assert_eq!(v["encrypted"], true, "{v}");
    let written = std::fs::read_to_string(ws.config_path()).unwrap();
    assert!(written.contains("url = \"ripcord-repo\""), "{written}");
    assert!(ws.path("ripcord-repo/config").is_file());
    assert!(
        !written.contains(ripcord_testing::Workspace::PASSWORD),
        "the passphrase was written down"
    );
    // The repository opens with the passphrase and not without it.
    ws.ok(&["snapshots"]);
    ws.run_env(&["snapshots"], &[("RIPCORD_PASSWORD", "other")])
        .assert_code(2);
}

#[test]
fn usage_errors_exit_2() {
    let ws = workspace();
    ws.run(&["no-such-command"]).assert_code(2);
    ws.run(&["restore"]).assert_code(2);
    ws.run(&["snapshot", "--no-such-flag"]).assert_code(2);
    ws.ok(&["--help"]).assert_stdout_has("Usage");
}

/// Regression: `ripcord show ID | head -1` panicked on the closed pipe.
#[test]
fn a_closed_stdout_ends_quietly() {
    let (s, id) = healthy(61);
    let mut child =
        s.ws.command(&["show", &id])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    // The reader goes away before ripcord writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "ripcord panicked on a closed pipe: {stderr}"
    );
}
