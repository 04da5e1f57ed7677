//! `ripcord verify`.

use anyhow::Result;
use ripcord_repo::verify::{verify, VerifyOptions};

use crate::cli::VerifyArgs;
use crate::ctx::Ctx;
use crate::output::{self, Bar};

pub fn run(ctx: &Ctx, args: &VerifyArgs) -> Result<()> {
    let repo = ctx.open_repo()?;
    let _lock = ctx.lock(&repo, false, "verify")?;
    let snapshot = match &args.snapshot {
        Some(s) => Some(ctx.find_snapshot(&repo, s)?.0),
        None => None,
    };
    if args.subset.is_some() && !args.deep {
        return Err(crate::usage(
            "--subset only applies to --deep",
            "add --deep",
        ));
    }
    let opts = VerifyOptions {
        deep: args.deep,
        subset_percent: args.subset,
        snapshot,
    };
    let bar = Bar::new(None, "verify", ctx.quiet || ctx.json);
    let last = std::sync::atomic::AtomicU64::new(0);
    let report = verify(&repo, &opts, &|done, _total| {
        let prev = last.swap(done, std::sync::atomic::Ordering::Relaxed);
        ripcord_targets::Progress::bytes(&bar, done.saturating_sub(prev));
    })?;
    bar.finish();
    if ctx.json {
        output::print_json(&report);
    } else {
        for w in &report.warnings {
            ctx.warn(w);
        }
        for p in &report.problems {
            println!("{} {}: {}", output::red("damaged:"), p.object, p.detail);
            for a in &p.affects {
                println!("    affects {a}");
            }
        }
        let depth = if args.deep { "deep" } else { "quick" };
        let n = |n: usize| n as u64;
        ctx.say(format!(
            "{depth} verify: {}, {} indexed, {} read, {} re-hashed, {} read: {}",
            output::counted(n(report.snapshots), "snapshot"),
            output::counted(n(report.packs), "pack"),
            output::counted(n(report.packs_read), "pack"),
            output::counted(n(report.blobs_checked), "blob"),
            output::bytes(report.bytes_read),
            if report.ok() {
                "no problems".to_string()
            } else {
                output::counted(n(report.problems.len()), "problem")
            }
        ));
    }
    if report.ok() {
        Ok(())
    } else {
        Err(crate::CliError::Failed {
            message: format!(
                "verify found {} in {}",
                output::counted(report.problems.len() as u64, "problem"),
                repo.location()
            ),
        }
        .into())
    }
}
