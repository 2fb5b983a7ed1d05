//! `vmadm start`: boot a stopped VM and set autoboot, as SmartOS does.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::{lock_and_load, set_autoboot};
use uuid::Uuid;

#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    Started,
    AlreadyRunning,
}

pub fn start(ctx: &Ctx, uuid: &Uuid) -> OpsResult<Started> {
    let mut l = lock_and_load(ctx, uuid)?;
    if ctx.is_running(uuid)? {
        return Ok(Started::AlreadyRunning);
    }
    // A crash in an earlier start or stop may have left pieces behind.
    ctx.driver
        .cleanup(&l.spec)
        .map_err(|e| OpsError::Failed(format!("Unable to start VM {uuid}: {e}")))?;
    ctx.driver
        .start(&l.spec)
        .map_err(|e| OpsError::Failed(format!("Unable to start VM {uuid}: {e}")))?;
    set_autoboot(ctx, uuid, &mut l.rec, true)?;
    Ok(Started::Started)
}
