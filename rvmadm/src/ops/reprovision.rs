//! `vmadm reprovision <uuid> [-f file]`: give a VM a fresh root from an
//! image (the payload names `image_uuid`), keeping its record, its
//! delegated `data` dataset and its quota. A VM that ran is started again.
//!
//! The swap is all or nothing. The VM's dataset is first renamed aside
//! (`<pool>/<uuid>-reprovision-old`, its snapshots and `data` child with
//! it), the image cloned in its place and checked by the driver's layout
//! check; only then does `data` move over, the record change, and the old
//! dataset go. Any failure on the way destroys the new clone and renames
//! the old dataset back, so a refused image leaves the VM as it was: same
//! dataset, snapshots, delegated dataset and record (and running again if
//! it ran).
//!
//! Crash safety: before the first rename the reprovision notes itself in
//! the intent slot (`store::intent`, synced; reprovision is not on a speed
//! budget) and clears the note once it has finished or rolled back. A
//! reprovision killed in between is finished by the next create, delete,
//! receive or reprovision (`finish_interrupted`): the new clone is kept
//! when the record already names the new image, else the swap is rolled
//! back. So a `vmadm delete` never leaves `<uuid>-reprovision-old` behind.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::{force_stop, lock_and_load};
use crate::spec::value::is_uuid;
use crate::spec::Field;
use crate::store::{Intent, IntentSlot};
use crate::zfs::{Zfs, ZfsError};
use serde_json::{Map, Value};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use uuid::Uuid;

/// The dataset names one reprovision works with.
struct Names {
    /// The VM's dataset, `<pool>/<uuid>`.
    dataset: String,
    /// Where the VM's dataset waits while the new one is checked.
    aside: String,
    /// The delegated dataset's place in the VM's dataset.
    data: String,
    /// Where the delegated dataset is before it moves into the new clone:
    /// `<aside>/data`, or where an earlier version's failed reprovision
    /// parked it (`<pool>/<uuid>-reprovision-data`); `None` without one.
    data_from: Option<String>,
    /// Where the delegated dataset is when the VM is as it was before:
    /// `data`, or the parked name.
    data_before: Option<String>,
    /// Whether the delegated dataset was mounted on the host: a rename
    /// may unmount it (zfs-fuse's "busy"), and it must end up as it was.
    data_mounted: bool,
}

/// Replaces the VM's dataset with a fresh clone of the `image_uuid` the
/// payload names (other payload keys are ignored) and records the new
/// image. The old dataset's snapshots go with it; the delegated `data`
/// dataset and the quota stay. A running VM is stopped at once first and
/// started again after. Refused when the image is not installed or
/// `indestructible_zoneroot` is set. A failure after the VM was stopped
/// puts everything back (see the module docs).
pub fn reprovision(ctx: &Ctx, uuid: &Uuid, payload: &Map<String, Value>) -> OpsResult<()> {
    let fail = |m: String| OpsError::Failed(format!("Failed to reprovision VM {uuid}: {m}"));
    let image = match payload.get("image_uuid").and_then(Value::as_str) {
        Some(i) if is_uuid(i) => i.to_ascii_lowercase(),
        Some(_) => return Err(fail("invalid image_uuid".into())),
        None => return Err(fail("payload is missing image_uuid".into())),
    };
    let new_image = Uuid::parse_str(&image).map_err(|_| fail("invalid image_uuid".into()))?;
    let global = ctx.store.lock_global()?;
    // A reprovision (or create, delete) that died is finished first.
    let slot = super::create::recover(ctx, &global)?.slot;
    let l = lock_and_load(ctx, uuid)?;
    if l.rec.vm.indestructible_zoneroot == Some(true) {
        return Err(fail("indestructible_zoneroot is set".into()));
    }
    // Every zfs process of the swap (renames, destroys, the clone) holds
    // the global lock too: one that outlives a killed reprovision keeps
    // the next holder, which repairs the swap, waiting until it is done.
    let zfs = ctx.zfs().holding(Some(global.as_fd()));
    let pool = &l.spec.zpool;
    let dataset = l.spec.zfs_filesystem.clone();
    let aside = format!("{pool}/{uuid}-reprovision-old");
    if zfs.exists(&aside)? {
        if zfs.exists(&dataset)? {
            // Interrupted after the new clone was made: which of the two is
            // the VM depends on whether its record was saved, which only
            // the operator can tell apart by looking.
            return Err(fail(format!(
                "{aside} is left from an interrupted reprovision; compare it with {dataset} \
                 and destroy the one that is not the VM (zfs destroy -r)"
            )));
        }
        // Interrupted between the rename and the clone: that is the VM.
        zfs.rename_unbusy(&aside, &dataset)?;
    }
    let origin = format!("{pool}/{image}@final");
    if !zfs.exists(&origin)? {
        return Err(fail(format!(
            "image {image} is not installed (no {origin}); run `imgadm import {image}` first"
        )));
    }
    let data = format!("{dataset}/data");
    let parked = format!("{pool}/{uuid}-reprovision-data");
    let (data_from, data_before) = if zfs.exists(&data)? {
        (Some(format!("{aside}/data")), Some(data.clone()))
    } else if zfs.exists(&parked)? {
        (Some(parked.clone()), Some(parked))
    } else {
        (None, None)
    };
    let data_mounted = match &data_before {
        Some(d) => zfs.get(d, "mounted")? == "yes",
        None => false,
    };
    let names = Names {
        dataset,
        aside,
        data,
        data_from,
        data_before,
        data_mounted,
    };
    let was_running = force_stop(ctx, uuid, &l.spec)?;

    // From here until it is cleared, a death leaves the slot saying what
    // to finish or roll back.
    let noted = slot.write(&Intent::Reprovision {
        uuid: *uuid,
        dataset: names.dataset.clone(),
        aside: names.aside.clone(),
        old_image: l
            .rec
            .vm
            .image_uuid
            .as_deref()
            .and_then(|i| Uuid::parse_str(i).ok()),
        new_image,
    });
    if let Err(e) = noted {
        return Err(fail(restarted(ctx, &l.spec, was_running, e.to_string())));
    }
    // Cleared once nothing is left aside; a failure to clear only costs
    // the next holder a look (it finds nothing to do).
    let done = || {
        if let Err(e) = slot.clear() {
            tracing::warn!(%uuid, error = %e, "cannot clear the intent slot");
        }
    };
    if let Err(e) = zfs.rename_unbusy(&names.dataset, &names.aside) {
        // Nothing moved (a rename is all or nothing).
        done();
        return Err(fail(restarted(ctx, &l.spec, was_running, e.to_string())));
    }
    super::create::crash_point("reprovision:aside");
    let mut data_moved = false;
    let hold = global.as_fd();
    let swapped =
        swap_in(ctx, &zfs, &names, &origin, &l.spec, hold, &mut data_moved).and_then(|mp| {
            let mut vm = l.rec.vm.clone();
            vm.image_uuid = Some(image);
            vm.place(Field::ImageUuid);
            vm.zonepath = Some(mp.display().to_string());
            vm.place(Field::Zonepath);
            vm.snapshots = Some(Vec::new());
            vm.place(Field::Snapshots);
            ctx.store.save(uuid, &vm)?;
            Ok(vm)
        });
    let vm = match swapped {
        Ok(vm) => vm,
        Err(e) => {
            let message = match roll_back(&zfs, &names, data_moved) {
                Ok(()) => {
                    done();
                    e.to_string()
                }
                Err(r) => format!(
                    "{e}; putting the VM back failed too: {r} (its dataset is {}{})",
                    names.aside,
                    match (&names.data_from, data_moved) {
                        (Some(_), true) => format!(", its delegated dataset {}", names.data),
                        (Some(from), false) => format!(", its delegated dataset {from}"),
                        (None, _) => String::new(),
                    }
                ),
            };
            return Err(fail(restarted(ctx, &l.spec, was_running, message)));
        }
    };
    super::create::crash_point("reprovision:saved");
    // The record names the new image: the old dataset is no longer the VM.
    // Should it stay, the slot says so to the next holder (which cannot
    // tell from the record alone when the image is the same as before).
    if let Err(e) = slot.write(&Intent::ReprovisionCommitted {
        uuid: *uuid,
        aside: names.aside.clone(),
    }) {
        tracing::warn!(%uuid, error = %e, "cannot note the finished reprovision in the intent slot");
    }
    super::create::crash_point("reprovision:committed");
    let leftover = zfs.destroy(&names.aside, true).err();
    if leftover.is_none() {
        done();
    }
    if was_running {
        let mut rec = l.rec.clone();
        rec.vm = vm;
        let spec = ctx.spec(&rec)?;
        ctx.driver
            .start(&spec)
            .map_err(|e| fail(format!("reprovisioned, but the boot failed: {e}")))?;
    }
    match leftover {
        Some(e) => Err(fail(format!(
            "reprovisioned, but the old dataset {} is left: {e}",
            names.aside
        ))),
        None => Ok(()),
    }
}

/// Clones the image where the VM's dataset was, checks its layout, moves
/// the delegated dataset in and seals the zonepath; returns the zonepath.
/// Sets `data_moved` once the delegated dataset is in the new clone.
fn swap_in(
    ctx: &Ctx,
    zfs: &Zfs<'_>,
    names: &Names,
    origin: &str,
    spec: &crate::spec::VmSpec,
    hold: BorrowedFd<'_>,
    data_moved: &mut bool,
) -> OpsResult<PathBuf> {
    // The same properties create clones with (devices=off, the quota). The
    // `zfs` process holds the global lock too, as create's does: the next
    // holder never races a clone still on its way.
    let props = super::create::vm_clone_props(Some(spec.limits.quota));
    zfs.clone_snapshot_while(origin, &names.dataset, &props, Some(hold), || ())
        .0?;
    super::create::crash_point("reprovision:cloned");
    let mountpoint = zfs.mountpoint(&names.dataset)?;
    // The new image must be a zone layout before the kept data dataset
    // mounts at <zonepath>/data (never through a symlink).
    ctx.driver.check_layout(&mountpoint)?;
    if let Some(from) = &names.data_from {
        zfs.rename_unbusy(from, &names.data)?;
        *data_moved = true;
        super::create::crash_point("reprovision:data");
        if names.data_mounted {
            zfs.mount(&names.data)?;
        }
    }
    // A fresh clone's root is the image's mode: private again, as create
    // leaves a zonepath.
    super::create::seal_zonepath(ctx, &spec.zpool, &names.dataset, &mountpoint)
}

/// Undoes [`swap_in`]: the delegated dataset back where it came from, the
/// new clone destroyed, the old dataset renamed back. Stops at the first
/// failure, so the new clone is never destroyed with data inside it.
fn roll_back(zfs: &Zfs<'_>, names: &Names, data_moved: bool) -> Result<(), ZfsError> {
    if let (Some(from), true) = (&names.data_from, data_moved) {
        zfs.rename_unbusy(&names.data, from)?;
    }
    // Not recursive: the clone has no snapshot or child of its own, and a
    // child still there would be a delegated dataset to keep.
    zfs.destroy(&names.dataset, false)?;
    zfs.rename_unbusy(&names.aside, &names.dataset)?;
    // A busy rename unmounts: mount what was mounted (the VM's dataset
    // always is; `rename_unbusy` mounted it again, this is a no-op then).
    zfs.mount(&names.dataset)?;
    match (&names.data_before, names.data_mounted) {
        (Some(data), true) => zfs.mount(data),
        _ => Ok(()),
    }
}

/// A reprovision that died, as its slot entry names it.
pub(crate) struct Interrupted<'a> {
    /// The VM.
    pub uuid: Uuid,
    /// Its dataset, where the new clone is made.
    pub dataset: &'a str,
    /// Where its old dataset was moved.
    pub aside: &'a str,
    /// The image the record named before.
    pub old_image: Option<Uuid>,
    /// The image the reprovision was to.
    pub new_image: Uuid,
}

/// Finishes a reprovision that died between noting itself in the slot and
/// clearing the note: nothing aside means nothing to do; a record already
/// naming the new image (its save is the commit) means the old dataset
/// goes; otherwise the swap is rolled back (the delegated dataset back
/// into the old dataset, the new clone destroyed, the old one renamed
/// back). A reprovision to the image the VM already had cannot be told
/// from its record, so it is rolled back too: the old dataset holds the
/// tenant's files. The VM is left stopped. Clears the slot once done;
/// callers hold the global lock.
pub(crate) fn finish_interrupted(
    ctx: &Ctx,
    slot: &IntentSlot,
    it: &Interrupted<'_>,
) -> OpsResult<()> {
    let zfs = ctx.zfs().holding(slot.lock_fd());
    let uuid = it.uuid;
    if zfs.exists(it.aside)? {
        let _vm = ctx.store.lock_vm(&uuid)?;
        let rec = ctx
            .store
            .load(&uuid)?
            .ok_or_else(|| OpsError::no_such_vm(&uuid))?;
        let recorded = rec
            .vm
            .image_uuid
            .as_deref()
            .and_then(|i| Uuid::parse_str(i).ok());
        let committed = it.old_image != Some(it.new_image) && recorded == Some(it.new_image);
        if committed {
            zfs.destroy(it.aside, true)?;
        } else {
            let data = format!("{}/data", it.dataset);
            if zfs.exists(it.dataset)? {
                // A `data` in the new clone can only be the one moved in.
                let moved = zfs.exists(&data)?;
                let names = Names {
                    dataset: it.dataset.to_string(),
                    aside: it.aside.to_string(),
                    data: data.clone(),
                    data_from: moved.then(|| format!("{}/data", it.aside)),
                    data_before: None,
                    data_mounted: false,
                };
                roll_back(&zfs, &names, moved)?;
            } else {
                zfs.rename_unbusy(it.aside, it.dataset)?;
                zfs.mount(it.dataset)?;
            }
            // Mounted again as a VM's `data` is (a busy rename unmounts).
            if zfs.exists(&data)? {
                zfs.mount(&data)?;
            }
        }
        tracing::warn!(
            "VM {uuid}: a reprovision of it was interrupted and is now {}; the VM is stopped",
            if committed {
                "finished (the old dataset is destroyed)"
            } else {
                "rolled back to its old dataset"
            }
        );
    }
    slot.clear()?;
    Ok(())
}

/// Destroys the old dataset a committed reprovision left (`aside`), if it
/// is still there, and clears the slot. Callers hold the global lock.
pub(crate) fn drop_old(ctx: &Ctx, slot: &IntentSlot, uuid: &Uuid, aside: &str) -> OpsResult<()> {
    let zfs = ctx.zfs().holding(slot.lock_fd());
    if zfs.exists(aside)? {
        tracing::info!(%uuid, %aside, "destroying the old dataset of a finished reprovision");
        zfs.destroy(aside, true)?;
    }
    slot.clear()?;
    Ok(())
}

/// Starts the VM again after a failed reprovision when it ran before;
/// returns `message`, extended when that start fails too.
fn restarted(ctx: &Ctx, spec: &crate::spec::VmSpec, was_running: bool, message: String) -> String {
    if !was_running {
        return message;
    }
    match ctx.driver.start(spec) {
        Ok(()) => message,
        Err(e) => format!("{message}; starting the VM again failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::create::CRASH_AT;
    use crate::ops::testing::{ok, Fixture, IMAGE, POOL};
    use serde_json::json;

    /// A VM with a mounted delegated dataset, running, whose reprovision
    /// fails at the clone: the commands put everything back in reverse
    /// order, the VM boots again and its record is untouched.
    #[test]
    fn a_failed_clone_puts_the_vm_back_and_boots_it_again() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        let ds = format!("{POOL}/{uuid}");
        let data = format!("{ds}/data");
        for name in [&ds, &data] {
            fx.answer_exists(name);
        }
        fx.runner.answer(
            &["zfs", "get", "-H", "-o", "value", "mounted", &data],
            ok("yes\n"),
        );
        fx.runner
            .fail(&["zfs", "clone"], "cannot create 'x': out of space");
        let before = fx.stored(&uuid);
        let mark = fx.mark();
        let payload = json!({"image_uuid": IMAGE});
        let err = reprovision(&fx.ctx, &uuid, payload.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().contains("out of space"), "{err}");
        assert!(!err.to_string().contains("putting the VM back"), "{err}");
        let aside = format!("{POOL}/{uuid}-reprovision-old");
        let acts: Vec<String> = fx
            .commands_since(&mark)
            .into_iter()
            .filter(|c| !c.starts_with("zfs list") && !c.starts_with("zfs get"))
            .collect();
        assert_eq!(
            acts,
            [
                format!("zfs rename {ds} {aside}"),
                format!("zfs clone -o devices=off -o quota=10G {POOL}/{IMAGE}@final {ds}"),
                format!("zfs destroy {ds}"),
                format!("zfs rename {aside} {ds}"),
                format!("zfs mount {ds}"),
                format!("zfs mount {data}"),
            ]
        );
        // Every one of them was started holding the global lock.
        let held = fx.runner.held();
        for act in &acts {
            let clone = act.starts_with("zfs clone");
            assert!(clone || held.contains(act), "{act} not held: {held:?}");
        }
        assert_eq!(
            fx.driver_calls_since(&mark),
            [
                format!("stop {uuid} force=true"),
                format!("cleanup {uuid}"),
                format!("start {uuid}"),
            ]
        );
        assert_eq!(fx.stored(&uuid), before);
    }

    const NEW_IMAGE: &str = "b0b0b0b0-0000-4000-8000-00000000000b";

    /// Runs a reprovision of `uuid` onto `image` that dies at `step` as if
    /// killed; the slot then names it.
    fn reprovision_dying_at(fx: &Fixture, uuid: &Uuid, image: &str, step: &'static str) {
        fx.answer_exists(&format!("{POOL}/{image}@final"));
        let payload = json!({ "image_uuid": image });
        CRASH_AT.with(|c| c.set(Some(step)));
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reprovision(&fx.ctx, uuid, payload.as_object().unwrap())
        }));
        CRASH_AT.with(|c| c.set(None));
        assert!(died.is_err(), "reprovision did not die at {step}");
        assert!(matches!(
            fx.ctx.store.intent_slot().unwrap().read(),
            Some(Intent::Reprovision { .. } | Intent::ReprovisionCommitted { .. })
        ));
    }

    #[test]
    fn a_delete_after_a_reprovision_killed_past_its_commit_leaves_no_old_dataset() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let ds = format!("{POOL}/{uuid}");
        let aside = format!("{ds}-reprovision-old");
        fx.answer_exists(&ds);
        reprovision_dying_at(&fx, &uuid, NEW_IMAGE, "reprovision:saved");
        assert_eq!(fx.record(&uuid).image_uuid.as_deref(), Some(NEW_IMAGE));
        fx.answer_exists(&aside);
        let mark = fx.mark();
        crate::ops::delete::delete(&fx.ctx, &uuid).unwrap();
        assert_eq!(
            fx.commands_since(&mark),
            [
                format!("zfs list -H -o name -t all {aside}"),
                format!("zfs destroy -r {aside}"),
                format!("zfs destroy -r {ds}"),
            ]
        );
        // The repair's destroy held the global lock, as the delete's did.
        let held = fx.runner.held();
        assert!(
            held.contains(&format!("zfs destroy -r {aside}")),
            "{held:?}"
        );
        assert!(!fx.ctx.store.exists(&uuid));
        // The slot names the delete now, not the reprovision.
        assert!(matches!(
            fx.ctx.store.intent_slot().unwrap().read(),
            Some(Intent::Delete { .. })
        ));
    }

    #[test]
    fn a_reprovision_killed_before_its_commit_is_rolled_back_by_the_next_holder() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let ds = format!("{POOL}/{uuid}");
        let aside = format!("{ds}-reprovision-old");
        fx.answer_exists(&ds);
        let before = fx.stored(&uuid);
        reprovision_dying_at(&fx, &uuid, NEW_IMAGE, "reprovision:cloned");
        fx.answer_exists(&aside);
        let mark = fx.mark();
        fx.create_vm(json!({}));
        let cmds = fx.commands_since(&mark);
        assert_eq!(
            cmds[..7],
            [
                format!("zfs list -H -o name -t all {aside}"),
                format!("zfs list -H -o name -t all {ds}"),
                format!("zfs list -H -o name -t all {ds}/data"),
                format!("zfs destroy {ds}"),
                format!("zfs rename {aside} {ds}"),
                format!("zfs mount {ds}"),
                format!("zfs list -H -o name -t all {ds}/data"),
            ],
            "{cmds:#?}"
        );
        assert!(cmds[7].starts_with("zfs clone"), "{cmds:#?}");
        assert_eq!(cmds.len(), 8, "{cmds:#?}");
        assert_eq!(fx.stored(&uuid), before);
        // Done once: the slot is the create's now.
        let mark = fx.mark();
        fx.create_vm(json!({}));
        assert_eq!(fx.commands_since(&mark).len(), 1);
    }

    #[test]
    fn a_finished_or_rolled_back_reprovision_leaves_nothing_for_the_next_create() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        fx.answer_exists(&format!("{POOL}/{uuid}"));
        fx.answer_exists(&format!("{POOL}/{NEW_IMAGE}@final"));
        let payload = json!({"image_uuid": NEW_IMAGE});
        reprovision(&fx.ctx, &uuid, payload.as_object().unwrap()).unwrap();
        assert_eq!(fx.ctx.store.intent_slot().unwrap().read(), None);
        fx.runner
            .fail(&["zfs", "clone"], "cannot create 'x': out of space");
        assert!(reprovision(&fx.ctx, &uuid, payload.as_object().unwrap()).is_err());
        assert_eq!(fx.ctx.store.intent_slot().unwrap().read(), None);
    }

    #[test]
    fn a_reprovision_to_the_same_image_killed_after_its_commit_keeps_the_new_root() {
        // The record cannot tell a same-image reprovision's commit: the
        // slot's `reprovision-committed` does.
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let ds = format!("{POOL}/{uuid}");
        let aside = format!("{ds}-reprovision-old");
        fx.answer_exists(&ds);
        reprovision_dying_at(&fx, &uuid, IMAGE, "reprovision:committed");
        fx.answer_exists(&aside);
        let mark = fx.mark();
        fx.create_vm(json!({}));
        let cmds = fx.commands_since(&mark);
        assert_eq!(
            cmds[..2],
            [
                format!("zfs list -H -o name -t all {aside}"),
                format!("zfs destroy -r {aside}"),
            ],
            "{cmds:#?}"
        );
        assert_eq!(cmds.len(), 3, "{cmds:#?}");
    }
}
