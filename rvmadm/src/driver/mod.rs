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
