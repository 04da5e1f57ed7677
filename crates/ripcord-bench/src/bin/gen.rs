//! `ripcord-bench-gen OUT_DIR [--scale F] [--seed N]` generates the benchmark
//! data set (`OUT_DIR/tree`, `OUT_DIR/app.db`, `OUT_DIR/bench-data.json`).
//!
//! `ripcord-bench-gen OUT_DIR --mutate-percent P [--round N]` modifies P% of
//! the files and database rows of an existing data set, deterministically.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use ripcord_bench::{generate, mutate};

/// Generates reproducible benchmark data for ripcord, or mutates it.
#[derive(Parser, Debug)]
#[command(name = "ripcord-bench-gen", version)]
struct Args {
    /// Directory to write the data set into (or to mutate).
    out_dir: PathBuf,
    /// Size factor: 1.0 gives a ~1.1 GiB tree and a ~480 MB database.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Seed of the pseudo-random generator.
    #[arg(long, default_value_t = generate::DEFAULT_SEED)]
    seed: u64,
    /// Instead of generating, modify this percentage of the files of an
    /// existing data set and of its database rows.
    #[arg(long, value_name = "P")]
    mutate_percent: Option<f64>,
    /// Mutation round: the same round always makes the same changes.
    #[arg(long, default_value_t = 1, requires = "mutate_percent")]
    round: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let json = match args.mutate_percent {
        Some(p) => {
            serde_json::to_string_pretty(&mutate::mutate(&args.out_dir, p, args.seed, args.round)?)?
        }
        None => {
            std::fs::create_dir_all(&args.out_dir)?;
            serde_json::to_string_pretty(&generate::generate(
                &args.out_dir,
                args.scale,
                args.seed,
            )?)?
        }
    };
    println!("{json}");
    Ok(())
}
