//! Running jails on a host: the Driver trait and its implementations.

mod api;
mod change;
pub(crate) mod dataset;
#[cfg(test)]
pub(crate) mod fake;
pub mod freebsd;
pub mod linux;
pub(crate) mod nic_addrs;
mod select;
mod signal;
mod unsupported;
pub mod zone_root;

pub use api::{Driver, DriverError, DriverResult, RuntimeState, StopOptions};
pub use change::{Changes, DatasetChange, Limit};
pub use select::for_host;
pub use signal::{Os, Signal, SignalError};

/// Says on stderr that `property` is kept in the record but this host
/// cannot enforce it, and why (SmartOS says the same of properties a brand
/// ignores). Called at create and update, where the property was given.
pub fn notice_unenforced(property: &str, why: &str) {
    tracing::warn!("{property} is stored but not enforced on this host: {why}");
}

/// A VM for the drivers' unit tests: a fixed uuid, image and pool, with
/// `extra` (NICs, routes …) on top.
#[cfg(test)]
pub(crate) fn test_vm(extra: serde_json::Value) -> crate::spec::VmSpec {
    let mut obj = serde_json::json!({
        "uuid": "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60",
        "brand": "jail",
        "image_uuid": "11111111-2222-4333-8444-555555555555",
        "zpool": "zones",
    });
    if let (Some(o), Some(e)) = (obj.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    crate::spec::VmSpec::from_object(obj.as_object().expect("an object")).expect("a valid VM")
}
