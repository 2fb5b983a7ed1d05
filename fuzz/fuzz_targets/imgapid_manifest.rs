//! The body imgapid accepts on `POST /images` and `?action=import`: a
//! manifest it accepts must serialise and read back the same, still valid.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = imgapid::fuzzing::manifest_body(data) {
        let text = serde_json::to_vec(&m).expect("a manifest serialises");
        let back = imgapid::fuzzing::manifest_body(&text)
            .unwrap_or_else(|e| panic!("imgapid refuses what it accepted: {e}"));
        assert_eq!(back, m);
    }
});
