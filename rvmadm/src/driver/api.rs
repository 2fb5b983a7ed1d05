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

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{0} is not supported on this host")]
    NotSupported(String),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Zfs(#[from] crate::zfs::ZfsError),
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
        what: &'static str,
        uuid: Uuid,
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
    #[error("{0}")]
    Other(String),
}

pub type DriverResult<T> = Result<T, DriverError>;

pub trait Driver: Send + Sync {
    /// Short name for messages (`linux`, `freebsd`, `none`).
    fn name(&self) -> &'static str;

    /// The state of every VM vmadm knows about, in one query (never a process
    /// per VM). VMs absent from the answer are not running.
    fn states(&self, uuids: &[Uuid]) -> DriverResult<HashMap<Uuid, RuntimeState>>;

    /// Boots a stopped VM. On failure every step already taken is undone.
    fn start(&self, vm: &VmSpec) -> DriverResult<()>;

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

    /// An interactive login shell on the caller's terminal; returns its exit code.
    fn console(&self, vm: &VmSpec) -> DriverResult<i32>;

    /// Runs one command in the VM with the caller's stdio; returns its exit code.
    fn exec(&self, vm: &VmSpec, argv: &[String]) -> DriverResult<i32>;

    /// Removes whatever a crashed start or stop left behind (interfaces,
    /// mounts, runtime state). Safe to call on a clean, stopped VM.
    fn cleanup(&self, vm: &VmSpec) -> DriverResult<()>;
}
