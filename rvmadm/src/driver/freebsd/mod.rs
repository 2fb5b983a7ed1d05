//! The FreeBSD driver: nested jails (outer: owns the vnet; inner: the tenant,
//! which the rctl limits name) driven by pure argv plans that a tiny runner
//! executes. See docs/freebsd.md.

mod antispoof;
mod console;
mod delete;
mod driver;
mod guard;
mod kill;
mod layout;
mod limits;
mod mounts;
mod names;
mod network;
mod plan;
mod runner;
mod start;
mod state;
mod stop;
mod sys_files;
mod update;

#[cfg(test)]
mod golden_tests;

pub use driver::FreeBsdDriver;
pub use names::{host_end, jail_end, MAX_IFNAME};
pub use plan::{Action, OnFailure, Plan, PlanError, Step};
pub use runner::{PlanFailed, PlanRunner, Report};
pub use sys_files::{HostFs, RealFs};

/// The pure plan builders, for tools and tests outside this module.
pub mod plans {
    pub use super::antispoof::update_plan as update_nics_plan;
    pub use super::console::{console_argv, exec_argv};
    pub use super::delete::{cleanup_plan, delete_plan};
    pub use super::kill::{kill_plan, reboot_plans};
    pub use super::start::plan as start_plan;
    pub use super::state::{parse as parse_jls, query_argv as jls_argv};
    pub use super::stop::plan as stop_plan;
    pub use super::update::plan as update_plan;
}
