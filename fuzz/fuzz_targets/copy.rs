//! The PostgreSQL binary COPY scanner, fed in pieces: the first byte sets
//! the piece size, and any split must give the same result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripcord_targets::postgres::copy::Scanner;

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let mut whole = Scanner::new();
    whole.feed(stream);
    let mut pieces = Scanner::new();
    for piece in stream.chunks(split as usize + 1) {
        pieces.feed(piece);
        for &(end, _) in &pieces.boundaries {
            assert!(end <= piece.len());
        }
    }
    assert_eq!(whole.finish().ok(), pieces.finish().ok());
});
