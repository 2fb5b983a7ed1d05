//! `vmadm reprovision <uuid> [-f file]`: give a VM a fresh root from an
//! image (the payload names `image_uuid`), keeping its record, its
//! delegated `data` dataset and its quota. A VM that ran is started again.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::{force_stop, lock_and_load};
use crate::spec::value::is_uuid;
use crate::spec::Field;
use serde_json::{Map, Value};
use uuid::Uuid;

/// Replaces the VM's dataset with a fresh clone of the `image_uuid` the
/// payload names (other payload keys are ignored) and records the new
/// image. The old dataset's snapshots go with it; the delegated `data`
/// dataset and the quota stay. A running VM is stopped at once first and
/// started again after. Refused when the image is not installed or
/// `indestructible_zoneroot` is set.
pub fn reprovision(ctx: &Ctx, uuid: &Uuid, payload: &Map<String, Value>) -> OpsResult<()> {
    let fail = |m: String| OpsError::Failed(format!("Failed to reprovision VM {uuid}: {m}"));
    let image = match payload.get("image_uuid").and_then(Value::as_str) {
        Some(i) if is_uuid(i) => i.to_ascii_lowercase(),
        Some(_) => return Err(fail("invalid image_uuid".into())),
        None => return Err(fail("payload is missing image_uuid".into())),
    };
    let _global = ctx.store.lock_global()?;
    let mut l = lock_and_load(ctx, uuid)?;
    if l.rec.vm.indestructible_zoneroot == Some(true) {
        return Err(fail("indestructible_zoneroot is set".into()));
    }
    let zfs = ctx.zfs();
    let dataset = l.spec.zfs_filesystem.clone();
    let origin = format!("{}/{image}@final", l.spec.zpool);
    if !zfs.exists(&origin)? {
        return Err(fail(format!(
            "image {image} is not installed (no {origin}); run `imgadm import {image}` first"
        )));
    }
    let was_running = force_stop(ctx, uuid, &l.spec)?;

    // The delegated dataset survives: park it beside the VM meanwhile.
    let data = format!("{dataset}/data");
    let parked = format!("{}/{uuid}-reprovision-data", l.spec.zpool);
    let mut has_data = zfs.exists(&data)?;
    if has_data {
        zfs.rename_unbusy(&data, &parked)?;
    } else {
        // A reprovision that failed after parking (an image refused by the
        // layout check, say) left it there: this one brings it back.
        has_data = zfs.exists(&parked)?;
    }
    // The same properties create clones with (devices=off, the quota).
    let props = super::create::vm_clone_props(Some(l.spec.limits.quota));
    let rebuilt = zfs
        .destroy(&dataset, true)
        .and_then(|_| zfs.clone_snapshot(&origin, &dataset, &props))
        .and_then(|_| zfs.mountpoint(&dataset))
        .map_err(OpsError::from)
        .and_then(|mountpoint| {
            // The new image must be a zone layout before the kept data
            // dataset mounts at <zonepath>/data (never through a symlink).
            ctx.driver.check_layout(&mountpoint)?;
            if has_data {
                zfs.rename_unbusy(&parked, &data)?;
            }
            Ok(mountpoint)
        });
    let mountpoint = rebuilt.map_err(|e| {
        fail(format!(
            "{e}{}",
            if has_data {
                format!(" (the delegated dataset is kept as {parked})")
            } else {
                String::new()
            }
        ))
    })?;
    // A fresh clone's root is the image's mode: private again, as create
    // leaves a zonepath.
    super::create::seal_zonepath(ctx, &l.spec.zpool, &dataset, &mountpoint)?;
    let vm = &mut l.rec.vm;
    vm.image_uuid = Some(image);
    vm.place(Field::ImageUuid);
    vm.zonepath = Some(mountpoint.display().to_string());
    vm.place(Field::Zonepath);
    vm.snapshots = Some(Vec::new());
    vm.place(Field::Snapshots);
    ctx.store.save(uuid, &l.rec.vm)?;
    if was_running {
        let spec = ctx.spec(&l.rec)?;
        ctx.driver
            .start(&spec)
            .map_err(|e| fail(format!("reprovisioned, but the boot failed: {e}")))?;
    }
    Ok(())
}
