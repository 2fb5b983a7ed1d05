//! `vmadm delete`: stop a running VM, remove what the driver set up, destroy
//! the dataset (with its snapshots), then the record. Each step tolerates
//! what an interrupted earlier delete already removed, and a delete killed
//! between its destroy and the record's removal is finished by the next
//! create, delete, receive or reprovision (the intent slot,
//! `store::intent`; `finish_interrupted`).
//!
//! Speed: one `zfs destroy` on the happy path (plus its retries while
//! zfs-fuse says "busy"), one 512-byte write to the slot, no sync.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::force_stop;
use crate::store::{Intent, IntentSlot, Record, RecordSig};
use uuid::Uuid;

/// Deletes a VM: stops it at once if it runs, has the driver clean up,
/// destroys its dataset recursively, then removes the record. Refused
/// when `indestructible_zoneroot` is set; a failed destroy keeps the
/// record so the delete can be retried.
pub fn delete(ctx: &Ctx, uuid: &Uuid) -> OpsResult<()> {
    let _global = ctx.store.lock_global()?;
    let super::create::Recovery {
        slot,
        receive_seen,
        deleted,
        stuck,
    } = super::create::recover(ctx, &_global)?;
    if deleted == Some(*uuid) {
        // This very VM's delete, interrupted before, is finished now.
        return Ok(());
    }
    if stuck == Some(*uuid) {
        // Deleting it now would leave the dataset its reprovision moved
        // aside (known to nothing once the record is gone).
        return Err(OpsError::Failed(format!(
            "Failed to delete VM {uuid}: an interrupted reprovision of it cannot be finished \
             (see the warning above); run `vmadm reprovision` of it or sort out its datasets first"
        )));
    }
    if receive_seen {
        // A receive ran since the last create: sweep what a dead one left
        // (the slot's note of it is about to be overwritten). A target
        // that was such a record is gone with it, which is the delete done.
        let existed = ctx.store.exists(uuid);
        super::create::sweep_incomplete_records(ctx);
        if existed && !ctx.store.exists(uuid) {
            return Ok(());
        }
    }
    let _lock = ctx.store.lock_vm(uuid)?;
    let rec = ctx.record(uuid)?;
    if rec.vm.indestructible_zoneroot == Some(true) {
        return Err(OpsError::Failed(format!(
            "Failed to delete VM {uuid}: indestructible_zoneroot is set, cannot delete"
        )));
    }
    tear_down(ctx, &slot, uuid, &rec)
}

/// Stops the VM at once if it runs, has the driver clean up, then — after
/// a delete entry in the intent slot naming this very record file —
/// destroys the dataset and removes the record. If this process dies in
/// between, the entry (same file signature) has the next create or delete
/// finish the job. Nothing here waits for the disk: neither the entry nor
/// the record's removal is synced, as the removal never was. After a power
/// loss the record may be back without its dataset; the next create or
/// delete finishes it when the entry reached the disk, else `vmadm delete`
/// of it does. Callers hold the global and the VM lock.
pub(crate) fn tear_down(ctx: &Ctx, slot: &IntentSlot, uuid: &Uuid, rec: &Record) -> OpsResult<()> {
    if let Ok(spec) = ctx.spec(rec) {
        force_stop(ctx, uuid, &spec)?;
    }
    let dataset = rec
        .vm
        .zfs_filesystem
        .clone()
        .unwrap_or_else(|| ctx.config.vm_dataset(uuid));
    if let Some(sig) = ctx.store.record_sig(uuid)? {
        slot.write_unsynced(&Intent::Delete {
            uuid: *uuid,
            dataset: dataset.clone(),
            sig,
        })?;
    }
    super::create::crash_point("delete:intent");
    // The destroy holds the global lock as well: a delete killed now leaves
    // it held until zfs is done, so the next holder's repair of this very
    // delete never runs beside it.
    ctx.zfs().holding(slot.lock_fd()).destroy(&dataset, true)?;
    super::create::crash_point("delete:destroyed");
    ctx.store.remove(uuid)?;
    Ok(())
}

/// Finishes a delete of `uuid` that died after noting itself in the slot
/// (`store::intent`); returns whether it finished it. With no record left
/// the delete got through (or the record was removed by hand: telling the
/// two apart would cost a `zfs` process after every delete), so nothing is
/// done. The very record the delete saw is deleted with its dataset. A
/// record written since (an update after the delete died) is deleted too
/// when its dataset is gone, since a record without its dataset is no VM;
/// with the dataset still there the VM stays, and stderr says so (the
/// delete may have stopped it and taken some snapshots or `data`). A
/// delete that fails again keeps the record (the VM stays listed, as
/// after any failed delete) and is said on stderr; it does not stop the
/// caller. Callers hold the global lock.
pub(crate) fn finish_interrupted(
    ctx: &Ctx,
    slot: &IntentSlot,
    uuid: &Uuid,
    dataset: &str,
    sig: RecordSig,
) -> OpsResult<bool> {
    let Some(now) = ctx.store.record_sig(uuid)? else {
        return Ok(false);
    };
    let _vm = ctx.store.lock_vm(uuid)?;
    let rec = ctx.store.load(uuid).ok().flatten();
    let dataset = rec
        .as_ref()
        .and_then(|r| r.vm.zfs_filesystem.clone())
        .unwrap_or_else(|| dataset.to_string());
    if now != sig && ctx.zfs().exists(&dataset)? {
        tracing::warn!(
            "VM {uuid}: a delete of it was interrupted and its record written again since; \
             its dataset {dataset} is still there, so the VM stays (the delete may have \
             stopped it and removed some of its snapshots): run `vmadm delete {uuid}` to \
             delete it"
        );
        return Ok(false);
    }
    tracing::info!(%uuid, "finishing a delete that was interrupted");
    let done = match &rec {
        Some(rec) => tear_down(ctx, slot, uuid, rec),
        // An unreadable record: its dataset and the file, as named.
        None => ctx
            .zfs()
            .holding(slot.lock_fd())
            .destroy(&dataset, true)
            .map_err(OpsError::from)
            .and_then(|()| ctx.store.remove(uuid).map_err(OpsError::from)),
    };
    match done {
        Ok(()) => Ok(true),
        Err(e) => {
            tracing::warn!(
                "VM {uuid}: cannot finish its interrupted delete: {e}; its record stays: \
                 run `vmadm delete {uuid}` again"
            );
            Ok(false)
        }
    }
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
        // The destroy was started holding the global lock.
        assert!(
            fx.runner
                .held()
                .contains(&format!("zfs destroy -r zones/{uuid}")),
            "{:?}",
            fx.runner.held()
        );
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

    /// Runs a delete of `uuid` that dies at `step` as if killed.
    fn delete_dying_at(fx: &Fixture, uuid: &Uuid, step: &'static str) {
        use crate::ops::create::CRASH_AT;
        CRASH_AT.with(|c| c.set(Some(step)));
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| delete(&fx.ctx, uuid)));
        CRASH_AT.with(|c| c.set(None));
        assert!(died.is_err(), "delete did not die at {step}");
    }

    #[test]
    fn a_delete_killed_around_its_destroy_is_finished_by_the_next_create_or_delete() {
        for step in ["delete:intent", "delete:destroyed"] {
            for next_is_create in [true, false] {
                let fx = Fixture::new();
                let dead = fx.create_vm(json!({}));
                let other = fx.create_vm(json!({}));
                delete_dying_at(&fx, &dead, step);
                // Killed between destroy and record removal: the record is
                // still there, the dataset maybe not.
                assert!(fx.ctx.store.exists(&dead), "{step}");
                let mark = fx.mark();
                if next_is_create {
                    fx.create_vm(json!({}));
                } else {
                    delete(&fx.ctx, &other).unwrap();
                }
                let cmds = fx.commands_since(&mark);
                assert_eq!(cmds[0], format!("zfs destroy -r zones/{dead}"), "{step}");
                assert_eq!(cmds.len(), 2, "{step}: {cmds:?}");
                assert!(!fx.ctx.store.exists(&dead), "{step}");
                assert!(
                    fx.driver_calls_since(&mark)
                        .contains(&format!("cleanup {dead}")),
                    "{step}"
                );
                // Finished once: the next delete runs its own destroy only.
                let last = fx.create_vm(json!({}));
                let mark = fx.mark();
                delete(&fx.ctx, &last).unwrap();
                assert_eq!(fx.commands_since(&mark).len(), 1, "{step}");
            }
        }
    }

    /// Writes the record anew (a new file), as an update does.
    fn rewrite(fx: &Fixture, uuid: &Uuid, alias: &str) {
        let mut rec = fx.record(uuid);
        rec.alias = Some(alias.into());
        fx.ctx.store.save(uuid, &rec).unwrap();
    }

    #[test]
    fn a_killed_delete_is_finished_though_its_record_was_rewritten_when_its_dataset_is_gone() {
        // Killed after its destroy; an update then writes the record anew.
        // A record whose dataset is gone is no VM: the delete is finished.
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"alias": "old"}));
        delete_dying_at(&fx, &uuid, "delete:destroyed");
        rewrite(&fx, &uuid, "new");
        let mark = fx.mark();
        fx.create_vm(json!({}));
        let cmds = fx.commands_since(&mark);
        assert_eq!(
            cmds[..2],
            [
                format!("zfs list -H -o name -t all zones/{uuid}"),
                format!("zfs destroy -r zones/{uuid}"),
            ],
            "{cmds:?}"
        );
        assert_eq!(cmds.len(), 3, "{cmds:?}");
        assert!(!fx.ctx.store.exists(&uuid));
    }

    #[test]
    fn a_record_written_after_a_killed_delete_stays_while_its_dataset_does() {
        // Killed before its destroy got anywhere; the VM is updated since:
        // record and dataset are both there, and both stay.
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"alias": "old"}));
        delete_dying_at(&fx, &uuid, "delete:intent");
        rewrite(&fx, &uuid, "new");
        fx.answer_exists(&format!("zones/{uuid}"));
        let mark = fx.mark();
        fx.create_vm(json!({}));
        let cmds = fx.commands_since(&mark);
        assert_eq!(cmds[0], format!("zfs list -H -o name -t all zones/{uuid}"));
        assert_eq!(cmds.len(), 2, "{cmds:?}");
        assert_eq!(fx.record(&uuid).alias.as_deref(), Some("new"));
        // `vmadm delete` of it still works.
        delete(&fx.ctx, &uuid).unwrap();
        assert!(!fx.ctx.store.exists(&uuid));
    }

    #[test]
    fn deleting_again_a_vm_whose_delete_was_killed_finishes_it() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        delete_dying_at(&fx, &uuid, "delete:destroyed");
        let mark = fx.mark();
        delete(&fx.ctx, &uuid).unwrap();
        assert_eq!(
            fx.commands_since(&mark),
            [format!("zfs destroy -r zones/{uuid}")]
        );
        assert!(!fx.ctx.store.exists(&uuid));
    }

    #[test]
    fn a_killed_delete_that_fails_again_keeps_its_record_and_blocks_nothing() {
        let fx = Fixture::new();
        let dead = fx.create_vm(json!({}));
        delete_dying_at(&fx, &dead, "delete:intent");
        let ds = format!("zones/{dead}");
        fx.runner.fail(
            &["zfs", "destroy", "-r", &ds],
            "cannot destroy: permission denied",
        );
        let live = fx.create_vm(json!({}));
        assert!(fx.ctx.store.exists(&live));
        // Still listed, as after any failed delete.
        assert!(fx.ctx.store.exists(&dead));
        let other = fx.create_vm(json!({}));
        delete(&fx.ctx, &other).unwrap();
        let err = delete(&fx.ctx, &dead).unwrap_err().to_string();
        assert!(err.contains("permission denied"), "{err}");
    }
}
