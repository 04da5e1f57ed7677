//! Content-defined chunking of byte streams into blobs (R2).

use std::io::Read;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::manifest::Stream;
use crate::saver::Saver;

/// Chunks `reader` with FastCDC, stores new chunks and returns the stream
/// (its chunk ids, size and BLAKE3 checksum). `progress` gets byte counts.
pub fn save_stream(
    saver: &Saver,
    reader: impl Read,
    what: &str,
    progress: &dyn Fn(u64),
) -> Result<Stream> {
    let p = &saver.repo().config().chunker;
    let mut hasher = blake3::Hasher::new();
    let mut stream = Stream::default();
    for chunk in fastcdc::v2020::StreamCDC::new(reader, p.min, p.avg, p.max) {
        let chunk = chunk.map_err(|e| Error::io(format!("cannot read {what}"), to_io(e)))?;
        hasher.update(&chunk.data);
        stream.size += chunk.data.len() as u64;
        progress(chunk.data.len() as u64);
        stream.chunks.push(saver.save(BlobKind::Data, chunk.data)?);
    }
    stream.checksum = hasher.finalize().to_hex().to_string();
    Ok(stream)
}

fn to_io(e: fastcdc::v2020::Error) -> std::io::Error {
    match e {
        fastcdc::v2020::Error::IoError(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}
