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

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), Signal::Kill);
        assert_eq!(parse_signal("hup").unwrap(), Signal::Hup);
        assert_eq!(parse_signal("SIGTERM").unwrap().to_string(), "SIGTERM");
        let e = parse_signal("NOPE").unwrap_err().to_string();
        assert!(e.starts_with("Unknown signal \"NOPE\""), "{e}");
        assert!(parse_signal("99").is_err());
    }
}
