//! What a new user meets first: no ripcord.toml, environment overrides, and
//! relative paths.

use ripcord_testing::Workspace;

use crate::common::*;

/// Every command that needs a configuration, with the arguments it needs.
const COMMANDS: &[&[&str]] = &[
    &["snapshot"],
    &["snapshots"],
    &["show", "latest"],
    &["diff", "latest", "latest"],
    &["restore", "latest"],
    &["verify"],
    &["forget", "--keep-last", "1"],
    &["prune"],
    &["key", "list"],
    &["unlock"],
    &["repair", "index"],
    &["migrate", "plan"],
    &["migrate", "status"],
    &["migrate", "lint"],
    &["migrate", "up"],
    &["migrate", "down", "@root"],
    &["migrate", "rehearse"],
    &["migrate", "verify"],
    &["migrate", "adopt"],
    &["rollback", "@root"],
];

#[test]
fn without_ripcord_toml_every_command_says_so() {
    let ws = workspace();
    std::fs::remove_file(ws.config_path()).unwrap();
    let expected = ws.path("ripcord.toml");
    for args in COMMANDS {
        let out = ws.run(args);
        out.assert_code(2)
            .assert_stderr_has(&format!(
                "no configuration file: {} does not exist",
                expected.display()
            ))
            .assert_stderr_has("ripcord init")
            .assert_stderr_has("--config");
        assert!(
            !out.stderr.contains("[migrations]"),
            "{args:?} speaks of a section of a file that does not exist:\n{out}"
        );
    }
    assert!(!ws.path("ripcord.toml").exists() && !ws.repo().exists());
    // The environment alone may name the repository; what it lacks is
    // still blamed on the missing file.
    let repo = ws.repo();
    let env = [("RIPCORD_REPOSITORY", repo.to_str().unwrap())];
    ws.run_env(&["init"], &env).assert_ok();
    std::fs::remove_file(ws.config_path()).unwrap();
    ws.run_env(&["snapshots"], &env).assert_ok();
    ws.run_env(&["snapshot"], &env)
        .assert_code(2)
        .assert_stderr_has("no configuration file")
        .assert_stderr_has("ripcord init");
}

#[test]
fn a_bad_environment_value_names_the_variable_not_the_file() {
    let ws = workspace();
    ws.init();
    for (var, value, says) in [
        (
            "RIPCORD_SNAPSHOT__COMPRESSON",
            "3",
            "did you mean `compression`?",
        ),
        ("RIPCORD_SNAPSHOT__COMPRESSION", "99", "is not a zstd level"),
        (
            "RIPCORD_SNAPSHOT__COMPRESSION",
            "fast",
            "snapshot.compression",
        ),
        (
            "RIPCORD_TARGETS__X__KIND",
            "mysql",
            "unknown variant `mysql`",
        ),
    ] {
        let out = ws.run_env(&["snapshots"], &[(var, value)]);
        out.assert_code(2)
            .assert_stderr_has(&format!("environment variable {var}"))
            .assert_stderr_has(says);
        assert!(
            !out.stderr.contains("ripcord.toml"),
            "{var}: blames the file:\n{out}"
        );
    }
    // A mistake in the file is still the file's.
    let text = ws.config_text();
    assert!(text.contains("compression = 1"), "{text}");
    std::fs::write(
        ws.config_path(),
        text.replace("compression = 1", "compression = 99"),
    )
    .unwrap();
    let out = ws.run_env(&["snapshots"], &[("RIPCORD_SNAPSHOT__JOBS", "2")]);
    out.assert_code(2)
        .assert_stderr_has("ripcord.toml is not valid");
    assert!(!out.stderr.contains("RIPCORD_SNAPSHOT__JOBS"), "{out}");
}

/// Relative paths in the file are relative to its folder; relative paths
/// in environment values to the working directory.
#[test]
fn relative_paths_resolve_against_the_file_or_the_working_directory() {
    let ws = Workspace::new(bin());
    std::fs::remove_file(ws.config_path()).unwrap();
    std::fs::create_dir_all(ws.path("etc/conf")).unwrap();
    std::fs::write(ws.path("etc/conf/in-file.txt"), "from the file's folder").unwrap();
    std::fs::create_dir_all(ws.path("work/conf")).unwrap();
    std::fs::write(
        ws.path("work/conf/from-env.txt"),
        "from the working directory",
    )
    .unwrap();
    // The configuration lives in etc/; commands run in work/.
    let config = ws.path("etc/ripcord.toml");
    std::fs::write(
        &config,
        "[repository]\nurl = \"../repo\"\n\n[targets.config]\nkind = \"dir\"\npath = \"conf\"\n",
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut cmd = ws.command(&all);
        cmd.current_dir(ws.path("work"));
        cmd.envs(env.iter().copied());
        ws.run_cmd(&all, cmd)
    };
    run(&["init"], &[]).assert_ok();
    assert!(
        ws.repo().join("config").is_file(),
        "repository ../repo beside etc/"
    );

    let out = run(&["--json", "snapshot", "-n"], &[]);
    out.assert_ok();
    assert_eq!(
        out.json()["targets"][0]["source"].as_str(),
        Some(ws.path("etc/conf").to_str().unwrap())
    );
    let env = [("RIPCORD_TARGETS__CONFIG__PATH", "conf")];
    let out = run(&["--json", "snapshot", "-n"], &env);
    out.assert_ok();
    assert_eq!(
        out.json()["targets"][0]["source"].as_str(),
        Some(ws.path("work/conf").to_str().unwrap())
    );
    run(&["snapshot"], &env).assert_ok();
    let listed = run(&["--json", "snapshots"], &[]);
    let id = listed.json()[0]["snapshot"].as_str().unwrap().to_string();
    run(&["restore", &id, "--into", "out"], &[]).assert_ok();
    assert!(
        ws.path("work/out").exists(),
        "--into out is relative to the working directory"
    );
    let restored: Vec<_> = walk(&ws.path("work/out"));
    assert!(
        restored.iter().any(|p| p.ends_with("from-env.txt")),
        "{restored:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
