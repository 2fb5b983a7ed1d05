//! `vmadm console` and `vmadm exec`: a login shell or one command inside a
//! running jail, on the caller's terminal; the exit status passes through.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use uuid::Uuid;

fn running_spec(ctx: &Ctx, uuid: &Uuid, what: &str) -> OpsResult<crate::spec::VmSpec> {
    let rec = ctx.record(uuid)?;
    let rt = ctx.runtime(uuid)?;
    if !rt.as_ref().is_some_and(|r| r.running) {
        let (state, _) = super::view::states(&rec.vm, rt.as_ref());
        return Err(OpsError::Failed(format!(
            "cannot {what} when state is '{state}'"
        )));
    }
    ctx.spec(&rec)
}

/// Opens an interactive login shell in a running VM and returns the
/// shell's exit code. Fails without touching the VM when it is not
/// running.
pub fn console(ctx: &Ctx, uuid: &Uuid) -> OpsResult<i32> {
    let spec = running_spec(ctx, uuid, "connect to console")?;
    Ok(ctx.driver.console(&spec)?)
}

/// Runs `argv` (program first, no shell) in a running VM with the
/// caller's stdio and returns its exit code. An empty `argv` is a usage
/// error; a VM that is not running is refused.
pub fn exec(ctx: &Ctx, uuid: &Uuid, argv: &[String]) -> OpsResult<i32> {
    if argv.is_empty() {
        return Err(OpsError::Usage(
            "exec needs a command: vmadm exec <uuid> -- cmd [args]".into(),
        ));
    }
    let spec = running_spec(ctx, uuid, "run a command")?;
    Ok(ctx.driver.exec(&spec, argv)?)
}
