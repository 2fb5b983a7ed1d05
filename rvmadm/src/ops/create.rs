//! `vmadm create`: validate, clone `<pool>/<image>@final` to `<pool>/<uuid>`
//! with the quota set at clone time, write the record, boot when autoboot.
//!
//! Crash safety: the record is written first, marked incomplete, and the
//! whole create holds the global lock. So an incomplete record seen by anyone
//! else holding that lock was left by a dead create; [`sweep_incomplete`]
//! removes it and its dataset. A failed boot undoes everything.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use crate::spec::fs_policy::FsRequest;
use crate::spec::object::{new_vm_record, CreateContext};
use crate::spec::{self, Action, Field, VmRecord};
use crate::store::iso_time;
use serde_json::{Map, Value};
use uuid::Uuid;

/// Creates a VM from a create payload and returns its uuid (the payload's,
/// or a new one). Fails before anything is made when validation refuses
/// the payload, the uuid is taken, or the pool or the image's `@final`
/// snapshot is missing; fails after undoing everything when the clone, the
/// record or the first boot fails. Keys create does not accept are
/// dropped, as SmartOS does.
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
    // Host directories only from the allowlist, refused before anything is made.
    let fs_objs = payload.get("filesystems").and_then(Value::as_array);
    ctx.check_filesystems(
        &pool,
        &FsRequest::from_objects(fs_objs.into_iter().flatten().filter_map(Value::as_object)),
    )?;
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
    ctx.check_addresses_free(&uuid, &obj)?;
    obj.incomplete = Some(true);
    obj.place(Field::Incomplete);
    ctx.store.save(&uuid, &obj)?;

    let quota_prop = crate::driver::dataset::quota_value(obj.quota.unwrap_or(0));
    // Properties the payload named (the quota is set by the clone itself).
    let given: Vec<String> = payload
        .keys()
        .filter(|k| k.as_str() != "quota")
        .cloned()
        .collect();
    let delegate = obj.delegate_dataset == Some(true);
    let made = zfs
        .clone_snapshot(&origin, &dataset, &[("quota", &quota_prop)])
        .and_then(|_| zfs.mountpoint(&dataset))
        .map_err(OpsError::from)
        .and_then(|mountpoint| {
            // The image decides what is in the clone: refuse one without a
            // real root/ (or with `data` a symlink) before the delegated
            // dataset is mounted at <zonepath>/data or the VM ever boots.
            ctx.driver.check_layout(&mountpoint)?;
            // SmartOS's delegated dataset: <zfs_filesystem>/data, for the
            // jail's own use (destroyed with the VM by the recursive delete).
            if delegate {
                zfs.create(&format!("{dataset}/data"), &[])?;
            }
            // The other dataset properties the payload gave (compression,
            // record sizes, count limits), through the update's one path.
            let dataset_changes = super::update::host_changes(&given, &obj)?.dataset;
            crate::driver::dataset::apply_to(&zfs, &dataset, &dataset_changes)?;
            Ok(mountpoint)
        });
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

    super::update::notice_unenforced(ctx, &given);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::fake::FakeDriver;
    use crate::ops::testing::{Fixture, IMAGE};
    use serde_json::json;

    #[test]
    fn clones_the_image_with_its_quota_and_writes_a_complete_record() {
        let fx = Fixture::new();
        let uuid = Uuid::new_v4();
        fx.answer_mountpoint(&uuid);
        let payload = fx.payload(&uuid, json!({"quota": 10, "alias": "web01"}));
        assert_eq!(create(&fx.ctx, &payload).unwrap(), uuid);
        assert_eq!(
            fx.runner
                .calls()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            [
                format!("zfs list -H -o name -t all zones/{uuid}"),
                "zpool list -H -o name zones".to_string(),
                format!("zfs list -H -o name -t all zones/{IMAGE}@final"),
                format!("zfs clone -o quota=10G zones/{IMAGE}@final zones/{uuid}"),
                format!("zfs get -H -o value mountpoint zones/{uuid}"),
            ]
        );
        let rec = fx.record(&uuid);
        assert_eq!(rec.uuid.as_deref(), Some(uuid.to_string().as_str()));
        assert_eq!(rec.alias.as_deref(), Some("web01"));
        assert_eq!(rec.quota, Some(10));
        assert_eq!(rec.zfs_filesystem, Some(format!("zones/{uuid}")));
        // The zonepath is where zfs says the clone is mounted.
        assert_eq!(rec.zonepath, Some(format!("/zones/{uuid}")));
        assert!(!rec.has_incomplete_marker());
        assert_eq!(rec.autoboot, Some(false));
        assert!(fx.driver.calls().is_empty(), "{:?}", fx.driver.calls());
    }

    #[test]
    fn quota_zero_clones_without_a_quota() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"quota": 0}));
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        assert!(
            cmds.contains(&format!(
                "zfs clone -o quota=none zones/{IMAGE}@final zones/{uuid}"
            )),
            "{cmds:?}"
        );
    }

    #[test]
    fn a_payload_without_uuid_gets_a_fresh_one() {
        let fx = Fixture::new();
        let mut payload = fx.payload(&Uuid::nil(), json!({}));
        payload.remove("uuid");
        let a = create(&fx.ctx, &payload).unwrap();
        let b = create(&fx.ctx, &payload).unwrap();
        assert_ne!(a, b);
        assert!(fx.ctx.store.exists(&a) && fx.ctx.store.exists(&b));
    }

    #[test]
    fn autoboot_starts_the_vm_through_the_driver() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"autoboot": true}));
        assert_eq!(fx.driver.calls(), [format!("start {uuid}")]);
        assert!(fx.ctx.is_running(&uuid).unwrap());
        assert_eq!(fx.record(&uuid).autoboot, Some(true));
    }

    #[test]
    fn autoboot_defaults_to_on_as_in_smartos() {
        let fx = Fixture::new();
        let uuid = Uuid::new_v4();
        fx.answer_mountpoint(&uuid);
        let mut payload = fx.payload(&uuid, json!({}));
        payload.remove("autoboot");
        create(&fx.ctx, &payload).unwrap();
        assert_eq!(fx.driver.calls(), [format!("start {uuid}")]);
    }

    #[test]
    fn a_failed_boot_undoes_the_clone_and_the_record() {
        let mut fake = FakeDriver::new();
        fake.fail_start = Some("no init".into());
        let fx = Fixture::with_driver(fake);
        let uuid = Uuid::new_v4();
        fx.answer_mountpoint(&uuid);
        let payload = fx.payload(&uuid, json!({"autoboot": true}));
        let err = create(&fx.ctx, &payload).unwrap_err().to_string();
        assert!(err.contains(&format!("failed to boot VM {uuid}")), "{err}");
        assert!(err.contains("no init"), "{err}");
        assert!(err.contains("the VM was not created"), "{err}");
        assert_eq!(
            fx.driver.calls(),
            [format!("start {uuid}"), format!("cleanup {uuid}")]
        );
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            cmds.last().map(String::as_str),
            Some(format!("zfs destroy -r zones/{uuid}").as_str()),
            "{cmds:?}"
        );
        assert!(!fx.ctx.store.exists(&uuid));
        assert!(!fx.ctx.is_running(&uuid).unwrap());
    }

    #[test]
    fn a_failed_clone_leaves_no_record() {
        let fx = Fixture::new();
        fx.runner.fail(&["zfs", "clone"], "out of space");
        let uuid = Uuid::new_v4();
        let err = create(&fx.ctx, &fx.payload(&uuid, json!({})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("out of space"), "{err}");
        assert!(!fx.ctx.store.exists(&uuid));
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        assert!(
            cmds.contains(&format!("zfs destroy -r zones/{uuid}")),
            "{cmds:?}"
        );
        assert!(fx.driver.calls().is_empty());
    }

    #[test]
    fn delegate_dataset_creates_data_below_the_clone() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"delegate_dataset": true}));
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        let clone = cmds.iter().position(|c| c.starts_with("zfs clone"));
        let data = cmds
            .iter()
            .position(|c| *c == format!("zfs create zones/{uuid}/data"));
        assert!(
            matches!((clone, data), (Some(c), Some(d)) if c < d),
            "{cmds:?}"
        );
        assert_eq!(
            fx.record(&uuid).datasets,
            Some(vec![format!("zones/{uuid}/data")])
        );
    }

    #[test]
    fn a_clone_without_a_zone_layout_is_undone_before_data_is_made() {
        let mut fake = FakeDriver::new();
        fake.missing_root = true;
        let fx = Fixture::with_driver(fake);
        let uuid = Uuid::new_v4();
        fx.answer_mountpoint(&uuid);
        let payload = fx.payload(&uuid, json!({"delegate_dataset": true, "autoboot": true}));
        let err = create(&fx.ctx, &payload).unwrap_err().to_string();
        assert!(err.contains("no root/ directory"), "{err}");
        assert!(err.contains("imgadm build"), "{err}");
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        assert!(
            !cmds.iter().any(|c| c.starts_with("zfs create")),
            "the delegated dataset must not be made: {cmds:?}"
        );
        assert_eq!(
            cmds.last().map(String::as_str),
            Some(format!("zfs destroy -r zones/{uuid}").as_str()),
            "{cmds:?}"
        );
        assert!(!fx.ctx.store.exists(&uuid));
        assert!(fx.driver.calls().is_empty(), "{:?}", fx.driver.calls());
    }

    #[test]
    fn a_missing_image_is_refused_before_anything_is_made() {
        let fx = Fixture::new();
        let uuid = Uuid::new_v4();
        let other = "b1b2c3d4-0000-4000-8000-00000000000b";
        let err = create(&fx.ctx, &fx.payload(&uuid, json!({"image_uuid": other})))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("image {other} is not installed")),
            "{err}"
        );
        assert!(err.contains("imgadm import"), "{err}");
        assert!(!fx.ctx.store.exists(&uuid));
        assert!(!fx
            .runner
            .calls()
            .iter()
            .any(|a| a.0.get(1).is_some_and(|w| w == "clone")));
    }

    #[test]
    fn a_missing_pool_is_refused() {
        let fx = Fixture::new();
        fx.runner.fail(&["zpool", "list"], "no such pool");
        let uuid = Uuid::new_v4();
        let err = create(&fx.ctx, &fx.payload(&uuid, json!({})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("zpool zones does not exist"), "{err}");
        assert!(!fx.ctx.store.exists(&uuid));
    }

    #[test]
    fn an_existing_uuid_is_refused_and_its_vm_kept() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"alias": "first"}));
        let mark = fx.mark();
        let err = create(&fx.ctx, &fx.payload(&uuid, json!({"alias": "second"})))
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("VM with UUID {uuid} already exists"));
        assert!(fx.commands_since(&mark).is_empty());
        assert_eq!(fx.record(&uuid).alias.as_deref(), Some("first"));
    }

    #[test]
    fn a_taken_mac_or_ip_is_refused_before_anything_is_made() {
        let fx = Fixture::new();
        let nic = |mac: &str, ip: &str| json!({"nic_tag": "admin", "mac": mac, "ips": [ip]});
        let first = fx.create_vm(json!({"nics": [nic("02:00:00:00:00:01", "192.0.2.10/24")]}));
        for nics in [
            json!([nic("02:00:00:00:00:02", "192.0.2.10/24")]),
            json!([nic("02:00:00:00:00:01", "192.0.2.11/24")]),
        ] {
            let uuid = Uuid::new_v4();
            let mark = fx.mark();
            let err = create(&fx.ctx, &fx.payload(&uuid, json!({"nics": nics})))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("Conflict detected with another vm")
                    && err.contains(&first.to_string()),
                "{err}"
            );
            assert!(!fx.ctx.store.exists(&uuid));
            assert!(fx
                .commands_since(&mark)
                .iter()
                .all(|c| !c.contains("clone")));
        }
    }

    #[test]
    fn an_invalid_payload_runs_nothing() {
        let fx = Fixture::new();
        let mut payload = fx.payload(&Uuid::new_v4(), json!({"quota": "lots"}));
        payload.remove("brand");
        let err = create(&fx.ctx, &payload).unwrap_err();
        assert!(matches!(err, OpsError::Invalid(_)), "{err:?}");
        assert!(fx.runner.calls().is_empty());
        assert!(fx.ctx.store.load_all().unwrap().is_empty());
    }

    #[test]
    fn the_next_create_sweeps_a_record_an_interrupted_create_left() {
        let fx = Fixture::new();
        let dead = fx.create_vm(json!({}));
        fx.mark_incomplete(&dead);
        let mark = fx.mark();
        let live = fx.create_vm(json!({}));
        assert!(!fx.ctx.store.exists(&dead));
        assert!(fx.ctx.store.exists(&live));
        let cmds = fx.commands_since(&mark);
        assert!(
            cmds.contains(&format!("zfs destroy -r zones/{dead}")),
            "{cmds:?}"
        );
        assert!(fx.driver.calls().contains(&format!("cleanup {dead}")));
    }
}
