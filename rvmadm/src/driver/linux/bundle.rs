//! The OCI bundle of a jail: `config.json` built with the `oci-spec` crate,
//! plus the small files (resolv.conf, hosts, hostname) bind-mounted into it.
//!
//! The rootfs is `<zonepath>/root` of the jail's ZFS clone, as a SmartOS
//! zone's root is (the start checked that it is a real directory). The
//! bundle keeps the jail a "system container": its own pid, mount, ipc, uts
//! and cgroup namespaces, the network namespace vmadm prepared (joined by
//! path), read-only /sys, masked kernel knobs, a reduced capability set
//! without `CAP_SYS_ADMIN`, `CAP_SYS_MODULE` or `CAP_NET_ADMIN`, and
//! no_new_privileges. Limits come from the spec in SmartOS units and are
//! converted here: cgroup limits, `max_locked_memory` as `RLIMIT_MEMLOCK`,
//! and the System V limits as sysctls of the jail's own IPC namespace.

use super::names::{cgroup_path, JailDir};
use crate::driver::zone_root;
use crate::spec::{Limits, VmSpec};
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

const MIB: i64 = 1024 * 1024;

/// CFS period used for `cpu_cap` (100 ms, the kernel default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// What the host can enforce, probed once per start (see `runtime::probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCaps {
    /// The memory controller accounts swap (`memory.memsw.*` / `memory.swap.max`).
    pub swap_accounting: bool,
    /// The most `RLIMIT_MEMLOCK` the runtime can set (`None`: no bound,
    /// vmadm's hard limit is unlimited or it holds CAP_SYS_RESOURCE; see
    /// `sys::memlock_ceiling`).
    pub memlock_hard: Option<u64>,
}

impl Default for HostCaps {
    fn default() -> Self {
        HostCaps {
            swap_accounting: true,
            memlock_hard: None,
        }
    }
}

/// Semaphore limits of a fresh IPC namespace (`kernel.sem`: SEMMSL,
/// SEMMNS, SEMOPM), kept as they are; only SEMMNI follows `max_sem_ids`.
const SEM_DEFAULTS: &str = "32000 1024000000 500";

/// The kernel's ceiling for `kernel.shmmni`/`msgmni`/SEMMNI (IPCMNI).
const IPC_IDS_MAX: u64 = 32_768;

/// `RLIMIT_MEMLOCK` for the jail in bytes: `max_locked_memory`, never
/// above what the host lets vmadm hand out (lower is still enforced; the
/// jail gets the stricter of the two).
pub fn memlock_bytes(limits: &Limits, host: HostCaps) -> u64 {
    let want = limits.max_locked_memory.saturating_mul(MIB as u64);
    host.memlock_hard.map_or(want, |h| want.min(h))
}

/// The System V IPC limits as sysctls of the jail's own IPC namespace:
/// `max_shm_memory` (MiB) as the total and per-segment shared memory,
/// `max_shm_ids`, `max_msg_ids` and `max_sem_ids` as the id counts.
pub fn ipc_sysctls(limits: &Limits, page_size: u64) -> HashMap<String, String> {
    let shm = limits.max_shm_memory.saturating_mul(MIB as u64);
    let ids = |n: u64| n.min(IPC_IDS_MAX).to_string();
    [
        ("kernel.shmmax", shm.to_string()),
        ("kernel.shmall", (shm / page_size.max(1)).to_string()),
        ("kernel.shmmni", ids(limits.max_shm_ids)),
        ("kernel.msgmni", ids(limits.max_msg_ids)),
        (
            "kernel.sem",
            format!("{SEM_DEFAULTS} {}", ids(limits.max_sem_ids)),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the OCI spec for {uuid}: {message}")]
pub struct BundleError {
    pub uuid: uuid::Uuid,
    pub message: String,
}

/// The capabilities a jail's root keeps. Roughly what container engines give
/// by default (ping needs NET_RAW); notably absent: SYS_ADMIN (mount,
/// sethostname), SYS_MODULE, NET_ADMIN, SYS_TIME, SYS_PTRACE, SYS_RAWIO.
pub fn jail_capabilities() -> HashSet<Capability> {
    [
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fowner,
        Capability::Fsetid,
        Capability::Kill,
        Capability::Setgid,
        Capability::Setuid,
        Capability::Setpcap,
        Capability::NetBindService,
        Capability::NetRaw,
        Capability::SysChroot,
        Capability::Mknod,
        Capability::AuditWrite,
        Capability::Setfcap,
    ]
    .into_iter()
    .collect()
}

/// The init command line: `init_name` (default `/sbin/init`). A value with
/// spaces is split on whitespace so `"/bin/sh /etc/rc"` works as expected.
pub fn init_args(vm: &VmSpec) -> Vec<String> {
    let name = vm
        .init_name
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("/sbin/init");
    name.split_whitespace().map(str::to_string).collect()
}

/// Resources for the runtime from SmartOS limits (MiB, percent of one CPU,
/// shares relative to 100, lwps).
pub fn resources(limits: &Limits, host: HostCaps) -> Result<LinuxResources, String> {
    let err = |e: oci_spec::OciSpecError| e.to_string();
    let mem_bytes = (limits.max_physical_memory as i64).saturating_mul(MIB);
    let mut memory = LinuxMemoryBuilder::default().limit(mem_bytes);
    if host.swap_accounting {
        // SmartOS max_swap is memory + swap, like the runtime's memory-swap
        // limit; never below the memory limit (the kernel refuses that).
        let swap = (limits.max_swap.max(limits.max_physical_memory) as i64).saturating_mul(MIB);
        memory = memory.swap(swap);
    }
    let mut cpu = LinuxCpuBuilder::default().shares(cpu_shares(limits.cpu_shares));
    if let Some(cap) = limits.cpu_cap.filter(|c| *c > 0) {
        cpu = cpu.quota(cpu_quota(cap)).period(CPU_PERIOD_US);
    }
    LinuxResourcesBuilder::default()
        .memory(memory.build().map_err(err)?)
        .cpu(cpu.build().map_err(err)?)
        .pids(
            LinuxPidsBuilder::default()
                .limit(limits.max_lwps.min(i64::MAX as u64) as i64)
                .build()
                .map_err(err)?,
        )
        .devices(vec![])
        .build()
        .map_err(err)
}

/// cpu_cap (percent of one CPU) → CFS quota in µs per [`CPU_PERIOD_US`].
pub fn cpu_quota(cap: u64) -> i64 {
    (cap.saturating_mul(CPU_PERIOD_US) / 100).min(i64::MAX as u64) as i64
}

/// SmartOS shares (default 100) → cgroup v1 cpu.shares (default 1024).
pub fn cpu_shares(shares: u64) -> u64 {
    (shares.saturating_mul(1024) / 100).clamp(2, 262_144)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, String> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| e.to_string())
}

/// Where the runtime takes the host side of a jail's bind mounts from
/// (see `binds`: descriptors vmadm opened, named through /proc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindSources {
    /// The source of each `filesystems` entry, in the spec's order.
    pub filesystems: Vec<String>,
    /// The delegated dataset: its source and its path inside the jail.
    pub data: Option<(String, String)>,
}

/// The file systems every jail gets. `/etc/resolv.conf`, `/etc/hosts` and
/// `/etc/hostname` are bind mounts of files in the bundle so the runtime
/// (which resolves targets safely inside the rootfs) places them, and no
/// host-side write ever follows a symlink planted in the jail's /etc.
/// `binds` gives the host sources of the `filesystems` entries and of the
/// delegated dataset.
pub fn mounts(vm: &VmSpec, dir: &JailDir, binds: &BindSources) -> Result<Vec<Mount>, String> {
    let mut m = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
    ];
    if vm.limits.tmpfs > 0 {
        let size = format!("size={}m", vm.limits.tmpfs);
        m.push(mount(
            "/tmp",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "mode=1777", &size],
        )?);
    }
    // The delegated dataset, writable, where SmartOS shows it in the zone.
    // Unlike a zone, the jail gets its files only: no `zfs` command works on
    // it from inside (zfs-fuse cannot delegate a dataset to a container).
    if let Some((source, target)) = &binds.data {
        m.push(mount(
            target,
            "bind",
            source,
            &["rbind", "rprivate", "nosuid", "nodev"],
        )?);
    }
    // Host directories from `filesystems` (SmartOS lofs): bind mounts, which
    // the runtime places inside the rootfs without following jail symlinks.
    // The sources were checked against the allowlist and opened by the
    // start (`binds`); read-only unless the entry asked for rw and was
    // allowed it.
    if binds.filesystems.len() != vm.filesystems.len() {
        return Err(format!(
            "{} filesystems entries but {} opened sources",
            vm.filesystems.len(),
            binds.filesystems.len()
        ));
    }
    for (fs, source) in vm.filesystems.iter().zip(&binds.filesystems) {
        if !matches!(fs.kind.as_str(), "lofs" | "bind") || !fs.target.starts_with('/') {
            return Err(format!(
                "filesystem {} -> {}: only lofs/bind mounts to absolute targets are supported",
                fs.source, fs.target
            ));
        }
        let mut opts = vec!["rbind", "rprivate", "nosuid", "nodev"];
        if fs.read_only {
            opts.push("ro");
        }
        m.push(mount(&fs.target, "bind", source, &opts)?);
    }
    // Read-only: the files live in the host's run directory, so a writable
    // bind would let the jail fill it.
    for (dest, file) in [
        ("/etc/resolv.conf", dir.resolv_conf()),
        ("/etc/hosts", dir.hosts()),
        ("/etc/hostname", dir.hostname()),
    ] {
        let src = file.to_string_lossy().into_owned();
        m.push(mount(
            dest,
            "bind",
            &src,
            &["rbind", "rprivate", "nosuid", "nodev", "noexec", "ro"],
        )?);
    }
    Ok(m)
}

/// Paths hidden from the jail (bind of /dev/null or an empty tmpfs).
pub fn masked_paths() -> Vec<String> {
    [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Kernel knobs the jail may read but not write.
pub fn readonly_paths() -> Vec<String> {
    [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The complete runtime spec for a jail. `netns` is the namespace vmadm
/// prepared for its NICs; without one (no NICs) the runtime makes a fresh
/// namespace that holds only loopback. `binds` names the bind mounts'
/// host sources.
pub fn build_spec(
    vm: &VmSpec,
    dir: &JailDir,
    netns: Option<&Path>,
    host: HostCaps,
    binds: &BindSources,
) -> Result<Spec, BundleError> {
    build_spec_inner(vm, dir, netns, host, binds).map_err(|message| BundleError {
        uuid: vm.uuid,
        message,
    })
}

fn build_spec_inner(
    vm: &VmSpec,
    dir: &JailDir,
    netns: Option<&Path>,
    host: HostCaps,
    binds: &BindSources,
) -> Result<Spec, String> {
    let err = |e: oci_spec::OciSpecError| e.to_string();
    let caps = jail_capabilities();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(err)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(err)?,
        )
        .args(init_args(vm))
        .env(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "TERM=xterm".to_string(),
            "container=rvmadm".to_string(),
        ])
        .cwd("/")
        .capabilities(capabilities)
        .no_new_privileges(true)
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(1024u64)
                .soft(1024u64)
                .build()
                .map_err(err)?,
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitMemlock)
                .hard(memlock_bytes(&vm.limits, host))
                .soft(memlock_bytes(&vm.limits, host))
                .build()
                .map_err(err)?,
        ])
        .build()
        .map_err(err)?;
    let ns = |typ: LinuxNamespaceType| LinuxNamespaceBuilder::default().typ(typ).build();
    let namespaces = vec![
        ns(LinuxNamespaceType::Pid).map_err(err)?,
        ns(LinuxNamespaceType::Ipc).map_err(err)?,
        ns(LinuxNamespaceType::Uts).map_err(err)?,
        ns(LinuxNamespaceType::Mount).map_err(err)?,
        ns(LinuxNamespaceType::Cgroup).map_err(err)?,
        match netns {
            Some(path) => LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.to_path_buf())
                .build()
                .map_err(err)?,
            None => ns(LinuxNamespaceType::Network).map_err(err)?,
        },
    ];
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources(&vm.limits, host)?)
        .cgroups_path(PathBuf::from(cgroup_path(&vm.uuid)))
        .masked_paths(masked_paths())
        .readonly_paths(readonly_paths())
        .seccomp(super::seccomp::profile()?)
        .sysctl(ipc_sysctls(&vm.limits, super::sys::page_size()))
        .rootfs_propagation("rprivate")
        .build()
        .map_err(err)?;
    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(zone_root::zone_root(&vm.zonepath))
                .readonly(false)
                .build()
                .map_err(err)?,
        )
        .hostname(vm.effective_hostname())
        .process(process)
        .mounts(mounts(vm, dir, binds)?)
        .linux(linux)
        .build()
        .map_err(err)
}

/// `/etc/resolv.conf` for the jail: one nameserver per resolver, the
/// dns_domain as search domain.
pub fn resolv_conf(vm: &VmSpec) -> String {
    let mut s = String::new();
    if !vm.dns_domain.is_empty() && vm.dns_domain != "local" {
        s.push_str(&format!("search {}\n", vm.dns_domain));
    }
    for r in &vm.resolvers {
        s.push_str(&format!("nameserver {r}\n"));
    }
    s
}

/// `/etc/hosts`: loopback plus the hostname on every static address.
pub fn hosts(vm: &VmSpec) -> String {
    let name = vm.effective_hostname();
    let mut s = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string();
    let mut any = false;
    for nic in &vm.nics {
        for ip in &nic.ips {
            if let crate::spec::NicAddr::Static { addr, .. } = ip {
                s.push_str(&format!("{addr}\t{name}\n"));
                any = true;
            }
        }
    }
    if !any {
        s.push_str(&format!("127.0.1.1\t{name}\n"));
    }
    s
}

/// Writes the bundle directory: config.json and the bind-mounted files.
pub fn write_bundle(vm: &VmSpec, dir: &JailDir, spec: &Spec) -> std::io::Result<()> {
    std::fs::create_dir_all(&dir.dir)?;
    std::fs::write(dir.resolv_conf(), resolv_conf(vm))?;
    std::fs::write(dir.hosts(), hosts(vm))?;
    std::fs::write(dir.hostname(), format!("{}\n", vm.effective_hostname()))?;
    let json = serde_json::to_vec_pretty(spec).map_err(std::io::Error::other)?;
    std::fs::write(dir.config_json(), json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn vm(extra: Value) -> VmSpec {
        let mut obj = json!({
            "uuid": "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60",
            "brand": "jail",
            "image_uuid": "11111111-2222-4333-8444-555555555555",
            "zpool": "zones",
            "hostname": "web1",
            "max_physical_memory": 512,
            "max_swap": 1024,
            "cpu_cap": 50,
            "max_lwps": 300,
            "tmpfs": 64,
            "resolvers": ["192.0.2.53", "192.0.2.54"],
            "dns_domain": "example.com",
            "nics": [{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
                      "ips": ["192.0.2.10/24"], "gateways": ["192.0.2.1"], "primary": true}]
        });
        if let (Some(o), Some(e)) = (obj.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        VmSpec::from_object(obj.as_object().unwrap()).unwrap()
    }

    /// The sources a start would pin, named by their paths.
    fn sources(vm: &VmSpec) -> BindSources {
        BindSources {
            filesystems: vm.filesystems.iter().map(|f| f.source.clone()).collect(),
            data: None,
        }
    }

    fn spec_json(vm: &VmSpec) -> Value {
        spec_json_with(vm, &sources(vm))
    }

    fn spec_json_with(vm: &VmSpec, binds: &BindSources) -> Value {
        let dir = JailDir::new(Path::new("/run/vmadm"), &vm.uuid);
        let spec = build_spec(
            vm,
            &dir,
            Some(Path::new("/run/netns/x")),
            HostCaps::default(),
            binds,
        )
        .unwrap();
        serde_json::to_value(&spec).unwrap()
    }

    #[test]
    fn root_hostname_and_init() {
        let v = vm(json!({}));
        let j = spec_json(&v);
        assert_eq!(
            j["root"]["path"],
            "/zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60/root"
        );
        assert_eq!(j["hostname"], "web1");
        assert_eq!(j["process"]["args"], json!(["/sbin/init"]));
        assert_eq!(j["process"]["noNewPrivileges"], true);
        let v = vm(json!({"init_name": "/bin/sh /etc/rc"}));
        assert_eq!(
            spec_json(&v)["process"]["args"],
            json!(["/bin/sh", "/etc/rc"])
        );
    }

    #[test]
    fn limits_are_converted() {
        let j = spec_json(&vm(json!({})));
        let r = &j["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 512 * 1024 * 1024);
        assert_eq!(r["memory"]["swap"], 1024 * 1024 * 1024);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["shares"], 1024);
        assert_eq!(r["pids"]["limit"], 300);
        assert_eq!(
            j["linux"]["cgroupsPath"],
            "/rvmadm/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60"
        );
    }

    #[test]
    fn memlock_and_ipc_limits() {
        let v = vm(json!({"max_locked_memory": 64, "max_shm_memory": 32,
                          "max_shm_ids": 100, "max_msg_ids": 200, "max_sem_ids": 99999}));
        let j = spec_json(&v);
        let memlock = j["process"]["rlimits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "RLIMIT_MEMLOCK")
            .unwrap()
            .clone();
        assert_eq!(memlock["hard"], 64 * 1024 * 1024);
        assert_eq!(memlock["soft"], 64 * 1024 * 1024);
        let host = HostCaps {
            memlock_hard: Some(8 << 20),
            ..HostCaps::default()
        };
        assert_eq!(memlock_bytes(&v.limits, host), 8 << 20);
        let s = &j["linux"]["sysctl"];
        assert_eq!(s["kernel.shmmax"], (32u64 << 20).to_string());
        let page = super::super::sys::page_size();
        assert_eq!(s["kernel.shmall"], ((32u64 << 20) / page).to_string());
        assert_eq!(s["kernel.shmmni"], "100");
        assert_eq!(s["kernel.msgmni"], "200");
        // Above the kernel's ceiling: the ceiling.
        assert_eq!(s["kernel.sem"], "32000 1024000000 500 32768");
    }

    #[test]
    fn no_cap_means_no_quota_and_swap_follows_host() {
        let v = vm(json!({"cpu_cap": 0, "max_swap": 100}));
        let r = resources(&v.limits, HostCaps::default()).unwrap();
        let j = serde_json::to_value(&r).unwrap();
        assert!(j["cpu"].get("quota").is_none());
        // max_swap below memory is raised to the memory limit.
        assert_eq!(j["memory"]["swap"], 512 * 1024 * 1024);
        let r = resources(
            &v.limits,
            HostCaps {
                swap_accounting: false,
                ..HostCaps::default()
            },
        )
        .unwrap();
        assert!(serde_json::to_value(&r).unwrap()["memory"]
            .get("swap")
            .is_none());
    }

    #[test]
    fn namespaces_join_the_prepared_netns() {
        let j = spec_json(&vm(json!({})));
        let ns = j["linux"]["namespaces"].as_array().unwrap();
        let net: Vec<_> = ns.iter().filter(|n| n["type"] == "network").collect();
        assert_eq!(net.len(), 1);
        assert_eq!(net[0]["path"], "/run/netns/x");
        for t in ["pid", "mount", "ipc", "uts", "cgroup"] {
            assert!(ns.iter().any(|n| n["type"] == t), "{t}");
        }
    }

    #[test]
    fn mounts_and_hardening() {
        let j = spec_json(&vm(json!({})));
        let mounts = j["mounts"].as_array().unwrap();
        let find = |d: &str| mounts.iter().find(|m| m["destination"] == d).cloned();
        assert!(find("/sys").unwrap()["options"]
            .as_array()
            .unwrap()
            .contains(&json!("ro")));
        assert!(find("/tmp").unwrap()["options"]
            .as_array()
            .unwrap()
            .contains(&json!("size=64m")));
        assert_eq!(
            find("/etc/resolv.conf").unwrap()["source"],
            "/run/vmadm/linux/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60/resolv.conf"
        );
        for d in ["/etc/resolv.conf", "/etc/hosts", "/etc/hostname"] {
            assert!(find(d).unwrap()["options"]
                .as_array()
                .unwrap()
                .contains(&json!("ro")));
        }
        for d in ["/proc", "/dev", "/dev/pts", "/dev/shm"] {
            assert!(find(d).is_some(), "{d}");
        }
        let no_tmp = spec_json(&vm(json!({"tmpfs": 0})));
        assert!(!no_tmp["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"] == "/tmp"));
        assert!(j["linux"]["readonlyPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/proc/sys")));
        assert!(j["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/proc/kcore")));
        let caps = j["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(caps.contains(&json!("CAP_NET_RAW")));
        for bad in ["CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_NET_ADMIN"] {
            assert!(!caps.contains(&json!(bad)), "{bad}");
        }
    }

    #[test]
    fn filesystems_become_bind_mounts() {
        let v = vm(json!({"filesystems": [
            {"type": "lofs", "source": "/srv/data", "target": "/data", "options": ["ro"]}]}));
        let j = spec_json(&v);
        let m = mount_at(&j, "/data");
        assert_eq!(m["source"], "/srv/data");
        assert!(m["options"].as_array().unwrap().contains(&json!("ro")));
        // Read-only unless asked for rw.
        for (opts, ro) in [(json!([]), true), (json!(["rw"]), false)] {
            let v = vm(json!({"filesystems": [
                {"type": "lofs", "source": "/srv/data", "target": "/data", "options": opts}]}));
            let j = spec_json(&v);
            let m = mount_at(&j, "/data");
            assert_eq!(m["options"].as_array().unwrap().contains(&json!("ro")), ro);
        }
        let bad = vm(json!({"filesystems": [{"type": "nfs", "source": "h:/x", "target": "/x"}]}));
        let dir = JailDir::new(Path::new("/run/vmadm"), &bad.uuid);
        assert!(build_spec(&bad, &dir, None, HostCaps::default(), &sources(&bad)).is_err());
        // The runtime mounts the opened source, never the entry's own path;
        // an entry without one is refused.
        let v = vm(json!({"filesystems": [
            {"type": "lofs", "source": "/srv/data", "target": "/data"}]}));
        let pinned = BindSources {
            filesystems: vec!["/proc/77/fd/9".into()],
            data: None,
        };
        let j = spec_json_with(&v, &pinned);
        let m = mount_at(&j, "/data");
        assert_eq!(m["source"], "/proc/77/fd/9");
        let dir = JailDir::new(Path::new("/run/vmadm"), &v.uuid);
        let none = BindSources::default();
        assert!(build_spec(&v, &dir, None, HostCaps::default(), &none).is_err());
    }

    /// The mount of `j` (a bundle's config) at `dest`.
    fn mount_at(j: &Value, dest: &str) -> Value {
        j["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == dest)
            .unwrap_or_else(|| panic!("no mount at {dest}"))
            .clone()
    }

    #[test]
    fn the_delegated_dataset_is_a_writable_bind() {
        let v = vm(json!({"delegate_dataset": true}));
        let binds = BindSources {
            filesystems: vec![],
            data: Some((
                "/proc/77/fd/8".into(),
                "/zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60/data".into(),
            )),
        };
        let j = spec_json_with(&v, &binds);
        let m = mount_at(&j, "/zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60/data");
        assert_eq!(m["source"], "/proc/77/fd/8");
        let opts = m["options"].as_array().unwrap();
        assert!(!opts.contains(&json!("ro")), "{opts:?}");
        for o in ["rbind", "nosuid", "nodev"] {
            assert!(opts.contains(&json!(o)), "{o}");
        }
        // No data mount without one given.
        let j = spec_json(&v);
        assert!(!j["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"].as_str().unwrap_or("").ends_with("/data")));
    }

    #[test]
    fn resolv_and_hosts() {
        let v = vm(json!({}));
        assert_eq!(
            resolv_conf(&v),
            "search example.com\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"
        );
        assert!(hosts(&v).contains("192.0.2.10\tweb1\n"));
        assert!(hosts(&v).starts_with("127.0.0.1\tlocalhost\n"));
    }
}
