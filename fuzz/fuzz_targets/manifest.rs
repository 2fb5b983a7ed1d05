//! Image manifests (rvmadm-manifest): what parses and validates must
//! serialise and parse back to the same manifest, still valid; its DSAPI
//! form and filter fields must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvmadm_manifest::filter::{Fields, Syntax, Term};
use rvmadm_manifest::{file_name_safe, Manifest};

const FIELDS: &[&str] = &[
    "uuid",
    "name",
    "version",
    "type",
    "os",
    "state",
    "owner",
    "public",
    "published_at",
    "origin",
    "tags",
    "tag.a",
    "files",
    "requirements.brand",
    "description",
    "v",
];

fuzz_target!(|data: &[u8]| {
    // The tail after a NUL is a filter argument.
    let (json, arg) = match data.iter().position(|b| *b == 0) {
        Some(i) => (
            &data[..i],
            String::from_utf8_lossy(&data[i + 1..]).into_owned(),
        ),
        None => (data, String::new()),
    };
    let Ok(m) = Manifest::from_json(json) else {
        return;
    };
    let valid = m.validate();
    if let Err(e) = &valid {
        let _ = e.to_string();
    }
    for f in FIELDS {
        let _ = m.field(f);
    }
    for syntax in [Syntax::EXACT, Syntax::SUBSTRING, Syntax::NEGATABLE] {
        if let Ok(t) = Term::parse_arg(&arg, syntax) {
            let _ = t.matches(&m);
        }
    }
    let _ = file_name_safe(&m.name);
    let _ = m.dsapi_file_name();
    let _ = m.to_dsapi("http://198.51.100.1/datasets/x/file");
    if valid.is_ok() {
        let text = serde_json::to_vec(&m).expect("a manifest serialises");
        let back = Manifest::from_json(&text).expect("our own manifest parses");
        assert_eq!(back, m, "manifest changed through JSON");
        back.validate().expect("a valid manifest stays valid");
    }
});
