//! imgapid.toml, checked as `imgapid --config` loads it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = imgapid::config::Config::from_text(text, Path::new("imgapid.toml")) {
        let _ = cfg.s3_settings();
    }
});
