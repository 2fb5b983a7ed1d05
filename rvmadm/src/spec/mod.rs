//! The VM payload: the SmartOS property table, validation, the stored VM
//! object and the typed VmSpec drivers consume.

pub mod brand;
pub mod docs;
pub mod mac;
mod names;
pub mod object;
pub mod props;
pub mod validate;
pub mod value;
mod vm;

pub use names::{valid_alias, valid_hostname, valid_nic_tag};
pub use validate::{check, Action, Checked, ValidationErrors};
pub use vm::{Filesystem, Limits, Nic, NicAddr, VmSpec};
