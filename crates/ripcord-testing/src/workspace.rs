//! A temporary folder with a configuration, a repository and targets.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// One configured target.
#[derive(Clone, Debug)]
enum Target {
    Dir { path: PathBuf, exclude: Vec<String> },
    Sqlite { path: PathBuf, create: bool },
}

/// A temporary folder holding `ripcord.toml`, the repository (`repo/`) and
/// whatever the test puts there. Commands run with the folder as working
/// directory, `RIPCORD_PASSWORD` set, `NO_COLOR=1`, and no other `RIPCORD_*`
/// variable inherited from the environment. The folder is deleted on drop.
pub struct Workspace {
    dir: tempfile::TempDir,
    bin: PathBuf,
    password: String,
    targets: Vec<(String, Target)>,
    extra_config: String,
    /// The repository's URL and its settings (`[repository.s3]`), when it
    /// is not the folder `repo/`.
    repository: Option<(String, String)>,
    /// Variables every command of this workspace gets.
    env: Vec<(String, String)>,
}

/// The outcome of one command.
#[derive(Clone, Debug)]
pub struct Output {
    pub args: Vec<String>,
    /// Exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Workspace {
    pub const PASSWORD: &'static str = "correct horse battery staple";

    /// A new workspace for the binary at `bin` (pass `env!("CARGO_BIN_EXE_ripcord")`).
    /// It has a `ripcord.toml` naming `repo/` as repository and no targets;
    /// the repository itself is not created (see [`init`](Self::init)).
    pub fn new(bin: impl Into<PathBuf>) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("ripcord-test-")
            .tempdir()
            .expect("create a temporary folder");
        let ws = Workspace {
            dir,
            bin: bin.into(),
            password: Workspace::PASSWORD.to_string(),
            targets: Vec::new(),
            extra_config: String::new(),
            repository: None,
            env: Vec::new(),
        };
        ws.write_config();
        ws
    }

    /// The workspace folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the workspace folder.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root().join(rel)
    }

    /// Puts the repository at `url` (for example `s3://bucket/prefix`)
    /// instead of `repo/`, with `settings` (TOML such as a
    /// `[repository.s3]` table) added to the configuration.
    pub fn use_repository(&mut self, url: &str, settings: &str) {
        self.repository = Some((url.to_string(), settings.to_string()));
        self.write_config();
    }

    /// Where the repository is: `repo/`'s path, or the URL given to
    /// [`use_repository`](Self::use_repository).
    pub fn repo_url(&self) -> String {
        match &self.repository {
            Some((url, _)) => url.clone(),
            None => self.repo().display().to_string(),
        }
    }

    /// The repository folder.
    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("ripcord.toml")
    }

    /// The passphrase commands run with.
    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn set_password(&mut self, password: impl Into<String>) {
        self.password = password.into();
    }

    /// Sets `key=value` for every command run in this workspace.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Adds a `kind = "dir"` target at `rel` (relative to the workspace) and
    /// rewrites the configuration. Returns the target's absolute path.
    pub fn dir_target(&mut self, name: &str, rel: &str, exclude: &[&str]) -> PathBuf {
        let path = self.path(rel);
        self.targets.push((
            name.to_string(),
            Target::Dir {
                path: path.clone(),
                exclude: exclude.iter().map(|s| s.to_string()).collect(),
            },
        ));
        self.write_config();
        path
    }

    /// Adds a `kind = "sqlite"` target at `rel` and rewrites the configuration.
    pub fn sqlite_target(&mut self, name: &str, rel: &str) -> PathBuf {
        self.add_sqlite(name, rel, false)
    }

    /// Adds a `kind = "sqlite"` target with `create = true`: `migrate up`
    /// may create its file.
    pub fn sqlite_target_created_by_migrate(&mut self, name: &str, rel: &str) -> PathBuf {
        self.add_sqlite(name, rel, true)
    }

    fn add_sqlite(&mut self, name: &str, rel: &str, create: bool) -> PathBuf {
        let path = self.path(rel);
        self.targets.push((
            name.to_string(),
            Target::Sqlite {
                path: path.clone(),
                create,
            },
        ));
        self.write_config();
        path
    }

    /// Appends raw TOML (for example `[tiers.daily]` sections) to the configuration.
    pub fn append_config(&mut self, toml: &str) {
        self.extra_config.push_str(toml);
        self.extra_config.push('\n');
        self.write_config();
    }

    /// The configuration text this workspace writes.
    pub fn config_text(&self) -> String {
        let mut s = format!(
            "[repository]\nurl = {}\n\n[snapshot]\ncompression = 1\n",
            toml_str(&self.repo_url())
        );
        if let Some((_, settings)) = &self.repository {
            s.push('\n');
            s.push_str(settings);
        }
        for (name, t) in &self.targets {
            s.push_str(&format!("\n[targets.{name}]\n"));
            match t {
                Target::Dir { path, exclude } => {
                    s.push_str("kind = \"dir\"\n");
                    s.push_str(&format!(
                        "path = {}\n",
                        toml_str(&path.display().to_string())
                    ));
                    let ex: Vec<String> = exclude.iter().map(|e| toml_str(e)).collect();
                    s.push_str(&format!("exclude = [{}]\n", ex.join(", ")));
                }
                Target::Sqlite { path, create } => {
                    s.push_str("kind = \"sqlite\"\n");
                    s.push_str(&format!(
                        "path = {}\n",
                        toml_str(&path.display().to_string())
                    ));
                    if *create {
                        s.push_str("create = true\n");
                    }
                }
            }
        }
        if !self.extra_config.is_empty() {
            s.push('\n');
            s.push_str(&self.extra_config);
        }
        s
    }

    pub fn write_config(&self) {
        std::fs::write(self.config_path(), self.config_text()).expect("write ripcord.toml");
    }

    /// Runs `ripcord init` and checks that it succeeded.
    pub fn init(&self) -> Output {
        let out = self.run(&["init"]);
        out.assert_ok();
        assert!(
            self.repository.is_some() || self.repo().join("config").is_file(),
            "init did not create {}/config\n{out}",
            self.repo().display()
        );
        out
    }

    /// A ready-to-run command: working directory, passphrase and `NO_COLOR` set,
    /// stdin closed, other `RIPCORD_*` variables removed.
    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(&self.bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RIPCORD_") {
                cmd.env_remove(&k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.current_dir(self.root())
            .env("RIPCORD_PASSWORD", &self.password)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .args(args.iter().map(|a| a.as_ref()));
        cmd
    }

    /// Runs `ripcord ARGS` and collects its output.
    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Output {
        self.run_cmd(args, self.command(args))
    }

    /// Runs `ripcord ARGS` with extra environment variables.
    pub fn run_env<S: AsRef<str>>(&self, args: &[S], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.run_cmd(args, cmd)
    }

    /// Runs a command prepared with [`command`](Self::command).
    pub fn run_cmd<S: AsRef<str>>(&self, args: &[S], mut cmd: Command) -> Output {
        let out = cmd.output().expect("run the ripcord binary");
        Output {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `ripcord ARGS` and panics unless it exits 0.
    pub fn ok<S: AsRef<str>>(&self, args: &[S]) -> Output {
        let out = self.run(args);
        out.assert_ok();
        out
    }

    /// Runs `ripcord --json ARGS`, checks it exits 0 and parses its output.
    pub fn json<S: AsRef<str>>(&self, args: &[S]) -> serde_json::Value {
        let mut all = vec!["--json".to_string()];
        all.extend(args.iter().map(|a| a.as_ref().to_string()));
        self.ok(&all).json()
    }

    /// Starts `ripcord ARGS` without waiting, output discarded.
    pub fn spawn<S: AsRef<str>>(&self, args: &[S], env: &[(&str, &str)]) -> Child {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the ripcord binary")
    }

    /// Takes a snapshot (`snapshot --json ARGS`) and returns its JSON report.
    pub fn snapshot<S: AsRef<str>>(&self, args: &[S]) -> serde_json::Value {
        let mut all = vec!["snapshot".to_string()];
        all.extend(args.iter().map(|a| a.as_ref().to_string()));
        self.json(&all)
    }

    /// Takes a snapshot and returns its full id.
    pub fn snapshot_id<S: AsRef<str>>(&self, args: &[S]) -> String {
        let v = self.snapshot(args);
        v["snapshot"]
            .as_str()
            .unwrap_or_else(|| panic!("snapshot --json has no id: {v}"))
            .to_string()
    }

    /// The ids of all snapshots, oldest first (`snapshots --json`).
    pub fn snapshot_ids(&self) -> Vec<String> {
        let v = self.json(&["snapshots"]);
        v.as_array()
            .unwrap_or_else(|| panic!("snapshots --json is not a list: {v}"))
            .iter()
            .map(|s| s["snapshot"].as_str().expect("snapshot id").to_string())
            .collect()
    }
}

impl Output {
    /// The exit code; panics when a signal ended the process.
    pub fn code(&self) -> i32 {
        match self.code {
            Some(c) => c,
            None => panic!("process was killed by signal {:?}\n{self}", self.signal),
        }
    }

    pub fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        self
    }

    pub fn assert_ok(&self) -> &Output {
        self.assert_code(0)
    }

    /// Checks that stderr contains `phrase` (ignoring ASCII case).
    pub fn assert_stderr_has(&self, phrase: &str) -> &Output {
        assert!(
            self.stderr
                .to_ascii_lowercase()
                .contains(&phrase.to_ascii_lowercase()),
            "stderr does not mention {phrase:?}\n{self}"
        );
        self
    }

    /// Checks that stdout contains `phrase` (ignoring ASCII case).
    pub fn assert_stdout_has(&self, phrase: &str) -> &Output {
        assert!(
            self.stdout
                .to_ascii_lowercase()
                .contains(&phrase.to_ascii_lowercase()),
            "stdout does not mention {phrase:?}\n{self}"
        );
        self
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{self}"))
    }

    /// stdout and stderr together, for searching.
    pub fn all_text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: ripcord {}", self.args.join(" "))?;
        match (self.code, self.signal) {
            (Some(c), _) => writeln!(f, "exit code: {c}")?,
            (None, s) => writeln!(f, "killed by signal {s:?}")?,
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
