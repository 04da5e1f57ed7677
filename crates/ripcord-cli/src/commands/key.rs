//! `ripcord key add|list|remove|passwd`.

use anyhow::Result;
use ripcord_ops::json::{KeyEntry, KeyOutput};
use ripcord_repo::Id;
use zeroize::Zeroizing;

use crate::cli::KeyCommand;
use crate::ctx::Ctx;
use crate::output;

fn new_passphrase() -> Result<Zeroizing<String>> {
    let p = ask_new_passphrase()?;
    ripcord_core::password::check_new(&p)?;
    Ok(p)
}

fn ask_new_passphrase() -> Result<Zeroizing<String>> {
    if let Some(p) = ripcord_ops::ctx::secret_env(1) {
        return Ok(p);
    }
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let a = Zeroizing::new(rpassword::prompt_password("new passphrase: ")?);
        let b = Zeroizing::new(rpassword::prompt_password("repeat new passphrase: ")?);
        if a != b {
            return Err(crate::usage(
                "the passphrases do not match",
                "type the same passphrase twice",
            ));
        }
        return Ok(a);
    }
    Err(crate::usage(
        "no new passphrase given",
        "set RIPCORD_NEW_PASSWORD, or run on a terminal to be asked",
    ))
}

pub fn run(ctx: &Ctx, cmd: KeyCommand) -> Result<()> {
    let repo = ctx.open_repo()?;
    let current = ctx.passphrase("repository passphrase: ")?;
    match cmd {
        KeyCommand::List => {
            let (keys, damaged) = repo.key_files()?;
            for (_, e) in &damaged {
                ctx.warn(format!("{e}; it is listed but never used"));
            }
            if ctx.json {
                let mut v: Vec<KeyEntry> = keys
                    .iter()
                    .map(|(id, k)| KeyEntry {
                        key: *id,
                        current: Some(*id) == repo.key_id(),
                        created: Some(k.created),
                        host: Some(k.host.clone()),
                        user: Some(k.user.clone()),
                        damaged: None,
                    })
                    .collect();
                v.extend(damaged.iter().map(|(id, e)| KeyEntry {
                    key: *id,
                    current: false,
                    created: None,
                    host: None,
                    user: None,
                    damaged: Some(e.to_string()),
                }));
                output::print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|(id, k)| {
                        vec![
                            format!(
                                "{}{}",
                                if Some(*id) == repo.key_id() { "*" } else { " " },
                                id.short()
                            ),
                            output::time(&k.created),
                            k.host.clone(),
                            k.user.clone(),
                        ]
                    })
                    .chain(damaged.iter().map(|(id, _)| {
                        vec![
                            format!(" {}", id.short()),
                            "damaged".into(),
                            String::new(),
                            String::new(),
                        ]
                    }))
                    .collect();
                output::table(&[" ID", "CREATED", "HOST", "USER"], &rows);
            }
        }
        KeyCommand::Add { dry_run } => {
            let new = new_passphrase()?;
            let cur =
                current.ok_or_else(|| crate::usage("no passphrase", "set RIPCORD_PASSWORD"))?;
            if dry_run {
                ctx.say(
                    "dry run: a key with the new passphrase would be added; nothing was changed",
                );
                done(ctx, true, None, "added", None);
                return Ok(());
            }
            let id = repo.add_key(&cur, &new)?;
            ctx.say(format!("added key {}", id.short()));
            done(ctx, false, Some(id), "added", None);
        }
        KeyCommand::Remove { id, dry_run } => {
            let target = resolve_key(&repo, &id)?;
            if dry_run {
                repo.check_remove_key(&target)?;
                ctx.say(format!(
                    "dry run: key {} would be removed; nothing was changed",
                    target.short()
                ));
                done(ctx, true, Some(target), "removed", None);
                return Ok(());
            }
            let _lock = ctx.lock(&repo, true, "key remove")?;
            repo.remove_key(&target)?;
            ctx.say(format!("removed key {}", target.short()));
            done(ctx, false, Some(target), "removed", None);
        }
        KeyCommand::Passwd { dry_run } => {
            let new = new_passphrase()?;
            let cur =
                current.ok_or_else(|| crate::usage("no passphrase", "set RIPCORD_PASSWORD"))?;
            let old = repo.key_id().ok_or_else(|| {
                crate::usage("this repository is not encrypted", "it has no passphrase")
            })?;
            if dry_run {
                ctx.say(format!(
                    "dry run: a key with the new passphrase would replace key {}; nothing was changed",
                    old.short()
                ));
                done(ctx, true, None, "replaced", Some(old));
                return Ok(());
            }
            let _lock = ctx.lock(&repo, true, "key passwd")?;
            let id = repo.add_key(&cur, &new)?;
            // Reopen with the new key so the old one is not "in use".
            let reopened = ripcord_repo::Repository::open(repo.backend().clone(), Some(&new))?;
            reopened.remove_key(&old)?;
            ctx.say(format!(
                "passphrase changed: key {} replaces {}",
                id.short(),
                old.short()
            ));
            done(ctx, false, Some(id), "replaced", Some(old));
        }
    }
    Ok(())
}

/// The JSON of `key add`, `remove` and `passwd`.
fn done(ctx: &Ctx, dry_run: bool, key: Option<Id>, action: &str, replaced_key: Option<Id>) {
    if ctx.json {
        output::print_json(&KeyOutput {
            dry_run,
            key,
            action: action.into(),
            replaced_key,
        });
    }
}

fn resolve_key(repo: &ripcord_repo::Repository, prefix: &str) -> Result<Id> {
    let p = prefix.to_ascii_lowercase();
    // By id, without reading the key file: a damaged one can be removed too.
    let matches: Vec<Id> = repo
        .list_ids("keys")?
        .into_iter()
        .filter(|id| id.to_hex().starts_with(&p))
        .collect();
    match matches.as_slice() {
        [one] if !p.is_empty() => Ok(*one),
        [] => Err(crate::usage(
            format!("no key matches {prefix:?}"),
            "`ripcord key list` shows the key ids",
        )),
        _ => Err(crate::usage(
            format!("{prefix:?} matches several keys"),
            "give more characters of the id",
        )),
    }
}
