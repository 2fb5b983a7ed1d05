//! console and exec: the argv that attaches the caller's terminal to the
//! tenant. These are interactive, so the driver spawns them with inherited
//! stdio instead of running them as plan steps.
//!
//! `console` = `jexec -l <uuid>.tenant /usr/bin/login -f root` (a clean
//! login environment, not the host's). Linux userlands keep login in /bin and
//! their passwd lookups break jexec's `-l`, so lx uses `/bin/login -f root`.
//! `exec` = `jexec <uuid>.tenant cmd…`: jexec stops parsing options at the
//! jail name, so the user's argv is passed through untouched.

use super::layout;
use super::plan::PlanError;
use crate::exec::Argv;
use crate::spec::VmSpec;

/// The `jexec … login -f root` command that gives the caller a root login
/// in the tenant (see the module text for the lx form).
pub fn console_argv(vm: &VmSpec) -> Argv {
    let tenant = layout::tenant(vm);
    if vm.is_lx() {
        Argv::new(["jexec", &tenant, "/bin/login", "-f", "root"])
    } else {
        Argv::new(["jexec", "-l", &tenant, "/usr/bin/login", "-f", "root"])
    }
}

/// `jexec <uuid>.tenant` followed by `cmd` unchanged. An empty `cmd` is
/// refused ([`PlanError::Unsupported`]): jexec would start a shell instead.
pub fn exec_argv(vm: &VmSpec, cmd: &[String]) -> Result<Argv, PlanError> {
    if cmd.is_empty() {
        return Err(PlanError::Unsupported("exec needs a command".into()));
    }
    let mut a = vec!["jexec".to_string(), layout::tenant(vm)];
    a.extend(cmd.iter().cloned());
    Ok(Argv(a))
}
