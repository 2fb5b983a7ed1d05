//! The start plan: limits, mounts, network and the two nested jails, in an
//! order where every step's undo leaves the host as it was.
//!
//! 1. Refuse if the outer jail exists; check `kern.racct.enable` and the
//!    bridge sysctls the NIC protections need; check the
//!    zone layout (`root/`, and `data/` when present, real directories)
//!    before anything touches the zonepath (nothing changed yet if any of
//!    these fails); clear epairs, the pf anchor and mounts a crashed start
//!    left.
//! 2. Dataset quota, then rctl rules on the tenant's name (rules may exist
//!    before the jail does); a delegated dataset gets `jailed=on`.
//! 3. devfs (loaded ruleset checked first) for both roots, the host's
//!    `/rescue` read-only into the outer root, Linux ABI mounts for `lx`.
//! 4. The NIC protections' host checks and pf anchor (`antispoof.rs`), then
//!    the host ends of the epairs on their bridges (each NIC's MAC pinned on
//!    its port), MACs set on the jail ends.
//! 5. The outer jail: `vnet=new`, `children.max=1`, `persist`, identity.
//! 6. Jail ends into the vnet; names, addresses, DHCP, lo0, routes, all with
//!    the host's tools through `jexec <uuid> /rescue/…`.
//! 7. The tenant's resolv.conf and a fresh console log, then the tenant,
//!    created from the host by its hierarchical name (`jail -c
//!    name=<uuid>.tenant path=<zonepath>/root …`, as ocijail creates its
//!    containers). Its `exec.start` is `/bin/sh /etc/rc` (waited for, up to
//!    `exec.timeout`) or, for `lx`, the init run in the background: a
//!    command line ending in `&` is started by jail(8) without waiting
//!    (usr.sbin/jail/command.c, `run_command()`). `exec.clean` keeps vmadm's
//!    environment out of the tenant; a delegated dataset is handed over by
//!    `exec.created` (`zfs jail`), after the jail exists and before its rc
//!    runs.
//!
//! Each jail parameter is one argv element `name=value`; jail(8) splits it
//! at the first `=` and passes the value to the kernel, never to a shell. The
//! only command strings are jail(8)'s `exec.*`, which hold constants, names
//! checked by `guard` or an `init_name` restricted to a plain path.

use super::antispoof;
use super::guard;
use super::layout;
use super::limits;
use super::mounts;
use super::network;
use super::plan::{argv, Action, Plan, PlanError, Step};
use crate::config::Config;
use crate::spec::VmSpec;

/// How long the tenant's `exec.start` (its rc boot) may take.
pub const TENANT_BOOT_TIMEOUT_SECS: u32 = 600;

/// Parameters both jails share; a child may not be less confined than its
/// parent, so they are computed once.
fn common_params(vm: &VmSpec, cfg: &Config) -> Vec<String> {
    let hostname = vm.effective_hostname();
    // Linux tools read /proc/mounts, and mounting a delegated dataset needs
    // enforce_statfs below 2 (zfs-jail(8)); 1 shows mounts below the jail
    // root only. Otherwise a jail sees just its own root.
    let enforce_statfs = if vm.is_lx() || vm.delegate_dataset {
        1
    } else {
        2
    };
    let mut params = vec![
        format!("host.hostname={hostname}"),
        format!("host.hostuuid={}", vm.uuid),
        format!("devfs_ruleset={}", cfg.devfs_ruleset),
        format!("enforce_statfs={enforce_statfs}"),
        "securelevel=2".into(),
        "sysvmsg=new".into(),
        "sysvsem=new".into(),
        "sysvshm=new".into(),
        "allow.raw_sockets".into(),
        "allow.set_hostname".into(),
    ];
    if vm.delegate_dataset {
        params.push("allow.mount".into());
        params.push("allow.mount.zfs".into());
    }
    params
}

/// `jail -c …` for the outer jail (run on the host).
pub fn outer_create(vm: &VmSpec, cfg: &Config) -> Step {
    let mut a = vec![
        "jail".to_string(),
        "-c".into(),
        format!("name={}", layout::outer(vm)),
        format!("path={}", layout::outer_root(vm)),
        "vnet=new".into(),
        "children.max=1".into(),
    ];
    a.extend(common_params(vm, cfg));
    a.push("persist".into());
    Step::run_undo(argv(a), argv(["jail", "-R", &layout::outer(vm)]))
}

/// The tenant's `exec.start`: `/bin/sh /etc/rc` (waited for), or for lx the
/// init in the background (jail(8) does not wait for a trailing `&`).
fn tenant_init(vm: &VmSpec) -> String {
    if vm.is_lx() {
        let init = vm.init_name.clone().unwrap_or_else(|| "/sbin/init".into());
        format!("{init} &")
    } else {
        "/bin/sh /etc/rc".into()
    }
}

/// `jail -c name=<uuid>.tenant path=<zonepath>/root …`, run on the host.
pub fn tenant_create(vm: &VmSpec, cfg: &Config) -> Step {
    let tenant = layout::tenant(vm);
    let mut a = vec![
        "jail".to_string(),
        "-c".into(),
        format!("name={tenant}"),
        format!("path={}", layout::tenant_root(vm)),
        "ip4=inherit".into(),
        "ip6=inherit".into(),
        "children.max=0".into(),
    ];
    a.extend(common_params(vm, cfg));
    a.push("exec.clean".into());
    if vm.is_lx() {
        // exec.clean looks the user up; a Linux userland has no pwd.db, so
        // jail(8) must use the host's passwd (done before attaching).
        a.push("exec.system_jail_user".into());
    }
    a.push(format!(
        "exec.consolelog={}/{}",
        layout::outer_root(vm),
        layout::CONSOLE_LOG
    ));
    // jail(8) waits for a foreground exec.start; a hung rc would hang
    // `vmadm start` forever. After this many seconds jail(8) fails and the
    // plan rolls back.
    a.push(format!("exec.timeout={TENANT_BOOT_TIMEOUT_SECS}"));
    if let Some(ds) = layout::delegated_dataset(vm) {
        // Absolute: exec.clean gives host-side commands PATH=/bin:/usr/bin.
        a.push(format!("exec.created=/sbin/zfs jail {tenant} {ds}"));
    }
    a.push(format!("exec.start={}", tenant_init(vm)));
    a.push("persist".into());
    Step::run_undo(argv(a), argv(["jail", "-R", &tenant]))
}

/// The whole start plan.
pub fn plan(vm: &VmSpec, cfg: &Config) -> Result<Plan, PlanError> {
    guard::check_vm(vm, cfg)?;
    let mut p = Plan::new();
    // Refuse before anything else: rolling back a start over a live jail
    // would unmount and unplug the running VM.
    let outer = layout::outer(vm);
    p.push(Step::action(Action::Absent {
        argv: argv(["jls", "-j", &outer, "jid"]),
        message: format!(
            "jail {outer} already exists; if the VM is not running, `vmadm stop -F` cleans it up"
        ),
    }));
    p.push(limits::racct_check());
    for s in antispoof::start_checks(vm)? {
        p.push(s);
    }
    p.push(Step::action(Action::CheckZoneRoot {
        zonepath: layout::outer_root(vm),
    }));
    // No jail exists, so whatever a crashed start left (epairs, mounts) is
    // stale: clear it so the names and mount points are free.
    for s in network::teardown(vm) {
        p.push(s);
    }
    for s in mounts::unmount(vm, cfg.devfs_ruleset) {
        p.push(s);
    }
    p.push(limits::quota(vm));
    for s in limits::apply(vm) {
        p.push(s);
    }
    if let Some(ds) = layout::delegated_dataset(vm) {
        // Only a dataset marked jailed may be handed to a jail; the host
        // must not keep it mounted (zfs-jail(8)).
        p.push(Step::try_run(argv(["zfs", "umount", &ds])));
        p.push(Step::run(argv(["zfs", "set", "jailed=on", &ds])));
    }
    for s in mounts::mount(vm, cfg.devfs_ruleset) {
        p.push(s);
    }
    // The VM's pf rules are in place before its first port joins a bridge.
    for s in antispoof::start_steps(vm)? {
        p.push(s);
    }
    for s in network::host_side(vm, cfg)? {
        p.push(s);
    }
    p.push(outer_create(vm, cfg));
    for s in network::jail_side(vm) {
        p.push(s);
    }
    if let Some(s) = network::resolv_conf(vm) {
        p.push(s);
    }
    // jail(8) appends to the console log on the host without checking
    // symlinks outside the jail's path: replace whatever the image left.
    p.push(Step::action(Action::WriteFile {
        root: layout::outer_root(vm),
        rel: layout::CONSOLE_LOG.into(),
        contents: String::new(),
        mode: 0o600,
    }));
    p.push(tenant_create(vm, cfg));
    Ok(p)
}
