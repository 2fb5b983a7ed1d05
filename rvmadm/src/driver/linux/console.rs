//! Interactive console and one-shot commands inside a running jail, through
//! the runtime's `exec` (which joins every namespace and cgroup of the jail
//! and applies its capability set and no_new_privileges).

use super::attach_warm::{self, AttachWarmer};
use super::driver::LinuxDriver;
use super::names::{container_id, JailDir};
use super::{state, sys};
use crate::driver::zone_root;
use crate::driver::{DriverError, DriverResult};
use crate::exec::Argv;
use crate::spec::VmSpec;

impl LinuxDriver {
    fn require_running(&self, vm: &VmSpec) -> DriverResult<()> {
        match state::running(&JailDir::new(&self.run_dir, &vm.uuid)) {
            Some(_) => Ok(()),
            None => Err(DriverError::Other(format!("{} is not running", vm.uuid))),
        }
    }

    /// Runs `argv` with the caller's stdio and returns its exit status.
    /// The runtime's move of the new process into the jail's cgroups finds
    /// the kernel's lock warm (see `attach_warm`): 25 ms less here.
    fn attach(&self, argv: Argv) -> DriverResult<i32> {
        let _warm = AttachWarmer::start(&self.cgroup_root, attach_warm::FOR_EXEC);
        Ok(self.runner.interactive(&argv)?)
    }

    /// A login shell on a pseudo-terminal the runtime allocates; ends when
    /// the shell exits, leaving the jail running.
    pub(super) fn console_jail(&self, vm: &VmSpec) -> DriverResult<i32> {
        self.require_running(vm)?;
        // Looked up in the jail's root as the jail resolves paths: a
        // `/bin -> /usr/bin` link must not send the lookup to the host.
        let root = zone_root::zone_root(&vm.zonepath);
        let shell = ["/bin/bash", "/bin/sh"]
            .into_iter()
            .find(|s| sys::exists_in_root(&root, s).unwrap_or(false))
            .unwrap_or("/bin/sh");
        let argv = self.runtime.exec(
            &container_id(&vm.uuid),
            true,
            &[shell.to_string(), "-l".to_string()],
        );
        self.attach(argv)
    }

    /// One command, stdio passed through, its exit status returned.
    pub(super) fn exec_jail(&self, vm: &VmSpec, cmd: &[String]) -> DriverResult<i32> {
        self.require_running(vm)?;
        if cmd.is_empty() {
            return Err(DriverError::Other("exec: no command given".into()));
        }
        self.attach(self.runtime.exec(&container_id(&vm.uuid), false, cmd))
    }
}
