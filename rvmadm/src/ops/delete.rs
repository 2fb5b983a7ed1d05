//! `vmadm delete`: stop a running VM, remove what the driver set up, destroy
//! the dataset (with its snapshots), then the record. Each step tolerates
//! what an interrupted earlier delete already removed.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::force_stop;
use serde_json::Value;
use uuid::Uuid;

pub fn delete(ctx: &Ctx, uuid: &Uuid) -> OpsResult<()> {
    let _global = ctx.store.lock_global()?;
    let _lock = ctx.store.lock_vm(uuid)?;
    let rec = ctx.record(uuid)?;
    if rec.vm.get("indestructible_zoneroot") == Some(&Value::Bool(true)) {
        return Err(OpsError::Failed(format!(
            "Failed to delete VM {uuid}: indestructible_zoneroot is set, cannot delete"
        )));
    }
    if let Ok(spec) = ctx.spec(&rec) {
        force_stop(ctx, uuid, &spec)?;
    }
    let dataset = rec
        .vm
        .get("zfs_filesystem")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| ctx.config.vm_dataset(uuid));
    ctx.zfs().destroy(&dataset, true)?;
    ctx.store.remove(uuid)?;
    Ok(())
}
