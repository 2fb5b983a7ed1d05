//! imgapid query strings: the ListImages filter (anonymous and
//! privileged), paging (`limit`, `sort`, `marker`), the DSAPI filter and
//! the image actions, plus UUID path segments; filters are matched against
//! a real manifest.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvmadm_manifest::Manifest;
use std::sync::OnceLock;

fn subject() -> &'static Manifest {
    static M: OnceLock<Manifest> = OnceLock::new();
    M.get_or_init(|| {
        serde_json::from_value(serde_json::json!({
            "v": 2,
            "uuid": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "owner": "00000000-0000-0000-0000-000000000000",
            "name": "base-64",
            "version": "1.0.0",
            "state": "active",
            "public": true,
            "published_at": "2026-11-30T12:00:00.000Z",
            "type": "zone-dataset",
            "os": "smartos",
            "tags": {"role": "db", "n": 3},
            "files": [{"sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "size": 1, "compression": "gzip"}]
        }))
        .expect("literal manifest")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let _ = imgapid::fuzzing::query(raw, subject());
    let _ = imgapid::fuzzing::path_segment(raw);
});
