//! `ripcord snapshots` and `ripcord show`.

use anyhow::Result;
use ripcord_ops::json::{EntryKind, ShowOutput, SnapshotView};
use ripcord_repo::manifest::{Content, Snapshot};

use crate::cli::SnapshotsArgs;
use crate::ctx::Ctx;
use crate::output;

/// The snapshot as shown: database sources without passwords, also in
/// snapshots that older versions recorded with one.
use ripcord_ops::overview::redacted;

pub fn snapshots(ctx: &Ctx, args: &SnapshotsArgs) -> Result<()> {
    let repo = ctx.open_repo()?;
    let list = repo.snapshot_list()?;
    for d in &list.damaged {
        ctx.warn(d.warning());
    }
    let all: Vec<_> = list
        .snapshots
        .into_iter()
        .map(|(id, s)| (id, redacted(s)))
        .collect();
    let select = args.select.to_ops();
    select.check_known(&ctx.config, all.iter().map(|(_, s)| s))?;
    check_tier(ctx, args.tier.as_deref(), all.iter().map(|(_, s)| s))?;
    let shown: Vec<_> = all
        .iter()
        .filter(|(_, s)| select.matches(s))
        .filter(|(_, s)| args.tier.is_none() || s.tier == args.tier)
        .collect();
    if ctx.json {
        let v: Vec<SnapshotView> = shown
            .iter()
            .map(|(id, s)| SnapshotView::of(*id, s))
            .collect();
        output::print_json(&v);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|(id, s)| {
            vec![
                id.short(),
                output::time(&s.time),
                s.host.clone(),
                s.tier.clone().unwrap_or_default(),
                s.tags.join(","),
                s.target_names().join(","),
                migration_column(s),
                output::bytes(s.total_size()),
            ]
        })
        .collect();
    output::table_indented(
        0,
        &[
            "ID",
            "TIME",
            "HOST",
            "TIER",
            "TAGS",
            "TARGETS",
            "MIGRATION",
            "SIZE",
        ],
        &[false, false, false, false, false, false, false, true],
        &rows,
    );
    ctx.say(output::counted(rows.len() as u64, "snapshot"));
    Ok(())
}

/// A tier that is neither configured nor on any snapshot is a typo.
pub fn check_tier<'a>(
    ctx: &Ctx,
    tier: Option<&str>,
    snapshots: impl Iterator<Item = &'a Snapshot>,
) -> Result<()> {
    let Some(tier) = tier else { return Ok(()) };
    let mut known: std::collections::BTreeSet<String> = ctx.config.tiers.keys().cloned().collect();
    known.extend(snapshots.filter_map(|s| s.tier.clone()));
    ripcord_ops::select::check("tier", &[tier.to_string()], &known)?;
    Ok(())
}

/// The last applied change of each target that records a migration state
/// (`target:change` when the snapshot has several targets); empty when none
/// does.
fn migration_column(s: &Snapshot) -> String {
    let states: Vec<(&str, String)> = s
        .targets
        .iter()
        .filter_map(|t| {
            let change = match (&t.migration, &t.migration_version) {
                (Some(m), _) => {
                    let mut c = m.change.clone().unwrap_or_else(|| "(none)".into());
                    if !m.dirty.is_empty() {
                        c.push_str(" (dirty)");
                    }
                    c
                }
                (None, Some(v)) => v.clone(),
                (None, None) => return None,
            };
            Some((t.name.as_str(), change))
        })
        .collect();
    match states.as_slice() {
        [(_, change)] if s.targets.len() == 1 => change.clone(),
        _ => states
            .iter()
            .map(|(t, c)| format!("{t}:{c}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

pub fn show(ctx: &Ctx, id: &str) -> Result<()> {
    let repo = ctx.open_repo()?;
    let (id, s) = ctx.find_snapshot(&repo, id)?;
    let s = redacted(s);
    if ctx.json {
        output::print_json(&ShowOutput {
            snapshot: SnapshotView::of(id, &s),
            manifest: serde_json::to_value(&s)?,
        });
        return Ok(());
    }
    println!("snapshot {id}");
    let field = |name: &str, value: &str| println!("  {name:<9} {value}");
    field("time", &output::time(&s.time));
    field("host", &format!("{} (user {})", s.host, s.user));
    if let Some(t) = &s.tier {
        field("tier", t);
    }
    if !s.tags.is_empty() {
        field("tags", &s.tags.join(", "));
    }
    if let Some(p) = s.parent {
        field("parent", &p.short());
    }
    field("ripcord", &s.program_version);
    field("size", &output::bytes(s.total_size()));
    for t in &s.targets {
        println!();
        println!(
            "  target {} ({}) from {}",
            t.name,
            t.content.kind(),
            t.source
        );
        let field = |name: &str, value: &str| println!("    {name:<9} {value}");
        field("size", &output::bytes(t.size));
        if let Some(c) = &t.git_commit {
            field("git", c);
        }
        match (&t.migration, &t.migration_version) {
            (Some(m), _) => field("migration", &m.to_string()),
            (None, Some(m)) => field("migration", m),
            (None, None) => {}
        }
        match &t.content {
            Content::Dir { tree } => {
                field("files", &t.items.to_string());
                field("tree", &tree.short());
            }
            Content::Postgres(pg) => {
                field(
                    "server",
                    &format!(
                        "PostgreSQL {}{}",
                        pg.server_version,
                        if pg.partial { " (selected tables)" } else { "" }
                    ),
                );
                if !pg.sequences.is_empty() {
                    field("sequences", &pg.sequences.len().to_string());
                }
                let rows: Vec<Vec<String>> = pg
                    .tables
                    .iter()
                    .map(|tb| {
                        vec![
                            tb.qualified(),
                            tb.rows.to_string(),
                            output::bytes(tb.size),
                            tb.parts.len().to_string(),
                            tb.checksum[..16].to_string(),
                        ]
                    })
                    .collect();
                output::table_indented(
                    4,
                    &["TABLE", "ROWS", "SIZE", "PARTS", "CHECKSUM"],
                    &[false, true, true, true, false],
                    &rows,
                );
            }
            Content::Sqlite { image, tables, .. } => {
                field(
                    "image",
                    &format!(
                        "{} in {}, blake3 {}",
                        output::bytes(image.size),
                        output::counted(image.chunks.len() as u64, "chunk"),
                        &image.checksum[..16]
                    ),
                );
                let rows: Vec<Vec<String>> = tables
                    .iter()
                    .map(|tb| {
                        vec![
                            tb.name.clone(),
                            tb.rows.to_string(),
                            tb.checksum[..16].to_string(),
                        ]
                    })
                    .collect();
                output::table_indented(
                    4,
                    &["TABLE", "ROWS", "CHECKSUM"],
                    &[false, true, false],
                    &rows,
                );
            }
        }
    }
    Ok(())
}

/// `ripcord ls SNAPSHOT [PATH]`.
pub fn ls(ctx: &Ctx, args: &crate::cli::LsArgs) -> Result<()> {
    let listing = ripcord_ops::ls::list(ctx, &args.snapshot, args.path.as_deref())?;
    if ctx.json {
        output::print_json(&listing);
        return Ok(());
    }
    let header = ["TYPE", "MODE", "SIZE", "ROWS", "MODIFIED", "PATH"];
    let rows: Vec<Vec<String>> = listing
        .entries
        .iter()
        .map(|e| {
            let mut path = format!("{}/{}", e.target, e.path);
            if let Some(l) = &e.link {
                path.push_str(&format!(" -> {l}"));
            }
            vec![
                e.kind.as_str().to_string(),
                e.mode.clone().unwrap_or_default(),
                e.bytes.map(output::bytes).unwrap_or_default(),
                e.rows.map(|r| r.to_string()).unwrap_or_default(),
                e.modified_at.as_ref().map(output::time).unwrap_or_default(),
                path,
            ]
        })
        .collect();
    // Columns nothing listed has (rows of a folder, modes of tables) are left out.
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| i == 0 || i + 1 == header.len() || rows.iter().any(|r| !r[i].is_empty()))
        .collect();
    let header: Vec<&str> = keep.iter().map(|&i| header[i]).collect();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| keep.iter().map(|&i| r[i].clone()).collect())
        .collect();
    output::table(&header, &rows);
    let count = |kind: EntryKind| listing.entries.iter().filter(|e| e.kind == kind).count();
    let (files, dirs, tables) = (
        count(EntryKind::File),
        count(EntryKind::Dir),
        count(EntryKind::Table),
    );
    let mut parts = Vec::new();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if files > 0 || dirs > 0 {
        let bytes: u64 = listing
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .filter_map(|e| e.bytes)
            .sum();
        parts.push(format!(
            "{} ({}), {}",
            plural(files, "file", "files"),
            output::bytes(bytes),
            plural(dirs, "folder", "folders")
        ));
    }
    let links = count(EntryKind::Symlink);
    if links > 0 {
        parts.push(plural(links, "link", "links"));
    }
    let others = listing.entries.len() - files - dirs - tables - links;
    if others > 0 {
        parts.push(plural(others, "other entry", "other entries"));
    }
    if tables > 0 {
        parts.push(plural(tables, "table", "tables"));
    }
    if parts.is_empty() {
        parts.push("nothing".into());
    }
    ctx.say(format!(
        "snapshot {} holds {}",
        listing.snapshot.short(),
        parts.join(", ")
    ));
    Ok(())
}
