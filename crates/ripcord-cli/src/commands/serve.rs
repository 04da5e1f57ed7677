//! `ripcord serve`.

use std::io::Write;

use anyhow::Result;
use ripcord_server::ServeOptions;

use crate::cli::ServeArgs;
use crate::ctx::Ctx;

pub fn run(ctx: &Ctx, args: &ServeArgs) -> Result<()> {
    if ctx.json {
        return Err(crate::usage(
            "serve answers in JSON over HTTP and has no --json output of its own",
            "run `ripcord serve` without --json",
        ));
    }
    let opts = ServeOptions {
        listen: args.listen,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        guard: args.guard,
        auto_rollback: args.auto_rollback,
        schedule: args.schedule,
    };
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let server_ctx = ctx.keeping_repository_open();
    ripcord_server::serve(&server_ctx, &opts, |addr| {
        // Scripts and tests wait for this line to know the port.
        println!("listening on {scheme}://{addr}");
        let _ = std::io::stdout().flush();
    })?;
    ctx.say("stopped");
    Ok(())
}
