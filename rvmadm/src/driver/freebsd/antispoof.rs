//! Anti-spoofing on the host end of each epair: SmartOS's NIC protections
//! (`allow_mac_spoofing`, `allow_ip_spoofing` with `allowed_ips`,
//! `allow_dhcp_spoofing`, `allow_restricted_traffic`,
//! `blocked_outgoing_ports`, VRRP) as FreeBSD's own tools enforce them on an
//! if_bridge(4) member. See docs/freebsd.md, "Anti-spoofing".
//!
//! Three mechanisms, each chosen after reading how the bridge hands frames
//! to filters (sys/net/if_bridge.c):
//!
//! * MAC: the bridge itself. `ifconfig <bridge> static <port> <mac>` puts the
//!   NIC's MAC in the forwarding table on its port, and `maxaddr <port> 1`
//!   caps the port at that one address: `bridge_forward()` (and the path
//!   for frames to the host) drop a frame whose source address the port may
//!   not learn (`bridge_rtupdate()` fails with ENOSPC when `bif_addrmax` is
//!   reached, and static entries count towards it). pf cannot do this here:
//!   its IP rules never see a MAC, and for bridged frames the bridge runs
//!   the link-layer hooks only on the way out of the destination member.
//! * IP, DHCP server, router advertisements, blocked ports: pf rules in an
//!   anchor of the VM's own, `vmadm/<uuid>`. With
//!   `net.link.bridge.pfil_member=1` the bridge runs the inet/inet6 hooks
//!   with the member as the interface for every frame it forwards
//!   (`bridge_forward()` → `bridge_pfil(..., src_if, PFIL_IN)`), so a rule
//!   `block drop in quick on <port>` sees exactly what the jail sends. The
//!   rules are data: a file written below the zonepath from Rust (never
//!   reachable from the tenant) and loaded with `pfctl -a vmadm/<uuid> -f`,
//!   which replaces that anchor's rules and tables as one transaction and
//!   touches no other anchor. Every value in it is rendered from a parsed
//!   type (bytes of a MAC, `IpAddr`, `u16`) or a derived interface name.
//! * Restricted traffic: with filtering on, the bridge drops every frame
//!   that is not IPv4, IPv6 or ARP when `net.link.bridge.pfil_onlyip=1`
//!   (`bridge_pfil()`); that is a bridge-wide switch, so it cannot be lifted
//!   for one NIC (`allow_restricted_traffic` is reported as not enforced).
//!
//! What FreeBSD's filters cannot see is left out and documented: ARP
//! payloads (pf passes ARP unfiltered), neighbour-discovery targets and
//! link-layer options, a DHCP request's client hardware address, and leases
//! learned from DHCP (a NIC that takes an address by `dhcp`/`addrconf` gets
//! no source check for that family).
//!
//! The first lines of the file record which port carried which MAC at boot,
//! so a live update ([`update_plan`]) gives each running port the rules of
//! the NIC it really carries, and a port whose NIC left the record is shut.

use super::guard;
use super::layout;
use super::names;
use super::plan::{argv, Action, Plan, PlanError, Step};
use crate::config::Config;
use crate::driver::nic_addrs::{
    allowed_sources, blocked_tcp_ports, mac_text, net_list, parse_mac, Sources,
};
use crate::spec::{Nic, NicAddr, VmSpec};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The rules file, below the zonepath (the outer jail's root, which runs
/// only the host's tools; the tenant's root is `root/` below it).
pub const PF_CONF: &str = "vmadm-pf.conf";

/// The pf anchor holding one VM's rules: `vmadm/<uuid>`.
pub fn anchor(vm: &VmSpec) -> String {
    format!("vmadm/{}", vm.uuid)
}

fn conf_path(vm: &VmSpec) -> String {
    format!("{}/{PF_CONF}", layout::outer_root(vm))
}

/// One port's protections, every value validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFilter {
    /// Host end of the epair (the bridge member).
    pub port: String,
    /// The NIC's MAC.
    pub mac: [u8; 6],
    /// Pin the MAC on the bridge (`allow_mac_spoofing` off, untagged NIC).
    pub pin_mac: bool,
    /// Allowed IPv4 sources as (network, prefix); `None`: not checked.
    pub v4: Option<Vec<(Ipv4Addr, u8)>>,
    /// Allowed IPv6 sources as (network, prefix); `None`: not checked.
    pub v6: Option<Vec<(Ipv6Addr, u8)>>,
    /// Drop router advertisements and redirects.
    pub block_ra: bool,
    /// Drop DHCP/DHCPv6 server and relay messages.
    pub block_dhcp_server: bool,
    /// TCP destination ports dropped.
    pub blocked_tcp: Vec<u16>,
    /// Drop everything (a running port whose NIC left the record).
    pub shut: bool,
}

/// A host end as `names` makes them: ASCII letters and digits only.
fn valid_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= names::MAX_IFNAME && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

fn refused(field: &str, value: impl Into<String>, why: &str) -> PlanError {
    PlanError::refused(field, value, why)
}

impl PortFilter {
    /// The filter of `nic`, whose host end is `port`.
    pub fn new(nic: &Nic, port: String) -> Result<PortFilter, PlanError> {
        if !valid_port(&port) {
            return Err(refused("nics", port, "host interface name is not plain"));
        }
        let mac = parse_mac(&nic.mac)
            .ok_or_else(|| refused("nics.mac", nic.mac.clone(), "must be aa:bb:cc:dd:ee:ff"))?;
        // A DHCP server may also spoof IPs, as in SmartOS.
        let ip_spoofing = nic.allow_ip_spoofing || nic.allow_dhcp_spoofing;
        let Sources { v4, v6 } = allowed_sources(nic, mac)
            .map_err(|a| refused("nics.allowed_ips", a, "prefix too long"))?;
        // An address leased by DHCP or made by SLAAC is not known here (pf
        // cannot learn it from the server's answer): that family goes
        // unchecked rather than cutting the NIC off.
        let dhcp = nic.ips.iter().any(|a| matches!(a, NicAddr::Dhcp));
        let slaac = nic.ips.iter().any(|a| matches!(a, NicAddr::Addrconf));
        let blocked_tcp = blocked_tcp_ports(nic);
        Ok(PortFilter {
            port,
            mac,
            pin_mac: !nic.allow_mac_spoofing && nic.vlan_id == 0,
            v4: (!ip_spoofing && !dhcp).then_some(v4),
            v6: (!ip_spoofing && !slaac).then_some(v6),
            block_ra: !ip_spoofing,
            block_dhcp_server: !nic.allow_dhcp_spoofing,
            blocked_tcp,
            shut: false,
        })
    }

    /// A port that carries no NIC of the record any more: nothing passes.
    fn shut(port: String, mac: [u8; 6]) -> PortFilter {
        PortFilter {
            port,
            mac,
            pin_mac: false,
            v4: None,
            v6: None,
            block_ra: false,
            block_dhcp_server: false,
            blocked_tcp: Vec::new(),
            shut: true,
        }
    }

    /// True when the port needs pf rules.
    fn needs_pf(&self) -> bool {
        self.shut
            || self.v4.is_some()
            || self.v6.is_some()
            || self.block_ra
            || self.block_dhcp_server
            || !self.blocked_tcp.is_empty()
    }
}

/// The filters of every NIC of `vm`, on the ports start creates for them.
pub fn filters(vm: &VmSpec) -> Result<Vec<PortFilter>, PlanError> {
    vm.nics
        .iter()
        .enumerate()
        .map(|(i, nic)| PortFilter::new(nic, names::host_end(&vm.uuid, i)))
        .collect()
}

/// The whole rules file: the port map, then each port's tables and rules.
pub fn conf_text(vm: &VmSpec, filters: &[PortFilter]) -> String {
    let mut out = format!(
        "# written by vmadm: anti-spoofing rules of VM {}, loaded into pf anchor \"{}\"\n",
        vm.uuid,
        anchor(vm)
    );
    for f in filters {
        let _ = writeln!(out, "# port {} {}", f.port, mac_text(f.mac));
    }
    for (i, f) in filters.iter().enumerate() {
        if let Some(v4) = &f.v4 {
            let _ = writeln!(out, "table <p{i}v4> const {{ {} }}", net_list(v4, 32));
        }
        if let Some(v6) = &f.v6 {
            let _ = writeln!(out, "table <p{i}v6> const {{ {} }}", net_list(v6, 128));
        }
    }
    for (i, f) in filters.iter().enumerate() {
        let on = format!("block drop in quick on {}", f.port);
        if f.shut {
            let _ = writeln!(out, "{on} all");
            continue;
        }
        if f.v4.is_some() {
            let _ = writeln!(out, "{on} inet from ! <p{i}v4> to any");
        }
        if f.v6.is_some() {
            let _ = writeln!(out, "{on} inet6 from ! <p{i}v6> to any");
        }
        if f.block_ra {
            // 134: router advertisement, 137: redirect.
            let _ = writeln!(out, "{on} inet6 proto ipv6-icmp icmp6-type {{ 134, 137 }}");
        }
        if f.block_dhcp_server {
            let _ = writeln!(out, "{on} proto udp from any port {{ 67, 547 }} to any");
        }
        if !f.blocked_tcp.is_empty() {
            let ports: Vec<String> = f.blocked_tcp.iter().map(u16::to_string).collect();
            let _ = writeln!(
                out,
                "{on} proto tcp from any to any port {{ {} }}",
                ports.join(", ")
            );
        }
    }
    out
}

/// The ports recorded in a rules file (`# port <name> <mac>` lines), each
/// checked to be one of this VM's host ends; anything else is ignored.
pub fn booted_ports(vm: &VmSpec, conf: &str) -> Vec<(String, [u8; 6])> {
    let own: Vec<String> = (0..names::MAX_NICS)
        .map(|i| names::host_end(&vm.uuid, i))
        .collect();
    conf.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("# port ")?.split(' ');
            let port = w.next()?;
            let mac = parse_mac(w.next()?)?;
            (w.next().is_none() && own.iter().any(|o| o == port)).then(|| (port.to_string(), mac))
        })
        .collect()
}

fn pfil_check(name: &str, why: &str) -> Step {
    Step::action(Action::Expect {
        argv: argv(["sysctl", "-n", &format!("net.link.bridge.{name}")]),
        expect: "1".into(),
        message: format!(
            "the VM's NIC protections need net.link.bridge.{name}=1 ({why}); \
             set it in /etc/sysctl.conf (see docs/freebsd.md, \"Anti-spoofing\")"
        ),
    })
}

/// The host settings the protections of `vm`'s NICs rely on, checked
/// before anything changes.
fn host_checks(vm: &VmSpec, filters: &[PortFilter]) -> Vec<Step> {
    let mut steps = Vec::new();
    let restricted = vm.nics.iter().any(|n| !n.allow_restricted_traffic);
    if restricted {
        steps.push(pfil_check(
            "pfil_onlyip",
            "the bridge then forwards only IPv4, IPv6 and ARP",
        ));
    }
    // bridge_pfil() does nothing at all (not even the pfil_onlyip drop)
    // unless a member or the bridge is filtered and some filter is hooked.
    if restricted || filters.iter().any(PortFilter::needs_pf) {
        steps.push(pfil_check(
            "pfil_member",
            "pf then sees each frame on the port it came in on",
        ));
        // pfctl(8): `-s Running` exits non-zero while pf is disabled, when
        // loaded rules would silently filter nothing.
        steps.push(Step::run(argv(["pfctl", "-s", "Running"])));
    }
    steps
}

/// Start: the host checks, run before the start changes anything.
pub fn start_checks(vm: &VmSpec) -> Result<Vec<Step>, PlanError> {
    Ok(host_checks(vm, &filters(vm)?))
}

/// The rules file and its load. At `start` the load's undo flushes the
/// anchor when a later step fails (the start already emptied it, so there
/// is nothing to flush when no port needs pf).
fn load_steps(vm: &VmSpec, filters: &[PortFilter], start: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    let pf = filters.iter().any(PortFilter::needs_pf);
    // Written even without rules: it records which port carries which MAC.
    steps.push(Step::action(Action::WriteFile {
        root: layout::outer_root(vm),
        rel: PF_CONF.into(),
        contents: conf_text(vm, filters),
        mode: 0o600,
    }));
    if pf {
        let load = argv(["pfctl", "-a", &anchor(vm), "-f", &conf_path(vm)]);
        steps.push(if start {
            Step::run_undo(load, flush(vm))
        } else {
            Step::run(load)
        });
    } else if !start {
        // Nothing to filter any more: empty the anchor. Best effort, so a
        // host without pf can still update a VM whose NICs are all open.
        steps.push(Step::try_run(flush(vm)));
    }
    steps
}

/// `pfctl -a vmadm/<uuid> -F rules`: empties this VM's anchor only (its
/// tables are not `persist`, so they go with the last rule using them).
/// `-F all` is avoided on purpose: it also flushes the host's states.
fn flush(vm: &VmSpec) -> crate::exec::Argv {
    argv(["pfctl", "-a", &anchor(vm), "-F", "rules"])
}

/// Start: the rules are loaded before the first port joins its bridge.
pub fn start_steps(vm: &VmSpec) -> Result<Vec<Step>, PlanError> {
    if vm.nics.is_empty() {
        return Ok(Vec::new());
    }
    let f = filters(vm)?;
    Ok(load_steps(vm, &f, true))
}

/// After `addm`: pin the NIC's MAC on its port (start; the entry goes with
/// the member when the epair is destroyed).
pub fn pin_steps(nic: &Nic, port: &str, bridge: &str) -> Result<Vec<Step>, PlanError> {
    let f = PortFilter::new(nic, port.to_string())?;
    if !f.pin_mac {
        return Ok(Vec::new());
    }
    let mac = mac_text(f.mac);
    Ok(vec![
        Step::run(argv(["ifconfig", bridge, "static", port, &mac])),
        Step::run(argv(["ifconfig", bridge, "maxaddr", port, "1"])),
    ])
}

/// Teardown (stop, cleanup, delete, a start's stale clearing): empty the
/// anchor; on a host without pf this fails and is only noted.
pub fn teardown(vm: &VmSpec) -> Vec<Step> {
    if vm.nics.is_empty() {
        return Vec::new();
    }
    vec![Step::try_run(flush(vm))]
}

/// A live NIC update of a running VM: every port booted (`booted`, from the
/// rules file) takes the rules of the NIC with its MAC in `vm`, and its MAC
/// pin follows `allow_mac_spoofing` (`maxaddr` 1, or 0 = no limit); a port
/// whose NIC was removed drops everything until the next boot; a NIC added
/// gets its port at the next boot. The anchor is replaced in one load.
pub fn update_plan(
    vm: &VmSpec,
    cfg: &Config,
    booted: &[(String, [u8; 6])],
) -> Result<Plan, PlanError> {
    guard::check_paths(vm)?;
    let mut p = Plan::new();
    if booted.is_empty() {
        // No port runs: nothing to filter.
        return Ok(p);
    }
    let mut new = Vec::new();
    for (port, mac) in booted {
        let nic = vm.nics.iter().find(|n| parse_mac(&n.mac) == Some(*mac));
        match nic {
            Some(nic) => {
                let f = PortFilter::new(nic, port.clone())?;
                if nic.vlan_id == 0 {
                    let bridge = guard::bridge_for(nic, cfg)?;
                    let max = if f.pin_mac { "1" } else { "0" };
                    p.push(Step::run(argv(["ifconfig", &bridge, "maxaddr", port, max])));
                }
                new.push(f);
            }
            None => new.push(PortFilter::shut(port.clone(), *mac)),
        }
    }
    for s in host_checks(vm, &new)
        .into_iter()
        .chain(load_steps(vm, &new, false))
    {
        p.push(s);
    }
    Ok(p)
}

/// The ports of a running VM when its rules file is missing (booted by a
/// version without it): assumed to carry the record's NICs in order.
pub fn ports_by_position(vm: &VmSpec) -> Vec<(String, [u8; 6])> {
    vm.nics
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((names::host_end(&vm.uuid, i), parse_mac(&n.mac)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm(nics: serde_json::Value) -> VmSpec {
        crate::driver::test_vm(json!({ "nics": nics }))
    }

    fn cfg() -> Config {
        let mut c = Config::default();
        c.networks.insert("admin".into(), "bridge0".into());
        c
    }

    #[test]
    fn conf_golden() {
        let v = vm(json!([
            {"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
             "ips": ["192.0.2.10/24", "2001:db8::5/64"],
             "allowed_ips": ["198.51.100.7/24", "2001:db8:1::/48", "192.0.2.10"],
             "blocked_outgoing_ports": [587, 25, 25]},
            {"interface": "net1", "mac": "02:00:00:00:00:02", "nic_tag": "admin",
             "ips": ["dhcp", "addrconf"]},
            {"interface": "net2", "mac": "02:00:00:00:00:03", "nic_tag": "admin",
             "allow_ip_spoofing": true, "allow_mac_spoofing": true,
             "allow_dhcp_spoofing": true}
        ]));
        let f = filters(&v).unwrap();
        let p = |i| names::host_end(&v.uuid, i);
        let want = format!(
            "# written by vmadm: anti-spoofing rules of VM 6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60, loaded into pf anchor \"vmadm/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60\"\n\
             # port {p0} 02:00:00:00:00:01\n\
             # port {p1} 02:00:00:00:00:02\n\
             # port {p2} 02:00:00:00:00:03\n\
             table <p0v4> const {{ 0.0.0.0, 192.0.2.10, 198.51.100.0/24 }}\n\
             table <p0v6> const {{ ::, 2001:db8::5, 2001:db8:1::/48, fe80::ff:fe00:1 }}\n\
             block drop in quick on {p0} inet from ! <p0v4> to any\n\
             block drop in quick on {p0} inet6 from ! <p0v6> to any\n\
             block drop in quick on {p0} inet6 proto ipv6-icmp icmp6-type {{ 134, 137 }}\n\
             block drop in quick on {p0} proto udp from any port {{ 67, 547 }} to any\n\
             block drop in quick on {p0} proto tcp from any to any port {{ 25, 587 }}\n\
             block drop in quick on {p1} inet6 proto ipv6-icmp icmp6-type {{ 134, 137 }}\n\
             block drop in quick on {p1} proto udp from any port {{ 67, 547 }} to any\n",
            p0 = p(0),
            p1 = p(1),
            p2 = p(2)
        );
        assert_eq!(conf_text(&v, &f), want, "\n{}", conf_text(&v, &f));
        assert!(f[0].pin_mac && f[1].pin_mac && !f[2].pin_mac);
        assert!(!f[2].needs_pf());
    }

    #[test]
    fn dhcp_server_may_spoof_ips_but_keeps_its_mac() {
        let v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01",
                            "nic_tag": "admin", "ips": ["192.0.2.10/24"],
                            "allow_dhcp_spoofing": true}]));
        let f = &filters(&v).unwrap()[0];
        assert!(f.v4.is_none() && f.v6.is_none() && !f.block_ra && !f.block_dhcp_server);
        assert!(f.pin_mac);
        let pins = pin_steps(&v.nics[0], &f.port, "bridge0").unwrap();
        assert_eq!(pins.len(), 2);
    }

    #[test]
    fn vrrp_primary_ip_is_an_allowed_source() {
        let v = vm(json!([
            {"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
             "ips": ["192.0.2.10/24"], "primary": true},
            {"interface": "net1", "mac": "00:00:5e:00:01:07", "nic_tag": "admin", "vrrp_vrid": 7,
             "vrrp_primary_ip": "192.0.2.10", "ips": ["192.0.2.20/24"]}
        ]));
        let f = filters(&v).unwrap();
        assert_eq!(mac_text(f[1].mac), "00:00:5e:00:01:07");
        let v4 = f[1].v4.as_ref().unwrap();
        assert!(v4.contains(&("192.0.2.10".parse().unwrap(), 32)));
        assert!(v4.contains(&("192.0.2.20".parse().unwrap(), 32)));
    }

    #[test]
    fn hostile_values_never_reach_the_rules() {
        let mut v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01",
                                "nic_tag": "admin"}]));
        v.nics[0].mac = "02:00:00:00:00:01 } pass quick all #".into();
        assert!(filters(&v).is_err());
        assert!(start_steps(&v).is_err());
        let nic = v.nics[0].clone();
        assert!(PortFilter::new(&nic, "vj0 all pass".into()).is_err());
    }

    #[test]
    fn booted_ports_are_read_back_and_foreign_lines_ignored() {
        let v = vm(json!([
            {"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin"},
            {"interface": "net1", "mac": "02:00:00:00:00:02", "nic_tag": "admin"}
        ]));
        let mut text = conf_text(&v, &filters(&v).unwrap());
        text.push_str("# port em0 02:00:00:00:00:09\n# port vjx 02:00\n");
        let ports = booted_ports(&v, &text);
        assert_eq!(ports, ports_by_position(&v));
        assert_eq!(ports.len(), 2);
    }

    #[test]
    fn update_follows_macs_and_shuts_removed_ports() {
        let booted = ports_by_position(&vm(json!([
            {"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin", "ips": ["192.0.2.10/24"]},
            {"interface": "net1", "mac": "02:00:00:00:00:02", "nic_tag": "admin", "ips": ["192.0.2.11/24"]}
        ])));
        // net0 removed; net1 now first, with a new address and MAC spoofing.
        let now = vm(json!([
            {"interface": "net1", "mac": "02:00:00:00:00:02", "nic_tag": "admin",
             "ips": ["192.0.2.12/24"], "allow_mac_spoofing": true},
            {"interface": "net2", "mac": "02:00:00:00:00:03", "nic_tag": "admin"}
        ]));
        let plan = update_plan(&now, &cfg(), &booted).unwrap();
        let text = plan.render();
        let (p0, p1) = (&booted[0].0, &booted[1].0);
        assert!(
            text.contains(&format!("\"maxaddr\",\"{p1}\",\"0\"")),
            "{text}"
        );
        assert!(!text.contains(&format!("\"maxaddr\",\"{p0}\"")), "{text}");
        assert!(
            text.contains(&format!("block drop in quick on {p0} all")),
            "{text}"
        );
        assert!(
            text.contains("table <p1v4> const { 0.0.0.0, 192.0.2.12 }"),
            "{text}"
        );
        assert!(!text.contains("192.0.2.11"), "{text}");
        assert!(
            text.contains("\"pfctl\",\"-a\",\"vmadm/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60\",\"-f\"")
        );
        // A NIC added to a running VM has no port yet.
        assert!(!text.contains(&names::host_end(&now.uuid, 2)), "{text}");
    }

    #[test]
    fn restricted_traffic_alone_needs_filtering_on_but_no_rules() {
        let v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01",
                            "nic_tag": "admin", "allow_ip_spoofing": true,
                            "allow_mac_spoofing": true, "allow_dhcp_spoofing": true}]));
        let checks: Vec<String> = start_checks(&v)
            .unwrap()
            .iter()
            .filter_map(|s| match &s.action {
                Action::Run(a) | Action::Expect { argv: a, .. } => Some(a.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            checks,
            [
                "sysctl -n net.link.bridge.pfil_onlyip",
                "sysctl -n net.link.bridge.pfil_member",
                "pfctl -s Running"
            ]
        );
        let load = start_steps(&v).unwrap();
        assert!(load.iter().all(|s| !matches!(s.action, Action::Run(_))));
    }

    #[test]
    fn open_nics_need_no_pf() {
        let v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01",
                            "nic_tag": "admin", "allow_ip_spoofing": true,
                            "allow_mac_spoofing": true, "allow_dhcp_spoofing": true,
                            "allow_restricted_traffic": true}]));
        let steps = start_steps(&v).unwrap();
        let argvs: Vec<String> = steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Run(a) | Action::Expect { argv: a, .. } => Some(a.to_string()),
                _ => None,
            })
            .collect();
        assert!(argvs.is_empty(), "{argvs:?}");
        assert_eq!(steps.len(), 1, "only the port map is written");
        // An update that opens every port empties the anchor, best effort.
        let up = update_plan(&v, &cfg(), &ports_by_position(&v)).unwrap();
        let last = up.steps.last().unwrap();
        assert_eq!(last.on_failure, crate::driver::freebsd::OnFailure::Continue);
        assert_eq!(
            last.action,
            Action::Run(argv(["pfctl", "-a", &anchor(&v), "-F", "rules"]))
        );
        assert!(start_steps(&vm(json!([]))).unwrap().is_empty());
        assert!(teardown(&vm(json!([]))).is_empty());
    }
}
