//! `ripcord copy --to URL [SNAPSHOT…]`.

use anyhow::Result;
use ripcord_ops::copy::CopyOptions;

use crate::cli::CopyArgs;
use crate::ctx::Ctx;
use crate::output;

pub fn run(ctx: &Ctx, args: &CopyArgs) -> Result<()> {
    let opts = CopyOptions {
        to: args.to.clone(),
        to_password_command: args.to_password_command.clone(),
        snapshots: args.snapshots.clone(),
        dry_run: args.dry_run,
    };
    let report = ripcord_ops::copy::copy(ctx, &opts)?;
    if ctx.json {
        output::print_json(&report);
        return Ok(());
    }
    if report.dry_run {
        return Ok(());
    }
    let s = &report.stats;
    ctx.say(format!(
        "{} copied, {} there already: {} sent ({}, {} stored), {} present, in {:.2}s",
        output::counted(report.copied_count as u64, "snapshot"),
        report.present_count,
        output::counted(s.blobs_sent, "blob"),
        ripcord_ops::report::bytes(s.sent_bytes),
        ripcord_ops::report::bytes(s.stored_bytes),
        s.blobs_present,
        report.seconds
    ));
    if let Some(v) = &report.verify {
        ctx.say(format!(
            "read back {} in the destination: no problems",
            output::counted(v.blobs_checked as u64, "blob")
        ));
    }
    Ok(())
}
