//! `ripcord diff A B`.

use anyhow::Result;
use ripcord_ops::diff::{EntryChange, EntryKind, TargetChange};

use crate::cli::DiffArgs;
use crate::ctx::Ctx;
use crate::output;

pub fn run(ctx: &Ctx, args: &DiffArgs) -> Result<()> {
    let repo = ctx.open_repo()?;
    // `latest` picks the newest snapshot with the tags; the targets choose
    // what is compared, so a snapshot needs only one of them.
    let by_tag = ripcord_ops::select::Selection {
        targets: Vec::new(),
        tags: args.select.tags.clone(),
    };
    let (ia, sa) = by_tag.find(ctx, &repo, &args.a)?;
    let (ib, sb) = by_tag.find(ctx, &repo, &args.b)?;
    let report = ripcord_ops::diff::diff(&repo, (ia, &sa), (ib, &sb), &args.select.targets)?;
    if ctx.json {
        output::print_json(&report);
        return Ok(());
    }
    println!("comparing {} with {}", ia.short(), ib.short());
    for d in &report.targets {
        let what = match d.change {
            TargetChange::Added => "added",
            TargetChange::Removed => "removed",
            TargetChange::KindChanged => "a different kind of target, not compared",
            TargetChange::Same => "no differences",
            TargetChange::Changed => {
                println!(
                    "target {}: {} added, {} removed, {} modified",
                    d.target, d.added_count, d.removed_count, d.modified_count
                );
                ""
            }
        };
        if !what.is_empty() {
            println!("target {}: {what}", d.target);
        }
        for e in &d.entries {
            let sign = match e.change {
                EntryChange::Added => output::green("+"),
                EntryChange::Removed => "-".into(),
                EntryChange::Modified => "M".into(),
            };
            if e.kind != EntryKind::Table {
                let was = if e.kind_changed {
                    format!(" (now a {})", e.kind.as_str())
                } else {
                    String::new()
                };
                println!("  {sign} {}{was}", e.path);
                continue;
            }
            let rows = |n: u64| output::counted(n, "row");
            let detail = match (e.rows_before, e.rows_after) {
                (None, Some(after)) => rows(after),
                (Some(before), None) => rows(before),
                (Some(before), Some(after)) => {
                    let mut what = Vec::new();
                    if before != after {
                        what.push(format!("rows {before} -> {after}"));
                    }
                    if e.content_changed {
                        what.push("content changed".into());
                    }
                    if e.schema_changed {
                        what.push("schema changed".into());
                    }
                    what.join(", ")
                }
                (None, None) => String::new(),
            };
            println!("  {sign} table {}: {detail}", e.path);
        }
    }
    Ok(())
}
