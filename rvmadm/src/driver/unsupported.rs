//! The driver used where no real one is available (or configured `none`):
//! nothing runs, so every VM is stopped and every action says so plainly.
//! The VM's dataset still exists, so dataset changes of an update apply.

use super::api::{Driver, DriverError, DriverResult, RuntimeState, StopOptions};
use super::change::{DatasetChange, Limit};
use super::dataset;
use super::signal::Signal;
use crate::exec::CommandRunner;
use crate::spec::VmSpec;
use crate::zfs::Zfs;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// The `none` driver: reports every VM stopped, refuses start, stop, kill,
/// console and exec with [`DriverError::NotSupported`], and still applies
/// dataset changes.
pub struct Unsupported {
    runner: Arc<dyn CommandRunner>,
}

impl Unsupported {
    /// `runner` carries the dataset changes of updates.
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Unsupported { runner }
    }
}

fn no<T>(what: &str) -> DriverResult<T> {
    Err(DriverError::NotSupported(what.to_string()))
}

impl Driver for Unsupported {
    fn name(&self) -> &'static str {
        "none"
    }
    fn states(&self, _uuids: &[Uuid]) -> DriverResult<HashMap<Uuid, RuntimeState>> {
        Ok(HashMap::new())
    }
    fn start(&self, _vm: &VmSpec) -> DriverResult<()> {
        no("starting a jail")
    }
    fn stop(&self, _vm: &VmSpec, _opts: StopOptions) -> DriverResult<()> {
        no("stopping a jail")
    }
    fn kill(&self, _vm: &VmSpec, _signal: Signal) -> DriverResult<()> {
        no("signalling a jail")
    }
    fn update_dataset(&self, vm: &VmSpec, changes: &[DatasetChange]) -> DriverResult<()> {
        dataset::apply(&Zfs::new(self.runner.as_ref()), vm, changes)
    }
    fn update_live(&self, _vm: &VmSpec, limits: &[Limit]) -> DriverResult<Vec<Limit>> {
        // Nothing runs here, so nothing could take a change live.
        Ok(limits.to_vec())
    }
    fn console(&self, _vm: &VmSpec) -> DriverResult<i32> {
        no("console")
    }
    fn exec(&self, _vm: &VmSpec, _argv: &[String]) -> DriverResult<i32> {
        no("exec")
    }
    fn cleanup(&self, _vm: &VmSpec) -> DriverResult<()> {
        Ok(())
    }
}
