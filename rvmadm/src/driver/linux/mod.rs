//! The Linux driver: an OCI runtime (runc by default) on the ZFS clone, inside a
//! network namespace that vmadm owns.

pub mod bundle;
mod console;
mod driver;
mod lifecycle;
pub mod names;
pub mod netplan;
pub mod runtime;
mod seccomp;
pub mod state;
mod sys;
mod update;

pub use driver::LinuxDriver;
