//! kill and reboot.
//!
//! `kill` signals every process of the tenant: `jexec <uuid>.tenant
//! /bin/kill -<n> -1` (inside a jail, pid -1 means all processes of that
//! jail). The signal is a number checked to be a real signal. `reboot` is the
//! stop plan followed by the start plan; the driver runs them as two plans so
//! a failed start does not undo the completed stop.

use super::layout;
use super::plan::{argv, Plan, PlanError, Step};
use super::{start, stop};
use crate::config::Config;
use crate::driver::StopOptions;
use crate::spec::VmSpec;

pub fn kill_plan(vm: &VmSpec, signal: i32) -> Result<Plan, PlanError> {
    if !(1..=31).contains(&signal) {
        return Err(PlanError::refused(
            "signal",
            signal.to_string(),
            "must be a signal number from 1 to 31",
        ));
    }
    let mut p = Plan::new();
    p.push(Step::run(argv([
        "jexec".to_string(),
        layout::tenant(vm),
        "/bin/kill".into(),
        format!("-{signal}"),
        "-1".into(),
    ])));
    Ok(p)
}

/// The stop and start plans of a reboot.
pub fn reboot_plans(
    vm: &VmSpec,
    cfg: &Config,
    opts: &StopOptions,
) -> Result<(Plan, Plan), PlanError> {
    Ok((stop::plan(vm, cfg, opts)?, start::plan(vm, cfg)?))
}
