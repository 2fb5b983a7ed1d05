//! `vmadm stop [-F] [-t timeout]`: clears autoboot first (SmartOS order),
//! then stops a running VM gracefully or at once.

use super::context::Ctx;
use super::error::OpsResult;
use super::lifecycle::{lock_and_load, set_autoboot};
use super::view::states;
use crate::driver::StopOptions;
use uuid::Uuid;

/// How `stop` ended, for the caller's message.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The VM was running and has been stopped and cleaned up.
    Stopped,
    /// Not running; carries the current state for the message.
    NotRunning(String),
}

/// Clears `autoboot`, then stops the VM if it runs (gracefully, killed
/// after `opts.timeout`; at once with `opts.force`) and has the driver
/// clean up. A VM that is not running only loses `autoboot`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Fixture;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn stops_a_running_vm_then_cleans_up_and_clears_autoboot() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"autoboot": true}));
        assert!(fx.ctx.is_running(&uuid).unwrap());
        let mark = fx.mark();
        assert_eq!(
            stop(&fx.ctx, &uuid, StopOptions::default()).unwrap(),
            Stopped::Stopped
        );
        assert_eq!(
            fx.driver_calls_since(&mark),
            [
                format!("stop {uuid} force=false"),
                format!("cleanup {uuid}")
            ]
        );
        assert!(!fx.ctx.is_running(&uuid).unwrap());
        assert_eq!(fx.record(&uuid).autoboot, Some(false));
    }

    #[test]
    fn force_reaches_the_driver() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        let mark = fx.mark();
        let opts = StopOptions {
            force: true,
            timeout: Duration::from_secs(5),
        };
        stop(&fx.ctx, &uuid, opts).unwrap();
        assert_eq!(
            fx.driver_calls_since(&mark).first(),
            Some(&format!("stop {uuid} force=true"))
        );
    }

    #[test]
    fn a_stopped_vm_reports_its_state_and_still_loses_autoboot() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"autoboot": true}));
        // The jail died on its own: the record still says autoboot.
        fx.driver.set_running(uuid, false);
        let mark = fx.mark();
        assert_eq!(
            stop(&fx.ctx, &uuid, StopOptions::default()).unwrap(),
            Stopped::NotRunning("stopped".into())
        );
        assert!(fx.driver_calls_since(&mark).is_empty());
        assert_eq!(fx.record(&uuid).autoboot, Some(false));
    }

    #[test]
    fn an_unknown_vm_is_smartos_no_such_zone() {
        let fx = Fixture::new();
        let uuid = Uuid::new_v4();
        let err = stop(&fx.ctx, &uuid, StopOptions::default()).unwrap_err();
        assert!(matches!(err, crate::ops::OpsError::NoSuchVm(_)), "{err:?}");
        assert!(fx.driver.calls().is_empty());
    }
}
