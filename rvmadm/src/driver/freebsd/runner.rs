//! The tiny runner: executes a [`Plan`] step by step through a
//! [`CommandRunner`] and a [`HostFs`], stops at the first failing step that
//! must succeed, then runs the undo argvs of the steps already done in reverse
//! order. The error names the failing step, its argv and its stderr, plus any
//! undo that failed too (so the operator knows what may be left behind).

use super::plan::{render_step, Action, OnFailure, Plan};
use super::sys_files::HostFs;
use crate::exec::{Argv, CommandRunner, ExecError};
use std::path::Path;

/// Why one step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    /// The command that failed, when the step ran one.
    pub argv: Option<Argv>,
    /// What the command wrote on stderr (trimmed), or the detail of a
    /// non-process failure (an I/O error, an unexpected output); may be empty.
    pub stderr: String,
    /// The step's own explanation of what did not work, for the operator.
    pub message: String,
}

/// A plan that stopped at step `index`; the steps before it were undone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct PlanFailed {
    /// Position of the failing step in the plan, counted from 0.
    pub index: usize,
    /// The failing step as rendered in golden files.
    pub step: String,
    /// Why the step failed.
    pub error: StepError,
    /// Undo commands that failed as well: what may be left on the host.
    pub undo_errors: Vec<String>,
}

impl PlanFailed {
    fn describe(&self) -> String {
        let mut s = self.error.message.clone();
        if let Some(a) = &self.error.argv {
            s.push_str(&format!(" (`{a}`"));
            if !self.error.stderr.is_empty() {
                s.push_str(&format!(": {}", self.error.stderr));
            }
            s.push(')');
        }
        if !self.undo_errors.is_empty() {
            s.push_str("; rolling back also failed, run `vmadm stop -F` to clean up: ");
            s.push_str(&self.undo_errors.join("; "));
        }
        s
    }
}

/// What a completed plan left to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Best-effort steps that failed (usually: the thing was already gone).
    pub warnings: Vec<String>,
}

/// Executes plans; borrows the command runner and the host file system
/// for the length of one plan.
pub struct PlanRunner<'a> {
    runner: &'a dyn CommandRunner,
    fs: &'a dyn HostFs,
}

fn exec_error(e: ExecError, message: &str) -> StepError {
    match e {
        ExecError::Failed { argv, stderr, .. } => StepError {
            argv: Some(argv),
            stderr,
            message: message.to_string(),
        },
        ExecError::Spawn { argv, source } => StepError {
            argv: Some(argv),
            stderr: source.to_string(),
            message: message.to_string(),
        },
    }
}

/// `epair12a` → `epair12`; anything else is not what `ifconfig epair create`
/// prints and must not be used as an interface name.
fn epair_base(created: &str) -> Option<&str> {
    let base = created.strip_suffix('a')?;
    let unit = base.strip_prefix("epair")?;
    (!unit.is_empty() && unit.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

impl<'a> PlanRunner<'a> {
    /// Commands go through `runner`, the file actions through `fs`.
    pub fn new(runner: &'a dyn CommandRunner, fs: &'a dyn HostFs) -> Self {
        PlanRunner { runner, fs }
    }

    /// Runs the plan; see the module comment for the failure contract.
    pub fn execute(&self, plan: &Plan) -> Result<Report, Box<PlanFailed>> {
        let mut report = Report::default();
        let mut undo_stack: Vec<&Argv> = Vec::new();
        for (index, step) in plan.steps.iter().enumerate() {
            match self.perform(&step.action) {
                Ok(()) => {
                    if let Some(u) = &step.undo {
                        undo_stack.push(u);
                    }
                }
                Err(error) => match step.on_failure {
                    OnFailure::Continue => {
                        tracing::debug!(step = %render_step(step), "best-effort step failed");
                        report
                            .warnings
                            .push(format!("{}: {}", render_step(step), error.stderr));
                    }
                    OnFailure::Abort => {
                        let undo_errors = self.undo(&undo_stack);
                        return Err(Box::new(PlanFailed {
                            index,
                            step: render_step(step),
                            error,
                            undo_errors,
                        }));
                    }
                },
            }
        }
        Ok(report)
    }

    fn undo(&self, stack: &[&Argv]) -> Vec<String> {
        let mut errors = Vec::new();
        for argv in stack.iter().rev() {
            if let Err(e) = self.runner.run(argv) {
                errors.push(e.to_string());
            }
        }
        errors
    }

    fn perform(&self, action: &Action) -> Result<(), StepError> {
        match action {
            Action::Run(argv) => self
                .runner
                .run(argv)
                .map(|_| ())
                .map_err(|e| exec_error(e, "command failed")),
            Action::Expect {
                argv,
                expect,
                message,
            } => {
                let out = self
                    .runner
                    .run_stdout(argv)
                    .map_err(|e| exec_error(e, message))?;
                if out.trim() == expect {
                    Ok(())
                } else {
                    Err(StepError {
                        argv: Some(argv.clone()),
                        stderr: format!("got {:?}, need {expect:?}", out.trim()),
                        message: message.clone(),
                    })
                }
            }
            Action::NonEmpty { argv, message } => {
                let out = self
                    .runner
                    .run_stdout(argv)
                    .map_err(|e| exec_error(e, message))?;
                if out.trim().is_empty() {
                    Err(StepError {
                        argv: Some(argv.clone()),
                        stderr: "no output".into(),
                        message: message.clone(),
                    })
                } else {
                    Ok(())
                }
            }
            Action::CheckZoneRoot { zonepath } => self
                .fs
                .check_zone_root(Path::new(zonepath))
                .map_err(|e| StepError {
                    argv: None,
                    stderr: e.to_string(),
                    message: e.to_string(),
                }),
            Action::RequireDir { root, rel, message } => self
                .fs
                .check_dir(Path::new(root), rel)
                .map_err(|e| StepError {
                    argv: None,
                    stderr: e.to_string(),
                    message: format!("{root}/{rel}: {e}; {message}"),
                }),
            Action::Absent { argv, message } => match self.runner.output(argv, None) {
                Ok(out) if out.success() => Err(StepError {
                    argv: Some(argv.clone()),
                    stderr: String::new(),
                    message: message.clone(),
                }),
                Ok(_) => Ok(()),
                // A command that could not run proves nothing either way.
                Err(e) => Err(exec_error(e, message)),
            },
            Action::EnsureDir { root, rel } => {
                self.fs
                    .ensure_dir(Path::new(root), rel)
                    .map_err(|e| StepError {
                        argv: None,
                        stderr: e.to_string(),
                        message: format!("cannot prepare directory {root}/{rel}: {e}"),
                    })
            }
            Action::Unmount { root, rel } => {
                self.fs
                    .check_dir(Path::new(root), rel)
                    .map_err(|e| StepError {
                        argv: None,
                        stderr: e.to_string(),
                        message: format!("not unmounting {root}/{rel}: {e}"),
                    })?;
                let argv = Argv::new(["umount", "-f", &format!("{root}/{rel}")]);
                self.runner
                    .run(&argv)
                    .map(|_| ())
                    .map_err(|e| exec_error(e, "cannot unmount"))
            }
            Action::WriteFile {
                root,
                rel,
                contents,
                mode,
            } => self
                .fs
                .write_file(Path::new(root), rel, contents.as_bytes(), *mode)
                .map_err(|e| StepError {
                    argv: None,
                    stderr: e.to_string(),
                    message: format!("cannot write {root}/{rel}: {e}"),
                }),
            Action::CreateEpair { host, jail } => self.create_epair(host, jail),
        }
    }

    fn create_epair(&self, host: &str, jail: &str) -> Result<(), StepError> {
        let create = Argv::new(["ifconfig", "epair", "create"]);
        let out = self
            .runner
            .run_stdout(&create)
            .map_err(|e| exec_error(e, "cannot create an epair"))?;
        let created = out.trim();
        let base = epair_base(created).ok_or_else(|| StepError {
            argv: Some(create.clone()),
            stderr: format!("unexpected output {created:?}"),
            message: "cannot create an epair".into(),
        })?;
        let a = format!("{base}a");
        let b = format!("{base}b");
        if let Err(e) = self.runner.run(&Argv::new(["ifconfig", &a, "name", host])) {
            let _ = self.runner.run(&Argv::new(["ifconfig", &a, "destroy"]));
            return Err(exec_error(e, "cannot name the host end of the epair"));
        }
        if let Err(e) = self.runner.run(&Argv::new(["ifconfig", &b, "name", jail])) {
            let _ = self.runner.run(&Argv::new(["ifconfig", host, "destroy"]));
            return Err(exec_error(e, "cannot name the jail end of the epair"));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::plan::{argv, Step};
    use super::*;
    use crate::exec::{Output, RecordingRunner};
    use std::sync::Mutex;

    /// Records file operations instead of touching disk; written files
    /// can be read back.
    #[derive(Default)]
    pub(crate) struct MemFs {
        pub ops: Mutex<Vec<String>>,
        pub fail: bool,
        pub files: Mutex<std::collections::HashMap<String, String>>,
    }

    impl HostFs for MemFs {
        fn ensure_dir(&self, root: &Path, rel: &str) -> std::io::Result<()> {
            self.ops
                .lock()
                .unwrap()
                .push(format!("ensure-dir {}/{rel}", root.display()));
            if self.fail {
                return Err(std::io::Error::other("refused"));
            }
            Ok(())
        }
        fn check_dir(&self, root: &Path, rel: &str) -> std::io::Result<()> {
            self.ops
                .lock()
                .unwrap()
                .push(format!("check-dir {}/{rel}", root.display()));
            if self.fail {
                return Err(std::io::Error::other("refused"));
            }
            Ok(())
        }
        fn write_file(&self, root: &Path, rel: &str, c: &[u8], _m: u32) -> std::io::Result<()> {
            self.ops.lock().unwrap().push(format!(
                "write {}/{rel} {}",
                root.display(),
                String::from_utf8_lossy(c)
            ));
            if self.fail {
                return Err(std::io::Error::other("refused"));
            }
            self.files.lock().unwrap().insert(
                format!("{}/{rel}", root.display()),
                String::from_utf8_lossy(c).into_owned(),
            );
            Ok(())
        }
        fn read_file(&self, root: &Path, rel: &str) -> std::io::Result<Option<String>> {
            let key = format!("{}/{rel}", root.display());
            Ok(self.files.lock().unwrap().get(&key).cloned())
        }
        fn check_zone_root(
            &self,
            zonepath: &Path,
        ) -> Result<(), crate::driver::zone_root::ZoneLayoutError> {
            self.ops
                .lock()
                .unwrap()
                .push(format!("check-zone-root {}", zonepath.display()));
            if self.fail {
                return Err(crate::driver::zone_root::ZoneLayoutError::MissingRoot {
                    zonepath: zonepath.to_path_buf(),
                    unmounted: false,
                });
            }
            Ok(())
        }
    }

    fn three_steps() -> Plan {
        let mut p = Plan::new();
        p.push(Step::run_undo(argv(["a", "1"]), argv(["undo-a", "1"])));
        p.push(Step::run(argv(["b", "2"])));
        p.push(Step::run_undo(argv(["c", "3"]), argv(["undo-c", "3"])));
        p.push(Step::run_undo(argv(["d", "4"]), argv(["undo-d", "4"])));
        p
    }

    #[test]
    fn failure_undoes_previous_steps_in_reverse() {
        let r = RecordingRunner::new();
        r.fail(&["d"], "boom");
        let fs = MemFs::default();
        let err = PlanRunner::new(&r, &fs)
            .execute(&three_steps())
            .unwrap_err();
        assert_eq!(err.index, 3);
        assert_eq!(err.error.stderr, "boom");
        assert_eq!(err.error.argv, Some(argv(["d", "4"])));
        let calls: Vec<String> = r.calls().iter().map(|a| a.to_string()).collect();
        assert_eq!(calls, ["a 1", "b 2", "c 3", "d 4", "undo-c 3", "undo-a 1"]);
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn best_effort_steps_only_warn() {
        let r = RecordingRunner::new();
        r.fail(&["x"], "gone");
        let mut p = Plan::new();
        p.push(Step::try_run(argv(["x"])));
        p.push(Step::run(argv(["y"])));
        let fs = MemFs::default();
        let rep = PlanRunner::new(&r, &fs).execute(&p).unwrap();
        assert_eq!(rep.warnings.len(), 1);
        assert_eq!(r.calls().len(), 2);
    }

    #[test]
    fn unmount_skips_a_symlinked_mount_point() {
        let r = RecordingRunner::new();
        let step = Step {
            action: Action::Unmount {
                root: "/zones/x/root".into(),
                rel: "dev".into(),
            },
            undo: None,
            on_failure: OnFailure::Continue,
        };
        let mut p = Plan::new();
        p.push(step);
        let bad = MemFs {
            fail: true,
            ..MemFs::default()
        };
        let rep = PlanRunner::new(&r, &bad).execute(&p).unwrap();
        assert_eq!(rep.warnings.len(), 1);
        assert!(r.calls().is_empty());
        let good = MemFs::default();
        PlanRunner::new(&r, &good).execute(&p).unwrap();
        assert_eq!(r.calls()[0].to_string(), "umount -f /zones/x/root/dev");
    }

    #[test]
    fn undo_failures_are_reported() {
        let r = RecordingRunner::new();
        r.fail(&["c"], "boom");
        r.fail(&["undo-a"], "stuck");
        let fs = MemFs::default();
        let err = PlanRunner::new(&r, &fs)
            .execute(&three_steps())
            .unwrap_err();
        assert_eq!(err.undo_errors.len(), 1);
        assert!(err.to_string().contains("stuck"), "{err}");
    }

    #[test]
    fn expect_and_absent() {
        let r = RecordingRunner::new();
        r.answer(
            &["sysctl"],
            Output {
                status: 0,
                stdout: b"0\n".to_vec(),
                stderr: vec![],
            },
        );
        let fs = MemFs::default();
        let mut p = Plan::new();
        p.push(Step::action(Action::Expect {
            argv: argv(["sysctl", "-n", "kern.racct.enable"]),
            expect: "1".into(),
            message: "racct off".into(),
        }));
        let err = PlanRunner::new(&r, &fs).execute(&p).unwrap_err();
        assert!(err.to_string().contains("racct off"));

        let mut p = Plan::new();
        p.push(Step::action(Action::Absent {
            argv: argv(["jls", "-j", "x"]),
            message: "still there".into(),
        }));
        assert!(PlanRunner::new(&r, &fs).execute(&p).is_err());
        r.fail(&["jls"], "jail not found");
        assert!(PlanRunner::new(&r, &fs).execute(&p).is_ok());
    }

    #[test]
    fn epair_is_created_then_renamed_and_cleaned_on_failure() {
        let r = RecordingRunner::new();
        r.answer(
            &["ifconfig", "epair", "create"],
            Output {
                status: 0,
                stdout: b"epair7a\n".to_vec(),
                stderr: vec![],
            },
        );
        let fs = MemFs::default();
        let mut p = Plan::new();
        p.push(
            Step::action(Action::CreateEpair {
                host: "h0".into(),
                jail: "j0".into(),
            })
            .with_undo(argv(["ifconfig", "h0", "destroy"])),
        );
        PlanRunner::new(&r, &fs).execute(&p).unwrap();
        let calls: Vec<String> = r.calls().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            calls,
            [
                "ifconfig epair create",
                "ifconfig epair7a name h0",
                "ifconfig epair7b name j0"
            ]
        );
        let r2 = RecordingRunner::new();
        r2.answer(
            &["ifconfig", "epair", "create"],
            Output {
                status: 0,
                stdout: b"epair7a\n".to_vec(),
                stderr: vec![],
            },
        );
        r2.fail(&["ifconfig", "epair7b"], "exists");
        assert!(PlanRunner::new(&r2, &fs).execute(&p).is_err());
        let last = r2.calls().last().unwrap().to_string();
        assert_eq!(last, "ifconfig h0 destroy");
        assert_eq!(epair_base("epair12a"), Some("epair12"));
        assert_eq!(epair_base("bridge0"), None);
        assert_eq!(epair_base("epaira"), None);
    }
}
