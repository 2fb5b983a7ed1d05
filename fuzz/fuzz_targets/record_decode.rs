//! VM record files (`<state>/vms/<uuid>.json`): a decoded record must
//! encode and decode to the same bytes.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = rvmadm::store::decode(data) {
        common::round_trip(&rec);
        let _ = rvmadm::spec::VmSpec::from_record(&rec);
        let _ = rec.is_incomplete();
    }
});
