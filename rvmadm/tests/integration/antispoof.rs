//! Privileged end-to-end tests of the Linux anti-spoofing rules and of the
//! MAC/IP uniqueness check.
//!
//! A jail's network namespace is entered from the host as root, so the
//! sender has every capability a hostile tenant could get; it writes crafted
//! frames (`antispoof_frames.py`) on its NIC, and raw-socket listeners in a
//! neighbour jail and on the lab's bridge report which of them arrived. Each
//! `allow_*` flag is then switched on live (`update_nics`) and must let
//! through exactly the frames it covers. Everything happens inside the lab's
//! own namespaces, with documentation addresses only.

use crate::linux::Lab;
use rvmadm::driver::{Driver, Signal};
use rvmadm::spec::VmSpec;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FRAMES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/antispoof_frames.py"
);

fn netns(vm: &VmSpec) -> String {
    format!("--net=/run/netns/vmadm-{}", vm.uuid)
}

/// A listener that has bound its socket.
fn listener(ns_arg: &str, iface: &str) -> Child {
    let mut child = Command::new("nsenter")
        .args([ns_arg, "--", "python3", FRAMES, "listen", iface, "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn listener");
    let mut line = String::new();
    let out = child.stdout.as_mut().expect("stdout");
    // One byte at a time: the rest stays in the pipe for `markers`.
    let mut b = [0u8; 1];
    while out.read(&mut b).map(|n| n == 1).unwrap_or(false) && b[0] != b'\n' {
        line.push(b[0] as char);
    }
    assert_eq!(
        line, "ready",
        "listener in {ns_arg} on {iface} did not start"
    );
    child
}

fn markers(child: Child) -> BTreeSet<String> {
    let out = child.wait_with_output().expect("listener");
    assert!(
        out.status.success(),
        "listener: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    BufReader::new(&out.stdout[..])
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Sends the crafted frames from `attacker`'s namespace and returns what
/// the victim jail and the lab's bridge (the host side) saw.
fn attack(lab: &Lab, attacker: &VmSpec, victim: &VmSpec) -> (BTreeSet<String>, BTreeSet<String>) {
    send_frames(lab, "send", attacker, victim)
}

/// Runs the sender's `mode` (`send`, `ports`) from `attacker`'s namespace
/// and returns the markers the victim jail and the lab's bridge saw.
fn send_frames(
    lab: &Lab,
    mode: &str,
    attacker: &VmSpec,
    victim: &VmSpec,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let own_ip = match attacker.nics[0].ips[0] {
        rvmadm::spec::NicAddr::Static { addr, .. } => addr.to_string(),
        ref other => panic!("{other}"),
    };
    send_frames_from(lab, mode, attacker, (0, &own_ip, &own_ip), victim)
}

/// Like [`send_frames`], from the attacker's NIC `index`, with `own_ip` as
/// its "legitimate" source address and `done_ip` (an address the port lets
/// through) as the closing frame's.
fn send_frames_from(
    lab: &Lab,
    mode: &str,
    attacker: &VmSpec,
    (index, own_ip, done_ip): (usize, &str, &str),
    victim: &VmSpec,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let in_victim = listener(&netns(victim), "net0");
    let on_host = listener(&format!("--net=/run/netns/{}", lab.hostns), "rvtbr0");
    let nic = &attacker.nics[index];
    let victim_ip = match victim.nics[0].ips[0] {
        rvmadm::spec::NicAddr::Static { addr, .. } => addr.to_string(),
        ref other => panic!("{other}"),
    };
    let out = Command::new("nsenter")
        .args([
            &netns(attacker),
            "--",
            "python3",
            FRAMES,
            mode,
            &nic.interface,
        ])
        .args([nic.mac.as_str(), own_ip, &victim_ip, done_ip])
        .output()
        .expect("sender");
    assert!(
        out.status.success(),
        "sender: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (markers(in_victim), markers(on_host))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn tables(lab: &Lab) -> String {
    lab.host(&["nft", "list", "tables"])
}

fn have_tools() -> bool {
    let ok = ["nft", "python3"].iter().all(|p| {
        Command::new("sh")
            .args(["-c", &format!("command -v {p} >/dev/null")])
            .status()
            .is_ok_and(|s| s.success())
    });
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "anti-spoofing tests need nft and python3 (CI=true): run scripts/install-deps.sh"
            );
        }
        eprintln!("SKIPPED: anti-spoofing tests need nft (nftables) and python3");
    }
    ok
}

#[test]
fn spoofed_frames_stop_at_the_port_until_their_flag_allows_them() {
    if !have_tools() {
        return;
    }
    let Some(lab) = Lab::new() else { return };
    let mut a = lab.net_jail("192.0.2.10", 0, json!({}));
    let b = lab.net_jail("192.0.2.11", 0, json!({}));
    lab.start(&a);
    lab.start(&b);
    let table = format!("vmadm-{}", a.uuid);
    assert!(tables(&lab).contains(&table), "{}", tables(&lab));
    // Ordinary traffic is untouched: ARP and IPv4, and IPv6 neighbour
    // discovery between link-local addresses.
    lab.sh_ok(&a, "ping -c 1 -W 2 192.0.2.11");
    lab.sh_ok(&b, "ping -c 1 -W 2 192.0.2.10");
    let b_ll = "fe80::c0ff:fe00:20b"; // from b's MAC 02:00:c0:00:02:0b
    lab.sh_ok(
        &a,
        &format!(
            "for i in 1 2 3 4 5; do ping -6 -c 1 -W 2 {b_ll}%net0 && exit 0; sleep 1; done; exit 1"
        ),
    );

    let ip_family = ["LEGIT", "SPOOFIP", "SPOOFARP", "SPOOFNA", "SPOOFRA"];
    let rounds: [(&str, Vec<&str>); 5] = [
        ("none", vec!["LEGIT"]),
        ("allow_ip_spoofing", ip_family.to_vec()),
        ("allow_mac_spoofing", vec!["LEGIT", "SPOOFMAC"]),
        // A DHCP server may also spoof IPs, as in SmartOS.
        (
            "allow_dhcp_spoofing",
            [&ip_family[..], &["SPOOFDHCP"]].concat(),
        ),
        ("allow_restricted_traffic", vec!["LEGIT", "SPOOFL2"]),
    ];
    for (flag, expected) in rounds {
        let nic = &mut a.nics[0];
        nic.allow_ip_spoofing = flag == "allow_ip_spoofing";
        nic.allow_mac_spoofing = flag == "allow_mac_spoofing";
        nic.allow_dhcp_spoofing = flag == "allow_dhcp_spoofing";
        nic.allow_restricted_traffic = flag == "allow_restricted_traffic";
        // Live, on the running jail.
        lab.driver.update_nics(&a).expect("update_nics");
        let (victim, host) = attack(&lab, &a, &b);
        assert_eq!(
            victim,
            set(&expected),
            "flag {flag}: seen in the other jail"
        );
        assert_eq!(host, set(&expected), "flag {flag}: seen on the host bridge");
    }

    // Stop removes the table.
    lab.stop(&a);
    assert!(!tables(&lab).contains(&table), "{}", tables(&lab));

    // Crash repair removes it even when the mark in the run dir is lost.
    lab.start(&a);
    assert!(tables(&lab).contains(&table));
    lab.driver.kill(&a, Signal::Kill).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.running(&a) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mark = lab
        .config
        .run_dir
        .join("linux")
        .join(a.uuid.to_string())
        .join("antispoof.json");
    std::fs::remove_file(&mark).expect("mark");
    lab.driver.cleanup(&a).expect("cleanup");
    assert!(!tables(&lab).contains(&table), "{}", tables(&lab));
    assert!(lab.leftovers(&a).is_empty(), "{:?}", lab.leftovers(&a));

    // A table a failed stop left behind, allowing a foreign address: the
    // next start replaces it instead of merging into it.
    let stale = lab.config.run_dir.join("stale.nft");
    std::fs::write(
        &stale,
        format!("table netdev {table} {{\n\tset p0v4 {{ type ipv4_addr; flags interval; elements = {{ 192.0.2.99 }}; }}\n}}\n"),
    )
    .expect("stale");
    lab.host(&["nft", "-f", stale.to_str().expect("utf-8")]);
    assert!(tables(&lab).contains(&table));
    lab.start(&a);
    let (victim, host) = attack(&lab, &a, &b);
    assert_eq!(victim, set(&["LEGIT", "SPOOFL2"]), "after a stale table");
    assert_eq!(host, set(&["LEGIT", "SPOOFL2"]), "after a stale table");
}

#[test]
fn the_host_end_of_a_jail_nic_has_no_ipv6_address() {
    let Some(lab) = Lab::new() else { return };
    let a = lab.net_jail("192.0.2.20", 0, json!({}));
    lab.start(&a);
    let alias = format!("alias vmadm:{}", a.uuid);
    let links = lab.host(&["ip", "-o", "link", "show"]);
    let port = links
        .lines()
        .find(|l| l.contains(&alias))
        .and_then(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .expect("the jail's host veth");
    // The kernel gives an interface its link-local address when the link
    // gets carrier, at the same moment for both ends of the pair: once
    // the jail's end has one, the host end would have one too.
    let jail_ll = || {
        let out = Command::new("ip")
            .args([
                "-n",
                &format!("vmadm-{}", a.uuid),
                "-6",
                "-o",
                "addr",
                "show",
                "dev",
                "net0",
            ])
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).contains("fe80::c0ff:fe00:214")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !jail_ll() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(jail_ll(), "the jail's NIC has its own link-local address");
    let addrs = lab.host(&["ip", "-6", "-o", "addr", "show", "dev", &port]);
    assert_eq!(addrs.trim(), "", "{port} on the host has an IPv6 address");
    let detail = lab.host(&["ip", "-d", "link", "show", "dev", &port]);
    assert!(detail.contains("addrgenmode none"), "{detail}");
}

#[test]
fn blocked_outgoing_ports_stop_tcp_to_them_and_nothing_else() {
    if !have_tools() {
        return;
    }
    let Some(lab) = Lab::new() else { return };
    let mut a = lab.net_jail("192.0.2.30", 0, json!({}));
    let b = lab.net_jail("192.0.2.31", 0, json!({}));
    // Every anti-spoofing flag on: the ports alone must make the table.
    let nic = &mut a.nics[0];
    nic.allow_ip_spoofing = true;
    nic.allow_mac_spoofing = true;
    nic.allow_dhcp_spoofing = true;
    nic.allow_restricted_traffic = true;
    nic.blocked_outgoing_ports = vec![25];
    lab.start(&a);
    lab.start(&b);
    assert!(tables(&lab).contains(&format!("vmadm-{}", a.uuid)));
    // SmartOS's flow is transport=tcp,remote_port=25: UDP to 25 and TCP
    // to 26 pass; TCP to 25 stops, over IPv4, IPv6, and behind an IPv6
    // extension header.
    let passing = set(&["TCP26", "UDP25"]);
    let (victim, host) = send_frames(&lab, "ports", &a, &b);
    assert_eq!(victim, passing, "seen in the other jail");
    assert_eq!(host, passing, "seen on the host bridge");
    // Live: the port unblocked, then blocked again with another.
    a.nics[0].blocked_outgoing_ports = vec![];
    lab.driver.update_nics(&a).expect("update_nics");
    assert!(!tables(&lab).contains(&format!("vmadm-{}", a.uuid)));
    let all = set(&["TCP25", "TCP26", "UDP25", "TCP6_25", "TCP6X25"]);
    let (victim, host) = send_frames(&lab, "ports", &a, &b);
    assert_eq!(victim, all, "unblocked: seen in the other jail");
    assert_eq!(host, all, "unblocked: seen on the host bridge");
    a.nics[0].blocked_outgoing_ports = vec![26, 25];
    lab.driver.update_nics(&a).expect("update_nics");
    let (victim, host) = send_frames(&lab, "ports", &a, &b);
    assert_eq!(victim, set(&["UDP25"]), "25 and 26 blocked");
    assert_eq!(host, set(&["UDP25"]), "25 and 26 blocked");
}

#[test]
fn a_vrrp_nic_sends_from_its_router_mac_and_primary_ip() {
    if !have_tools() {
        return;
    }
    let Some(lab) = Lab::new() else { return };
    let nics = json!({"nics": [
        {"interface": "net0", "mac": "02:00:c0:00:02:28", "nic_tag": "admin",
         "ips": ["192.0.2.40/24"], "primary": true},
        {"interface": "net1", "mac": "00:00:5e:00:01:07", "nic_tag": "admin",
         "ips": ["192.0.2.50/24"], "vrrp_vrid": 7, "vrrp_primary_ip": "192.0.2.40"},
    ]});
    let a = lab.jail(nics);
    let b = lab.net_jail("192.0.2.41", 0, json!({}));
    lab.start(&a);
    lab.start(&b);
    assert_eq!(
        a.nics[1].vrrp_primary_ip,
        Some("192.0.2.40".parse().expect("ip"))
    );
    // From the VRRP NIC, with the router MAC: the primary IP (net0's) is a
    // legitimate source there, as is the virtual address; every spoof of
    // the ordinary round still stops.
    for own in ["192.0.2.40", "192.0.2.50"] {
        let (victim, host) = send_frames_from(&lab, "send", &a, (1, own, own), &b);
        assert_eq!(
            victim,
            set(&["LEGIT"]),
            "from {own}: seen in the other jail"
        );
        assert_eq!(host, set(&["LEGIT"]), "from {own}: seen on the host bridge");
    }
    // Another address of the subnet is not.
    let legit = (1, "192.0.2.42", "192.0.2.50");
    let (victim, host) = send_frames_from(&lab, "send", &a, legit, &b);
    assert!(victim.is_empty() && host.is_empty(), "{victim:?} {host:?}");
    // The primary IP is the VRRP NIC's licence only: net0 keeps its own.
    let (victim, host) = send_frames_from(&lab, "send", &a, (0, "192.0.2.50", "192.0.2.40"), &b);
    assert!(victim.is_empty() && host.is_empty(), "{victim:?} {host:?}");

    // vmadm create: the MAC follows the VRID, and SmartOS's rules refuse.
    let vrrp = json!({"nic_tag": "admin", "vrrp_vrid": 9, "ips": ["192.0.2.59/24"],
                      "vrrp_primary_ip": "192.0.2.45"});
    let mut p = payload("192.0.2.45", json!({}));
    p["nics"].as_array_mut().expect("nics").push(vrrp.clone());
    let made = lab.vmadm_create(p);
    assert_eq!(made.nics[1].mac, "00:00:5e:00:01:09");
    assert_eq!(made.nics[1].vrrp_vrid, Some(9));
    let refused = |p: Value, msg: &str| {
        let out = lab.vmadm(&["create"], Some(&p.to_string()));
        crate::harness::assert_exit(&out, 1);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{err}");
    };
    // The router id is taken on this network.
    let mut p = payload("192.0.2.46", json!({}));
    let mut again = vrrp.clone();
    again["vrrp_primary_ip"] = json!("192.0.2.46");
    again["ips"] = json!(["192.0.2.60/24"]);
    p["nics"].as_array_mut().expect("nics").push(again);
    refused(p, "VRID 9");
    let mut p = payload("192.0.2.47", json!({}));
    let mut elsewhere = vrrp.clone();
    elsewhere["vrrp_vrid"] = json!(10);
    p["nics"].as_array_mut().expect("nics").push(elsewhere);
    refused(p, "vrrp_primary_ip must belong to the same VM");
}

/// Runs `antispoof_frames.py` with `args` in the namespace `ns_arg`;
/// returns what it printed.
fn frames(ns_arg: &str, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .args([ns_arg, "--", "python3", FRAMES])
        .args(args)
        .output()
        .expect("frames");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A jail whose one NIC (`mac`) takes its address by DHCP.
fn dhcp_jail(lab: &Lab, mac: &str) -> VmSpec {
    lab.jail(
        json!({"nics": [{"interface": "net0", "mac": mac, "nic_tag": "admin",
                              "ips": ["dhcp"], "primary": true}]}),
    )
}

#[test]
fn a_dhcp_nic_may_send_from_the_address_a_server_acknowledged() {
    if !have_tools() {
        return;
    }
    let Some(lab) = Lab::new() else { return };
    let mac = "02:00:c0:00:02:4d";
    let a = dhcp_jail(&lab, mac);
    let b = lab.net_jail("192.0.2.61", 0, json!({}));
    lab.start(&a);
    lab.start(&b);
    let host = format!("--net=/run/netns/{}", lab.hostns);
    // The closing frame leaves from 0.0.0.0, which every port allows.
    let from_lease = || send_frames_from(&lab, "send", &a, (0, "192.0.2.77", "0.0.0.0"), &b);
    let nothing = BTreeSet::new();
    assert_eq!(
        from_lease(),
        (nothing.clone(), nothing.clone()),
        "no lease yet"
    );
    // An offer, and an ACK for another client, teach nothing.
    frames(&host, &["reply", "rvtbr0", mac, "192.0.2.77", "2"]);
    frames(
        &host,
        &["reply", "rvtbr0", "02:00:c0:00:02:4e", "192.0.2.77", "5"],
    );
    assert_eq!(
        from_lease(),
        (nothing.clone(), nothing.clone()),
        "offer only"
    );
    // The server's ACK for this NIC's MAC makes the address a source.
    frames(&host, &["reply", "rvtbr0", mac, "192.0.2.77", "5"]);
    let legit = set(&["LEGIT"]);
    assert_eq!(from_lease(), (legit.clone(), legit), "after the ACK");
    // Giving the lease back ends it.
    frames(&netns(&a), &["release", "net0", mac, "192.0.2.77"]);
    assert_eq!(
        from_lease(),
        (nothing.clone(), nothing),
        "after the release"
    );
}

/// `addrconf` (SLAAC): beyond its configured sources, a NIC may send from
/// an address whose prefix a router advertised to it and whose interface
/// identifier is its own (EUI-64 of its MAC), as SmartOS has the link
/// learn SLAAC addresses; not from its identifier under a prefix nobody advertised,
/// nor from another identifier under the advertised prefix. A valid
/// lifetime of 0 withdraws the prefix.
#[test]
fn an_addrconf_nic_may_send_from_advertised_prefixes_with_its_own_identifier() {
    if !have_tools() {
        return;
    }
    let Some(lab) = Lab::new() else { return };
    let mac = "02:00:c0:00:02:5a";
    let a = lab.jail(
        json!({"nics": [{"interface": "net0", "mac": mac, "nic_tag": "admin",
                                      "ips": ["192.0.2.62/24", "addrconf"], "primary": true}]}),
    );
    let b = lab.net_jail("192.0.2.63", 0, json!({}));
    lab.start(&a);
    lab.start(&b);
    let host = format!("--net=/run/netns/{}", lab.hostns);
    // What the victim jail and the bridge see of frames from `src`.
    let from = |src: &str| {
        let in_victim = listener(&netns(&b), "net0");
        let on_host = listener(&host, "rvtbr0");
        frames(&netns(&a), &["send6", "net0", mac, src, "SLAAC6"]);
        (markers(in_victim), markers(on_host))
    };
    let passed = set(&["SLAAC6", "SLAACNA"]);
    let nothing = BTreeSet::new();
    let own = "2001:db8:1:2:0:c0ff:fe00:25a";
    assert_eq!(
        from(own),
        (nothing.clone(), nothing.clone()),
        "no prefix yet"
    );
    // A router advertises the prefix (after a source link-layer and an MTU
    // option, as routers lay them out).
    let router = "02:00:c0:00:02:01";
    frames(&host, &["ra", "rvtbr0", router, "2001:db8:1:2::", "3600"]);
    assert_eq!(from(own), (passed.clone(), passed.clone()), "after the RA");
    // Not another identifier in that prefix, nor this one elsewhere.
    assert_eq!(
        from("2001:db8:1:2::99"),
        (nothing.clone(), nothing.clone()),
        "another identifier"
    );
    assert_eq!(
        from("2001:db8:9:9:0:c0ff:fe00:25a"),
        (nothing.clone(), nothing.clone()),
        "a prefix nobody advertised"
    );
    // The prefix option first, as some routers send it, teaches too.
    frames(
        &host,
        &["ra", "rvtbr0", router, "2001:db8:3:4::", "7200", "pio,slla"],
    );
    assert_eq!(
        from("2001:db8:3:4:0:c0ff:fe00:25a"),
        (passed.clone(), passed),
        "prefix option first"
    );
    // A valid lifetime of 0 withdraws the prefix.
    frames(&host, &["ra", "rvtbr0", router, "2001:db8:1:2::", "0"]);
    assert_eq!(from(own), (nothing.clone(), nothing), "withdrawn");
}

/// Seconds from an nft duration such as `2h16m31s976ms` (milliseconds
/// dropped).
fn nft_seconds(text: &str) -> u64 {
    let mut total = 0;
    let mut num = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(d) = c.to_digit(10) {
            num = num * 10 + u64::from(d);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0
            }
            'm' => 60,
            's' => 1,
            other => panic!("nft duration {text}: unit {other}"),
        };
        total += num * unit;
        num = 0;
    }
    total
}

/// How many seconds `addr` has left in the learned set of `vm`'s first
/// port, `None` when the address is not there. (nft keeps showing an
/// element's first timeout; a refresh moves its expiry.)
fn learned_for(lab: &Lab, vm: &VmSpec, addr: &str) -> Option<u64> {
    let table = format!("vmadm-{}", vm.uuid);
    let out = lab.host(&["nft", "list", "set", "netdev", &table, "p0dhcp"]);
    let at = out.find(&format!("{addr} timeout "))?;
    let rest = &out[at..];
    let expires = rest.split(" expires ").nth(1)?;
    Some(nft_seconds(expires.split([' ', ',', '}', '\n']).next()?))
}

/// Asserts that `addr` is held longer than `low` seconds and at most
/// `high` (the bucket its lease time was rounded up to).
fn assert_held(lab: &Lab, vm: &VmSpec, addr: &str, low: u64, high: u64) {
    let left = learned_for(lab, vm, addr).expect("a learned address");
    assert!(
        low < left && left <= high,
        "{left} s left, not in ({low}, {high}]"
    );
}

#[test]
fn a_learned_lease_lasts_its_lease_time_ends_with_a_nak_and_outlives_an_update() {
    if !have_tools() {
        return;
    }
    let Some(lab) = Lab::new() else { return };
    let mac = "02:00:c0:00:02:4f";
    let mut a = dhcp_jail(&lab, mac);
    let b = lab.net_jail("192.0.2.62", 0, json!({}));
    lab.start(&a);
    lab.start(&b);
    let host = format!("--net=/run/netns/{}", lab.hostns);
    let jail = netns(&a);
    let lease = "192.0.2.78";
    let from_lease = |a: &VmSpec| send_frames_from(&lab, "send", a, (0, lease, "0.0.0.0"), &b);
    let legit = (set(&["LEGIT"]), set(&["LEGIT"]));
    let nothing = (BTreeSet::new(), BTreeSet::new());
    let ack = |lease_time: &str| {
        frames(&host, &["reply", "rvtbr0", mac, lease, "5", lease_time]);
    };
    // The lease time (option 51) behind the server id, rounded up to a
    // power of two seconds: 100 s is held 128 s.
    ack("100");
    assert_held(&lab, &a, lease, 64, 128);
    assert_eq!(from_lease(&a), legit, "after the ACK");
    // Right behind the message type; a renewal's ACK sets the new time.
    ack("first:7200");
    assert_held(&lab, &a, lease, 4096, 8192);
    // An infinite lease, and an ACK without a lease time (a day).
    ack("4294967295");
    assert_held(&lab, &a, lease, 3649 * 86_400, 3650 * 86_400);
    ack("-");
    assert_held(&lab, &a, lease, 65_536, 86_400);

    // A live NIC update keeps what was learned.
    a.nics[0].allowed_ips = vec![rvmadm::spec::NicAddr::Static {
        addr: "198.51.100.9".parse().expect("ip"),
        prefix: 32,
    }];
    lab.driver.update_nics(&a).expect("update_nics");
    assert!(lab
        .host(&["nft", "list", "tables"])
        .contains(&a.uuid.to_string()));
    assert_held(&lab, &a, lease, 65_536, 86_400);
    assert_eq!(from_lease(&a), legit, "after a live update");

    // A NAK answers a request: one for a transaction the jail never
    // started takes nothing away.
    let nak = |xid: &str| {
        // The jail receives the NAK exactly as the server sent it.
        let mut catcher = Command::new("nsenter")
            .args([&jail, "--", "python3", FRAMES, "catch", "net0"])
            .arg(format!("REPLY{xid}"))
            .arg("20")
            .stdout(Stdio::piped())
            .spawn()
            .expect("catch");
        let mut ready = [0u8; 6];
        catcher
            .stdout
            .as_mut()
            .expect("stdout")
            .read_exact(&mut ready)
            .expect("ready");
        assert_eq!(&ready, b"ready\n");
        let sent = frames(&host, &["reply", "rvtbr0", mac, "0.0.0.0", "6", "-", xid]);
        let got = catcher.wait_with_output().expect("catch");
        assert_eq!(
            String::from_utf8_lossy(&got.stdout).trim(),
            sent,
            "NAK {xid}"
        );
    };
    nak("0x5151");
    assert_eq!(from_lease(&a), legit, "after a NAK of another transaction");
    // Renewing (ciaddr), then NAKed: the address is gone.
    frames(&jail, &["request", "net0", mac, lease, "-", "0x5152"]);
    nak("0x5152");
    assert_eq!(learned_for(&lab, &a, lease), None);
    assert_eq!(from_lease(&a), nothing, "after the NAK of a renewal");
    // Learned again; rebooting (option 50), then NAKed: gone again.
    ack("3600");
    assert_eq!(from_lease(&a), legit, "after the second ACK");
    frames(&jail, &["request", "net0", mac, "0.0.0.0", lease, "0x5153"]);
    nak("0x5153");
    assert_eq!(from_lease(&a), nothing, "after the NAK of a reboot");
    // The same with the MAC's client id before option 50, as udhcpc sends.
    ack("3600");
    assert_eq!(from_lease(&a), legit, "after the third ACK");
    frames(
        &jail,
        &["request", "net0", mac, "0.0.0.0", lease, "0x5154", "mac"],
    );
    nak("0x5154");
    assert_eq!(from_lease(&a), nothing, "after the NAK of udhcpc's reboot");
}

fn payload(ip: &str, extra: Value) -> Value {
    let mut nic = json!({"nic_tag": "admin", "ips": [format!("{ip}/24")], "primary": true});
    if let (Some(n), Some(e)) = (nic.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            n.insert(k.clone(), v.clone());
        }
    }
    json!({
        "brand": "jail",
        "image_uuid": "11111111-2222-4333-8444-555555555555",
        "autoboot": false,
        "max_physical_memory": 64,
        "nics": [nic],
    })
}

#[test]
fn a_second_vm_may_not_take_a_used_mac_or_ip() {
    let Some(lab) = Lab::new() else { return };
    let first = lab.vmadm_create(payload("192.0.2.80", json!({})));
    let mac = first.nics[0].mac.clone();
    let refused = |p: Value, what: &str| {
        let out = lab.vmadm(&["create"], Some(&p.to_string()));
        crate::harness::assert_exit(&out, 1);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Conflict detected with another vm") && err.contains(what),
            "{err}"
        );
    };
    refused(payload("192.0.2.80", json!({})), "IP 192.0.2.80");
    refused(
        payload("192.0.2.81", json!({"mac": mac})),
        &format!("MAC {mac}"),
    );
    let listed = lab.vmadm(&["list", "-H", "-o", "uuid"], None);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        1,
        "refused creates left a VM"
    );
    // Allowed to spoof IPs: the address is not exclusive.
    lab.vmadm_create(payload("192.0.2.80", json!({"allow_ip_spoofing": true})));
    // An update taking the address is refused and changes nothing.
    let third = lab.vmadm_create(payload("192.0.2.82", json!({})));
    let u = third.uuid.to_string();
    let upd = json!({"update_nics": [{"mac": third.nics[0].mac, "ips": ["192.0.2.80/24"]}]});
    let out = lab.vmadm(&["update", &u], Some(&upd.to_string()));
    crate::harness::assert_exit(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Conflict detected"));
    let got = lab.vmadm(&["get", &u], None);
    let obj: Value = serde_json::from_slice(&got.stdout).expect("json");
    assert_eq!(obj["nics"][0]["ips"], json!(["192.0.2.82/24"]));
}

#[test]
fn dhcp_client_ids_are_kept_and_named_as_unenforced() {
    let Some(lab) = Lab::new() else { return };
    let notice = "nics.*.allowed_dhcp_cids is stored but not enforced on this host";
    let p = payload(
        "192.0.2.90",
        json!({"allowed_dhcp_cids": ["0x01020000000001", "0x00030001020000000001"]}),
    );
    let out = lab.vmadm(&["create"], Some(&p.to_string()));
    crate::harness::assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(notice), "{err}");
    let listed = lab.vmadm(&["list", "-H", "-o", "uuid"], None);
    let uuid = String::from_utf8_lossy(&listed.stdout).trim().to_string();
    let got = lab.vmadm(&["get", &uuid], None);
    let obj: Value = serde_json::from_slice(&got.stdout).expect("json");
    assert_eq!(
        obj["nics"][0]["allowed_dhcp_cids"],
        json!(["0x01020000000001", "0x00030001020000000001"])
    );
    let mac = obj["nics"][0]["mac"].as_str().expect("mac").to_string();
    // An update of the NICs names it again while one is set …
    let upd = json!({"update_nics": [{"mac": mac, "allowed_dhcp_cids": ["0x0102"]}]});
    let out = lab.vmadm(&["update", &uuid], Some(&upd.to_string()));
    crate::harness::assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains(notice));
    // … but not an update of something else …
    let out = lab.vmadm(&["update", &uuid], Some(r#"{"alias": "cids"}"#));
    crate::harness::assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("allowed_dhcp_cids"), "{err}");
    // … nor one that empties the list.
    let upd = json!({"update_nics": [{"mac": mac, "allowed_dhcp_cids": []}]});
    let out = lab.vmadm(&["update", &uuid], Some(&upd.to_string()));
    crate::harness::assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("allowed_dhcp_cids"), "{err}");
    // A malformed identifier is refused.
    let upd = json!({"update_nics": [{"mac": mac, "allowed_dhcp_cids": ["0x123"]}]});
    let out = lab.vmadm(&["update", &uuid], Some(&upd.to_string()));
    crate::harness::assert_exit(&out, 1);
}

#[test]
fn addresses_are_unique_per_bridge_and_racing_updates_cannot_share_one() {
    let Some(lab) = Lab::new() else { return };
    // A second tag for the lab's bridge (the config's last table is
    // [networks]), and a third with a bridge of its own.
    let config = &lab.env.as_ref().expect("zfs lab").config;
    let mut text = std::fs::read_to_string(config).expect("config");
    text.push_str("\nalias = \"rvtbr0\"\nother = \"rvtbr9\"\n");
    std::fs::write(config, text).expect("config");
    let first = lab.vmadm_create(payload("192.0.2.70", json!({})));
    let on = |tag: &str, ip: &str| payload(ip, json!({"nic_tag": tag}));
    // Another tag for the same bridge is the same network …
    let out = lab.vmadm(&["create"], Some(&on("alias", "192.0.2.70").to_string()));
    crate::harness::assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Conflict detected with another vm")
            && err.contains("IP 192.0.2.70 on bridge rvtbr0 (nic_tag alias)"),
        "{err}"
    );
    let mac = first.nics[0].mac.clone();
    let mut same_mac = on("alias", "192.0.2.71");
    same_mac["nics"][0]["mac"] = json!(mac);
    let out = lab.vmadm(&["create"], Some(&same_mac.to_string()));
    crate::harness::assert_exit(&out, 1);
    // … another bridge is not.
    lab.vmadm_create(on("other", "192.0.2.70"));

    // Two `vmadm update` processes race for one free address, 10 rounds:
    // each round exactly one wins.
    let racers: Vec<VmSpec> = (0..2)
        .map(|i| lab.vmadm_create(payload(&format!("192.0.2.{}", 72 + i), json!({}))))
        .collect();
    for round in 0..10 {
        let target = format!("198.51.100.{round}/24");
        let children: Vec<Child> = racers
            .iter()
            .map(|vm| {
                let upd = json!({"update_nics": [{"mac": vm.nics[0].mac, "ips": [target]}]});
                let env = lab.env.as_ref().expect("zfs lab");
                let mut child = Command::new("nsenter")
                    .arg(format!("--net=/run/netns/{}", lab.hostns))
                    .arg("--")
                    .arg(crate::harness::bin("vmadm"))
                    .args(["update", &vm.uuid.to_string()])
                    .env("VMADM_CONFIG", &env.config)
                    .env_remove("RUST_LOG")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("vmadm update");
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(upd.to_string().as_bytes())
                    .expect("payload");
                child
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().expect("wait"))
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(
            won,
            1,
            "round {round}: {:?}",
            outs.iter()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .collect::<Vec<_>>()
        );
        let lost = outs.iter().find(|o| !o.status.success()).expect("loser");
        assert!(String::from_utf8_lossy(&lost.stderr).contains("Conflict detected"));
        // Give the address back for the next round.
        for vm in &racers {
            let upd = json!({"update_nics": [{"mac": vm.nics[0].mac, "ips": [format!("192.0.2.{}/24", 72 + racers.iter().position(|r| r.uuid == vm.uuid).unwrap_or(0))]}]});
            let out = lab.vmadm(&["update", &vm.uuid.to_string()], Some(&upd.to_string()));
            crate::harness::assert_exit(&out, 0);
        }
    }
}
