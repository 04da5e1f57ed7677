use std::collections::BTreeMap;
use std::path::Path;

use super::*;

fn run(text: &str, vars: &[(&str, &str)]) -> Result<Expanded> {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    expand(Path::new("deploy/x.sql"), text, &vars, Path::new("."))
}

fn sql(text: &str, vars: &[(&str, &str)]) -> String {
    run(text, vars).unwrap().sql
}

fn err(text: &str) -> String {
    run(text, &[]).unwrap_err().to_string()
}

#[test]
fn set_and_interpolation() {
    let out = sql(
        "\\set owner app\n\\set pw 'it''s'\nCREATE ROLE :\"owner\" PASSWORD :'pw';\nSELECT :n::int;\n",
        &[("n", "7")],
    );
    assert_eq!(
        out,
        "\n\nCREATE ROLE \"app\" PASSWORD 'it''s';\nSELECT 7::int;\n"
    );
    // Words of \set are glued together, as psql does.
    assert_eq!(
        sql("\\set x a b 'c d'\nSELECT :'x';", &[]),
        "\nSELECT 'abc d';"
    );
    // A backslash in a value makes an E'' literal.
    assert_eq!(sql("SELECT :'x';", &[("x", "a\\b")]), "SELECT E'a\\\\b';");
}

#[test]
fn interpolation_never_inside_quotes_dollar_quotes_or_comments() {
    let vars = [("x", "BAD")];
    for text in [
        "SELECT ':x', ':''x''';",
        "SELECT \":x\" FROM t;",
        "SELECT $$ :x :'x' $$;",
        "SELECT $f$ :x $f$;",
        "-- :x :'x'\nSELECT 1;",
        "/* :x /* nested :x */ :'x' */ SELECT 1;",
        "SELECT E'\\' :x';",
        "SELECT a::x FROM t;",
    ] {
        assert_eq!(sql(text, &vars), text, "{text}");
    }
    // An undefined :name stays as written (array slices, psql's rule).
    assert_eq!(sql("SELECT a[1:n] FROM t;", &[]), "SELECT a[1:n] FROM t;");
    // Backslashes inside quotes are not meta-commands.
    assert_eq!(
        sql("SELECT '\\q', $$\\set$$;", &[]),
        "SELECT '\\q', $$\\set$$;"
    );
}

#[test]
fn unset_makes_a_variable_undefined() {
    let e = run("\\set x 1\n\\unset x\nSELECT :'x';", &[]).unwrap_err();
    assert!(e.to_string().contains("deploy/x.sql:3"), "{e}");
    assert!(e.to_string().contains("variable x is not set"), "{e}");
}

#[test]
fn conditionals() {
    let text = "\\if :prod\nSELECT 'prod';\n\\elif :stage\nSELECT 'stage';\n\\else\nSELECT 'dev';\n\\endif\nSELECT 1;";
    assert_eq!(
        sql(text, &[("prod", "on"), ("stage", "x")]),
        "\nSELECT 'prod';\n\n\n\n\n\nSELECT 1;"
    );
    assert_eq!(
        sql(text, &[("prod", "false"), ("stage", "yes")]),
        "\n\n\nSELECT 'stage';\n\n\n\nSELECT 1;"
    );
    assert_eq!(
        sql(text, &[("prod", "0"), ("stage", "off")]),
        "\n\n\n\n\nSELECT 'dev';\n\nSELECT 1;"
    );
    // Skipped branches run no backtick and need no variable.
    assert_eq!(
        sql(
            "\\if false\n\\set x `exit 1`\nSELECT :'nope';\n\\endif\n",
            &[]
        ),
        "\n\n\n\n"
    );
    // Whether a variable is set.
    assert_eq!(
        sql(
            "\\if :{?secret}\nA;\n\\else\nB;\n\\endif\nSELECT :{?x};",
            &[("x", "")]
        ),
        "\n\n\nB;\n\nSELECT TRUE;"
    );
    // Nested.
    assert_eq!(
        sql(
            "\\if true\n\\if false\nA;\n\\else\nB;\n\\endif\n\\endif\n",
            &[]
        ),
        "\n\n\n\nB;\n\n\n"
    );
}

#[test]
fn bad_conditionals_name_file_and_line() {
    assert!(
        err("SELECT 1;\n\\if true\nSELECT 2;\n").contains("deploy/x.sql:2: \\if has no matching")
    );
    assert!(err("\\endif\n").contains("deploy/x.sql:1: \\endif without"));
    assert!(err("\\if maybe\n\\endif").contains("Boolean expected"));
    assert!(err("\\if 1\n\\else\n\\else\n\\endif").contains("deploy/x.sql:3"));
}

#[test]
fn backticks_run_in_the_scripts_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("deploy")).unwrap();
    std::fs::write(dir.path().join("deploy/secret"), "s3cr'et\n").unwrap();
    let script = dir.path().join("deploy/x.sql");
    let out = expand(
        &script,
        "\\set pw `cat secret`\nSELECT :'pw';",
        &BTreeMap::new(),
        dir.path(),
    )
    .unwrap();
    assert_eq!(out.sql, "\nSELECT 's3cr''et';");
    let e = expand(
        &script,
        "SELECT 1;\n\\set pw `cat missing`\n",
        &BTreeMap::new(),
        dir.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("x.sql:2: backtick command `cat missing` failed"),
        "{e}"
    );
}

#[test]
fn includes_echo_and_quit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("deploy/lib")).unwrap();
    std::fs::write(
        dir.path().join("deploy/lib/a.sql"),
        "SELECT :'v';\n\\ir b.sql\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("deploy/lib/b.sql"), "SELECT 'b';\n").unwrap();
    std::fs::write(dir.path().join("top.sql"), "SELECT 'top';\n").unwrap();
    let script = dir.path().join("deploy/x.sql");
    let out = expand(
        &script,
        "\\set v 1\n\\include_relative lib/a.sql\n\\include top.sql\n\\echo hello  world\n\\warn careful\n\\qecho -n 'two  spaces'\n\\quit\nSELECT 'never';",
        &BTreeMap::new(),
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        out.sql,
        "\nSELECT '1';\nSELECT 'b';\n\n\nSELECT 'top';\n\n\n\n\n"
    );
    assert_eq!(out.messages.len(), 3);
    assert!(out.messages[0].ends_with("x.sql:4: hello world"));
    assert!(out.messages[1].ends_with("x.sql:5: careful"));
    assert!(out.messages[2].ends_with("x.sql:6: two  spaces"));
    assert!(err("\\i /nonexistent/file.sql").contains("deploy/x.sql:1: \\i /nonexistent"));
}

#[test]
fn gexec_marks_the_query() {
    let out = sql(
        "SELECT 1;\nSELECT 'CREATE DATABASE x' WHERE true\n\\gexec\nSELECT 2;",
        &[],
    );
    assert_eq!(
        out,
        format!("SELECT 1;\n{GEXEC_MARKER}SELECT 'CREATE DATABASE x' WHERE true\n;\nSELECT 2;")
    );
    // On an empty buffer, the previous query again.
    let out = sql("SELECT 'SELECT 1';\n\\gexec\n", &[]);
    assert_eq!(
        out,
        format!("SELECT 'SELECT 1';\n{GEXEC_MARKER}SELECT 'SELECT 1';\n")
    );
    assert!(err("\\gexec").contains("no query"));
}

#[test]
fn other_meta_commands_are_refused_with_file_and_line() {
    for (text, cmd) in [
        ("SELECT 1;\n\\connect other", "\\connect"),
        ("\\copy t from 'x'", "\\copy"),
        ("SELECT 1 \\g", "\\g"),
        ("\\pset format csv", "\\pset"),
    ] {
        let e = err(text);
        assert!(
            e.contains(&format!("meta-command {cmd} is not supported")),
            "{e}"
        );
        assert!(e.starts_with("deploy/x.sql:"), "{e}");
    }
    assert!(err("SELECT 1;\n\n\\connect other").starts_with("deploy/x.sql:3:"));
}

#[test]
fn sqitch_conf_variables_by_step_and_target() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sqitch.conf"),
        "[core]\n\tengine = pg\n\ttarget = prod\n[core.variables]\n\ta = core\n\tb = core\n\
         [deploy.variables]\n\tb = deploy\n\tc = \"quoted # not a comment\"\n\
         [target \"prod.variables\"]\n\td = prod\n[verify \"variables\"]\n\te = v\n\
         [revert.variables]\n\tc = revert\n",
    )
    .unwrap();
    let conf = config::sqitch(dir.path()).unwrap();
    let up = conf.variables("up");
    assert_eq!(up["a"], "core");
    assert_eq!(up["b"], "deploy");
    assert_eq!(up["c"], "quoted # not a comment");
    assert_eq!(up["d"], "prod");
    assert_eq!(conf.variables("verify")["e"], "v");
}

/// sqitch's revert and verify read `[deploy.variables]`, overridden by
/// their own sections; ripcord read only the step's own section, so a
/// revert script using a deploy variable failed as undefined.
#[test]
fn revert_and_verify_read_deploy_variables_as_sqitch_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sqitch.conf"),
        "[core.variables]\n\ta = core\n[deploy.variables]\n\tb = deploy\n\tc = deploy\n\
         [revert.variables]\n\tc = revert\n[verify.variables]\n\tc = verify\n",
    )
    .unwrap();
    let conf = config::sqitch(dir.path()).unwrap();
    let down = conf.variables("down");
    assert_eq!(
        (down["a"].as_str(), down["b"].as_str(), down["c"].as_str()),
        ("core", "deploy", "revert")
    );
    let verify = conf.variables("verify");
    assert_eq!(
        (verify["b"].as_str(), verify["c"].as_str()),
        ("deploy", "verify")
    );
    assert_eq!(conf.variables("up")["c"], "deploy");
}

#[test]
fn flyway_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flyway.conf"),
        "flyway.placeholders.owner=app\nflyway.placeholders.schema=s1\n",
    )
    .unwrap();
    let p = config::flyway(dir.path(), &[("schema".into(), "s2".into())]).unwrap();
    let path = dir.path().join("V1__x.sql");
    assert_eq!(
        p.replace(
            &path,
            "CREATE SCHEMA ${schema} AUTHORIZATION ${owner}; -- ${flyway:filename}"
        )
        .unwrap(),
        "CREATE SCHEMA s2 AUTHORIZATION app; -- V1__x.sql"
    );
    let e = p
        .replace(&path, "SELECT 1;\nSELECT '${nope}';")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("V1__x.sql:2: no value provided for placeholder ${nope}"),
        "{e}"
    );
}

#[test]
fn transaction_blocks_become_savepoints() {
    use crate::analyze::{transaction_blocks, Blocks, Dialect};
    let verify = "BEGIN;\nSET LOCAL search_path = app;\nSELECT 1/count(*) FROM t;\nROLLBACK;\nBEGIN;\nSELECT 2;\nCOMMIT;\nBEGIN;\nSELECT 3;";
    let out = transaction_blocks(verify, Dialect::Postgres, Blocks::Verify)
        .unwrap()
        .unwrap();
    assert_eq!(
        out,
        "SAVEPOINT ripcord_block_1;\nSET LOCAL search_path = app;\nSELECT 1/count(*) FROM t;\n\
         ROLLBACK TO SAVEPOINT ripcord_block_1; RELEASE SAVEPOINT ripcord_block_1;\n\
         SAVEPOINT ripcord_block_2;\nSELECT 2;\nRELEASE SAVEPOINT ripcord_block_2;\n\
         SAVEPOINT ripcord_block_3;\nSELECT 3;\n;ROLLBACK TO SAVEPOINT ripcord_block_3; \
         RELEASE SAVEPOINT ripcord_block_3"
    );
    let (line, why) = transaction_blocks(
        "SELECT 1;\nBEGIN;\nSELECT 2;",
        Dialect::Postgres,
        Blocks::Change,
    )
    .unwrap_err();
    assert_eq!(line, 2);
    assert!(why.contains("never committed"));
    assert!(transaction_blocks(
        "BEGIN;\nPREPARE TRANSACTION 'x';",
        Dialect::Postgres,
        Blocks::Change
    )
    .is_err());
    assert!(transaction_blocks("COMMIT AND CHAIN;", Dialect::Sqlite, Blocks::Change).is_err());
    assert_eq!(
        transaction_blocks("SELECT 1;", Dialect::Sqlite, Blocks::Change),
        Ok(None)
    );
}

/// Whatever the text, expansion answers (SQL or an error), never panics:
/// quotes, dollar quotes, comments and meta-commands cut anywhere, with
/// multi-byte characters among them.
#[test]
fn expansion_never_panics_on_broken_text() {
    const PIECES: &[&str] = &[
        "'",
        "\"",
        "$$",
        "$t$",
        "--",
        "/*",
        "*/",
        "\n",
        ";",
        ":",
        "::",
        ":'x'",
        ":\"x\"",
        ":x",
        ":{?x}",
        "\\",
        "\\set x é",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "END",
        "\\if ",
        "\\elif 0",
        "\\else",
        "\\endif",
        "\\gexec",
        "\\echo",
        "\\unset x",
        "E'",
        "\\\\",
        "(",
        ")",
        "é",
        "字",
        " ",
        "SELECT",
        "x",
        "\\q",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let len = (next() % 12) as usize;
        let text: String = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        let _ = run(&text, &[("x", "v")]);
        for mode in [
            crate::analyze::Blocks::Change,
            crate::analyze::Blocks::Verify,
        ] {
            let _ =
                crate::analyze::transaction_blocks(&text, crate::analyze::Dialect::Postgres, mode);
        }
    }
}
