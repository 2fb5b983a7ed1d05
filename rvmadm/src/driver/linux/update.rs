//! Live update of a running jail's limits through the runtime's `update`
//! verb (and the clone's quota through ZFS). Properties the running jail
//! cannot take are returned so ops can say a reboot applies them.

use super::driver::LinuxDriver;
use super::names::{container_id, JailDir};
use super::{bundle, runtime, state};
use crate::driver::{DriverError, DriverResult};
use crate::zfs::Zfs;

/// Changed in place by `update --resources`.
const LIVE_LIMITS: &[&str] = &[
    "max_physical_memory",
    "max_swap",
    "cpu_cap",
    "cpu_shares",
    "max_lwps",
];

/// Read only at boot: the bundle, the namespace or the init depend on them.
const NEED_REBOOT: &[&str] = &[
    "tmpfs",
    "nics",
    "resolvers",
    "hostname",
    "dns_domain",
    "init_name",
    "filesystems",
    "routes",
    "max_locked_memory",
    "max_shm_memory",
];

/// Which of `changed` a running jail takes live, and which need a reboot.
pub fn classify(changed: &[String]) -> (bool, bool, Vec<String>) {
    let limits = changed.iter().any(|c| LIVE_LIMITS.contains(&c.as_str()));
    let quota = changed.iter().any(|c| c == "quota");
    let reboot = changed
        .iter()
        .filter(|c| NEED_REBOOT.contains(&c.as_str()) || c.starts_with("nics") || c.contains("nic"))
        .cloned()
        .collect();
    (limits, quota, reboot)
}

impl LinuxDriver {
    pub(super) fn update_jail(
        &self,
        vm: &crate::spec::VmSpec,
        changed: &[String],
    ) -> DriverResult<Vec<String>> {
        let (limits, quota, reboot) = classify(changed);
        if quota {
            Zfs::new(self.runner.as_ref()).set_quota_gib(&vm.zfs_filesystem, vm.limits.quota)?;
        }
        let dir = JailDir::new(&self.run_dir, &vm.uuid);
        if state::running(&dir).is_none() {
            // The next boot builds its bundle from the new spec.
            return Ok(Vec::new());
        }
        if limits {
            let host = runtime::probe(&self.runtime, &self.cgroup_root)?;
            let mut res = bundle::resources(&vm.limits, host)
                .map_err(|e| DriverError::Other(format!("{}: {e}", vm.uuid)))?;
            if vm.limits.cpu_cap.is_none() {
                // Removing a cap must be said explicitly: -1 = unlimited.
                if let Some(cpu) = res.cpu_mut() {
                    cpu.set_quota(Some(-1));
                    cpu.set_period(Some(bundle::CPU_PERIOD_US));
                }
            }
            let json = serde_json::to_vec(&res).map_err(std::io::Error::other)?;
            let argv = self.runtime.update(&container_id(&vm.uuid));
            let out = self.runner.output(&argv, Some(&json))?;
            if !out.success() {
                return Err(crate::exec::ExecError::Failed {
                    argv,
                    status: out.status,
                    stderr: out.stderr_str(),
                }
                .into());
            }
        }
        Ok(reboot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let c = |v: &[&str]| classify(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(c(&["max_physical_memory"]), (true, false, vec![]));
        assert_eq!(c(&["quota", "alias"]), (false, true, vec![]));
        assert_eq!(
            c(&["cpu_cap", "tmpfs", "resolvers"]),
            (
                true,
                false,
                vec!["tmpfs".to_string(), "resolvers".to_string()]
            )
        );
    }
}
