//! Live updates of a running VM: what `vmadm update` can change without a
//! reboot, and which properties must wait for one.
//!
//! Limits are rctl rules (`rctl -a` replaces a deny rule's amount; a cleared
//! `cpu_cap` removes its rule), `quota` is `zfs set quota`, `hostname` is
//! `jail -m` on both jails, `resolvers`/`dns_domain` rewrite the tenant's
//! resolv.conf. NIC, route, filesystem and init changes need a reboot and are
//! returned as such. Properties with no host effect (alias, metadata, tags,
//! `cpu_shares` and `zfs_io_priority`, which FreeBSD has no equivalent for)
//! produce no step.

use super::guard;
use super::layout;
use super::limits;
use super::network;
use super::plan::{argv, Plan, PlanError, Step};
use crate::spec::VmSpec;

/// Properties whose change only takes effect at the next start.
pub const NEEDS_REBOOT: &[&str] = &[
    "nics",
    "add_nics",
    "remove_nics",
    "update_nics",
    "routes",
    "set_routes",
    "remove_routes",
    "filesystems",
    "init_name",
];

/// The live-update plan and the changed properties that need a reboot.
pub fn plan(vm: &VmSpec, changed: &[String]) -> Result<(Plan, Vec<String>), PlanError> {
    guard::check_paths(vm)?;
    let mut p = Plan::new();
    let mut reboot = Vec::new();
    let mut racct_checked = false;
    let mut resolv_done = false;
    for prop in changed {
        let prop = prop.as_str();
        if let Some(steps) = limits::update(vm, prop) {
            if !racct_checked {
                p.push(limits::racct_check());
                racct_checked = true;
            }
            for s in steps {
                p.push(s);
            }
        } else if prop == "quota" {
            p.push(limits::quota(vm));
        } else if prop == "hostname" {
            guard::check_hostname(vm)?;
            let h = format!("host.hostname={}", vm.effective_hostname());
            p.push(Step::run(argv([
                "jail".to_string(),
                "-m".into(),
                format!("name={}", layout::outer(vm)),
                h.clone(),
            ])));
            p.push(Step::run(argv([
                "jail".to_string(),
                "-m".into(),
                format!("name={}", layout::tenant(vm)),
                h,
            ])));
        } else if prop == "resolvers" || prop == "dns_domain" {
            guard::check_dns_domain(vm)?;
            if !resolv_done {
                resolv_done = true;
                if let Some(s) = network::resolv_conf(vm) {
                    p.push(s);
                }
            }
        } else if NEEDS_REBOOT.contains(&prop) {
            reboot.push(prop.to_string());
        }
    }
    Ok((p, reboot))
}
