//! File systems mounted from the host into a VM: devfs for both jails (always
//! with an explicit ruleset, never the host's full /dev) and, for the `lx`
//! brands, the Linux ABI file systems (linprocfs, linsysfs, tmpfs on /dev/shm,
//! fdescfs on /dev/fd) in the tenant's root.
//!
//! Every mount point is first made a real directory by an `EnsureDir` step,
//! which refuses symlinks: mount(8) resolves its path on the host, and the
//! tenant's root is the tenant's to fill. Mounts happen before the tenant
//! runs, so nothing can swap a directory between the check and the mount.
//! Unmounting goes in reverse order, is best-effort (`-f`, the jail is gone)
//! and is skipped for a mount point that turned into a symlink.

use super::layout;
use super::plan::{argv, Action, OnFailure, Step};
use crate::spec::VmSpec;

/// One mount: file system type, options, and the mount point as (root, rel).
struct Mount {
    fstype: &'static str,
    options: String,
    root: String,
    rel: &'static str,
}

impl Mount {
    fn point(&self) -> String {
        format!("{}/{}", self.root, self.rel)
    }
}

fn mounts(vm: &VmSpec, ruleset: u32) -> Vec<Mount> {
    let outer = layout::outer_root(vm);
    let tenant = layout::tenant_root(vm);
    let devfs = |root: &str| Mount {
        fstype: "devfs",
        options: format!("ruleset={ruleset}"),
        root: root.to_string(),
        rel: "dev",
    };
    let mut list = vec![devfs(&outer), devfs(&tenant)];
    if vm.is_lx() {
        let lx = |fstype, options: &str, rel| Mount {
            fstype,
            options: options.to_string(),
            root: tenant.clone(),
            rel,
        };
        list.push(lx("linprocfs", "rw", "proc"));
        list.push(lx("linsysfs", "rw", "sys"));
        list.push(lx("tmpfs", "rw,mode=1777", "dev/shm"));
        list.push(lx("fdescfs", "rw,linrdlnk", "dev/fd"));
    }
    list
}

/// Start: make each mount point safe, then mount (undo: unmount).
pub fn mount(vm: &VmSpec, ruleset: u32) -> Vec<Step> {
    let mut steps = Vec::new();
    for m in mounts(vm, ruleset) {
        steps.push(Step::action(Action::EnsureDir {
            root: m.root.clone(),
            rel: m.rel.to_string(),
        }));
        let point = m.point();
        steps.push(Step::run_undo(
            argv(["mount", "-t", m.fstype, "-o", &m.options, m.fstype, &point]),
            argv(["umount", "-f", &point]),
        ));
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
