//! The plaintext of an index file, then the in-memory index built from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripcord_repo::index::{self, Index};

fuzz_target!(|data: &[u8]| {
    if let Ok(packs) = index::decode_file(data) {
        let mut idx = Index::new();
        for (pack, entries) in &packs {
            idx.add_pack(*pack, entries);
        }
        idx.finalize();
        for (_, entries) in &packs {
            for e in entries {
                assert!(idx.contains(&e.id));
            }
        }
        // What decodes encodes back to the same bytes.
        assert_eq!(index::encode_file(&packs), data);
    }
});
