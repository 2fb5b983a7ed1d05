//! The Linux driver: an OCI runtime (runc by default) on the ZFS clone, inside a
//! network namespace that vmadm owns.

mod antispoof;
mod attach_warm;
mod binds;
mod bundle;
mod console;
pub mod console_log;
mod driver;
mod lifecycle;
mod names;
mod netplan;
mod runtime;
mod seccomp;
mod state;
mod sys;
mod update;

pub use driver::LinuxDriver;
