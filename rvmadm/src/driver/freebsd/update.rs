//! Live update of a running VM's limits: rctl rules (`rctl -a` replaces a
//! deny rule's amount; a cleared `cpu_cap` removes its rule). `cpu_shares`
//! and `zfs_io_priority` have no FreeBSD equivalent and produce no step, so a
//! running jail takes every limit live and none needs a reboot. The dataset
//! side of an update is shared by every driver (`driver::dataset`).

use super::guard;
use super::limits;
use super::plan::{Plan, PlanError};
use crate::driver::Limit;
use crate::spec::VmSpec;

/// The live-update plan for the changed limits (amounts from `vm`).
pub fn plan(vm: &VmSpec, changed: &[Limit]) -> Result<Plan, PlanError> {
    guard::check_paths(vm)?;
    let mut p = Plan::new();
    let mut racct_checked = false;
    for limit in changed {
        if let Some(steps) = limits::update(vm, *limit) {
            if !racct_checked {
                p.push(limits::racct_check());
                racct_checked = true;
            }
            for s in steps {
                p.push(s);
            }
        }
    }
    Ok(p)
}
