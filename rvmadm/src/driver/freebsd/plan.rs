//! Plans: the pure description of what a FreeBSD action does to the host.
//!
//! Every action (start, stop, update …) is first built as a [`Plan`]: an
//! ordered list of [`Step`]s, each an argv vector (or one of a few typed
//! non-process actions such as writing a file from Rust) plus the argv that
//! undoes it when the step changes the host. Building a plan never touches the
//! host, so plans are golden-tested here on Linux; only `runner.rs` executes
//! them. [`Plan::render`] is the golden format: one step per line, every argv
//! element JSON-quoted so a hostile value can be seen to be one element.

use crate::exec::Argv;
use std::fmt::Write as _;

/// What the driver refuses to plan, with the reason a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A value from the payload (or the request, such as a signal) that
    /// does not have the strict shape its command expects, or that FreeBSD
    /// has no use for.
    #[error("{field}: {value:?} is not acceptable here: {why}")]
    Refused {
        /// The payload property, dotted for a nic's own (`nics.mac`).
        field: String,
        /// The value as given.
        value: String,
        /// What the value must look like instead.
        why: String,
    },
    /// A request this driver cannot carry out at all (too many nics,
    /// `filesystems`, exec without a command); the text says which.
    #[error("{0}")]
    Unsupported(String),
}

impl PlanError {
    /// Shorthand for [`PlanError::Refused`].
    pub fn refused(field: impl Into<String>, value: impl Into<String>, why: &str) -> Self {
        PlanError::Refused {
            field: field.into(),
            value: value.into(),
            why: why.into(),
        }
    }
}

/// One thing a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run a command; a non-zero exit is a failure.
    Run(Argv),
    /// Run a command whose trimmed stdout must equal `expect`; otherwise fail
    /// with `message` (used for preconditions such as `kern.racct.enable`).
    Expect {
        /// The query to run.
        argv: Argv,
        /// The exact output wanted, compared after trimming whitespace.
        expect: String,
        /// What to tell the operator when the output differs.
        message: String,
    },
    /// Run a command whose trimmed stdout must not be empty; otherwise fail
    /// with `message` (used for `devfs rule -s N show`, which prints
    /// nothing, successfully, for a ruleset that is not loaded).
    NonEmpty {
        /// The query to run.
        argv: Argv,
        /// What to tell the operator when it prints nothing.
        message: String,
    },
    /// Run a command that must fail (e.g. `jls -j <name>` after removal).
    /// A command that cannot be spawned at all fails the step too.
    Absent {
        /// The check that should find nothing.
        argv: Argv,
        /// What to tell the operator when it does find something.
        message: String,
    },
    /// Create `root/rel` as a directory if missing, refusing any symlink on
    /// the way: a tenant could otherwise point a host-side mount elsewhere.
    EnsureDir {
        /// A trusted host directory (a jail root); symlinks above it are
        /// not examined.
        root: String,
        /// The path below `root`, relative, checked component by component.
        rel: String,
    },
    /// The zone layout check (`driver::zone_root::check`): `zonepath/root`
    /// (and `data` when present) must be real directories, not symlinks,
    /// before anything is mounted below the zonepath or a jail's `path=`
    /// is resolved there.
    CheckZoneRoot {
        /// The VM's zonepath on the host.
        zonepath: String,
    },
    /// `root/rel` must already be a directory reached without symlinks; it
    /// is never created (used for directories inside a devfs, which cannot
    /// make directories: `dev/shm`, `dev/fd`).
    RequireDir {
        /// A trusted host directory (a jail root).
        root: String,
        /// The path below `root`, relative.
        rel: String,
        /// What to tell the operator when it is missing.
        message: String,
    },
    /// `umount -f root/rel`, but only after checking that no component of
    /// `rel` is a symlink: a tenant's `dev -> /dev` would otherwise make
    /// umount(8) take the host's /dev away.
    Unmount {
        /// A trusted host directory (a jail root).
        root: String,
        /// The mount point below `root`, relative.
        rel: String,
    },
    /// Write `contents` to `root/rel` from Rust (never through a shell),
    /// without following symlinks below `root`.
    WriteFile {
        /// A trusted host directory (a jail root).
        root: String,
        /// The file below `root`, relative.
        rel: String,
        /// The whole new contents; an existing file is replaced.
        contents: String,
        /// Unix permission bits of the file (e.g. `0o644`).
        mode: u32,
    },
    /// `ifconfig epair create`, then rename its ends to `host` and `jail`.
    /// One step because the kernel picks the unit number; everything after it
    /// uses the deterministic names.
    CreateEpair {
        /// The new name of the end that stays on the host (the `a` end).
        host: String,
        /// The new name of the end that moves into the jail (the `b` end).
        jail: String,
    },
}

/// Whether a failing step aborts the plan (and undoes it) or is only noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop the plan and run the undo argvs of the completed steps.
    Abort,
    /// Teardown steps: the thing may already be gone.
    Continue,
}

/// One entry of a plan: what to do, how to take it back, and whether its
/// failure ends the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The command or file action.
    pub action: Action,
    /// Run, in reverse order with the other undos, when a later step
    /// aborts the plan; only for steps that succeeded.
    pub undo: Option<Argv>,
    /// Abort (and undo) or note the failure and go on.
    pub on_failure: OnFailure,
}

impl Step {
    /// A step that must succeed and has no undo.
    pub fn run(argv: Argv) -> Step {
        Step {
            action: Action::Run(argv),
            undo: None,
            on_failure: OnFailure::Abort,
        }
    }

    /// A step that must succeed; `undo` reverses it.
    pub fn run_undo(argv: Argv, undo: Argv) -> Step {
        Step {
            action: Action::Run(argv),
            undo: Some(undo),
            on_failure: OnFailure::Abort,
        }
    }

    /// A best-effort teardown step.
    pub fn try_run(argv: Argv) -> Step {
        Step {
            action: Action::Run(argv),
            undo: None,
            on_failure: OnFailure::Continue,
        }
    }

    /// A step that must succeed, for any action; add an undo with
    /// [`Step::with_undo`].
    pub fn action(action: Action) -> Step {
        Step {
            action,
            undo: None,
            on_failure: OnFailure::Abort,
        }
    }

    /// The same step with `undo` as its reversal (replacing any earlier one).
    pub fn with_undo(mut self, undo: Argv) -> Step {
        self.undo = Some(undo);
        self
    }
}

/// An ordered list of steps for one action on one VM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The steps, in the order they run.
    pub steps: Vec<Step>,
}

/// Builds an [`Argv`] from string-likes; shorter than `Argv::new([...])`.
pub fn argv<I, S>(items: I) -> Argv
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Argv::new(items)
}

fn quote(s: &str) -> String {
    // serde_json never fails on a &str; the fallback only keeps clippy honest.
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

fn render_argv(a: &Argv) -> String {
    let items: Vec<String> = a.0.iter().map(|s| quote(s)).collect();
    format!("[{}]", items.join(","))
}

impl Plan {
    /// A plan with no steps.
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Appends one step.
    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// Appends every step of `other`, in its order.
    pub fn extend(&mut self, other: Plan) {
        self.steps.extend(other.steps);
    }

    /// How many steps the plan has.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True for a plan with no steps (an update that changes nothing live).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Every argv the plan may run, undo argvs included (for tests that check
    /// where user values end up).
    pub fn all_argvs(&self) -> Vec<&Argv> {
        let mut out = Vec::new();
        for s in &self.steps {
            match &s.action {
                Action::Run(a)
                | Action::Expect { argv: a, .. }
                | Action::NonEmpty { argv: a, .. }
                | Action::Absent { argv: a, .. } => out.push(a),
                _ => {}
            }
            if let Some(u) = &s.undo {
                out.push(u);
            }
        }
        out
    }

    /// The golden-file text: one step per line, undo on the following
    /// indented line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            out.push_str(&render_step(s));
            out.push('\n');
            if let Some(u) = &s.undo {
                let _ = writeln!(out, "  undo {}", render_argv(u));
            }
        }
        out
    }
}

/// One line describing a step (also used in error messages).
pub fn render_step(s: &Step) -> String {
    let verb = match s.on_failure {
        OnFailure::Abort => "run",
        OnFailure::Continue => "try",
    };
    match &s.action {
        Action::Run(a) => format!("{verb} {}", render_argv(a)),
        Action::Expect { argv, expect, .. } => {
            format!("expect {} == {}", render_argv(argv), quote(expect))
        }
        Action::NonEmpty { argv, .. } => format!("nonempty {}", render_argv(argv)),
        Action::Absent { argv, .. } => format!("absent {}", render_argv(argv)),
        Action::CheckZoneRoot { zonepath } => format!("check-zone-root {}", quote(zonepath)),
        Action::RequireDir { root, rel, .. } => {
            format!("require-dir {} {}", quote(root), quote(rel))
        }
        Action::EnsureDir { root, rel } => format!("ensure-dir {} {}", quote(root), quote(rel)),
        Action::Unmount { root, rel } => format!("{verb}-umount {} {}", quote(root), quote(rel)),
        Action::WriteFile {
            root,
            rel,
            contents,
            mode,
        } => format!(
            "{}write-file {} {} {:04o} {}",
            if s.on_failure == OnFailure::Continue {
                "try-"
            } else {
                ""
            },
            quote(root),
            quote(rel),
            mode,
            quote(contents)
        ),
        Action::CreateEpair { host, jail } => {
            format!("create-epair {} {}", quote(host), quote(jail))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_quotes_every_element() {
        let mut p = Plan::new();
        p.push(Step::run_undo(
            argv(["jail", "-c", "host.hostname=a \"b\"; $(x)"]),
            argv(["jail", "-r", "x"]),
        ));
        p.push(Step::try_run(argv(["umount", "/a b"])));
        assert_eq!(
            p.render(),
            "run [\"jail\",\"-c\",\"host.hostname=a \\\"b\\\"; $(x)\"]\n  undo [\"jail\",\"-r\",\"x\"]\ntry [\"umount\",\"/a b\"]\n"
        );
    }
}
