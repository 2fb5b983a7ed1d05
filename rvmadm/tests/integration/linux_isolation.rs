//! Privileged end-to-end tests of tenant isolation on Linux (issue 11):
//! `filesystems` only from the allowlist, the capped console log, host links
//! that one tenant cannot take from another, a busy check a tenant cannot
//! fake, and the limits that are applied or said not to be. Same lab as
//! `linux.rs`: real runc, namespaces and zfs-fuse, all network in a private
//! namespace with documentation addresses only.

use crate::harness::{assert_exit, stderr, stdout, zfs};
use crate::linux::{e2e_payload, Lab, GATEWAY};
use rvmadm::driver::linux::console_log::{rotated, LOG_CAP};
use rvmadm::driver::{Driver, StopOptions};
use rvmadm::spec::VmSpec;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uuid::Uuid;

fn run_dir_of(lab: &Lab, vm: &VmSpec) -> PathBuf {
    lab.config.run_dir.join("linux").join(vm.uuid.to_string())
}

/// The VMs vmadm knows and the datasets of the lab's pool.
fn inventory(lab: &Lab) -> (String, String) {
    let list = lab.vmadm(&["list", "-H", "-o", "uuid"], None);
    assert_exit(&list, 0);
    let pool = &lab.env.as_ref().expect("env").pool;
    (
        stdout(&list),
        zfs(&["list", "-H", "-o", "name", "-r", "-t", "all", pool]),
    )
}

fn kill_now() -> StopOptions {
    StopOptions {
        force: true,
        timeout: Duration::from_secs(1),
    }
}

#[test]
fn filesystems_only_from_the_allowlist_read_only_unless_permitted() {
    let scratch = tempfile::Builder::new()
        .prefix("rvmadm-fs-")
        .tempdir()
        .expect("tempdir");
    let s = scratch.path();
    for d in ["ro/data", "rw/data", "other"] {
        std::fs::create_dir_all(s.join(d)).expect("mkdir");
    }
    std::fs::write(s.join("ro/data/file"), "hello\n").expect("write");
    std::os::unix::fs::symlink("/run", s.join("ro/runlink")).expect("symlink");
    let extra = format!(
        "[[filesystem_sources]]\npath = \"{ro}\"\n[[filesystem_sources]]\npath = \"{rw}\"\nrw = true\n",
        ro = s.join("ro").display(),
        rw = s.join("rw").display()
    );
    let Some(lab) = Lab::with_config(&extra) else {
        return;
    };
    let before = inventory(&lab);
    let path = |p: &str| s.join(p).display().to_string();
    let refused: [(String, Value, &str); 5] = [
        ("/proc/1/root".into(), json!([]), "never mounted"),
        (
            "/etc".into(),
            json!([]),
            "not below any [[filesystem_sources]]",
        ),
        (path("ro/runlink"), json!([]), "never mounted"),
        (
            path("other"),
            json!([]),
            "not below any [[filesystem_sources]]",
        ),
        (path("ro/data"), json!(["rw"]), "rw = true"),
    ];
    for (source, options, why) in &refused {
        let fs = json!([{"type": "lofs", "source": source, "target": "/host", "options": options}]);
        let payload = e2e_payload("192.0.2.70", json!({"filesystems": fs}));
        let out = lab.vmadm(&["create"], Some(&payload.to_string()));
        assert_exit(&out, 1);
        assert!(stderr(&out).contains(why), "{source}: {}", stderr(&out));
        let out = lab.vmadm(&["validate", "create"], Some(&payload.to_string()));
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains("filesystems.*.source"),
            "{}",
            stderr(&out)
        );
        // Nothing was made: no record, no dataset.
        assert_eq!(inventory(&lab), before, "{source}");
    }

    // Allowed: read-only by default, writable where the allowlist says so.
    let fs = json!([
        {"type": "lofs", "source": path("ro/data"), "target": "/ro"},
        {"type": "lofs", "source": path("rw/data"), "target": "/rw", "options": ["rw"]}
    ]);
    let vm = lab.vmadm_create(e2e_payload("192.0.2.71", json!({"filesystems": fs})));
    let u = vm.uuid.to_string();
    assert_eq!(lab.vm_state(&vm), "running");
    let out = lab.vmadm(&["exec", &u, "--", "cat", "/ro/file"], None);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "hello\n");
    let out = lab.vmadm(&["exec", &u, "--", "touch", "/ro/x"], None);
    assert_ne!(out.status.code(), Some(0), "a write to a read-only mount");
    assert!(!s.join("ro/data/x").exists());
    let out = lab.vmadm(&["exec", &u, "--", "touch", "/rw/y"], None);
    assert_exit(&out, 0);
    assert!(s.join("rw/data/y").exists());
    // The jail's resolv.conf is read-only too.
    let out = lab.vmadm(
        &["exec", &u, "--", "sh", "-c", "echo x >> /etc/resolv.conf"],
        None,
    );
    assert_ne!(out.status.code(), Some(0));

    // update: the same rules, and a refused update changes nothing.
    for add in [
        json!([{"source": "/etc", "target": "/e"}]),
        json!([{"source": path("ro/data"), "target": "/e", "options": ["rw"]}]),
    ] {
        let payload = json!({"add_filesystems": add}).to_string();
        let out = lab.vmadm(&["update", &u], Some(&payload));
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains("filesystems: source"),
            "{}",
            stderr(&out)
        );
    }
    let got = lab.vmadm(&["get", &u], None);
    let obj: Value = serde_json::from_slice(&got.stdout).expect("json");
    assert_eq!(obj["filesystems"].as_array().map(Vec::len), Some(2));
}

/// An init that writes `mib` MiB of zeros to its stdout, then a marker.
fn flood_init(mib: u32) -> String {
    format!(
        "#!/bin/sh\ntrap 'exit 0' TERM\necho booted\ndd if=/dev/zero bs=65536 count={} 2>/dev/null\necho written-all\nwhile :; do sleep 1000 & wait $!; done\n",
        mib * 16
    )
}

fn dir_usage(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        total += if m.is_dir() {
            dir_usage(&e.path())
        } else {
            m.len()
        };
    }
    total
}

#[test]
fn console_output_is_capped_and_the_jail_keeps_running() {
    let Some(lab) = Lab::new() else { return };
    // Created stopped through the CLI, started through the CLI: the log
    // keeper must outlive the vmadm process that started it.
    let payload = e2e_payload(
        "192.0.2.72",
        json!({"autoboot": false, "init_name": "/sbin/flood"}),
    );
    let vm = lab.vmadm_create(payload);
    // The jail's root: the zonepath, or its `root` once the tree lives there.
    let root = Some(vm.zonepath.join("root"))
        .filter(|r| r.join("sbin").is_dir())
        .unwrap_or_else(|| vm.zonepath.clone());
    let init = root.join("sbin/flood");
    std::fs::write(&init, flood_init(200)).expect("init");
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = lab.vmadm(&["start", &vm.uuid.to_string()], None);
    assert_exit(&out, 0);
    let log = run_dir_of(&lab, &vm).join("console.log");
    let deadline = Instant::now() + Duration::from_secs(600);
    let kept = loop {
        let newest = std::fs::read(&log).unwrap_or_default();
        let older = std::fs::read(rotated(&log)).unwrap_or_default();
        let kept = [older, newest].concat();
        if kept.ends_with(b"written-all\n") {
            break kept;
        }
        assert!(Instant::now() < deadline, "the init never finished writing");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(lab.vm_state(&vm), "running");
    assert!(kept.len() as u64 <= LOG_CAP, "{} bytes kept", kept.len());
    assert!(kept.len() as u64 >= LOG_CAP / 2, "the newest half at least");
    assert!(
        !kept.starts_with(b"booted"),
        "the oldest output was dropped"
    );
    let usage = dir_usage(&lab.config.run_dir);
    assert!(usage <= LOG_CAP + (1 << 20), "run_dir holds {usage} bytes");
    use std::os::unix::fs::PermissionsExt;
    for f in [log.clone(), rotated(&log)] {
        let mode = std::fs::metadata(&f).expect("log").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    // The keeper outlived the `vmadm start` that made it, and holds only
    // its stdio (nothing inherited, such as the test's flock descriptor).
    let keepers = pids_with_arg(&log.display().to_string());
    assert_eq!(keepers.len(), 1, "one keeper per jail: {keepers:?}");
    // Beyond stdio, only the log it writes.
    let extra: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{}/fd", keepers[0]))
        .expect("keeper fds")
        .flatten()
        .filter(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) > Some(2))
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| *target != log)
        .collect();
    assert!(extra.is_empty(), "the keeper holds {extra:?}");
    let out = lab.vmadm(&["stop", "-F", &vm.uuid.to_string()], None);
    assert_exit(&out, 0);
    // The jail gone, the keeper ends too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids_with_arg(&log.display().to_string()).is_empty() {
        assert!(Instant::now() < deadline, "the keeper outlived its jail");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two uuids that share their first 12 hex digits (and more).
fn twin_uuids() -> (Uuid, Uuid) {
    let a = Uuid::new_v4();
    let other = Uuid::new_v4().to_string();
    let b = format!("{}{}", &a.to_string()[..14], &other[14..]);
    let b = Uuid::parse_str(&b).expect("uuid");
    assert_ne!(a, b);
    (a, b)
}

fn has_link(lab: &Lab, vm: &VmSpec) -> bool {
    lab.host(&["ip", "-o", "link", "show"])
        .contains(&format!("alias vmadm:{}", vm.uuid))
}

/// Waits for a stopped jail's links to go (namespaces die asynchronously).
#[track_caller]
fn links_gone(lab: &Lab, vm: &VmSpec) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while has_link(lab, vm) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[track_caller]
fn reachable(lab: &Lab, vm: &VmSpec, ip: &str) {
    lab.sh_ok(vm, &format!("ping -c 1 -W 2 {ip}"));
}

#[test]
fn uuids_sharing_a_prefix_start_stop_and_restart_independently() {
    let Some(lab) = Lab::new() else { return };
    let (ua, ub) = twin_uuids();
    let a = lab.net_jail("192.0.2.81", 0, json!({"uuid": ua.to_string()}));
    let b = lab.net_jail("192.0.2.82", 0, json!({"uuid": ub.to_string()}));
    lab.start(&a);
    lab.start(&b);
    assert!(has_link(&lab, &a) && has_link(&lab, &b));
    reachable(&lab, &a, "192.0.2.82");
    // A stops: B keeps its NIC.
    lab.stop(&a);
    assert!(links_gone(&lab, &a) && has_link(&lab, &b));
    reachable(&lab, &b, GATEWAY);
    // Crash repair of A (debris left behind) takes nothing of B's.
    std::fs::create_dir_all(run_dir_of(&lab, &a)).expect("debris");
    lab.driver.cleanup(&a).expect("cleanup");
    assert!(has_link(&lab, &b));
    reachable(&lab, &b, GATEWAY);
    // A restarts beside B, then B restarts beside A.
    lab.start(&a);
    reachable(&lab, &a, "192.0.2.82");
    lab.stop(&b);
    assert!(links_gone(&lab, &b) && has_link(&lab, &a));
    reachable(&lab, &a, GATEWAY);
    lab.start(&b);
    reachable(&lab, &b, "192.0.2.81");
    for vm in [&a, &b] {
        lab.stop(vm);
        assert!(lab.leftovers(vm).is_empty(), "{:?}", lab.leftovers(vm));
    }
}

/// Pids on the host whose argv holds `arg`.
fn pids_with_arg(arg: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_tenant_naming_another_bundle_does_not_block_its_restart() {
    let Some(lab) = Lab::new() else { return };
    let a = lab.jail(json!({}));
    let b = lab.jail(json!({}));
    lab.start(&a);
    lab.start(&b);
    lab.driver.stop(&b, kill_now()).expect("stop b");
    let bundle = run_dir_of(&lab, &b).display().to_string();
    // A process inside A carries B's bundle path in its argv.
    lab.sh_ok(
        &a,
        &format!("sh -c 'while :; do sleep 1; done' {bundle} >/dev/null 2>&1 &"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids_with_arg(&bundle).is_empty() {
        assert!(Instant::now() < deadline, "the decoy never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Debris makes the start run the thorough teardown and its busy check.
    std::fs::create_dir_all(&bundle).expect("debris");
    lab.driver.start(&b).expect("start b despite the decoy");
    assert!(lab.running(&b));
    assert!(!pids_with_arg(&bundle).is_empty(), "the decoy still runs");
    lab.driver.stop(&a, kill_now()).expect("stop a");
    lab.driver.stop(&b, kill_now()).expect("stop b");
}

#[test]
fn limits_are_applied_or_said_not_enforced() {
    let Some(lab) = Lab::new() else { return };
    // In the jail: memlock as an rlimit, System V limits in its IPC namespace.
    let vm = lab.jail(json!({"max_locked_memory": 4, "max_shm_memory": 16,
                             "max_shm_ids": 100, "max_msg_ids": 200, "max_sem_ids": 300}));
    lab.start(&vm);
    assert_eq!(lab.sh_ok(&vm, "ulimit -l").trim(), "4096");
    assert_eq!(
        lab.sh_ok(&vm, "cat /proc/sys/kernel/shmmax").trim(),
        (16u64 << 20).to_string()
    );
    assert_eq!(lab.sh_ok(&vm, "cat /proc/sys/kernel/shmmni").trim(), "100");
    assert_eq!(lab.sh_ok(&vm, "cat /proc/sys/kernel/msgmni").trim(), "200");
    let sem = lab.sh_ok(&vm, "cat /proc/sys/kernel/sem");
    assert_eq!(sem.split_whitespace().last(), Some("300"), "{sem}");
    // The host's own IPC limits are untouched.
    let host_shmmni = std::fs::read_to_string("/proc/sys/kernel/shmmni").expect("shmmni");
    assert_ne!(host_shmmni.trim(), "100");
    lab.driver.stop(&vm, kill_now()).expect("stop");

    // On the datasets, at create and at update; what cannot be enforced is said.
    let payload = e2e_payload(
        "192.0.2.90",
        json!({"autoboot": false, "delegate_dataset": true,
               "zfs_root_compression": "gzip", "zfs_root_recsize": 8192,
               "zfs_data_compression": "lzjb", "zfs_data_recsize": 16384,
               "zfs_filesystem_limit": 10, "zfs_io_priority": 50}),
    );
    let out = lab.vmadm(&["create"], Some(&payload.to_string()));
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("zfs_io_priority is stored but not enforced on this host"),
        "{err}"
    );
    let uuid = err
        .split_whitespace()
        .find_map(|w| Uuid::parse_str(w).ok())
        .expect("uuid");
    let pool = &lab.env.as_ref().expect("env").pool;
    let ds = format!("{pool}/{uuid}");
    let data = format!("{ds}/data");
    let get = |prop: &str, d: &str| {
        zfs(&["get", "-H", "-p", "-o", "value", prop, d])
            .trim()
            .to_string()
    };
    assert_eq!(get("compression", &ds), "gzip");
    assert_eq!(get("recordsize", &ds), "8192");
    assert_eq!(get("compression", &data), "lzjb");
    assert_eq!(get("recordsize", &data), "16384");
    // zfs-fuse has no count limits: said, not silently stored. A zfs that
    // has them applies them.
    match zfs_has("filesystem_limit", &ds) {
        true => assert_eq!(get("filesystem_limit", &ds), "10"),
        false => assert!(
            err.contains("zfs_filesystem_limit is stored but not enforced"),
            "{err}"
        ),
    }
    let u = uuid.to_string();
    let out = lab.vmadm(
        &["update", &u],
        Some(
            r#"{"zfs_data_recsize": 32768, "zfs_snapshot_limit": 3, "zfs_io_priority": 10,
                "zfs_root_compression": "lz4"}"#,
        ),
    );
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert_eq!(get("recordsize", &data), "32768");
    assert!(
        err.contains("zfs_io_priority is stored but not enforced"),
        "{err}"
    );
    // zfs-fuse has no lz4: said, and the old value stays.
    match get("compression", &ds).as_str() {
        "lz4" => {}
        other => {
            assert_eq!(other, "gzip");
            assert!(
                err.contains("zfs_root_compression is stored but not enforced"),
                "{err}"
            );
        }
    }
    match zfs_has("snapshot_limit", &ds) {
        true => assert_eq!(get("snapshot_limit", &ds), "3"),
        false => assert!(
            err.contains("zfs_snapshot_limit is stored but not enforced"),
            "{err}"
        ),
    }
    assert_exit(&lab.vmadm(&["delete", &u], None), 0);
}

/// True when this host's zfs knows `prop`.
fn zfs_has(prop: &str, ds: &str) -> bool {
    std::process::Command::new("zfs")
        .args(["get", "-H", prop, ds])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A `filesystems` source swapped for a symlink after the start's
/// allowlist check and before the runtime mounts it (the runtime is a
/// wrapper that makes the swap, then runs runc: no timing involved) does
/// not bring the link's target into the jail: the jail gets the directory
/// that was checked. The next start refuses the link.
#[test]
fn a_source_swapped_for_a_link_after_the_check_is_not_followed() {
    let scratch = tempfile::Builder::new()
        .prefix("rvmadm-swap-")
        .tempdir()
        .expect("tempdir");
    let s = std::fs::canonicalize(scratch.path()).expect("canonical");
    let (shared, src, secret) = (s.join("shared"), s.join("shared/src"), s.join("secret"));
    for d in [&src, &secret] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(src.join("marker"), "checked\n").expect("write");
    std::fs::write(secret.join("key"), "host secret\n").expect("write");
    let wrapper = s.join("swapping-runc");
    let script = format!(
        "#!/bin/sh\n# Swaps the checked source for a link just before runc mounts it.\n\
         if [ \"$3\" = run ] && [ ! -L '{src}' ]; then\n\
           mv '{src}' '{src}.checked' && ln -s '{secret}' '{src}' || exit 99\n\
         fi\nexec runc \"$@\"\n",
        src = src.display(),
        secret = secret.display()
    );
    std::fs::write(&wrapper, script).expect("wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let extra = format!(
        "runtime = \"{}\"\n[[filesystem_sources]]\npath = \"{}\"\n",
        wrapper.display(),
        shared.display()
    );
    let Some(lab) = Lab::with_config(&extra) else {
        return;
    };
    let fs = json!([{"type": "lofs", "source": src.display().to_string(), "target": "/shared"}]);
    let vm = lab.jail(json!({"filesystems": fs}));
    lab.start(&vm);
    // The wrapper did swap: the checked name is a link to the secret now.
    assert!(std::fs::symlink_metadata(&src)
        .expect("lstat")
        .file_type()
        .is_symlink());
    let out = lab.sh_ok(&vm, "cat /shared/marker; ls /shared");
    assert_eq!(out, "checked\nmarker\n");
    assert!(!lab.sh(&vm, "cat /shared/key").status.success());
    lab.driver.stop(&vm, kill_now()).expect("stop");
    // With the link in place at check time, the start is refused (the
    // link leads outside the allowlist) and nothing is left behind.
    let err = lab.driver.start(&vm).expect_err("the link is refused");
    assert!(
        err.to_string()
            .contains("not below any [[filesystem_sources]]"),
        "{err}"
    );
    assert!(!lab.running(&vm));
    assert!(lab.leftovers(&vm).is_empty(), "{:?}", lab.leftovers(&vm));
}
