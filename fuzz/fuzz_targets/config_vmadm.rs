//! vmadm.toml: a config that parses must save (as `imgadm sources`
//! writes it) and parse back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvmadm::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::parse(text) {
        // As Config::save writes it.
        let saved = toml::to_string_pretty(&cfg).expect("a config serialises");
        let back = Config::parse(&saved)
            .unwrap_or_else(|e| panic!("saved config does not parse: {e}\n{saved}"));
        assert_eq!(back, cfg);
        let _ = cfg.vm_dataset(&uuid::Uuid::nil());
        let _ = cfg.vm_dir();
    }
});
