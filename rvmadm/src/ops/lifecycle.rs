//! Shared steps of the lifecycle verbs: load a VM under its lock, refuse an
//! incomplete one, flip `autoboot` the way SmartOS's start/stop do.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::view::INCOMPLETE_KEY;
use crate::spec::VmSpec;
use crate::store::{LockGuard, Record};
use serde_json::Value;
use uuid::Uuid;

pub struct Locked {
    pub _lock: LockGuard,
    pub rec: Record,
    pub spec: VmSpec,
}

pub fn lock_and_load(ctx: &Ctx, uuid: &Uuid) -> OpsResult<Locked> {
    let lock = ctx.store.lock_vm(uuid)?;
    let rec = ctx.record(uuid)?;
    if rec.vm.get(INCOMPLETE_KEY).is_some() {
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
    if rec.vm.get("autoboot") != Some(&Value::Bool(value)) {
        rec.vm.insert("autoboot".into(), Value::Bool(value));
        ctx.store.save(uuid, &rec.vm)?;
    }
    Ok(())
}
