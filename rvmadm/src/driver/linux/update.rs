//! Live update of a running jail's limits through the runtime's `update`
//! verb. Limits the running jail cannot take are returned so ops can say a
//! reboot applies them. The dataset side of an update is shared by every
//! driver (`driver::dataset`).

use super::driver::LinuxDriver;
use super::names::{container_id, JailDir};
use super::{bundle, runtime, state};
use crate::driver::{DriverError, DriverResult, Limit};
use crate::spec::VmSpec;

/// How a running jail takes a changed limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// Through `update --resources` (cgroup memory, swap, cpu, pids).
    Runtime,
    /// Only at the next boot: fixed in the bundle's rlimits or the IPC
    /// namespace's sysctls.
    NextBoot,
    /// Never: no per-jail I/O weight applies to ZFS on Linux (said at
    /// create and update, see `Driver::unenforced`).
    Ignored,
}

fn takes(limit: Limit) -> Takes {
    match limit {
        Limit::MaxPhysicalMemory
        | Limit::MaxSwap
        | Limit::CpuCap
        | Limit::CpuShares
        | Limit::MaxLwps => Takes::Runtime,
        Limit::MaxLockedMemory
        | Limit::MaxShmMemory
        | Limit::MaxMsgIds
        | Limit::MaxSemIds
        | Limit::MaxShmIds => Takes::NextBoot,
        Limit::ZfsIoPriority => Takes::Ignored,
    }
}

/// Whether the runtime must be told, and which limits need a reboot.
fn classify(limits: &[Limit]) -> (bool, Vec<Limit>) {
    let runtime = limits.iter().any(|l| takes(*l) == Takes::Runtime);
    let reboot = limits
        .iter()
        .copied()
        .filter(|l| takes(*l) == Takes::NextBoot)
        .collect();
    (runtime, reboot)
}

impl LinuxDriver {
    pub(super) fn update_jail(&self, vm: &VmSpec, limits: &[Limit]) -> DriverResult<Vec<Limit>> {
        let (runtime_update, reboot) = classify(limits);
        let dir = JailDir::new(&self.run_dir, &vm.uuid);
        if state::running(&dir).is_none() {
            // The next boot builds its bundle from the new spec.
            return Ok(Vec::new());
        }
        if runtime_update {
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

    /// After `update_nics` & co: a running jail's ports take the NICs' new
    /// addresses and anti-spoofing flags at once (SmartOS applies them live).
    pub(super) fn update_jail_nics(&self, vm: &VmSpec) -> DriverResult<()> {
        let dir = JailDir::new(&self.run_dir, &vm.uuid);
        if state::running(&dir).is_none() {
            return Ok(());
        }
        self.refresh_filters(vm, &dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(&[Limit::MaxPhysicalMemory]), (true, vec![]));
        assert_eq!(
            classify(&[Limit::MaxMsgIds]),
            (false, vec![Limit::MaxMsgIds])
        );
        assert_eq!(classify(&[Limit::ZfsIoPriority]), (false, vec![]));
        assert_eq!(
            classify(&[Limit::CpuCap, Limit::MaxLockedMemory, Limit::MaxShmMemory]),
            (true, vec![Limit::MaxLockedMemory, Limit::MaxShmMemory])
        );
        assert_eq!(classify(&[]), (false, vec![]));
    }
}
