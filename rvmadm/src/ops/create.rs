//! `vmadm create`: validate, clone `<pool>/<image>@final` to `<pool>/<uuid>`
//! with the quota and `devices=off` set at clone time, write the record,
//! boot when autoboot.
//!
//! Speed: on the happy path the clone is the only `zfs` process. What
//! asking first used to learn comes from elsewhere: a taken dataset name, a
//! missing image snapshot and a missing pool from the clone's own stderr
//! (with one `zpool list` only on that failure, to tell the last two
//! apart); the zonepath from the pool's mountpoint, which the store caches
//! after one `zfs get` per host (see `store::pools`) and which create
//! checks by the chmod that makes the zonepath 0700.
//!
//! Crash safety: the whole create holds the global lock and notes itself
//! in the intent slot (`store::intent`) before its clone; the record is
//! written under a hidden name and renamed in as the last step (the
//! commit). The next create, delete, receive or reprovision runs
//! `recover` first, which undoes a create that died before its commit
//! and finishes an interrupted delete or reprovision. A failed boot
//! undoes everything.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use crate::spec::fs_policy::FsRequest;
use crate::spec::object::{new_vm_record, CreateContext};
use crate::spec::{self, Action, Field, VmRecord};
use crate::store::{iso_time, usable_mountpoint, Intent, IntentSlot, LockGuard, Receiving};
use crate::zfs::{Zfs, ZfsError};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Creates a VM from a create payload and returns its uuid (the payload's,
/// or a new one). Fails when validation refuses the payload, the uuid is
/// taken, or the pool or the image's `@final` snapshot is missing (the
/// last two found out by the clone itself, after which the record written
/// for it is removed again); fails after undoing everything when the
/// clone, the record or the first boot fails. Keys create does not accept
/// are dropped, as SmartOS does.
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
    let dataset = format!("{pool}/{uuid}");
    let origin = format!("{pool}/{image}@final");
    let exists = || OpsError::Failed(format!("VM with UUID {uuid} already exists"));

    let _global = ctx.store.lock_global()?;
    let Recovery {
        slot, receive_seen, ..
    } = recover(ctx, &_global)?;
    if receive_seen {
        sweep_incomplete_records(ctx);
    }
    if ctx.store.exists(&uuid) {
        return Err(exists());
    }
    let derived = pool_mountpoint(ctx, &pool)?.join(uuid.to_string());

    let now = iso_time(std::time::SystemTime::now());
    let uuid_s = uuid.to_string();
    let zonepath_s = derived.display().to_string();
    let mut obj = new_vm_record(
        &payload,
        &CreateContext {
            uuid: &uuid_s,
            default_pool: &ctx.config.pool,
            zonepath: &zonepath_s,
            now: &now,
        },
    );
    ctx.check_addresses_free(&uuid, &obj)?;
    super::update::check_ceilings(ctx, &payload, &obj, true)?;
    // The record is written before the clone, so it holds now what it will
    // hold if everything succeeds; a failure undoes it whole.
    let delegate = obj.delegate_dataset == Some(true);
    if delegate {
        obj.datasets = Some(vec![format!("{dataset}/data")]);
        obj.place(Field::Datasets);
    }

    // Properties the payload named (the quota is set by the clone itself).
    let given: Vec<String> = payload
        .keys()
        .filter(|k| k.as_str() != "quota")
        .cloned()
        .collect();
    // The undo of a failure (its destroy) holds the global lock too, as
    // the clone does (see below).
    let zfs = ctx.zfs().holding(Some(std::os::fd::AsFd::as_fd(&_global)));
    // 1. Durable intent: from here a dead create is undone by the next
    //    global-lock holder (see `recover`).
    let token = intent_token();
    // The boot id (one small read) tells the undo whether a reboot came
    // in between (see `recover`).
    slot.write(&Intent::CreatePending {
        uuid,
        dataset: dataset.clone(),
        origin: origin.clone(),
        token: token.clone(),
        boot: crate::store::boot_id(),
    })?;
    crash_point("create:pending");
    // 2. The clone, and meanwhile the record written and synced under its
    //    hidden name: that fsync overlaps the zfs process.
    let mut props = vm_clone_props(obj.quota).to_vec();
    props.push((CREATE_TOKEN, token));
    //    With autoboot, the part of the boot that needs no dataset (Linux:
    //    the network) is made meanwhile too, in a thread of its own; a
    //    failure to prepare is left for the boot to meet and report.
    let boot_spec = (obj.autoboot == Some(true))
        .then(|| crate::spec::VmSpec::from_record(&obj).ok())
        .flatten();
    //    The zfs process holds the global lock too: a create killed now
    //    leaves the lock held until its clone has landed or failed, so the
    //    next holder's undo never misses a clone still on its way.
    let hold = Some(std::os::fd::AsFd::as_fd(&_global));
    let (cloned, (prepared, net)) =
        zfs.clone_snapshot_while(&origin, &dataset, &props, hold, || {
            crash_point("create:cloning");
            std::thread::scope(|s| {
                let net = boot_spec
                    .as_ref()
                    .map(|spec| s.spawn(|| ctx.driver.prepare_start(spec)));
                let rec = ctx.store.prepare(&uuid, &obj);
                // A preparation that panicked may have left something: it is
                // cleaned up as if it had made the network.
                (rec, net.map(|h| h.join().unwrap_or(Ok(true))))
            })
        });
    // Undoes steps 1-2 (and the clone when it is ours) after a failure.
    let abort = |e: OpsError, destroy: bool| -> OpsError {
        if let (Some(Ok(true)), Some(spec)) = (&net, &boot_spec) {
            let _ = ctx.driver.cleanup(spec);
        }
        // A clone this create made but could not destroy (zfs-fuse can
        // say "busy" for a while) keeps the pending entry, which names it by
        // its token: the next holder of the global lock destroys it, or puts
        // it aside (see `recover`). Cleared, it would be known to nothing
        // and its uuid refused as taken for good.
        let left = destroy
            && match zfs.destroy(&dataset, true) {
                Ok(()) | Err(ZfsError::NotFound(_)) => false,
                Err(d) => {
                    tracing::warn!(%uuid, %dataset, error = %d, "cannot destroy the clone of this failed create; the next create or delete removes it");
                    true
                }
            };
        let _ = ctx.store.discard_prepared(&uuid);
        // A record can only be this create's (none was there under the
        // lock): the rename may have happened before a failed sync.
        let _ = ctx.store.remove(&uuid);
        // Durably: a pending entry left behind would make the next create
        // undo this one again (and a taken name is someone else's dataset).
        if !left {
            if let Err(c) = slot.clear() {
                tracing::warn!(%uuid, error = %c, "cannot clear the intent slot");
            }
        }
        e
    };
    if let Err(e) = cloned {
        return Err(match e {
            // Someone else's dataset: not ours to destroy.
            ZfsError::AlreadyExists(_) => abort(exists(), false),
            ZfsError::NoSuchPool(_) => abort(no_pool(&pool), false),
            ZfsError::NotFound(_) if !zfs.pool_exists(&pool).unwrap_or(true) => {
                abort(no_pool(&pool), false)
            }
            ZfsError::NotFound(_) => abort(OpsError::Failed(format!(
                "image {image} is not installed on zpool {pool} (no {origin}); run `imgadm import {image}` first"
            )), false),
            other => abort(other.into(), true),
        });
    }
    if let Err(e) = prepared {
        return Err(abort(e.into(), true));
    }
    crash_point("create:cloned");
    // 3. What the clone holds and the payload asks for on top of it.
    let made = seal_zonepath(ctx, &pool, &dataset, &derived).and_then(|zonepath| {
        // The image decides what is in the clone: refuse one without a
        // real root/ (or with `data` a symlink) before the delegated
        // dataset is mounted at <zonepath>/data or the VM ever boots.
        ctx.driver.check_layout(&zonepath)?;
        // SmartOS's delegated dataset: <zfs_filesystem>/data, for the
        // jail's own use (destroyed with the VM by the recursive delete).
        if delegate {
            zfs.create(&format!("{dataset}/data"), &[])?;
        }
        // The other dataset properties the payload gave (compression,
        // record sizes, count limits), through the update's one path; none
        // for a payload without them, so no process on the happy path.
        let dataset_changes = super::update::host_changes(&given, &obj)?.dataset;
        crate::driver::dataset::apply_to(&zfs, &dataset, &dataset_changes)?;
        if zonepath != derived {
            // The cached pool mountpoint was stale: the prepared record
            // names the wrong zonepath; write it again (rare).
            obj.zonepath = Some(zonepath.display().to_string());
            obj.place(Field::Zonepath);
            ctx.store.prepare(&uuid, &obj)?;
        }
        Ok(())
    });
    if let Err(e) = made {
        return Err(abort(e, true));
    }
    crash_point("create:checked");
    // 4. Commit: the record renamed in and the directory synced; the VM
    //    exists (and is listed) from here, whatever happens next.
    if let Err(e) = ctx.store.publish(&uuid) {
        return Err(abort(e.into(), true));
    }
    crash_point("create:published");
    // Done: says so in the slot, unsynced (were it lost, the pending entry
    // finds the record in place and does nothing either). So a record
    // removed later by other means never makes the dataset look undone.
    if let Err(e) = slot.write_unsynced(&Intent::CreateCommitted { uuid }) {
        tracing::warn!(%uuid, error = %e, "cannot note the finished create in the intent slot");
    }

    super::update::notice_unenforced(ctx, &given, &obj);
    if obj.autoboot == Some(true) {
        let rec = ctx
            .store
            .load(&uuid)?
            .ok_or_else(|| OpsError::no_such_vm(&uuid))?;
        let boot = ctx
            .spec(&rec)
            .and_then(|spec| ctx.driver.start(&spec).map_err(OpsError::from));
        if let Err(e) = boot {
            // Torn down the way delete does it, so a death halfway through
            // is finished by the next create or delete.
            let undone = ctx
                .store
                .lock_vm(&uuid)
                .map_err(OpsError::from)
                .and_then(|_vm| super::delete::tear_down(ctx, &slot, &uuid, &rec));
            if let Err(u) = undone {
                tracing::warn!(%uuid, error = %u, "cannot undo the VM that failed to boot");
            }
            return Err(OpsError::Failed(format!(
                "failed to boot VM {uuid}: {e}; the VM was not created"
            )));
        }
    }
    Ok(uuid)
}

/// Where a test makes create or delete die as if killed: in unit tests
/// (`CRASH_AT`) a panic, which unwinds past every undo step and drops the
/// locks as the kernel would; in a debug build of the binaries an abort
/// when `RVMADM_CRASH_AT` names the step, for the integration tests. A
/// release build has no hook.
pub(crate) fn crash_point(step: &'static str) {
    #[cfg(test)]
    if CRASH_AT.with(|c| c.get() == Some(step)) {
        panic!("crash point {step}");
    }
    #[cfg(all(debug_assertions, not(test)))]
    if std::env::var_os("RVMADM_CRASH_AT").is_some_and(|v| v == step) {
        std::process::abort();
    }
    let _ = step;
}

#[cfg(test)]
thread_local! {
    /// The step [`crash_point`] dies at in this test thread.
    pub(crate) static CRASH_AT: std::cell::Cell<Option<&'static str>> =
        const { std::cell::Cell::new(None) };
    /// The token [`intent_token`] hands out next in this test thread, so a
    /// scripted runner can answer with it.
    pub(crate) static NEXT_TOKEN: std::cell::Cell<Option<&'static str>> =
        const { std::cell::Cell::new(None) };
}

/// A fresh intent token: 16 random hex digits, stamped on what a create or
/// receive makes so that recovery touches only that (see `store::intent`).
pub(crate) fn intent_token() -> String {
    #[cfg(test)]
    if let Some(t) = NEXT_TOKEN.with(|c| c.take()) {
        return t.to_string();
    }
    format!("{:016x}", Uuid::new_v4().as_u128() as u64)
}

/// The properties every VM dataset is cloned with (create and reprovision):
/// `devices=off`, since the jail's /dev is made separately and a device
/// node a tenant makes inside its dataset must be no use to anyone on the
/// host; and the quota, set at clone time so no clone is ever visible
/// without it.
/// The user property a create's clone carries its intent token in (see
/// `store::intent`): proof, after a crash, that the dataset is the one
/// that create made.
pub(crate) const CREATE_TOKEN: &str = "rvmadm:create";

pub(crate) fn vm_clone_props(quota_gib: Option<u64>) -> [(&'static str, String); 2] {
    [
        ("devices", "off".to_string()),
        (
            "quota",
            crate::driver::dataset::quota_value(quota_gib.unwrap_or(0)),
        ),
    ]
}

fn no_pool(pool: &str) -> OpsError {
    OpsError::Failed(format!(
        "zpool {pool} does not exist (set `pool` in vmadm.toml or `zpool` in the payload)"
    ))
}

/// Where `pool` is mounted: the store's cached answer, else one `zfs get`
/// (remembered for the next create). A pool zfs does not know is the
/// "zpool does not exist" error; an unmounted pool (`none`, `legacy`) is
/// refused, since VMs need a zonepath.
fn pool_mountpoint(ctx: &Ctx, pool: &str) -> OpsResult<PathBuf> {
    if let Some(p) = ctx.store.pool_mountpoint(pool) {
        return Ok(p);
    }
    let mp = match ctx.zfs().mountpoint(pool) {
        Ok(mp) => mp,
        Err(ZfsError::NotFound(_)) => return Err(no_pool(pool)),
        Err(e) => return Err(e.into()),
    };
    if !usable_mountpoint(&mp) {
        return Err(OpsError::Failed(format!(
            "zpool {pool} has no usable mountpoint ({}); VMs need a mounted pool",
            mp.display()
        )));
    }
    ctx.store.remember_pool_mountpoint(pool, &mp)?;
    Ok(mp)
}

/// Makes the new clone's mountpoint 0700, as SmartOS keeps zonepaths (a
/// setuid file in a jail is then out of reach of host users), and returns
/// it. The chmod doubles as the check of the derived zonepath: when it is
/// not there (the pool's mountpoint changed since it was cached), zfs is
/// asked where the clone is, the cache corrected, and that path used.
pub(crate) fn seal_zonepath(
    ctx: &Ctx,
    pool: &str,
    dataset: &str,
    derived: &Path,
) -> OpsResult<PathBuf> {
    match chmod_0700(derived) {
        Ok(()) => return Ok(derived.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(chmod_failed(derived, e)),
    }
    let actual = ctx.zfs().mountpoint(dataset)?;
    if !usable_mountpoint(&actual) {
        return Err(OpsError::Failed(format!(
            "dataset {dataset} is not mounted (mountpoint {}); VMs need a mounted dataset",
            actual.display()
        )));
    }
    chmod_0700(&actual).map_err(|e| chmod_failed(&actual, e))?;
    if actual.file_name() == derived.file_name() {
        if let Some(parent) = actual.parent() {
            ctx.store.remember_pool_mountpoint(pool, parent)?;
        }
    }
    Ok(actual)
}

fn chmod_0700(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
}

fn chmod_failed(p: &Path, e: std::io::Error) -> OpsError {
    OpsError::Failed(format!("cannot make zonepath {} private: {e}", p.display()))
}

/// Removes a half-made VM: runtime leftovers, dataset, record.
fn undo(ctx: &Ctx, uuid: &Uuid, dataset: &str, obj: &VmRecord) {
    if let Ok(spec) = crate::spec::VmSpec::from_record(obj) {
        let _ = ctx.driver.cleanup(&spec);
    }
    // The record goes only with the dataset: a record removed while its
    // dataset stays would leave that dataset known to nothing.
    match ctx.zfs().destroy(dataset, true) {
        Ok(()) => {
            let _ = ctx.store.remove(uuid);
        }
        Err(e) => {
            tracing::warn!(%uuid, %dataset, error = %e, "cannot destroy the dataset of an incomplete VM; its record stays for vmadm delete");
        }
    }
}

/// A spec carrying only what names a VM's host objects (uuid, pool,
/// dataset), for a driver cleanup after a create that died before its
/// record was published.
fn name_only_spec(uuid: &Uuid, dataset: &str) -> Result<crate::spec::VmSpec, String> {
    let pool = dataset.split('/').next().unwrap_or_default();
    let obj = serde_json::json!({
        "uuid": uuid.to_string(),
        "brand": "jail",
        "image_uuid": Uuid::nil().to_string(),
        "zpool": pool,
        "zfs_filesystem": dataset,
    });
    match obj.as_object() {
        Some(o) => crate::spec::VmSpec::from_object(o),
        None => Err("not an object".into()),
    }
}

/// What [`recover`] leaves its caller.
pub(crate) struct Recovery {
    /// The slot, for the caller's own entry.
    pub slot: IntentSlot,
    /// Whether records with the incomplete marker may exist (see
    /// [`recover`]).
    pub receive_seen: bool,
    /// The VM whose interrupted delete was finished now.
    pub deleted: Option<Uuid>,
    /// The VM whose interrupted reprovision could not be finished (its
    /// entry stays in the slot until the caller overwrites it).
    pub stuck: Option<Uuid>,
}

/// Finishes or undoes the create, delete or reprovision the intent slot
/// names, when a `kill -9` or a power loss stopped it (`store::intent`
/// says what each entry promises), and returns the slot for the caller's
/// own entry, plus whether records with the incomplete marker may exist:
/// when the slot names a receive, or was only made now (the first run of
/// this release, whose predecessors marked creates in the record too).
/// Callers hold the global lock, so no live create, delete or reprovision
/// owns the entry. On the happy path this reads one block and, for an
/// entry already done, looks at one record file: no process.
///
/// What cannot be repaired blocks the caller only where going on could
/// lose track of data: a dead create's dataset that can be neither
/// destroyed nor renamed aside. A dataset that only cannot be destroyed is
/// renamed aside under a name carrying the uuid; a delete or reprovision
/// that cannot be finished leaves the VM's record in place. Each of these
/// is said on stderr, with what is left and how to remove it.
pub(crate) fn recover(ctx: &Ctx, global: &LockGuard) -> OpsResult<Recovery> {
    let mut slot = ctx.store.intent_slot()?;
    // The repairs' and deletes' zfs processes get the lock too.
    slot.hold_lock(global)
        .map_err(|e| OpsError::Failed(format!("cannot keep the global lock: {e}")))?;
    let made = slot.was_made();
    let mut out = Recovery {
        receive_seen: made,
        deleted: None,
        stuck: None,
        slot,
    };
    let Some(intent) = out.slot.read() else {
        return Ok(out);
    };
    out.receive_seen |= matches!(intent, Intent::Receive(_));
    match intent {
        Intent::Receive(None) | Intent::CreateCommitted { .. } => {}
        Intent::Receive(Some(r)) => {
            // The receive held the global lock to its end, and so did its
            // `zfs receive` and `zfs rename` processes: holding it now, we
            // know none of them is still writing. Only the container that
            // carries its token is destroyed (a dataset of that name
            // without it is someone else's); gone means it ended well.
            let zfs = ctx.zfs().holding(out.slot.lock_fd());
            match zfs.get(&r.container, super::receive::RECEIVE_TOKEN) {
                Ok(t) if t == r.token => {
                    tracing::info!(container = %r.container, "removing what an interrupted receive left");
                    if let Err(why) = zfs.destroy(&r.container, true) {
                        // As a dead create's dataset: put aside, so it
                        // blocks nothing (see `quarantine`).
                        quarantine_container(&zfs, &r.container, &r.token, &why)?;
                    }
                }
                Ok(t) => {
                    tracing::warn!(container = %r.container, found = %t, "not destroying a dataset the interrupted receive did not make");
                }
                Err(ZfsError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Intent::CreatePending {
            uuid,
            dataset,
            origin,
            token,
            boot,
        } => {
            // Its record in place means it got past its commit (the rename
            // is its last step that can fail): nothing to undo.
            if !ctx.store.exists(&uuid) {
                let pending = Pending {
                    uuid,
                    dataset: &dataset,
                    origin: &origin,
                    token: &token,
                };
                undo_pending(ctx, &out.slot, &pending, boot.as_deref())?;
            }
        }
        Intent::Delete { uuid, dataset, sig } => {
            if super::delete::finish_interrupted(ctx, &out.slot, &uuid, &dataset, sig)? {
                out.deleted = Some(uuid);
            }
        }
        Intent::Reprovision {
            uuid,
            dataset,
            aside,
            old_image,
            new_image,
        } => {
            let names = super::reprovision::Interrupted {
                uuid,
                dataset: &dataset,
                aside: &aside,
                old_image,
                new_image,
            };
            if let Err(e) = super::reprovision::finish_interrupted(ctx, &out.slot, &names) {
                tracing::warn!(
                    "VM {uuid}: cannot finish its interrupted reprovision: {e}; \
                     its old dataset is {aside}, its new one {dataset}; \
                     `vmadm reprovision` of it tries again"
                );
                out.stuck = Some(uuid);
            }
        }
        Intent::ReprovisionCommitted { uuid, aside } => {
            if let Err(e) = super::reprovision::drop_old(ctx, &out.slot, &uuid, &aside) {
                tracing::warn!(
                    "VM {uuid}: its old dataset {aside}, left by a reprovision, cannot be \
                     destroyed: {e}; it is no longer the VM: remove it with \
                     `zfs destroy -r {aside}`"
                );
                out.stuck = Some(uuid);
            }
        }
    }
    Ok(out)
}

/// The create a `create-pending` entry names.
struct Pending<'a> {
    uuid: Uuid,
    dataset: &'a str,
    origin: &'a str,
    token: &'a str,
}

/// Undoes a create that died before its commit (its record is missing).
/// `boot` is the boot id the entry was written in: after a reboot the
/// entry may be one whose `create-committed` successor never reached the
/// disk, with the record removed by hand since, so the dataset is then
/// destroyed only when the hidden record proves the create never got to
/// its commit (the commit renames it away), and otherwise left, reported.
fn undo_pending(
    ctx: &Ctx,
    slot: &IntentSlot,
    p: &Pending<'_>,
    boot: Option<&str>,
) -> OpsResult<()> {
    let Pending {
        uuid,
        dataset,
        origin,
        token,
    } = *p;
    // Its destroy (and the rename aside) hold the global lock too: should
    // this process die meanwhile, the next holder waits for them.
    let zfs = ctx.zfs().holding(slot.lock_fd());
    // Hosts without a boot id (None on both sides) trust the entry as
    // before; an entry of an earlier release (None) on a host with one
    // counts as written before a reboot.
    let rebooted = boot != crate::store::boot_id().as_deref();
    if rebooted && !ctx.store.is_prepared(&uuid) {
        match zfs.get(dataset, CREATE_TOKEN) {
            Ok(t) if t == token => tracing::warn!(
                "VM {uuid}: a create was interrupted before the last reboot and its record \
                 is missing, which a finished VM whose record was removed by hand looks like \
                 too; its dataset {dataset} is left as it is: if no VM should have it, \
                 remove it with `zfs destroy -r {dataset}`"
            ),
            Ok(_) | Err(ZfsError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        slot.clear()?;
        return Ok(());
    }
    tracing::info!(%uuid, "undoing a create that was interrupted before its commit");
    // Only the dataset this create's clone made, which carries its token:
    // the create may have died after its clone found the name taken by a
    // stranger (even a clone of the same image), before the slot was
    // cleared.
    match zfs.get(dataset, CREATE_TOKEN) {
        Ok(t) if t == token => {
            if let Err(e) = zfs.destroy(dataset, true) {
                quarantine(&zfs, p, &e)?;
            }
        }
        Ok(t) => {
            tracing::warn!(%dataset, %origin, found = %t, "not destroying a dataset the interrupted create did not make");
        }
        Err(ZfsError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    // The network a create with autoboot makes while it clones (found by
    // name: the Linux driver's teardown needs the uuid).
    if let Ok(spec) = name_only_spec(&uuid, dataset) {
        let _ = ctx.driver.cleanup(&spec);
    }
    ctx.store.discard_prepared(&uuid)?;
    slot.clear()?;
    Ok(())
}

/// The name a dead create's dataset is moved to when it cannot be
/// destroyed: beside it, carrying the uuid and the create's token.
fn quarantine_name(dataset: &str, token: &str) -> String {
    format!("{dataset}-quarantine-{token}")
}

/// A dead create's own dataset (it carries the token) that `zfs destroy`
/// refused (`why`: a dependent clone, a hold, a user that keeps it busy):
/// renamed aside, so its name and uuid are free and later creates and
/// deletes go on, and said on stderr. Only when the rename fails too does
/// the repair stop the caller, naming what to remove.
fn quarantine(zfs: &Zfs<'_>, p: &Pending<'_>, why: &ZfsError) -> OpsResult<()> {
    let (uuid, dataset) = (p.uuid, p.dataset);
    let aside = quarantine_name(dataset, p.token);
    match zfs.rename_unbusy(dataset, &aside) {
        Ok(()) => {
            tracing::warn!(
                "VM {uuid}: the dataset of a create that was interrupted cannot be destroyed \
                 ({why}); it is renamed to {aside}, which no VM uses: remove it with \
                 `zfs destroy -r {aside}` once what holds it is gone"
            );
            Ok(())
        }
        Err(e) => Err(OpsError::Failed(format!(
            "VM {uuid}: a create that was interrupted left dataset {dataset}, which can be \
             neither destroyed ({why}) nor renamed aside ({e}); no VM is created or deleted \
             until it is gone: remove it with `zfs destroy -r {dataset}`"
        ))),
    }
}

/// A dead receive's container (it carries the receive's token) that `zfs
/// destroy` refused: renamed aside as [`quarantine`] does a dead create's
/// dataset, so the VM's uuid can be received again and other creates and
/// deletes go on; only when the rename fails too does the caller stop.
fn quarantine_container(
    zfs: &Zfs<'_>,
    container: &str,
    token: &str,
    why: &ZfsError,
) -> OpsResult<()> {
    let aside = quarantine_name(container, token);
    match zfs.rename_unbusy(container, &aside) {
        Ok(()) => {
            tracing::warn!(
                "the container {container} of a receive that was interrupted cannot be \
                 destroyed ({why}); it is renamed to {aside}, which no VM uses: remove it with \
                 `zfs destroy -r {aside}` once what holds it is gone"
            );
            Ok(())
        }
        Err(e) => Err(OpsError::Failed(format!(
            "a receive that was interrupted left {container}, which can be neither destroyed \
             ({why}) nor renamed aside ({e}); no VM is created, deleted or received until it \
             is gone: remove it with `zfs destroy -r {container}`"
        ))),
    }
}

/// Repairs what interrupted creates, deletes and receives left behind —
/// the intent slot's entry, then every record still carrying the
/// incomplete marker — and notes a receive into `receiving` in the slot,
/// so that the next create sweeps the incomplete record this receive is
/// about to write, and its container, should it die. `vmadm receive`
/// calls this holding the global lock, and stops when it fails (a repair
/// that failed, a slot it cannot write).
pub fn sweep_incomplete(ctx: &Ctx, global: &LockGuard, receiving: &Receiving) -> OpsResult<()> {
    // A failed repair stops the receive, as it stops a create or delete:
    // the slot still names what could not be repaired, so it cannot note
    // the receive, and an incomplete record the receive left on dying
    // would then be swept by no create or delete.
    let slot = recover(ctx, global)?.slot;
    sweep_incomplete_records(ctx);
    // Likewise unnoted, a dead receive's record would never be swept.
    slot.write(&Intent::Receive(Some(receiving.clone())))?;
    Ok(())
}

/// Removes records left incomplete, and their datasets. Reads through the
/// list index (which keeps the incomplete marker) and opens only the
/// records it removes; create and delete run it only after a receive (see
/// [`recover`]), so their cost does not grow with the number of VMs.
pub(crate) fn sweep_incomplete_records(ctx: &Ctx) {
    let wanted = ["uuid", "_incomplete"];
    let Ok(all) = ctx.store.load_summaries(super::list::indexed(), &wanted) else {
        return;
    };
    for (uuid, rec) in all {
        let Ok(rec) = rec else { continue };
        if !rec.vm.is_incomplete() {
            continue;
        }
        // The index only says where to look: the record itself decides
        // (it may have been finished or fixed by hand since the index saw
        // it).
        let Ok(Some(rec)) = ctx.store.load(&uuid) else {
            continue;
        };
        if !rec.vm.is_incomplete() {
            continue;
        }
        let dataset = rec
            .vm
            .zfs_filesystem
            .clone()
            .unwrap_or_else(|| ctx.config.vm_dataset(&uuid));
        tracing::info!(%uuid, "removing VM left incomplete by an interrupted create or receive");
        undo(ctx, &uuid, &dataset, &rec.vm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::fake::FakeDriver;
    use crate::exec::Output;
    use crate::ops::testing::{Fixture, IMAGE};
    use serde_json::json;

    #[test]
    fn clones_the_image_with_its_quota_and_writes_a_complete_record() {
        let fx = Fixture::new();
        let uuid = Uuid::new_v4();
        fx.answer_mountpoint(&uuid);
        let payload = fx.payload(&uuid, json!({"quota": 10, "alias": "web01"}));
        assert_eq!(create(&fx.ctx, &payload).unwrap(), uuid);
        // One zfs process on the happy path: the clone, with the quota and
        // devices=off set at creation. The four questions create used to
        // ask first (uuid taken? pool? image snapshot? mountpoint?) are
        // answered by the clone's own result and the cached pool mountpoint.
        // The clone also carries the create's intent token (random).
        assert_eq!(
            fx.runner
                .calls()
                .iter()
                .map(|a| untokened(&a.to_string()))
                .collect::<Vec<_>>(),
            [format!(
                "zfs clone -o devices=off -o quota=10G -o rvmadm:create=T zones/{IMAGE}@final zones/{uuid}"
            )]
        );
        let rec = fx.record(&uuid);
        assert_eq!(rec.uuid.as_deref(), Some(uuid.to_string().as_str()));
        assert_eq!(rec.alias.as_deref(), Some("web01"));
        assert_eq!(rec.quota, Some(10));
        assert_eq!(rec.zfs_filesystem, Some(format!("zones/{uuid}")));
        // The zonepath is the pool's mountpoint joined with the uuid, and
        // private as on SmartOS.
        let zonepath = fx.mnt.join(uuid.to_string());
        assert_eq!(rec.zonepath, Some(zonepath.display().to_string()));
        assert_eq!(mode(&zonepath), 0o700);
        assert!(!rec.has_incomplete_marker());
        assert_eq!(rec.autoboot, Some(false));
        assert!(fx.driver.calls().is_empty(), "{:?}", fx.driver.calls());
    }

    fn mode(p: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_first_create_on_a_host_asks_zfs_for_the_pool_mountpoint_once() {
        let fx = Fixture::new();
        std::fs::remove_dir_all(fx.ctx.config.state_dir.join("cache")).unwrap();
        fx.runner.answer(
            &["zfs", "get", "-H", "-o", "value", "mountpoint", "zones"],
            Output {
                status: 0,
                stdout: format!("{}\n", fx.mnt.display()).into_bytes(),
                stderr: Vec::new(),
            },
        );
        let first = fx.create_vm(json!({}));
        let mark = fx.mark();
        let second = fx.create_vm(json!({}));
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        assert_eq!(cmds[0], "zfs get -H -o value mountpoint zones", "{cmds:?}");
        assert!(cmds[1].starts_with("zfs clone"), "{cmds:?}");
        assert_eq!(fx.commands_since(&mark).len(), 1, "{cmds:?}");
        for u in [first, second] {
            let want = fx.mnt.join(u.to_string()).display().to_string();
            assert_eq!(fx.record(&u).zonepath, Some(want));
        }
    }

    #[test]
    fn a_stale_pool_mountpoint_is_corrected_from_zfs() {
        let fx = Fixture::new();
        // The cache says the pool is mounted elsewhere than it is.
        fx.ctx
            .store
            .remember_pool_mountpoint("zones", std::path::Path::new("/nonexistent-pool-mnt"))
            .unwrap();
        let uuid = fx.create_vm(json!({}));
        let zonepath = fx.mnt.join(uuid.to_string());
        assert_eq!(
            fx.record(&uuid).zonepath,
            Some(zonepath.display().to_string())
        );
        assert_eq!(mode(&zonepath), 0o700);
        assert_eq!(fx.ctx.store.pool_mountpoint("zones"), Some(fx.mnt.clone()));
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            cmds.last().map(String::as_str),
            Some(format!("zfs get -H -o value mountpoint zones/{uuid}").as_str())
        );
    }

    #[test]
    fn a_clone_that_is_not_mounted_is_undone() {
        let fx = Fixture::new();
        let uuid = Uuid::new_v4();
        fx.runner.answer(
            &["zfs", "get", "-H", "-o", "value", "mountpoint"],
            Output {
                status: 0,
                stdout: b"none\n".to_vec(),
                stderr: Vec::new(),
            },
        );
        let err = create(&fx.ctx, &fx.payload(&uuid, json!({})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not mounted"), "{err}");
        assert!(!fx.ctx.store.exists(&uuid));
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        assert!(
            cmds.contains(&format!("zfs destroy -r zones/{uuid}")),
            "{cmds:?}"
        );
    }

    #[test]
    fn quota_zero_clones_without_a_quota() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"quota": 0}));
        let cmds: Vec<String> = fx
            .runner
            .calls()
            .iter()
            .map(|a| untokened(&a.to_string()))
            .collect();
        assert!(
            cmds.contains(&format!(
                "zfs clone -o devices=off -o quota=none -o rvmadm:create=T zones/{IMAGE}@final zones/{uuid}"
            )),
            "{cmds:?}"
        );
    }

    #[test]
    fn a_payload_without_uuid_gets_a_fresh_one() {
        let fx = Fixture::new();
        let mut payload = fx.payload(&Uuid::nil(), json!({}));
        payload.remove("uuid");
        // The uuid is not known ahead, so its directory cannot be made
        // beforehand: zfs is asked where the clone went (the pool itself).
        fx.runner.answer(
            &["zfs", "get", "-H", "-o", "value", "mountpoint"],
            Output {
                status: 0,
                stdout: format!("{}\n", fx.mnt.display()).into_bytes(),
                stderr: Vec::new(),
            },
        );
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

    /// Creates a VM whose clone fails with `stderr`; returns the message.
    fn failed_clone(fx: &Fixture, uuid: &Uuid, extra: Value, stderr: &str) -> String {
        fx.runner.fail(&["zfs", "clone"], stderr);
        create(&fx.ctx, &fx.payload(uuid, extra))
            .unwrap_err()
            .to_string()
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
    fn a_failed_create_whose_clone_cannot_be_destroyed_leaves_it_to_the_next_create() {
        let mut fake = FakeDriver::new();
        fake.missing_root = true;
        let fx = Fixture::with_driver(fake);
        let uuid = Uuid::new_v4();
        fx.answer_mountpoint(&uuid);
        fx.runner
            .fail(&["zfs", "destroy"], "cannot destroy 'x': dataset is busy");
        let err = create(&fx.ctx, &fx.payload(&uuid, json!({})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no root/ directory"), "{err}");
        assert!(!fx.ctx.store.exists(&uuid));
        // The slot still names the clone by its token, so it is not lost.
        let token = pending_token(&fx);
        answer_token(&fx, &uuid, &token);
        fx.runner.answer(&["zfs", "destroy"], Output::default());
        // The next create (refused for the same image) repairs it first.
        let other = Uuid::new_v4();
        fx.answer_mountpoint(&other);
        create(&fx.ctx, &fx.payload(&other, json!({}))).unwrap_err();
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        // The repair: the token looked up, then the clone destroyed.
        let ask = format!("zfs get -H -o value rvmadm:create zones/{uuid}");
        let at = cmds.iter().position(|c| *c == ask);
        assert!(at.is_some(), "{cmds:?}");
        assert_eq!(
            cmds.get(at.unwrap_or(0) + 1),
            Some(&format!("zfs destroy -r zones/{uuid}")),
            "{cmds:?}"
        );
    }

    #[test]
    fn a_missing_image_is_found_out_by_the_clone_and_leaves_nothing() {
        let fx = Fixture::new();
        let uuid = Uuid::new_v4();
        let other = "b1b2c3d4-0000-4000-8000-00000000000b";
        let err = failed_clone(
            &fx,
            &uuid,
            json!({"image_uuid": other}),
            &format!("cannot open 'zones/{other}@final': dataset does not exist"),
        );
        assert_eq!(
            err,
            format!("image {other} is not installed on zpool zones (no zones/{other}@final); run `imgadm import {other}` first")
        );
        assert!(!fx.ctx.store.exists(&uuid));
        // The clone, then one question to tell a missing image from a
        // missing pool; nothing is destroyed (nothing was made).
        let cmds: Vec<String> = fx.runner.calls().iter().map(|a| a.to_string()).collect();
        assert_eq!(cmds.len(), 2, "{cmds:?}");
        assert_eq!(cmds[1], "zpool list -H -o name zones");
    }

    #[test]
    fn a_missing_pool_is_refused() {
        let fx = Fixture::new();
        fx.runner
            .fail(&["zpool", "list"], "cannot open 'zones': no such pool");
        let uuid = Uuid::new_v4();
        let err = failed_clone(
            &fx,
            &uuid,
            json!({}),
            &format!("cannot open 'zones/{IMAGE}@final': dataset does not exist"),
        );
        assert!(err.contains("zpool zones does not exist"), "{err}");
        assert!(!fx.ctx.store.exists(&uuid));
        // Said by zfs as such (a pool in the target's name only).
        let err = failed_clone(
            &fx,
            &uuid,
            json!({}),
            "cannot create 'zones/x': no such pool 'zones'",
        );
        assert!(err.contains("zpool zones does not exist"), "{err}");
        // Unknown to zfs when create first asks for its mountpoint.
        let fx = Fixture::new();
        std::fs::remove_dir_all(fx.ctx.config.state_dir.join("cache")).unwrap();
        fx.runner.fail(
            &["zfs", "get"],
            "cannot open 'zones': dataset does not exist",
        );
        let err = create(&fx.ctx, &fx.payload(&uuid, json!({})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("zpool zones does not exist"), "{err}");
        assert!(!fx.runner.calls().iter().any(|a| a.0[1] == "clone"));
    }

    #[test]
    fn a_dataset_that_exists_without_a_record_is_refused_and_kept() {
        let fx = Fixture::new();
        let uuid = Uuid::new_v4();
        let err = failed_clone(
            &fx,
            &uuid,
            json!({}),
            &format!("cannot create 'zones/{uuid}': dataset already exists"),
        );
        assert_eq!(err, format!("VM with UUID {uuid} already exists"));
        assert!(!fx.ctx.store.exists(&uuid));
        // Someone else's dataset is not ours to destroy.
        assert!(!fx.runner.calls().iter().any(|a| a.0[1] == "destroy"));
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
    fn records_a_dead_receive_left_are_swept_by_the_next_create_or_delete() {
        for next_is_create in [true, false] {
            let fx = Fixture::new();
            let dead = fx.create_vm(json!({}));
            let other = fx.create_vm(json!({}));
            // What `vmadm receive` does under the global lock before it
            // writes its record; then it dies with that record incomplete.
            note_a_receive(&fx);
            fx.mark_incomplete(&dead);
            let mark = fx.mark();
            if next_is_create {
                fx.create_vm(json!({}));
            } else {
                crate::ops::delete::delete(&fx.ctx, &other).unwrap();
            }
            assert!(!fx.ctx.store.exists(&dead));
            let cmds = fx.commands_since(&mark);
            assert!(
                cmds.contains(&format!("zfs destroy -r zones/{dead}")),
                "{cmds:?}"
            );
            assert!(fx.driver.calls().contains(&format!("cleanup {dead}")));
            // Swept once: the next create runs its clone only.
            let mark = fx.mark();
            fx.create_vm(json!({}));
            assert_eq!(fx.commands_since(&mark).len(), 1);
        }
    }

    #[test]
    fn a_sweep_whose_destroy_fails_keeps_the_record_of_the_dataset_it_left() {
        let fx = Fixture::new();
        let dead = fx.create_vm(json!({}));
        note_a_receive(&fx);
        fx.mark_incomplete(&dead);
        fx.runner
            .fail(&["zfs", "destroy"], "cannot destroy 'x': dataset is busy");
        sweep_incomplete_records(&fx.ctx);
        // The dataset is still there: without its record nothing would
        // know it (not list, not delete), and its uuid could never be
        // created or received again.
        assert!(fx.ctx.store.exists(&dead));
        fx.runner.answer(&["zfs", "destroy"], Output::default());
        crate::ops::delete::delete(&fx.ctx, &dead).unwrap();
        assert!(!fx.ctx.store.exists(&dead));
    }

    #[test]
    fn a_receive_refuses_to_start_while_a_dead_create_cannot_be_undone() {
        let fx = Fixture::new();
        let dead = create_dying_at(&fx, "create:cloned", json!({}));
        answer_token(&fx, &dead, &pending_token(&fx));
        let dead_ds = format!("zones/{dead}");
        fx.runner.fail(
            &["zfs", "destroy", "-r", &dead_ds],
            "cannot destroy 'x': dataset is busy",
        );
        // Nor can it be put aside (a dataset that only cannot be destroyed
        // is renamed out of the way and blocks nothing).
        fx.runner.fail(
            &["zfs", "rename", &dead_ds],
            "cannot rename 'x': dataset is busy",
        );
        // Were the receive to go on, the slot would not say `receive` (it
        // still names the create), so a receive dying now would leave an
        // incomplete record that no create or delete sweeps.
        let other = Uuid::new_v4();
        let vm = json!({"uuid": other.to_string(), "brand": "jail", "image_uuid": IMAGE});
        let mut b = Vec::new();
        crate::ops::bundle::write_chunk(&mut b, "JSON", &serde_json::to_vec(&vm).unwrap()).unwrap();
        b.extend_from_slice(&crate::ops::bundle::header(
            &format!("zones/{other}@sending"),
            1,
        ));
        b.extend_from_slice(&[0u8; 512]);
        fx.runner.answer(
            &["zfs", "get", "-H", "-o", "value", "mountpoint", "zones"],
            Output {
                status: 0,
                stdout: format!("{}\n", fx.mnt.display()).into_bytes(),
                stderr: Vec::new(),
            },
        );
        let mark = fx.mark();
        let err = crate::ops::receive::receive(&fx.ctx, &mut &b[..]).unwrap_err();
        assert!(err.to_string().contains("busy"), "{err}");
        assert!(!fx.ctx.store.exists(&other));
        assert!(
            fx.commands_since(&mark)
                .iter()
                .all(|c| !c.starts_with("zfs create") && !c.starts_with("zfs receive")),
            "{:#?}",
            fx.commands_since(&mark)
        );
        assert!(matches!(
            fx.ctx.store.intent_slot().unwrap().read(),
            Some(Intent::CreatePending { .. })
        ));
    }

    #[test]
    fn the_first_create_of_this_release_sweeps_records_an_older_one_left() {
        let fx = Fixture::new();
        let dead = fx.create_vm(json!({}));
        // An older release marked its creates in the record and had no slot.
        fx.mark_incomplete(&dead);
        std::fs::remove_file(fx.ctx.config.state_dir.join("intent")).unwrap();
        let mark = fx.mark();
        let live = fx.create_vm(json!({}));
        assert!(!fx.ctx.store.exists(&dead));
        assert!(fx.ctx.store.exists(&live));
        assert!(fx
            .commands_since(&mark)
            .contains(&format!("zfs destroy -r zones/{dead}")));
    }

    #[test]
    fn deleting_the_record_a_dead_receive_left_is_a_delete() {
        let fx = Fixture::new();
        let dead = fx.create_vm(json!({}));
        note_a_receive(&fx);
        fx.mark_incomplete(&dead);
        crate::ops::delete::delete(&fx.ctx, &dead).unwrap();
        assert!(!fx.ctx.store.exists(&dead));
        let err = crate::ops::delete::delete(&fx.ctx, &dead).unwrap_err();
        assert!(matches!(err, OpsError::NoSuchVm(_)), "{err:?}");
    }

    #[test]
    fn the_sweep_spares_a_record_the_list_index_still_sees_as_incomplete() {
        let mut fx = Fixture::new();
        let vm = fx.create_vm(json!({}));
        fx.mark_incomplete(&vm);
        // An index trusted on the records directory's signature, then the
        // record finished by hand in place (which that signature does not
        // see): the index still says incomplete, the record does not.
        fx.ctx.store.set_index_tuning(crate::store::Tuning {
            racy: std::time::Duration::ZERO,
            recheck: std::time::Duration::from_secs(3600),
        });
        let wanted = ["uuid", "_incomplete"];
        fx.ctx
            .store
            .load_summaries(super::super::list::indexed(), &wanted)
            .unwrap();
        let path = fx.ctx.config.vm_dir().join(format!("{vm}.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("\"_incomplete\": true", "\"_incomplete\": false"),
        )
        .unwrap();
        let seen = fx
            .ctx
            .store
            .load_summaries(super::super::list::indexed(), &wanted)
            .unwrap();
        assert!(
            seen[0].1.as_ref().unwrap().vm.is_incomplete(),
            "the index is stale"
        );
        let mark = fx.mark();
        note_a_receive(&fx);
        assert!(fx.ctx.store.exists(&vm));
        assert!(fx.commands_since(&mark).is_empty());
    }

    /// What a receive notes in the slot (its container is not made here).
    fn some_receive() -> Receiving {
        Receiving {
            container: format!("zones/{}-receiving", Uuid::new_v4()),
            token: "0123456789abcdef".into(),
        }
    }

    /// What `vmadm receive` does first: the repairs, then its note in the
    /// slot (so the next create or delete sweeps incomplete records).
    fn note_a_receive(fx: &Fixture) {
        let global = fx.ctx.store.lock_global().unwrap();
        sweep_incomplete(&fx.ctx, &global, &some_receive()).unwrap();
    }

    /// Runs a create of a fresh uuid that dies at `step` as if killed.
    fn create_dying_at(fx: &Fixture, step: &'static str, extra: Value) -> Uuid {
        let uuid = Uuid::new_v4();
        fx.answer_mountpoint(&uuid);
        let payload = fx.payload(&uuid, extra);
        CRASH_AT.with(|c| c.set(Some(step)));
        let died =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| create(&fx.ctx, &payload)));
        CRASH_AT.with(|c| c.set(None));
        assert!(died.is_err(), "create did not die at {step}");
        uuid
    }

    /// A command line with the create token's value replaced by `T`.
    fn untokened(cmd: &str) -> String {
        cmd.split(' ')
            .map(|w| match w.strip_prefix("rvmadm:create=") {
                Some(t) if t.len() == 16 => "rvmadm:create=T",
                _ => w,
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The token the slot's pending create stamps on its clone.
    fn pending_token(fx: &Fixture) -> String {
        match fx.ctx.store.intent_slot().unwrap().read() {
            Some(Intent::CreatePending { token, .. }) => token,
            other => panic!("no pending create in the slot: {other:?}"),
        }
    }

    /// Has `zfs get rvmadm:create` of `uuid`'s dataset answer `value`.
    fn answer_token(fx: &Fixture, uuid: &Uuid, value: &str) {
        fx.runner.answer(
            &[
                "zfs",
                "get",
                "-H",
                "-o",
                "value",
                CREATE_TOKEN,
                &format!("zones/{uuid}"),
            ],
            Output {
                status: 0,
                stdout: format!("{value}\n").into_bytes(),
                stderr: Vec::new(),
            },
        );
    }

    fn files_of(fx: &Fixture, uuid: &Uuid) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(fx.ctx.config.state_dir.join("vms")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&uuid.to_string()))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_repair_of_a_killed_create_asks_the_driver_to_clean_up_by_uuid() {
        // A create with autoboot has its boot's network made while it
        // clones; killed after that, the next create has the driver tear
        // down whatever is named after the dead VM.
        let fx = Fixture::new();
        let dead = create_dying_at(&fx, "create:cloned", json!({"autoboot": true}));
        answer_token(&fx, &dead, &pending_token(&fx));
        let mark = fx.mark();
        fx.create_vm(json!({}));
        assert!(
            fx.driver_calls_since(&mark)
                .contains(&format!("cleanup {dead}")),
            "{:?}",
            fx.driver_calls_since(&mark)
        );
    }

    #[test]
    fn a_create_killed_before_its_commit_is_undone_by_the_next_and_never_seen() {
        for step in ["create:pending", "create:cloned", "create:checked"] {
            let fx = Fixture::new();
            let dead = create_dying_at(&fx, step, json!({"alias": "dead"}));
            // Never visible: no record, nothing listed.
            assert!(!fx.ctx.store.exists(&dead), "{step}");
            assert!(fx.ctx.store.load_all().unwrap().is_empty(), "{step}");
            // Past the clone the record waits, durable, under its dot name.
            let prepared = [format!(".{dead}.json.creating")];
            assert_eq!(
                files_of(&fx, &dead),
                if step == "create:pending" {
                    &[][..]
                } else {
                    &prepared[..]
                },
                "{step}"
            );
            answer_token(&fx, &dead, &pending_token(&fx));
            let mark = fx.mark();
            let live = fx.create_vm(json!({}));
            let cmds = fx.commands_since(&mark);
            assert_eq!(
                cmds[..2],
                [
                    format!("zfs get -H -o value rvmadm:create zones/{dead}"),
                    format!("zfs destroy -r zones/{dead}"),
                ],
                "{step}"
            );
            assert!(cmds[2].starts_with("zfs clone"), "{step}: {cmds:?}");
            assert_eq!(cmds.len(), 3, "{step}: {cmds:?}");
            // The undo's destroy held the global lock, as the clone does.
            let held = fx.runner.held();
            assert!(held.contains(&cmds[1]), "{step}: {held:?}");
            assert!(files_of(&fx, &dead).is_empty(), "{step}");
            assert!(fx.ctx.store.exists(&live));
            // Undone once: the create after that runs its clone only.
            let mark = fx.mark();
            fx.create_vm(json!({}));
            assert_eq!(fx.commands_since(&mark).len(), 1, "{step}");
        }
    }

    #[test]
    fn an_undo_spares_a_dataset_the_dead_create_did_not_clone() {
        // Killed after its clone found the name taken by a stranger: one
        // without a token, or a clone of the same image another create
        // stamped. Neither is destroyed.
        for stranger in ["-", "fedcba9876543210"] {
            let fx = Fixture::new();
            let dead = create_dying_at(&fx, "create:pending", json!({}));
            assert_ne!(pending_token(&fx), stranger);
            answer_token(&fx, &dead, stranger);
            let mark = fx.mark();
            fx.create_vm(json!({}));
            let cmds = fx.commands_since(&mark);
            assert!(!cmds.iter().any(|c| c.contains("destroy")), "{cmds:?}");
            assert_eq!(cmds.len(), 2, "{cmds:?}");
        }
    }

    #[test]
    fn a_create_killed_after_its_commit_is_kept_and_needs_nothing() {
        let fx = Fixture::new();
        // Killed between the synced rename and the note that it is done.
        let done = create_dying_at(
            &fx,
            "create:published",
            json!({"autoboot": true, "alias": "kept"}),
        );
        assert_eq!(files_of(&fx, &done), [format!("{done}.json")]);
        let rec = fx.record(&done);
        assert_eq!(rec.alias.as_deref(), Some("kept"));
        assert!(!rec.has_incomplete_marker());
        // Its dataset would pass the undo's check: it is the create's own.
        answer_token(&fx, &done, &pending_token(&fx));
        let mark = fx.mark();
        fx.create_vm(json!({}));
        assert_eq!(fx.commands_since(&mark).len(), 1);
        assert!(fx.ctx.store.exists(&done));
        // Deleting it later leaves the slot naming a finished delete: the
        // next create still runs one process.
        crate::ops::delete::delete(&fx.ctx, &done).unwrap();
        let mark = fx.mark();
        fx.create_vm(json!({}));
        assert_eq!(fx.commands_since(&mark).len(), 1);
    }

    #[test]
    fn a_finished_create_is_never_undone_even_when_its_record_goes_by_hand() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        std::fs::remove_file(fx.ctx.config.state_dir.join(format!("vms/{uuid}.json"))).unwrap();
        answer_token(&fx, &uuid, "0123456789abcdef");
        let mark = fx.mark();
        fx.create_vm(json!({}));
        let cmds = fx.commands_since(&mark);
        assert_eq!(cmds.len(), 1, "{cmds:?}");
    }

    #[test]
    fn a_failed_create_clears_its_intent_so_nothing_is_undone_later() {
        let fx = Fixture::new();
        let uuid = Uuid::new_v4();
        failed_clone(
            &fx,
            &uuid,
            json!({}),
            &format!("cannot create 'zones/{uuid}': dataset already exists"),
        );
        assert_eq!(fx.ctx.store.intent_slot().unwrap().read(), None);
        assert!(files_of(&fx, &uuid).is_empty());
        let fx = Fixture::new();
        fx.runner.fail(&["zfs", "clone"], "out of space");
        assert!(create(&fx.ctx, &fx.payload(&uuid, json!({}))).is_err());
        assert_eq!(fx.ctx.store.intent_slot().unwrap().read(), None);
        assert!(files_of(&fx, &uuid).is_empty());
    }

    /// Runs `f` as if the kernel had booted with boot id `id` (`None`: a
    /// host without one).
    fn in_boot<T>(id: Option<&str>, f: impl FnOnce() -> T) -> T {
        use crate::store::TEST_BOOT_ID as BOOT;
        BOOT.with(|b| *b.borrow_mut() = Some(id.map(str::to_string)));
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        BOOT.with(|b| *b.borrow_mut() = None);
        out.unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    const BOOT_A: &str = "0b6c3c1e-4a5e-4d4e-9a57-3a0f1b2c3d4e";
    const BOOT_B: &str = "77777777-4a5e-4d4e-9a57-3a0f1b2c3d4e";

    #[test]
    fn after_a_reboot_a_pending_create_whose_record_went_by_hand_is_left_alone() {
        // The create committed; its unsynced `create-committed` did not
        // survive the power loss, so the slot says pending; then the
        // record was removed by hand. Its dataset carries the token.
        for written_in in [Some(BOOT_A), None] {
            let fx = Fixture::new();
            let done = in_boot(written_in, || {
                create_dying_at(&fx, "create:published", json!({}))
            });
            std::fs::remove_file(fx.ctx.config.state_dir.join(format!("vms/{done}.json"))).unwrap();
            answer_token(&fx, &done, &pending_token(&fx));
            let mark = fx.mark();
            in_boot(Some(BOOT_B), || fx.create_vm(json!({})));
            let cmds = fx.commands_since(&mark);
            assert!(!cmds.iter().any(|c| c.contains("destroy")), "{cmds:?}");
            assert_eq!(
                cmds[0],
                format!("zfs get -H -o value rvmadm:create zones/{done}")
            );
            assert_eq!(cmds.len(), 2, "{cmds:?}");
            // Reported once: the slot is the new create's now.
            let mark = fx.mark();
            in_boot(Some(BOOT_B), || fx.create_vm(json!({})));
            assert_eq!(fx.commands_since(&mark).len(), 1);
        }
    }

    #[test]
    fn after_a_reboot_a_create_that_never_committed_is_still_undone() {
        // The hidden record is there: the commit (which renames it away)
        // never happened, whatever the boot.
        let fx = Fixture::new();
        let dead = in_boot(Some(BOOT_A), || {
            create_dying_at(&fx, "create:checked", json!({}))
        });
        answer_token(&fx, &dead, &pending_token(&fx));
        let mark = fx.mark();
        in_boot(Some(BOOT_B), || fx.create_vm(json!({})));
        let cmds = fx.commands_since(&mark);
        assert_eq!(cmds[1], format!("zfs destroy -r zones/{dead}"), "{cmds:?}");
        assert!(files_of(&fx, &dead).is_empty());
    }

    #[test]
    fn a_host_without_a_boot_id_keeps_the_plain_rule() {
        // FreeBSD has no boot id: no reboot can be told, the token decides.
        let fx = Fixture::new();
        let done = in_boot(None, || create_dying_at(&fx, "create:published", json!({})));
        std::fs::remove_file(fx.ctx.config.state_dir.join(format!("vms/{done}.json"))).unwrap();
        answer_token(&fx, &done, &pending_token(&fx));
        let mark = fx.mark();
        in_boot(None, || fx.create_vm(json!({})));
        assert_eq!(
            fx.commands_since(&mark)[1],
            format!("zfs destroy -r zones/{done}")
        );
    }

    #[test]
    fn the_pending_entry_carries_this_boot_s_id() {
        let fx = Fixture::new();
        in_boot(Some(BOOT_A), || {
            create_dying_at(&fx, "create:pending", json!({}))
        });
        match fx.ctx.store.intent_slot().unwrap().read() {
            Some(Intent::CreatePending { boot, .. }) => assert_eq!(boot.as_deref(), Some(BOOT_A)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dead_create_s_dataset_that_cannot_be_destroyed_is_put_aside_and_blocks_nothing() {
        let fx = Fixture::new();
        let dead = create_dying_at(&fx, "create:checked", json!({}));
        let token = pending_token(&fx);
        answer_token(&fx, &dead, &token);
        let ds = format!("zones/{dead}");
        fx.runner.fail(
            &["zfs", "destroy", "-r", &ds],
            &format!("cannot destroy '{ds}': filesystem has dependent clones"),
        );
        let mark = fx.mark();
        let live = fx.create_vm(json!({}));
        let cmds = fx.commands_since(&mark);
        assert_eq!(
            cmds[..3],
            [
                format!("zfs get -H -o value rvmadm:create {ds}"),
                format!("zfs destroy -r {ds}"),
                format!("zfs rename {ds} {ds}-quarantine-{token}"),
            ],
            "{cmds:?}"
        );
        assert!(cmds[3].starts_with("zfs clone"), "{cmds:?}");
        assert!(fx.ctx.store.exists(&live));
        assert!(files_of(&fx, &dead).is_empty());
        // Deletes and creates go on as usual, one process each.
        let mark = fx.mark();
        crate::ops::delete::delete(&fx.ctx, &live).unwrap();
        fx.create_vm(json!({}));
        assert_eq!(fx.commands_since(&mark).len(), 2);
    }

    #[test]
    fn a_dead_create_s_dataset_that_cannot_even_be_renamed_stops_creates_naming_it() {
        let fx = Fixture::new();
        let dead = create_dying_at(&fx, "create:checked", json!({}));
        answer_token(&fx, &dead, &pending_token(&fx));
        let ds = format!("zones/{dead}");
        fx.runner
            .fail(&["zfs", "destroy", "-r", &ds], "cannot destroy: I/O error");
        fx.runner
            .fail(&["zfs", "rename", &ds], "cannot rename: I/O error");
        let err = create(&fx.ctx, &fx.payload(&Uuid::new_v4(), json!({})))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("zfs destroy -r {ds}")), "{err}");
        assert!(err.contains(&dead.to_string()), "{err}");
        assert!(!fx
            .runner
            .calls()
            .iter()
            .any(|c| c.to_string().starts_with("zfs clone") && !c.to_string().contains(&ds)),);
        assert!(matches!(
            fx.ctx.store.intent_slot().unwrap().read(),
            Some(Intent::CreatePending { .. })
        ));
    }
}
