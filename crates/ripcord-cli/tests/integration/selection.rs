//! One way to select targets and tags: `--target` and `--tag`, repeatable
//! or comma-separated, on `snapshot`, `restore`, `snapshots`, `forget` and
//! `diff`; a name that matches nothing is an error with a suggestion; every
//! command that changes something has `-n/--dry-run`; global flags go
//! before or after the subcommand.

use ripcord_testing::app::{sqlite_app, sqlite_rows as rows, write};
use ripcord_testing::{data, repo_hashes, Fingerprint, Workspace};
use serde_json::Value;

use crate::common::*;

/// A repository with two dir targets, `app` and `config`.
fn two_targets() -> Workspace {
    let mut ws = workspace();
    data::standard_tree(&ws.path("app"), 11);
    std::fs::create_dir_all(ws.path("conf")).unwrap();
    std::fs::write(ws.path("conf/app.ini"), "debug = false\n").unwrap();
    ws.dir_target("app", "app", &[]);
    ws.dir_target("config", "conf", &[]);
    ws.init();
    ws
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|s| s["snapshot"].as_str().expect("snapshot").to_string())
        .collect()
}

/// The names of a document's `targets`: `[{"target": NAME}, ...]`.
fn target_names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|t| t["target"].as_str().expect("a name").to_string())
        .collect()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a name").to_string())
        .collect()
}

#[test]
fn snapshots_with_a_misspelt_target_is_an_error_not_an_empty_list() {
    let ws = two_targets();
    ws.snapshot_id(&["--tag", "pre-deploy"]);
    ws.run(&["snapshots", "--target", "confg"])
        .assert_code(2)
        .assert_stderr_has("unknown target \"confg\"; did you mean \"config\"?")
        .assert_stderr_has("app, config");
    ws.run(&["snapshots", "--tag", "pre-deplyo"])
        .assert_code(2)
        .assert_stderr_has("did you mean \"pre-deploy\"?");
    ws.run(&["snapshots", "--tier", "dayly"])
        .assert_code(2)
        .assert_stderr_has("unknown tier \"dayly\"");
    let before = repo_hashes(&ws.repo());
    ws.run(&["forget", "--keep-last", "1", "--target", "confg"])
        .assert_code(2)
        .assert_stderr_has("did you mean \"config\"?");
    ws.run(&["diff", "latest", "latest", "--target", "confg"])
        .assert_code(2)
        .assert_stderr_has("did you mean \"config\"?");
    ws.run(&["snapshot", "--target", "confg"])
        .assert_code(2)
        .assert_stderr_has("did you mean \"config\"?");
    ws.run(&["snapshot", "-n", "app,confg"])
        .assert_code(2)
        .assert_stderr_has("did you mean \"config\"?");
    ws.run(&["restore", "latest", "--target", "confg", "--into", "out"])
        .assert_code(2)
        .assert_stderr_has("did you mean \"config\"?");
    assert_eq!(repo_hashes(&ws.repo()), before, "nothing changed");
    assert!(!ws.path("out").exists());
    // The tag safety snapshots get is known before the first one exists.
    assert_eq!(
        ws.json(&["snapshots", "--tag", "safety"]),
        Value::Array(vec![])
    );
}

#[test]
fn target_and_tag_are_repeatable_and_comma_separated_everywhere() {
    let ws = two_targets();
    let both = ws.snapshot(&["--target", "app,config", "--tag", "a,b"]);
    assert_eq!(target_names(&both["targets"]), ["app", "config"]);
    let both = both["snapshot"].as_str().unwrap().to_string();
    let one = ws.snapshot_id(&["--target", "config", "--tag", "a", "--tag", "c"]);
    let positional = ws.snapshot_id(&["app", "--tag", "d"]);

    let listed = ws.json(&["snapshots", "--tag", "a,b"]);
    assert_eq!(ids(&listed), [both.as_str()]);
    assert_eq!(names(&listed[0]["tags"]), ["a", "b"]);
    assert_eq!(
        ids(&ws.json(&["snapshots", "--tag", "a", "--tag", "c"])),
        [one.as_str()]
    );
    assert_eq!(
        ids(&ws.json(&["snapshots", "--target", "app", "--target", "config"])),
        [both.as_str()]
    );
    assert_eq!(
        ids(&ws.json(&["snapshots", "--target", "app"])),
        [both.clone(), positional.clone()]
    );

    // diff compares only the selected targets.
    let d = ws.json(&["diff", &both, &one, "--target", "config"]);
    let compared: Vec<&str> = d["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    assert_eq!(compared, ["config"], "{d}");
    // `latest` with tags is the newest snapshot with all of them.
    let d = ws.json(&["diff", "latest", "latest", "--tag", "a,b"]);
    assert_eq!(d["from_snapshot"].as_str(), Some(both.as_str()), "{d}");

    // restore: the newest snapshot holding the targets and tags.
    let r = ws.json(&[
        "restore", "latest", "--tag", "a", "--target", "config", "-n",
    ]);
    assert_eq!(r["snapshot"].as_str(), Some(one.as_str()), "{r}");
    ws.run(&["restore", &positional, "--tag", "a", "-n"])
        .assert_code(2)
        .assert_stderr_has("has no tag \"a\"");

    // forget judges only the selected snapshots.
    let f = ws.json(&["forget", "--keep-last", "1", "--target", "app", "-n"]);
    let judged: Vec<&str> = f["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(judged.len(), 2, "{f}");
    assert!(!judged.contains(&one.as_str()), "{f}");
    let f = ws.json(&["forget", "--keep-last", "1", "--tag", "a,c", "-n"]);
    assert_eq!(f["decisions"].as_array().unwrap().len(), 1, "{f}");
    assert_eq!(ws.snapshot_ids().len(), 3, "dry runs removed nothing");
}

#[test]
fn dry_run_changes_nothing_and_says_what_would_happen() {
    let ws = two_targets();
    let id = ws.snapshot_id(&[] as &[&str]);
    std::fs::write(ws.path("conf/app.ini"), "debug = true\n").unwrap();
    let live = Fingerprint::of(&ws.path("conf"));
    let before = repo_hashes(&ws.repo());

    ws.run(&["snapshot", "-n"])
        .assert_ok()
        .assert_stdout_has("would snapshot app (dir)")
        .assert_stdout_has("would snapshot config (dir)");
    ws.run(&["restore", &id, "--target", "config", "--dry-run"])
        .assert_ok()
        .assert_stdout_has("would restore config (dir) in place, after a safety snapshot");
    ws.run(&["restore", &id, "-n", "--into", "out"])
        .assert_ok()
        .assert_stdout_has("would restore app");
    ws.run(&["forget", &id, "-n"]).assert_ok();
    ws.run(&["prune", "-n"]).assert_ok();
    ws.run(&["unlock", "-n"])
        .assert_ok()
        .assert_stdout_has("0 locks and 0 temporary files of interrupted writes would be removed");

    ws.run(&["repair", "index", "-n"])
        .assert_ok()
        .assert_stdout_has("dry run: the index would be rebuilt");
    let new = [("RIPCORD_NEW_PASSWORD", "another long passphrase")];
    ws.run_env(&["key", "add", "-n"], &new).assert_ok();
    ws.run_env(&["key", "passwd", "--dry-run"], &new)
        .assert_ok();
    let key = ws.json(&["key", "list"])[0]["key"]
        .as_str()
        .unwrap()
        .to_string();
    // The same checks as without -n: the key in use is not removed.
    ws.run(&["key", "remove", "-n", &key])
        .assert_code(2)
        .assert_stderr_has("refusing to remove the key this session was opened with");
    ws.run(&["init", "-n"])
        .assert_code(2)
        .assert_stderr_has("a repository already exists");

    assert_eq!(
        repo_hashes(&ws.repo()),
        before,
        "the repository is unchanged"
    );
    assert_eq!(
        Fingerprint::of(&ws.path("conf")),
        live,
        "the target is unchanged"
    );
    assert!(!ws.path("out").exists(), "--into was not created");
    assert_eq!(ws.snapshot_ids(), [id]);
}

#[test]
fn init_dry_run_writes_neither_the_file_nor_the_repository() {
    let ws = workspace();
    std::fs::remove_file(ws.config_path()).unwrap();
    ws.run(&["init", "-n"])
        .assert_ok()
        .assert_stdout_has("would write ripcord.toml")
        .assert_stdout_has("would create an encrypted repository");
    assert!(!ws.config_path().exists() && !ws.path("ripcord-repo").exists());
}

#[test]
fn global_flags_work_before_and_after_the_subcommand() {
    let ws = two_targets();
    ws.snapshot_id(&[] as &[&str]);
    let before = ws.ok(&["--json", "snapshots"]).json();
    let after = ws.ok(&["snapshots", "--json"]).json();
    assert_eq!(before, after);
    // --config after the subcommand, from another folder.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = ws.config_path();
    for args in [
        vec!["snapshots", "--config", config.to_str().unwrap(), "--json"],
        vec!["--config", config.to_str().unwrap(), "--json", "snapshots"],
    ] {
        let mut cmd = ws.command(&args);
        cmd.current_dir(elsewhere.path());
        let out = ws.run_cmd(&args, cmd);
        out.assert_ok();
        assert_eq!(out.json(), before);
    }
    assert_eq!(ws.ok(&["snapshot", "-q"]).stdout, "");
    assert_eq!(ws.ok(&["-q", "snapshot"]).stdout, "");
}

/// A SQLite app with two changes, the second destroying data.
fn migrated_app() -> (Workspace, std::path::PathBuf) {
    let (ws, db) = sqlite_app(bin(), "");
    ws.init();
    write(
        &ws,
        "migrations/0001_items/up.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, note TEXT);\n\
         INSERT INTO items (note) VALUES ('kept');\n",
    );
    write(&ws, "migrations/0001_items/down.sql", "DROP TABLE items;\n");
    write(
        &ws,
        "migrations/0002_drop_note/up.sql",
        "ALTER TABLE items DROP COLUMN note;\n",
    );
    write(
        &ws,
        "migrations/0002_drop_note/down.sql",
        "ALTER TABLE items ADD COLUMN note TEXT;\n",
    );
    (ws, db)
}

#[test]
fn migrate_dry_run_short_flag_and_down_destination_as_argument() {
    let (ws, db) = migrated_app();
    let repo = repo_hashes(&ws.repo());
    let up = ws.ok(&["migrate", "up", "-n"]);
    up.assert_stdout_has("dry run: 2 changes would be applied")
        .assert_stdout_has("0002_drop_note: in a transaction, safety snapshot");
    assert_eq!(repo_hashes(&ws.repo()), repo, "up -n wrote no snapshot");
    assert!(
        !db.exists() || rows(&db, "SELECT name FROM sqlite_master WHERE name = 'items'").is_empty(),
        "up -n applied nothing"
    );

    ws.ok(&["migrate", "up"]);
    let repo = repo_hashes(&ws.repo());
    ws.ok(&["migrate", "down", "0001_items", "-n"])
        .assert_stdout_has("dry run: 1 change would be reverted")
        .assert_stdout_has("0002_drop_note");
    ws.ok(&["rollback", "-n", "0001_items"]);
    assert_eq!(repo_hashes(&ws.repo()), repo);
    assert_eq!(
        rows(&db, "SELECT count(*) FROM pragma_table_info('items')"),
        ["1"]
    );

    // The destination as an argument does what --to does.
    ws.ok(&["migrate", "down", "0001_items"]);
    assert_eq!(rows(&db, "SELECT note FROM items"), ["kept"]);
    ws.run(&["migrate", "down", "0001_items", "--to", "0001_items"])
        .assert_code(2);
    ws.run(&["migrate", "down"])
        .assert_code(2)
        .assert_stderr_has("<TO>");

    // migrate's own --format goes before or after its subcommand.
    let a = ws.json(&["migrate", "--format", "native", "status"]);
    let b = ws.json(&["migrate", "status", "--format", "native"]);
    assert_eq!(a, b);
}
