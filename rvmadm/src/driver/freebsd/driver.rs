//! `FreeBsdDriver`: the [`Driver`] trait implemented by building a plan and
//! handing it to the runner. All decisions live in the plan builders; this
//! file only wires them to a [`CommandRunner`] and turns failures into
//! [`DriverError`]s that carry the failing argv and its stderr.

use super::plan::{Plan, PlanError};
use super::runner::{PlanFailed, PlanRunner};
use super::sys_files::{HostFs, RealFs};
use super::{console, delete, kill, start, state, stop, update};
use crate::config::Config;
use crate::driver::{Driver, DriverError, DriverResult, RuntimeState, StopOptions};
use crate::exec::{self, Argv, CommandRunner};
use crate::spec::VmSpec;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub struct FreeBsdDriver {
    config: Config,
    runner: Arc<dyn CommandRunner>,
    fs: Arc<dyn HostFs>,
}

fn plan_error(e: PlanError) -> DriverError {
    DriverError::Other(e.to_string())
}

fn failed(uuid: &Uuid, what: &str, e: PlanFailed) -> DriverError {
    DriverError::Other(format!("{what} {uuid} failed: {e}"))
}

impl FreeBsdDriver {
    pub fn new(config: &Config, runner: Arc<dyn CommandRunner>) -> Self {
        Self::with_fs(config, runner, Arc::new(RealFs))
    }

    /// For tests: file writes go to `fs` instead of the disk.
    pub fn with_fs(config: &Config, runner: Arc<dyn CommandRunner>, fs: Arc<dyn HostFs>) -> Self {
        FreeBsdDriver {
            config: config.clone(),
            runner,
            fs,
        }
    }

    fn execute(&self, vm: &VmSpec, what: &str, plan: &Plan) -> DriverResult<()> {
        let report = PlanRunner::new(self.runner.as_ref(), self.fs.as_ref())
            .execute(plan)
            .map_err(|e| failed(&vm.uuid, what, e))?;
        for w in report.warnings {
            tracing::debug!(uuid = %vm.uuid, what, warning = %w, "best-effort step failed");
        }
        Ok(())
    }

    fn interactive(&self, argv: &Argv) -> DriverResult<i32> {
        use std::os::unix::process::ExitStatusExt;
        let status = exec::command(argv).status().map_err(|source| {
            DriverError::Exec(exec::ExecError::Spawn {
                argv: argv.clone(),
                source,
            })
        })?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

impl Driver for FreeBsdDriver {
    fn name(&self) -> &'static str {
        "freebsd"
    }

    fn states(&self, uuids: &[Uuid]) -> DriverResult<HashMap<Uuid, RuntimeState>> {
        if uuids.is_empty() {
            return Ok(HashMap::new());
        }
        let text = self.runner.run_stdout(&state::query_argv())?;
        state::parse(&text, uuids).map_err(|e| DriverError::Other(e.to_string()))
    }

    fn start(&self, vm: &VmSpec) -> DriverResult<()> {
        let plan = start::plan(vm, &self.config).map_err(plan_error)?;
        self.execute(vm, "start of", &plan)
    }

    fn stop(&self, vm: &VmSpec, opts: StopOptions) -> DriverResult<()> {
        let plan = stop::plan(vm, &self.config, &opts).map_err(plan_error)?;
        self.execute(vm, "stop of", &plan)
    }

    fn kill(&self, vm: &VmSpec, signal: i32) -> DriverResult<()> {
        let plan = kill::kill_plan(vm, signal).map_err(plan_error)?;
        self.execute(vm, "kill of", &plan)
    }

    fn update_live(&self, vm: &VmSpec, changed: &[String]) -> DriverResult<Vec<String>> {
        let (plan, reboot) = update::plan(vm, &self.config, changed).map_err(plan_error)?;
        self.execute(vm, "live update of", &plan)?;
        Ok(reboot)
    }

    fn console(&self, vm: &VmSpec) -> DriverResult<i32> {
        self.interactive(&console::console_argv(vm))
    }

    fn exec(&self, vm: &VmSpec, argv: &[String]) -> DriverResult<i32> {
        let a = console::exec_argv(vm, argv).map_err(plan_error)?;
        self.interactive(&a)
    }

    fn cleanup(&self, vm: &VmSpec) -> DriverResult<()> {
        let plan = delete::cleanup_plan(vm, &self.config).map_err(plan_error)?;
        self.execute(vm, "cleanup of", &plan)
    }
}
