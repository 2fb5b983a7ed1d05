//! Picks the driver for this host from the configuration.

use super::api::{Driver, DriverError, DriverResult, RuntimeState, StopOptions};
use super::change::{DatasetChange, Limit};
use super::dataset;
use super::freebsd::FreeBsdDriver;
use super::linux::LinuxDriver;
use super::signal::Signal;
use super::unsupported::Unsupported;
use crate::config::Config;
use crate::exec::CommandRunner;
use crate::spec::VmSpec;
use crate::zfs::Zfs;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// The driver named by `config.driver` (`auto` = by the host OS).
pub fn for_host(config: &Config, runner: Arc<dyn CommandRunner>) -> Box<dyn Driver> {
    let wanted = match config.driver.as_str() {
        "auto" if cfg!(target_os = "linux") => "linux",
        "auto" if cfg!(target_os = "freebsd") => "freebsd",
        "auto" => "none",
        other => other,
    };
    match wanted {
        "linux" => Box::new(LinuxDriver::new(config, runner)),
        "none" => Box::new(Unsupported::new(runner)),
        "freebsd" => Box::new(FreeBsdDriver::new(config, runner)),
        other => Box::new(Misconfigured {
            why: format!(
                "unknown driver {other:?} in vmadm.toml (use auto, linux, freebsd or none)"
            ),
            runner,
        }),
    }
}

/// Stands in for a driver that cannot be built: every action reports why,
/// while reads (states) still work and show every VM stopped, and the
/// dataset side of updates applies as with the `none` driver.
struct Misconfigured {
    why: String,
    runner: Arc<dyn CommandRunner>,
}

impl Misconfigured {
    fn no<T>(&self) -> DriverResult<T> {
        Err(DriverError::NotSupported(self.why.clone()))
    }
}

impl Driver for Misconfigured {
    fn name(&self) -> &'static str {
        "none"
    }
    fn states(&self, _uuids: &[Uuid]) -> DriverResult<HashMap<Uuid, RuntimeState>> {
        Ok(HashMap::new())
    }
    fn start(&self, _vm: &VmSpec) -> DriverResult<()> {
        self.no()
    }
    fn stop(&self, _vm: &VmSpec, _opts: StopOptions) -> DriverResult<()> {
        self.no()
    }
    fn kill(&self, _vm: &VmSpec, _signal: Signal) -> DriverResult<()> {
        self.no()
    }
    fn update_dataset(&self, vm: &VmSpec, changes: &[DatasetChange]) -> DriverResult<()> {
        dataset::apply(&Zfs::new(self.runner.as_ref()), vm, changes)
    }
    fn update_live(&self, _vm: &VmSpec, _limits: &[Limit]) -> DriverResult<Vec<Limit>> {
        self.no()
    }
    fn console(&self, _vm: &VmSpec) -> DriverResult<i32> {
        self.no()
    }
    fn exec(&self, _vm: &VmSpec, _argv: &[String]) -> DriverResult<i32> {
        self.no()
    }
    fn cleanup(&self, _vm: &VmSpec) -> DriverResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::RecordingRunner;

    fn pick(driver: &str) -> &'static str {
        let cfg = Config {
            driver: driver.into(),
            ..Config::default()
        };
        for_host(&cfg, Arc::new(RecordingRunner::new())).name()
    }

    #[test]
    fn picks_by_config() {
        assert_eq!(pick("none"), "none");
        assert_eq!(pick("linux"), "linux");
        if cfg!(target_os = "linux") {
            assert_eq!(pick("auto"), "linux");
        }
        assert_eq!(pick("freebsd"), "freebsd");
        let cfg = Config {
            driver: "plan9".into(),
            ..Config::default()
        };
        let d = for_host(&cfg, Arc::new(RecordingRunner::new()));
        let e = d.cleanup_msg();
        assert!(e.contains("unknown driver"), "{e}");
    }

    trait Msg {
        fn cleanup_msg(&self) -> String;
    }
    impl Msg for Box<dyn Driver> {
        fn cleanup_msg(&self) -> String {
            let vm = crate::spec::VmSpec::from_object(
                serde_json::json!({"uuid": "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60", "brand": "jail",
                    "image_uuid": "11111111-2222-4333-8444-555555555555", "zpool": "zones"})
                .as_object()
                .unwrap(),
            )
            .unwrap();
            self.start(&vm).unwrap_err().to_string()
        }
    }
}
