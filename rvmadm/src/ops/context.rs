//! What every verb works with: the configuration, the one command runner,
//! the host's driver and the record store.

use super::error::{OpsError, OpsResult};
use crate::config::Config;
use crate::driver::{self, Driver, RuntimeState};
use crate::exec::{CommandRunner, SystemRunner};
use crate::spec::fs_policy::{FsPolicy, FsRequest};
use crate::spec::VmSpec;
use crate::store::{Record, Store};
use crate::zfs::Zfs;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// The host a verb acts on. The binaries build one with
/// [`Ctx::from_env`] and hand it to a verb; everything else in it is for
/// the verbs themselves.
pub struct Ctx {
    /// vmadm.toml as loaded.
    pub(crate) config: Config,
    /// Runs every external command (`zfs`, `jail`, `runc` …); shared with
    /// the driver so tests can record both.
    pub(crate) runner: Arc<dyn CommandRunner>,
    /// The host's driver (FreeBSD jails or Linux OCI), or a fake in tests.
    pub(crate) driver: Box<dyn Driver>,
    /// The VM records under the configured state directory.
    pub(crate) store: Store,
}

impl Ctx {
    /// The context for this host: config from `$VMADM_CONFIG` or the default
    /// path, real processes, the configured driver.
    pub fn from_env() -> OpsResult<Ctx> {
        let (config, _) = Config::load()?;
        Ok(Ctx::for_host(config))
    }

    /// The context for this host under `config`: real processes and the
    /// driver the configuration selects.
    pub(crate) fn for_host(config: Config) -> Ctx {
        let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner);
        let driver = driver::for_host(&config, runner.clone());
        Ctx::new(config, runner, driver)
    }

    /// A context from parts; the store follows `config.state_dir`.
    pub(crate) fn new(
        config: Config,
        runner: Arc<dyn CommandRunner>,
        driver: Box<dyn Driver>,
    ) -> Ctx {
        let store = Store::new(&config.state_dir);
        Ctx {
            config,
            runner,
            driver,
            store,
        }
    }

    /// Typed `zfs`/`zpool` commands through this context's runner.
    pub(crate) fn zfs(&self) -> Zfs<'_> {
        Zfs::new(self.runner.as_ref())
    }

    /// Refuses `filesystems` sources this host's allowlist does not permit
    /// ([`crate::spec::fs_policy`]). Asks zfs where `pool` is mounted only
    /// when there is an allowlist to check against.
    pub(crate) fn check_filesystems(&self, pool: &str, reqs: &[FsRequest]) -> OpsResult<()> {
        if reqs.is_empty() {
            return Ok(());
        }
        let mountpoint = if self.config.filesystem_sources.is_empty() {
            None
        } else {
            self.zfs().mountpoint(pool).ok()
        };
        FsPolicy::new(&self.config, mountpoint.as_deref())
            .check_all(reqs)
            .map(|_| ())
            .map_err(|e| OpsError::Failed(e.to_string()))
    }

    /// Loads a record or fails with SmartOS's "No such zone configured".
    pub(crate) fn record(&self, uuid: &Uuid) -> OpsResult<Record> {
        self.store
            .load(uuid)?
            .ok_or_else(|| OpsError::no_such_vm(uuid))
    }

    /// Refuses `vm` (about to be saved as `uuid`) when a NIC takes a MAC or
    /// IP another VM holds on its network (`spec::unique`). Records that
    /// cannot be read hold nothing here.
    pub(crate) fn check_addresses_free(
        &self,
        uuid: &Uuid,
        vm: &crate::spec::VmRecord,
    ) -> OpsResult<()> {
        if vm.nics.as_ref().is_none_or(|n| n.is_empty()) {
            return Ok(());
        }
        crate::spec::unique::check_vrrp(vm).map_err(|e| OpsError::Failed(e.to_string()))?;
        let all = self.store.load_all()?;
        let others = all
            .iter()
            .filter_map(|(u, r)| r.as_ref().ok().map(|r| (u, &r.vm)));
        crate::spec::unique::check_unique(uuid, vm, others, &self.config.networks)
            .map_err(|e| OpsError::Failed(e.to_string()))
    }

    /// The typed view drivers take.
    pub(crate) fn spec(&self, rec: &Record) -> OpsResult<VmSpec> {
        VmSpec::from_record(&rec.vm).map_err(|e| {
            OpsError::Failed(format!(
                "VM record {} is inconsistent: {e}",
                rec.vm.uuid.as_deref().unwrap_or("?")
            ))
        })
    }

    /// Runtime state of one VM.
    pub(crate) fn runtime(&self, uuid: &Uuid) -> OpsResult<Option<RuntimeState>> {
        Ok(self.driver.states(&[*uuid])?.remove(uuid))
    }

    /// Runtime state of many VMs, in one driver query (none for no VMs).
    pub(crate) fn runtimes(&self, uuids: &[Uuid]) -> OpsResult<HashMap<Uuid, RuntimeState>> {
        if uuids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self.driver.states(uuids)?)
    }

    /// True when the driver finds the VM running now; a VM the OS does
    /// not know is not running.
    pub(crate) fn is_running(&self, uuid: &Uuid) -> OpsResult<bool> {
        Ok(self.runtime(uuid)?.is_some_and(|r| r.running))
    }
}
