//! `vmadm create-snapshot|delete-snapshot|rollback-snapshot`: ZFS snapshots
//! named `<dataset>@vmsnap-<name>`, listed in the record's `snapshots` so
//! `get` needs no ZFS call.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::{force_stop, lock_and_load};
use crate::spec::{Field, Snapshot, VmRecord};
use uuid::Uuid;

/// SmartOS's manual allows `-_.:%`, but the ZFS of our hosts (zfs-fuse and
/// OpenZFS) refuses `%` in a snapshot name; accepting it here would only
/// move the refusal to the `zfs` call, after the lock and record load.
fn check_name(name: &str) -> OpsResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(OpsError::Failed("Invalid snapshot name".into()))
    }
}

fn snapshots(vm: &VmRecord) -> Vec<Snapshot> {
    vm.snapshots.clone().unwrap_or_default()
}

fn has(list: &[Snapshot], name: &str) -> bool {
    list.iter().any(|s| s.name == name)
}

/// Stores the list (a record without one gets it at the end).
fn store_list(vm: &mut VmRecord, list: Vec<Snapshot>) {
    vm.snapshots = Some(list);
    vm.place(Field::Snapshots);
}

/// Takes `<zfs_filesystem>@vmsnap-<name>` and lists it first in the
/// record. A running VM is snapshotted as it runs. Refused for an invalid
/// name (1–64 characters of letters, digits and `-_.:`) or one already
/// taken.
pub fn create_snapshot(ctx: &Ctx, uuid: &Uuid, name: &str) -> OpsResult<()> {
    check_name(name)?;
    let mut l = lock_and_load(ctx, uuid)?;
    let mut list = snapshots(&l.rec.vm);
    if has(&list, name) {
        return Err(OpsError::Failed(format!(
            "snapshot with name \"{name}\" already exists."
        )));
    }
    ctx.zfs()
        .snapshot(&format!("{}@vmsnap-{name}", l.spec.zfs_filesystem))?;
    let now = crate::store::iso_time(std::time::SystemTime::now());
    list.insert(
        0,
        Snapshot {
            name: name.to_string(),
            created_at: now,
        },
    );
    store_list(&mut l.rec.vm, list);
    ctx.store.save(uuid, &l.rec.vm)?;
    Ok(())
}

/// Destroys the snapshot `name` and drops it from the record. Refused for
/// an invalid name or one the record does not list.
pub fn delete_snapshot(ctx: &Ctx, uuid: &Uuid, name: &str) -> OpsResult<()> {
    check_name(name)?;
    let mut l = lock_and_load(ctx, uuid)?;
    let mut list = snapshots(&l.rec.vm);
    if !has(&list, name) {
        return Err(OpsError::Failed(format!(
            "No snapshot named \"{name}\" for VM {uuid}"
        )));
    }
    ctx.zfs()
        .destroy(&format!("{}@vmsnap-{name}", l.spec.zfs_filesystem), false)?;
    list.retain(|s| s.name != name);
    store_list(&mut l.rec.vm, list);
    ctx.store.save(uuid, &l.rec.vm)?;
    Ok(())
}

/// Rolls back (destroying newer snapshots, as `zfs rollback -r` does). A
/// running VM is stopped first and started again afterwards.
pub fn rollback_snapshot(ctx: &Ctx, uuid: &Uuid, name: &str) -> OpsResult<()> {
    check_name(name)?;
    let mut l = lock_and_load(ctx, uuid)?;
    let list = snapshots(&l.rec.vm);
    let Some(pos) = list.iter().position(|s| s.name == name) else {
        return Err(OpsError::Failed(format!(
            "No snapshot named \"{name}\" for VM {uuid}"
        )));
    };
    let was_running = force_stop(ctx, uuid, &l.spec)?;
    ctx.zfs()
        .rollback(&format!("{}@vmsnap-{name}", l.spec.zfs_filesystem))?;
    // The list is newest first: everything before `pos` is gone now.
    store_list(&mut l.rec.vm, list[pos..].to_vec());
    ctx.store.save(uuid, &l.rec.vm)?;
    if was_running {
        ctx.driver.start(&l.spec)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Fixture;
    use serde_json::json;

    fn names(fx: &Fixture, uuid: &Uuid) -> Vec<String> {
        snapshots(&fx.record(uuid))
            .into_iter()
            .map(|s| s.name)
            .collect()
    }

    #[test]
    fn create_snapshots_the_dataset_and_lists_newest_first() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let mark = fx.mark();
        create_snapshot(&fx.ctx, &uuid, "one").unwrap();
        create_snapshot(&fx.ctx, &uuid, "two").unwrap();
        assert_eq!(
            fx.commands_since(&mark),
            [
                format!("zfs snapshot zones/{uuid}@vmsnap-one"),
                format!("zfs snapshot zones/{uuid}@vmsnap-two")
            ]
        );
        assert_eq!(names(&fx, &uuid), ["two", "one"]);
        let created = &snapshots(&fx.record(&uuid))[0].created_at;
        assert!(created.ends_with('Z'), "{created}");
        assert!(fx.driver_calls_since(&mark).is_empty());
    }

    #[test]
    fn create_refuses_a_taken_or_bad_name_before_zfs() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        create_snapshot(&fx.ctx, &uuid, "one").unwrap();
        let mark = fx.mark();
        let err = create_snapshot(&fx.ctx, &uuid, "one").unwrap_err();
        assert_eq!(
            err.to_string(),
            "snapshot with name \"one\" already exists."
        );
        for bad in ["", "a b", "x@y", "a/b", "a%b", &"x".repeat(65)] {
            let err = create_snapshot(&fx.ctx, &uuid, bad).unwrap_err();
            assert_eq!(err.to_string(), "Invalid snapshot name", "{bad:?}");
        }
        assert!(fx.commands_since(&mark).is_empty());
        assert_eq!(names(&fx, &uuid), ["one"]);
    }

    #[test]
    fn a_failed_zfs_snapshot_is_not_listed() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        fx.runner.fail(&["zfs", "snapshot"], "out of space");
        let err = create_snapshot(&fx.ctx, &uuid, "one").unwrap_err();
        assert!(err.to_string().contains("out of space"), "{err}");
        assert!(names(&fx, &uuid).is_empty());
    }

    #[test]
    fn delete_destroys_only_that_snapshot() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        create_snapshot(&fx.ctx, &uuid, "one").unwrap();
        create_snapshot(&fx.ctx, &uuid, "two").unwrap();
        let mark = fx.mark();
        delete_snapshot(&fx.ctx, &uuid, "one").unwrap();
        assert_eq!(
            fx.commands_since(&mark),
            [format!("zfs destroy zones/{uuid}@vmsnap-one")]
        );
        assert_eq!(names(&fx, &uuid), ["two"]);
    }

    #[test]
    fn delete_and_rollback_refuse_an_unknown_snapshot() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        let mark = fx.mark();
        let want = format!("No snapshot named \"nope\" for VM {uuid}");
        let err = delete_snapshot(&fx.ctx, &uuid, "nope").unwrap_err();
        assert_eq!(err.to_string(), want);
        let err = rollback_snapshot(&fx.ctx, &uuid, "nope").unwrap_err();
        assert_eq!(err.to_string(), want);
        assert!(fx.commands_since(&mark).is_empty());
        assert!(fx.driver_calls_since(&mark).is_empty());
    }

    #[test]
    fn rollback_of_a_running_vm_stops_rolls_back_and_starts_it() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        for n in ["one", "two", "three"] {
            create_snapshot(&fx.ctx, &uuid, n).unwrap();
        }
        let mark = fx.mark();
        rollback_snapshot(&fx.ctx, &uuid, "two").unwrap();
        assert_eq!(
            fx.commands_since(&mark),
            [format!("zfs rollback -r zones/{uuid}@vmsnap-two")]
        );
        assert_eq!(
            fx.driver_calls_since(&mark),
            [
                format!("stop {uuid} force=true"),
                format!("cleanup {uuid}"),
                format!("start {uuid}")
            ]
        );
        // `rollback -r` destroyed the newer snapshot.
        assert_eq!(names(&fx, &uuid), ["two", "one"]);
        assert!(fx.ctx.is_running(&uuid).unwrap());
    }

    #[test]
    fn rollback_of_a_stopped_vm_leaves_it_stopped() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        create_snapshot(&fx.ctx, &uuid, "one").unwrap();
        let mark = fx.mark();
        rollback_snapshot(&fx.ctx, &uuid, "one").unwrap();
        assert_eq!(
            fx.commands_since(&mark),
            [format!("zfs rollback -r zones/{uuid}@vmsnap-one")]
        );
        assert_eq!(fx.driver_calls_since(&mark), [format!("cleanup {uuid}")]);
        assert!(!fx.ctx.is_running(&uuid).unwrap());
    }
}
