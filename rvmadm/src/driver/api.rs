//! The Driver trait: what ops needs from a host to run jails.
//!
//! A driver never reads or writes VM records; ops hands it a validated
//! [`VmSpec`] and turns its answers into SmartOS states. Runtime state is
//! always asked from the OS (jail ids, init pid and start time), never cached.
//! Updates arrive as a typed [`DatasetChange`]/[`Limit`] set and signals as a
//! [`Signal`], which each driver resolves for its OS.

use super::change::{DatasetChange, Limit};
use super::freebsd::{PlanError, PlanFailed};
use super::signal::Signal;
use crate::exec::ExecError;
use crate::spec::VmSpec;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

/// What the OS says about one VM right now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeState {
    /// True while the jail's init runs.
    pub running: bool,
    /// The init process id as seen from the host.
    pub pid: Option<u32>,
    /// ISO-8601 UTC with milliseconds, from the init's start time.
    pub boot_timestamp: Option<String>,
    /// The OS's numeric id for the running jail (FreeBSD jid), if any.
    pub zoneid: Option<i64>,
}

/// How [`Driver::stop`] stops a VM. The default is graceful with a 60 s
/// grace period, as `vmadm stop` without flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopOptions {
    /// Skip the graceful phase.
    pub force: bool,
    /// Grace period before the hard kill.
    pub timeout: Duration,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions {
            force: false,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Why a driver could not do what ops asked. Command failures keep their
/// argv and stderr (inside [`ExecError`]), so the message says what ran.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// This host (or this configuration) cannot do the action at all; the
    /// text names what is missing and, where it can, how to fix it.
    #[error("{0} is not supported on this host")]
    NotSupported(String),
    /// A host command could not be spawned or exited with an error.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// A zfs operation on the VM's dataset failed.
    #[error(transparent)]
    Zfs(#[from] crate::zfs::ZfsError),
    /// Reading or writing a host file (bundle, pid file, sysfs) failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The action needs a running init and there is none.
    #[error("{0} is not running")]
    NotRunning(Uuid),
    /// A FreeBSD plan refused the VM's values before touching the host.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A step of a FreeBSD plan failed; the steps before it were undone.
    #[error("{what} {uuid} failed: {source}")]
    PlanFailed {
        /// The action whose plan it was (`start`, `stop`, …).
        what: &'static str,
        /// The VM the plan was for.
        uuid: Uuid,
        /// The failed step, its argv and stderr, and what was undone.
        source: Box<PlanFailed>,
    },
    /// The kernel refused bridge VLAN filtering (Linux): the caller may fall
    /// back to a bridge per VLAN.
    #[error(transparent)]
    NoVlanFiltering(ExecError),
    /// A link name is taken (Linux), typically by a host veth of the
    /// previous boot that the kernel has not freed yet.
    #[error(transparent)]
    LinkExists(ExecError),
    /// The VM's dataset is not laid out as a zone (`root/` missing, or
    /// `root`/`data` a symlink or not a directory): nothing was mounted.
    #[error(transparent)]
    Layout(#[from] super::zone_root::ZoneLayoutError),
    /// Any other failure, described in full by its text (the VM's uuid
    /// included where it helps).
    #[error("{0}")]
    Other(String),
}

/// The result of every [`Driver`] method.
pub type DriverResult<T> = Result<T, DriverError>;

/// A host that runs jails: FreeBSD jails, Linux OCI containers, a stand-in
/// that refuses everything, or the in-memory fake of the ops tests. ops
/// holds the locks and the records; a driver only acts on the host and
/// reports what the host says, so every method takes the VM's validated
/// spec and never a record.
pub trait Driver: Send + Sync {
    /// Short name for messages (`linux`, `freebsd`, `none`).
    fn name(&self) -> &'static str;

    /// The state of every VM vmadm knows about, in one query (never a process
    /// per VM). VMs absent from the answer are not running.
    fn states(&self, uuids: &[Uuid]) -> DriverResult<HashMap<Uuid, RuntimeState>>;

    /// Boots a stopped VM. On failure every step already taken is undone.
    fn start(&self, vm: &VmSpec) -> DriverResult<()>;

    /// Does ahead of [`Driver::start`] the part of a boot that needs
    /// neither the VM's dataset nor its record, so that create can do it
    /// while the clone is made (Linux: the network namespace, veths,
    /// addresses and anti-spoofing rules). True when something was made:
    /// the next `start` of the VM by this driver uses it; without one,
    /// [`Driver::cleanup`] removes it. On failure nothing prepared is left.
    /// The default prepares nothing.
    fn prepare_start(&self, vm: &VmSpec) -> DriverResult<bool> {
        let _ = vm;
        Ok(false)
    }

    /// Stops a running VM: graceful, then forced after `opts.timeout`.
    fn stop(&self, vm: &VmSpec, opts: StopOptions) -> DriverResult<()>;

    /// Sends a signal to the VM's init (FreeBSD: to every tenant process).
    fn kill(&self, vm: &VmSpec, signal: Signal) -> DriverResult<()>;

    /// Applies an update's changes to the VM's dataset, running or not.
    /// Called before the record is saved, so a refused change leaves the
    /// record as it was.
    fn update_dataset(&self, vm: &VmSpec, changes: &[DatasetChange]) -> DriverResult<()>;

    /// Applies changed limits to a running VM where the OS allows it, with
    /// the amounts in `vm`. Returns the limits that need a reboot instead.
    fn update_live(&self, vm: &VmSpec, limits: &[Limit]) -> DriverResult<Vec<Limit>>;

    /// Re-applies a running VM's NIC protections (anti-spoofing flags, `ips`,
    /// `allowed_ips`) after an update changed its NICs; a stopped VM reads
    /// them at boot. The default has nothing to apply.
    fn update_nics(&self, vm: &VmSpec) -> DriverResult<()> {
        let _ = vm;
        Ok(())
    }

    /// An interactive login shell on the caller's terminal; returns its exit code.
    fn console(&self, vm: &VmSpec) -> DriverResult<i32>;

    /// Runs one command in the VM with the caller's stdio; returns its exit code.
    fn exec(&self, vm: &VmSpec, argv: &[String]) -> DriverResult<i32>;

    /// Removes whatever a crashed start or stop left behind (interfaces,
    /// mounts, runtime state). Safe to call on a clean, stopped VM.
    fn cleanup(&self, vm: &VmSpec) -> DriverResult<()>;

    /// Checks that a freshly cloned dataset mounted at `zonepath` has the
    /// zone layout (`root/` a real directory, `data` absent or a real
    /// directory), before create mounts the delegated dataset at
    /// `<zonepath>/data` or writes anything below it. Every host runs the
    /// same no-follow check ([`super::zone_root::check`]); the ops tests'
    /// fake answers without a file system.
    fn check_layout(&self, zonepath: &Path) -> DriverResult<()> {
        Ok(super::zone_root::check(zonepath)?)
    }

    /// The most of `limit` (in its property's unit) this host can give a
    /// VM, when there is such a bound; `None` when any amount is enforced
    /// as asked. ops refuses a create or update that asks for more, and
    /// says so when a default comes out above it. The default has none.
    fn limit_ceiling(&self, limit: Limit) -> Option<u64> {
        let _ = limit;
        None
    }

    /// Properties this driver stores but cannot enforce, each with the
    /// reason; ops says so when a create or update gives one.
    fn unenforced(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
}
