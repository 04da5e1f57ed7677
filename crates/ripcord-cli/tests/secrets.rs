//! Secrets never leave: the suite's main scenarios run with a canary
//! repository passphrase and canary PostgreSQL passwords (a role of their
//! own on the throwaway cluster, password login over TCP), and the canaries
//! are found nowhere: not in the repository, ripcord.toml or anything else
//! in the workspace or the temporary folder, not on stdout or stderr, not on
//! the command line of any child (wrappers for pg_dump, pg_restore and psql
//! log their argv and environment, and a watcher reads /proc/*/cmdline while
//! the commands run), and no child inherits RIPCORD_PASSWORD or
//! RIPCORD_NEW_PASSWORD.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ripcord_testing::data::write_file;
use ripcord_testing::pg::{self, PgCluster};
use ripcord_testing::{Output, Workspace};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

fn cluster() -> &'static PgCluster {
    pg::shared()
}

/// Reads the command line of every process, again and again, until stopped,
/// and keeps those that hold a canary (ripcord's own is left out: a URL the
/// user passes with `--into` is theirs to show).
struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(canaries: Vec<String>) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, found) = (stop.clone(), seen.clone());
        let me = std::process::id().to_string();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                        continue;
                    }
                    let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                        continue;
                    };
                    let line = String::from_utf8_lossy(&raw).replace('\0', " ");
                    let first = line.split(' ').next().unwrap_or_default();
                    if first.ends_with("/ripcord") || first == "ripcord" {
                        continue;
                    }
                    if canaries.iter().any(|c| line.contains(c.as_str())) {
                        found.lock().unwrap().push(line);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        Watcher {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let seen = self.seen.lock().unwrap().clone();
        seen
    }
}

/// Wrappers for the client tools that log each call's argv and environment,
/// then run the real tool.
fn wrappers(dir: &Path, real: &Path, log: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for tool in ["pg_dump", "pg_restore", "psql"] {
        let path = dir.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n\
                 printf '%s\\n' \"$0 $*\" >> '{log}/argv'\n\
                 printf '=== %s\\n' \"$0\" >> '{log}/env'\n\
                 env >> '{log}/env'\n\
                 exec '{real}/{tool}' \"$@\"\n",
                log = log.display(),
                real = real.display(),
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Every file under `dir` that holds one of `canaries`, and which.
fn files_holding(dir: &Path, canaries: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).unwrap_or_default();
                for c in canaries {
                    if contains(&bytes, c.as_bytes()) {
                        out.push(format!("{} holds {c}", path.display()));
                    }
                }
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct Canary {
    ws: Workspace,
    /// Variables every command gets: tool wrappers, database URLs.
    env: Vec<(String, String)>,
    tmp: PathBuf,
    outputs: Vec<Output>,
}

impl Canary {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.ws.command(args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("TMPDIR", &self.tmp);
        cmd
    }

    fn run(&mut self, args: &[&str]) -> Output {
        let out = self.ws.run_cmd(args, self.command(args));
        self.outputs.push(out.clone());
        out
    }

    fn ok(&mut self, args: &[&str]) -> Output {
        let out = self.run(args);
        out.assert_ok();
        out
    }
}

#[test]
fn canary_passwords_are_found_nowhere() {
    let c = cluster();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tag = format!("{:x}{nanos:08x}", std::process::id());
    let pg_pass = format!("pgcanary{tag}");
    let repo_pass = format!("repocanary{tag}");
    let new_pass = format!("newcanary{tag}");
    let wrong_pass = format!("wrongcanary{tag}");
    let canaries = vec![
        pg_pass.clone(),
        repo_pass.clone(),
        new_pass.clone(),
        wrong_pass.clone(),
    ];
    let role = format!("canary_{tag}");
    c.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{pg_pass}'"),
    );
    let db = c.create_database("canary").unwrap();
    c.psql(
        &db,
        "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO accounts SELECT g, 'name ' || g FROM generate_series(1, 200) g;",
    );
    let other = c.create_database("canary_other").unwrap();
    c.psql(
        &other,
        "CREATE TABLE notes (id int PRIMARY KEY, body text);",
    );
    let port = c.port();
    let host = "127.0.0.1";

    let mut ws = Workspace::new(bin());
    ws.set_password(repo_pass.clone());
    let log = ws
        .path("..")
        .canonicalize()
        .unwrap()
        .join(format!("canary-log-{tag}"));
    std::fs::create_dir_all(&log).unwrap();
    let tools = log.join("bin");
    wrappers(&tools, c.bin_dir(), &log);
    let tmp = log.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // ripcord.toml names the targets; the URLs with the passwords come from
    // the environment, so that the file itself starts clean.
    ws.append_config(&format!(
        "[targets.app]\nkind = \"postgres\"\nurl = \"postgres://{role}@{host}:{port}/{db}\"\n\n\
         [targets.other]\nkind = \"postgres\"\nurl = \"postgres://{role}@{host}:{port}/{other}\"\n\n\
         [targets.kv]\nkind = \"postgres\"\nurl = \"host={host}\"\n\n\
         [migrations]\ntarget = \"app\"\ndir = \"migrations\"\n"
    ));
    let env = vec![
        ("RIPCORD_PG_BINDIR".to_string(), tools.display().to_string()),
        // The three ways to write a password: user:password@, ?password=,
        // and a key/value string.
        (
            "RIPCORD_TARGETS__APP__URL".to_string(),
            format!("postgres://{role}:{pg_pass}@{host}:{port}/{db}"),
        ),
        (
            "RIPCORD_TARGETS__OTHER__URL".to_string(),
            format!("postgres://{role}@{host}:{port}/{other}?password={pg_pass}&sslmode=disable"),
        ),
        (
            "RIPCORD_TARGETS__KV__URL".to_string(),
            format!("host={host} port={port} user={role} password='{pg_pass}' dbname={other}"),
        ),
    ];
    let mut t = Canary {
        ws,
        env,
        tmp: tmp.clone(),
        outputs: Vec::new(),
    };
    write_file(
        &t.ws.path("migrations/0001_audit/up.sql"),
        b"CREATE TABLE audit (id int PRIMARY KEY, at text);\n",
    );
    write_file(
        &t.ws.path("migrations/0001_audit/down.sql"),
        b"DROP TABLE audit;\n",
    );
    write_file(
        &t.ws.path("migrations/0002_note/up.sql"),
        b"ALTER TABLE accounts ADD COLUMN note text;\n",
    );
    write_file(
        &t.ws.path("migrations/0002_note/down.sql"),
        b"ALTER TABLE accounts DROP COLUMN note;\n",
    );

    let watcher = Watcher::start(canaries.clone());

    t.ok(&["init"]);
    let first = t.ok(&["--json", "snapshot"]).json()["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    c.psql(&db, "UPDATE accounts SET name = 'changed' WHERE id <= 10");
    let second = t.ok(&["--json", "snapshot", "app"]).json()["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    t.ok(&["snapshots"]);
    t.ok(&["--json", "snapshots"]);
    t.ok(&["show", &first]);
    t.ok(&["--json", "show", &first]);
    t.ok(&["diff", &first, &second]);
    t.ok(&["--json", "diff", &first, &second]);
    t.ok(&["verify"]);
    t.ok(&["verify", "--deep"]);
    // Restores: in place (with its safety snapshot), and into a new database.
    t.ok(&["restore", &first, "--target", "app"]);
    let dst = format!("canary_dst_{tag}");
    let into = format!("postgres://{role}:{pg_pass}@{host}:{port}/{dst}");
    t.ok(&[
        "--json", "restore", &first, "--target", "app", "--into", &into, "--create",
    ]);
    // Migrations.
    t.ok(&["migrate", "status"]);
    t.ok(&["--json", "migrate", "rehearse"]);
    t.ok(&["migrate", "rehearse"]);
    t.ok(&["--json", "migrate", "up"]);
    t.ok(&["--json", "migrate", "status"]);
    t.ok(&["migrate", "down", "--to", "0001_audit"]);
    t.ok(&["--json", "migrate", "down", "--to", "@root"]);

    // Error paths: an unreachable server, a wrong password, a malformed URL,
    // a table that does not exist, a target the server lacks.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let failing: Vec<(String, Vec<&str>, i32)> = vec![
        (
            format!("postgres://{role}:{pg_pass}@{host}:{closed}/{db}"),
            vec!["snapshot", "app"],
            1,
        ),
        (
            format!("postgres://{role}@{host}:{closed}/{db}?password={pg_pass}"),
            vec!["--json", "snapshot", "app"],
            1,
        ),
        (
            format!("postgres://{role}:{wrong_pass}@{host}:{port}/{db}"),
            vec!["snapshot", "app"],
            2,
        ),
        (
            format!("postgres://{role}:{wrong_pass}@{host}:{port}/{db}"),
            vec!["--json", "migrate", "status"],
            2,
        ),
        (
            format!("postgres://{role}:{pg_pass}@{host}:notaport/{db}"),
            vec!["snapshot", "app"],
            2,
        ),
        (
            format!("host={host} port={port} user={role} password={wrong_pass} dbname={db}"),
            vec!["--json", "snapshot", "app"],
            2,
        ),
        (
            format!("postgres://{role}:{pg_pass}@{host}:{port}/no_such_db_{tag}"),
            vec!["snapshot", "app"],
            2,
        ),
        (
            format!("postgres://{role}:{pg_pass}@{host}:{port}/{db}"),
            vec!["snapshot", "app", "--tables", "accounts,no_such_table"],
            2,
        ),
    ];
    for (url, args, code) in &failing {
        let mut cmd = t.command(args);
        cmd.env("RIPCORD_TARGETS__APP__URL", url);
        let out = t.ws.run_cmd(args, cmd);
        // What matters here is that it fails without a trace; the exit
        // codes of these failures are pinned elsewhere.
        assert!(
            matches!(out.code, Some(1 | 2)),
            "expected a failure (about exit {code})\n{out}"
        );
        t.outputs.push(out);
    }
    let out = t.run(&[
        "restore",
        &first,
        "--target",
        "app",
        "--tables",
        "no_such_table",
    ]);
    out.assert_code(2);
    let bad_into = format!("postgres://{role}:{pg_pass}@{host}:{closed}/{dst}");
    let out = t.run(&["restore", &first, "--target", "app", "--into", &bad_into]);
    out.assert_code(1);

    // A new passphrase, the current one from password_command: neither
    // that command nor anything else sees RIPCORD_NEW_PASSWORD.
    let pass_file = log.join("pass");
    std::fs::write(&pass_file, &repo_pass).unwrap();
    let script = log.join("password-command.sh");
    std::fs::write(
        &script,
        format!(
            "env > '{}/env-password-command'\ncat '{}'\n",
            log.display(),
            pass_file.display()
        ),
    )
    .unwrap();
    let args = ["key", "add"];
    let mut cmd = t.command(&args);
    cmd.env_remove("RIPCORD_PASSWORD")
        .env(
            "RIPCORD_PASSWORD_COMMAND",
            format!("sh {}", script.display()),
        )
        .env("RIPCORD_NEW_PASSWORD", &new_pass);
    let out = t.ws.run_cmd(&args, cmd);
    out.assert_ok();
    t.outputs.push(out);
    // The new passphrase opens the repository.
    let args = ["snapshots"];
    let mut cmd = t.command(&args);
    cmd.env("RIPCORD_PASSWORD", &new_pass);
    let out = t.ws.run_cmd(&args, cmd);
    out.assert_ok();
    t.outputs.push(out);
    // With RIPCORD_PASSWORD set, password_command is not run; with both
    // set, a snapshot's pg_dump still sees neither passphrase.
    t.ok(&["snapshot", "app"]);

    let seen = watcher.finish();
    assert!(seen.is_empty(), "command lines with a canary: {seen:#?}");

    // Nothing printed holds a canary.
    for out in &t.outputs {
        for canary in &canaries {
            assert!(
                !out.all_text().contains(canary.as_str()),
                "{canary} printed\n{out}"
            );
        }
    }
    // The wrappers really ran (or the checks below prove nothing) and saw
    // no canary on their command lines.
    let argv = std::fs::read_to_string(log.join("argv")).unwrap();
    for tool in ["pg_dump", "pg_restore"] {
        assert!(argv.contains(tool), "{tool} never ran:\n{argv}");
    }
    for canary in &canaries {
        assert!(
            !argv.contains(canary.as_str()),
            "{canary} on a command line:\n{argv}"
        );
    }
    // Their environment: the password only as PGPASSWORD, no passphrase.
    let env = std::fs::read_to_string(log.join("env")).unwrap();
    for line in env.lines() {
        assert!(
            !line.starts_with("RIPCORD_PASSWORD=") && !line.starts_with("RIPCORD_NEW_PASSWORD="),
            "a tool inherited {line}"
        );
        for canary in [&repo_pass, &new_pass] {
            assert!(
                !line.contains(canary.as_str()),
                "a tool's environment: {line}"
            );
        }
        if line.contains(&pg_pass) {
            assert!(
                line.starts_with("PGPASSWORD="),
                "a tool's environment: {line}"
            );
        }
    }
    assert!(
        env.contains(&format!("PGPASSWORD={pg_pass}")),
        "tools get the password\n{env}"
    );
    let env = std::fs::read_to_string(log.join("env-password-command")).unwrap();
    for line in env.lines() {
        assert!(
            !line.starts_with("RIPCORD_NEW_PASSWORD=") && !line.starts_with("RIPCORD_PASSWORD="),
            "password_command inherited {line}"
        );
        for canary in &canaries {
            assert!(
                !line.contains(canary.as_str()),
                "password_command's environment: {line}"
            );
        }
    }

    // Nothing stored holds a canary: the workspace (ripcord.toml, the
    // repository), the temporary folder of the commands, and the manifests
    // as decrypted.
    let leaks = files_holding(t.ws.root(), &canaries);
    assert!(leaks.is_empty(), "{leaks:#?}");
    let leaks = files_holding(&tmp, &canaries);
    assert!(leaks.is_empty(), "{leaks:#?}");
    let repo = ripcord_repo::Repository::open(
        Arc::new(ripcord_repo::backend::LocalBackend::new(t.ws.repo())),
        Some(&repo_pass),
    )
    .unwrap();
    let mut sources = Vec::new();
    for (_, s) in repo.snapshots().unwrap() {
        for target in &s.targets {
            sources.push(target.source.clone());
            let text = serde_json::to_string(&s).unwrap();
            for canary in &canaries {
                assert!(
                    !text.contains(canary.as_str()),
                    "a manifest holds {canary}: {text}"
                );
            }
        }
    }
    assert!(
        sources.iter().any(|s| s.contains(&role)),
        "the manifests name the database: {sources:?}"
    );
    // And the migration records in the database.
    for table in c.psql(
        &db,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'ripcord'",
    ) {
        let table = table[0].clone().unwrap();
        for row in c.psql(&db, &format!("SELECT t::text FROM {table} t")) {
            let text = row[0].clone().unwrap_or_default();
            for canary in &canaries {
                assert!(
                    !text.contains(canary.as_str()),
                    "{table} holds {canary}: {text}"
                );
            }
        }
    }

    for d in [&db, &other, &dst] {
        c.drop_database(d).ok();
    }
    c.psql("postgres", &format!("DROP ROLE {role}"));
    std::fs::remove_dir_all(&log).ok();
}
