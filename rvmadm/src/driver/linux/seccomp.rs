//! The jail's seccomp filter: everything is allowed except system calls a
//! tenant never needs and that widen the kernel's attack surface — kernel
//! modules and kexec, new namespaces (`unshare`, `setns`), keyrings, BPF,
//! perf events, userfaultfd, clock and swap changes, handle-based opens.
//! Capabilities already refuse most of these; the filter is the second
//! wall, and it also closes what capabilities do not (unprivileged user
//! namespaces via `unshare` or `clone`). They fail with EPERM, as if
//! forbidden; `clone3` answers ENOSYS so libc falls back to `clone`.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// `clone` flags that make a new namespace; a `clone` asking for any of
/// them is refused (as `unshare` is).
const NAMESPACE_FLAGS: &[u64] = &[
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
    0x0000_0080, // CLONE_NEWTIME
];

/// System calls refused inside a jail.
pub const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

fn arches() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

fn errno_rule(names: &[&str], errno: i32) -> Result<LinuxSyscall, String> {
    LinuxSyscallBuilder::default()
        .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno as u32)
        .build()
        .map_err(|e| e.to_string())
}

/// One rule per namespace flag: `clone` with `(flags & F) == F` → EPERM.
fn clone_rules() -> Result<Vec<LinuxSyscall>, String> {
    NAMESPACE_FLAGS
        .iter()
        .map(|flag| {
            let arg = LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(*flag)
                .value_two(*flag)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()
                .map_err(|e| e.to_string())?;
            LinuxSyscallBuilder::default()
                .names(vec!["clone".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::EPERM as u32)
                .args(vec![arg])
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The filter for the OCI spec.
pub fn profile() -> Result<LinuxSeccomp, String> {
    let mut rules = vec![errno_rule(DENIED, libc::EPERM)?];
    rules.extend(clone_rules()?);
    // clone3 passes its flags in memory, where a filter cannot look: answer
    // ENOSYS so the C library falls back to clone, which is filtered above.
    rules.push(errno_rule(&["clone3"], libc::ENOSYS)?);
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(arches())
        .syscalls(rules)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_namespace_and_module_calls_with_eperm() {
        let p = serde_json::to_value(profile().unwrap()).unwrap();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
        let names = p["syscalls"][0]["names"].as_array().unwrap();
        for must in [
            "unshare",
            "setns",
            "init_module",
            "kexec_load",
            "bpf",
            "keyctl",
        ] {
            assert!(names.iter().any(|n| n == must), "{must} not denied");
        }
        assert_eq!(p["syscalls"][0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(p["syscalls"][0]["errnoRet"], libc::EPERM);
        // clone is refused only with namespace flags; clone3 gets ENOSYS.
        let rules = p["syscalls"].as_array().unwrap();
        let clone_user = rules
            .iter()
            .find(|r| r["names"][0] == "clone" && r["args"][0]["value"] == 0x1000_0000u64)
            .unwrap();
        assert_eq!(clone_user["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone_user["args"][0]["valueTwo"], 0x1000_0000u64);
        let clone3 = rules.iter().find(|r| r["names"][0] == "clone3").unwrap();
        assert_eq!(clone3["errnoRet"], libc::ENOSYS);
        // Nothing a normal init or shell needs.
        for needed in ["clone", "execve", "mount", "chroot", "kill"] {
            assert!(!DENIED.contains(&needed), "{needed} must stay allowed");
        }
    }
}
