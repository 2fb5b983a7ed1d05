//! cleanup and delete: remove whatever a crashed start or stop left behind.
//!
//! Both are the forced stop's teardown (every step best-effort): host epair
//! ends, the jail, mounts and rctl rules. Destroying the dataset belongs to
//! the delete verb in ops (through `zfs.rs`), after this plan ran.

use super::guard;
use super::plan::{Plan, PlanError};
use super::stop;
use crate::config::Config;
use crate::spec::VmSpec;

/// The stop plan's teardown without its graceful phase: every step is
/// best-effort, so it runs on a clean, stopped VM too. Refused only when the
/// VM's zonepath is not a plain absolute path (nothing would be unmounted
/// safely below it).
pub fn cleanup_plan(vm: &VmSpec, cfg: &Config) -> Result<Plan, PlanError> {
    guard::check_paths(vm)?;
    let mut p = Plan::new();
    for s in stop::teardown(vm, cfg) {
        p.push(s);
    }
    Ok(p)
}

/// What `vmadm delete` asks of the driver before the dataset goes.
pub fn delete_plan(vm: &VmSpec, cfg: &Config) -> Result<Plan, PlanError> {
    cleanup_plan(vm, cfg)
}
