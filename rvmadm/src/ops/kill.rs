//! `vmadm kill [-s SIGNAL|-SIGNAL]`: a signal to the jail's init. The signal
//! is parsed here into a typed [`Signal`]; the driver resolves it for its OS.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use crate::driver::Signal;
use uuid::Uuid;

/// Parses `9`, `KILL` or `SIGKILL` (numbers as the host numbers them).
pub fn parse_signal(s: &str) -> OpsResult<Signal> {
    Signal::parse(s).map_err(|e| OpsError::Failed(e.to_string()))
}

/// Sends `signal` to the init process of a running VM. Fails with
/// SmartOS's "Cannot find running init PID" when the VM is not running.
pub fn kill(ctx: &Ctx, uuid: &Uuid, signal: Signal) -> OpsResult<()> {
    let rec = ctx.record(uuid)?;
    let spec = ctx.spec(&rec)?;
    if !ctx.is_running(uuid)? {
        return Err(OpsError::Failed(format!(
            "Cannot find running init PID for VM {uuid}"
        )));
    }
    ctx.driver.kill(&spec, signal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Fixture;
    use serde_json::json;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), Signal::Kill);
        assert_eq!(parse_signal("hup").unwrap(), Signal::Hup);
        assert_eq!(parse_signal("SIGTERM").unwrap().to_string(), "SIGTERM");
        let e = parse_signal("NOPE").unwrap_err().to_string();
        assert!(e.starts_with("Unknown signal \"NOPE\""), "{e}");
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn the_typed_signal_reaches_the_driver() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        let mark = fx.mark();
        kill(&fx.ctx, &uuid, Signal::Usr1).unwrap();
        kill(&fx.ctx, &uuid, parse_signal("9").unwrap()).unwrap();
        assert_eq!(
            fx.driver_calls_since(&mark),
            [
                format!("kill {uuid} SIGUSR1"),
                format!("kill {uuid} SIGKILL")
            ]
        );
        assert!(fx.commands_since(&mark).is_empty());
    }

    #[test]
    fn a_stopped_vm_has_no_init_to_signal() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let mark = fx.mark();
        let err = kill(&fx.ctx, &uuid, Signal::Term).unwrap_err().to_string();
        assert_eq!(err, format!("Cannot find running init PID for VM {uuid}"));
        assert!(fx.driver_calls_since(&mark).is_empty());
    }

    #[test]
    fn an_unknown_vm_is_smartos_no_such_zone() {
        let fx = Fixture::new();
        let err = kill(&fx.ctx, &Uuid::new_v4(), Signal::Term).unwrap_err();
        assert!(matches!(err, OpsError::NoSuchVm(_)), "{err:?}");
        assert!(fx.driver.calls().is_empty());
    }
}
