//! `vmadm create-snapshot|delete-snapshot|rollback-snapshot`: ZFS snapshots
//! named `<dataset>@vmsnap-<name>`, listed in the record's `snapshots` so
//! `get` needs no ZFS call.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::{force_stop, lock_and_load};
use crate::spec::{Field, Snapshot, VmRecord};
use uuid::Uuid;

fn check_name(name: &str) -> OpsResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:%".contains(c));
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
