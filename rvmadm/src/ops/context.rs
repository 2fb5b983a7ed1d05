//! What every verb works with: the configuration, the one command runner,
//! the host's driver and the record store.

use super::error::{OpsError, OpsResult};
use crate::config::Config;
use crate::driver::{self, Driver, RuntimeState};
use crate::exec::{CommandRunner, SystemRunner};
use crate::spec::VmSpec;
use crate::store::{Record, Store};
use crate::zfs::Zfs;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub struct Ctx {
    pub config: Config,
    pub runner: Arc<dyn CommandRunner>,
    pub driver: Box<dyn Driver>,
    pub store: Store,
}

impl Ctx {
    /// The context for this host: config from `$VMADM_CONFIG` or the default
    /// path, real processes, the configured driver.
    pub fn from_env() -> OpsResult<Ctx> {
        let (config, _) = Config::load()?;
        let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner);
        let driver = driver::for_host(&config, runner.clone());
        Ok(Ctx::new(config, runner, driver))
    }

    pub fn new(config: Config, runner: Arc<dyn CommandRunner>, driver: Box<dyn Driver>) -> Ctx {
        let store = Store::new(&config.state_dir);
        Ctx {
            config,
            runner,
            driver,
            store,
        }
    }

    pub fn zfs(&self) -> Zfs<'_> {
        Zfs::new(self.runner.as_ref())
    }

    /// Loads a record or fails with SmartOS's "No such zone configured".
    pub fn record(&self, uuid: &Uuid) -> OpsResult<Record> {
        self.store
            .load(uuid)?
            .ok_or_else(|| OpsError::no_such_vm(uuid))
    }

    /// The typed view drivers take.
    pub fn spec(&self, rec: &Record) -> OpsResult<VmSpec> {
        VmSpec::from_record(&rec.vm).map_err(|e| {
            OpsError::Failed(format!(
                "VM record {} is inconsistent: {e}",
                rec.vm.uuid.as_deref().unwrap_or("?")
            ))
        })
    }

    /// Runtime state of one VM.
    pub fn runtime(&self, uuid: &Uuid) -> OpsResult<Option<RuntimeState>> {
        Ok(self.driver.states(&[*uuid])?.remove(uuid))
    }

    /// Runtime state of many VMs, in one driver query.
    pub fn runtimes(&self, uuids: &[Uuid]) -> OpsResult<HashMap<Uuid, RuntimeState>> {
        Ok(self.driver.states(uuids)?)
    }

    pub fn is_running(&self, uuid: &Uuid) -> OpsResult<bool> {
        Ok(self.runtime(uuid)?.is_some_and(|r| r.running))
    }
}
