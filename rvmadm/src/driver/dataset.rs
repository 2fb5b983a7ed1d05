//! The VM dataset's side of an update and a create (quota, compression,
//! record size, of the root and of the delegated `data`, and the count
//! limits),
//! shared by every driver so these effects have one path whatever runs the
//! jails: the ZFS dataset is the same thing under FreeBSD, Linux and the
//! `none` driver, and changes whether or not the VM runs.

use super::api::DriverResult;
use super::change::DatasetChange;
use crate::spec::VmSpec;
use crate::zfs::Zfs;

/// The zfs `quota` value for a SmartOS quota in GiB (0 = no quota).
pub fn quota_value(gib: u64) -> String {
    if gib == 0 {
        "none".to_string()
    } else {
        format!("{gib}G")
    }
}

/// Sets each changed property on the VM's dataset, in order.
pub fn apply(zfs: &Zfs<'_>, vm: &VmSpec, changes: &[DatasetChange]) -> DriverResult<()> {
    apply_to(zfs, &vm.zfs_filesystem, changes)
}

/// The zfs value of a count limit (`none` when unset).
fn limit_value(n: Option<u64>) -> String {
    n.map_or_else(|| "none".to_string(), |n| n.to_string())
}

/// [`apply`] on the dataset named `ds` (create has no spec yet). The
/// delegated dataset's properties go to `<ds>/data` when it exists. A
/// count limit or compression the pool does not know (zfs-fuse predates
/// them) is stored but not enforced: said on stderr, as SmartOS does for
/// properties a brand ignores, rather than failing the whole change.
pub fn apply_to(zfs: &Zfs<'_>, ds: &str, changes: &[DatasetChange]) -> DriverResult<()> {
    let data = format!("{ds}/data");
    let mut data_exists = None;
    let mut has_data = || -> DriverResult<bool> {
        if data_exists.is_none() {
            data_exists = Some(zfs.exists(&data)?);
        }
        Ok(data_exists == Some(true))
    };
    for c in changes {
        match c {
            DatasetChange::Quota(gib) => zfs.set(ds, "quota", &quota_value(*gib))?,
            DatasetChange::Compression(v) => {
                set_or_notice(zfs, ds, "compression", v, "zfs_root_compression")?
            }
            DatasetChange::RecordSize(bytes) => zfs.set(ds, "recordsize", &bytes.to_string())?,
            DatasetChange::DataCompression(v) => {
                if has_data()? {
                    set_or_notice(zfs, &data, "compression", v, "zfs_data_compression")?
                }
            }
            DatasetChange::DataRecordSize(bytes) => {
                if has_data()? {
                    zfs.set(&data, "recordsize", &bytes.to_string())?
                }
            }
            DatasetChange::FilesystemLimit(n) => set_or_notice(
                zfs,
                ds,
                "filesystem_limit",
                &limit_value(*n),
                "zfs_filesystem_limit",
            )?,
            DatasetChange::SnapshotLimit(n) => set_or_notice(
                zfs,
                ds,
                "snapshot_limit",
                &limit_value(*n),
                "zfs_snapshot_limit",
            )?,
        }
    }
    Ok(())
}

/// Sets `prop=value` on `ds`, or says `property` is not enforced when this
/// host's zfs does not know the property (zfs-fuse has no count limits) or
/// the value (zfs-fuse has no lz4 or zstd). Other failures are errors.
fn set_or_notice(
    zfs: &Zfs<'_>,
    ds: &str,
    prop: &str,
    value: &str,
    property: &str,
) -> DriverResult<()> {
    match zfs.set(ds, prop, value) {
        Err(crate::zfs::ZfsError::Exec(e)) => {
            let why = e.stderr();
            if why.contains("invalid property") {
                // Removing what the pool never had is no news.
                if value != "none" {
                    super::notice_unenforced(
                        property,
                        &format!("this host's zfs has no {prop} property"),
                    );
                }
                Ok(())
            } else if why.contains("must be one of") {
                super::notice_unenforced(
                    property,
                    &format!("this host's zfs does not support {prop}={value}"),
                );
                Ok(())
            } else {
                Err(crate::zfs::ZfsError::Exec(e).into())
            }
        }
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::RecordingRunner;
    use serde_json::json;

    #[test]
    fn sets_each_property_on_the_vm_dataset() {
        let vm = VmSpec::from_object(
            json!({"uuid": "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60", "brand": "jail",
                   "image_uuid": "11111111-2222-4333-8444-555555555555", "zpool": "zones",
                   "zfs_filesystem": "zones/vm1"})
            .as_object()
            .unwrap(),
        )
        .unwrap();
        let r = RecordingRunner::new();
        let changes = [
            DatasetChange::Quota(5),
            DatasetChange::Quota(0),
            DatasetChange::Compression("lz4".into()),
            DatasetChange::RecordSize(8192),
        ];
        apply(&Zfs::new(&r), &vm, &changes).unwrap();
        let calls: Vec<String> = r.calls().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            calls,
            [
                "zfs set quota=5G zones/vm1",
                "zfs set quota=none zones/vm1",
                "zfs set compression=lz4 zones/vm1",
                "zfs set recordsize=8192 zones/vm1",
            ]
        );
    }

    #[test]
    fn data_properties_go_to_the_delegated_dataset_and_unknown_limits_are_noticed() {
        let r = RecordingRunner::new();
        r.fail(
            &["zfs", "set", "filesystem_limit=5"],
            "bad property list: invalid property 'filesystem_limit'",
        );
        r.fail(
            &["zfs", "set", "snapshot_limit=7"],
            "cannot set property: permission denied",
        );
        let zfs = Zfs::new(&r);
        apply_to(
            &zfs,
            "zones/vm1",
            &[
                DatasetChange::DataCompression("lz4".into()),
                DatasetChange::DataRecordSize(4096),
                DatasetChange::FilesystemLimit(Some(5)),
                DatasetChange::FilesystemLimit(None),
                DatasetChange::Compression("lz4".into()),
            ],
        )
        .unwrap();
        let calls: Vec<String> = r.calls().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            calls,
            [
                "zfs list -H -o name -t all zones/vm1/data",
                "zfs set compression=lz4 zones/vm1/data",
                "zfs set recordsize=4096 zones/vm1/data",
                "zfs set filesystem_limit=5 zones/vm1",
                "zfs set filesystem_limit=none zones/vm1",
                "zfs set compression=lz4 zones/vm1",
            ]
        );
        // Any other failure of a limit is an error.
        assert!(apply_to(&zfs, "zones/vm1", &[DatasetChange::SnapshotLimit(Some(7))]).is_err());
    }
}
