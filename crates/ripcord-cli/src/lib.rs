//! The `ripcord` binary: argument parsing, output, and the commands. All
//! behaviour lives in the library crates; this crate wires them to a terminal.

pub mod cli;
mod commands;
mod demo;
mod output;
mod term;

/// What every command gets; commands name it `crate::ctx::Ctx`.
use term as ctx;

use clap::Parser;
use ripcord_core::{Class, Classify};

pub use term::Ctx;

/// Errors of the command line itself (arguments that make no sense
/// together) are the library's own usage, refusal and failure errors.
pub use ripcord_ops::Error as CliError;

pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    CliError::usage(message, hint).into()
}

/// Class and hint of the first error in the chain that knows them.
pub(crate) fn classify(err: &anyhow::Error) -> (Class, Option<String>) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<ripcord_repo::Error>() {
            return (e.class(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<ripcord_targets::Error>() {
            return (e.class(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<ripcord_core::config::ConfigError>() {
            return (e.class(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<ripcord_core::password::PasswordError>() {
            return (e.class(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<ripcord_migrate::Error>() {
            return (e.class(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<ripcord_ops::Error>() {
            return (e.class(), e.hint());
        }
    }
    (Class::Failed, None)
}

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    ripcord_ops::ctx::take_secret_env();
    // Without it Ctrl-C simply ends the process; with it, scratch copies
    // and temporary repositories are removed first. `serve` stops on its
    // own terms: it lets the runs in progress finish.
    if std::env::args().nth(1).as_deref() != Some("serve") {
        if let Err(e) = ripcord_core::interrupt::install() {
            eprintln!("warning: cannot handle Ctrl-C and SIGTERM: {e}");
        }
    }
    output::init_colors();
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => Class::Usage.exit_code(),
            };
            // A script that asked for JSON gets its error as JSON, also
            // when the arguments themselves are wrong.
            if code != 0 && std::env::args_os().any(|a| a == "--json") {
                print_error_json(ripcord_ops::json::ErrorOutput {
                    error: e.kind().to_string(),
                    causes: vec![e.render().to_string().trim_end().to_string()],
                    hint: Some("run with --help to see the arguments".into()),
                    exit_code: code,
                });
            } else {
                let _ = e.print();
            }
            return code;
        }
    };
    let json = cli.json;
    let result = commands::dispatch(cli);
    // A signal's cleanup may have made the command fail: let it finish and
    // end the process as the signal does.
    ripcord_core::interrupt::settle();
    match result {
        Ok(()) => 0,
        Err(err) => {
            let (class, hint) = classify(&err);
            // Whatever an error quotes, a database password never shows.
            let redact = ripcord_targets::postgres::redact;
            let message = redact(&err.to_string());
            // A cause the message already quotes in full is not repeated.
            let causes: Vec<String> = err
                .chain()
                .skip(1)
                .map(|c| redact(&c.to_string()))
                .filter(|c| !message.contains(c.as_str()))
                .collect();
            let hint = hint.map(|h| redact(&h));
            if json {
                print_error_json(ripcord_ops::json::ErrorOutput {
                    error: message,
                    causes,
                    hint,
                    exit_code: class.exit_code(),
                });
            } else {
                eprintln!("{} {message}", output::red("error:"));
                for cause in causes {
                    eprintln!("  caused by: {cause}");
                }
                if let Some(h) = hint {
                    eprintln!("{} {h}", output::bold("hint:"));
                }
            }
            class.exit_code()
        }
    }
}

/// An error under `--json`: one line on standard error.
fn print_error_json(e: ripcord_ops::json::ErrorOutput) {
    eprintln!("{}", serde_json::to_string(&e).expect("serializable"));
}
