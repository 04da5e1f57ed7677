//! A pack's trailer and header entries, as read from an unencrypted pack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripcord_repo::crypto::Keys;
use ripcord_repo::pack;

fuzz_target!(|data: &[u8]| {
    let keys = Keys::plain([7; 32]);
    if let Ok(entries) = pack::parse_trailer(&keys, data) {
        let data_end = data.len() - 4;
        for e in entries {
            assert!(e.offset as usize + e.length as usize <= data_end);
        }
    }
    let _ = pack::decode_entries(data);
});
