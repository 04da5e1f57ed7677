//! One module per command.

mod backup;
mod diff;
mod forget;
mod init;
mod key;
mod list;
mod maintenance;
pub mod migrate;
mod recover;
mod verify;

use anyhow::Result;

use crate::cli::{Cli, Command};
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
    if let Command::Init(args) = &cli.command {
        return init::run(cli.config.clone(), cli.json, cli.quiet, args);
    }
    let ctx = Ctx::load(cli.config, cli.json, cli.quiet)?;
    match cli.command {
        Command::Snapshot(args) => backup::snapshot(&ctx, &args),
        Command::Snapshots(args) => list::snapshots(&ctx, &args),
        Command::Show { snapshot } => list::show(&ctx, &snapshot),
        Command::Diff(args) => diff::run(&ctx, &args),
        Command::Restore(args) => backup::restore(&ctx, &args),
        Command::Ls(args) => list::ls(&ctx, &args),
        Command::Verify(args) => verify::run(&ctx, &args),
        Command::Forget(args) => forget::forget(&ctx, &args),
        Command::Prune(args) => forget::prune(&ctx, args.dry_run),
        Command::Key(cmd) => key::run(&ctx, cmd),
        Command::Unlock { all, dry_run } => maintenance::unlock(&ctx, all, dry_run),
        Command::Repair(cmd) => maintenance::repair(&ctx, cmd),
        Command::Migrate(cmd) => migrate::run(&ctx, cmd),
        Command::Rollback(args) => migrate::rollback(&ctx, args),
        Command::Recover(args) => recover::recover(&ctx, &args),
        Command::Resume(args) => recover::resume(&ctx, &args),
        Command::Runs => recover::runs(&ctx),
        Command::Status { watch } => recover::status(&ctx, watch),
        Command::Report { run, format, out } => {
            recover::report(&ctx, &run, &format, out.as_deref())
        }
        Command::Ack { reason } => recover::ack(&ctx, &reason),
        Command::Audit { since, verify } => recover::audit(&ctx, since.as_deref(), verify),
        Command::Init(_) | Command::Demo { .. } => unreachable!("handled above"),
    }
}
