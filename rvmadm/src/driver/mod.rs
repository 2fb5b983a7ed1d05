//! Running jails on a host: the Driver trait and its implementations.

mod api;
mod change;
pub(crate) mod dataset;
#[cfg(test)]
pub(crate) mod fake;
pub mod freebsd;
pub mod linux;
mod select;
mod signal;
mod unsupported;
pub mod zone_root;

pub use api::{Driver, DriverError, DriverResult, RuntimeState, StopOptions};
pub use change::{Changes, DatasetChange, Limit};
pub use select::for_host;
pub use signal::{Os, Signal, SignalError};
