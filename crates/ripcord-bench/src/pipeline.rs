//! The "pipeline limit": how fast this machine can read files, cut them into
//! content-defined chunks, hash and compress them, with no repository and no
//! output. A backup tool that does this work cannot be faster than this.
//!
//! One reader thread lists and reads the files (FastCDC v2020 for files of at
//! least `min` bytes, smaller files read whole as one chunk) and feeds a
//! bounded channel; worker threads compute a keyed BLAKE3 hash and a zstd
//! compression of each chunk.

use std::fs::{self, File};
use std::path::PathBuf;
use std::thread;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use crate::walk;

/// Chunking and worker parameters.
#[derive(Clone, Debug)]
pub struct Options {
    /// zstd level.
    pub level: i32,
    /// Worker threads (hash + compress).
    pub workers: usize,
    /// Minimum chunk size; smaller files are one chunk.
    pub min: u32,
    /// Average chunk size.
    pub avg: u32,
    /// Maximum chunk size.
    pub max: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            level: 1,
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
            min: 256 * 1024,
            avg: 1024 * 1024,
            max: 4 * 1024 * 1024,
        }
    }
}

/// Result of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Bytes read and processed.
    pub bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Throughput in MB/s (10^6 bytes per second).
    pub mb_per_s: f64,
    /// Files read.
    pub files: u64,
    /// Chunks produced.
    pub chunks: u64,
    /// Total size of the compressed chunks.
    pub compressed_bytes: u64,
    /// Worker threads used.
    pub workers: usize,
    /// zstd level used.
    pub level: i32,
}

const KEY: [u8; 32] = *b"ripcord-bench-pipeline-key-32byt";

/// Runs the pipeline over every regular file under `paths`.
pub fn run(paths: &[PathBuf], opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let workers = opts.workers.max(1);
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(workers * 2);

    let result = thread::scope(|s| -> Result<(u64, u64, u64, u64)> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let rx = rx.clone();
                let level = opts.level;
                s.spawn(move || -> Result<u64> {
                    let mut zc = zstd::bulk::Compressor::new(level)?;
                    let mut out = Vec::new();
                    let mut compressed = 0u64;
                    let mut mix = [0u8; 32];
                    for chunk in rx {
                        let id = blake3::keyed_hash(&KEY, &chunk);
                        for (m, b) in mix.iter_mut().zip(id.as_bytes()) {
                            *m ^= b;
                        }
                        out.clear();
                        out.reserve(zstd::zstd_safe::compress_bound(chunk.len()));
                        let n = zc.compress_to_buffer(&chunk, &mut out)?;
                        compressed += n as u64;
                    }
                    std::hint::black_box(mix);
                    Ok(compressed)
                })
            })
            .collect();
        drop(rx);

        let reader = s.spawn(move || -> Result<(u64, u64, u64)> {
            let files = walk::files(paths)?;
            let (mut bytes, mut chunks) = (0u64, 0u64);
            for entry in &files {
                let what = || format!("cannot read {}", entry.path.display());
                if entry.size < u64::from(opts.min) {
                    let data = fs::read(&entry.path).with_context(what)?;
                    bytes += data.len() as u64;
                    chunks += 1;
                    if tx.send(data).is_err() {
                        break;
                    }
                    continue;
                }
                let file = File::open(&entry.path).with_context(what)?;
                for chunk in fastcdc::v2020::StreamCDC::new(file, opts.min, opts.avg, opts.max) {
                    let chunk = chunk.map_err(|e| anyhow!("{e:?}")).with_context(what)?;
                    bytes += chunk.length as u64;
                    chunks += 1;
                    if tx.send(chunk.data).is_err() {
                        break;
                    }
                }
            }
            Ok((files.len() as u64, bytes, chunks))
        });

        let (files, bytes, chunks) = reader
            .join()
            .map_err(|_| anyhow!("reader thread panicked"))??;
        let mut compressed = 0;
        for h in handles {
            compressed += h.join().map_err(|_| anyhow!("worker thread panicked"))??;
        }
        Ok((files, bytes, chunks, compressed))
    })?;

    let seconds = started.elapsed().as_secs_f64();
    let (files, bytes, chunks, compressed_bytes) = result;
    Ok(Report {
        bytes,
        seconds,
        mb_per_s: if seconds > 0.0 {
            bytes as f64 / 1e6 / seconds
        } else {
            0.0
        },
        files,
        chunks,
        compressed_bytes,
        workers,
        level: opts.level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("small"), b"hello world").unwrap();
        let mut big = vec![0u8; 3 * 1024 * 1024 + 17];
        crate::rng::Rng::new(5).fill(&mut big);
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/big"), &big).unwrap();
        let opts = Options {
            min: 64 * 1024,
            avg: 256 * 1024,
            max: 1024 * 1024,
            workers: 2,
            level: 1,
        };
        let r = run(&[dir.path().to_path_buf()], &opts).unwrap();
        assert_eq!(r.files, 2);
        assert_eq!(r.bytes, big.len() as u64 + 11);
        assert!(r.chunks >= 4);
        assert!(r.compressed_bytes > big.len() as u64);
    }
}
