//! `ripcord token add|list|revoke`.

use anyhow::Result;
use ripcord_ops::tokens::TokenRecord;

use crate::cli::TokenCommand;
use crate::ctx::Ctx;
use crate::output;

pub fn run(ctx: &Ctx, cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Add { name, role } => add(ctx, &name, role),
        TokenCommand::List => list(ctx),
        TokenCommand::Revoke { name } => revoke(ctx, &name),
    }
}

/// The one place a token is ever printed. With `--quiet`, the token alone,
/// for a script to capture.
fn add(ctx: &Ctx, name: &str, role: ripcord_ops::tokens::Role) -> Result<()> {
    let report = ripcord_ops::tokens::add(ctx, name, role)?;
    if ctx.json {
        output::print_json(&report);
        return Ok(());
    }
    ctx.say(format!(
        "added token {:?} with role {}:",
        report.name, report.role
    ));
    println!("{}", report.token);
    ctx.say(
        "keep it somewhere safe now: it is not shown again, as the catalog keeps only its hash",
    );
    Ok(())
}

fn list(ctx: &Ctx) -> Result<()> {
    let tokens = ripcord_ops::tokens::list(ctx)?;
    if ctx.json {
        output::print_json(&tokens);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.role.to_string(),
                output::rfc3339(&t.created),
                t.created_by.clone(),
                state(t),
            ]
        })
        .collect();
    output::table(&["NAME", "ROLE", "CREATED", "CREATED BY", "STATE"], &rows);
    let active = tokens.iter().filter(|t| t.is_active()).count() as u64;
    ctx.say(format!(
        "{}, {} active",
        output::counted(tokens.len() as u64, "token"),
        active
    ));
    Ok(())
}

fn state(t: &TokenRecord) -> String {
    match &t.revoked {
        None => "active".to_string(),
        Some(at) => format!("revoked {}", output::rfc3339(at)),
    }
}

fn revoke(ctx: &Ctx, name: &str) -> Result<()> {
    let record = ripcord_ops::tokens::revoke(ctx, name)?;
    if ctx.json {
        output::print_json(&record);
        return Ok(());
    }
    ctx.say(format!(
        "revoked token {:?} ({}, made {} by {}): it is refused from now on",
        record.name,
        record.role,
        output::rfc3339(&record.created),
        record.created_by
    ));
    Ok(())
}
