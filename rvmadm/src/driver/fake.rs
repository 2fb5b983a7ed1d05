//! An in-memory driver for ops unit tests: remembers which VMs "run" and
//! records the calls made, without touching the host.

use super::api::{Driver, DriverError, DriverResult, RuntimeState, StopOptions};
use super::change::{DatasetChange, Limit};
use super::signal::Signal;
use super::zone_root::ZoneLayoutError;
use crate::spec::VmSpec;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use uuid::Uuid;

/// A driver whose VMs "run" in a map: `start` marks a VM running (pid
/// 4242, jail id 1), `stop` forgets it, and every call is recorded as a
/// line for the test to check.
#[derive(Debug, Default)]
pub struct FakeDriver {
    running: Mutex<HashMap<Uuid, RuntimeState>>,
    calls: Mutex<Vec<String>>,
    /// When set, `start` fails with this message.
    pub fail_start: Option<String>,
    /// Limits `update_live` reports as needing a reboot (when asked for).
    pub reboot_limits: Vec<Limit>,
    /// When set, `check_layout` answers that the dataset has no `root/`.
    pub missing_root: bool,
}

impl FakeDriver {
    /// No VM running, no call recorded, `start` succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls made so far, oldest first, one line each
    /// (`start <uuid>`, `stop <uuid> force=false`, …).
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, what: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(what);
        }
    }

    /// Marks a VM running or stopped without recording a call, as if the
    /// OS had changed under vmadm (a jail that died, a host that rebooted).
    pub fn set_running(&self, uuid: Uuid, running: bool) {
        if let Ok(mut r) = self.running.lock() {
            if running {
                r.insert(
                    uuid,
                    RuntimeState {
                        running: true,
                        pid: Some(4242),
                        boot_timestamp: Some("2026-01-01T00:00:00.000Z".into()),
                        zoneid: Some(1),
                    },
                );
            } else {
                r.remove(&uuid);
            }
        }
    }
}

impl Driver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn states(&self, uuids: &[Uuid]) -> DriverResult<HashMap<Uuid, RuntimeState>> {
        let r = self.running.lock().map(|r| r.clone()).unwrap_or_default();
        Ok(r.into_iter().filter(|(u, _)| uuids.contains(u)).collect())
    }
    fn start(&self, vm: &VmSpec) -> DriverResult<()> {
        self.record(format!("start {}", vm.uuid));
        if let Some(msg) = &self.fail_start {
            return Err(DriverError::Other(msg.clone()));
        }
        self.set_running(vm.uuid, true);
        Ok(())
    }
    fn stop(&self, vm: &VmSpec, opts: StopOptions) -> DriverResult<()> {
        self.record(format!("stop {} force={}", vm.uuid, opts.force));
        self.set_running(vm.uuid, false);
        Ok(())
    }
    fn kill(&self, vm: &VmSpec, signal: Signal) -> DriverResult<()> {
        self.record(format!("kill {} {signal}", vm.uuid));
        Ok(())
    }
    fn update_dataset(&self, vm: &VmSpec, changes: &[DatasetChange]) -> DriverResult<()> {
        self.record(format!("update dataset {} {changes:?}", vm.uuid));
        Ok(())
    }
    fn update_live(&self, vm: &VmSpec, limits: &[Limit]) -> DriverResult<Vec<Limit>> {
        let names: Vec<&str> = limits.iter().map(|l| l.property()).collect();
        self.record(format!("update {} {}", vm.uuid, names.join(",")));
        Ok(limits
            .iter()
            .filter(|l| self.reboot_limits.contains(l))
            .copied()
            .collect())
    }
    fn update_nics(&self, vm: &VmSpec) -> DriverResult<()> {
        self.record(format!("update nics {}", vm.uuid));
        Ok(())
    }
    fn console(&self, vm: &VmSpec) -> DriverResult<i32> {
        self.record(format!("console {}", vm.uuid));
        Ok(0)
    }
    fn exec(&self, vm: &VmSpec, argv: &[String]) -> DriverResult<i32> {
        self.record(format!("exec {} {}", vm.uuid, argv.join(" ")));
        Ok(0)
    }
    fn cleanup(&self, vm: &VmSpec) -> DriverResult<()> {
        self.record(format!("cleanup {}", vm.uuid));
        Ok(())
    }
    fn check_layout(&self, zonepath: &Path) -> DriverResult<()> {
        // Not recorded: it is a read-only question, asked by every create.
        if self.missing_root {
            return Err(ZoneLayoutError::MissingRoot {
                zonepath: zonepath.to_path_buf(),
                unmounted: false,
            }
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_stop_toggle_the_state_and_are_recorded() {
        let d = FakeDriver::new();
        let obj = serde_json::json!({
            "uuid": "5e2b9c5e-9c1a-4a7e-8d0c-2f4f7e1d3a11",
            "brand": "jail",
            "image_uuid": "11111111-2222-4333-8444-555555555555",
            "zpool": "zones",
        });
        let vm = VmSpec::from_object(obj.as_object().unwrap()).unwrap();
        d.start(&vm).unwrap();
        assert!(d.states(&[vm.uuid]).unwrap()[&vm.uuid].running);
        d.stop(&vm, StopOptions::default()).unwrap();
        assert!(d.states(&[vm.uuid]).unwrap().is_empty());
        assert_eq!(
            d.calls(),
            [
                format!("start {}", vm.uuid),
                format!("stop {} force=false", vm.uuid)
            ]
        );
    }
}
