//! `FreeBsdDriver`: the [`Driver`] trait implemented by building a plan and
//! handing it to the runner. All decisions live in the plan builders; this
//! file only wires them to a [`CommandRunner`] and turns failures into
//! [`DriverError`]s that carry the failing argv and its stderr.

use super::plan::Plan;
use super::runner::{PlanFailed, PlanRunner};
use super::sys_files::{HostFs, RealFs};
use super::{antispoof, console, delete, kill, layout, start, state, stop, update};
use crate::config::Config;
use crate::driver::{
    dataset, DatasetChange, Driver, DriverError, DriverResult, Limit, RuntimeState, Signal,
    StopOptions,
};
use crate::exec::{Argv, CommandRunner};
use crate::spec::VmSpec;
use crate::zfs::Zfs;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// The [`Driver`] for FreeBSD hosts: each action is a plan from the plan
/// builders, run step by step through a [`CommandRunner`] (host files
/// through a [`HostFs`]), with the completed steps undone when one fails.
pub struct FreeBsdDriver {
    config: Config,
    runner: Arc<dyn CommandRunner>,
    fs: Arc<dyn HostFs>,
}

fn failed(uuid: &Uuid, what: &'static str, source: Box<PlanFailed>) -> DriverError {
    DriverError::PlanFailed {
        what,
        uuid: *uuid,
        source,
    }
}

impl FreeBsdDriver {
    /// A driver for `config`'s pool, devfs ruleset and bridges, running
    /// commands through `runner` and writing files to the real disk.
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

    fn execute(&self, vm: &VmSpec, what: &'static str, plan: &Plan) -> DriverResult<()> {
        let report = PlanRunner::new(self.runner.as_ref(), self.fs.as_ref())
            .execute(plan)
            .map_err(|e| failed(&vm.uuid, what, e))?;
        for w in report.warnings {
            tracing::debug!(uuid = %vm.uuid, what, warning = %w, "best-effort step failed");
        }
        Ok(())
    }

    fn interactive(&self, argv: &Argv) -> DriverResult<i32> {
        Ok(self.runner.interactive(argv)?)
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
        let plan = start::plan(vm, &self.config)?;
        self.execute(vm, "start of", &plan)
    }

    fn stop(&self, vm: &VmSpec, opts: StopOptions) -> DriverResult<()> {
        let plan = stop::plan(vm, &self.config, &opts)?;
        self.execute(vm, "stop of", &plan)
    }

    fn kill(&self, vm: &VmSpec, signal: Signal) -> DriverResult<()> {
        let plan = kill::kill_plan(vm, signal)?;
        self.execute(vm, "kill of", &plan)
    }

    fn update_dataset(&self, vm: &VmSpec, changes: &[DatasetChange]) -> DriverResult<()> {
        dataset::apply(&Zfs::new(self.runner.as_ref()), vm, changes)
    }

    fn update_live(&self, vm: &VmSpec, limits: &[Limit]) -> DriverResult<Vec<Limit>> {
        let plan = update::plan(vm, limits)?;
        self.execute(vm, "live update of", &plan)?;
        Ok(Vec::new())
    }

    fn update_nics(&self, vm: &VmSpec) -> DriverResult<()> {
        // The rules file of the boot says which port carries which MAC.
        let conf = self.fs.read_file(
            std::path::Path::new(&layout::outer_root(vm)),
            antispoof::PF_CONF,
        )?;
        let ports = match conf {
            Some(text) => antispoof::booted_ports(vm, &text),
            None => antispoof::ports_by_position(vm),
        };
        let plan = antispoof::update_plan(vm, &self.config, &ports)?;
        self.execute(vm, "live NIC update of", &plan)
    }

    fn unenforced(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "nics.*.allow_restricted_traffic",
                "the bridge passes only IPv4, IPv6 and ARP on every port \
                 (net.link.bridge.pfil_onlyip=1); it cannot be lifted for one NIC",
            ),
            (
                "nics.*.allowed_dhcp_cids",
                "pf cannot read DHCP options, so any client identifier may be sent",
            ),
        ]
    }

    fn console(&self, vm: &VmSpec) -> DriverResult<i32> {
        self.interactive(&console::console_argv(vm))
    }

    fn exec(&self, vm: &VmSpec, argv: &[String]) -> DriverResult<i32> {
        let a = console::exec_argv(vm, argv)?;
        self.interactive(&a)
    }

    fn cleanup(&self, vm: &VmSpec) -> DriverResult<()> {
        let plan = delete::cleanup_plan(vm, &self.config)?;
        self.execute(vm, "cleanup of", &plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::runner::tests::MemFs;
    use super::*;
    use crate::exec::{Output, RecordingRunner};
    use serde_json::json;

    fn vm() -> VmSpec {
        let obj = json!({
            "uuid": "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60",
            "brand": "jail",
            "hostname": "web01",
            "image_uuid": "11111111-2222-4333-8444-555555555555",
            "zpool": "zones",
            "resolvers": ["192.0.2.53"],
            "nics": [{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
                      "ips": ["192.0.2.10/24"], "gateways": ["192.0.2.1"], "primary": true}]
        });
        VmSpec::from_object(obj.as_object().unwrap()).unwrap()
    }

    fn ok(stdout: &str) -> Output {
        Output {
            status: 0,
            stdout: stdout.as_bytes().to_vec(),
            stderr: vec![],
        }
    }

    fn setup() -> (Arc<RecordingRunner>, Arc<MemFs>, FreeBsdDriver) {
        let runner = Arc::new(RecordingRunner::new());
        runner.answer(&["sysctl"], ok("1\n"));
        runner.answer(&["ifconfig", "epair", "create"], ok("epair0a\n"));
        runner.answer(&["devfs", "rule"], ok("100 include 4\n"));
        runner.fail(&["jls", "-j"], "jls: jail not found");
        let fs = Arc::new(MemFs::default());
        let mut cfg = Config::default();
        cfg.networks.insert("admin".into(), "bridge0".into());
        let d = FreeBsdDriver::with_fs(&cfg, runner.clone(), fs.clone());
        (runner, fs, d)
    }

    #[test]
    fn start_runs_the_plan_and_writes_resolv_conf() {
        let (runner, fs, d) = setup();
        d.start(&vm()).unwrap();
        let calls: Vec<String> = runner.calls().iter().map(|a| a.to_string()).collect();
        assert!(calls[0].starts_with("jls -j 6b8b4567"));
        assert_eq!(calls[1], "sysctl -n kern.racct.enable");
        assert!(calls.iter().any(|c| c.starts_with("jail -c name=6b8b4567")));
        assert!(calls.last().unwrap().starts_with(
            "jail -c name=6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60.tenant \
             path=/zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60/root"
        ));
        // Every command in the vnet is a host tool, never one from the image.
        for c in calls.iter().filter(|c| c.starts_with("jexec")) {
            assert!(c.contains(" /rescue/"), "{c}");
        }
        let ops = fs.ops.lock().unwrap().clone();
        assert!(ops
            .iter()
            .any(|o| o.contains("root/etc/resolv.conf") && o.contains("192.0.2.53")));
        assert_eq!(
            ops[0],
            "check-zone-root /zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60"
        );
    }

    #[test]
    fn start_refuses_an_existing_jail_without_touching_it() {
        let (runner, _fs, d) = setup();
        runner.answer(&["jls"], ok("3\n"));
        let err = d.start(&vm()).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(runner.calls().len(), 1);
    }

    #[test]
    fn racct_off_is_reported_before_anything_changes() {
        let (runner, _fs, d) = setup();
        runner.answer(&["sysctl"], ok("0\n"));
        let err = d.start(&vm()).unwrap_err().to_string();
        assert!(err.contains("kern.racct.enable=1"), "{err}");
        assert_eq!(runner.calls().len(), 2);
    }

    #[test]
    fn a_failed_start_names_the_command_and_rolls_back() {
        let (runner, _fs, d) = setup();
        runner.fail(
            &["ifconfig", "bridge0", "addm"],
            "ifconfig: BRDGADD: Invalid argument",
        );
        let err = d.start(&vm()).unwrap_err().to_string();
        assert!(err.contains("ifconfig bridge0 addm"), "{err}");
        assert!(err.contains("BRDGADD"), "{err}");
        let calls: Vec<String> = runner.calls().iter().map(|a| a.to_string()).collect();
        let pos = calls.iter().position(|c| c.contains("addm")).unwrap();
        let host = crate::driver::freebsd::host_end(&vm().uuid, 0);
        assert_eq!(calls[pos + 1], format!("ifconfig {host} destroy"));
        assert!(calls[pos + 1..].iter().any(|c| c.starts_with("umount -f")));
        assert!(calls.last().unwrap().starts_with("rctl -r"));
        assert!(!calls.iter().any(|c| c.starts_with("jail -c")));
    }

    #[test]
    fn states_use_one_jls_call() {
        let (runner, _fs, d) = setup();
        assert!(d.states(&[]).unwrap().is_empty());
        assert!(runner.calls().is_empty());
        let u = vm().uuid;
        runner.answer(
            &["jls"],
            ok(&format!(
                r#"{{"__version":"2","jail-information":{{"jail":[
                   {{"jid":"7","name":"{u}","host.hostuuid":"{u}"}},
                   {{"jid":"8","name":"{u}.tenant","host.hostuuid":"{u}"}}]}}}}"#
            )),
        );
        let other = Uuid::new_v4();
        let states = d.states(&[u, other]).unwrap();
        assert_eq!(states[&u].zoneid, Some(8));
        assert!(!states.contains_key(&other));
        assert_eq!(runner.calls().len(), 1);
    }

    #[test]
    fn update_kill_and_cleanup() {
        let (runner, _fs, d) = setup();
        let reboot = d
            .update_live(&vm(), &[Limit::MaxPhysicalMemory, Limit::CpuShares])
            .unwrap();
        assert!(reboot.is_empty());
        assert!(runner
            .calls()
            .iter()
            .any(|a| a.to_string().ends_with(":memoryuse:deny=256M")));
        d.update_dataset(&vm(), &[DatasetChange::Quota(3)]).unwrap();
        assert_eq!(
            runner.calls().last().unwrap().to_string(),
            "zfs set quota=3G zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60"
        );
        let e = d.kill(&vm(), Signal::Pwr).unwrap_err().to_string();
        assert!(
            e.contains("SIGPWR") && e.contains("FreeBSD has no such signal"),
            "{e}"
        );
        d.kill(&vm(), Signal::Usr1).unwrap();
        assert!(runner
            .calls()
            .last()
            .unwrap()
            .to_string()
            .ends_with("pkill -USR1 -j 6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60.tenant"));
        // Cleanup of a stopped VM: everything is already gone, which is fine.
        runner.fail(&["jls"], "jls: jail not found");
        runner.fail(&["rctl"], "No such process");
        runner.fail(&["umount"], "not a file system root directory");
        d.cleanup(&vm()).unwrap();
    }

    #[test]
    fn start_loads_the_vms_anchor_and_a_live_update_replaces_it() {
        let (runner, fs, d) = setup();
        d.start(&vm()).unwrap();
        let calls: Vec<String> = runner.calls().iter().map(|a| a.to_string()).collect();
        let anchor = "vmadm/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60";
        let conf = "/zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60/vmadm-pf.conf";
        let load = format!("pfctl -a {anchor} -f {conf}");
        let host = crate::driver::freebsd::host_end(&vm().uuid, 0);
        let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
        // Rules first, then the port joins the bridge with its MAC pinned.
        assert!(pos(&load) < pos(&format!("ifconfig bridge0 addm {host}")));
        assert!(
            pos(&format!("ifconfig bridge0 static {host} 02:00:00:00:00:01"))
                < pos(&format!("ifconfig {host} up"))
        );
        assert!(calls.contains(&format!("ifconfig bridge0 maxaddr {host} 1")));
        assert!(calls.contains(&"sysctl -n net.link.bridge.pfil_member".to_string()));
        let text = fs.files.lock().unwrap()[conf].clone();
        assert!(text.contains(&format!("# port {host} 02:00:00:00:00:01\n")));
        assert!(text.contains("table <p0v4> const { 0.0.0.0, 192.0.2.10 }"));

        // A live update: the port keeps its NIC (found by MAC), which now
        // may spoof MACs and has a blocked port.
        let n = runner.calls().len();
        let mut v = vm();
        v.nics[0].allow_mac_spoofing = true;
        v.nics[0].blocked_outgoing_ports = vec![25];
        d.update_nics(&v).unwrap();
        let after: Vec<String> = runner.calls()[n..].iter().map(|a| a.to_string()).collect();
        assert_eq!(
            after,
            [
                format!("ifconfig bridge0 maxaddr {host} 0"),
                "sysctl -n net.link.bridge.pfil_onlyip".to_string(),
                "sysctl -n net.link.bridge.pfil_member".to_string(),
                "pfctl -s Running".to_string(),
                load.clone(),
            ]
        );
        let text = fs.files.lock().unwrap()[conf].clone();
        assert!(text.contains("port { 25 }"), "{text}");

        // Stop empties only this VM's anchor.
        d.stop(&vm(), StopOptions::default()).unwrap_or(());
        let flush = format!("pfctl -a {anchor} -F rules");
        assert!(runner.calls().iter().any(|a| a.to_string() == flush));
        // Every pfctl call names this VM's anchor, but the status query.
        for a in runner.calls().iter().filter(|a| a.program() == "pfctl") {
            assert!(
                a.0 == ["pfctl", "-s", "Running"] || a.0[1..3] == ["-a", anchor],
                "{a}"
            );
        }
    }

    #[test]
    fn stop_fails_when_the_jail_survives_removal() {
        let (runner, _fs, d) = setup();
        // jls succeeds: the jail is still listed after `jail -R`.
        runner.answer(&["jls"], ok("3\n"));
        let err = d
            .stop(&vm(), StopOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("still there"), "{err}");
    }

    #[test]
    fn console_and_exec_attach_through_the_runner() {
        let (runner, _fs, d) = setup();
        runner.answer(
            &["jexec"],
            Output {
                status: 42,
                ..Output::default()
            },
        );
        assert_eq!(d.console(&vm()).unwrap(), 42);
        assert_eq!(d.exec(&vm(), &["ls".into(), "-l".into()]).unwrap(), 42);
        let calls = runner.records();
        assert!(calls
            .iter()
            .all(|c| c.kind == crate::exec::CallKind::Interactive));
        assert!(calls[0]
            .argv
            .to_string()
            .ends_with("/usr/bin/login -f root"));
        assert!(calls[1].argv.to_string().ends_with(".tenant ls -l"));
    }
}
