//! Golden output of `vmadm get`, `list` and `lookup -j` for rich payloads.
//!
//! These files pin the exact bytes automation reads: key order, number
//! formatting, defaults, derived NIC fields, update semantics. Any change in
//! how a VM is stored or shown must show up here as a reviewed diff. Values
//! that differ per run (pool name, temporary root, timestamps) are replaced
//! by placeholders before comparing. `UPDATE_GOLDEN=1` rewrites the files.

use crate::harness::{assert_exit, stdout, Env};
use serde_json::json;
use std::path::PathBuf;

const IMAGE: &str = "a1b2c3d4-0000-4000-8000-00000000000a";
const RICH: &str = "11111111-2222-4333-8444-000000000001";
const LX: &str = "11111111-2222-4333-8444-000000000002";
const LEGACY: &str = "11111111-2222-4333-8444-000000000003";

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Replaces what differs between runs with stable placeholders.
fn normalise(env: &Env, text: &str) -> String {
    let mut out = text.replace(&env.root().display().to_string(), "ROOT");
    out = out.replace(&env.pool, "POOL");
    let ts = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").unwrap();
    ts.replace_all(&out, "TIMESTAMP").into_owned()
}

/// Compares with (or, under `UPDATE_GOLDEN=1`, writes) `tests/golden/<name>`.
#[track_caller]
fn check_golden(env: &Env, name: &str, actual: &str) {
    let actual = normalise(env, actual);
    let path = golden_dir().join(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    if want != actual {
        let diff: Vec<String> = want
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (w, a))| w != a)
            .take(10)
            .map(|(i, (w, a))| format!("line {}:\n  want {w}\n  got  {a}", i + 1))
            .collect();
        panic!(
            "{name} differs from its golden file ({} vs {} lines):\n{}\nfull output:\n{actual}",
            want.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

fn vmadm_ok(env: &Env, args: &[&str]) -> String {
    let o = env.vmadm(args);
    assert_exit(&o, 0);
    stdout(&o)
}

fn create_in(env: &Env, payload: serde_json::Value) {
    let o = env.vmadm_in(&["create"], &payload.to_string());
    assert_exit(&o, 0);
}

fn update_in(env: &Env, uuid: &str, payload: serde_json::Value) {
    let o = env.vmadm_in(&["update", uuid], &payload.to_string());
    assert_exit(&o, 0);
}

#[test]
fn get_list_lookup_output_is_byte_stable() {
    let Some(env) = Env::new() else { return };
    env.fake_image_dataset(IMAGE);
    // Host directories come only from the allowlist: one under the root.
    let srv = env.root().join("srv");
    for d in ["data", "logs"] {
        std::fs::create_dir_all(srv.join(d)).unwrap();
    }
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg.push_str(&format!(
        "[[filesystem_sources]]\npath = \"{}\"\n",
        srv.display()
    ));
    std::fs::write(&env.config, cfg).unwrap();
    let src = |d: &str| srv.join(d).display().to_string();
    create_in(
        &env,
        json!({
            "uuid": RICH, "brand": "jail", "image_uuid": IMAGE, "autoboot": false,
            "alias": "web01", "hostname": "web01", "dns_domain": "example.com",
            "ram": 512, "cpu_cap": 150, "cpu_shares": "200", "quota": "3", "max_lwps": 3000,
            "max_locked_memory": 4096, "tmpfs": 128, "zfs_io_priority": 50,
            "owner_uuid": "930896af-bf8c-48d4-885c-6573a94b1853",
            "billing_id": "73a1ca34-1e30-48c7-8681-70314a9c67d3",
            "package_name": "sdc_512", "package_version": "1.0.0",
            "limit_priv": "default,dtrace_user", "init_name": "/sbin/init",
            "resolvers": ["192.0.2.53", "198.51.100.53"],
            "nics": [
                {"nic_tag": "admin", "mac": "02:08:20:aa:bb:01",
                 "ips": ["192.0.2.10/24", "2001:db8::10/64"], "gateways": ["192.0.2.1"],
                 "mtu": 1500, "allow_ip_spoofing": true},
                {"nic_tag": "internal", "mac": "02:08:20:aa:bb:02", "vlan_id": 12,
                 "ips": ["198.51.100.10/24"], "primary": true}
            ],
            "routes": {"203.0.113.0/24": "192.0.2.254"},
            "filesystems": [{"type": "lofs", "source": src("data"), "target": "/data",
                             "options": ["ro", "nodevice"]}],
            "customer_metadata": {"user-script": "#!/bin/sh\necho hi", "n": 7, "b": true},
            "internal_metadata": {"sdc:owner": "ops"},
            "tags": {"role": "web", "tier": 1, "public": false},
            "delegate_dataset": true,
            "zfs_root_compression": "lz4",
            "maintain_resolvers": true,
            "unknown_thing": {"dropped": true}
        }),
    );
    create_in(
        &env,
        json!({"uuid": LX, "brand": "lx", "image_uuid": IMAGE, "autoboot": false,
               "alias": "linux", "kernel_version": "4.3.0", "max_physical_memory": 1024,
               "max_swap": 512}),
    );
    create_in(
        &env,
        json!({"uuid": LEGACY, "brand": "joyent-minimal", "image_uuid": IMAGE,
               "autoboot": false,
               "nics": [{"nic_tag": "admin", "mac": "02:08:20:aa:bb:03",
                         "ip": "203.0.113.7", "netmask": "255.255.255.0",
                         "gateway": "203.0.113.1"}]}),
    );
    for uuid in [RICH, LX, LEGACY] {
        check_golden(
            &env,
            &format!("get-{uuid}.json"),
            &vmadm_ok(&env, &["get", uuid]),
        );
    }

    update_in(
        &env,
        RICH,
        json!({
            "alias": "web02", "cpu_cap": null, "ram": 768, "quota": 4,
            "set_tags": {"tier": 2, "new": "yes"}, "remove_tags": ["public"],
            "remove_customer_metadata": ["n"], "set_customer_metadata": {"m": "x"},
            "set_routes": {"198.51.100.0/25": "nics[0]"},
            "update_nics": [{"mac": "02:08:20:aa:bb:01", "ips": ["192.0.2.11/24"]}],
            "add_nics": [{"nic_tag": "storage", "mac": "02:08:20:aa:bb:04",
                          "ips": ["dhcp"]}],
            "add_filesystems": [{"type": "lofs", "source": src("logs"), "target": "/logs"}],
            "resolvers": ["203.0.113.53"]
        }),
    );
    update_in(&env, LX, json!({"remove_nics": [], "hostname": "lx-host"}));
    let snap = env.vmadm(&["create-snapshot", RICH, "before-upgrade"]);
    assert_exit(&snap, 0);
    check_golden(
        &env,
        &format!("get-{RICH}-updated.json"),
        &vmadm_ok(&env, &["get", RICH]),
    );
    check_golden(
        &env,
        &format!("get-{LX}-updated.json"),
        &vmadm_ok(&env, &["get", LX]),
    );

    check_golden(&env, "list.txt", &vmadm_ok(&env, &["list"]));
    let fields = "uuid,type,ram,state,alias,brand,hostname,dns_domain,quota,cpu_cap,\
                  cpu_shares,max_physical_memory,max_swap,max_lwps,tmpfs,image_uuid,\
                  nics.0.ip,nics.0.mac,nics.1.vlan_id,tags.role,tags.tier,\
                  customer_metadata.m,autoboot,zonepath";
    check_golden(
        &env,
        "list-p.txt",
        &vmadm_ok(&env, &["list", "-p", "-o", fields, "-s", "-ram,uuid"]),
    );
    check_golden(
        &env,
        "list-H.txt",
        &vmadm_ok(&env, &["list", "-H", "-o", fields]),
    );
    check_golden(&env, "lookup-j.json", &vmadm_ok(&env, &["lookup", "-j"]));
    check_golden(
        &env,
        "lookup-j-o.json",
        &vmadm_ok(
            &env,
            &[
                "lookup",
                "-j",
                "-o",
                "uuid,alias,nics,tags,ram,type",
                "brand=~^j",
            ],
        ),
    );
}
