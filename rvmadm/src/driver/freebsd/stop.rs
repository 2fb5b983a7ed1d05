//! The stop plan: shut the tenant down, then take apart everything a start
//! creates, whether or not the start got that far.
//!
//! Graceful: the tenant's `/etc/rc.shutdown` runs under timeout(1) with the
//! caller's grace period (jail(8) does not remember `exec.stop` for a jail
//! made on the command line, so it is run explicitly). Then the host ends of
//! the epairs are destroyed (their peers leave the vnet with them, so the
//! jail does not linger "dying" holding them), the outer jail and its child
//! are removed with `jail -R` (jail_remove(2), ignoring any host jail.conf),
//! and a `jls` check makes sure it is gone before mounts are forced off and
//! the rctl rules dropped. Every teardown step is best-effort, so a stop
//! after a half-finished start cleans up whatever exists.

use super::guard;
use super::layout;
use super::limits;
use super::mounts;
use super::network;
use super::plan::{argv, Action, Plan, PlanError, Step};
use crate::config::Config;
use crate::driver::StopOptions;
use crate::spec::VmSpec;

/// The graceful shutdown command for the tenant, when its brand has one.
pub fn graceful(vm: &VmSpec, opts: &StopOptions) -> Option<Step> {
    if opts.force || vm.is_lx() {
        // A Linux userland has no rc.shutdown; jail removal sends it SIGKILL.
        return None;
    }
    let secs = opts.timeout.as_secs().max(1).to_string();
    Some(Step::try_run(argv([
        "timeout",
        &secs,
        "jexec",
        &layout::tenant(vm),
        "/bin/sh",
        "/etc/rc.shutdown",
    ])))
}

/// Everything after the graceful phase (also the cleanup plan).
pub fn teardown(vm: &VmSpec, cfg: &Config) -> Vec<Step> {
    let outer = layout::outer(vm);
    let mut steps = network::teardown(vm);
    steps.push(Step::try_run(argv(["jail", "-R", &outer])));
    steps.push(Step::action(Action::Absent {
        argv: argv(["jls", "-j", &outer, "jid"]),
        message: format!(
            "jail {outer} is still there after removal; its mounts were left in place"
        ),
    }));
    steps.extend(mounts::unmount(vm, cfg.devfs_ruleset));
    steps.push(limits::remove(vm));
    steps
}

/// The whole stop: the graceful shutdown (unless `opts.force` or an lx
/// tenant), then the teardown described in the module text. Refused only
/// for a zonepath that is not a plain absolute path.
pub fn plan(vm: &VmSpec, cfg: &Config, opts: &StopOptions) -> Result<Plan, PlanError> {
    guard::check_paths(vm)?;
    let mut p = Plan::new();
    if let Some(s) = graceful(vm, opts) {
        p.push(s);
    }
    for s in teardown(vm, cfg) {
        p.push(s);
    }
    Ok(p)
}
