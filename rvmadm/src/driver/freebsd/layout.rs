//! Where a VM lives: jail names and host paths of the nested design.
//!
//! The VM's dataset is mounted at `zonepath` and laid out as SmartOS lays a
//! zone out: the tenant's whole tree is `zonepath/root`, nothing else comes
//! from the image. The **outer** jail's root is `zonepath` itself; it owns
//! the vnet and holds only what vmadm puts there from the host: a devfs, a
//! read-only nullfs mount of the host's statically linked `/rescue` (the
//! tools that configure the vnet: ifconfig, route, dhclient, rtsol), and for
//! DHCP a few small files. The **tenant** is created from the host with its
//! hierarchical name `<uuid>.tenant` and `path=<zonepath>/root`, so it
//! cannot reach the outer root and cannot replace the binaries that
//! configure its network. Nothing the image ships is ever executed outside
//! the tenant.

use crate::driver::zone_root::ROOT_DIR;
use crate::spec::VmSpec;

/// The tenant's name inside the outer jail.
pub const TENANT: &str = "tenant";

/// The host directory of static binaries mounted read-only into the outer
/// jail (FreeBSD's own `/rescue`, built with `NO_SHARED`).
pub const HOST_TOOLS: &str = "/rescue";

/// Where [`HOST_TOOLS`] appears in the outer jail (relative to its root).
pub const TOOLS_IN_OUTER: &str = "rescue";

/// The tenant's boot output, below the zonepath (outside the tenant's
/// reach); made a fresh regular file before every start.
pub const CONSOLE_LOG: &str = "console.log";

/// The jail.conf(5) file the stop plan writes for jail(8)'s `-r`.
pub const STOP_CONF: &str = "vmadm-stop.conf";

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

/// The tenant's root on the host: `<zonepath>/root`.
pub fn tenant_root(vm: &VmSpec) -> String {
    format!("{}/{ROOT_DIR}", outer_root(vm))
}

/// A host tool as the outer jail sees it (`/rescue/ifconfig`).
pub fn tool(name: &str) -> String {
    format!("/{TOOLS_IN_OUTER}/{name}")
}

/// The delegated dataset (`<zfs_filesystem>/data`) when the VM has one.
pub fn delegated_dataset(vm: &VmSpec) -> Option<String> {
    vm.delegate_dataset
        .then(|| format!("{}/data", vm.zfs_filesystem))
}
