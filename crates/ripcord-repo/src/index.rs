//! The blob index: where each blob lives.
//!
//! On disk, `index/<id>` files are sealed, zstd-compressed lists of
//! `pack id [32] | count u32 | count × pack entry`. In memory the index is one
//! sorted `Vec` of fixed-size entries plus the pack table: no heap object per
//! blob (R11), about 48 bytes per blob.

use std::collections::HashMap;

use crate::blob::BlobKind;
use crate::pack::{decode_entries_n, encode_entries, PackEntry};
use crate::Id;

#[derive(Clone, Copy, Debug)]
struct Entry {
    id: Id,
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    kind: BlobKind,
}

/// Where one blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: Id,
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    pub base: Option<Id>,
}

#[derive(Default)]
pub struct Index {
    packs: Vec<Id>,
    pack_pos: HashMap<Id, u32>,
    entries: Vec<Entry>,
    /// Delta blobs and their bases; few, so kept apart from the compact table.
    bases: HashMap<Id, Id>,
    sorted: bool,
}

impl Index {
    pub fn new() -> Index {
        Index {
            sorted: true,
            ..Default::default()
        }
    }

    pub fn add_pack(&mut self, pack: Id, entries: &[PackEntry]) {
        let pos = *self.pack_pos.entry(pack).or_insert_with(|| {
            self.packs.push(pack);
            (self.packs.len() - 1) as u32
        });
        for e in entries {
            if let Some(b) = e.base {
                self.bases.insert(e.id, b);
            }
        }
        self.entries.extend(entries.iter().map(|e| Entry {
            id: e.id,
            pack: pos,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
            kind: e.kind,
        }));
        self.sorted = false;
    }

    /// Sorts for lookup. Duplicates (the same blob in two packs) are kept: the
    /// first is used, the others still count for verify and prune.
    pub fn finalize(&mut self) {
        if !self.sorted {
            self.entries
                .sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.pack.cmp(&b.pack)));
            self.entries.shrink_to_fit();
            self.sorted = true;
        }
    }

    fn position(&self, id: &Id) -> Option<usize> {
        debug_assert!(self.sorted, "index used before finalize()");
        let i = self.entries.partition_point(|e| e.id < *id);
        (i < self.entries.len() && self.entries[i].id == *id).then_some(i)
    }

    pub fn get(&self, id: &Id) -> Option<Location> {
        self.position(id).map(|i| self.location(&self.entries[i]))
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.position(id).is_some()
    }

    fn location(&self, e: &Entry) -> Location {
        Location {
            pack: self.packs[e.pack as usize],
            kind: e.kind,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
            base: self.bases.get(&e.id).copied(),
        }
    }

    /// The base a delta blob needs, if it is one.
    pub fn base_of(&self, id: &Id) -> Option<Id> {
        self.bases.get(id).copied()
    }

    pub fn has_pack(&self, pack: &Id) -> bool {
        self.pack_pos.contains_key(pack)
    }

    pub fn packs(&self) -> &[Id] {
        &self.packs
    }

    pub fn blob_count(&self) -> usize {
        self.entries.len()
    }

    /// Every (blob id, location), duplicates included, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (Id, Location)> + '_ {
        self.entries.iter().map(|e| (e.id, self.location(e)))
    }

    /// Entries grouped per pack, in pack-offset order.
    pub fn by_pack(&self) -> HashMap<Id, Vec<PackEntry>> {
        let mut out: HashMap<Id, Vec<PackEntry>> = HashMap::new();
        for e in &self.entries {
            out.entry(self.packs[e.pack as usize])
                .or_default()
                .push(PackEntry {
                    kind: e.kind,
                    id: e.id,
                    offset: e.offset,
                    length: e.length,
                    raw_length: e.raw_length,
                    base: self.bases.get(&e.id).copied(),
                });
        }
        for v in out.values_mut() {
            v.sort_by_key(|e| e.offset);
        }
        out
    }
}

/// Serializes the plaintext of one index file.
pub fn encode_file(packs: &[(Id, Vec<PackEntry>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, entries) in packs {
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&encode_entries(entries));
    }
    out
}

pub fn decode_file(mut bytes: &[u8]) -> Result<Vec<(Id, Vec<PackEntry>)>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 36 {
            return Err("index file ends inside a pack record".into());
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes[..32]);
        let n = u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes")) as usize;
        let (entries, rest) = decode_entries_n(&bytes[36..], n)?;
        out.push((Id(id), entries));
        bytes = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_after_finalize() {
        let mut idx = Index::new();
        let entry = |n: u8, off| PackEntry {
            kind: BlobKind::Data,
            id: Id([n; 32]),
            offset: off,
            length: 10,
            raw_length: 20,
            base: None,
        };
        idx.add_pack(Id([9; 32]), &[entry(3, 0), entry(1, 10)]);
        idx.add_pack(Id([8; 32]), &[entry(2, 0)]);
        idx.finalize();
        assert_eq!(idx.get(&Id([1; 32])).unwrap().pack, Id([9; 32]));
        assert_eq!(idx.get(&Id([2; 32])).unwrap().pack, Id([8; 32]));
        assert!(idx.get(&Id([4; 32])).is_none());
        let file = encode_file(&[(Id([9; 32]), vec![entry(3, 0)])]);
        assert_eq!(decode_file(&file).unwrap()[0].1[0], entry(3, 0));
        assert!(decode_file(&file[..file.len() - 1]).is_err());
    }

    #[test]
    fn entry_count_0xffffffff_is_refused_before_allocating() {
        let mut file = vec![9; 32];
        file.extend_from_slice(&u32::MAX.to_le_bytes());
        file.extend_from_slice(&[0; 45]);
        let err = decode_file(&file).unwrap_err();
        assert!(err.contains("4294967295 entries announced"), "{err}");
    }
}
