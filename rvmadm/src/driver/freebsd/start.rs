//! The start plan: limits, mounts, network and the two nested jails, in an
//! order where every step's undo leaves the host as it was.
//!
//! 1. Refuse if the outer jail exists; check `kern.racct.enable` (nothing
//!    changed yet if it is off); clear epairs and mounts a crashed start left.
//! 2. Dataset quota, then rctl rules on the outer jail's name (rules may exist
//!    before the jail does).
//! 3. devfs (explicit ruleset) for both roots, Linux ABI mounts for `lx`.
//! 4. Host ends of the epairs on their bridges.
//! 5. The outer jail: `vnet=new`, `children.max=1`, `persist`, identity.
//! 6. Jail ends into the vnet; names, MACs, addresses, lo0, routes.
//! 7. The tenant's resolv.conf, then the tenant jail created by the outer
//!    jail's own jail(8) (`jexec <uuid> /usr/sbin/jail -c …`) running
//!    `/bin/sh /etc/rc` (lx: `init_name`, else `/bin/true`).
//!
//! Each jail parameter is one argv element `name=value`; jail(8) splits it
//! at the first `=` and passes the value to the kernel, never to a shell. The
//! only shell strings are jail(8)'s `exec.start`, which hold constants or a
//! path checked by `guard::check_init`.

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
    // Linux tools read /proc/mounts; enforce_statfs=1 shows mounts below the
    // jail root only. Native jails see just their own root.
    let enforce_statfs = if vm.is_lx() { 1 } else { 2 };
    vec![
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
    ]
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

/// The tenant's `exec.start`: a constant, or a checked `init_name` for lx.
fn tenant_init(vm: &VmSpec) -> String {
    if vm.is_lx() {
        vm.init_name.clone().unwrap_or_else(|| "/bin/true".into())
    } else {
        "/bin/sh /etc/rc".into()
    }
}

/// `jexec <uuid> /usr/sbin/jail -c …` for the tenant (run by the outer jail).
pub fn tenant_create(vm: &VmSpec, cfg: &Config) -> Step {
    let outer = layout::outer(vm);
    let mut a = vec![
        "jexec".to_string(),
        outer.clone(),
        "/usr/sbin/jail".into(),
        "-c".into(),
        format!("name={}", layout::TENANT),
        format!("path={}", layout::TENANT_PATH_IN_OUTER),
        "ip4=inherit".into(),
        "ip6=inherit".into(),
        "children.max=0".into(),
    ];
    a.extend(common_params(vm, cfg));
    a.push(format!("exec.consolelog={}", layout::CONSOLE_LOG_IN_OUTER));
    // jail(8) waits for exec.start; a hung rc would hang `vmadm start`
    // forever. After this many seconds jail(8) fails and the plan rolls back.
    a.push(format!("exec.timeout={TENANT_BOOT_TIMEOUT_SECS}"));
    a.push(format!("exec.start={}", tenant_init(vm)));
    a.push("persist".into());
    Step::run_undo(
        argv(a),
        argv(["jexec", &outer, "/usr/sbin/jail", "-R", layout::TENANT]),
    )
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
    for s in mounts::mount(vm, cfg.devfs_ruleset) {
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
    p.push(tenant_create(vm, cfg));
    Ok(p)
}
