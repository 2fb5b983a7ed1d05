//! The VM payload: the SmartOS property table (with every default),
//! validation, the typed stored record and the VmSpec drivers consume.

pub mod brand;
pub mod docs;
pub mod fs_policy;
pub mod mac;
mod names;
pub mod object;
pub mod props;
pub mod record;
mod stored;
pub mod unique;
pub mod validate;
pub mod value;
mod vm;

pub use names::{valid_alias, valid_hostname, valid_nic_tag};
pub use record::{Field, Snapshot, VmRecord};
pub use validate::{check, Action, Checked, ValidationErrors};
pub use vm::{Filesystem, Limits, Nic, NicAddr, VmSpec};
