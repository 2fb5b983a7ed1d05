//! The jail's seccomp filter: everything is allowed except system calls a
//! tenant never needs and that widen the kernel's attack surface — kernel
//! modules and kexec, new namespaces (`unshare`, `setns`), keyrings, BPF,
//! perf events, userfaultfd, clock and swap changes, handle-based opens.
//! Capabilities already refuse most of these; the filter is the second
//! wall, and it also closes what capabilities do not (unprivileged user
//! namespaces via `unshare`). They fail with EPERM, as if forbidden.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder,
};

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

/// The filter for the OCI spec.
pub fn profile() -> Result<LinuxSeccomp, String> {
    let deny = LinuxSyscallBuilder::default()
        .names(DENIED.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(libc::EPERM as u32)
        .build()
        .map_err(|e| e.to_string())?;
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(arches())
        .syscalls(vec![deny])
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
        // Nothing a normal init or shell needs.
        for needed in ["clone", "execve", "mount", "chroot", "kill"] {
            assert!(!DENIED.contains(&needed), "{needed} must stay allowed");
        }
    }
}
