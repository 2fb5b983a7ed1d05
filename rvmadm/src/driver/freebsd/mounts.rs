//! File systems mounted from the host into a VM.
//!
//! The outer jail (root = zonepath) gets a devfs and a read-only nullfs
//! mount of the host's `/rescue`, the static tools that configure the vnet.
//! The tenant (root = zonepath/root) gets a devfs and, for the `lx` brands,
//! what the Linux ABI needs: linprocfs on `/proc`, linsysfs on `/sys`, a
//! tmpfs sized to `max_shm_memory` on `/dev/shm` and fdescfs (`linrdlnk`) on
//! `/dev/fd`.
//!
//! devfs is always mounted with the configured ruleset, and a ruleset that
//! is not loaded is refused before each devfs mount: devfs makes an empty
//! ruleset for an unknown number and shows every host device through it
//! (sys/fs/devfs/devfs_rule.c, `devfs_ruleset_use()`), while `devfs rule -s N
//! show` prints nothing, successfully, for such a number (sbin/devfs/rule.c,
//! `rule_show()` ends quietly on ENOENT). So the check wants output. The
//! ruleset never shows `bpf*` to the tenant; only the outer jail, and only
//! when a NIC uses DHCP, gets `bpf*` unhidden on its own mount (`devfs -m
//! … rule apply`), because dhclient runs there.
//!
//! Every mount point is first made a real directory by an `EnsureDir` step,
//! which refuses symlinks: mount(8) resolves its path on the host, and the
//! tenant's root is the tenant's to fill. Directories inside a devfs
//! (`dev/shm`, `dev/fd`) cannot be made (devfs has no mkdir); they must
//! already be there, unhidden by the ruleset, and are only checked. Mounts
//! happen before the tenant runs, so nothing can swap a directory between the
//! check and the mount. Unmounting goes in reverse order, is best-effort
//! (`-f`, the jail is gone) and is skipped for a mount point that turned into
//! a symlink.

use super::layout;
use super::plan::{argv, Action, OnFailure, Step};
use crate::spec::{NicAddr, VmSpec};

/// How a mount point comes to exist.
enum Point {
    /// Created when missing (a directory of the VM's dataset).
    Ensure,
    /// Must exist already (inside a devfs); the text says what provides it.
    Require(&'static str),
}

/// One mount: file system type, options, source, and the mount point as
/// (root, rel).
struct Mount {
    fstype: &'static str,
    options: String,
    source: String,
    root: String,
    rel: &'static str,
    point: Point,
}

impl Mount {
    fn target(&self) -> String {
        format!("{}/{}", self.root, self.rel)
    }
}

/// Bytes of the `/dev/shm` tmpfs: `max_shm_memory`, else the memory cap;
/// `None` (unsized) only when neither is set.
fn shm_bytes(vm: &VmSpec) -> Option<u64> {
    [vm.limits.max_shm_memory, vm.limits.max_physical_memory]
        .into_iter()
        .find(|m| *m > 0)
        .map(|mib| mib.saturating_mul(1024 * 1024))
}

fn mounts(vm: &VmSpec, ruleset: u32) -> Vec<Mount> {
    let outer = layout::outer_root(vm);
    let tenant = layout::tenant_root(vm);
    let devfs = |root: &str| Mount {
        fstype: "devfs",
        options: format!("ruleset={ruleset}"),
        source: "devfs".into(),
        root: root.to_string(),
        rel: "dev",
        point: Point::Ensure,
    };
    let mut list = vec![
        devfs(&outer),
        Mount {
            fstype: "nullfs",
            options: "ro".into(),
            source: layout::HOST_TOOLS.into(),
            root: outer.clone(),
            rel: layout::TOOLS_IN_OUTER,
            point: Point::Ensure,
        },
        devfs(&tenant),
    ];
    if vm.is_lx() {
        let lx = |fstype: &'static str, options: String, rel, point| Mount {
            fstype,
            options,
            source: fstype.into(),
            root: tenant.clone(),
            rel,
            point,
        };
        list.push(lx("linprocfs", "rw".into(), "proc", Point::Ensure));
        list.push(lx("linsysfs", "rw".into(), "sys", Point::Ensure));
        let mut shm = "rw,mode=1777".to_string();
        if let Some(bytes) = shm_bytes(vm) {
            shm.push_str(&format!(",size={bytes}"));
        }
        list.push(lx(
            "tmpfs",
            shm,
            "dev/shm",
            Point::Require(
                "linux.ko makes /dev/shm in devfs: load linux64 and use a ruleset that \
                 unhides `shm` (dist/freebsd/devfs.rules does)",
            ),
        ));
        list.push(lx(
            "fdescfs",
            "rw,linrdlnk".into(),
            "dev/fd",
            Point::Require("the devfs ruleset must unhide `fd` (devfsrules_unhide_basic does)"),
        ));
    }
    list
}

/// The step that refuses an unloaded ruleset (see the module text).
pub fn ruleset_check(ruleset: u32) -> Step {
    let n = ruleset.to_string();
    Step::action(Action::NonEmpty {
        argv: argv(["devfs", "rule", "-s", &n, "show"]),
        message: format!(
            "devfs ruleset {ruleset} is not loaded, and a devfs mounted with it would show \
             every host device: install dist/freebsd/devfs.rules as docs/freebsd.md says \
             and run `service devfs restart`"
        ),
    })
}

/// True when some NIC gets its address by DHCP (dhclient runs in the outer
/// jail and needs bpf there).
pub fn wants_dhcp(vm: &VmSpec) -> bool {
    vm.nics
        .iter()
        .any(|n| n.ips.iter().any(|a| matches!(a, NicAddr::Dhcp)))
}

/// Start: make each mount point safe, then mount (undo: unmount). Each
/// devfs mount is preceded by the ruleset check.
pub fn mount(vm: &VmSpec, ruleset: u32) -> Vec<Step> {
    let mut steps = Vec::new();
    let outer_dev = format!("{}/dev", layout::outer_root(vm));
    for m in mounts(vm, ruleset) {
        match m.point {
            Point::Ensure => steps.push(Step::action(Action::EnsureDir {
                root: m.root.clone(),
                rel: m.rel.to_string(),
            })),
            Point::Require(why) => steps.push(Step::action(Action::RequireDir {
                root: m.root.clone(),
                rel: m.rel.to_string(),
                message: why.to_string(),
            })),
        }
        if m.fstype == "devfs" {
            steps.push(ruleset_check(ruleset));
        }
        let target = m.target();
        steps.push(Step::run_undo(
            argv([
                "mount", "-t", m.fstype, "-o", &m.options, &m.source, &target,
            ]),
            argv(["umount", "-f", &target]),
        ));
        if m.fstype == "devfs" && target == outer_dev && wants_dhcp(vm) {
            steps.push(Step::run(argv([
                "devfs", "-m", &target, "rule", "apply", "path", "bpf*", "unhide",
            ])));
        }
    }
    steps
}

/// Stop: unmount everything, innermost first; already unmounted is fine.
/// Each mount point is checked for symlinks first (see [`Action::Unmount`]),
/// since by now the directory may be whatever the tenant or image left.
pub fn unmount(vm: &VmSpec, ruleset: u32) -> Vec<Step> {
    mounts(vm, ruleset)
        .iter()
        .rev()
        .map(|m| Step {
            action: Action::Unmount {
                root: m.root.clone(),
                rel: m.rel.to_string(),
            },
            undo: None,
            on_failure: OnFailure::Continue,
        })
        .collect()
}
