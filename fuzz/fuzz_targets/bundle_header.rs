//! One VM bundle chunk header (512 bytes). A header that parses must
//! describe a chunk that `header()` writes back and parses to the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvmadm::ops::bundle::{header, parse_header, BLOCK};

fuzz_target!(|data: &[u8]| {
    let mut h = [0u8; BLOCK];
    let n = data.len().min(BLOCK);
    h[..n].copy_from_slice(&data[..n]);
    let Ok(chunk) = parse_header(&h) else {
        return;
    };
    assert_eq!(chunk.padded % BLOCK, 0);
    assert!(chunk.padded >= chunk.size && chunk.padded - chunk.size < BLOCK);
    let again = header(&chunk.name, chunk.size);
    let back = parse_header(&again).expect("a header we wrote parses");
    assert_eq!(back, chunk);
    // The reader takes the same bytes the same way.
    let read = rvmadm::ops::bundle::next_header(&mut &h[..]).expect("parsed above");
    assert_eq!(read, Some(chunk));
});
