//! The README's shell blocks, run as written, in order, on one scratch
//! folder, so that the examples stay true.
//!
//! Each ```sh block runs with `bash -e -o pipefail` in the scratch folder,
//! with the built `ripcord` first on PATH. The folder starts as the README
//! says: an application's SQLite database `app.db` and its settings in
//! `config/`. A block that cannot run here (it needs cargo and the source
//! tree, or a PostgreSQL server at a made-up address) says so in its fence:
//! ```sh no-run: the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// At most this many blocks may be left out; every other one runs.
const MAX_NO_RUN: usize = 3;

struct Block {
    /// The fence's info string, without the backticks.
    info: String,
    /// The line of the opening fence.
    line: usize,
    body: String,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    line: i + 1,
                    body: String::new(),
                })
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => out.push(open.take().unwrap()),
            (Some(block), _) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md: a code block is not closed");
    out
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(path).expect("read README.md")
}

/// The folder the README's examples start in.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL);
         INSERT INTO orders (item) VALUES ('tea'), ('cake');",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/app.toml"), "port = 8080\n").unwrap();
    std::fs::write(dir.path().join("config/notes.txt"), "hello\n").unwrap();
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    dir
}

fn run(block: &Block, dir: &Path, bin_dir: &Path) {
    let mut cmd = Command::new("bash");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RIPCORD_") {
            cmd.env_remove(&k);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin_dir.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    let out = cmd
        .args(["-e", "-o", "pipefail", "-c", &block.body])
        .current_dir(dir)
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env("HOME", dir.join("home"))
        .env("NO_COLOR", "1")
        // The first block exports it; each block is its own shell.
        .env("RIPCORD_PASSWORD", "a long passphrase")
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "README.md block at line {} failed ({}):\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        block.line,
        out.status,
        block.body,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn readme_shell_blocks_run() {
    let text = readme();
    let all = blocks(&text);
    let mut runnable = Vec::new();
    let mut skipped = Vec::new();
    for block in &all {
        let mut words = block.info.splitn(2, char::is_whitespace);
        let lang = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("").trim();
        assert!(
            !matches!(lang, "bash" | "shell" | "console" | "zsh"),
            "README.md line {}: write shell blocks as ```sh so that they are run",
            block.line
        );
        if lang != "sh" {
            continue;
        }
        match rest.strip_prefix("no-run") {
            Some(reason) => {
                let reason = reason.trim_start_matches(':').trim();
                assert!(
                    reason.split_whitespace().count() >= 3,
                    "README.md line {}: say why the block does not run (```sh no-run: reason)",
                    block.line
                );
                skipped.push(block);
            }
            None => {
                assert!(
                    rest.is_empty(),
                    "README.md line {}: unknown fence marker {rest:?}",
                    block.line
                );
                runnable.push(block);
            }
        }
    }
    assert!(
        skipped.len() <= MAX_NO_RUN,
        "{} README blocks do not run (at most {MAX_NO_RUN}): lines {:?}",
        skipped.len(),
        skipped.iter().map(|b| b.line).collect::<Vec<_>>()
    );
    assert!(runnable.len() >= 3, "the README's examples are not found");

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ripcord"));
    let dir = scratch();
    for block in runnable {
        run(block, dir.path(), bin.parent().unwrap());
    }
}

/// The Quick start stays two commands: the demo and the test suite.
#[test]
fn quick_start_is_the_demo_and_the_test_suite() {
    let text = readme();
    let start = text.find("## Quick start").expect("a Quick start section");
    let block = blocks(&text[start..]).into_iter().next().unwrap();
    let commands: Vec<&str> = block
        .body
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(commands, ["cargo run --release -- demo", "scripts/test"]);
}

#[test]
fn a_failing_block_fails_the_test() {
    let block = Block {
        info: "sh".into(),
        line: 1,
        body: "ripcord snapshot --target nosuch\necho not reached\n".into(),
    };
    let dir = scratch();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ripcord"));
    let result = std::panic::catch_unwind(|| run(&block, dir.path(), bin.parent().unwrap()));
    let message = result.expect_err("a block that exits non-zero must fail");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("ripcord snapshot --target nosuch"),
        "{message}"
    );
    assert!(message.contains("ripcord.toml"), "{message}");
    assert_eq!(block.info, "sh");
}
