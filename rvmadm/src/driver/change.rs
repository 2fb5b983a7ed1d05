//! The typed change set of `vmadm update`: what an update asks of the host,
//! so each driver matches on a closed set instead of property names.
//!
//! Two kinds, applied at different moments: [`DatasetChange`]s touch the
//! VM's ZFS dataset and apply whether or not the VM runs; [`Limit`]s reach a
//! running jail only (a stopped one reads them from its spec at boot). Every
//! other changed property has no host effect until the next boot, so it is
//! not part of the set. New amounts of limits are read from the
//! [`crate::spec::VmSpec`] the driver is given with the set.

use std::fmt;

/// A resource limit a running jail may take without a reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `max_physical_memory`: the memory limit, in MiB.
    MaxPhysicalMemory,
    /// `max_swap`: memory plus swap, in MiB.
    MaxSwap,
    /// `max_locked_memory`: memory the jail may lock, in MiB.
    MaxLockedMemory,
    /// `max_shm_memory`: System V shared memory, in MiB.
    MaxShmMemory,
    /// `cpu_cap`: CPU time in percent of one CPU; 0 means no cap.
    CpuCap,
    /// `cpu_shares`: the relative CPU weight against other jails.
    CpuShares,
    /// `max_lwps`: how many processes and threads the jail may have.
    MaxLwps,
    /// `max_msg_ids`: how many System V message queues.
    MaxMsgIds,
    /// `max_sem_ids`: how many System V semaphore sets.
    MaxSemIds,
    /// `max_shm_ids`: how many System V shared memory segments.
    MaxShmIds,
    /// `zfs_io_priority`: the relative disk I/O weight.
    ZfsIoPriority,
}

impl Limit {
    /// Every limit, in the order drivers apply them.
    pub const ALL: [Limit; 11] = [
        Limit::MaxPhysicalMemory,
        Limit::MaxSwap,
        Limit::MaxLockedMemory,
        Limit::MaxShmMemory,
        Limit::CpuCap,
        Limit::CpuShares,
        Limit::MaxLwps,
        Limit::MaxMsgIds,
        Limit::MaxSemIds,
        Limit::MaxShmIds,
        Limit::ZfsIoPriority,
    ];

    /// The SmartOS property this limit is.
    pub fn property(self) -> &'static str {
        match self {
            Limit::MaxPhysicalMemory => "max_physical_memory",
            Limit::MaxSwap => "max_swap",
            Limit::MaxLockedMemory => "max_locked_memory",
            Limit::MaxShmMemory => "max_shm_memory",
            Limit::CpuCap => "cpu_cap",
            Limit::CpuShares => "cpu_shares",
            Limit::MaxLwps => "max_lwps",
            Limit::MaxMsgIds => "max_msg_ids",
            Limit::MaxSemIds => "max_sem_ids",
            Limit::MaxShmIds => "max_shm_ids",
            Limit::ZfsIoPriority => "zfs_io_priority",
        }
    }

    /// The limit a property names, if it is one.
    pub fn from_property(name: &str) -> Option<Limit> {
        Limit::ALL.into_iter().find(|l| l.property() == name)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.property())
    }
}

/// A new value for a property of the VM's own dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetChange {
    /// `quota` in GiB; 0 removes it.
    Quota(u64),
    /// `compression` (`zfs_root_compression`), a value zfs accepts.
    Compression(String),
    /// `recordsize` in bytes (`zfs_root_recsize`), a power of two from 512.
    RecordSize(u64),
    /// `compression` of the delegated `<dataset>/data`
    /// (`zfs_data_compression`); nothing to do without one.
    DataCompression(String),
    /// `recordsize` of the delegated `<dataset>/data` (`zfs_data_recsize`).
    DataRecordSize(u64),
    /// `filesystem_limit` (`zfs_filesystem_limit`); `None` removes it.
    /// Pools without the feature (zfs-fuse) get a notice, not an error.
    FilesystemLimit(Option<u64>),
    /// `snapshot_limit` (`zfs_snapshot_limit`); as for the filesystem limit.
    SnapshotLimit(Option<u64>),
}

/// Everything an update asks of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Applied to the dataset at once, running or not.
    pub dataset: Vec<DatasetChange>,
    /// Applied to a running jail; see [`Limit`].
    pub limits: Vec<Limit>,
}

impl Changes {
    /// True when the update has no host effect now (only properties read
    /// at the next boot, or nothing, changed).
    pub fn is_empty(&self) -> bool {
        self.dataset.is_empty() && self.limits.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip() {
        for l in Limit::ALL {
            assert_eq!(Limit::from_property(l.property()), Some(l));
            let p = crate::spec::props::find(l.property());
            assert!(
                p.is_some_and(|p| p.live == crate::spec::props::Live::Yes),
                "{l} must be a live property in the table"
            );
        }
        assert_eq!(Limit::from_property("quota"), None);
        assert_eq!(Limit::from_property("hostname"), None);
        assert!(Changes::default().is_empty());
    }
}
