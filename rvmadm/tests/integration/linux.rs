//! Privileged end-to-end tests of the Linux driver: real runc, real
//! namespaces, cgroups and a real zfs-fuse pool.
//!
//! Every test builds a "lab": a fresh pool (harness `Env`), a busybox image
//! dataset (its tree under `root/`, as SmartOS lays images out), and a
//! private network namespace standing in for the host's. All of the
//! driver's `ip`/`bridge` commands run inside that namespace (a runner
//! that prefixes `nsenter --net=…`), so bridges, veths and addresses never
//! touch the real host network; addresses come only from the documentation
//! ranges. Without root, runc or ZFS the tests report SKIPPED, and fail
//! under `CI=true`.

use crate::harness::{zfs, Env};
use rvmadm::config::Config;
use rvmadm::driver::linux::LinuxDriver;
use rvmadm::driver::{Driver, Limit, Signal, StopOptions};
use rvmadm::exec::{Argv, CommandRunner, ExecError, Output, Pipe, StreamChild, SystemRunner};
use rvmadm::spec::VmSpec;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const BRIDGE: &str = "rvtbr0";
pub(crate) const IMAGE: &str = "11111111-2222-4333-8444-555555555555";
pub(crate) const GATEWAY: &str = "192.0.2.1";

/// The init every test jail runs: exits cleanly on SIGTERM.
pub const INIT: &str =
    "#!/bin/sh\ntrap 'exit 0' TERM\necho booted\nwhile :; do sleep 1000 & wait $!; done\n";

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// True when this host can run the tests; panics under CI when it cannot.
fn require_linux_jails() -> bool {
    let root = unsafe_free_is_root();
    let ok = root && have("runc") && have("ip") && have("nsenter") && have("busybox");
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("linux jail tests need root, runc, iproute2, nsenter and busybox (CI=true): run scripts/install-deps.sh");
        }
        eprintln!("SKIPPED: linux jail tests need root, runc, iproute2, nsenter, busybox");
    }
    ok
}

fn unsafe_free_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs every command inside the lab's "host" network namespace.
struct NsRunner {
    netns: PathBuf,
}

impl NsRunner {
    fn inside(&self, argv: &Argv) -> Argv {
        let mut v = vec![
            "nsenter".to_string(),
            format!("--net={}", self.netns.display()),
            "--".to_string(),
        ];
        v.extend(argv.0.iter().cloned());
        Argv(v)
    }
}

impl CommandRunner for NsRunner {
    fn output(&self, argv: &Argv, stdin: Option<&[u8]>) -> Result<Output, ExecError> {
        SystemRunner.output(&self.inside(argv), stdin)
    }

    /// nft is streamed its rules (started before the host ports exist):
    /// inside the lab's namespace too, never the host's.
    fn stream(&self, argv: &Argv, pipe: Pipe) -> Result<StreamChild<'_>, ExecError> {
        SystemRunner.stream(&self.inside(argv), pipe)
    }
}

static LABS: AtomicU32 = AtomicU32::new(0);

pub struct Lab {
    pub driver: LinuxDriver,
    pub config: Config,
    pub hostns: String,
    pub image: String,
    pub vms: Mutex<Vec<VmSpec>>,
    // Dropped last: the pool (or the plain roots) must outlive the jails.
    pub env: Option<Env>,
    pub scratch: Option<tempfile::TempDir>,
}

fn sh_ok(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a busybox root tree (static binary, applet links, init script).
pub fn busybox_tree(root: &Path, init: &str) {
    for d in [
        "bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "mnt",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    let list = sh_ok(&["busybox", "--list"]);
    for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let link = root.join("bin").join(applet);
        let _ = std::os::unix::fs::symlink("busybox", link);
    }
    let init_path = root.join("sbin/init");
    let _ = std::fs::remove_file(&init_path);
    std::fs::write(&init_path, init).expect("init");
    std::fs::set_permissions(
        &init_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\n").expect("group");
}

impl Lab {
    /// A fresh lab, or None (skipped) when the host cannot run jails.
    pub fn new() -> Option<Lab> {
        Self::with_config("")
    }

    /// A fresh lab whose vmadm.toml also holds `extra` (top-level keys or
    /// tables, placed before `[networks]`).
    pub fn with_config(extra: &str) -> Option<Lab> {
        if !require_linux_jails() {
            return None;
        }
        let env = Env::with_config(&format!(
            "driver = \"linux\"\ncreate_bridges = true\n{extra}\n[networks]\nadmin = \"{BRIDGE}\"\n"
        ))?;
        let config = Config::load_from(&env.config).expect("config");
        let n = LABS.fetch_add(1, Ordering::SeqCst);
        let hostns = format!("rvth{}x{}", std::process::id(), n);
        sh_ok(&["ip", "netns", "add", &hostns]);
        let lab_ns = |args: &[&str]| {
            let mut v = vec!["ip", "-n", hostns.as_str()];
            v.extend_from_slice(args);
            sh_ok(&v);
        };
        lab_ns(&["link", "set", "lo", "up"]);
        lab_ns(&["link", "add", BRIDGE, "type", "bridge"]);
        lab_ns(&["addr", "add", &format!("{GATEWAY}/24"), "dev", BRIDGE]);
        lab_ns(&["link", "set", BRIDGE, "up"]);
        let runner = Arc::new(NsRunner {
            netns: PathBuf::from(format!("/run/netns/{hostns}")),
        });
        let driver =
            LinuxDriver::new(&config, runner).with_log_keeper(crate::harness::bin("vmadm"));
        let image = format!("{}/{IMAGE}", env.pool);
        zfs(&["create", &image]);
        // The SmartOS layout: the jail's tree under root/ of the dataset.
        busybox_tree(&env.mountpoint(&image).join("root"), INIT);
        zfs(&["snapshot", &format!("{image}@final")]);
        Some(Lab {
            driver,
            config,
            hostns,
            image,
            vms: Mutex::new(Vec::new()),
            env: Some(env),
            scratch: None,
        })
    }

    /// A lab whose jail roots are plain directories (no ZFS, quota checks
    /// skipped): for working on the driver while ZFS is unusable on a
    /// development host. Chosen by `RVMADM_TEST_PLAIN_ROOTS=1`; never under CI.
    pub fn new_plain() -> Option<Lab> {
        if !require_linux_jails() {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rvmadm-lx-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path();
        let text = format!(
            "pool = \"nopool\"\nstate_dir = \"{s}\"\nimage_dir = \"{s}\"\nrun_dir = \"{r}\"\nruntime_root = \"{rr}\"\ndriver = \"linux\"\ncreate_bridges = true\n[networks]\nadmin = \"{BRIDGE}\"\n",
            s = root.join("state").display(),
            r = root.join("run").display(),
            rr = root.join("run/runc").display(),
        );
        let config = Config::parse(&text).expect("config");
        let n = LABS.fetch_add(1, Ordering::SeqCst);
        let hostns = format!("rvth{}x{}", std::process::id(), n);
        sh_ok(&["ip", "netns", "add", &hostns]);
        let lab_ns = |args: &[&str]| {
            let mut v = vec!["ip", "-n", hostns.as_str()];
            v.extend_from_slice(args);
            sh_ok(&v);
        };
        lab_ns(&["link", "set", "lo", "up"]);
        lab_ns(&["link", "add", BRIDGE, "type", "bridge"]);
        lab_ns(&["addr", "add", &format!("{GATEWAY}/24"), "dev", BRIDGE]);
        lab_ns(&["link", "set", BRIDGE, "up"]);
        let runner = Arc::new(NsRunner {
            netns: PathBuf::from(format!("/run/netns/{hostns}")),
        });
        let driver =
            LinuxDriver::new(&config, runner).with_log_keeper(crate::harness::bin("vmadm"));
        Some(Lab {
            driver,
            config,
            hostns,
            image: String::new(),
            vms: Mutex::new(Vec::new()),
            env: None,
            scratch: Some(dir),
        })
    }

    /// Clones the image for a new jail and returns its spec.
    pub fn jail(&self, extra: Value) -> VmSpec {
        let uuid = Uuid::new_v4();
        let (pool, zonepath) = match &self.env {
            Some(env) => {
                let ds = format!("{}/{}", env.pool, uuid);
                zfs(&["clone", &format!("{}@final", self.image), &ds]);
                (env.pool.clone(), env.mountpoint(&ds))
            }
            None => {
                let p = self
                    .scratch
                    .as_ref()
                    .expect("plain lab")
                    .path()
                    .join(uuid.to_string());
                busybox_tree(&p.join("root"), INIT);
                ("nopool".to_string(), p)
            }
        };
        let mut obj = json!({
            "uuid": uuid.to_string(),
            "brand": "jail",
            "image_uuid": IMAGE,
            "zpool": pool,
            "zonepath": zonepath.to_string_lossy(),
            "max_physical_memory": 128,
            "tmpfs": 32,
        });
        if let (Some(o), Some(e)) = (obj.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        let vm = VmSpec::from_object(obj.as_object().expect("object")).expect("spec");
        self.vms.lock().expect("lock").push(vm.clone());
        vm
    }

    /// A jail with one NIC on the admin bridge.
    pub fn net_jail(&self, ip: &str, vlan: u16, extra: Value) -> VmSpec {
        let mac = format!(
            "02:00:c0:00:02:{:02x}",
            ip.rsplit('.')
                .next()
                .and_then(|o| o.parse::<u8>().ok())
                .unwrap_or(0)
        );
        let mut obj = json!({
            "nics": [{"interface": "net0", "mac": mac, "nic_tag": "admin",
                      "ips": [format!("{ip}/24")], "gateways": [GATEWAY],
                      "vlan_id": vlan, "primary": true}],
        });
        if let (Some(o), Some(e)) = (obj.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        self.jail(obj)
    }

    /// Runs the real `vmadm` binary in the lab's host namespace.
    pub fn vmadm(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let env = self.env.as_ref().expect("vmadm tests need the ZFS lab");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.hostns))
            .arg("--")
            .arg(crate::harness::bin("vmadm"))
            .args(args)
            .env("VMADM_CONFIG", &env.config)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn vmadm");
        if let Some(mut pipe) = child.stdin.take() {
            use std::io::Write;
            let _ = pipe.write_all(stdin.unwrap_or("").as_bytes());
        }
        child.wait_with_output().expect("wait vmadm")
    }

    /// `vmadm create` from a payload; returns the new VM's spec.
    pub fn vmadm_create(&self, payload: Value) -> VmSpec {
        let out = self.vmadm(&["create"], Some(&payload.to_string()));
        crate::harness::assert_exit(&out, 0);
        let err = String::from_utf8_lossy(&out.stderr);
        let uuid = err
            .split_whitespace()
            .find_map(|w| {
                Uuid::parse_str(w.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != '-')).ok()
            })
            .unwrap_or_else(|| panic!("no uuid in {err}"));
        self.adopt(&uuid.to_string())
    }

    /// Takes a VM made by a plain `vmadm create` into the lab, so that the
    /// lab stops and cleans it up at its end (a test that fails halfway
    /// included); returns its spec.
    pub fn adopt(&self, uuid: &str) -> VmSpec {
        let got = self.vmadm(&["get", uuid], None);
        crate::harness::assert_exit(&got, 0);
        let obj: Value = serde_json::from_slice(&got.stdout).expect("get json");
        let vm = VmSpec::from_object(obj.as_object().expect("object")).expect("spec");
        self.vms.lock().expect("lock").push(vm.clone());
        vm
    }

    pub fn vm_state(&self, vm: &VmSpec) -> String {
        let out = self.vmadm(&["get", &vm.uuid.to_string()], None);
        let obj: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        obj["state"].as_str().unwrap_or("?").to_string()
    }

    /// Runs a shell script inside a running jail, capturing its output.
    pub fn sh(&self, vm: &VmSpec, script: &str) -> std::process::Output {
        Command::new("runc")
            .arg("--root")
            .arg(&self.config.runtime_root)
            .args(["exec", &vm.uuid.to_string(), "/bin/sh", "-c", script])
            .output()
            .expect("runc exec")
    }

    /// Like [`Lab::sh`] but asserts success and returns stdout.
    #[track_caller]
    pub fn sh_ok(&self, vm: &VmSpec, script: &str) -> String {
        let out = self.sh(vm, script);
        assert!(
            out.status.success(),
            "in jail: {script}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command in the lab's host namespace.
    pub fn host(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", self.hostns.as_str()];
        v.extend_from_slice(args);
        let out = Command::new(v[0]).args(&v[1..]).output().expect("spawn");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn start(&self, vm: &VmSpec) {
        if let Err(e) = self.driver.start(vm) {
            let log = std::fs::read_to_string(
                self.config
                    .run_dir
                    .join("linux")
                    .join(vm.uuid.to_string())
                    .join("console.log"),
            )
            .unwrap_or_default();
            panic!("start {}: {e}\nconsole: {log}", vm.uuid);
        }
    }

    pub fn running(&self, vm: &VmSpec) -> bool {
        self.driver
            .states(&[vm.uuid])
            .expect("states")
            .get(&vm.uuid)
            .is_some_and(|s| s.running)
    }

    pub fn stop(&self, vm: &VmSpec) {
        self.driver
            .stop(
                vm,
                StopOptions {
                    force: false,
                    timeout: Duration::from_secs(10),
                },
            )
            .expect("stop");
    }

    /// Everything a jail's boot may leave on the host; empty when clean.
    pub fn leftovers(&self, vm: &VmSpec) -> Vec<String> {
        let u = vm.uuid.to_string();
        let mut out = Vec::new();
        // Host links carry the jail's full uuid as their alias.
        let alias = format!("alias vmadm:{u}");
        // Namespaces die asynchronously; give the kernel a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let links = self.host(&["ip", "-o", "link", "show"]);
            if !links.contains(&alias) {
                break;
            }
            if Instant::now() > deadline {
                out.push(format!("veth with {alias} still present"));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if self
            .host(&["nft", "list", "tables"])
            .contains(&format!("vmadm-{u}"))
        {
            out.push("nft table".into());
        }
        if Path::new(&format!("/run/netns/vmadm-{u}")).exists() {
            out.push("netns".into());
        }
        if self.config.runtime_root.join(&u).exists() {
            out.push("runtime state".into());
        }
        if self.config.run_dir.join("linux").join(&u).exists() {
            out.push("run dir".into());
        }
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let p = e.path().join("rvmadm").join(&u);
                if p.exists() {
                    out.push(format!("cgroup {}", p.display()));
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for l in mounts.lines() {
            if l.contains(&format!("vmadm-{u}")) || l.contains(&format!("linux/{u}")) {
                out.push(format!("mount {l}"));
            }
        }
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let vms = self.vms.lock().map(|v| v.clone()).unwrap_or_default();
        for vm in &vms {
            let _ = self.driver.stop(
                vm,
                StopOptions {
                    force: true,
                    timeout: Duration::from_secs(1),
                },
            );
            let _ = self.driver.cleanup(vm);
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.hostns])
            .status();
    }
}

fn lab() -> Option<Lab> {
    let plain = std::env::var("RVMADM_TEST_PLAIN_ROOTS").as_deref() == Ok("1")
        && std::env::var("CI").as_deref() != Ok("true");
    if plain {
        Lab::new_plain()
    } else {
        Lab::new()
    }
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn network_bridge_vlan_gateway_resolv_hostname() {
    let Some(lab) = lab() else { return };
    let a = lab.net_jail(
        "192.0.2.10",
        0,
        json!({"hostname": "alpha", "resolvers": ["192.0.2.53", "198.51.100.53"], "dns_domain": "example.test"}),
    );
    let b = lab.net_jail("192.0.2.11", 0, json!({"hostname": "bravo"}));
    let c = lab.net_jail("192.0.2.12", 5, json!({"hostname": "charlie"}));
    for vm in [&a, &b, &c] {
        lab.start(vm);
        assert!(lab.running(vm));
    }
    // Same bridge, same (untagged) VLAN: reachable.
    lab.sh_ok(&a, "ping -c 1 -W 2 192.0.2.11");
    lab.sh_ok(&b, "ping -c 1 -W 2 192.0.2.10");
    lab.sh_ok(&a, &format!("ping -c 1 -W 2 {GATEWAY}"));
    // Another VLAN on the same bridge: not reachable either way.
    assert!(!lab.sh(&a, "ping -c 1 -W 1 192.0.2.12").status.success());
    assert!(!lab.sh(&c, "ping -c 1 -W 1 192.0.2.10").status.success());
    // Gateway route, MAC, addresses.
    let routes = lab.sh_ok(&a, "ip route");
    assert!(
        routes.contains(&format!("default via {GATEWAY} dev net0")),
        "{routes}"
    );
    let link = lab.sh_ok(&a, "ip link show net0");
    assert!(link.contains("02:00:c0:00:02:0a"), "{link}");
    // resolv.conf, hostname, hosts.
    let resolv = lab.sh_ok(&a, "cat /etc/resolv.conf");
    assert!(
        resolv.contains("nameserver 192.0.2.53\nnameserver 198.51.100.53"),
        "{resolv}"
    );
    assert!(resolv.contains("search example.test"), "{resolv}");
    assert_eq!(lab.sh_ok(&a, "hostname").trim(), "alpha");
    assert_eq!(lab.sh_ok(&b, "hostname").trim(), "bravo");
    assert!(lab
        .sh_ok(&a, "cat /etc/hosts")
        .contains("192.0.2.10\talpha"));
    // The VLAN jail's host end is an untagged VLAN-5 port of the lab bridge,
    // or (kernel without bridge VLAN filtering) on a bridge of its own.
    let vlans = lab.host(&["bridge", "vlan", "show"]);
    let links = lab.host(&["ip", "-o", "link", "show", "master", &format!("{BRIDGE}v5")]);
    assert!(
        vlans.contains(" 5 PVID") || links.contains(&format!("alias vmadm:{}", c.uuid)),
        "vlans: {vlans}\nlinks: {links}"
    );
    for vm in [&a, &b, &c] {
        lab.stop(vm);
        assert!(!lab.running(vm));
        assert!(lab.leftovers(vm).is_empty(), "{:?}", lab.leftovers(vm));
    }
}

#[test]
fn limits_memory_cpu_lwps_quota() {
    let Some(lab) = lab() else { return };
    let vm = lab.jail(json!({
        "max_physical_memory": 48, "max_swap": 48, "cpu_cap": 20, "max_lwps": 40, "tmpfs": 200
    }));
    if lab.env.is_some() {
        zfs(&["set", "quota=24M", &vm.zfs_filesystem]);
    }
    lab.start(&vm);
    let cg = format!("rvmadm/{}", vm.uuid);
    let read = |ctrl: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/{cg}/{file}"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(read("pids", "pids.max"), "40");

    // Memory: a process holding more than the limit is stopped by it.
    let out = lab.sh(
        &vm,
        "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
    );
    let oom = read("memory", "memory.oom_control");
    assert!(
        !stdout(&out).contains("survived") && !out.status.success(),
        "status {:?} stdout {} stderr {} oom {oom} failcnt {}",
        out.status,
        stdout(&out),
        String::from_utf8_lossy(&out.stderr),
        read("memory", "memory.failcnt")
    );
    assert!(
        oom.contains("oom_kill 1") || read("memory", "memory.failcnt") != "0",
        "{oom}"
    );

    // CPU: a busy loop gets about cpu_cap percent of one CPU.
    lab.sh_ok(
        &vm,
        "(while :; do :; done) >/dev/null 2>&1 & echo $! > /tmp/spin",
    );
    let usage = || read("cpuacct", "cpuacct.usage").parse::<u64>().unwrap_or(0);
    let (u0, t0) = (usage(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let share = (usage() - u0) as f64 / t0.elapsed().as_nanos() as f64;
    lab.sh_ok(&vm, "kill $(cat /tmp/spin)");
    assert!(
        share > 0.02 && share < 0.35,
        "cpu share with cpu_cap=20: {share:.3}"
    );

    // Processes: max_lwps caps the jail's task count.
    let out = lab.sh(
        &vm,
        "for i in $(seq 60); do sleep 2 >/dev/null 2>&1 & done; echo forked",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fork") || err.contains("Resource"),
        "stderr: {err}"
    );
    // The sleeps hold every slot (even `runc exec` cannot join); let them end.
    std::thread::sleep(Duration::from_millis(2500));

    // Disk: writing past the dataset quota fails.
    if lab.env.is_some() {
        let out = lab.sh(
            &vm,
            "dd if=/dev/urandom of=/root/big bs=1M count=64 2>&1; sync",
        );
        let text = stdout(&out);
        assert!(
            text.contains("No space left") || text.contains("quota exceeded"),
            "dd: {text}"
        );
        lab.sh_ok(&vm, "rm -f /root/big");
    }

    // Live update: a new cap lands in the running jail's cgroup.
    let mut vm2 = vm.clone();
    vm2.limits.cpu_cap = Some(50);
    vm2.limits.max_lwps = 77;
    vm2.limits.max_locked_memory = 10;
    let reboot = lab
        .driver
        .update_live(
            &vm2,
            &[Limit::CpuCap, Limit::MaxLwps, Limit::MaxLockedMemory],
        )
        .expect("update");
    assert_eq!(reboot, vec![Limit::MaxLockedMemory]);
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("pids", "pids.max"), "77");
    lab.stop(&vm);
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
}

#[test]
fn isolation_from_host_and_other_jails() {
    let Some(lab) = lab() else { return };
    let a = lab.net_jail("192.0.2.20", 0, json!({"hostname": "iso-a"}));
    let b = lab.net_jail("192.0.2.21", 0, json!({"hostname": "iso-b"}));
    lab.start(&a);
    lab.start(&b);
    let host_name = sh_ok(&["hostname"]);
    lab.sh_ok(&a, "echo secret > /root/a-only");

    // Processes: only the jail's own (init, its sleep, the exec'd shell, ps).
    let ps = lab.sh_ok(&b, "ps -o pid,comm");
    assert!(ps.lines().count() <= 6, "{ps}");
    let me = std::process::id().to_string();
    assert!(!lab
        .sh_ok(&b, "ls /proc")
        .split_whitespace()
        .any(|p| p == me));
    // Interfaces: loopback and its own NIC only.
    let links = lab.sh_ok(&b, "ls /sys/class/net");
    let mut names: Vec<&str> = links.split_whitespace().collect();
    names.sort();
    assert_eq!(names, vec!["lo", "net0"]);
    // Files: the other jail's are nowhere to be found.
    assert!(!lab.sh(&b, "cat /root/a-only").status.success());
    assert!(lab
        .sh_ok(&b, "find / -xdev -name a-only 2>/dev/null")
        .trim()
        .is_empty());
    // No mounting, no modules, no hostname changes.
    assert!(!lab.sh(&b, "mount -t tmpfs none /mnt").status.success());
    assert!(!lab.sh(&b, "mount --bind /bin /mnt").status.success());
    assert!(!lab
        .sh(&b, "echo /tmp/x > /proc/sys/kernel/modprobe")
        .status
        .success());
    assert!(!lab.sh(&b, "insmod /bin/busybox").status.success());
    assert!(!lab.sh(&b, "hostname evil").status.success());
    assert!(!lab
        .sh(&b, "echo evil > /proc/sys/kernel/hostname")
        .status
        .success());
    assert_eq!(sh_ok(&["hostname"]), host_name);
    assert_eq!(lab.sh_ok(&b, "hostname").trim(), "iso-b");
    // Capabilities: no SYS_ADMIN (21), SYS_MODULE (16), NET_ADMIN (12).
    let status = lab.sh_ok(&b, "grep CapEff /proc/self/status");
    let eff = u64::from_str_radix(status.split_whitespace().nth(1).unwrap_or("0"), 16).unwrap();
    for bit in [21, 16, 12] {
        assert_eq!(eff & (1 << bit), 0, "cap bit {bit} in {status}");
    }
    assert!(lab
        .sh_ok(&b, "grep NoNewPrivs /proc/self/status")
        .contains('1'));
    // The seccomp filter is on (mode 2) and refuses new namespaces, which
    // capabilities alone would allow (an unprivileged user namespace).
    assert!(lab
        .sh_ok(&b, "grep Seccomp: /proc/self/status")
        .contains('2'));
    assert!(!lab.sh(&b, "unshare -U true").status.success());
    assert!(!lab.sh(&b, "unshare -n true").status.success());
    // /sys is read-only.
    assert!(!lab
        .sh(&b, "echo 1 > /sys/kernel/mm/ksm/run")
        .status
        .success());
    for vm in [&a, &b] {
        lab.stop(vm);
    }
}

#[test]
fn lifecycle_cycles_state_exec_and_crash_repair() {
    let Some(lab) = lab() else { return };
    let vm = lab.net_jail("192.0.2.30", 0, json!({"hostname": "cycler"}));
    assert!(!lab.running(&vm));
    for round in 0..3 {
        lab.start(&vm);
        // Start of a running jail is a no-op.
        lab.driver.start(&vm).expect("second start");
        let st = lab.driver.states(&[vm.uuid]).expect("states")[&vm.uuid].clone();
        assert!(st.running && st.pid.is_some(), "round {round}: {st:?}");
        let ts = st.boot_timestamp.expect("boot_timestamp");
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
        lab.sh_ok(&vm, &format!("ping -c 1 -W 2 {GATEWAY}"));
        lab.stop(&vm);
        assert!(!lab.running(&vm));
        assert!(
            lab.leftovers(&vm).is_empty(),
            "round {round}: {:?}",
            lab.leftovers(&vm)
        );
    }
    // exec passes the exit status through.
    lab.start(&vm);
    let code = lab
        .driver
        .exec(&vm, &["/bin/sh".into(), "-c".into(), "exit 7".into()])
        .expect("exec");
    assert_eq!(code, 7);
    // kill: a signal to init; SIGKILL makes the jail stopped.
    let pid = lab.driver.states(&[vm.uuid]).expect("states")[&vm.uuid].pid;
    lab.driver.kill(&vm, Signal::Kill).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab.running(&vm) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!lab.running(&vm), "init {pid:?} survived SIGKILL");
    // A dead init shows stopped; the next start repairs and boots.
    lab.start(&vm);
    assert!(lab.running(&vm));
    // Forced stop ("reboot -F" is stop -F + start).
    lab.driver
        .stop(
            &vm,
            StopOptions {
                force: true,
                timeout: Duration::from_secs(1),
            },
        )
        .expect("stop -F");
    lab.start(&vm);
    // A crash between runc and the boot record: the jail is not booted as
    // far as vmadm knows, and cleanup removes every piece of it.
    let dir = lab.config.run_dir.join("linux").join(vm.uuid.to_string());
    std::fs::remove_file(dir.join("boot")).expect("remove boot record");
    assert!(!lab.running(&vm));
    lab.driver.cleanup(&vm).expect("cleanup");
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
    lab.start(&vm);
    assert!(lab.running(&vm));
    lab.stop(&vm);
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
}

#[test]
fn failed_start_undoes_every_step() {
    let Some(lab) = lab() else { return };
    // An init that does not exist: runc fails after the network is built.
    let vm = lab.net_jail("192.0.2.40", 0, json!({"init_name": "/sbin/nonexistent"}));
    let err = lab.driver.start(&vm).expect_err("start must fail");
    assert!(err.to_string().contains("runc"), "{err}");
    assert!(!lab.running(&vm));
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
    // An unmapped nic_tag fails before anything is made, and says what to do.
    let bad = lab.jail(
        json!({"nics": [{"interface": "net0", "mac": "02:00:00:00:00:99",
        "nic_tag": "nowhere", "ips": ["192.0.2.41/24"]}]}),
    );
    let err = lab.driver.start(&bad).expect_err("unknown tag");
    assert!(err.to_string().contains("[networks]"), "{err}");
    assert!(lab.leftovers(&bad).is_empty(), "{:?}", lab.leftovers(&bad));
}

pub(crate) fn e2e_payload(ip: &str, extra: Value) -> Value {
    let mut p = json!({
        "brand": "jail",
        "image_uuid": IMAGE,
        "alias": "e2e",
        "hostname": "e2e-host",
        "max_physical_memory": 64,
        "resolvers": ["192.0.2.53"],
        "nics": [{"nic_tag": "admin", "ips": [format!("{ip}/24")], "gateways": [GATEWAY], "primary": true}]
    });
    if let (Some(o), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    p
}

#[test]
fn vmadm_create_list_exec_stop_reboot_delete() {
    let Some(lab) = Lab::new() else { return };
    let vm = lab.vmadm_create(e2e_payload("192.0.2.60", json!({})));
    let u = vm.uuid.to_string();
    assert_eq!(lab.vm_state(&vm), "running");
    // An image is never made of a running VM: the driver is asked.
    let img_out = lab.env.as_ref().expect("env").root().join("img-out");
    let out = lab.vmadm(
        &[
            "images",
            "create",
            &u,
            "-o",
            img_out.to_str().expect("utf-8 path"),
            "name=x",
            "version=1",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error (VmNotStopped)"), "{err}");
    assert!(!img_out.exists());
    let list = lab.vmadm(&["list", "-p", "-o", "uuid,state"], None);
    crate::harness::assert_exit(&list, 0);
    assert!(
        stdout(&list).contains(&format!("{u}:running")),
        "{}",
        stdout(&list)
    );
    // exec passes stdout and the exit status through.
    let out = lab.vmadm(&["exec", &u, "--", "hostname"], None);
    crate::harness::assert_exit(&out, 0);
    assert_eq!(stdout(&out).trim(), "e2e-host");
    let out = lab.vmadm(&["exec", &u, "--", "sh", "-c", "exit 3"], None);
    assert_eq!(out.status.code(), Some(3));
    let out = lab.vmadm(
        &["exec", &u, "--", "ping", "-c", "1", "-W", "2", GATEWAY],
        None,
    );
    crate::harness::assert_exit(&out, 0);
    // console: a login shell on a real terminal (script(1) plays the user).
    let env = lab.env.as_ref().expect("env");
    let line = format!(
        "nsenter --net=/run/netns/{} -- {} console {u}",
        lab.hostns,
        crate::harness::bin("vmadm").display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("VMADM_CONFIG", &env.config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    if let Some(mut pipe) = child.stdin.take() {
        use std::io::Write;
        let _ = pipe.write_all(b"tty; hostname; exit 5\n");
    }
    let out = child.wait_with_output().expect("console");
    let text = stdout(&out);
    assert!(text.contains("/dev/pts/"), "console output: {text}");
    assert!(text.contains("e2e-host"), "console output: {text}");
    assert_eq!(out.status.code(), Some(5), "console output: {text}");
    // stop / start / reboot / kill
    crate::harness::assert_exit(&lab.vmadm(&["stop", &u, "-t", "5"], None), 0);
    assert_eq!(lab.vm_state(&vm), "stopped");
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
    crate::harness::assert_exit(&lab.vmadm(&["start", &u], None), 0);
    crate::harness::assert_exit(&lab.vmadm(&["start", &u], None), 0);
    let pid1 = lab.driver.states(&[vm.uuid]).expect("states")[&vm.uuid].pid;
    crate::harness::assert_exit(&lab.vmadm(&["reboot", &u], None), 0);
    let pid2 = lab.driver.states(&[vm.uuid]).expect("states")[&vm.uuid].pid;
    assert!(pid2.is_some() && pid1 != pid2, "{pid1:?} {pid2:?}");
    crate::harness::assert_exit(&lab.vmadm(&["kill", "-s", "KILL", &u], None), 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab.vm_state(&vm) == "running" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lab.vm_state(&vm), "stopped");
    crate::harness::assert_exit(&lab.vmadm(&["start", &u], None), 0);
    crate::harness::assert_exit(&lab.vmadm(&["delete", &u], None), 0);
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
    assert!(!lab
        .env
        .as_ref()
        .expect("env")
        .datasets()
        .iter()
        .any(|d| d.contains(&u)));
}

#[test]
fn kill_dash_nine_mid_start_then_start_and_delete_leak_nothing() {
    let Some(lab) = Lab::new() else { return };
    let vm = lab.vmadm_create(e2e_payload("192.0.2.70", json!({"autoboot": false})));
    let u = vm.uuid.to_string();
    assert_eq!(lab.vm_state(&vm), "stopped");
    let env = lab.env.as_ref().expect("env");
    let mut debris_seen = 0;
    for delay_ms in [2u64, 5, 10, 15, 20, 30, 40, 50, 65, 80, 100, 130] {
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.hostns))
            .arg("--")
            .arg(crate::harness::bin("vmadm"))
            .args(["start", &u])
            .env("VMADM_CONFIG", &env.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn vmadm start");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // What the dead start left (if it got that far) is repaired below.
        let rundir = lab.config.run_dir.join("linux").join(&u);
        if rundir.exists() || Path::new(&format!("/run/netns/vmadm-{u}")).exists() {
            debris_seen += 1;
        }
        let out = lab.vmadm(&["start", &u], None);
        crate::harness::assert_exit(&out, 0);
        assert_eq!(lab.vm_state(&vm), "running", "after kill at {delay_ms} ms");
        lab.sh_ok(&vm, &format!("ping -c 1 -W 2 {GATEWAY}"));
        crate::harness::assert_exit(&lab.vmadm(&["stop", &u, "-F"], None), 0);
        assert!(
            lab.leftovers(&vm).is_empty(),
            "after kill at {delay_ms} ms: {:?}",
            lab.leftovers(&vm)
        );
    }
    // At least one kill must have landed inside the driver's start, or the
    // test proved nothing.
    assert!(
        debris_seen > 0,
        "no kill interrupted a start; widen the delays"
    );
    crate::harness::assert_exit(&lab.vmadm(&["start", &u], None), 0);
    crate::harness::assert_exit(&lab.vmadm(&["delete", &u], None), 0);
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
}

/// A create with autoboot makes the jail's network while zfs clones; a
/// clone that fails (the image is not installed) takes that network with
/// it: no namespace, veth, nft table or run directory is left.
#[test]
fn a_failed_clone_takes_the_network_prepared_meanwhile_with_it() {
    let Some(lab) = Lab::new() else { return };
    let uuid = Uuid::new_v4();
    let pool = lab.env.as_ref().expect("env").pool.clone();
    let payload = e2e_payload(
        "192.0.2.71",
        json!({"uuid": uuid.to_string(), "image_uuid": Uuid::new_v4().to_string(),
               "autoboot": true}),
    );
    let out = lab.vmadm(&["create"], Some(&payload.to_string()));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not installed"), "{err}");
    // `leftovers` looks for what is named after the uuid.
    let mut obj = payload.as_object().expect("object").clone();
    obj.insert("zpool".into(), json!(pool));
    obj.remove("nics");
    let vm = VmSpec::from_object(&obj).expect("spec");
    assert_eq!(lab.leftovers(&vm), Vec::<String>::new());
    let got = lab.vmadm(&["get", &uuid.to_string()], None);
    assert!(!got.status.success(), "no record is left either");
}

#[test]
fn vmadm_autoboot_starts_only_autoboot_jails() {
    let Some(lab) = Lab::new() else { return };
    let a = lab.vmadm_create(e2e_payload("192.0.2.80", json!({"alias": "boot-a"})));
    let b = lab.vmadm_create(e2e_payload("192.0.2.81", json!({"alias": "boot-b"})));
    let c = lab.vmadm_create(e2e_payload(
        "192.0.2.82",
        json!({"alias": "manual", "autoboot": false}),
    ));
    // A host reboot: every jail gone, records untouched.
    for vm in [&a, &b] {
        lab.driver
            .stop(
                vm,
                StopOptions {
                    force: true,
                    timeout: Duration::from_secs(1),
                },
            )
            .expect("stop");
        assert_eq!(lab.vm_state(vm), "stopped");
    }
    let out = lab.vmadm(&["autoboot"], None);
    crate::harness::assert_exit(&out, 0);
    assert_eq!(lab.vm_state(&a), "running");
    assert_eq!(lab.vm_state(&b), "running");
    assert_eq!(lab.vm_state(&c), "stopped");
    // A jail that cannot boot fails alone: break b's root, reboot the host.
    for vm in [&a, &b] {
        lab.driver
            .stop(
                vm,
                StopOptions {
                    force: true,
                    timeout: Duration::from_secs(1),
                },
            )
            .expect("stop");
    }
    std::fs::remove_file(b.zonepath.join("root/sbin/init")).expect("break init");
    let out = lab.vmadm(&["autoboot"], None);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a failed jail must show in the exit code"
    );
    assert_eq!(lab.vm_state(&a), "running");
    assert_eq!(lab.vm_state(&b), "stopped");
    assert!(lab.leftovers(&b).is_empty(), "{:?}", lab.leftovers(&b));
    for vm in [&a, &b, &c] {
        crate::harness::assert_exit(&lab.vmadm(&["delete", &vm.uuid.to_string()], None), 0);
    }
}

#[test]
fn stop_right_after_start_reaches_a_slow_init() {
    let Some(lab) = lab() else { return };
    // An init that installs its SIGTERM handler only after a second: a
    // single SIGTERM sent right after start would be dropped by the kernel.
    let vm = lab.jail(json!({"init_name": "/sbin/slowinit"}));
    let script = "#!/bin/sh\nsleep 1\ntrap 'exit 0' TERM\nwhile :; do sleep 1000 & wait $!; done\n";
    let path = vm.zonepath.join("root/sbin/slowinit");
    std::fs::write(&path, script).expect("slowinit");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    lab.start(&vm);
    let t = Instant::now();
    lab.driver
        .stop(
            &vm,
            StopOptions {
                force: false,
                timeout: Duration::from_secs(60),
            },
        )
        .expect("stop");
    assert!(!lab.running(&vm));
    // Well inside the grace period: the init got a later SIGTERM and exited.
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
}

/// The most locked memory (MiB) vmadm can give a jail here: `None` when
/// its hard RLIMIT_MEMLOCK is unlimited or it holds CAP_SYS_RESOURCE (the
/// runtime then raises the jail's limit to whatever is asked).
fn memlock_bound() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .expect("CapEff");
    if caps & (1 << 24) != 0 {
        return None;
    }
    let out = Command::new("sh")
        .args(["-c", "ulimit -Hl"])
        .output()
        .expect("sh");
    let hard = String::from_utf8_lossy(&out.stdout).trim().to_string();
    hard.parse::<u64>().ok().map(|kib| kib / 1024)
}

#[test]
fn max_locked_memory_is_given_as_asked_or_refused_up_front() {
    let Some(lab) = Lab::new() else { return };
    let list = || {
        let out = lab.vmadm(&["list", "-H", "-o", "uuid"], None);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let Some(bound) = memlock_bound() else {
        // The SmartOS case: the jail gets what was asked, above vmadm's
        // own hard limit too.
        let vm = lab.vmadm_create(e2e_payload(
            "192.0.2.64",
            json!({"max_physical_memory": 1024, "max_locked_memory": 600}),
        ));
        assert_eq!(lab.sh_ok(&vm, "ulimit -l").trim(), (600 * 1024).to_string());
        return;
    };
    // More than this vmadm can hand out, asked for: refused before
    // anything is made, and the message says why and what to do.
    let ask = bound + 1;
    let payload = e2e_payload(
        "192.0.2.64",
        json!({"max_physical_memory": 1024, "max_locked_memory": ask}),
    );
    let out = lab.vmadm(&["create"], Some(&payload.to_string()));
    crate::harness::assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("max_locked_memory {ask} is above the {bound}"))
            && err.contains("CAP_SYS_RESOURCE"),
        "{err}"
    );
    assert_eq!(list(), 0, "a refused create left a VM");
    // `vmadm validate` says the same.
    let out = lab.vmadm(&["validate", "create"], Some(&payload.to_string()));
    crate::harness::assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_locked_memory") && err.contains("CAP_SYS_RESOURCE"),
        "{err}"
    );
    let fits = e2e_payload("192.0.2.64", json!({"max_locked_memory": bound}));
    let out = lab.vmadm(&["validate", "create"], Some(&fits.to_string()));
    crate::harness::assert_exit(&out, 0);
    // Left to its default (max_physical_memory), it is lowered and said so.
    let out = lab.vmadm(
        &["create"],
        Some(&e2e_payload("192.0.2.64", json!({})).to_string()),
    );
    crate::harness::assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("max_locked_memory 64 is above the {bound}"))
            && err.contains(&format!("the VM gets {bound}")),
        "{err}"
    );
    let uuid = err
        .split_whitespace()
        .find_map(|w| uuid::Uuid::parse_str(w).ok())
        .expect("uuid")
        .to_string();
    // Booted (autoboot): the lab stops it at the end, as it does its own.
    lab.adopt(&uuid);
    // An update asking for more is refused and changes nothing; the
    // bound itself is taken.
    let upd = json!({"max_locked_memory": ask}).to_string();
    let out = lab.vmadm(&["update", &uuid], Some(&upd));
    crate::harness::assert_exit(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("CAP_SYS_RESOURCE"));
    let get = || {
        let out = lab.vmadm(&["get", &uuid], None);
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        v["max_locked_memory"].clone()
    };
    assert_eq!(get(), json!(64));
    let upd = json!({"max_locked_memory": bound}).to_string();
    crate::harness::assert_exit(&lab.vmadm(&["update", &uuid], Some(&upd)), 0);
    assert_eq!(get(), json!(bound));
}

/// `delegate_dataset`: the jail sees `<zfs_filesystem>/data` at
/// `/<zfs_filesystem>/data`, where SmartOS shows a zone its delegated
/// dataset, writable both ways, and what it writes there is in the dataset
/// on the host (not in the jail's root), across a restart.
#[test]
fn the_delegated_dataset_is_visible_and_writable_in_the_jail() {
    let Some(lab) = Lab::new() else { return };
    let vm = lab.vmadm_create(e2e_payload("192.0.2.62", json!({"delegate_dataset": true})));
    let u = vm.uuid.to_string();
    assert_eq!(lab.vm_state(&vm), "running");
    let env = lab.env.as_ref().expect("env");
    let dataset = format!("{}/data", vm.zfs_filesystem);
    let on_host = env.mountpoint(&dataset);
    let inside = format!("/{dataset}");
    let write = format!("echo from-the-jail > {inside}/note && cat {inside}/note");
    let out = lab.vmadm(&["exec", &u, "--", "sh", "-c", &write], None);
    crate::harness::assert_exit(&out, 0);
    assert_eq!(stdout(&out), "from-the-jail\n");
    assert_eq!(
        std::fs::read_to_string(on_host.join("note")).expect("the host sees the jail's file"),
        "from-the-jail\n"
    );
    // Only in the dataset: the jail's root holds the mount point alone.
    let in_root = vm
        .zonepath
        .join("root")
        .join(inside.trim_start_matches('/'));
    assert!(!in_root.join("note").exists());
    std::fs::write(on_host.join("from-host"), "host\n").expect("host write");
    crate::harness::assert_exit(&lab.vmadm(&["stop", &u, "-t", "5"], None), 0);
    crate::harness::assert_exit(&lab.vmadm(&["start", &u], None), 0);
    let out = lab.vmadm(
        &[
            "exec",
            &u,
            "--",
            "cat",
            &format!("{inside}/note"),
            &format!("{inside}/from-host"),
        ],
        None,
    );
    crate::harness::assert_exit(&out, 0);
    assert_eq!(stdout(&out), "from-the-jail\nhost\n");
    crate::harness::assert_exit(&lab.vmadm(&["delete", &u], None), 0);
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
}
