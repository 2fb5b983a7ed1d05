//! `vmadm delete`: stop a running VM, remove what the driver set up, destroy
//! the dataset (with its snapshots), then the record. Each step tolerates
//! what an interrupted earlier delete already removed.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::force_stop;
use uuid::Uuid;

/// Deletes a VM: stops it at once if it runs, has the driver clean up,
/// destroys its dataset recursively, then removes the record. Refused
/// when `indestructible_zoneroot` is set; a failed destroy keeps the
/// record so the delete can be retried.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Fixture;
    use serde_json::json;

    #[test]
    fn stops_a_running_vm_then_destroys_dataset_and_record() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        let mark = fx.mark();
        delete(&fx.ctx, &uuid).unwrap();
        assert_eq!(
            fx.driver_calls_since(&mark),
            [format!("stop {uuid} force=true"), format!("cleanup {uuid}")]
        );
        assert_eq!(
            fx.commands_since(&mark),
            [format!("zfs destroy -r zones/{uuid}")]
        );
        assert!(!fx.ctx.store.exists(&uuid));
        assert!(!fx.ctx.is_running(&uuid).unwrap());
    }

    #[test]
    fn a_busy_destroy_is_retried_at_once_and_still_fails_cleanly() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let mark = fx.mark();
        fx.runner
            .fail(&["zfs", "destroy"], "cannot destroy: dataset is busy");
        assert!(delete(&fx.ctx, &uuid).is_err());
        let cmds = fx.commands_since(&mark);
        // The first retry comes at once, with nothing in between.
        assert_eq!(cmds[0], cmds[1]);
        assert!(cmds[0].starts_with("zfs destroy"), "{cmds:?}");
        assert!(fx.ctx.store.exists(&uuid));
    }

    #[test]
    fn a_stopped_vm_is_only_cleaned_up() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let mark = fx.mark();
        delete(&fx.ctx, &uuid).unwrap();
        assert_eq!(fx.driver_calls_since(&mark), [format!("cleanup {uuid}")]);
        assert_eq!(
            fx.commands_since(&mark),
            [format!("zfs destroy -r zones/{uuid}")]
        );
        assert!(!fx.ctx.store.exists(&uuid));
    }

    #[test]
    fn a_dataset_already_gone_still_lets_the_record_go() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        fx.runner.fail(
            &["zfs", "destroy"],
            "cannot open 'zones/x': dataset does not exist",
        );
        delete(&fx.ctx, &uuid).unwrap();
        assert!(!fx.ctx.store.exists(&uuid));
    }

    #[test]
    fn a_failed_destroy_keeps_the_record() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        fx.runner.fail(&["zfs", "destroy"], "permission denied");
        let err = delete(&fx.ctx, &uuid).unwrap_err().to_string();
        assert!(err.contains("permission denied"), "{err}");
        assert!(fx.ctx.store.exists(&uuid));
    }

    #[test]
    fn indestructible_zoneroot_is_refused_before_anything_happens() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({"indestructible_zoneroot": true}));
        let mark = fx.mark();
        let err = delete(&fx.ctx, &uuid).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("Failed to delete VM {uuid}: indestructible_zoneroot is set, cannot delete")
        );
        assert!(fx.driver_calls_since(&mark).is_empty());
        assert!(fx.commands_since(&mark).is_empty());
        assert!(fx.ctx.store.exists(&uuid));
        assert!(fx.ctx.is_running(&uuid).unwrap());
    }

    #[test]
    fn an_unknown_vm_is_smartos_no_such_zone() {
        let fx = Fixture::new();
        let err = delete(&fx.ctx, &Uuid::new_v4()).unwrap_err();
        assert!(matches!(err, OpsError::NoSuchVm(_)), "{err:?}");
        assert!(fx.runner.calls().is_empty());
    }
}
