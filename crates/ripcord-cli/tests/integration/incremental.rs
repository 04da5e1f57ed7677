//! A re-snapshot reads only what changed.

use ripcord_testing::data::{self, write_file, LARGE_SIZE};

use crate::common::*;

/// Tree blobs of the standard tree are a few KiB; anything above this means
/// file content was handed to the repository.
const TREES_ONLY: u64 = 64 << 10;

#[test]
fn unchanged_resnapshot_does_not_reread_files() {
    let s = DirSetup::new(10);
    let n = s.layout.files.len() as u64;

    let first = s.ws.snapshot(&[] as &[&str]);
    assert_eq!(u64_of(&first["files"], "files"), n, "{first}");
    assert_eq!(u64_of(&first["unchanged_files"], "unchanged"), 0, "{first}");
    assert!(
        u64_of(&first["stats"]["read_bytes"], "bytes_in") >= LARGE_SIZE as u64,
        "first snapshot reads everything: {first}"
    );

    let second = s.ws.snapshot(&[] as &[&str]);
    assert_eq!(u64_of(&second["files"], "files"), n, "{second}");
    assert_eq!(
        u64_of(&second["unchanged_files"], "unchanged"),
        n,
        "every file is unchanged: {second}"
    );
    let stats = &second["stats"];
    assert!(
        u64_of(&stats["read_bytes"], "bytes_in") < TREES_ONLY,
        "files were read again: {second}"
    );
    assert!(
        u64_of(&stats["new_bytes"], "new_bytes") < TREES_ONLY,
        "{second}"
    );
    assert_eq!(
        u64_of(&second["recovered_packs"], "recovered"),
        0,
        "{second}"
    );
    assert_ne!(first["snapshot"], second["snapshot"]);
    assert_eq!(first["bytes"], second["bytes"]);

    // One changed file: only it is read.
    let changed = data::text(99, 30_000);
    write_file(&s.app.join("src/lib.rs"), &changed);
    let third = s.ws.snapshot(&[] as &[&str]);
    assert_eq!(
        u64_of(&third["unchanged_files"], "unchanged"),
        n - 1,
        "{third}"
    );
    let bytes_in = u64_of(&third["stats"]["read_bytes"], "bytes_in");
    assert!(
        bytes_in >= changed.len() as u64 && bytes_in < changed.len() as u64 + TREES_ONLY,
        "expected only src/lib.rs ({} bytes) to be read: {third}",
        changed.len()
    );
    let new_bytes = u64_of(&third["stats"]["new_bytes"], "new_bytes");
    assert!(
        new_bytes >= changed.len() as u64 && new_bytes < changed.len() as u64 + TREES_ONLY,
        "{third}"
    );

    // A touched but identical large file is read again, and deduplicated.
    data::set_mtime(&s.app.join(&s.layout.large), 1_700_000_000, 5);
    let fourth = s.ws.snapshot(&[] as &[&str]);
    assert_eq!(
        u64_of(&fourth["unchanged_files"], "unchanged"),
        n - 1,
        "{fourth}"
    );
    assert!(
        u64_of(&fourth["stats"]["read_bytes"], "bytes_in") >= LARGE_SIZE as u64,
        "{fourth}"
    );
    assert!(
        u64_of(&fourth["stats"]["new_bytes"], "new_bytes") < TREES_ONLY,
        "identical content is stored once: {fourth}"
    );

    // Each snapshot restores to what it saw.
    let expected = s.expected();
    assert_restores_to(
        &s.ws,
        fourth["snapshot"].as_str().unwrap(),
        &expected,
        "fourth",
    );
}
