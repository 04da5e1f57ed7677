//! The write pipeline: deduplicate, compress, encrypt and pack blobs.
//!
//! The caller (a target reading files or a database) chunks and hashes on its
//! own thread and hands new blobs to [`Saver::save`]. Worker threads compress
//! and seal them and append them to the open pack; whoever fills a pack writes
//! it. Index files are written every [`INDEX_EVERY`] packs and at the end, so
//! an interrupted run loses little and the next one reuses what was uploaded.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};

use crate::blob::{self, BlobKind};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::pack::{self, PackEntry, PackWriter};
use crate::repo::Repository;
use crate::Id;

const INDEX_EVERY: usize = 32;

#[derive(Clone, Copy, Debug)]
pub struct SaverOptions {
    pub compression: i32,
    /// Worker threads; 0 means one per core.
    pub jobs: usize,
}

impl Default for SaverOptions {
    fn default() -> Self {
        SaverOptions {
            compression: 1,
            jobs: 0,
        }
    }
}

/// Totals for what one run wrote.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
pub struct SaveStats {
    /// Bytes handed to the saver, duplicates included.
    #[serde(rename = "read_bytes")]
    pub bytes_in: u64,
    /// Plaintext bytes of blobs that were new.
    pub new_bytes: u64,
    /// Bytes written to packs (compressed and sealed).
    pub stored_bytes: u64,
    pub new_blobs: u64,
    pub packs: u64,
}

struct Job {
    kind: BlobKind,
    id: Id,
    data: Vec<u8>,
    /// Store as a delta against this (already stored, non-delta) blob.
    base: Option<Id>,
}

struct Shared {
    repo: Repository,
    known: Arc<Index>,
    state: Mutex<State>,
    failure: Mutex<Option<Error>>,
    bytes_in: AtomicU64,
    new_bytes: AtomicU64,
    stored_bytes: AtomicU64,
    new_blobs: AtomicU64,
    packs: AtomicU64,
}

#[derive(Default)]
struct State {
    pending: HashSet<Id>,
    pack: PackWriter,
    unindexed: Vec<(Id, Vec<PackEntry>)>,
}

pub struct Saver {
    shared: Arc<Shared>,
    tx: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Saver {
    pub fn new(repo: &Repository, known: Arc<Index>, opts: SaverOptions) -> Saver {
        let jobs = if opts.jobs == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            opts.jobs
        };
        let shared = Arc::new(Shared {
            repo: repo.clone(),
            known,
            state: Mutex::new(State::default()),
            failure: Mutex::new(None),
            bytes_in: AtomicU64::new(0),
            new_bytes: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
            new_blobs: AtomicU64::new(0),
            packs: AtomicU64::new(0),
        });
        // Bounded so memory stays flat when workers fall behind the reader.
        let (tx, rx) = bounded::<Job>(jobs * 2);
        let workers = (0..jobs)
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let mut compressor =
                        zstd::bulk::Compressor::new(opts.compression).expect("valid zstd level");
                    for job in rx {
                        if let Err(e) = shared.store(&mut compressor, job) {
                            shared.fail(e);
                        }
                    }
                })
            })
            .collect();
        Saver {
            shared,
            tx: Some(tx),
            workers,
        }
    }

    pub fn repo(&self) -> &Repository {
        &self.shared.repo
    }

    /// The index of what was stored before this run.
    pub fn known(&self) -> &Index {
        &self.shared.known
    }

    /// Is this blob already stored (or on its way)?
    pub fn is_known(&self, id: &Id) -> bool {
        self.shared.known.contains(id)
            || self
                .shared
                .state
                .lock()
                .expect("saver lock")
                .pending
                .contains(id)
    }

    /// Stores `data` unless an identical blob exists. Returns its id.
    pub fn save(&self, kind: BlobKind, data: Vec<u8>) -> Result<Id> {
        let id = self.shared.repo.keys().blob_id(&data);
        self.save_with_id(kind, id, data)?;
        Ok(id)
    }

    pub fn save_with_id(&self, kind: BlobKind, id: Id, data: Vec<u8>) -> Result<()> {
        self.enqueue(kind, id, data, None)
    }

    /// Stores a data blob, as a delta against `base` when that is smaller.
    /// `base` must be in the index the saver was given; if it is itself a
    /// delta, its own base is used, so decoding never needs more than one step.
    pub fn save_delta(&self, data: Vec<u8>, base: Id) -> Result<Id> {
        let id = self.shared.repo.keys().blob_id(&data);
        let base = self.shared.known.base_of(&base).unwrap_or(base);
        let base = (base != id && self.shared.known.contains(&base)).then_some(base);
        self.enqueue(BlobKind::Data, id, data, base)?;
        Ok(id)
    }

    fn enqueue(&self, kind: BlobKind, id: Id, data: Vec<u8>, base: Option<Id>) -> Result<()> {
        self.shared.check()?;
        self.shared
            .bytes_in
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if self.shared.known.contains(&id)
            || !self
                .shared
                .state
                .lock()
                .expect("saver lock")
                .pending
                .insert(id)
        {
            return Ok(());
        }
        self.tx
            .as_ref()
            .expect("saver is open")
            .send(Job {
                kind,
                id,
                data,
                base,
            })
            .map_err(|_| Error::Invalid("the write pipeline stopped".into()))?;
        Ok(())
    }

    pub fn stats(&self) -> SaveStats {
        let s = &self.shared;
        SaveStats {
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            new_bytes: s.new_bytes.load(Ordering::Relaxed),
            stored_bytes: s.stored_bytes.load(Ordering::Relaxed),
            new_blobs: s.new_blobs.load(Ordering::Relaxed),
            packs: s.packs.load(Ordering::Relaxed),
        }
    }

    /// Waits for the workers, writes the last pack and the index. After this
    /// returns, every saved blob is durable and indexed.
    pub fn finish(mut self) -> Result<SaveStats> {
        self.tx.take();
        for w in self.workers.drain(..) {
            w.join()
                .map_err(|_| Error::Invalid("a write worker panicked".into()))?;
        }
        self.shared.check()?;
        let last = std::mem::take(&mut self.shared.state.lock().expect("saver lock").pack);
        if !last.is_empty() {
            self.shared.write_pack(last)?;
        }
        let rest = std::mem::take(&mut self.shared.state.lock().expect("saver lock").unindexed);
        if !rest.is_empty() {
            self.shared.repo.save_index(&rest)?;
        }
        Ok(self.stats())
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Shared {
    fn check(&self) -> Result<()> {
        match self.failure.lock().expect("saver lock").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn fail(&self, e: Error) {
        let mut f = self.failure.lock().expect("saver lock");
        if f.is_none() {
            *f = Some(e);
        }
    }

    fn store(&self, compressor: &mut zstd::bulk::Compressor<'_>, job: Job) -> Result<()> {
        let mut base = job.base;
        let sealed = match job.base {
            Some(b) => {
                let base_data = self.repo.read_blob(&self.known, &b)?;
                let (sealed, delta) =
                    blob::encode_delta(self.repo.keys(), compressor, &job.data, &base_data);
                if !delta {
                    base = None;
                }
                sealed
            }
            None => blob::encode(self.repo.keys(), compressor, &job.data),
        };
        self.new_bytes
            .fetch_add(job.data.len() as u64, Ordering::Relaxed);
        self.new_blobs.fetch_add(1, Ordering::Relaxed);
        let full = {
            let mut st = self.state.lock().expect("saver lock");
            st.pack.add(job.kind, job.id, &sealed, job.data.len(), base);
            if st.pack.len() >= pack::TARGET_SIZE {
                Some(std::mem::take(&mut st.pack))
            } else {
                None
            }
        };
        match full {
            Some(p) => self.write_pack(p),
            None => Ok(()),
        }
    }

    fn write_pack(&self, writer: PackWriter) -> Result<()> {
        let finished = writer.finish(self.repo.keys());
        let path = pack::path(&finished.id);
        self.repo
            .backend()
            .put_if_absent(&path, &finished.bytes)
            .map_err(|e| Error::io(format!("cannot write {path}"), e))?;
        self.stored_bytes
            .fetch_add(finished.bytes.len() as u64, Ordering::Relaxed);
        self.packs.fetch_add(1, Ordering::Relaxed);
        ripcord_core::failpoint::hit("pack-written");
        let flush = {
            let mut st = self.state.lock().expect("saver lock");
            st.unindexed.push((finished.id, finished.entries));
            if st.unindexed.len() >= INDEX_EVERY {
                Some(std::mem::take(&mut st.unindexed))
            } else {
                None
            }
        };
        if let Some(packs) = flush {
            self.repo.save_index(&packs)?;
        }
        Ok(())
    }
}
