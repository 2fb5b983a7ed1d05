//! The VM dataset's side of an update (quota, compression, record size),
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
    let ds = vm.zfs_filesystem.as_str();
    for c in changes {
        match c {
            DatasetChange::Quota(gib) => zfs.set(ds, "quota", &quota_value(*gib))?,
            DatasetChange::Compression(v) => zfs.set(ds, "compression", v)?,
            DatasetChange::RecordSize(bytes) => zfs.set(ds, "recordsize", &bytes.to_string())?,
        }
    }
    Ok(())
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
}
