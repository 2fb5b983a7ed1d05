//! Shared steps of the lifecycle verbs: load a VM under its lock, refuse an
//! incomplete one, flip `autoboot` the way SmartOS's start/stop do.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use crate::driver::StopOptions;
use crate::spec::{Field, VmSpec};
use crate::store::{LockGuard, Record};
use uuid::Uuid;

pub struct Locked {
    pub _lock: LockGuard,
    pub rec: Record,
    pub spec: VmSpec,
}

pub fn lock_and_load(ctx: &Ctx, uuid: &Uuid) -> OpsResult<Locked> {
    let lock = ctx.store.lock_vm(uuid)?;
    let rec = ctx.record(uuid)?;
    if rec.vm.has_incomplete_marker() {
        return Err(OpsError::Failed(format!("VM {uuid} is incomplete")));
    }
    let spec = ctx.spec(&rec)?;
    Ok(Locked {
        _lock: lock,
        rec,
        spec,
    })
}

/// Stores `autoboot` when it differs.
pub fn set_autoboot(ctx: &Ctx, uuid: &Uuid, rec: &mut Record, value: bool) -> OpsResult<()> {
    if rec.vm.autoboot != Some(value) {
        rec.vm.autoboot = Some(value);
        rec.vm.place(Field::Autoboot);
        ctx.store.save(uuid, &rec.vm)?;
    }
    Ok(())
}

/// Stops a running VM at once (no grace) and removes what the driver set
/// up; a stopped VM is only cleaned up. Returns whether it was running.
pub fn force_stop(ctx: &Ctx, uuid: &Uuid, spec: &VmSpec) -> OpsResult<bool> {
    let was_running = ctx.is_running(uuid)?;
    if was_running {
        ctx.driver.stop(
            spec,
            StopOptions {
                force: true,
                ..Default::default()
            },
        )?;
    }
    ctx.driver.cleanup(spec)?;
    Ok(was_running)
}
