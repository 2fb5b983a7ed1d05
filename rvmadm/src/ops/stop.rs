//! `vmadm stop [-F] [-t timeout]`: clears autoboot first (SmartOS order),
//! then stops a running VM gracefully or at once.

use super::context::Ctx;
use super::error::OpsResult;
use super::lifecycle::{lock_and_load, set_autoboot};
use super::view::states;
use crate::driver::StopOptions;
use uuid::Uuid;

#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    Stopped,
    /// Not running; carries the current state for the message.
    NotRunning(String),
}

pub fn stop(ctx: &Ctx, uuid: &Uuid, opts: StopOptions) -> OpsResult<Stopped> {
    let mut l = lock_and_load(ctx, uuid)?;
    set_autoboot(ctx, uuid, &mut l.rec, false)?;
    let rt = ctx.runtime(uuid)?;
    if !rt.as_ref().is_some_and(|r| r.running) {
        let (state, _) = states(&l.rec.vm, rt.as_ref());
        return Ok(Stopped::NotRunning(state.to_string()));
    }
    ctx.driver.stop(&l.spec, opts)?;
    ctx.driver.cleanup(&l.spec)?;
    Ok(Stopped::Stopped)
}
