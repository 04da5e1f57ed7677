//! `restore --include`: part of a dir target, chosen by glob patterns
//! relative to the target's root.
//!
//! A pattern matches a path of the snapshot (`config/*.toml`, `a/b.txt`,
//! `logs`); a matched folder brings everything below it. `*` stays inside
//! one folder, `**` crosses folders. Folders on the way to a matched path
//! are created as needed, with nothing else in them.
//!
//! In place, the included entries are staged beside the target, then each
//! is renamed over its live path: nothing the patterns do not match is
//! touched, and nothing live is removed, also inside an included folder.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ripcord_repo::index::Index;
use ripcord_repo::manifest::NodeKind;
use ripcord_repo::walk::MAX_DEPTH;
use ripcord_repo::{Id, Repository};

use crate::error::{Error, Result};

/// The `--include` patterns, compiled.
#[derive(Debug, Clone)]
pub struct Include {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Include {
    /// Compiles `patterns` (each relative to the target's root; a leading
    /// `./` and a trailing `/` are dropped). Absolute patterns and `..`
    /// are refused: they would name something outside the target.
    pub fn new(patterns: &[String]) -> Result<Include> {
        let mut b = GlobSetBuilder::new();
        let mut kept = Vec::new();
        for raw in patterns {
            let p = raw.trim_start_matches("./").trim_end_matches('/');
            let bad = |why: &str| Error::Pattern {
                pattern: raw.clone(),
                detail: why.to_string(),
            };
            if p.is_empty() {
                return Err(bad("it names no path; give a path relative to the target's root, such as config/app.toml"));
            }
            if Path::new(p).is_absolute() {
                return Err(bad(
                    "patterns are relative to the target's root: leave out the leading /",
                ));
            }
            if Path::new(p).components().any(|c| c == Component::ParentDir) {
                return Err(bad("`..` would leave the target"));
            }
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|e| bad(&e.to_string()))?;
            b.add(glob);
            kept.push(p.to_string());
        }
        let set = b.build().map_err(|e| Error::Pattern {
            pattern: patterns.join(", "),
            detail: e.to_string(),
        })?;
        Ok(Include {
            patterns: kept,
            set,
        })
    }

    /// Whether the relative path `rel` (`/`-separated) is matched itself.
    pub fn matches(&self, rel: &str) -> bool {
        self.set.is_match(rel)
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Checks, before anything is written, that every pattern matches some
/// path of the tree. A pattern that matches nothing is an error naming it,
/// with the nearest path of the snapshot as a suggestion.
pub fn check_matches(
    repo: &Repository,
    index: &Index,
    tree: Id,
    include: &Include,
    max_entries: u64,
) -> Result<()> {
    let mut matched = vec![false; include.patterns.len()];
    let mut paths: Vec<String> = Vec::new();
    let mut seen = 0u64;
    let mut stack = vec![(tree, String::new(), 0usize)];
    while let Some((id, rel, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(Error::Unsafe {
                entry: rel,
                why: format!("the tree is more than {MAX_DEPTH} levels deep"),
            });
        }
        let tree = repo.load_tree(index, &id)?;
        seen = seen.saturating_add(tree.nodes.len() as u64);
        if seen > max_entries {
            return Err(Error::Unsafe {
                entry: if rel.is_empty() { ".".into() } else { rel },
                why: format!(
                    "the tree expands to more than the {max_entries} entries the snapshot recorded"
                ),
            });
        }
        for node in &tree.nodes {
            let path = if rel.is_empty() {
                node.name.clone()
            } else {
                format!("{rel}/{}", node.name)
            };
            for i in include.set.matches(&path) {
                matched[i] = true;
            }
            if node.kind == NodeKind::Dir {
                if let Some(sub) = node.subtree {
                    stack.push((sub, path.clone(), depth + 1));
                }
            }
            paths.push(path);
        }
    }
    let unmatched: Vec<&String> = include
        .patterns
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(p, _)| p)
        .collect();
    if unmatched.is_empty() {
        return Ok(());
    }
    let near: Vec<String> = unmatched
        .iter()
        .filter_map(|p| {
            nearest(p, &paths).map(|n| match unmatched.len() {
                1 => n,
                _ => format!("{n} (for {p})"),
            })
        })
        .collect();
    Err(Error::NotInSnapshot {
        message: format!(
            "--include {} matches nothing in the snapshot",
            unmatched
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        hint: format!(
            "{}patterns are globs relative to the target's root (`config/*.toml`, `a/b.txt`); `ripcord ls SNAPSHOT TARGET` lists what the snapshot holds. Nothing was changed",
            if near.is_empty() {
                String::new()
            } else {
                format!("did you mean {}? ", near.join(", "))
            }
        ),
    })
}

/// The path of `paths` closest to `pattern`, when one is close enough to
/// be a likely typo.
fn nearest(pattern: &str, paths: &[String]) -> Option<String> {
    paths
        .iter()
        .map(|p| (strsim::levenshtein(pattern, p), p))
        .filter(|(d, p)| *d <= 3.max(p.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, p)| p.clone())
}

/// What an in-place `--include` restore did to the live folder.
#[derive(Debug, Default, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Applied {
    /// Live entries replaced by the snapshot's version.
    #[serde(rename = "replaced_count")]
    pub replaced: u64,
    /// Entries the live folder did not have.
    #[serde(rename = "added_count")]
    pub added: u64,
}

/// Every entry of the staged copy, relative, parents before children.
fn staged_entries(staged: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = staged.join(&rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let r = rel.join(&name);
            let m = fs::symlink_metadata(staged.join(&r))
                .map_err(|e| Error::io(format!("cannot read {}", r.display()), e))?;
            out.push(r.clone());
            if m.is_dir() {
                subdirs.push(r);
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

/// Checks that every staged entry can be put at its live path without
/// removing anything: no folder on the way is a link or a file, no file
/// takes the place of a live folder (or a folder that of a file), and
/// nothing lands on ripcord's own files (`protected`: the repository, the
/// configuration, the catalog).
pub fn check_live(staged: &Path, live: &Path, protected: &[PathBuf]) -> Result<()> {
    let own = crate::dir::protected_inside(live, protected);
    for rel in staged_entries(staged)? {
        if let Some(p) = own.iter().find(|p| rel.starts_with(p)) {
            return Err(Error::InPlaceConflict {
                detail: format!(
                    "{} would replace ripcord's own {}",
                    rel.display(),
                    p.display()
                ),
                hint: "nothing was changed; leave it out of the --include patterns, or restore with --into DIR".into(),
            });
        }
        let s = fs::symlink_metadata(staged.join(&rel))
            .map_err(|e| Error::io(format!("cannot read {}", rel.display()), e))?;
        let l = match fs::symlink_metadata(live.join(&rel)) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("cannot read {}", rel.display()), e)),
        };
        let conflict = match (s.is_dir(), l.is_dir()) {
            (true, false) if l.file_type().is_symlink() => {
                Some("is a link in the live folder; the snapshot has a folder there")
            }
            (true, false) => Some("is a file in the live folder; the snapshot has a folder there"),
            (false, true) => Some("is a folder in the live folder; the snapshot has a file there"),
            _ => None,
        };
        if let Some(why) = conflict {
            return Err(Error::InPlaceConflict {
                detail: format!("{} {why}", rel.display()),
                hint: "nothing was changed; move it away first, or restore with --into DIR and copy what you need".into(),
            });
        }
    }
    Ok(())
}

/// Moves the staged entries over their live paths: a file, link or special
/// file replaces the live one by a rename; a folder the live side lacks is
/// created with the snapshot's mode and time. Live entries the snapshot
/// does not hold stay, and existing live folders keep their mode.
pub fn apply(staged: &Path, live: &Path, protected: &[PathBuf]) -> Result<Applied> {
    check_live(staged, live, protected)?;
    let mut done = Applied::default();
    let mut created: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    for rel in staged_entries(staged)? {
        let from = staged.join(&rel);
        let to = live.join(&rel);
        let s = fs::symlink_metadata(&from)
            .map_err(|e| Error::io(format!("cannot read {}", from.display()), e))?;
        let existed = fs::symlink_metadata(&to).is_ok();
        if s.is_dir() {
            // Its entries are renamed out of it below, whatever mode the
            // snapshot gave it.
            fs::set_permissions(&from, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(format!("cannot set mode of {}", from.display()), e))?;
            if !existed {
                fs::create_dir(&to)
                    .map_err(|e| Error::io(format!("cannot create {}", to.display()), e))?;
                created.push((to, s));
                done.added += 1;
            }
            continue;
        }
        fs::rename(&from, &to)
            .map_err(|e| Error::io(format!("cannot move into {}", to.display()), e))?;
        if existed {
            done.replaced += 1;
        } else {
            done.added += 1;
        }
    }
    // Deepest first: writing inside a folder changes its time.
    for (path, meta) in created.into_iter().rev() {
        let t = filetime::FileTime::from_last_modification_time(&meta);
        let _ = filetime::set_file_mtime(&path, t);
        fs::set_permissions(&path, fs::Permissions::from_mode(meta.permissions().mode()))
            .map_err(|e| Error::io(format!("cannot set mode of {}", path.display()), e))?;
    }
    let _ = fs::remove_dir_all(staged);
    Ok(done)
}
