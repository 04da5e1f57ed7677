//! Blob encoding: a flag byte (0 raw, 1 zstd) before the payload, then sealed.

use crate::crypto::Keys;

pub const RAW: u8 = 0;
pub const ZSTD: u8 = 1;
/// A zstd-compressed row delta against the base blob (u64 LE delta length first).
pub const ZSTD_DELTA: u8 = 2;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    Data,
    Tree,
}

impl BlobKind {
    pub fn to_u8(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }
    pub fn from_u8(b: u8) -> Option<BlobKind> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// Compresses (when it helps) and seals a blob. `compressor` is reused per thread.
pub fn encode(keys: &Keys, compressor: &mut zstd::bulk::Compressor<'_>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(ZSTD);
    match compressor.compress(data) {
        Ok(c) if c.len() + 16 < data.len() => out.extend_from_slice(&c),
        _ => {
            out[0] = RAW;
            out.extend_from_slice(data);
        }
    }
    keys.seal(out)
}

/// Stores `data` as a row delta against `base` (see [`crate::rowdelta`]),
/// zstd-compressed and sealed. Falls back to plain encoding when the two are
/// not whole COPY rows or the delta does not help; the flag returned says
/// whether the result is a delta.
pub fn encode_delta(
    keys: &Keys,
    compressor: &mut zstd::bulk::Compressor<'_>,
    data: &[u8],
    base: &[u8],
) -> (Vec<u8>, bool) {
    if let Some(delta) = crate::rowdelta::encode(base, data) {
        if let Ok(c) = compressor.compress(&delta) {
            if c.len() + 16 < data.len() {
                let mut out = Vec::with_capacity(c.len() + 9);
                out.push(ZSTD_DELTA);
                out.extend_from_slice(&(delta.len() as u64).to_le_bytes());
                out.extend_from_slice(&c);
                return (keys.seal(out), true);
            }
        }
    }
    (encode(keys, compressor, data), false)
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Auth(#[from] crate::crypto::OpenError),
    #[error("unknown compression flag {0}")]
    Flag(u8),
    #[error("empty blob")]
    Empty,
    #[error("zstd: {0}")]
    Zstd(std::io::Error),
    #[error("delta blob without its base")]
    NoBase,
    #[error("delta does not apply to its base")]
    Delta,
    #[error("size mismatch: expected {expected} bytes, got {got}")]
    Size { expected: usize, got: usize },
}

/// Output allocated up front at most; larger claimed sizes are decompressed
/// as a stream, so memory follows what the data really expands to.
const PREALLOC_LIMIT: usize = 16 << 20;

/// Decompresses a zstd frame that must expand to at most `max` bytes.
fn decompress_at_most(payload: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    if max <= PREALLOC_LIMIT {
        // One decompression context per thread: creating one per blob was a
        // tenth of a restore's CPU time on small files.
        thread_local! {
            static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                const { std::cell::RefCell::new(None) };
        }
        return DCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new().map_err(DecodeError::Zstd)?);
            }
            let d = slot.as_mut().expect("decompressor was just created");
            d.decompress(payload, max).map_err(DecodeError::Zstd)
        });
    }
    use std::io::Read;
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(payload)
        .map_err(DecodeError::Zstd)?
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(DecodeError::Zstd)?;
    if out.len() > max {
        return Err(DecodeError::Size {
            expected: max,
            got: out.len(),
        });
    }
    Ok(out)
}

/// Opens and decompresses a blob whose plaintext is `raw_len` bytes long.
pub fn decode(keys: &Keys, sealed: &[u8], raw_len: usize) -> Result<Vec<u8>, DecodeError> {
    decode_with_base(keys, sealed, raw_len, None)
}

/// Like [`decode`], for blobs that may be deltas against `base`.
pub fn decode_with_base(
    keys: &Keys,
    sealed: &[u8],
    raw_len: usize,
    base: Option<&[u8]>,
) -> Result<Vec<u8>, DecodeError> {
    let plain = keys.open(sealed)?;
    let (&flag, payload) = plain.split_first().ok_or(DecodeError::Empty)?;
    let data = match flag {
        RAW => payload.to_vec(),
        ZSTD => decompress_at_most(payload, raw_len)?,
        ZSTD_DELTA => {
            let base = base.ok_or(DecodeError::NoBase)?;
            if payload.len() < 8 {
                return Err(DecodeError::Delta);
            }
            let delta_len = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes")) as usize;
            // A delta is never much larger than what it encodes.
            if delta_len > raw_len.saturating_mul(2) + 4096 {
                return Err(DecodeError::Delta);
            }
            let delta = decompress_at_most(&payload[8..], delta_len)?;
            crate::rowdelta::decode(base, &delta, raw_len).ok_or(DecodeError::Delta)?
        }
        other => return Err(DecodeError::Flag(other)),
    };
    if data.len() != raw_len {
        return Err(DecodeError::Size {
            expected: raw_len,
            got: data.len(),
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_sizes_beyond_the_data_are_refused_without_allocating_them() {
        let keys = Keys::plain([1; 32]);
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        let data = vec![7u8; 100_000];
        let sealed = encode(&keys, &mut c, &data);
        assert_eq!(decode(&keys, &sealed, data.len()).unwrap(), data);
        // A raw length of 4 GiB from a damaged index: streamed, then refused.
        let err = decode(&keys, &sealed, u32::MAX as usize).unwrap_err();
        assert!(matches!(err, DecodeError::Size { .. }), "{err}");
        assert!(decode(&keys, &sealed, data.len() - 1).is_err());
        // A zstd bomb: 1 MiB of zeros claimed to be 100 bytes.
        let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 3).unwrap();
        let mut stored = vec![ZSTD];
        stored.extend_from_slice(&bomb);
        assert!(decode(&keys, &stored, 100).is_err());
    }
}
