//! `vmadm create/update/validate` payloads as the CLI reads them: JSON
//! text, an object, checked for create and update.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // read_payload reads text; non-UTF-8 is refused before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) {
        common::payload(&m);
    }
});
