//! `ripcord token add|list|revoke`: a token is printed once and the
//! catalog keeps only its hash; one active token per name; bad names and
//! roles change nothing; a revoked token is listed as revoked and no longer
//! authenticates; the audit records the commands, never a token.

use ripcord_ops::tokens::{authenticate, Role, TokenRecord};
use ripcord_testing::Workspace;
use serde_json::Value;

use crate::common::*;

/// The token `token add` printed: the one line of stdout that is one.
fn printed_token(out: &ripcord_testing::Output) -> String {
    let tokens: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("rc_"))
        .collect();
    assert_eq!(tokens.len(), 1, "one token is printed\n{out}");
    tokens[0].to_string()
}

fn add(ws: &Workspace, name: &str, role: &str) -> String {
    printed_token(&ws.ok(&["token", "add", "--name", name, "--role", role]))
}

/// The tokens as the catalog holds them, hashes included.
fn records(ws: &Workspace) -> Vec<TokenRecord> {
    let path = ws.root().join(ripcord_catalog::DEFAULT_PATH);
    let mut cat = ripcord_catalog::SqliteCatalog::open(&path).unwrap();
    ripcord_catalog::Catalog::tokens(&mut cat).unwrap()
}

/// Every byte of the catalog's files: the database, its WAL and index.
fn catalog_bytes(ws: &Workspace) -> Vec<u8> {
    let dir = ws.root().join(".ripcord");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_token_is_printed_once_and_the_catalog_keeps_only_its_hash() {
    let ws = workspace();
    let out = ws.ok(&["token", "add", "--name", "ci", "--role", "operator"]);
    out.assert_stdout_has("not shown again");
    let token = printed_token(&out);
    assert_eq!(token.len(), 46, "{token}");
    assert!(token[3..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

    // Listed, without the token or its hash.
    let hash = blake3::hash(token.as_bytes()).to_hex().to_string();
    let listed = ws.ok(&["token", "list"]);
    listed
        .assert_stdout_has("ci")
        .assert_stdout_has("operator")
        .assert_stdout_has("active");
    let json = ws.json(&["token", "list"]);
    for text in [listed.all_text(), json.to_string()] {
        assert!(!text.contains(&token), "the token is listed: {text}");
        assert!(!text.contains(&hash), "the hash is listed: {text}");
    }
    let entry = json.as_array().unwrap()[0].as_object().unwrap().clone();
    let keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["created", "created_by", "name", "revoked", "role"],
        "{json}"
    );
    assert_eq!(entry["revoked"], Value::Null);

    // The catalog's files hold the hash, never the token.
    let bytes = catalog_bytes(&ws);
    assert!(
        contains(&bytes, &hash),
        "the files read are not the catalog"
    );
    assert!(!contains(&bytes, &token), "the token is in the catalog");
    let kept = records(&ws);
    assert_eq!(kept[0].hash, hash);
    assert_eq!(
        authenticate(&kept, &token),
        Some(("ci".into(), Role::Operator))
    );

    // --json prints it in the document; --quiet prints it alone.
    let doc = ws.json(&["token", "add", "--name", "dashboard", "--role", "reader"]);
    assert_eq!(
        (doc["name"].as_str(), doc["role"].as_str()),
        (Some("dashboard"), Some("reader")),
        "{doc}"
    );
    let from_json = doc["token"].as_str().unwrap();
    assert!(from_json.starts_with("rc_") && from_json != token, "{doc}");
    assert_eq!(doc.as_object().unwrap().len(), 3, "{doc}");
    let quiet = ws.ok(&["-q", "token", "add", "--name", "script", "--role", "admin"]);
    let alone = quiet.stdout.trim_end();
    assert!(alone.starts_with("rc_") && !alone.contains('\n'), "{quiet}");
    let kept = records(&ws);
    assert_eq!(
        authenticate(&kept, alone),
        Some(("script".into(), Role::Admin))
    );
    assert_eq!(
        authenticate(&kept, from_json),
        Some(("dashboard".into(), Role::Reader))
    );
    let bytes = catalog_bytes(&ws);
    assert!(!contains(&bytes, from_json) && !contains(&bytes, alone));
}

#[test]
fn a_taken_name_a_bad_name_and_a_bad_role_change_nothing() {
    let ws = workspace();
    let token = add(&ws, "ci", "reader");
    let before = ws.json(&["token", "list"]);
    ws.run(&["token", "add", "--name", "ci", "--role", "admin"])
        .assert_code(2)
        .assert_stderr_has("a token named \"ci\" exists")
        .assert_stderr_has("revoke it first");
    let doc: Value = {
        let out = ws.run(&["--json", "token", "add", "--name", "ci", "--role", "admin"]);
        out.assert_code(2);
        assert!(out.stdout.is_empty(), "{out}");
        serde_json::from_str(out.stderr.lines().last().unwrap()).unwrap()
    };
    assert_eq!(doc["exit_code"], 2, "{doc}");
    let long = "x".repeat(65);
    for name in ["", "two words", "ci/deploy", "naïve", long.as_str()] {
        ws.run(&["token", "add", "--name", name, "--role", "reader"])
            .assert_code(2)
            .assert_stderr_has("is not a token name");
    }
    for role in ["boss", "Admin", ""] {
        ws.run(&["token", "add", "--name", "other", "--role", role])
            .assert_code(2)
            .assert_stderr_has("possible values: reader, operator, admin");
    }
    ws.run(&["token", "add", "--name", "other"]).assert_code(2);
    assert_eq!(ws.json(&["token", "list"]), before, "nothing changed");
    let kept = records(&ws);
    assert_eq!(kept.len(), 1);
    assert_eq!(
        authenticate(&kept, &token),
        Some(("ci".into(), Role::Reader))
    );
}

#[test]
fn a_revoked_token_is_listed_as_revoked_and_its_name_may_be_taken_again() {
    let ws = workspace();
    let old = add(&ws, "ci", "admin");
    add(&ws, "grafana.reader", "reader");
    let revoked = ws.json(&["token", "revoke", "ci"]);
    assert_eq!(revoked["name"], "ci", "{revoked}");
    assert_eq!(revoked["role"], "admin", "{revoked}");
    assert!(revoked["revoked"].is_string(), "{revoked}");
    ws.ok(&["token", "list"])
        .assert_stdout_has("revoked 2")
        .assert_stdout_has("2 tokens, 1 active");
    assert_eq!(authenticate(&records(&ws), &old), None);

    // Revoked already, or never made: exit 2, naming the active tokens.
    ws.run(&["token", "revoke", "ci"])
        .assert_code(2)
        .assert_stderr_has("revoked already")
        .assert_stderr_has("the active tokens: grafana.reader");
    ws.run(&["token", "revoke", "nobody"])
        .assert_code(2)
        .assert_stderr_has("no token is named \"nobody\"")
        .assert_stderr_has("grafana.reader");

    // The name is free again; the old token stays refused.
    let new = add(&ws, "ci", "operator");
    let kept = records(&ws);
    assert_eq!(authenticate(&kept, &old), None);
    assert_eq!(
        authenticate(&kept, &new),
        Some(("ci".into(), Role::Operator))
    );
    let listed = ws.json(&["token", "list"]);
    let states: Vec<(String, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().into(), t["revoked"].is_null()))
        .collect();
    assert_eq!(
        states,
        [
            ("ci".into(), false),
            ("grafana.reader".into(), true),
            ("ci".into(), true)
        ],
        "{listed}"
    );

    // No catalog at all: nothing to list, nothing to revoke.
    let empty = workspace();
    assert_eq!(empty.json(&["token", "list"]), Value::Array(vec![]));
    empty
        .run(&["token", "revoke", "ci"])
        .assert_code(2)
        .assert_stderr_has("there is no active token");
}

#[test]
fn the_audit_records_token_commands_and_never_a_token() {
    let ws = workspace();
    let doc = ws.json(&["token", "add", "--name", "ci", "--role", "admin"]);
    let token = doc["token"].as_str().unwrap().to_string();
    let quiet = ws.ok(&["-q", "token", "add", "--name", "other", "--role", "reader"]);
    let other = quiet.stdout.trim().to_string();
    // Refused input changes nothing and is not audited.
    ws.run(&["token", "add", "--name", "ci", "--role", "admin"])
        .assert_code(2);
    ws.run(&["token", "revoke", "nobody"]).assert_code(2);
    ws.ok(&["token", "revoke", "ci"]);
    ws.ok(&["token", "list"]);

    let trail = ws.json(&["audit"]);
    let entries: Vec<(String, Vec<String>, String)> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["command"].as_str().unwrap().into(),
                serde_json::from_value(e["args"].clone()).unwrap(),
                e["result"].as_str().unwrap().into(),
            )
        })
        .collect();
    let commands: Vec<&str> = entries.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(
        commands,
        ["token add", "token add", "token revoke"],
        "{trail}"
    );
    assert_eq!(
        entries[0].1,
        ["--json", "--name", "ci", "--role", "admin"],
        "{trail}"
    );
    assert_eq!(entries[2].1, ["ci"], "{trail}");
    assert!(entries.iter().all(|(_, _, r)| r == "ok"), "{trail}");
    let text = trail.to_string();
    for t in [&token, &other] {
        assert!(!text.contains(t.as_str()), "a token in the audit: {text}");
    }
    assert!(!contains(&catalog_bytes(&ws), &token));
    ws.ok(&["audit", "--verify"])
        .assert_stdout_has("audit chain intact: 3 entries");
}
