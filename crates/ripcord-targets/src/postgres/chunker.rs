//! Chunking binary COPY data at row boundaries.
//!
//! Boundaries are content-defined like FastCDC's, but chosen only between
//! rows: after a row whose hash falls in a window proportional to its
//! length, so chunks average [`AVG`] bytes whatever the row width. A changed
//! row then changes one chunk, and every chunk is whole rows, which lets it
//! be stored as a row delta against its predecessor (see
//! `ripcord_repo::rowdelta`).

use ripcord_repo::blob::BlobKind;
use ripcord_repo::index::Index;
use ripcord_repo::manifest::Stream;
use ripcord_repo::saver::Saver;
use ripcord_repo::Id;

use super::copy::Scanner;
use crate::error::Result;

const MIN: usize = 256 << 10;
const AVG: u64 = 1 << 20;
const MAX: usize = 4 << 20;

pub struct RowChunker<'a> {
    saver: &'a Saver,
    buf: Vec<u8>,
    stream: Stream,
    /// Start offset, length and id of the previous version's chunks.
    bases: Vec<(u64, u64, Id)>,
    progress: &'a dyn Fn(u64),
    /// Bytes of the current row pushed before the last boundary.
    carried: u64,
    /// Where this stream's offsets sit in the previous version's: rows
    /// deleted earlier in the table shift everything after them.
    drift: i64,
}

impl<'a> RowChunker<'a> {
    pub fn new(
        saver: &'a Saver,
        parent: Option<(&Stream, &Index)>,
        progress: &'a dyn Fn(u64),
    ) -> RowChunker<'a> {
        let mut bases = Vec::new();
        if let Some((stream, index)) = parent {
            let mut at = 0;
            for c in &stream.chunks {
                let Some(loc) = index.get(c) else { break };
                bases.push((at, loc.raw_length as u64, *c));
                at += loc.raw_length as u64;
            }
        }
        RowChunker {
            saver,
            buf: Vec::with_capacity(MAX + (1 << 20)),
            stream: Stream::default(),
            bases,
            progress,
            carried: 0,
            drift: 0,
        }
    }

    /// Adds the next bytes of the COPY stream, scanning them with `scanner`.
    pub fn push(&mut self, data: &[u8], scanner: &mut Scanner) -> Result<()> {
        scanner.feed(data);
        let mut start = 0;
        for &(end, hash) in &scanner.boundaries {
            self.buf.extend_from_slice(&data[start..end]);
            let row_len = self.carried + (end - start) as u64;
            self.carried = 0;
            start = end;
            let cut = self.buf.len() >= MIN && hash % AVG < row_len.max(1);
            if cut || self.buf.len() >= MAX {
                self.emit()?;
            }
        }
        self.buf.extend_from_slice(&data[start..]);
        self.carried += (data.len() - start) as u64;
        // A single row larger than MAX still has to be cut somewhere.
        if self.buf.len() >= 4 * MAX {
            self.emit()?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Stream> {
        if !self.buf.is_empty() {
            self.emit()?;
        }
        // No whole-stream checksum: the table's row checksum covers the data,
        // and a second hash pass over every byte would cost more than the copy.
        Ok(self.stream)
    }

    /// The previous chunk that overlaps `[offset, offset + len)` (shifted by
    /// the drift seen so far) the most. Chunks end at content-defined rows, so
    /// a chunk usually ends where its base ended: that updates the drift.
    fn base_for(&mut self, offset: u64, len: u64) -> Option<Id> {
        let start = offset.saturating_add_signed(self.drift);
        let end = start + len;
        let i = self.bases.partition_point(|(at, _, _)| *at <= start);
        let (at, l, id) = *self.bases[i.saturating_sub(1)..(i + 2).min(self.bases.len())]
            .iter()
            .max_by_key(|(at, l, _)| (at + l).min(end).saturating_sub(*at.max(&start)))?;
        self.drift = (at + l) as i64 - (offset + len) as i64;
        Some(id)
    }

    fn emit(&mut self) -> Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(MAX + (1 << 20)));
        let offset = self.stream.size;
        self.stream.size += data.len() as u64;
        (self.progress)(data.len() as u64);
        let id = match self.base_for(offset, data.len() as u64) {
            None => self.saver.save(BlobKind::Data, data)?,
            Some(base) => self.saver.save_delta(data, base)?,
        };
        self.stream.chunks.push(id);
        Ok(())
    }
}
