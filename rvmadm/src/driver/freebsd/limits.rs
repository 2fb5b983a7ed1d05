//! Resource limits: SmartOS properties → rctl(8) rules on the tenant jail, and
//! the dataset quota a start re-applies.
//!
//! Rules name the tenant, `jail:<uuid>.tenant`, not the outer jail. The
//! kernel links a process to the rules of its *own* jail only whenever its
//! credential changes (sys/kern/kern_rctl.c, `rctl_proc_ucred_changed()`
//! takes `cr_prison->pr_prison_racct` and no parent), and every tenant
//! process descends from one that jail(8) attached to the tenant; rules on
//! the outer name would therefore never limit the tenant, although its usage
//! still adds up in the outer jail (`racct` charges parents), which made
//! `rctl -u` look right. A rule may name a jail before it exists (the
//! subject is a `prison_racct` found or made by name), so the rules are in
//! place before the tenant's first process. They live in the kernel apart
//! from the jail: a start clears stale ones (on both names, since earlier
//! versions put them on the outer jail) and adds the current set, a stop
//! removes them all. rctl needs `kern.racct.enable=1`, a
//! boot-time tunable; the start plan checks it first so a host without it
//! fails before anything was changed, with a message that says what to do.
//! The kernel replaces a `deny` rule that differs only by amount, so a live
//! update is a plain `rctl -a`.

use super::layout;
use super::plan::{argv, Action, Step};
use crate::driver::{dataset, Limit};
use crate::spec::{Limits, VmSpec};

/// One SmartOS limit and the rctl resources it limits.
struct Mapping {
    limit: Limit,
    resources: &'static [&'static str],
    /// Suffix of the amount (`M` for MiB properties, empty for counts).
    unit: &'static str,
    value: fn(&Limits) -> Option<u64>,
}

fn nonzero(v: u64) -> Option<u64> {
    (v > 0).then_some(v)
}

const MAPPINGS: &[Mapping] = &[
    Mapping {
        limit: Limit::MaxPhysicalMemory,
        resources: &["memoryuse"],
        unit: "M",
        value: |l| nonzero(l.max_physical_memory),
    },
    Mapping {
        limit: Limit::MaxSwap,
        resources: &["swapuse"],
        unit: "M",
        value: |l| nonzero(l.max_swap),
    },
    Mapping {
        limit: Limit::MaxLockedMemory,
        resources: &["memorylocked"],
        unit: "M",
        value: |l| nonzero(l.max_locked_memory),
    },
    Mapping {
        limit: Limit::MaxShmMemory,
        resources: &["shmsize"],
        unit: "M",
        value: |l| nonzero(l.max_shm_memory),
    },
    Mapping {
        limit: Limit::CpuCap,
        resources: &["pcpu"],
        unit: "",
        value: |l| l.cpu_cap.and_then(nonzero),
    },
    // LWPs are threads; maxproc as well so a fork bomb stops at the same count.
    Mapping {
        limit: Limit::MaxLwps,
        resources: &["maxproc", "nthr"],
        unit: "",
        value: |l| nonzero(l.max_lwps),
    },
    Mapping {
        limit: Limit::MaxMsgIds,
        resources: &["nmsgq"],
        unit: "",
        value: |l| nonzero(l.max_msg_ids),
    },
    Mapping {
        limit: Limit::MaxSemIds,
        resources: &["nsem"],
        unit: "",
        value: |l| nonzero(l.max_sem_ids),
    },
    Mapping {
        limit: Limit::MaxShmIds,
        resources: &["nshm"],
        unit: "",
        value: |l| nonzero(l.max_shm_ids),
    },
];

/// The rctl subject every rule names: the tenant jail.
fn subject(vm: &VmSpec) -> String {
    format!("jail:{}", layout::tenant(vm))
}

/// The outer jail's subject; only ever cleared (rules of older versions).
fn outer_subject(vm: &VmSpec) -> String {
    format!("jail:{}", layout::outer(vm))
}

/// Fails the plan up front when RACCT is off.
pub fn racct_check() -> Step {
    Step::action(Action::Expect {
        argv: argv(["sysctl", "-n", "kern.racct.enable"]),
        expect: "1".into(),
        message: "resource limits need RACCT: add kern.racct.enable=1 to /boot/loader.conf \
                  and reboot (it cannot be changed at run time)"
            .into(),
    })
}

fn add_steps(vm: &VmSpec, m: &Mapping) -> Vec<Step> {
    let sub = subject(vm);
    match (m.value)(&vm.limits) {
        Some(v) => m
            .resources
            .iter()
            .map(|r| {
                Step::run_undo(
                    argv(["rctl", "-a", &format!("{sub}:{r}:deny={v}{}", m.unit)]),
                    argv(["rctl", "-r", &format!("{sub}:{r}:deny")]),
                )
            })
            .collect(),
        None => Vec::new(),
    }
}

/// Start: clear leftovers from a crash, then add every rule (each undone on
/// failure).
pub fn apply(vm: &VmSpec) -> Vec<Step> {
    let mut steps = remove(vm);
    for m in MAPPINGS {
        steps.extend(add_steps(vm, m));
    }
    steps
}

/// Stop: remove every rule of the VM, on both names (none left is fine).
pub fn remove(vm: &VmSpec) -> Vec<Step> {
    vec![
        Step::try_run(argv(["rctl", "-r", &subject(vm)])),
        Step::try_run(argv(["rctl", "-r", &outer_subject(vm)])),
    ]
}

/// Update of one limit: set the new amount, or drop the rule when the limit
/// was cleared. `None` when FreeBSD has no rctl for it (`cpu_shares`,
/// `zfs_io_priority`).
pub fn update(vm: &VmSpec, limit: Limit) -> Option<Vec<Step>> {
    let m = MAPPINGS.iter().find(|m| m.limit == limit)?;
    if (m.value)(&vm.limits).is_some() {
        // No undo: a live update that fails half-way leaves the old amounts,
        // which the next start replaces anyway.
        Some(
            add_steps(vm, m)
                .into_iter()
                .map(|mut s| {
                    s.undo = None;
                    s
                })
                .collect(),
        )
    } else {
        let sub = subject(vm);
        Some(
            m.resources
                .iter()
                .map(|r| Step::try_run(argv(["rctl", "-r", &format!("{sub}:{r}")])))
                .collect(),
        )
    }
}

/// `zfs set quota` on the VM's dataset (GiB; 0 = none).
pub fn quota(vm: &VmSpec) -> Step {
    let value = format!("quota={}", dataset::quota_value(vm.limits.quota));
    Step::run(argv(["zfs", "set", &value, &vm.zfs_filesystem]))
}
