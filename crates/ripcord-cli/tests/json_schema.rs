//! Every command's `--json` output, on success and on failure, matches the
//! JSON Schema derived from the very type it serializes
//! (`ripcord_guard::json::schemas`, described in docs/json.md). The commands
//! run for real against a repository with a dir target and a SQLite target
//! with migrations; the test fails when a command of the command line is
//! not run here, so a new command cannot slip past its schema.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::CommandFactory;
use ripcord_testing::app::{sqlite_app, sqlite_exec as exec, write};
use ripcord_testing::Workspace;
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

/// Runs commands under `--json` and checks each document.
struct Checker {
    validators: BTreeMap<&'static str, jsonschema::Validator>,
    succeeded: BTreeSet<String>,
    failed: BTreeSet<String>,
    /// The commands that take `--dry-run`, and those run with it.
    can_dry_run: BTreeSet<String>,
    dry_runs: BTreeSet<String>,
}

impl Checker {
    fn new() -> Checker {
        let validators = ripcord_guard::json::schemas()
            .into_iter()
            .map(|(command, schema)| {
                let mut schema = serde_json::to_value(&schema).expect("schema as JSON");
                closed(&mut schema, false);
                let v = jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("the schema of {command} is not valid: {e}"));
                (command, v)
            })
            .collect();
        let mut can_dry_run = BTreeSet::new();
        dry_run_commands(&ripcord_cli::cli::Cli::command(), "", &mut can_dry_run);
        Checker {
            validators,
            succeeded: BTreeSet::new(),
            failed: BTreeSet::new(),
            can_dry_run,
            dry_runs: BTreeSet::new(),
        }
    }

    fn validate(&self, command: &str, doc: &Value, what: &str) {
        let v = self
            .validators
            .get(command)
            .unwrap_or_else(|| panic!("no schema for {command}"));
        let errors: Vec<String> = v
            .iter_errors(doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} does not match the schema of {command}:\n{}\n{}",
            errors.join("\n"),
            serde_json::to_string_pretty(doc).unwrap()
        );
    }

    /// `ripcord --json ARGS` succeeds and prints one document of `command`.
    fn ok(&mut self, ws: &Workspace, command: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = ws.run_env(&all, env);
        assert_eq!(out.code(), 0, "{out}");
        let doc: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout of {all:?} is not one JSON document ({e}):\n{out}"));
        self.validate(command, &doc, &format!("ripcord {}", all.join(" ")));
        // A command that can dry-run says in every document whether it did.
        if self.can_dry_run.contains(command) {
            let dry = args.contains(&"--dry-run");
            assert_eq!(doc["dry_run"], dry, "ripcord {}: {doc}", all.join(" "));
            if dry {
                self.dry_runs.insert(command.to_string());
            }
        }
        self.succeeded.insert(command.to_string());
        doc
    }

    /// `ripcord --json ARGS` fails: nothing on stdout, the error document on
    /// stderr, and its `exit_code` is the process's.
    fn err(&mut self, ws: &Workspace, command: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = ws.run_env(&all, env);
        let code = out.code();
        assert_ne!(code, 0, "{out}");
        assert!(
            out.stdout.trim().is_empty(),
            "a failure prints no document: {out}"
        );
        let last = out.stderr.lines().last().unwrap_or_default();
        let doc: Value = serde_json::from_str(last).unwrap_or_else(|e| {
            panic!("stderr of {all:?} does not end in a JSON error ({e}):\n{out}")
        });
        self.validate(
            "error",
            &doc,
            &format!("the error of ripcord {}", all.join(" ")),
        );
        assert_eq!(doc["exit_code"], code, "{out}");
        self.failed.insert(command.to_string());
        doc
    }
}

/// Closes every object schema to properties it does not name, so that a
/// field a document has and its schema lacks fails too. Branches of
/// `oneOf`/`anyOf`/`allOf` stay open: their parent sees what they name.
fn closed(schema: &mut Value, branch: bool) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !branch {
                map.insert("unevaluatedProperties".into(), Value::Bool(false));
            }
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "oneOf" | "anyOf" | "allOf" => {
                        for b in value.as_array_mut().into_iter().flatten() {
                            closed(b, true);
                        }
                    }
                    "properties" | "$defs" => {
                        for v in value
                            .as_object_mut()
                            .into_iter()
                            .flat_map(|m| m.values_mut())
                        {
                            closed(v, false);
                        }
                    }
                    _ => closed(value, false),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| closed(v, false)),
        _ => {}
    }
}

/// The commands of the command line, by their words (`migrate up`).
fn leaf_commands(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("{prefix}{}", sub.get_name());
        if sub.has_subcommands() {
            leaf_commands(sub, &format!("{name} "), out);
        } else {
            out.push(name);
        }
    }
}

/// The commands of the command line that take `--dry-run`.
fn dry_run_commands(cmd: &clap::Command, prefix: &str, out: &mut BTreeSet<String>) {
    for sub in cmd.get_subcommands() {
        let name = format!("{prefix}{}", sub.get_name());
        if sub.has_subcommands() {
            dry_run_commands(sub, &format!("{name} "), out);
        } else if sub.get_arguments().any(|a| a.get_long() == Some("dry-run")) {
            out.insert(name);
        }
    }
}

const USERS: &str =
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);\n";
const SEED: &str = "INSERT INTO users (name, email) VALUES ('ann', 'a@x'), ('bob', 'b@x');\n";

fn migrations(ws: &Workspace) {
    write(ws, "migrations/0001_users/up.sql", USERS);
    write(ws, "migrations/0001_users/down.sql", "DROP TABLE users;\n");
    write(
        ws,
        "migrations/0001_users/verify.sql",
        "SELECT id, name, email FROM users WHERE 0;\n",
    );
    write(ws, "migrations/0002_seed/up.sql", SEED);
    write(ws, "migrations/0002_seed/down.sql", "DELETE FROM users;\n");
}

fn touch(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn every_command_prints_json_that_matches_its_schema() {
    let mut c = Checker::new();
    let none: &[(&str, &str)] = &[];
    let wrong = &[("RIPCORD_PASSWORD", "not the passphrase at all")];

    // A dir target `files` and a SQLite target `app` with migrations.
    let (mut ws, db) = sqlite_app(bin(), "");
    let files = ws.dir_target("files", "files", &[]);
    touch(&files.join("a.txt"), "one\n");
    touch(&files.join("sub/b.txt"), "two\n");
    migrations(&ws);

    c.err(&ws, "snapshots", &["snapshots"], none); // no repository yet
    let planned = c.ok(&ws, "init", &["init", "--dry-run"], none);
    assert!(planned["repository_id"].is_null(), "{planned}");
    let init = c.ok(&ws, "init", &["init"], none);
    assert_eq!(init["encrypted"], true);
    c.err(&ws, "init", &["init"], none); // it exists now

    // Migrations.
    let plan = c.ok(&ws, "migrate plan", &["migrate", "plan", "--explain"], none);
    assert_eq!(plan["change_count"], 2);
    c.ok(&ws, "migrate lint", &["migrate", "lint"], none);
    let dry = c.ok(&ws, "migrate up", &["migrate", "up", "--dry-run"], none);
    assert_eq!(dry["change_count"], 2, "{dry}");
    let up = c.ok(
        &ws,
        "migrate up",
        &["migrate", "up", "--to", "0001_users"],
        none,
    );
    assert_eq!(up["target"], "app");
    assert_eq!(up["to"], "0001_users");
    assert_eq!(up["changes"][0]["change"], "0001_users");
    c.ok(&ws, "migrate up", &["migrate", "up"], none);
    let status = c.ok(&ws, "migrate status", &["migrate", "status"], none);
    assert_eq!(status["counts"]["applied"], 2, "{status}");
    c.ok(&ws, "migrate verify", &["migrate", "verify"], none);
    for (command, args) in [
        ("migrate plan", &["migrate", "plan"][..]),
        ("migrate status", &["migrate", "status"]),
        ("migrate lint", &["migrate", "lint"]),
        ("migrate up", &["migrate", "up"]),
        ("migrate down", &["migrate", "down", "--to", "@root"]),
        ("migrate rehearse", &["migrate", "rehearse"]),
        ("migrate verify", &["migrate", "verify"]),
        ("migrate adopt", &["migrate", "adopt"]),
        ("rollback", &["rollback", "--to", "@root"]),
    ] {
        let mut args = args.to_vec();
        args.extend(["--format", "no-such-format"]);
        c.err(&ws, command, &args, none);
    }

    // Snapshots of both targets, planned first.
    let plan = c.ok(
        &ws,
        "snapshot",
        &["snapshot", "--dry-run", "--tag", "deploy"],
        none,
    );
    assert_eq!(plan["targets"].as_array().unwrap().len(), 2, "{plan}");
    assert_eq!(plan["tags"][0], "deploy", "{plan}");
    // `dry_run` tells a plan from a snapshot taken.
    let mut flipped = plan.clone();
    flipped["dry_run"] = Value::Bool(false);
    assert!(!c.validators["snapshot"].is_valid(&flipped), "{flipped}");
    let first = c.ok(&ws, "snapshot", &["snapshot"], none);
    let first = first["snapshot"].as_str().unwrap().to_string();
    touch(&files.join("c.txt"), "three\n");
    exec(&db, "INSERT INTO users (name) VALUES ('cy');");
    let second = c.ok(&ws, "snapshot", &["snapshot", "--tag", "deploy"], none);
    let second = second["snapshot"].as_str().unwrap().to_string();
    c.err(&ws, "snapshot", &["snapshot", "no-such-target"], none);

    let listed = c.ok(&ws, "snapshots", &["snapshots"], none);
    assert!(listed.as_array().unwrap().len() >= 2, "{listed}");
    c.err(&ws, "snapshots", &["snapshots"], wrong);
    c.ok(&ws, "show", &["show", &second], none);

    // What a snapshot holds: files with sizes and times, tables with rows.
    let ls = c.ok(&ws, "ls", &["ls", &second], none);
    let entry = |doc: &Value, target: &str, path: &str| -> Value {
        doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["target"] == target && e["path"] == path)
            .unwrap_or_else(|| panic!("no {target}/{path} in {doc}"))
            .clone()
    };
    let a = entry(&ls, "files", "a.txt");
    assert_eq!(
        (&a["kind"], &a["bytes"]),
        (&"file".into(), &4.into()),
        "{a}"
    );
    assert!(a["modified_at"].as_str().unwrap().ends_with('Z'), "{a}");
    assert_eq!(entry(&ls, "files", "sub/")["kind"], "dir");
    assert_eq!(entry(&ls, "app", "users")["rows"], 3);
    let sub = c.ok(&ws, "ls", &["ls", &second, "files/sub"], none);
    let paths: Vec<&str> = sub["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["sub/", "sub/b.txt"], "{sub}");
    c.ok(&ws, "ls", &["ls", &second, "app/users"], none);
    c.err(&ws, "ls", &["ls", &second, "files/nope.txt"], none);
    c.err(&ws, "show", &["show", "ffffffff"], none);
    let diff = c.ok(&ws, "diff", &["diff", &first, &second], none);
    assert_eq!(diff["from_snapshot"], first.as_str());
    c.err(&ws, "diff", &["diff", &first, "ffffffff"], none);
    c.ok(&ws, "verify", &["verify", "--deep"], none);
    c.err(&ws, "verify", &["verify", "--subset", "10%"], none);
    // Copies to a repository with a passphrase of its own.
    let mut dest = Workspace::new(bin());
    dest.set_password("the destination's own passphrase");
    dest.init();
    let dest_url = dest.repo().display().to_string();
    let to_pw = &[("RIPCORD_TO_PASSWORD", "the destination's own passphrase")];
    let planned = c.ok(
        &ws,
        "copy",
        &["copy", "--to", &dest_url, "--dry-run"],
        to_pw,
    );
    assert_eq!(planned["copied_count"], 2, "{planned}");
    let copied = c.ok(&ws, "copy", &["copy", "--to", &dest_url], to_pw);
    assert_eq!(copied["verify"]["snapshot_count"], 2, "{copied}");
    let wrong_to = &[("RIPCORD_TO_PASSWORD", "not the destination's")];
    c.err(&ws, "copy", &["copy", "--to", &dest_url], wrong_to);
    let into = ws.path("restored");
    c.ok(
        &ws,
        "restore",
        &["restore", &first, "--into", into.to_str().unwrap()],
        none,
    );
    c.ok(&ws, "restore", &["restore", &first, "--dry-run"], none);
    // Tables of the SQLite target, into a copy and in place.
    let users = serde_json::json!([{"table": "users", "rows": 2, "bytes": null}]);
    let copy = ws.path("copy");
    for args in [&["--dry-run"][..], &["--into", copy.to_str().unwrap()], &[]] {
        let mut all = vec!["restore", &first, "--target", "app", "--tables", "users"];
        all.extend_from_slice(args);
        let r = c.ok(&ws, "restore", &all, none);
        assert_eq!(r["targets"][0]["tables"], users, "{r}");
    }
    // Some files of the dir target, in place.
    touch(&files.join("a.txt"), "changed\n");
    let r = c.ok(
        &ws,
        "restore",
        &["restore", &first, "--target", "files", "--include", "a.txt"],
        none,
    );
    let included = &r["targets"][0]["included"];
    assert_eq!(included["replaced_count"], 1, "{r}");
    assert_eq!(included["added_count"], 0, "{r}");
    c.err(&ws, "restore", &["restore", "ffffffff"], none);
    c.ok(&ws, "ls", &["ls", &first], none);
    c.err(&ws, "ls", &["ls", &first, "nosuch"], none);

    // Back down, and rehearsed from the start.
    for (command, args) in [
        (
            "migrate down",
            &["migrate", "down", "--to", "0001_users"][..],
        ),
        ("rollback", &["rollback", "--to", "@root"]),
    ] {
        let mut args = args.to_vec();
        args.push("--dry-run");
        c.ok(&ws, command, &args, none);
    }
    let down = c.ok(
        &ws,
        "migrate down",
        &["migrate", "down", "--to", "0001_users"],
        none,
    );
    assert_eq!(down["target"], "app");
    assert_eq!(down["to"], "0001_users");
    assert_eq!(down["change_count"], 1);
    c.ok(&ws, "rollback", &["rollback", "--to", "@root"], none);
    let rehearsed = c.ok(&ws, "migrate rehearse", &["migrate", "rehearse"], none);
    assert_eq!(rehearsed["change_count"], 2, "{rehearsed}");

    // Retention.
    let forget = c.ok(
        &ws,
        "forget",
        &["forget", "--keep-last", "1", "--dry-run"],
        none,
    );
    assert_eq!(forget["dry_run"], true);
    // The schemas are closed: a field they do not name, or a renamed one,
    // fails, also in nested objects.
    let mut extra = forget.clone();
    extra["decisions"][0]["id"] = Value::String(first.clone());
    assert!(!c.validators["forget"].is_valid(&extra), "{extra}");
    c.ok(&ws, "forget", &["forget", &first, "--prune"], none);
    c.err(&ws, "forget", &["forget"], none);
    c.ok(&ws, "prune", &["prune", "--dry-run"], none);
    c.ok(&ws, "prune", &["prune"], none);
    c.err(&ws, "prune", &["prune"], wrong);

    // Keys.
    let new = &[(
        "RIPCORD_NEW_PASSWORD",
        "another long passphrase for the test",
    )];
    let planned = c.ok(&ws, "key add", &["key", "add", "--dry-run"], new);
    assert!(planned["key"].is_null(), "{planned}");
    let added = c.ok(&ws, "key add", &["key", "add"], new);
    let added = added["key"].as_str().unwrap().to_string();
    let keys = c.ok(&ws, "key list", &["key", "list"], none);
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    c.err(&ws, "key list", &["key", "list"], wrong);
    c.err(&ws, "key add", &["key", "add"], none); // no new passphrase
    let planned = c.ok(
        &ws,
        "key remove",
        &["key", "remove", &added[..12], "--dry-run"],
        none,
    );
    assert_eq!(planned["key"], added.as_str());
    c.ok(&ws, "key remove", &["key", "remove", &added[..12]], none);
    c.err(&ws, "key remove", &["key", "remove", "ffffffffffff"], none);
    c.err(&ws, "key passwd", &["key", "passwd"], none);
    let planned = c.ok(&ws, "key passwd", &["key", "passwd", "--dry-run"], new);
    assert!(planned["replaced_key"].is_string(), "{planned}");
    c.ok(&ws, "key passwd", &["key", "passwd"], new);
    ws.set_password("another long passphrase for the test");

    // API tokens.
    let added = c.ok(
        &ws,
        "token add",
        &["token", "add", "--name", "ci", "--role", "operator"],
        none,
    );
    assert!(
        added["token"].as_str().unwrap().starts_with("rc_"),
        "{added}"
    );
    c.err(
        &ws,
        "token add",
        &["token", "add", "--name", "ci", "--role", "admin"],
        none,
    );
    let tokens = c.ok(&ws, "token list", &["token", "list"], none);
    assert_eq!(tokens[0]["role"], "operator", "{tokens}");
    c.err(
        &ws,
        "token list",
        &["token", "list", "--config", "no-such.toml"],
        none,
    );
    let revoked = c.ok(&ws, "token revoke", &["token", "revoke", "ci"], none);
    assert!(revoked["revoked"].is_string(), "{revoked}");
    c.err(&ws, "token revoke", &["token", "revoke", "ci"], none);

    // Maintenance.
    c.ok(&ws, "unlock", &["unlock", "--dry-run"], none);
    c.ok(&ws, "unlock", &["unlock"], none);
    c.err(&ws, "unlock", &["unlock"], wrong);
    c.ok(&ws, "repair index", &["repair", "index", "--dry-run"], none);
    c.ok(&ws, "repair index", &["repair", "index"], none);
    c.err(&ws, "repair index", &["repair", "index"], wrong);
    // Recovery runs: a level that works, a dry run, the list, and ack.
    ws.append_config(
        "[runbooks.emergency]\nsteps = [{ kind = \"command\", run = \"true\" }, \
         { kind = \"restore\", target = \"files\", snapshot = \"latest\" }]\n",
    );
    let recover = ["recover", "--level", "emergency", "--reason", "schema test"];
    let planned = c.ok(
        &ws,
        "recover",
        &[&recover[..], &["--dry-run"]].concat(),
        none,
    );
    assert_eq!(
        planned["steps"].as_array().map(Vec::len),
        Some(2),
        "{planned}"
    );
    let run = c.ok(&ws, "recover", &recover, none);
    assert_eq!(run["result"], "succeeded", "{run}");
    c.err(
        &ws,
        "recover",
        &["recover", "--level", "nope", "--reason", "x"],
        none,
    );
    // A run killed in its second step, then resumed.
    let killed = ws.run_env(&recover, &[("RIPCORD_FAILPOINT", "recover-step-started:2")]);
    assert_eq!(killed.signal, Some(9), "{killed}");
    let resumed = c.ok(&ws, "resume", &["resume"], none);
    assert_eq!(resumed["result"], "succeeded", "{resumed}");
    c.err(&ws, "resume", &["resume"], none); // nothing left to resume
    let report = c.ok(&ws, "report", &["report", "latest"], none);
    assert_eq!(report["run"]["result"], "succeeded", "{report}");
    c.err(&ws, "report", &["report", "no-such-run"], none);
    let runs = c.ok(&ws, "runs", &["runs"], none);
    assert_eq!(runs[1]["run"], run["run"], "{runs}");
    c.err(&ws, "runs", &["runs", "--config", "no-such.toml"], none);
    let status = c.ok(&ws, "status", &["status"], none);
    assert!(status["run"].is_null(), "{status}");
    c.err(&ws, "status", &["status", "--config", "no-such.toml"], none);
    let ack = c.ok(&ws, "ack", &["ack", "--reason", "checked"], none);
    assert_eq!(ack["left_safe_mode"], false, "{ack}");
    c.err(&ws, "ack", &["ack", "--reason", " "], none);
    // The guard, on a service that answers, and an up that bakes.
    c.err(&ws, "guard check", &["guard", "check"], none); // no [guard] here
    c.err(&ws, "guard status", &["guard", "status"], none);
    c.err(&ws, "guard watch", &["guard", "watch", "--for", "1s"], none);
    let svc = ripcord_testing::service::Service::start(200);
    let (mut gws, _gdb) = sqlite_app(bin(), "");
    gws.append_config(&format!(
        "[guard.probes.api]\nhttp = \"{}\"\ninterval = \"200ms\"\n\n\
         [[guard.rules]]\nname = \"api-down\"\nwhen = \"availability(api, 1m) < 95%\"\n",
        svc.url
    ));
    gws.init();
    let checked = c.ok(&gws, "guard check", &["guard", "check"], none);
    assert_eq!(checked["result"], "ok", "{checked}");
    let status = c.ok(&gws, "guard status", &["guard", "status"], none);
    assert_eq!(status["probes"][0]["samples"], 1, "{status}");
    let watched = c.ok(
        &gws,
        "guard watch",
        &["guard", "watch", "--for", "1s"],
        none,
    );
    assert!(watched["samples"].as_u64().unwrap() >= 2, "{watched}");
    write(
        &gws,
        "migrations/1_t.up.sql",
        "CREATE TABLE t (id INTEGER PRIMARY KEY);\n",
    );
    let baked = c.ok(&gws, "migrate up", &["migrate", "up", "--bake", "1s"], none);
    assert!(baked["bake"]["reverted_run"].is_null(), "{baked}");
    c.err(
        &gws,
        "migrate up",
        &["migrate", "up", "--bake", "soon"],
        none,
    );
    let trail = c.ok(&ws, "audit", &["audit"], none);
    let commands: Vec<&str> = trail
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["command"].as_str())
        .collect();
    assert!(commands.contains(&"recover"), "{trail}");
    let since = c.ok(&ws, "audit", &["audit", "--since", "1h"], none);
    assert_eq!(since, trail, "{since}");
    let verdict = c.ok(&ws, "audit", &["audit", "--verify"], none);
    assert!(verdict["first_bad"].is_null(), "{verdict}");
    let drilled = c.ok(&ws, "drill", &["drill"], none);
    assert_eq!(drilled["result"], "passed", "{drilled}");
    c.err(&ws, "drill", &["drill", "no-such-target"], none);
    let checked = c.ok(&ws, "check", &["check"], none);
    assert_eq!(checked["ok"], true, "{checked}");
    c.err(&ws, "check", &["check", "--config", "no-such.toml"], none);
    c.err(&ws, "audit", &["audit", "--since", "yesterday-ish"], none);
    c.err(&ws, "demo", &["demo"], none);
    c.err(&ws, "serve", &["serve"], none);
    // Arguments clap refuses are errors in JSON too.
    let bad = c.err(&ws, "snapshot", &["snapshot", "--no-such-flag"], none);
    assert_eq!(bad["exit_code"], 2);

    // A schedule pass on a workspace of its own: a tier takes a snapshot.
    let mut sws = Workspace::new(bin());
    let sfiles = sws.dir_target("files", "files", &[]);
    touch(&sfiles.join("a.txt"), "one\n");
    sws.append_config("[tiers.hot]\nevery = \"1h\"\nkeep = { last = 3 }\n");
    sws.init();
    let passed = c.ok(&sws, "schedule run", &["schedule", "run"], none);
    assert_eq!(passed["actions"][0]["action"], "snapshot", "{passed}");
    let idle = c.ok(&sws, "schedule run", &["schedule", "run"], none);
    assert_eq!(idle["actions"], Value::Array(vec![]), "{idle}");
    c.err(&sws, "schedule run", &["schedule", "run"], wrong);
    let units = c.ok(
        &sws,
        "schedule install",
        &["schedule", "install", "--systemd", "--cron"],
        none,
    );
    assert_eq!(units["files"].as_array().unwrap().len(), 2, "{units}");
    c.err(
        &sws,
        "schedule install",
        &[
            "schedule",
            "install",
            "--systemd",
            "--config",
            "no-such.toml",
        ],
        none,
    );

    // `migrate adopt` takes over a database golang-migrate ran.
    let (ws2, db2) = sqlite_app(bin(), "");
    write(&ws2, "migrations/1_users.up.sql", USERS);
    write(&ws2, "migrations/1_users.down.sql", "DROP TABLE users;\n");
    exec(
        &db2,
        &format!(
            "{USERS}CREATE TABLE schema_migrations (version uint64, dirty bool);
             INSERT INTO schema_migrations (version, dirty) VALUES (1, 0);"
        ),
    );
    ws2.init();
    c.ok(
        &ws2,
        "migrate adopt",
        &["migrate", "adopt", "--dry-run"],
        none,
    );
    let adopted = c.ok(&ws2, "migrate adopt", &["migrate", "adopt"], none);
    assert_eq!(adopted["adopted"][0]["change"], "1_users", "{adopted}");

    // Every command of the command line was run, and failed once.
    let mut all = Vec::new();
    leaf_commands(&ripcord_cli::cli::Cli::command(), "", &mut all);
    // A story for people, and a server that answers JSON over HTTP: --json is refused.
    let no_json = ["demo", "serve"];
    let not_run: Vec<&String> = all
        .iter()
        .filter(|cmd| !no_json.contains(&cmd.as_str()) && !c.succeeded.contains(*cmd))
        .collect();
    assert!(not_run.is_empty(), "never run with --json: {not_run:?}");
    let never_failed: Vec<&String> = all.iter().filter(|cmd| !c.failed.contains(*cmd)).collect();
    assert!(
        never_failed.is_empty(),
        "never failed with --json: {never_failed:?}"
    );
    // Every dry run was run, and said so.
    assert!(c.can_dry_run.contains("key passwd"), "{:?}", c.can_dry_run);
    let not_dry: Vec<&String> = c.can_dry_run.difference(&c.dry_runs).collect();
    assert!(not_dry.is_empty(), "never run with --dry-run: {not_dry:?}");
    // And no schema is left without its command.
    for (command, _) in ripcord_guard::json::schemas() {
        assert!(
            command == "error" || all.iter().any(|c| c == command),
            "schema of an unknown command {command}"
        );
    }
}

/// docs/json-schema/ holds the schemas as the types give them;
/// `RIPCORD_BLESS=1` rewrites the files.
#[test]
fn schema_files_in_docs_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json-schema");
    let bless = std::env::var_os("RIPCORD_BLESS").is_some();
    let mut stale = Vec::new();
    for (command, schema) in ripcord_guard::json::schemas() {
        let path = dir.join(format!("{}.json", command.replace(' ', "-")));
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (RIPCORD_BLESS=1 cargo test -p ripcord-cli --test json_schema rewrites them): {stale:?}"
    );
}
