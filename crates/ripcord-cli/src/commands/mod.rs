//! One module per command.

mod backup;
mod copy;
mod diff;
mod forget;
mod guard;
mod init;
mod key;
mod list;
mod maintenance;
pub mod migrate;
mod recover;
mod schedule;
mod serve;
mod token;
mod verify;

use anyhow::Result;

use crate::cli::{Cli, Command, KeyCommand, MigrateCommand, RepairCommand, TokenCommand};
use crate::ctx::Ctx;

pub fn dispatch(cli: Cli) -> Result<()> {
    if let Command::Demo { keep } = cli.command {
        if cli.json {
            return Err(crate::usage(
                "demo tells its story to a person and has no JSON output",
                "run `ripcord demo` without --json",
            ));
        }
        return crate::demo::run(keep);
    }
    let audited = audited_as(&cli.command);
    if let Command::Init(args) = &cli.command {
        let result = init::run(cli.config.clone(), cli.json, cli.quiet, args);
        // The catalog belongs next to the configuration init may just have written.
        if let (Some(command), Ok(ctx)) = (audited, Ctx::load(cli.config, cli.json, cli.quiet)) {
            audit(&ctx, command, &result);
        }
        return result;
    }
    let ctx = Ctx::load(cli.config, cli.json, cli.quiet)?;
    let result = run(&ctx, cli.command);
    if let Some(command) = audited {
        audit(&ctx, command, &result);
    }
    result
}

/// The name the audit gives a command that changes something; `None` for
/// one that only reads, a dry run, and those that audit themselves (the
/// ways back, which are journaled as runs, the recovery commands, and
/// `schedule run`, which a timer starts every minute and audits only the
/// passes that did or tried something).
fn audited_as(command: &Command) -> Option<&'static str> {
    let name = match command {
        Command::Init(a) if !a.dry_run && !a.print_config => "init",
        Command::Snapshot(a) if !a.dry_run => "snapshot",
        Command::Forget(a) if !a.dry_run => "forget",
        Command::Prune(a) if !a.dry_run => "prune",
        Command::Copy(a) if !a.dry_run => "copy",
        Command::Key(KeyCommand::Add { dry_run: false }) => "key add",
        Command::Key(KeyCommand::Remove { dry_run: false, .. }) => "key remove",
        Command::Key(KeyCommand::Passwd { dry_run: false }) => "key passwd",
        // The arguments are the name and role: a token is never an argument.
        Command::Token(TokenCommand::Add { .. }) => "token add",
        Command::Token(TokenCommand::Revoke { .. }) => "token revoke",
        Command::Unlock { dry_run: false, .. } => "unlock",
        Command::Repair(RepairCommand::Index { dry_run: false }) => "repair index",
        Command::Migrate(m) => match &m.command {
            MigrateCommand::Up(a) if !a.dry_run => "migrate up",
            MigrateCommand::Adopt(a) if !a.dry_run => "migrate adopt",
            _ => return None,
        },
        _ => return None,
    };
    Some(name)
}

/// Appends the audit entry of `command`: its arguments as typed (secrets
/// are redacted by the library) and its outcome. Bad input changed nothing
/// and gets none.
pub(crate) fn audit(ctx: &Ctx, command: &str, result: &Result<()>) {
    let error = result
        .as_ref()
        .err()
        .map(|e| (crate::classify(e).0, e.to_string()));
    let Some(outcome) = ripcord_ops::audit::outcome(error.as_ref().map(|(c, m)| (*c, m.as_str())))
    else {
        return;
    };
    let args = argv(command);
    ripcord_ops::audit::record(
        ctx,
        &ripcord_ops::audit::Record {
            command,
            args: &args,
            reason: None,
            result: outcome,
            run: None,
        },
    );
}

/// The arguments as typed, without the words that name `command`: they
/// are the audit entry's command.
pub(crate) fn argv(command: &str) -> Vec<String> {
    let mut words: Vec<&str> = command.split(' ').collect();
    words.reverse();
    std::env::args()
        .skip(1)
        .filter(|a| {
            if words.last() == Some(&a.as_str()) {
                words.pop();
                false
            } else {
                true
            }
        })
        .collect()
}

fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Check => recover::check(ctx),
        Command::Snapshot(args) => backup::snapshot(ctx, &args),
        Command::Snapshots(args) => list::snapshots(ctx, &args),
        Command::Show { snapshot } => list::show(ctx, &snapshot),
        Command::Diff(args) => diff::run(ctx, &args),
        Command::Restore(args) => backup::restore(ctx, &args),
        Command::Ls(args) => list::ls(ctx, &args),
        Command::Verify(args) => verify::run(ctx, &args),
        Command::Forget(args) => forget::forget(ctx, &args),
        Command::Prune(args) => forget::prune(ctx, args.dry_run),
        Command::Copy(args) => copy::run(ctx, &args),
        Command::Key(cmd) => key::run(ctx, cmd),
        Command::Schedule(cmd) => schedule::run(ctx, cmd),
        Command::Token(cmd) => token::run(ctx, cmd),
        Command::Unlock { all, dry_run } => maintenance::unlock(ctx, all, dry_run),
        Command::Repair(cmd) => maintenance::repair(ctx, cmd),
        Command::Guard(cmd) => guard::run(ctx, cmd),
        Command::Drill { targets, report } => recover::drill(ctx, &targets, report.as_deref()),
        Command::Migrate(cmd) => migrate::run(ctx, cmd),
        Command::Rollback(args) => migrate::rollback(ctx, args),
        Command::Serve(args) => serve::run(ctx, &args),
        Command::Recover(args) => recover::recover(ctx, &args),
        Command::Resume(args) => recover::resume(ctx, &args),
        Command::Runs => recover::runs(ctx),
        Command::Status { watch } => recover::status(ctx, watch),
        Command::Report { run, format, out } => recover::report(ctx, &run, &format, out.as_deref()),
        Command::Ack { reason } => recover::ack(ctx, &reason),
        Command::Audit { since, verify } => recover::audit(ctx, since.as_deref(), verify),
        Command::Init(_) | Command::Demo { .. } => unreachable!("handled above"),
    }
}
