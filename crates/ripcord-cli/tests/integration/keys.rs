//! `key add|list|remove|passwd`.

use ripcord_testing::{repo_hashes, Workspace};
use serde_json::Value;

use crate::common::*;

fn keys(ws: &Workspace, pass: &str) -> Vec<Value> {
    ws.run_env(&["--json", "key", "list"], &[("RIPCORD_PASSWORD", pass)])
        .assert_ok()
        .json()
        .as_array()
        .expect("key list --json is a list")
        .clone()
}

fn current(keys: &[Value]) -> String {
    let cur: Vec<&Value> = keys.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(cur.len(), 1, "exactly one current key: {keys:?}");
    cur[0]["key"].as_str().unwrap().to_string()
}

fn opens(ws: &Workspace, pass: &str) -> bool {
    let out = ws.run_env(&["snapshots"], &[("RIPCORD_PASSWORD", pass)]);
    match out.code() {
        0 => true,
        2 => {
            out.assert_stderr_has("wrong passphrase");
            false
        }
        _ => panic!("unexpected outcome\n{out}"),
    }
}

#[test]
fn add_list_remove_and_change_passphrases() {
    let s = DirSetup::new(50);
    let ws = &s.ws;
    let snap = ws.snapshot_id(&[] as &[&str]);
    let first = Workspace::PASSWORD;

    let list = keys(ws, first);
    assert_eq!(list.len(), 1, "{list:?}");
    let first_key = current(&list);

    // Add a second passphrase.
    ws.run_env(&["key", "add"], &[("RIPCORD_NEW_PASSWORD", "second pass")])
        .assert_ok()
        .assert_stdout_has("added key");
    assert_eq!(keys(ws, first).len(), 2);
    assert!(opens(ws, "second pass"));
    let second_key = current(&keys(ws, "second pass"));
    assert_ne!(first_key, second_key);

    // The key in use cannot be removed.
    let hashes = repo_hashes(&ws.repo());
    ws.run(&["key", "remove", &first_key[..12]])
        .assert_code(2)
        .assert_stderr_has("refusing to remove the key this session was opened with");
    assert_eq!(repo_hashes(&ws.repo()), hashes);

    // Another one can: the second passphrase stops working.
    ws.ok(&["key", "remove", &second_key[..12]])
        .assert_stdout_has("removed key");
    assert_eq!(keys(ws, first).len(), 1);
    assert!(!opens(ws, "second pass"));

    // passwd replaces the key in use.
    ws.run_env(
        &["key", "passwd"],
        &[("RIPCORD_NEW_PASSWORD", "third pass")],
    )
    .assert_ok()
    .assert_stdout_has("passphrase changed");
    assert!(
        !opens(ws, first),
        "old passphrase still opens the repository"
    );
    assert!(opens(ws, "third pass"));
    let list = keys(ws, "third pass");
    assert_eq!(list.len(), 1, "{list:?}");

    // The last key cannot be removed.
    let only = current(&list);
    let hashes = repo_hashes(&ws.repo());
    ws.run_env(
        &["key", "remove", &only],
        &[("RIPCORD_PASSWORD", "third pass")],
    )
    .assert_code(2)
    .assert_stderr_has("refusing to remove");
    assert_eq!(repo_hashes(&ws.repo()), hashes);

    // Data written under the first passphrase reads under the third.
    let out = ws.path("restored");
    ws.run_env(
        &["restore", &snap, "--into", out.to_str().unwrap()],
        &[("RIPCORD_PASSWORD", "third pass")],
    )
    .assert_ok();
    ripcord_testing::Fingerprint::of(&out.join("app"))
        .assert_same(&s.expected(), "restore after passwd");
}

#[test]
fn key_commands_without_a_new_passphrase_or_with_unknown_ids() {
    let ws = workspace();
    ws.init();
    let hashes = repo_hashes(&ws.repo());
    ws.run(&["key", "add"])
        .assert_code(2)
        .assert_stderr_has("RIPCORD_NEW_PASSWORD");
    ws.run(&["key", "passwd"])
        .assert_code(2)
        .assert_stderr_has("no new passphrase");
    ws.run(&["key", "remove", "ffffffffffff"])
        .assert_code(2)
        .assert_stderr_has("no key matches");
    ws.run_env(
        &["key", "add"],
        &[("RIPCORD_PASSWORD", "wrong"), ("RIPCORD_NEW_PASSWORD", "x")],
    )
    .assert_code(2)
    .assert_stderr_has("wrong passphrase");
    assert_eq!(repo_hashes(&ws.repo()), hashes);
}
