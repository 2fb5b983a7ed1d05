//! The driver used where no real one is available (or configured `none`):
//! nothing runs, so every VM is stopped and every action says so plainly.

use super::api::{Driver, DriverError, DriverResult, RuntimeState, StopOptions};
use crate::spec::VmSpec;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct Unsupported;

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
    fn kill(&self, _vm: &VmSpec, _signal: i32) -> DriverResult<()> {
        no("signalling a jail")
    }
    fn update_live(&self, _vm: &VmSpec, changed: &[String]) -> DriverResult<Vec<String>> {
        Ok(changed.to_vec())
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
