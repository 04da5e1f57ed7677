//! A snapshot manifest: the stored file (zstd, bounded expansion) and the
//! JSON inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripcord_repo::crypto::Keys;
use ripcord_repo::manifest::Snapshot;
use ripcord_repo::repo::open_small_file;

fuzz_target!(|data: &[u8]| {
    let keys = Keys::plain([7; 32]);
    if let Ok(plain) = open_small_file(&keys, data) {
        let _ = serde_json::from_slice::<Snapshot>(&plain);
    }
    let _ = serde_json::from_slice::<Snapshot>(data);
});
