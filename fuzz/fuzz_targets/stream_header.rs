//! The first record of a ZFS send stream, as receive and image import
//! judge it; seeded with real records so mutations stay near the format.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvmadm::zfs::stream_header::{check, read_begin, Expect, BEGIN_LEN};

fuzz_target!(|data: &[u8]| {
    let head = read_begin(&mut &data[..]).expect("a slice reads");
    assert_eq!(head.len(), data.len().min(BEGIN_LEN));
    for expect in [Expect::Full, Expect::Incremental] {
        if let Ok(b) = check(&head, expect) {
            assert!(b.to_name.contains('@'));
            assert!(!b.to_name.chars().any(char::is_control));
            assert_eq!(b.from_guid.is_some(), expect == Expect::Incremental);
        }
        if let Err(e) = check(&head, expect) {
            let _ = e.to_string();
        }
    }
});
