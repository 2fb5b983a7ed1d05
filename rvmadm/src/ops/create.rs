//! `vmadm create`: validate, clone `<pool>/<image>@final` to `<pool>/<uuid>`
//! with the quota set at clone time, write the record, boot when autoboot.
//!
//! Crash safety: the record is written first, marked incomplete, and the
//! whole create holds the global lock. So an incomplete record seen by anyone
//! else holding that lock was left by a dead create; [`sweep_incomplete`]
//! removes it and its dataset. A failed boot undoes everything.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use crate::spec::object::{new_vm_record, CreateContext};
use crate::spec::{self, Action, Field, VmRecord};
use crate::store::iso_time;
use serde_json::{Map, Value};
use uuid::Uuid;

pub fn create(ctx: &Ctx, input: &Map<String, Value>) -> OpsResult<Uuid> {
    let checked = spec::check(input, Action::Create);
    if checked.errors.blocks() {
        return Err(OpsError::Invalid(checked.errors));
    }
    for p in &checked.errors.bad_properties {
        tracing::info!(property = %p, "ignoring property not allowed in create");
    }
    let payload = checked.payload;
    let uuid = match payload.get("uuid").and_then(Value::as_str) {
        Some(u) => Uuid::parse_str(u).map_err(|_| OpsError::Failed(format!("invalid uuid {u}")))?,
        None => Uuid::new_v4(),
    };
    let pool = payload
        .get("zpool")
        .and_then(Value::as_str)
        .unwrap_or(&ctx.config.pool)
        .to_string();
    let image = payload
        .get("image_uuid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let zfs = ctx.zfs();
    let dataset = format!("{pool}/{uuid}");
    let origin = format!("{pool}/{image}@final");

    let _global = ctx.store.lock_global()?;
    sweep_incomplete(ctx);
    if ctx.store.exists(&uuid) || zfs.exists(&dataset)? {
        return Err(OpsError::Failed(format!(
            "VM with UUID {uuid} already exists"
        )));
    }
    if !zfs.pool_exists(&pool)? {
        return Err(OpsError::Failed(format!(
            "zpool {pool} does not exist (set `pool` in vmadm.toml or `zpool` in the payload)"
        )));
    }
    if !zfs.exists(&origin)? {
        return Err(OpsError::Failed(format!(
            "image {image} is not installed on zpool {pool} (no {origin}); run `imgadm import {image}` first"
        )));
    }

    let now = iso_time(std::time::SystemTime::now());
    let uuid_s = uuid.to_string();
    let guess_path = format!("/{pool}/{uuid}");
    let mut obj = new_vm_record(
        &payload,
        &CreateContext {
            uuid: &uuid_s,
            default_pool: &ctx.config.pool,
            zonepath: &guess_path,
            now: &now,
        },
    );
    obj.incomplete = Some(true);
    obj.place(Field::Incomplete);
    ctx.store.save(&uuid, &obj)?;

    let quota_prop = crate::driver::dataset::quota_value(obj.quota.unwrap_or(0));
    let delegate = obj.delegate_dataset == Some(true);
    let made = zfs
        .clone_snapshot(&origin, &dataset, &[("quota", &quota_prop)])
        .and_then(|_| {
            // SmartOS's delegated dataset: <zfs_filesystem>/data, for the
            // jail's own use (destroyed with the VM by the recursive delete).
            if delegate {
                zfs.create(&format!("{dataset}/data"), &[])?;
            }
            zfs.mountpoint(&dataset)
        })
        .map_err(OpsError::from);
    let mountpoint = match made {
        Ok(m) => m,
        Err(e) => {
            let _ = zfs.destroy(&dataset, true);
            let _ = ctx.store.remove(&uuid);
            return Err(e);
        }
    };
    if delegate {
        obj.datasets = Some(vec![format!("{dataset}/data")]);
        obj.place(Field::Datasets);
    }
    obj.zonepath = Some(mountpoint.display().to_string());
    obj.place(Field::Zonepath);
    obj.remove(Field::Incomplete.name());
    if let Err(e) = ctx.store.save(&uuid, &obj) {
        let _ = zfs.destroy(&dataset, true);
        let _ = ctx.store.remove(&uuid);
        return Err(e.into());
    }

    if obj.autoboot == Some(true) {
        let boot = ctx
            .store
            .load(&uuid)?
            .ok_or_else(|| OpsError::no_such_vm(&uuid))
            .and_then(|rec| ctx.spec(&rec))
            .and_then(|spec| {
                ctx.driver
                    .start(&spec)
                    .map(|_| spec)
                    .map_err(OpsError::from)
            });
        if let Err(e) = boot {
            undo(ctx, &uuid, &dataset, &obj);
            return Err(OpsError::Failed(format!(
                "failed to boot VM {uuid}: {e}; the VM was not created"
            )));
        }
    }
    Ok(uuid)
}

/// Removes a half-made VM: runtime leftovers, dataset, record.
fn undo(ctx: &Ctx, uuid: &Uuid, dataset: &str, obj: &VmRecord) {
    if let Ok(spec) = crate::spec::VmSpec::from_record(obj) {
        let _ = ctx.driver.cleanup(&spec);
    }
    let _ = ctx.zfs().destroy(dataset, true);
    let _ = ctx.store.remove(uuid);
}

/// Cleans up records left incomplete by a create that died. Callers hold
/// the global lock, so no live create can own them.
pub fn sweep_incomplete(ctx: &Ctx) {
    let Ok(all) = ctx.store.load_all() else {
        return;
    };
    for (uuid, rec) in all {
        let Ok(rec) = rec else { continue };
        if !rec.vm.is_incomplete() {
            continue;
        }
        let dataset = rec
            .vm
            .zfs_filesystem
            .clone()
            .unwrap_or_else(|| ctx.config.vm_dataset(&uuid));
        tracing::info!(%uuid, "removing VM left incomplete by an interrupted create");
        undo(ctx, &uuid, &dataset, &rec.vm);
    }
}
