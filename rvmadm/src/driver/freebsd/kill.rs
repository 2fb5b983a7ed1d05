//! kill and reboot.
//!
//! `kill` signals every process of the tenant from the host: `pkill -<NAME>
//! -j <uuid>.tenant` (pkill(1) resolves a jail name with jail_getid(3) and
//! matches processes whose jail is exactly that one). Nothing from the
//! tenant's userland runs, so an image without `/bin/kill` (many Linux
//! ones) is signalled the same way. The signal goes by name, never by
//! number: numbers differ between OSes (Linux's 10 is FreeBSD's SIGBUS),
//! names do not, and a signal FreeBSD lacks is refused before anything
//! runs. pkill exits 1 when no process matched, which fails the kill. `reboot` is the stop plan
//! followed by the start plan; the driver runs them as two plans so a failed
//! start does not undo the completed stop.

use super::layout;
use super::plan::{argv, Plan, PlanError, Step};
use super::{start, stop};
use crate::config::Config;
use crate::driver::{Os, Signal, StopOptions};
use crate::spec::VmSpec;

/// One step: send `signal`, by name, to every process of the tenant.
/// Refused when FreeBSD has no such signal.
pub fn kill_plan(vm: &VmSpec, signal: Signal) -> Result<Plan, PlanError> {
    if signal.number(Os::FreeBsd).is_none() {
        return Err(PlanError::refused(
            "signal",
            signal.to_string(),
            "FreeBSD has no such signal",
        ));
    }
    let mut p = Plan::new();
    p.push(Step::run(argv([
        "pkill".to_string(),
        format!("-{}", signal.name()),
        "-j".into(),
        layout::tenant(vm),
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
