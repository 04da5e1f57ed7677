//! Packs: many sealed blobs in one file, followed by their own index.
//!
//! Layout: `blob… | sealed header | u32 LE length of the sealed header`. The
//! header lists every blob as `kind u8 | id [32] | offset u32 | length u32 |
//! raw_length u32` (little endian), so the repository index can always be
//! rebuilt from the packs alone. A pack is named by the BLAKE3 of its bytes.

use crate::blob::BlobKind;
use crate::crypto::Keys;
use crate::Id;

/// Packs are cut once they reach this size.
pub const TARGET_SIZE: usize = 16 << 20;
const ENTRY_LEN: usize = 1 + 32 + 4 + 4 + 4;
/// Kind byte of a data blob stored as a delta; its entry ends with the base id.
const DATA_DELTA: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: Id,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    /// For a delta: the blob whose plaintext it is compressed against.
    pub base: Option<Id>,
}

#[derive(Default)]
pub struct PackWriter {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

pub struct FinishedPack {
    pub id: Id,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

impl PackWriter {
    pub fn new() -> PackWriter {
        PackWriter::default()
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn add(
        &mut self,
        kind: BlobKind,
        id: Id,
        sealed: &[u8],
        raw_length: usize,
        base: Option<Id>,
    ) {
        if self.buf.capacity() == 0 {
            // Room for the blob that crosses the target and the header.
            self.buf.reserve(TARGET_SIZE + (5 << 20));
        }
        self.entries.push(PackEntry {
            kind,
            id,
            offset: self.buf.len() as u32,
            length: sealed.len() as u32,
            raw_length: raw_length as u32,
            base,
        });
        self.buf.extend_from_slice(sealed);
    }
    pub fn finish(self, keys: &Keys) -> FinishedPack {
        let mut bytes = self.buf;
        let header = keys.seal(encode_entries(&self.entries));
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        FinishedPack {
            id: Id::of_file(&bytes),
            bytes,
            entries: self.entries,
        }
    }
}

pub fn encode_entries(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in entries {
        out.push(if e.base.is_some() {
            DATA_DELTA
        } else {
            e.kind.to_u8()
        });
        out.extend_from_slice(&e.id.0);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_length.to_le_bytes());
        if let Some(b) = e.base {
            out.extend_from_slice(&b.0);
        }
    }
    out
}

/// Decodes `count` entries from the front of `bytes`; returns them and the rest.
/// The count is checked against the bytes there before anything is allocated.
pub fn decode_entries_n(mut bytes: &[u8], count: usize) -> Result<(Vec<PackEntry>, &[u8]), String> {
    if count > bytes.len() / ENTRY_LEN {
        return Err(format!(
            "{count} entries announced but only {} bytes follow",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (e, rest) = decode_entry(bytes)?;
        out.push(e);
        bytes = rest;
    }
    Ok((out, bytes))
}

fn decode_entry(c: &[u8]) -> Result<(PackEntry, &[u8]), String> {
    if c.len() < ENTRY_LEN {
        return Err("entry list ends inside an entry".into());
    }
    let (kind, delta) = match c[0] {
        DATA_DELTA => (BlobKind::Data, true),
        k => (
            BlobKind::from_u8(k).ok_or_else(|| format!("unknown blob kind {k}"))?,
            false,
        ),
    };
    let u32_at = |i: usize| u32::from_le_bytes(c[i..i + 4].try_into().expect("4 bytes"));
    let mut id = [0u8; 32];
    id.copy_from_slice(&c[1..33]);
    let mut len = ENTRY_LEN;
    let base = if delta {
        if c.len() < ENTRY_LEN + 32 {
            return Err("entry list ends inside a delta entry".into());
        }
        let mut b = [0u8; 32];
        b.copy_from_slice(&c[ENTRY_LEN..ENTRY_LEN + 32]);
        len += 32;
        Some(Id(b))
    } else {
        None
    };
    Ok((
        PackEntry {
            kind,
            id: Id(id),
            offset: u32_at(33),
            length: u32_at(37),
            raw_length: u32_at(41),
            base,
        },
        &c[len..],
    ))
}

pub fn decode_entries(mut bytes: &[u8]) -> Result<Vec<PackEntry>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (e, rest) = decode_entry(bytes)?;
        out.push(e);
        bytes = rest;
    }
    Ok(out)
}

/// Reads a pack's trailer: the header length, then the sealed header.
pub fn read_header(
    backend: &dyn crate::backend::Backend,
    keys: &Keys,
    path: &str,
) -> Result<Vec<PackEntry>, String> {
    let size = backend.size(path).map_err(|e| e.to_string())?;
    if size < 4 {
        return Err(format!("pack is only {size} bytes long"));
    }
    let len_bytes = backend
        .get_range(path, size - 4, 4)
        .map_err(|e| e.to_string())?;
    let hlen = u32::from_le_bytes(len_bytes[..4].try_into().expect("4 bytes")) as u64;
    if hlen + 4 > size {
        return Err(format!(
            "pack header length {hlen} exceeds pack size {size} (truncated pack?)"
        ));
    }
    let sealed = backend
        .get_range(path, size - 4 - hlen, hlen)
        .map_err(|e| e.to_string())?;
    let plain = keys
        .open(&sealed)
        .map_err(|e| format!("pack header: {e}"))?;
    let entries = decode_entries(&plain)?;
    let data_end = size - 4 - hlen;
    for e in &entries {
        if e.offset as u64 + e.length as u64 > data_end {
            return Err(format!("blob {} lies outside the pack", e.id.short()));
        }
    }
    Ok(entries)
}

/// Parses a whole pack held in memory and checks that its name matches its bytes.
pub fn parse_full(keys: &Keys, id: Id, bytes: &[u8]) -> Result<Vec<PackEntry>, String> {
    if Id::of_file(bytes) != id {
        return Err("content does not match its name (modified or truncated)".into());
    }
    parse_trailer(keys, bytes)
}

/// Reads the header at the end of a pack held in memory; every entry is
/// checked to lie inside the pack's data.
pub fn parse_trailer(keys: &Keys, bytes: &[u8]) -> Result<Vec<PackEntry>, String> {
    if bytes.len() < 4 {
        return Err("pack is too short".into());
    }
    let hlen = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes")) as usize;
    if hlen + 4 > bytes.len() {
        return Err("pack header length exceeds pack size".into());
    }
    let start = bytes.len() - 4 - hlen;
    let plain = keys
        .open(&bytes[start..bytes.len() - 4])
        .map_err(|e| format!("pack header: {e}"))?;
    let entries = decode_entries(&plain)?;
    for e in &entries {
        if e.offset as usize + e.length as usize > start {
            return Err(format!("blob {} lies outside the pack", e.id.short()));
        }
    }
    Ok(entries)
}

pub fn path(id: &Id) -> String {
    let hex = id.to_hex();
    format!("data/{}/{}", &hex[..2], hex)
}
