//! Running jails on a host: the Driver trait and its implementations.

mod api;
pub mod fake;
pub mod freebsd;
pub mod linux;
mod select;
mod unsupported;

pub use api::{Driver, DriverError, DriverResult, RuntimeState, StopOptions};
pub use select::for_host;
pub use unsupported::Unsupported;
