//! Blob encoding: a flag byte (0 raw, 1 zstd) before the payload, then sealed.

use crate::crypto::Keys;

pub const RAW: u8 = 0;
pub const ZSTD: u8 = 1;

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
    #[error("size mismatch: expected {expected} bytes, got {got}")]
    Size { expected: usize, got: usize },
}

/// Opens and decompresses a blob whose plaintext is `raw_len` bytes long.
pub fn decode(keys: &Keys, sealed: &[u8], raw_len: usize) -> Result<Vec<u8>, DecodeError> {
    let plain = keys.open(sealed)?;
    let (&flag, payload) = plain.split_first().ok_or(DecodeError::Empty)?;
    let data = match flag {
        RAW => payload.to_vec(),
        ZSTD => zstd::bulk::decompress(payload, raw_len).map_err(DecodeError::Zstd)?,
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
