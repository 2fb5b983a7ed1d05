//! The VM payload: the SmartOS property table, validation and the typed VmSpec.

pub mod brand;
mod names;
mod vm;

pub use names::{valid_alias, valid_hostname, valid_nic_tag};
pub use vm::{Filesystem, Limits, Nic, NicAddr, VmSpec};
