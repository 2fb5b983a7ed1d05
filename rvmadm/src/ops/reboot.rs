//! `vmadm reboot [-F]`: stop then start a running VM.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::lock_and_load;
use super::view::states;
use crate::driver::StopOptions;
use uuid::Uuid;

pub fn reboot(ctx: &Ctx, uuid: &Uuid, opts: StopOptions) -> OpsResult<()> {
    let l = lock_and_load(ctx, uuid)?;
    let rt = ctx.runtime(uuid)?;
    if !rt.as_ref().is_some_and(|r| r.running) {
        let (state, _) = states(&l.rec.vm, rt.as_ref());
        return Err(OpsError::Failed(format!(
            "Cannot reboot vm from state \"{state}\", must be \"running\"."
        )));
    }
    ctx.driver.stop(&l.spec, opts)?;
    ctx.driver.cleanup(&l.spec)?;
    ctx.driver.start(&l.spec)?;
    Ok(())
}
