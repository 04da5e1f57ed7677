//! Row deltas and the blob decoder that applies them. Input: base length
//! (u16 LE), claimed raw length (u16 LE), the base, then the stored blob
//! (flag byte and payload of an unencrypted repository).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripcord_repo::crypto::Keys;
use ripcord_repo::{blob, rowdelta};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let base_len = u16::from_le_bytes([data[0], data[1]]) as usize;
    let raw_len = u16::from_le_bytes([data[2], data[3]]) as usize;
    let rest = &data[4..];
    let (base, delta) = rest.split_at(base_len.min(rest.len()));
    let _ = rowdelta::items(base);
    if let Some(out) = rowdelta::decode(base, delta, raw_len) {
        assert!(out.len() <= raw_len);
    }
    let keys = Keys::plain([7; 32]);
    if let Ok(out) = blob::decode_with_base(&keys, delta, raw_len, Some(base)) {
        assert_eq!(out.len(), raw_len);
    }
    if let Some(d) = rowdelta::encode(base, delta) {
        assert_eq!(rowdelta::decode(base, &d, delta.len()).as_deref(), Some(delta));
    }
});
