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
    if opts.tls.is_none() && !opts.listen.ip().is_loopback() {
        ctx.warn(format!(
            "{} is reachable from other hosts over plain HTTP: tokens and cookies travel in the \
             clear; give --tls-cert and --tls-key, or put a proxy that speaks TLS in front",
            opts.listen
        ));
    }
    let server_ctx = ctx.keeping_repository_open();
    ripcord_server::serve(&server_ctx, &opts, |addr| {
        // Scripts and tests wait for this line to know the port.
        println!("listening on {scheme}://{addr}");
        let _ = std::io::stdout().flush();
    })?;
    ctx.say("stopped");
    Ok(())
}
