//! Every command and every flag explains itself in `--help`.

use clap::CommandFactory;
use ripcord_cli::cli::Cli;

/// Walks the command tree: each subcommand needs an `about`, each argument
/// (positional or flag) a `help`. Returns `path: what` for each one without.
fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        // clap's own --help and --version explain themselves.
        if matches!(arg.get_id().as_str(), "help" | "version") {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            out.push(format!("{path}: argument {}", arg.get_id()));
        }
    }
    for sub in cmd.get_subcommands() {
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_name() != "help" && sub.get_about().is_none() && sub.get_long_about().is_none() {
            out.push(format!("{sub_path}: command"));
        }
        missing_help(sub, &sub_path, out);
    }
}

/// `show`, `diff`, `key remove` and `forget --keep-*` had no help text.
#[test]
fn every_command_and_flag_has_help_text() {
    let mut cmd = Cli::command();
    cmd.build();
    let mut missing = Vec::new();
    missing_help(&cmd, "ripcord", &mut missing);
    assert!(
        missing.is_empty(),
        "without help text:\n{}",
        missing.join("\n")
    );
}
