//! `vmadm delete`: stop a running VM, remove what the driver set up, destroy
//! the dataset (with its snapshots), then the record. Each step tolerates
//! what an interrupted earlier delete already removed.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::force_stop;
use uuid::Uuid;

pub fn delete(ctx: &Ctx, uuid: &Uuid) -> OpsResult<()> {
    let _global = ctx.store.lock_global()?;
    let _lock = ctx.store.lock_vm(uuid)?;
    let rec = ctx.record(uuid)?;
    if rec.vm.indestructible_zoneroot == Some(true) {
        return Err(OpsError::Failed(format!(
            "Failed to delete VM {uuid}: indestructible_zoneroot is set, cannot delete"
        )));
    }
    if let Ok(spec) = ctx.spec(&rec) {
        force_stop(ctx, uuid, &spec)?;
    }
    let dataset = rec
        .vm
        .zfs_filesystem
        .clone()
        .unwrap_or_else(|| ctx.config.vm_dataset(uuid));
    ctx.zfs().destroy(&dataset, true)?;
    ctx.store.remove(uuid)?;
    Ok(())
}
