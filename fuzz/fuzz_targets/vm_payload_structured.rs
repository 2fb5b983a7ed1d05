//! Payload objects built from the property tables with values of every
//! type, so the checks of each property are reached without the fuzzer
//! learning JSON first.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = arbitrary::Unstructured::new(data);
    if let Ok(m) = common::object(&mut u, 0) {
        // What the CLI sees went through JSON text: keep that step.
        let text = serde_json::to_string(&m).expect("a Value serialises");
        let m: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).expect("our own JSON parses");
        common::payload(&m);
    }
});
