//! The stop plan: shut the tenant down the way jail(8) does, then take apart
//! everything a start creates, whether or not the start got that far.
//!
//! Graceful: vmadm writes a one-jail jail.conf(5) below the zonepath and runs
//! `jail -f <that file> -r <uuid>.tenant`. jail(8) then runs `exec.stop`
//! (`/bin/sh /etc/rc.shutdown jail`, bounded by `exec.timeout`) in the tenant
//! with a clean environment, sends SIGTERM to what is left and waits up to
//! `stop.timeout` before removing the jail (usr.sbin/jail/command.c,
//! `term_procs()`). A jail made on the command line keeps none of its
//! `exec.*` settings, hence the file. An lx tenant has no rc.shutdown and
//! gets the SIGTERM phase only. Then the host ends of the epairs are
//! destroyed (their peers leave the vnet with them, so the jail does not
//! linger "dying" holding them) and the VM's pf anchor is emptied, the
//! outer jail and anything left in it are
//! removed with `jail -R` (jail_remove(2)), and a `jls` check makes sure it
//! is gone before mounts are forced off, a delegated dataset is unmounted
//! and the rctl rules dropped. Every teardown step is best-effort, so a stop
//! after a half-finished start cleans up whatever exists.

use super::guard;
use super::layout;
use super::limits;
use super::mounts;
use super::network;
use super::plan::{argv, Action, Plan, PlanError, Step};
use crate::config::Config;
use crate::driver::StopOptions;
use crate::spec::VmSpec;

/// The jail.conf(5) text jail(8) reads to stop the tenant gracefully.
pub fn stop_conf(vm: &VmSpec, secs: u64) -> String {
    let mut text = format!(
        "# written by vmadm for `vmadm stop`: jail(8) -r reads it\n\"{}\" {{\n\texec.clean;\n",
        layout::tenant(vm)
    );
    if vm.is_lx() {
        text.push_str("\texec.system_jail_user;\n");
    } else {
        text.push_str("\texec.stop = \"/bin/sh /etc/rc.shutdown jail\";\n");
    }
    text.push_str(&format!(
        "\texec.timeout = {secs};\n\tstop.timeout = {secs};\n}}\n"
    ));
    text
}

/// The graceful phase: the stop file, then `jail -f … -r <uuid>.tenant`.
pub fn graceful(vm: &VmSpec, opts: &StopOptions) -> Vec<Step> {
    if opts.force {
        return Vec::new();
    }
    let secs = opts.timeout.as_secs().max(1);
    let root = layout::outer_root(vm);
    vec![
        Step {
            on_failure: super::plan::OnFailure::Continue,
            ..Step::action(Action::WriteFile {
                root: root.clone(),
                rel: layout::STOP_CONF.into(),
                contents: stop_conf(vm, secs),
                mode: 0o600,
            })
        },
        Step::try_run(argv([
            "jail".to_string(),
            "-f".into(),
            format!("{root}/{}", layout::STOP_CONF),
            "-r".into(),
            layout::tenant(vm),
        ])),
    ]
}

/// Everything after the graceful phase (also the cleanup plan).
pub fn teardown(vm: &VmSpec, cfg: &Config) -> Vec<Step> {
    let outer = layout::outer(vm);
    let mut steps = network::teardown(vm);
    steps.push(Step::try_run(argv(["jail", "-R", &outer])));
    steps.push(Step::action(Action::Absent {
        argv: argv(["jls", "-j", &outer, "jid"]),
        message: format!(
            "jail {outer} is still there after removal; its mounts were left in place"
        ),
    }));
    steps.extend(mounts::unmount(vm, cfg.devfs_ruleset));
    if let Some(ds) = layout::delegated_dataset(vm) {
        // Mounts the tenant made are not undone by jail removal.
        steps.push(Step::try_run(argv(["zfs", "umount", "-f", &ds])));
    }
    steps.extend(limits::remove(vm));
    steps
}

/// The whole stop: the graceful phase (unless `opts.force`), then the
/// teardown described in the module text. Refused only for a zonepath that
/// is not a plain absolute path.
pub fn plan(vm: &VmSpec, cfg: &Config, opts: &StopOptions) -> Result<Plan, PlanError> {
    guard::check_paths(vm)?;
    let mut p = Plan::new();
    for s in graceful(vm, opts) {
        p.push(s);
    }
    for s in teardown(vm, cfg) {
        p.push(s);
    }
    Ok(p)
}
