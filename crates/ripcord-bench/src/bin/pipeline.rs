//! `ripcord-bench-pipeline [--level N] [--workers N] PATH...` measures the
//! pipeline limit (read + FastCDC + keyed BLAKE3 + zstd, no repository) and
//! prints `{"bytes":..,"seconds":..,"mb_per_s":..,...}`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use ripcord_bench::pipeline::{self, Options};

/// Measures how fast this machine reads, chunks, hashes and compresses files.
#[derive(Parser, Debug)]
#[command(name = "ripcord-bench-pipeline", version)]
struct Args {
    /// Files or directories to read.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// zstd compression level.
    #[arg(long, default_value_t = 1)]
    level: i32,
    /// Hash and compress worker threads (default: available parallelism).
    #[arg(long)]
    workers: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut opts = Options {
        level: args.level,
        ..Options::default()
    };
    if let Some(w) = args.workers {
        opts.workers = w;
    }
    let report = pipeline::run(&args.paths, &opts)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
