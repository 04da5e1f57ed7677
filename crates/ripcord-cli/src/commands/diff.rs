//! `ripcord diff A B`.

use anyhow::Result;
use ripcord_repo::index::Index;
use ripcord_repo::manifest::{Content, Node, NodeKind, TableStat};
use ripcord_repo::walk::{TreeLimits, MAX_DEPTH};
use ripcord_repo::{Id, Repository};
use serde::Serialize;

use crate::cli::DiffArgs;
use crate::ctx::Ctx;
use crate::output;

#[derive(Serialize, Default)]
struct TargetDiff {
    target: String,
    /// `added` or `removed` when the target is in only one snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    added: Vec<String>,
    removed: Vec<String>,
    modified: Vec<String>,
}

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
    let index = repo.load_index()?;
    let mut names: Vec<String> = sa.target_names();
    for n in sb.target_names() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let known: std::collections::BTreeSet<String> = names.iter().cloned().collect();
    ripcord_ops::select::check("target", &args.select.targets, &known)?;
    if !args.select.targets.is_empty() {
        names.retain(|n| args.select.targets.contains(n));
    }
    let mut out = Vec::new();
    for name in names {
        let mut d = TargetDiff {
            target: name.clone(),
            ..Default::default()
        };
        match (sa.target(&name), sb.target(&name)) {
            (Some(_), None) => d.status = Some("removed".into()),
            (None, Some(_)) => d.status = Some("added".into()),
            (Some(ta), Some(tb)) => match (&ta.content, &tb.content) {
                (Content::Dir { tree: x }, Content::Dir { tree: y }) => {
                    let mut budget = Budget {
                        left: TreeLimits::of(ta)
                            .max_entries
                            .saturating_add(TreeLimits::of(tb).max_entries),
                    };
                    diff_trees(
                        &repo,
                        &index,
                        (Some(*x), Some(*y)),
                        "",
                        &mut d,
                        &mut budget,
                        0,
                    )?
                }
                (Content::Sqlite { tables: x, .. }, Content::Sqlite { tables: y, .. }) => {
                    diff_tables(x, y, &mut d)
                }
                (Content::Postgres(x), Content::Postgres(y)) => {
                    diff_tables(&pg_stats(x), &pg_stats(y), &mut d)
                }
                _ => d.status = Some("kind changed".into()),
            },
            (None, None) => unreachable!("name comes from one of them"),
        }
        out.push(d);
    }
    if ctx.json {
        output::print_json(&serde_json::json!({ "a": ia, "b": ib, "targets": out }));
        return Ok(());
    }
    println!("comparing {} with {}", ia.short(), ib.short());
    for d in &out {
        if let Some(s) = &d.status {
            println!("target {}: {s}", d.target);
            continue;
        }
        println!(
            "target {}: {} added, {} removed, {} modified",
            d.target,
            d.added.len(),
            d.removed.len(),
            d.modified.len()
        );
        for p in &d.added {
            println!("  {} {p}", output::green("+"));
        }
        for p in &d.removed {
            println!("  - {p}");
        }
        for p in &d.modified {
            println!("  M {p}");
        }
    }
    Ok(())
}

/// PostgreSQL tables in the shape SQLite's use, columns standing for the schema.
fn pg_stats(pg: &ripcord_repo::manifest::PgContent) -> Vec<TableStat> {
    pg.tables
        .iter()
        .map(|t| TableStat {
            name: t.qualified(),
            rows: t.rows,
            checksum: t.checksum.clone(),
            schema: t
                .columns
                .iter()
                .map(|c| format!("{} {}", c.name, c.type_name))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect()
}

fn diff_tables(a: &[TableStat], b: &[TableStat], d: &mut TargetDiff) {
    for t in b {
        match a.iter().find(|x| x.name == t.name) {
            None => d.added.push(format!("table {} ({} rows)", t.name, t.rows)),
            Some(old) => {
                let mut what = Vec::new();
                if old.rows != t.rows {
                    what.push(format!("rows {} -> {}", old.rows, t.rows));
                }
                if old.checksum != t.checksum && old.rows == t.rows {
                    what.push("content changed".to_string());
                }
                if old.schema != t.schema {
                    what.push("schema changed".to_string());
                }
                if !what.is_empty() {
                    d.modified
                        .push(format!("table {}: {}", t.name, what.join(", ")));
                }
            }
        }
    }
    for t in a.iter().filter(|x| !b.iter().any(|y| y.name == x.name)) {
        d.removed
            .push(format!("table {} ({} rows)", t.name, t.rows));
    }
}

/// How many more nodes a diff may read: the entries both snapshots
/// recorded, so shared subtrees cannot make it expand without end.
struct Budget {
    left: u64,
}

fn load(
    repo: &Repository,
    index: &Index,
    id: Option<Id>,
    budget: &mut Budget,
    depth: usize,
) -> Result<Vec<Node>> {
    if depth > MAX_DEPTH {
        anyhow::bail!("a tree is more than {MAX_DEPTH} levels deep: the snapshot is damaged (run `ripcord verify`)");
    }
    let nodes = match id {
        Some(id) => repo.load_tree(index, &id)?.nodes,
        None => vec![],
    };
    budget.left = budget
        .left
        .checked_sub(nodes.len() as u64)
        .ok_or_else(|| anyhow::anyhow!("a tree expands to more entries than its snapshot recorded: the snapshot is damaged (run `ripcord verify`)"))?;
    Ok(nodes)
}

fn diff_trees(
    repo: &Repository,
    index: &Index,
    (a, b): (Option<Id>, Option<Id>),
    prefix: &str,
    d: &mut TargetDiff,
    budget: &mut Budget,
    depth: usize,
) -> Result<()> {
    if a == b {
        return Ok(()); // identical subtrees share one id
    }
    let na = load(repo, index, a, budget, depth)?;
    let nb = load(repo, index, b, budget, depth)?;
    let (mut i, mut j) = (0, 0);
    while i < na.len() || j < nb.len() {
        let order = match (na.get(i), nb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                list_all(repo, index, &na[i], prefix, &mut d.removed, budget, depth)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                list_all(repo, index, &nb[j], prefix, &mut d.added, budget, depth)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&na[i], &nb[j]);
                let path = format!("{prefix}{}", x.name);
                if x.kind == NodeKind::Dir && y.kind == NodeKind::Dir {
                    diff_trees(
                        repo,
                        index,
                        (x.subtree, y.subtree),
                        &format!("{path}/"),
                        d,
                        budget,
                        depth + 1,
                    )?;
                } else if x.kind != y.kind
                    || x.content != y.content
                    || x.mode != y.mode
                    || x.target != y.target
                {
                    d.modified.push(path);
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn list_all(
    repo: &Repository,
    index: &Index,
    node: &Node,
    prefix: &str,
    out: &mut Vec<String>,
    budget: &mut Budget,
    depth: usize,
) -> Result<()> {
    let path = format!("{prefix}{}", node.name);
    if node.kind == NodeKind::Dir {
        out.push(format!("{path}/"));
        for child in load(repo, index, node.subtree, budget, depth + 1)? {
            list_all(
                repo,
                index,
                &child,
                &format!("{path}/"),
                out,
                budget,
                depth + 1,
            )?;
        }
    } else {
        out.push(path);
    }
    Ok(())
}
