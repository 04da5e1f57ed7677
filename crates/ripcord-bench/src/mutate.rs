//! Deterministic modification of a generated data set, to measure incremental
//! snapshots: a given percentage of the tree's files get part of their content
//! rewritten or data appended, and rows of the database are updated.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::db;
use crate::generate::is_binary;
use crate::rng::Rng;
use crate::text::{self, LogWriter};
use crate::walk;
use crate::MIB;

const STREAM_FILES: u64 = 20;

/// What [`mutate`] changed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Mutation {
    /// Percentage requested.
    pub percent: f64,
    /// Files in the tree.
    pub files: u64,
    /// Files whose content was partly rewritten in place.
    pub rewritten: u64,
    /// Files that had data appended.
    pub appended: u64,
    /// Bytes written into the tree (rewritten plus appended).
    pub bytes_written: u64,
    /// Database changes.
    pub db: db::DbMutation,
}

/// Modifies `percent`% of the files of `out/tree` and rows of `out/app.db`.
/// The same `seed` and `round` on the same data always make the same changes;
/// use another `round` to mutate an already mutated data set again.
pub fn mutate(out: &Path, percent: f64, seed: u64, round: u64) -> Result<Mutation> {
    if !(0.0..=100.0).contains(&percent) {
        bail!("percent must be between 0 and 100, got {percent}");
    }
    let tree = out.join("tree");
    let files = walk::files(std::slice::from_ref(&tree))?;
    if files.is_empty() {
        bail!("no files under {}", tree.display());
    }
    let seed = seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let k = ((files.len() as f64) * percent / 100.0).ceil() as usize;
    let mut rng = Rng::derive(seed, STREAM_FILES, 0);
    let chosen = rng.sample(files.len(), k.min(files.len()));
    let mut m = Mutation {
        percent,
        files: files.len() as u64,
        ..Mutation::default()
    };
    let mut buf = Vec::new();
    for i in chosen {
        let entry = &files[i];
        let mut rng = Rng::derive(seed, STREAM_FILES, 1 + i as u64);
        let binary = is_binary(&entry.path);
        let size = entry.size;
        let mut f = OpenOptions::new()
            .write(true)
            .open(&entry.path)
            .with_context(|| format!("cannot open {}", entry.path.display()))?;
        // Rewrite a region in place for most files; append to the others and
        // to some of the rewritten ones.
        let rewrite = size > 0 && rng.chance(0.7);
        let append = !rewrite || rng.chance(0.2);
        if rewrite {
            let len = if binary {
                rng.range(4096, 65_537).min(size)
            } else {
                (size / 50).clamp(100, MIB).min(size)
            };
            let at = rng.below(size - len + 1);
            buf.clear();
            fill(&mut rng, binary, &mut buf, len as usize);
            f.seek(SeekFrom::Start(at))?;
            f.write_all(&buf)
                .with_context(|| format!("cannot write {}", entry.path.display()))?;
            m.rewritten += 1;
            m.bytes_written += len;
        }
        if append {
            let len = (size / 100).clamp(200, 4 * MIB);
            buf.clear();
            fill(&mut rng, binary, &mut buf, len as usize);
            f.seek(SeekFrom::End(0))?;
            f.write_all(&buf)
                .with_context(|| format!("cannot write {}", entry.path.display()))?;
            m.appended += 1;
            m.bytes_written += len;
        }
    }
    m.db = db::mutate(&out.join("app.db"), percent, seed)?;
    Ok(m)
}

fn fill(rng: &mut Rng, binary: bool, buf: &mut Vec<u8>, len: usize) {
    if binary {
        buf.resize(len, 0);
        rng.fill(buf);
    } else if rng.chance(0.5) {
        text::prose(rng, buf, len);
    } else {
        LogWriter::new(1_800_000_000 + rng.below(1_000_000)).lines(rng, buf, len);
    }
    buf.truncate(len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::generate;
    use std::fs;

    #[test]
    fn mutates_the_requested_share_deterministically() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        generate(a.path(), 0.002, 3).unwrap();
        generate(b.path(), 0.002, 3).unwrap();
        let before = walk::files(&[a.path().join("tree")]).unwrap();
        let before: Vec<Vec<u8>> = before.iter().map(|e| fs::read(&e.path).unwrap()).collect();
        let ma = mutate(a.path(), 10.0, 1, 1).unwrap();
        let mb = mutate(b.path(), 10.0, 1, 1).unwrap();
        assert_eq!(ma.bytes_written, mb.bytes_written);
        let after = walk::files(&[a.path().join("tree")]).unwrap();
        let changed = after
            .iter()
            .zip(&before)
            .filter(|(e, old)| fs::read(&e.path).unwrap() != **old)
            .count();
        let expected = (before.len() as f64 * 0.1).ceil() as usize;
        // A rewrite can, very rarely, write back identical bytes.
        assert!(
            changed <= expected && changed + 2 >= expected,
            "{changed} vs {expected}"
        );
        assert!(ma.db.events_updated > 0 && ma.db.events_inserted > 0);
        for (x, y) in after
            .iter()
            .zip(walk::files(&[b.path().join("tree")]).unwrap())
        {
            assert_eq!(fs::read(&x.path).unwrap(), fs::read(&y.path).unwrap());
        }
    }
}
