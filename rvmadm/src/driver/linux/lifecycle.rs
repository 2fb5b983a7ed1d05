//! Start, stop, signal and teardown of a jail.
//!
//! A start first checks the zone layout (`<zonepath>/root` a real
//! directory, `data` never a symlink, no tree at the top), then runs a
//! short transaction: network namespace → veths and addresses → bind
//! sources staged (see `binds`) → bundle → runtime `run --detach` → staged
//! sources released → boot record. The boot record is
//! written last, so a jail counts as booted only when every step succeeded;
//! any failure (or a `kill -9` of vmadm part-way) leaves debris that
//! [`LinuxDriver::teardown`] finds by name alone and removes: the runtime
//! container, host veths, the namespace, cgroups, staged bind sources
//! (detached before anything is deleted) and the run directory.

use super::attach_warm::{self, AttachWarmer};
use super::driver::LinuxDriver;
use super::names::{cgroup_path, container_id, link_alias, netns_name, netns_path, JailDir};
use super::netplan::{self, NetPlan, VlanMode};
use super::state::{self, BootRecord};
use super::{binds, bundle, runtime, sys};
use crate::driver::zone_root::ZoneLayoutError;
use crate::driver::{DriverError, DriverResult, Signal, StopOptions};
use crate::exec::{Argv, ExecError};
use crate::spec::fs_policy::{FsPolicy, FsRequest};
use crate::spec::VmSpec;
use std::collections::BTreeSet;
use std::path::PathBuf;
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

    /// The bridges present on the host now (one `ip` process).
    fn list_bridges(&self) -> DriverResult<BTreeSet<String>> {
        let out = self
            .runner
            .run_stdout(&Argv::new(["ip", "-o", "link", "show", "type", "bridge"]))?;
        Ok(netplan::parse_link_names(&out))
    }

    /// The plan for `vm`'s NICs. `bridges` is the host's bridge list when
    /// it was asked for; without it the plan takes every bridge it needs as
    /// present (the usual case, and no process to ask), and a host batch
    /// that fails because one is not sends the start back here with the
    /// list (see [`LinuxDriver::host_batch`]).
    fn plan_network(
        &self,
        vm: &VmSpec,
        mode: VlanMode,
        bridges: Option<&BTreeSet<String>>,
    ) -> DriverResult<NetPlan> {
        let assumed;
        let existing = match bridges {
            Some(b) => b,
            None => {
                assumed = netplan::needed_bridges(vm, &self.networks, mode);
                &assumed
            }
        };
        let plan = netplan::plan(vm, &self.networks, self.create_bridges, existing, mode)
            .map_err(|e| DriverError::Other(format!("{}: {e}", vm.uuid)))?;
        let plan = if super::sys::has_ipv6() {
            plan
        } else {
            plan.without_ipv6()
        };
        for w in &plan.warnings {
            tracing::warn!(uuid = %vm.uuid, "{w}");
        }
        Ok(plan)
    }

    /// Runs the host-side batch of a plan. When the plan only assumed its
    /// bridges and the batch fails, the bridges are listed: all there means
    /// the failure is real and is returned; a missing one is either refused
    /// now (its plan fails: `create_bridges` is off) or put in `listed`, so
    /// that the caller undoes this attempt and plans again with the list.
    fn host_batch(
        &self,
        vm: &VmSpec,
        mode: VlanMode,
        plan: &NetPlan,
        assumed: bool,
        listed: &mut Option<BTreeSet<String>>,
    ) -> DriverResult<()> {
        // A plan that only assumed its bridges first asks for each of them
        // in the same batch: a missing one then stops the batch before it
        // made anything. Found only at the veth's `master`, it would leave a
        // veth the namespace's removal frees asynchronously, and the retry
        // with the bridge made would collide with it ("File exists").
        let probed: Vec<String>;
        let lines = if assumed {
            probed = netplan::needed_bridges(vm, &self.networks, mode)
                .iter()
                .map(|b| format!("link show dev {b}"))
                .chain(plan.host.iter().cloned())
                .collect();
            &probed
        } else {
            &plan.host
        };
        let err = match self.batch(Argv::new(["ip", "-batch", "-"]), lines) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !assumed {
            return Err(err);
        }
        let present = self.list_bridges()?;
        let needed = netplan::needed_bridges(vm, &self.networks, mode);
        if needed.is_subset(&present) {
            return Err(err);
        }
        // Refused here (bridge missing, `create_bridges` off) with the
        // message a listed plan gives.
        netplan::plan(vm, &self.networks, self.create_bridges, &present, mode)
            .map_err(|e| DriverError::Other(format!("{}: {e}", vm.uuid)))?;
        *listed = Some(present);
        Err(err)
    }

    /// Boots a stopped jail; a running one is left alone. A network made
    /// by [`LinuxDriver::prepare_jail`] in this process is used as it is.
    pub(super) fn start_jail(&self, vm: &VmSpec) -> DriverResult<()> {
        let dir = JailDir::new(&self.run_dir, &vm.uuid);
        if state::running(&dir).is_some() {
            return Ok(());
        }
        // Until the runtime has returned (this guard's scope).
        let _warm = self.warm_attach();
        let prepared = self.take_prepared(&vm.uuid);
        let undo_prepared = |e: DriverError| {
            if prepared {
                if let Err(u) = self.teardown(vm, true) {
                    tracing::warn!(uuid = %vm.uuid, error = %u, "undoing a failed start");
                }
            }
            e
        };
        // The runtime boots <zonepath>/root and would follow a symlink
        // there (`root -> /` boots the host's own tree): refuse before
        // anything is made or mounted.
        super::driver::check_zone_layout(&vm.zonepath)
            .map_err(|e| match e {
                ZoneLayoutError::Zonepath { .. } => DriverError::Other(format!(
                    "{}: {e}; is dataset {} mounted?",
                    vm.uuid, vm.zfs_filesystem
                )),
                e => DriverError::Layout(e),
            })
            .map_err(undo_prepared)?;
        if !prepared && self.has_debris(vm, &dir) {
            self.teardown(vm, true)?;
        }
        let host = runtime::probe(&self.runtime, &self.cgroup_root).map_err(undo_prepared)?;
        if !prepared {
            self.boot_network(vm, &dir)?;
        }
        self.run_steps(vm, &dir, host).inspect_err(|_| {
            if let Err(u) = self.teardown(vm, true) {
                tracing::warn!(uuid = %vm.uuid, error = %u, "undoing a failed start");
            }
        })
    }

    /// Makes the jail's network ahead of its start (see
    /// [`crate::driver::Driver::prepare_start`]): what a boot makes before
    /// the runtime runs and that needs no dataset. The next
    /// [`LinuxDriver::start_jail`] in this process uses it; a teardown
    /// (cleanup, a failed start) removes it. Nothing for a jail without NICs
    /// (false).
    pub(super) fn prepare_jail(&self, vm: &VmSpec) -> DriverResult<bool> {
        let dir = JailDir::new(&self.run_dir, &vm.uuid);
        if state::running(&dir).is_some() {
            return Ok(false);
        }
        // Warmed from now on, for the start to come (see attach_warm).
        let warm = self.warm_attach();
        if let Ok(mut w) = self.warming.lock() {
            *w = warm;
        }
        if vm.nics.is_empty() {
            return Ok(false);
        }
        if self.has_debris(vm, &dir) {
            self.teardown(vm, true)?;
        }
        self.boot_network(vm, &dir)?;
        if let Ok(mut p) = self.prepared.lock() {
            p.insert(vm.uuid);
        }
        Ok(true)
    }

    /// The warmer a preparation started, or a new one.
    fn warm_attach(&self) -> Option<AttachWarmer> {
        let kept = self.warming.lock().ok().and_then(|mut w| w.take());
        kept.or_else(|| AttachWarmer::start(&self.cgroup_root, attach_warm::FOR_BOOT))
    }

    /// True (once) when this process prepared `uuid`'s network and no
    /// teardown has removed it since.
    fn take_prepared(&self, uuid: &uuid::Uuid) -> bool {
        self.prepared
            .lock()
            .map(|mut p| p.remove(uuid))
            .unwrap_or(false)
    }

    /// The network steps of a boot, retried where the host allows: a kernel
    /// without bridge VLAN filtering (a bridge per VLAN instead), a host
    /// veth of the previous boot not yet freed, a bridge the plan took as
    /// present that is not. Every failed attempt is torn down; so is the
    /// last, whose error is returned.
    fn boot_network(&self, vm: &VmSpec, dir: &JailDir) -> DriverResult<()> {
        if vm.nics.is_empty() {
            return Ok(());
        }
        let mut attempt = 0;
        let mut mode = self.vlan_mode();
        let has_vlans = vm.nics.iter().any(|n| n.vlan_id > 0);
        let mut bridges: Option<BTreeSet<String>> = None;
        loop {
            let mut listed = None;
            match self.net_steps(vm, dir, mode, bridges.as_ref(), &mut listed) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let undo = self.teardown(vm, true);
                    // A bridge the plan took as present is not: plan again
                    // with the host's list (it creates what is missing).
                    if let (Some(l), true) = (listed, undo.is_ok()) {
                        bridges = Some(l);
                        continue;
                    }
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

    /// The namespace, veths, addresses, routes and anti-spoofing rules.
    fn net_steps(
        &self,
        vm: &VmSpec,
        dir: &JailDir,
        mode: VlanMode,
        bridges: Option<&BTreeSet<String>>,
        listed: &mut Option<BTreeSet<String>>,
    ) -> DriverResult<()> {
        std::fs::create_dir_all(&dir.dir)?;
        let plan = self.plan_network(vm, mode, bridges)?;
        let ns = netns_name(&vm.uuid);
        // nft starts up while the host batch runs and is fed its rules
        // after it; should the batch fail, it is dropped unfed.
        let nft = self.start_filters(vm)?;
        self.host_batch(vm, mode, &plan, bridges.is_none(), listed)?;
        self.batch(Argv::new(["bridge", "-batch", "-"]), &plan.vlan)?;
        // Anti-spoofing rules go on the host ports (they exist now) while
        // the jail side is set up; no tenant process runs yet.
        self.with_filters(vm, dir, nft, || {
            self.batch(
                Argv::new(["ip", "-n", ns.as_str(), "-batch", "-"]),
                &plan.jail,
            )
        })
    }

    /// The bundle, the runtime's `run --detach` and the boot record, once
    /// the network (if any) is in place.
    fn run_steps(&self, vm: &VmSpec, dir: &JailDir, host: bundle::HostCaps) -> DriverResult<()> {
        std::fs::create_dir_all(&dir.dir)?;
        // Staged until the runtime has returned: its mounts name these
        // entries (see `binds`).
        let staged = binds::stage(vm, dir, &self.resolve_filesystems(vm)?)
            .map_err(|e| DriverError::Other(format!("{}: {e}", vm.uuid)))?;
        let ns_path = netns_path(&vm.uuid);
        let joins = (!vm.nics.is_empty()).then_some(ns_path.as_path());
        let spec = bundle::build_spec(vm, dir, joins, host, &staged.sources)
            .map_err(|e| DriverError::Other(e.to_string()))?;
        bundle::write_bundle(vm, dir, &spec)?;
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
        // The jail holds its own copies of the mounts now.
        if let Err(e) = staged.release() {
            tracing::warn!(uuid = %vm.uuid, error = %e, "removing staged bind sources");
        }
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

    /// Every `filesystems` source of `vm` checked again against the
    /// allowlist (the host may have changed since create), as the path it
    /// resolves to now; `binds::stage` opens exactly these paths, so the
    /// runtime mounts what was checked.
    fn resolve_filesystems(&self, vm: &VmSpec) -> DriverResult<Vec<PathBuf>> {
        if vm.filesystems.is_empty() {
            return Ok(Vec::new());
        }
        let zfs = crate::zfs::Zfs::new(self.runner.as_ref());
        let mountpoint = zfs.mountpoint(&vm.zpool).ok();
        let policy = FsPolicy::new(&self.config, mountpoint.as_deref());
        vm.filesystems
            .iter()
            .map(|fs| {
                let req = FsRequest {
                    source: fs.source.clone(),
                    rw: !fs.read_only,
                };
                policy
                    .check(&req)
                    .map_err(|e| DriverError::Other(format!("{}: {e}", vm.uuid)))
            })
            .collect()
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
        // What it removes may be a prepared network: no start may use it.
        self.take_prepared(&vm.uuid);
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
        // Bind sources a dead start staged are detached first: the removal
        // below is recursive and must never reach into a host directory.
        let unstaged = binds::unstage(&dir.binds());
        if let Err(e) = &unstaged {
            errors.push(format!("staged bind sources: {e}"));
        }
        if dir.dir.exists() && unstaged.is_ok() {
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
    use crate::config::Config;
    use crate::exec::{CallKind, CommandRunner, Output, Pipe, RecordingRunner, StreamChild};
    use serde_json::json;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    /// Records every command; the runtime's `run --detach` "boots" by
    /// writing the test's own pid as the init's (alive, so the boot
    /// record holds). `ip -batch -` fails like `ip` does while its lines
    /// name a bridge `missing` that the same batch does not create.
    struct Host {
        rec: RecordingRunner,
        missing: Option<String>,
    }

    impl CommandRunner for Host {
        fn output(&self, argv: &Argv, stdin: Option<&[u8]>) -> Result<Output, ExecError> {
            let out = self.rec.output(argv, stdin)?;
            let text = String::from_utf8_lossy(stdin.unwrap_or_default());
            if let Some(b) = &self.missing {
                let joins = text.contains(&format!("master {b} "))
                    || text.contains(&format!("link show dev {b}\n"));
                let makes = text.contains(&format!("link add name {b} type bridge"));
                if argv.0 == ["ip", "-batch", "-"] && joins && !makes {
                    return Ok(Output {
                        status: 1,
                        stderr: format!("Cannot find device \"{b}\"").into_bytes(),
                        ..Output::default()
                    });
                }
            }
            Ok(out)
        }

        fn stream(&self, argv: &Argv, pipe: Pipe) -> Result<StreamChild<'_>, ExecError> {
            self.rec.stream(argv, pipe)
        }

        fn run_logged(&self, argv: &Argv, keeper: &Argv, log: &Path) -> Result<(), ExecError> {
            self.rec.run_logged(argv, keeper, log)?;
            let at = argv.0.iter().position(|a| a == "--pid-file");
            if let Some(p) = at.and_then(|i| argv.0.get(i + 1)) {
                let _ = std::fs::write(p, std::process::id().to_string());
            }
            Ok(())
        }
    }

    struct Rig {
        driver: LinuxDriver,
        host: Arc<Host>,
        tmp: tempfile::TempDir,
    }

    fn new_rig(create_bridges: bool, missing: Option<&str>) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let runc = tmp.path().join("runc");
        std::fs::write(&runc, "").unwrap();
        let text = format!(
            "pool = \"zones\"\nrun_dir = \"{r}\"\nruntime_root = \"{r}/runc\"\nruntime = \"{rt}\"\ndriver = \"linux\"\ncreate_bridges = {create_bridges}\n[networks]\nadmin = \"br0\"\n",
            r = tmp.path().join("run").display(),
            rt = runc.display(),
        );
        let config = Config::parse(&text).unwrap();
        let host = Arc::new(Host {
            rec: RecordingRunner::new(),
            missing: missing.map(str::to_string),
        });
        let mut driver = LinuxDriver::new(&config, host.clone());
        driver.cgroup_root = tmp.path().join("cgroup");
        Rig { driver, host, tmp }
    }

    fn jail(rig: &Rig, nics: serde_json::Value) -> VmSpec {
        let zonepath: PathBuf = rig.tmp.path().join("zone");
        std::fs::create_dir_all(zonepath.join("root")).unwrap();
        let obj = json!({
            "uuid": "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60",
            "brand": "jail",
            "image_uuid": "11111111-2222-4333-8444-555555555555",
            "zpool": "zones",
            "zonepath": zonepath.to_string_lossy(),
            "nics": nics,
        });
        VmSpec::from_object(obj.as_object().unwrap()).unwrap()
    }

    fn nic() -> serde_json::Value {
        json!([{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
                "ips": ["192.0.2.10/24"], "gateways": ["192.0.2.1"], "primary": true}])
    }

    /// The programs a start ran, with `ip`'s first arguments, sorted (the
    /// jail-side batch and nft run in parallel).
    fn programs(rig: &Rig) -> Vec<String> {
        let mut v: Vec<String> = rig
            .host
            .rec
            .calls()
            .iter()
            .map(|a| {
                let n = if a.program() == "runc" || a.program().ends_with("/runc") {
                    4
                } else {
                    3
                };
                let mut words: Vec<&str> = a.0.iter().take(n).map(String::as_str).collect();
                if words[0].ends_with("/runc") {
                    words[0] = "runc";
                    words.retain(|w| !w.contains('/') && *w != "--root");
                }
                words.join(" ")
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_start_without_nics_runs_the_runtime_alone() {
        let rig = new_rig(false, None);
        let vm = jail(&rig, json!([]));
        rig.driver.start_jail(&vm).unwrap();
        assert_eq!(programs(&rig), ["runc run"]);
        let dir = JailDir::new(&rig.driver.run_dir, &vm.uuid);
        assert_eq!(
            state::running(&dir).map(|r| r.pid),
            Some(std::process::id())
        );
    }

    #[test]
    fn a_start_with_a_nic_runs_two_ip_batches_nft_and_the_runtime() {
        // No `ip link show`: the plan takes the configured bridge as there.
        let rig = new_rig(false, None);
        let vm = jail(&rig, nic());
        rig.driver.start_jail(&vm).unwrap();
        let ns = netns_name(&vm.uuid);
        assert_eq!(
            programs(&rig),
            [
                "ip -batch -".to_string(),
                format!("ip -n {ns}"),
                "nft -f -".to_string(),
                "runc run".to_string()
            ]
        );
    }

    #[test]
    fn a_prepared_network_is_made_once_and_used_by_the_start() {
        let rig = new_rig(false, None);
        let vm = jail(&rig, nic());
        assert!(rig.driver.prepare_jail(&vm).unwrap());
        let ns = netns_name(&vm.uuid);
        let net = [
            "ip -batch -".to_string(),
            format!("ip -n {ns}"),
            "nft -f -".to_string(),
        ];
        assert_eq!(programs(&rig), net);
        // The start runs the runtime alone (the prepared namespace is not
        // debris to tear down).
        rig.driver.start_jail(&vm).unwrap();
        let mut all = net.to_vec();
        all.push("runc run".to_string());
        assert_eq!(programs(&rig), all);
        // Without NICs there is nothing to prepare.
        let bare = jail(&rig, json!([]));
        assert!(!rig.driver.prepare_jail(&bare).unwrap());
    }

    #[test]
    fn a_teardown_forgets_the_preparation() {
        let rig = new_rig(false, None);
        let vm = jail(&rig, nic());
        assert!(rig.driver.prepare_jail(&vm).unwrap());
        rig.driver.teardown(&vm, true).unwrap();
        let before = rig.host.rec.calls().len();
        rig.driver.start_jail(&vm).unwrap();
        let after = rig.host.rec.calls();
        // The start made the network again: both ip batches ran anew.
        let batches = after[before..]
            .iter()
            .filter(|a| a.program() == "ip" && a.0.last().map(String::as_str) == Some("-"))
            .count();
        assert_eq!(batches, 2, "{:?}", &after[before..]);
    }

    #[test]
    fn nft_starts_before_the_host_batch_and_is_fed_only_after_it() {
        // The first host batch fails (bridge missing, then made): its nft
        // is dropped unfed; the second attempt's nft gets the rules.
        let rig = new_rig(true, Some("br0"));
        let vm = jail(&rig, nic());
        rig.driver.start_jail(&vm).unwrap();
        let calls = rig.host.rec.records();
        let order: Vec<&str> = calls
            .iter()
            .filter_map(|c| match c.argv.0.first().map(String::as_str) {
                // (The teardown between the attempts removes the table
                // with a plain nft run of its own.)
                Some("nft") if c.kind == CallKind::Stream(Pipe::Stdin) => Some("nft"),
                Some("ip") if c.argv.0 == ["ip", "-batch", "-"] => Some("host batch"),
                _ => None,
            })
            .collect();
        assert_eq!(order, ["nft", "host batch", "nft", "host batch"]);
        let fed: Vec<String> = calls
            .iter()
            .filter(|c| c.kind == CallKind::Stream(Pipe::Stdin))
            .map(|c| String::from_utf8_lossy(&c.stdin).into_owned())
            .collect();
        assert_eq!(fed[0], "", "the failed attempt's nft loads nothing");
        let table = format!("create table netdev vmadm-{}\n", vm.uuid);
        assert!(fed[1].starts_with(&table), "{}", fed[1]);
        assert!(
            fed[1].contains("ether saddr != 02:00:00:00:00:01 drop"),
            "{}",
            fed[1]
        );
    }

    #[test]
    fn a_missing_bridge_is_listed_then_created_or_refused() {
        // create_bridges: the failed batch is undone, the host's bridges
        // listed, and the second attempt makes the bridge first.
        let rig = new_rig(true, Some("br0"));
        let vm = jail(&rig, nic());
        rig.driver.start_jail(&vm).unwrap();
        let calls = rig.host.rec.records();
        let batches: Vec<String> = calls
            .iter()
            .filter(|c| c.argv.0 == ["ip", "-batch", "-"])
            .map(|c| String::from_utf8_lossy(&c.stdin).into_owned())
            .collect();
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert!(!batches[0].contains("type bridge"), "{}", batches[0]);
        // The assumed bridge is asked for before anything is made, so the
        // failed batch stops before its veth (whose asynchronous removal
        // would collide with the second attempt's).
        assert!(
            batches[0].starts_with("link show dev br0\nnetns add "),
            "{}",
            batches[0]
        );
        assert!(!batches[1].contains("link show"), "{}", batches[1]);
        assert!(batches[1].contains("link add name br0 type bridge"));
        let listings = calls
            .iter()
            .filter(|c| c.argv.0 == ["ip", "-o", "link", "show", "type", "bridge"])
            .count();
        assert_eq!(listings, 1);
        assert!(rig
            .host
            .rec
            .calls()
            .iter()
            .any(|a| a.0.contains(&"run".to_string())));

        // Without create_bridges the start fails with the plan's message
        // and no runtime ever runs.
        let rig = new_rig(false, Some("br0"));
        let vm = jail(&rig, nic());
        let err = rig.driver.start_jail(&vm).unwrap_err().to_string();
        assert!(
            err.contains("bridge \"br0\"") && err.contains("does not exist"),
            "{err}"
        );
        assert!(!rig
            .host
            .rec
            .calls()
            .iter()
            .any(|a| a.0.contains(&"run".to_string())));
    }

    #[test]
    fn a_teardown_detaches_staged_sources_before_removing_the_run_dir() {
        // SAFETY: geteuid has no arguments and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: staging bind sources needs root");
            return;
        }
        let rig = new_rig(false, None);
        let vm = jail(&rig, json!([]));
        let src = std::fs::canonicalize(rig.tmp.path())
            .unwrap()
            .join("host-dir");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("keep"), "host data\n").unwrap();
        let dir = JailDir::new(&rig.driver.run_dir, &vm.uuid);
        std::fs::create_dir_all(&dir.dir).unwrap();
        // A start killed between staging and the runtime's return: nothing
        // released the staged mount.
        std::mem::forget(binds::stage(&vm, &dir, std::slice::from_ref(&src)).unwrap());
        assert!(dir.binds().join("0/keep").exists());
        rig.driver.teardown(&vm, false).unwrap();
        assert!(!dir.dir.exists());
        // The recursive removal never reached the host directory.
        assert_eq!(
            std::fs::read_to_string(src.join("keep")).unwrap(),
            "host data\n"
        );
    }

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
