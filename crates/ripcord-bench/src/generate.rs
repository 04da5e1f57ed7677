//! Generation of the benchmark file tree and database.
//!
//! At scale 1.0 the tree holds about 1.1 GiB:
//! - 50,000 small text files (200 B to 8 KiB of prose, logs, configuration and
//!   CSV) spread over ~1,250 nested directories, 3% of them duplicates;
//! - 200 medium files (64 KiB to 2 MiB), half text, half random "images";
//! - 8 large compressible files (logs and CSV exports, 400 MiB in total);
//! - 6 large incompressible files (random "disk images", 300 MiB in total);
//!
//! and the SQLite database `app.db` is about 480 MB (see [`crate::db`]).
//! Every size and count except the number of large files scales with `scale`.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use crate::rng::Rng;
use crate::text::{self, CsvWriter, LogWriter};
use crate::{db, scaled, MIB};

/// Default seed of the data set.
pub const DEFAULT_SEED: u64 = 0x5EED_2024;

/// Name of the summary written next to the tree once generation completed.
pub const SUMMARY_FILE: &str = "bench-data.json";

const STREAM_DIRS: u64 = 1;
const STREAM_SMALL: u64 = 2;
const STREAM_MEDIUM: u64 = 3;
const STREAM_LARGE: u64 = 4;

/// Sizes of the large compressible files in MiB at scale 1.0 (400 MiB).
const LOG_MIB: &[u64] = &[70, 60, 50, 40, 30];
const CSV_MIB: &[u64] = &[60, 50, 40];
/// Sizes of the large random files in MiB at scale 1.0 (300 MiB).
const RANDOM_MIB: &[u64] = &[100, 80, 50, 40, 20, 10];

/// Extensions of files whose content is random bytes.
pub const BINARY_EXTENSIONS: &[&str] = &["img", "jpg"];

/// Byte and file counts of one category of generated files.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Category {
    /// Number of files.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

impl Category {
    fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }
}

/// What [`generate`] produced.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Scale factor used.
    pub scale: f64,
    /// Seed used.
    pub seed: u64,
    /// Number of directories in the tree (not counting the root).
    pub dirs: u64,
    /// Small text files.
    pub small: Category,
    /// How many small files duplicate another one's content.
    pub small_duplicates: u64,
    /// Medium files (half text, half random).
    pub medium: Category,
    /// Large compressible files (logs, CSV).
    pub compressible: Category,
    /// Large incompressible files.
    pub random: Category,
    /// Whole tree.
    pub tree: Category,
    /// The SQLite database.
    pub db: db::DbSummary,
    /// Tree plus database, in bytes.
    pub total_bytes: u64,
    /// Seconds the generation took.
    pub seconds: f64,
}

/// Generates `out/tree` and `out/app.db` at `scale` from `seed`, then writes
/// `out/bench-data.json`. Fails if the tree or database already exists.
pub fn generate(out: &Path, scale: f64, seed: u64) -> Result<Summary> {
    if !(scale > 0.0 && scale.is_finite()) {
        bail!("scale must be a positive number, got {scale}");
    }
    let started = std::time::Instant::now();
    let tree = out.join("tree");
    let db_path = out.join("app.db");
    if tree.exists() || db_path.exists() {
        bail!(
            "{} or {} already exists; remove them first",
            tree.display(),
            db_path.display()
        );
    }
    let _ = fs::remove_file(out.join(SUMMARY_FILE));
    fs::create_dir_all(&tree).with_context(|| format!("cannot create {}", tree.display()))?;

    let small_files = scaled(50_000, scale, 1);
    let medium_files = scaled(200, scale, 2);
    let dirs = make_dirs(&tree, seed, scaled(1_250, scale, 1))?;

    // Small files, in parallel; each file's content depends only on its index.
    let small: Vec<(u64, bool)> = (0..small_files)
        .into_par_iter()
        .map(|i| write_small(&tree, &dirs, seed, i))
        .collect::<Result<_>>()?;
    let mut s_small = Category::default();
    let mut dups = 0;
    for (bytes, dup) in small {
        s_small.add(bytes);
        dups += u64::from(dup);
    }

    let medium: Vec<u64> = (0..medium_files)
        .into_par_iter()
        .map(|i| write_medium(&tree, &dirs, seed, i))
        .collect::<Result<_>>()?;
    let mut s_medium = Category::default();
    medium.into_iter().for_each(|b| s_medium.add(b));

    // Large files.
    fs::create_dir_all(tree.join("var/log"))?;
    fs::create_dir_all(tree.join("exports"))?;
    fs::create_dir_all(tree.join("images"))?;
    let mut large: Vec<(PathBuf, u64, LargeKind)> = Vec::new();
    for (k, mib) in LOG_MIB.iter().enumerate() {
        let p = tree.join(format!("var/log/app-{k}.log"));
        large.push((p, scaled(mib * MIB, scale, 1), LargeKind::Log));
    }
    for (k, mib) in CSV_MIB.iter().enumerate() {
        let p = tree.join(format!("exports/orders-{k}.csv"));
        large.push((p, scaled(mib * MIB, scale, 1), LargeKind::Csv));
    }
    for (k, mib) in RANDOM_MIB.iter().enumerate() {
        let p = tree.join(format!("images/disk-{k}.img"));
        large.push((p, scaled(mib * MIB, scale, 1), LargeKind::Random));
    }
    large
        .par_iter()
        .enumerate()
        .map(|(i, (p, size, kind))| {
            write_large(p, *size, *kind, Rng::derive(seed, STREAM_LARGE, i as u64))
        })
        .collect::<Result<()>>()?;
    let mut s_comp = Category::default();
    let mut s_rand = Category::default();
    for (_, size, kind) in &large {
        match kind {
            LargeKind::Random => s_rand.add(*size),
            _ => s_comp.add(*size),
        }
    }

    let db = db::create(&db_path, scale, seed)?;

    let mut s_tree = Category::default();
    for c in [&s_small, &s_medium, &s_comp, &s_rand] {
        s_tree.files += c.files;
        s_tree.bytes += c.bytes;
    }
    let summary = Summary {
        scale,
        seed,
        dirs: dirs.len() as u64,
        small: s_small,
        small_duplicates: dups,
        medium: s_medium,
        compressible: s_comp,
        random: s_rand,
        total_bytes: s_tree.bytes + db.bytes,
        tree: s_tree,
        db,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&summary)?;
    fs::write(out.join(SUMMARY_FILE), json + "\n")?;
    Ok(summary)
}

/// Creates a random nested directory tree under `tree` and returns the
/// directories (relative paths), the first ones being the top level.
fn make_dirs(tree: &Path, seed: u64, n: u64) -> Result<Vec<PathBuf>> {
    let mut rng = Rng::derive(seed, STREAM_DIRS, 0);
    let mut dirs: Vec<(PathBuf, u32)> = ["documents", "projects", "config", "home"]
        .iter()
        .map(|d| (PathBuf::from(d), 1))
        .collect();
    for i in 0..n {
        let (parent, depth) = dirs[rng.index(dirs.len())].clone();
        let (parent, depth) = if depth >= 6 {
            dirs[rng.index(4)].clone()
        } else {
            (parent, depth)
        };
        dirs.push((
            parent.join(format!("{}-{i}", text::word(&mut rng))),
            depth + 1,
        ));
    }
    for (d, _) in &dirs {
        let p = tree.join(d);
        fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    Ok(dirs.into_iter().map(|(d, _)| d).collect())
}

/// Content and extension of small file `i`.
fn small_content(seed: u64, i: u64, out: &mut Vec<u8>) -> &'static str {
    let mut rng = Rng::derive(seed, STREAM_SMALL, i);
    let len = rng.range(200, 8193) as usize;
    let ext = match rng.below(20) {
        0..=8 => {
            text::prose(&mut rng, out, len);
            if rng.chance(0.5) {
                "md"
            } else {
                "txt"
            }
        }
        9..=13 => {
            LogWriter::new(1_700_000_000 + rng.below(30_000_000)).lines(&mut rng, out, len);
            "log"
        }
        14..=17 => {
            text::config(&mut rng, out, len);
            rng.pick(&["toml", "ini", "conf"])
        }
        _ => {
            out.extend(CsvWriter::HEADER.as_bytes());
            CsvWriter::new(rng.below(1_000_000), 1_700_000_000).rows(&mut rng, out, len);
            "csv"
        }
    };
    out.truncate(len);
    ext
}

fn write_small(tree: &Path, dirs: &[PathBuf], seed: u64, i: u64) -> Result<(u64, bool)> {
    let mut rng = Rng::derive(seed, STREAM_SMALL, i ^ (1 << 63));
    let dir = &dirs[rng.index(dirs.len())];
    // 3% of the files are copies of an earlier file (vendored or copied
    // documents), for deduplication to find.
    let dup = i > 0 && rng.chance(0.03);
    let source = if dup { rng.below(i) } else { i };
    let mut content = Vec::with_capacity(9000);
    let ext = small_content(seed, source, &mut content);
    let path = tree
        .join(dir)
        .join(format!("{}-{i:05}.{ext}", text::word(&mut rng)));
    fs::write(&path, &content).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((content.len() as u64, dup))
}

fn write_medium(tree: &Path, dirs: &[PathBuf], seed: u64, i: u64) -> Result<u64> {
    let mut rng = Rng::derive(seed, STREAM_MEDIUM, i);
    let dir = &dirs[rng.index(dirs.len())];
    let size = rng.range(64 * 1024, 2 * MIB + 1);
    let (kind, ext) = if i % 2 == 0 {
        (LargeKind::Random, "jpg")
    } else if i % 4 == 1 {
        (LargeKind::Log, "log")
    } else {
        (LargeKind::Csv, "csv")
    };
    let path = tree
        .join(dir)
        .join(format!("{}-m{i:03}.{ext}", text::word(&mut rng)));
    write_large(&path, size, kind, rng)?;
    Ok(size)
}

#[derive(Clone, Copy, Debug)]
enum LargeKind {
    Log,
    Csv,
    Random,
}

/// Writes exactly `size` bytes of the given kind to `path`, streaming.
fn write_large(path: &Path, size: u64, kind: LargeKind, mut rng: Rng) -> Result<()> {
    const BUF: usize = 4 * MIB as usize;
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(BUF, file);
    let mut buf: Vec<u8> = Vec::with_capacity(BUF + 4096);
    let mut log = LogWriter::new(1_700_000_000 + rng.below(10_000_000));
    let mut csv = CsvWriter::new(rng.below(1_000_000) * 1000, 1_700_000_000);
    if let LargeKind::Csv = kind {
        buf.extend(CsvWriter::HEADER.as_bytes());
    }
    let mut left = size;
    while left > 0 {
        let want = BUF.min(left as usize);
        match kind {
            LargeKind::Log => log.lines(&mut rng, &mut buf, want),
            LargeKind::Csv => csv.rows(&mut rng, &mut buf, want),
            LargeKind::Random => {
                let start = buf.len();
                buf.resize(want.max(start), 0);
                rng.fill(&mut buf[start..]);
            }
        }
        let n = want.min(buf.len());
        w.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", path.display()))?;
        buf.drain(..n);
        left -= n as u64;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Whether `path` names a file whose content is random bytes.
pub fn is_binary(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| BINARY_EXTENSIONS.contains(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk;

    fn digest(root: &Path) -> (usize, u64, String) {
        let files = walk::files(&[root.to_path_buf()]).unwrap();
        let mut h = blake3::Hasher::new();
        let mut total = 0;
        for f in &files {
            h.update(
                f.path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes(),
            );
            h.update(&fs::read(&f.path).unwrap());
            total += f.size;
        }
        (files.len(), total, h.finalize().to_hex().to_string())
    }

    #[test]
    fn reproducible_small_scale() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sa = generate(a.path(), 0.002, 7).unwrap();
        let sb = generate(b.path(), 0.002, 7).unwrap();
        assert_eq!(sa.tree.bytes, sb.tree.bytes);
        let da = digest(&a.path().join("tree"));
        let db = digest(&b.path().join("tree"));
        assert_eq!(da, db);
        assert_eq!(da.0 as u64, sa.tree.files);
        assert_eq!(da.1, sa.tree.bytes);
        assert!(sa.db.bytes > 0);
        assert!(a.path().join(SUMMARY_FILE).exists());
        // A second run into the same directory refuses to overwrite.
        assert!(generate(a.path(), 0.002, 7).is_err());
    }
}
