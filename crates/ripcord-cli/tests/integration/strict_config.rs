//! The configuration is strict: unknown sections and keys, in the file or
//! named by `RIPCORD_*` variables, and target names that are not plain
//! names stop every command with exit 2 before anything happens.

use ripcord_testing::{repo_hashes, Workspace};

use crate::common::*;

/// A workspace with a repository and a snapshot, and `extra` appended to
/// its configuration afterwards.
fn configured(extra: &str) -> Workspace {
    let mut ws = workspace();
    ripcord_testing::data::standard_tree(&ws.path("app"), 90);
    ws.dir_target("app", "app", &[]);
    ws.init();
    ws.snapshot_id(&[] as &[&str]);
    ws.append_config(extra);
    ws
}

#[test]
fn misspelt_targets_section_is_refused_with_a_suggestion() {
    // Before, `[targts.db]` was ignored and that target never backed up.
    let ws = configured("[targts.db]\nkind = \"dir\"\npath = \"app\"\n");
    let before = repo_hashes(&ws.repo());
    for args in [vec!["snapshot"], vec!["snapshots"], vec!["verify"]] {
        ws.run(&args)
            .assert_code(2)
            .assert_stderr_has("unknown section [targts]")
            .assert_stderr_has("did you mean [targets]?")
            .assert_stderr_has("ripcord.toml")
            .assert_stderr_has("hint:");
    }
    assert_eq!(repo_hashes(&ws.repo()), before, "the repository changed");
}

#[test]
fn unknown_keys_in_target_tables_are_refused_per_kind() {
    let ws = configured("[targets.more]\nkind = \"dir\"\npaht = \"app\"\n");
    ws.run(&["snapshot"])
        .assert_code(2)
        .assert_stderr_has("unknown key `paht` in [targets.more]")
        .assert_stderr_has("did you mean `path`?");

    let ws =
        configured("[targets.db]\nkind = \"sqlite\"\npath = \"x.db\"\nexclude = [\"*.tmp\"]\n");
    ws.run(&["snapshots"])
        .assert_code(2)
        .assert_stderr_has("unknown key `exclude` in [targets.db]")
        .assert_stderr_has("applies to dir targets");

    let ws = configured("[snapshot.extra]\n");
    ws.run(&["snapshots"]).assert_code(2);
    let ws = configured("[tiers.daily]\nkeep = { dayly = 7 }\n");
    ws.run(&["snapshots"])
        .assert_code(2)
        .assert_stderr_has("did you mean `daily`?");
}

#[test]
fn environment_override_of_an_unknown_key_names_the_variable() {
    let ws = configured("");
    ws.run_env(
        &["snapshot"],
        &[("RIPCORD_TARGETS__APP__PAHT", "/elsewhere")],
    )
    .assert_code(2)
    .assert_stderr_has("RIPCORD_TARGETS__APP__PAHT")
    .assert_stderr_has("did you mean `path`?");
    ws.run_env(&["snapshots"], &[("RIPCORD_SNAPSHOTS__JOBS", "2")])
        .assert_code(2)
        .assert_stderr_has("RIPCORD_SNAPSHOTS__JOBS")
        .assert_stderr_has("did you mean [snapshot]?");
    // A misspelt alias would silently point elsewhere.
    ws.run_env(&["snapshots"], &[("RIPCORD_REPOSITRY", "/tmp/other")])
        .assert_code(2)
        .assert_stderr_has("did you mean RIPCORD_REPOSITORY?");
    // Known keys still work from the environment.
    ws.run_env(&["snapshots"], &[("RIPCORD_SNAPSHOT__JOBS", "2")])
        .assert_ok();
}

#[test]
fn target_names_must_be_plain_names() {
    for name in ["\"../x\"", "\"/tmp/x\"", "\"a b\"", &"x".repeat(65)] {
        let ws = configured(&format!(
            "[targets.{name}]\nkind = \"dir\"\npath = \"app\"\n"
        ));
        let before = repo_hashes(&ws.repo());
        ws.run(&["snapshot"])
            .assert_code(2)
            .assert_stderr_has("is not a plain name")
            .assert_stderr_has("hint:");
        assert_eq!(repo_hashes(&ws.repo()), before);
    }
    // 64 characters of letters, digits, `-` and `_` are fine.
    let ok = format!("a-_{}", "9".repeat(61));
    let ws = configured(&format!("[targets.{ok}]\nkind = \"dir\"\npath = \"app\"\n"));
    ws.ok(&["snapshot", &ok]);
}

#[test]
fn config_pointing_at_a_directory_exits_2() {
    let ws = configured("");
    std::fs::create_dir_all(ws.path("conf.d")).unwrap();
    for args in [
        vec!["--config", "conf.d", "snapshots"],
        vec!["--config", "conf.d", "init"],
    ] {
        ws.run(&args)
            .assert_code(2)
            .assert_stderr_has("is a directory")
            .assert_stderr_has("hint:");
    }
}
