//! A tree blob, decoded as `Repository::load_tree` decodes it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripcord_repo::manifest::Tree;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = serde_json::from_slice::<Tree>(data) {
        let _ = serde_json::to_vec(&tree).expect("a decoded tree encodes");
    }
});
