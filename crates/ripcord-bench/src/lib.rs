//! Benchmark support for ripcord: a reproducible data generator (a file tree
//! and an SQLite database, plus a deterministic mutation step) and a probe of
//! the machine's "pipeline limit" (read + chunk + hash + compress, no
//! repository).
//!
//! Everything the generator writes is derived from a seed through [`rng::Rng`],
//! a self-contained xoshiro256** generator, so the same seed and scale give the
//! same bytes on every machine and with every version of the dependencies.

pub mod db;
pub mod generate;
pub mod mutate;
pub mod pipeline;
pub mod rng;
pub mod text;
pub mod walk;

/// Bytes in a mebibyte.
pub const MIB: u64 = 1024 * 1024;

/// Scales `n` by `scale`, rounding, and never below `min`.
pub fn scaled(n: u64, scale: f64, min: u64) -> u64 {
    ((n as f64 * scale).round() as u64).max(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_rounds_and_clamps() {
        assert_eq!(scaled(50_000, 1.0, 1), 50_000);
        assert_eq!(scaled(50_000, 0.01, 1), 500);
        assert_eq!(scaled(200, 0.001, 1), 1);
        assert_eq!(scaled(3, 0.5, 0), 2);
    }
}
