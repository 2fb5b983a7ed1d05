//! `LinuxDriver`: the [`Driver`] trait for Linux hosts, delegating each verb
//! to the module that owns that concern (lifecycle, update, console, state).

use super::runtime::Runtime;
use crate::config::Config;
use crate::driver::zone_root::{self, ZoneLayoutError};
use crate::driver::{
    dataset, DatasetChange, Driver, DriverResult, Limit, RuntimeState, Signal, StopOptions,
};
use crate::exec::CommandRunner;
use crate::spec::VmSpec;
use crate::zfs::Zfs;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Runs jails with an OCI runtime inside vmadm-owned network namespaces.
pub struct LinuxDriver {
    pub(super) runner: Arc<dyn CommandRunner>,
    pub(super) run_dir: PathBuf,
    pub(super) runtime: Runtime,
    pub(super) networks: BTreeMap<String, String>,
    pub(super) create_bridges: bool,
    /// Where the cgroup hierarchies are mounted (for probing and for
    /// removing cgroups a crashed runtime left).
    pub(super) cgroup_root: PathBuf,
    /// The configuration the `filesystems` policy is built from at every
    /// start (allowlist and the directories it never opens).
    pub(super) config: Config,
    /// The program run as a jail's console log keeper (with
    /// [`super::console_log::KEEPER_ARG`]): this very executable.
    pub(super) log_keeper: PathBuf,
    /// Jails whose network [`Driver::prepare_start`] made in this process
    /// for a start to come (create overlaps it with the clone).
    pub(super) prepared: Mutex<HashSet<Uuid>>,
    /// Started by a preparation and handed to the start that follows it
    /// (see [`super::attach_warm`]).
    pub(super) warming: Mutex<Option<super::attach_warm::AttachWarmer>>,
}

impl LinuxDriver {
    /// A driver with `config`'s runtime, run directory and nic_tag → bridge
    /// map, running commands through `runner`. Nothing is checked here: a
    /// missing runtime is reported by the first start.
    pub fn new(config: &Config, runner: Arc<dyn CommandRunner>) -> LinuxDriver {
        LinuxDriver {
            runner,
            run_dir: config.run_dir.clone(),
            runtime: Runtime {
                program: config.runtime.clone(),
                root: config.runtime_root.clone(),
            },
            networks: config.networks.clone(),
            create_bridges: config.create_bridges,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            config: config.clone(),
            log_keeper: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("vmadm")),
            prepared: Mutex::new(HashSet::new()),
            warming: Mutex::new(None),
        }
    }

    /// The same driver with `program` as the console log keeper, for hosts
    /// of this library that are not `vmadm` (test binaries): `program`
    /// must be a `vmadm` binary.
    pub fn with_log_keeper(mut self, program: PathBuf) -> LinuxDriver {
        self.log_keeper = program;
        self
    }
}

/// The Linux zone layout check: `root/` and `data` as every driver checks
/// them, and no tree at the top (an image made by an earlier rvmadm, whose
/// `root` is the tree's home directory of root).
pub(super) fn check_zone_layout(zonepath: &Path) -> Result<(), ZoneLayoutError> {
    zone_root::check_without_tree_at_top(zonepath)
}

impl Driver for LinuxDriver {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn states(&self, uuids: &[Uuid]) -> DriverResult<HashMap<Uuid, RuntimeState>> {
        Ok(super::state::states(&self.run_dir, uuids))
    }

    fn start(&self, vm: &VmSpec) -> DriverResult<()> {
        self.start_jail(vm)
    }

    fn prepare_start(&self, vm: &VmSpec) -> DriverResult<bool> {
        self.prepare_jail(vm)
    }

    fn stop(&self, vm: &VmSpec, opts: StopOptions) -> DriverResult<()> {
        self.stop_jail(vm, opts)
    }

    fn kill(&self, vm: &VmSpec, signal: Signal) -> DriverResult<()> {
        self.signal_jail(vm, signal)
    }

    fn update_dataset(&self, vm: &VmSpec, changes: &[DatasetChange]) -> DriverResult<()> {
        dataset::apply(&Zfs::new(self.runner.as_ref()), vm, changes)
    }

    fn update_live(&self, vm: &VmSpec, limits: &[Limit]) -> DriverResult<Vec<Limit>> {
        self.update_jail(vm, limits)
    }

    fn update_nics(&self, vm: &VmSpec) -> DriverResult<()> {
        self.update_jail_nics(vm)
    }

    fn console(&self, vm: &VmSpec) -> DriverResult<i32> {
        self.console_jail(vm)
    }

    fn exec(&self, vm: &VmSpec, argv: &[String]) -> DriverResult<i32> {
        self.exec_jail(vm, argv)
    }

    fn check_layout(&self, zonepath: &Path) -> DriverResult<()> {
        Ok(check_zone_layout(zonepath)?)
    }

    fn limit_ceiling(&self, limit: Limit) -> Option<u64> {
        // RLIMIT_MEMLOCK is what a jail's locked memory is held to; the
        // runtime can set it above vmadm's own hard limit only with
        // CAP_SYS_RESOURCE (see `sys::memlock_ceiling`).
        match limit {
            Limit::MaxLockedMemory => super::sys::memlock_ceiling().map(|b| b >> 20),
            _ => None,
        }
    }

    fn unenforced(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "zfs_io_priority",
                "Linux schedules ZFS I/O outside the jail's cgroup, so no per-jail I/O weight applies",
            ),
            (
                "nics.*.allowed_dhcp_cids",
                "the client identifier is a DHCP option at no fixed offset, which nftables cannot find, so any identifier may be sent",
            ),
        ]
    }

    fn cleanup(&self, vm: &VmSpec) -> DriverResult<()> {
        let dir = super::names::JailDir::new(&self.run_dir, &vm.uuid);
        if super::state::running(&dir).is_some() {
            // A live jail is not debris; stop is the verb for it.
            return Ok(());
        }
        // The run directory and the namespace are made before anything
        // else, so without them (and without runtime state) there is
        // nothing to repair and no process needs to run.
        if !self.has_debris(vm, &dir) {
            return Ok(());
        }
        self.teardown(vm, true)
    }
}
