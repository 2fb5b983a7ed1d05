//! Where a VM lives: jail names and host paths of the nested design.
//!
//! The VM's dataset is mounted at `zonepath` and is the **outer** jail's root:
//! it holds the small toolset the outer jail runs (`/bin/sh`,
//! `/sbin/ifconfig`, `/sbin/route`, `/usr/sbin/jail`, `/sbin/dhclient`). The
//! **tenant**'s userland lives in `zonepath/root` (as a SmartOS zone's root
//! does), which the outer jail sees as `/root`. The outer jail is named by the
//! VM UUID; the tenant is its only child, `tenant`, so the host sees it as
//! `<uuid>.tenant`. The tenant cannot reach the outer root, so it cannot
//! replace the binaries that configure its network.

use crate::spec::VmSpec;

/// The tenant's name inside the outer jail.
pub const TENANT: &str = "tenant";

/// The tenant's root as the outer jail sees it.
pub const TENANT_PATH_IN_OUTER: &str = "/root";

/// Where jail(8) in the outer jail writes the tenant's boot output (outer
/// root, so the tenant cannot redirect it with a symlink).
pub const CONSOLE_LOG_IN_OUTER: &str = "/console.log";

/// The outer jail's name: the VM UUID.
pub fn outer(vm: &VmSpec) -> String {
    vm.uuid.to_string()
}

/// The tenant's name as seen from the host.
pub fn tenant(vm: &VmSpec) -> String {
    format!("{}.{TENANT}", vm.uuid)
}

/// The outer jail's root on the host (checked UTF-8 and absolute by guard).
pub fn outer_root(vm: &VmSpec) -> String {
    vm.zonepath
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string()
}

/// The tenant's root on the host.
pub fn tenant_root(vm: &VmSpec) -> String {
    format!("{}{TENANT_PATH_IN_OUTER}", outer_root(vm))
}
