//! `vmadm reboot [-F]`: stop then start a running VM.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::lock_and_load;
use super::view::states;
use crate::driver::StopOptions;
use uuid::Uuid;

/// Stops a running VM as `opts` says (graceful, or at once with `-F`),
/// cleans up after it and starts it again. Refused when the VM is not
/// running; `autoboot` is left as it is.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Fixture;
    use serde_json::json;

    #[test]
    fn stops_cleans_up_and_starts_a_running_vm() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        let mark = fx.mark();
        let opts = StopOptions {
            force: true,
            ..Default::default()
        };
        reboot(&fx.ctx, &uuid, opts).unwrap();
        assert_eq!(
            fx.driver_calls_since(&mark),
            [
                format!("stop {uuid} force=true"),
                format!("cleanup {uuid}"),
                format!("start {uuid}")
            ]
        );
        assert!(fx.ctx.is_running(&uuid).unwrap());
        // Unlike start and stop, reboot leaves autoboot as it was.
        assert_eq!(fx.record(&uuid).autoboot, Some(false));
    }

    #[test]
    fn a_stopped_vm_is_refused_with_smartos_text() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let mark = fx.mark();
        let err = reboot(&fx.ctx, &uuid, StopOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Cannot reboot vm from state \"stopped\", must be \"running\"."
        );
        assert!(fx.driver_calls_since(&mark).is_empty());
    }
}
