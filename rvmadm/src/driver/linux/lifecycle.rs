//! Start, stop, signal and teardown of a jail.
//!
//! A start first checks the zone layout (`<zonepath>/root` a real
//! directory, `data` never a symlink, no tree at the top), then runs a
//! short transaction: bundle → network namespace → veths and addresses →
//! runtime `run --detach` → boot record. The boot record is
//! written last, so a jail counts as booted only when every step succeeded;
//! any failure (or a `kill -9` of vmadm part-way) leaves debris that
//! [`LinuxDriver::teardown`] finds by name alone and removes: the runtime
//! container, host veths, the namespace, cgroups and the run directory.

use super::driver::LinuxDriver;
use super::names::{cgroup_path, container_id, link_alias, netns_name, netns_path, JailDir};
use super::netplan::{self, NetPlan, VlanMode};
use super::state::{self, BootRecord};
use super::{bundle, runtime, sys};
use crate::driver::zone_root::ZoneLayoutError;
use crate::driver::{DriverError, DriverResult, Signal, StopOptions};
use crate::exec::{Argv, ExecError};
use crate::spec::fs_policy::{FsPolicy, FsRequest};
use crate::spec::VmSpec;
use std::time::{Duration, Instant};

/// How long a SIGKILLed init may take to die before stop gives up.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl LinuxDriver {
    /// Runs one batch of `ip`/`bridge` lines in a single process. The two
    /// failures a start recovers from get their own error variants.
    fn batch(&self, argv: Argv, lines: &[String]) -> DriverResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = lines.join("\n");
        text.push('\n');
        let out = self.runner.output(&argv, Some(text.as_bytes()))?;
        if out.success() {
            return Ok(());
        }
        Err(batch_failure(argv, out.status, &out.stderr_str(), lines))
    }

    /// Set once this boot's kernel refused bridge VLAN filtering, so later
    /// starts go straight to a bridge per VLAN. Keyed by the boot id because
    /// a kernel's features only change with a reboot.
    fn vlan_mode(&self) -> VlanMode {
        let marker = self.run_dir.join("linux-no-vlan-filtering");
        match (std::fs::read_to_string(marker), boot_id()) {
            (Ok(m), Some(b)) if m.trim() == b => VlanMode::BridgePerVlan,
            _ => VlanMode::Filtering,
        }
    }

    fn remember_no_vlan_filtering(&self) {
        if let Some(b) = boot_id() {
            let _ = std::fs::create_dir_all(&self.run_dir);
            let _ = std::fs::write(self.run_dir.join("linux-no-vlan-filtering"), b);
        }
    }

    fn plan_network(&self, vm: &VmSpec, mode: VlanMode) -> DriverResult<NetPlan> {
        let out = self
            .runner
            .run_stdout(&Argv::new(["ip", "-o", "link", "show", "type", "bridge"]))?;
        let existing = netplan::parse_link_names(&out);
        let plan = netplan::plan(vm, &self.networks, self.create_bridges, &existing, mode)
            .map_err(|e| DriverError::Other(format!("{}: {e}", vm.uuid)))?;
        for w in &plan.warnings {
            tracing::warn!(uuid = %vm.uuid, "{w}");
        }
        Ok(plan)
    }

    /// Boots a stopped jail; a running one is left alone.
    pub(super) fn start_jail(&self, vm: &VmSpec) -> DriverResult<()> {
        let dir = JailDir::new(&self.run_dir, &vm.uuid);
        if state::running(&dir).is_some() {
            return Ok(());
        }
        // The runtime boots <zonepath>/root and would follow a symlink
        // there (`root -> /` boots the host's own tree): refuse before
        // anything is made or mounted.
        super::driver::check_zone_layout(&vm.zonepath).map_err(|e| match e {
            ZoneLayoutError::Zonepath { .. } => DriverError::Other(format!(
                "{}: {e}; is dataset {} mounted?",
                vm.uuid, vm.zfs_filesystem
            )),
            e => DriverError::Layout(e),
        })?;
        if self.has_debris(vm, &dir) {
            self.teardown(vm, true)?;
        }
        let host = runtime::probe(&self.runtime, &self.cgroup_root)?;
        let mut attempt = 0;
        let mut mode = self.vlan_mode();
        let has_vlans = vm.nics.iter().any(|n| n.vlan_id > 0);
        loop {
            match self.start_steps(vm, &dir, host, mode) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let undo = self.teardown(vm, true);
                    match e {
                        // Kernels built without bridge VLAN filtering: fall
                        // back to a bridge per VLAN.
                        DriverError::NoVlanFiltering(_)
                            if has_vlans && mode == VlanMode::Filtering && undo.is_ok() =>
                        {
                            tracing::warn!(uuid = %vm.uuid, "no bridge VLAN filtering in this kernel: one bridge per VLAN");
                            self.remember_no_vlan_filtering();
                            mode = VlanMode::BridgePerVlan;
                            continue;
                        }
                        // A host veth of the previous boot may still be dying
                        // with its namespace (the kernel frees those
                        // asynchronously); the thorough teardown above removed
                        // it, so try once more.
                        DriverError::LinkExists(_) if attempt == 0 && undo.is_ok() => {
                            attempt += 1;
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        _ => {}
                    }
                    if let Err(u) = undo {
                        tracing::warn!(uuid = %vm.uuid, error = %u, "undoing a failed start");
                    }
                    return Err(e);
                }
            }
        }
    }

    fn start_steps(
        &self,
        vm: &VmSpec,
        dir: &JailDir,
        host: bundle::HostCaps,
        mode: VlanMode,
    ) -> DriverResult<()> {
        std::fs::create_dir_all(&dir.dir)?;
        let plan = if vm.nics.is_empty() {
            None
        } else {
            Some(self.plan_network(vm, mode)?)
        };
        let vm = &self.resolve_filesystems(vm)?;
        let ns_path = netns_path(&vm.uuid);
        let spec = bundle::build_spec(vm, dir, plan.as_ref().map(|_| ns_path.as_path()), host)
            .map_err(|e| DriverError::Other(e.to_string()))?;
        bundle::write_bundle(vm, dir, &spec)?;
        if let Some(plan) = &plan {
            let ns = netns_name(&vm.uuid);
            self.batch(Argv::new(["ip", "-batch", "-"]), &plan.host)?;
            self.batch(Argv::new(["bridge", "-batch", "-"]), &plan.vlan)?;
            // Anti-spoofing rules go on the host ports (they exist now) while
            // the jail side is set up; no tenant process runs yet.
            self.with_filters(vm, dir, || {
                self.batch(
                    Argv::new(["ip", "-n", ns.as_str(), "-batch", "-"]),
                    &plan.jail,
                )
            })?;
        }
        let id = container_id(&vm.uuid);
        std::fs::create_dir_all(&self.runtime.root)?;
        // The init's stdout and stderr go through a keeper that caps the
        // log (see console_log), never straight into run_dir.
        let log = dir.console_log();
        let keeper = Argv(vec![
            self.log_keeper.to_string_lossy().into_owned(),
            super::console_log::KEEPER_ARG.to_string(),
            log.to_string_lossy().into_owned(),
        ]);
        self.runner.run_logged(
            &self
                .runtime
                .run_detached(&id, dir.bundle(), &dir.pid_file()),
            &keeper,
            &log,
        )?;
        let pid: u32 = std::fs::read_to_string(dir.pid_file())?
            .trim()
            .parse()
            .map_err(|_| DriverError::Other(format!("{}: unreadable pid file", vm.uuid)))?;
        let stat = state::proc_stat(pid).ok_or_else(|| {
            DriverError::Other(format!(
                "{}: init (pid {pid}) exited right after start; see {}",
                vm.uuid,
                dir.console_log().display()
            ))
        })?;
        BootRecord {
            pid,
            start: stat.starttime,
        }
        .write(dir)?;
        Ok(())
    }

    /// `vm` with every `filesystems` source checked again against the
    /// allowlist (the host may have changed since create) and replaced by
    /// the path it resolves to now, so the runtime mounts what was checked.
    fn resolve_filesystems(&self, vm: &VmSpec) -> DriverResult<VmSpec> {
        let mut vm = vm.clone();
        if vm.filesystems.is_empty() {
            return Ok(vm);
        }
        let zfs = crate::zfs::Zfs::new(self.runner.as_ref());
        let mountpoint = zfs.mountpoint(&vm.zpool).ok();
        let policy = FsPolicy::new(&self.config, mountpoint.as_deref());
        for fs in &mut vm.filesystems {
            let req = FsRequest {
                source: fs.source.clone(),
                rw: !fs.read_only,
            };
            let path = policy
                .check(&req)
                .map_err(|e| DriverError::Other(format!("{}: {e}", vm.uuid)))?;
            fs.source = path.to_string_lossy().into_owned();
        }
        Ok(vm)
    }

    /// True when anything a previous boot made is still around.
    pub(super) fn has_debris(&self, vm: &VmSpec, dir: &JailDir) -> bool {
        dir.dir.exists()
            || netns_path(&vm.uuid).exists()
            || self.runtime.state_dir(&container_id(&vm.uuid)).exists()
    }

    /// Stops a running jail (SIGTERM, then SIGKILL after the timeout) and
    /// removes everything its boot made. Stopping a stopped jail only cleans.
    pub(super) fn stop_jail(&self, vm: &VmSpec, opts: StopOptions) -> DriverResult<()> {
        let dir = JailDir::new(&self.run_dir, &vm.uuid);
        if let Some(rec) = state::running(&dir) {
            if !opts.force {
                // An init that has not installed its SIGTERM handler yet (a
                // stop right after a start) drops the signal: the kernel
                // ignores default-action signals to a namespace's init. So
                // the signal is repeated, at growing intervals, until the
                // grace period ends.
                let deadline = Instant::now() + opts.timeout;
                let mut interval = Duration::from_millis(100);
                loop {
                    sys::kill(rec.pid, Signal::Term)?;
                    let left = deadline.saturating_duration_since(Instant::now());
                    if wait_dead(&rec, interval.min(left)) || left <= interval {
                        break;
                    }
                    interval = (interval * 2).min(Duration::from_secs(2));
                }
            }
            if rec.alive() {
                sys::kill(rec.pid, Signal::Kill)?;
                if !wait_dead(&rec, KILL_WAIT) {
                    return Err(DriverError::Other(format!(
                        "{}: init (pid {}) survived SIGKILL for {}s",
                        vm.uuid,
                        rec.pid,
                        KILL_WAIT.as_secs()
                    )));
                }
            }
        }
        self.teardown(vm, false)
    }

    /// Sends `signal` to the jail's init.
    pub(super) fn signal_jail(&self, vm: &VmSpec, signal: Signal) -> DriverResult<()> {
        let dir = JailDir::new(&self.run_dir, &vm.uuid);
        let rec = state::running(&dir).ok_or(DriverError::NotRunning(vm.uuid))?;
        sys::kill(rec.pid, signal)?;
        Ok(())
    }

    /// Removes what a boot made. `thorough` also hunts host veths by name
    /// (costs one `ip link` listing), needed after a crash or failed start.
    pub(super) fn teardown(&self, vm: &VmSpec, thorough: bool) -> DriverResult<()> {
        let id = container_id(&vm.uuid);
        let mut errors: Vec<String> = Vec::new();
        // The anti-spoofing table goes in parallel with the rest (its
        // removal mostly waits for the kernel).
        let filters = self.begin_removing_filters(vm, thorough);
        if thorough {
            // A vmadm killed mid-start leaves its runtime child running on
            // its own; let it finish first so it cannot create the container
            // after the teardown below.
            // Only the runtime's own processes count: anyone else (a
            // process in another jail) may name the bundle in its argv.
            let bundle = JailDir::new(&self.run_dir, &vm.uuid);
            let busy = state::wait_no_runtime_with_arg(
                runtime::locate(&self.runtime.program).as_deref(),
                &bundle.dir.to_string_lossy(),
                Duration::from_secs(10),
            );
            if !busy {
                errors.push("a runtime process for this jail is still running".into());
            }
        }
        if self.runtime.state_dir(&id).exists() {
            let out = self.runner.output(&self.runtime.delete(&id, false), None)?;
            if !out.success() {
                // Still running (a crashed start or stop): force it.
                if let Err(e) = self.runner.run(&self.runtime.delete(&id, true)) {
                    errors.push(e.to_string());
                }
            }
        }
        if thorough {
            // Only links carrying this jail's full UUID as their alias:
            // a name (or name prefix) may be shared with another jail.
            let out = self
                .runner
                .run_stdout(&Argv::new(["ip", "-o", "link", "show", "type", "veth"]))?;
            for name in netplan::links_with_alias(&out, &link_alias(&vm.uuid)) {
                // Gone already if its namespace died meanwhile: fine.
                let _ = self.runner.output(
                    &Argv::new(["ip", "link", "del", "dev", name.as_str()]),
                    None,
                );
            }
        }
        if netns_path(&vm.uuid).exists() {
            let ns = netns_name(&vm.uuid);
            if let Err(e) = self
                .runner
                .run(&Argv::new(["ip", "netns", "del", ns.as_str()]))
            {
                errors.push(e.to_string());
            }
        }
        self.remove_cgroups(vm, &mut errors);
        filters.finish(&mut errors);
        let dir = JailDir::new(&self.run_dir, &vm.uuid);
        if dir.dir.exists() {
            // The console log keeper may still flush its last bytes (and
            // re-create console.log) while the directory goes: try again.
            let removed = std::fs::remove_dir_all(&dir.dir).or_else(|_| {
                std::thread::sleep(Duration::from_millis(20));
                std::fs::remove_dir_all(&dir.dir)
            });
            if let Err(e) = removed {
                errors.push(format!("removing {}: {e}", dir.dir.display()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DriverError::Other(format!(
                "{}: teardown incomplete: {}",
                vm.uuid,
                errors.join("; ")
            )))
        }
    }

    /// Removes the jail's cgroup in every hierarchy where the runtime left it.
    fn remove_cgroups(&self, vm: &VmSpec, errors: &mut Vec<String>) {
        let rel = cgroup_path(&vm.uuid);
        let rel = rel.trim_start_matches('/');
        let Ok(entries) = std::fs::read_dir(&self.cgroup_root) else {
            return;
        };
        let mut dirs: Vec<_> = entries.flatten().map(|e| e.path().join(rel)).collect();
        dirs.push(self.cgroup_root.join(rel));
        for d in dirs.into_iter().filter(|d| d.is_dir()) {
            let mut last = None;
            // Tasks of a just-killed jail leave the cgroup a moment later.
            for _ in 0..50 {
                match std::fs::remove_dir(&d) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Some(e) = last {
                errors.push(format!("removing cgroup {}: {e}", d.display()));
            }
        }
    }
}

/// The error of a failed `ip`/`bridge` batch. `ip` reports only through its
/// stderr, so this is the one place that reads it: a refused
/// `vlan_filtering` line ("Operation not supported") and a link name already
/// taken ("File exists") become variants the start loop matches on.
fn batch_failure(argv: Argv, status: i32, stderr: &str, lines: &[String]) -> DriverError {
    let err = ExecError::Failed {
        argv,
        status,
        stderr: format!("{stderr} (batch: {})", lines.join("; ")),
    };
    if stderr.contains("not supported") && lines.iter().any(|l| l.contains("vlan_filtering")) {
        DriverError::NoVlanFiltering(err)
    } else if stderr.contains("File exists") {
        DriverError::LinkExists(err)
    } else {
        DriverError::Exec(err)
    }
}

/// This boot of the kernel (`/proc/sys/kernel/random/boot_id`).
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Polls until the init is gone (or a zombie); false on timeout.
fn wait_dead(rec: &BootRecord, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(500);
    loop {
        if !rec.alive() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn batch_failures_are_typed() {
        let argv = || Argv::new(["ip", "-batch", "-"]);
        let vlan = lines(&[
            "link add br1 type bridge",
            "link set dev br1 type bridge vlan_filtering 1",
        ]);
        let e = batch_failure(
            argv(),
            1,
            "Error: Operation not supported.\nCommand failed -:2",
            &vlan,
        );
        assert!(matches!(e, DriverError::NoVlanFiltering(_)), "{e:?}");
        // The message stays what the user saw before: argv, stderr, lines.
        let text = e.to_string();
        assert!(
            text.contains("ip -batch -") && text.contains("vlan_filtering 1"),
            "{text}"
        );

        let veth = lines(&["link add vm1 type veth peer name net0"]);
        let e = batch_failure(argv(), 2, "RTNETLINK answers: File exists", &veth);
        assert!(matches!(e, DriverError::LinkExists(_)), "{e:?}");

        // "not supported" without a vlan_filtering line is a plain failure.
        let e = batch_failure(argv(), 2, "Error: Operation not supported.", &veth);
        assert!(matches!(e, DriverError::Exec(_)), "{e:?}");
    }
}
