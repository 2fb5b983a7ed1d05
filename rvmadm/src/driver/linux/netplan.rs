//! The network plan of a jail: what `ip`/`bridge` must do so the jail's
//! namespace holds its NICs, addresses and routes.
//!
//! Pure functions from a [`VmSpec`] and the `[networks]` map to batches of
//! `ip -batch` / `bridge -batch` lines, so a start costs a handful of
//! processes whatever the number of NICs, and plans are unit-tested without
//! touching any interface. Every value placed in a batch line was validated
//! (addresses parse as IPs, MACs and names are checked) so a line can never
//! carry a second command.

use super::names::{host_veth, link_alias, netns_name};
use crate::spec::{NicAddr, VmSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// How NICs with a `vlan_id` are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlanMode {
    /// Bridge VLAN filtering: the host end is an untagged member of its VLAN
    /// on the shared bridge (tagged on the bridge's uplink).
    Filtering,
    /// For kernels built without bridge VLAN filtering: every VLAN of a
    /// bridge gets its own vmadm-made bridge ([`vlan_bridge`]), so jails on
    /// different VLANs still share no layer-2 domain (no uplink tagging).
    BridgePerVlan,
}

/// The bridge standing for VLAN `vid` of `base` in [`VlanMode::BridgePerVlan`]:
/// at most 10 characters of the base name, `v`, the VLAN id (≤ 15 in all).
pub fn vlan_bridge(base: &str, vid: u16) -> String {
    let cut = base
        .char_indices()
        .nth(10)
        .map(|(i, _)| i)
        .unwrap_or(base.len());
    format!("{}v{vid}", &base[..cut])
}

/// The steps to give a jail its network, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPlan {
    /// Bridges the jail's NICs join, each with the nic_tag that named it.
    pub bridges: Vec<(String, String)>,
    /// Bridges to create first (missing ones, when `create_bridges`).
    pub create: Vec<String>,
    /// `ip -batch` lines run in the host namespace; the first one creates
    /// the jail's named network namespace.
    pub host: Vec<String>,
    /// `bridge -batch` lines for VLAN membership (empty without VLANs).
    pub vlan: Vec<String>,
    /// `ip -n <netns> -batch` lines run for the jail's namespace.
    pub jail: Vec<String>,
    /// Host-side veth names, for cleanup.
    pub host_ifaces: Vec<String>,
    /// Notes for the log (unsupported address kinds …).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("nic {iface}: nic_tag {tag:?} is not mapped to a bridge; add it under [networks] in vmadm.toml")]
    UnknownTag { iface: String, tag: String },
    #[error("nic {iface}: bridge {bridge:?} (nic_tag {tag:?}) does not exist; create it or set create_bridges = true in vmadm.toml")]
    NoBridge {
        iface: String,
        tag: String,
        bridge: String,
    },
    #[error("nic {iface}: invalid {what} {value:?}")]
    Invalid {
        iface: String,
        what: &'static str,
        value: String,
    },
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !s.starts_with('-')
}

fn valid_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl NetPlan {
    /// The plan for a kernel without IPv6 (booted with `ipv6.disable=1`),
    /// which refuses `addrgenmode` (an IPv6 setting) and gives no interface
    /// an IPv6 address anyway: the same steps without it.
    pub fn without_ipv6(mut self) -> NetPlan {
        self.host.retain(|l| !l.ends_with(" addrgenmode none"));
        for l in &mut self.host {
            *l = l.replacen(" addrgenmode none ", " ", 1);
        }
        self
    }
}

/// Every bridge the NICs of `vm` join in `vlan_mode`: their nic_tags'
/// bridges and, per VLAN with [`VlanMode::BridgePerVlan`], the VLAN's own
/// bridge. A start plans with these taken as present, which spares it
/// asking the host (`ip link show`) on every boot. Unmapped tags are left
/// out; [`plan`] refuses them.
pub fn needed_bridges(
    vm: &VmSpec,
    networks: &BTreeMap<String, String>,
    vlan_mode: VlanMode,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for nic in &vm.nics {
        let Some(bridge) = networks.get(&nic.nic_tag) else {
            continue;
        };
        if nic.vlan_id > 0 && vlan_mode == VlanMode::BridgePerVlan {
            out.insert(vlan_bridge(bridge, nic.vlan_id));
        }
        out.insert(bridge.clone());
    }
    out
}

/// Builds the plan. `existing` holds the bridges present on the host now.
pub fn plan(
    vm: &VmSpec,
    networks: &BTreeMap<String, String>,
    create_bridges: bool,
    existing: &BTreeSet<String>,
    vlan_mode: VlanMode,
) -> Result<NetPlan, PlanError> {
    let ns = netns_name(&vm.uuid);
    let mut p = NetPlan::default();
    let mut vlan_bridges = BTreeSet::new();
    if !vm.nics.is_empty() {
        p.jail.push("link set dev lo up".into());
    }
    for (i, nic) in vm.nics.iter().enumerate() {
        let iface = nic.interface.clone();
        let invalid = |what: &'static str, value: &str| PlanError::Invalid {
            iface: iface.clone(),
            what,
            value: value.to_string(),
        };
        if !valid_ifname(&nic.interface) {
            return Err(invalid("interface name", &nic.interface));
        }
        if !valid_mac(&nic.mac) {
            return Err(invalid("mac", &nic.mac));
        }
        let bridge = networks
            .get(&nic.nic_tag)
            .ok_or_else(|| PlanError::UnknownTag {
                iface: iface.clone(),
                tag: nic.nic_tag.clone(),
            })?
            .clone();
        if !valid_ifname(&bridge) {
            return Err(invalid("bridge name", &bridge));
        }
        if !existing.contains(&bridge) && !p.create.contains(&bridge) {
            if !create_bridges {
                return Err(PlanError::NoBridge {
                    iface,
                    tag: nic.nic_tag.clone(),
                    bridge,
                });
            }
            p.create.push(bridge.clone());
        }
        let per_vlan = nic.vlan_id > 0 && vlan_mode == VlanMode::BridgePerVlan;
        let bridge = if per_vlan {
            // Derived from a bridge the config allows, so always vmadm's to make.
            let b = vlan_bridge(&bridge, nic.vlan_id);
            if !existing.contains(&b) && !p.create.contains(&b) {
                p.create.push(b.clone());
            }
            b
        } else {
            bridge
        };
        if !p.bridges.iter().any(|(_, b)| *b == bridge) {
            p.bridges.push((nic.nic_tag.clone(), bridge.clone()));
        }
        let host = host_veth(&vm.uuid, i);
        let mtu = nic.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
        // The jail end is created directly inside the jail's namespace, so
        // it never exists (even briefly) in the host namespace.
        p.host.push(format!(
            "link add name {host}{mtu} type veth peer name {} address {}{mtu} netns {ns}",
            nic.interface, nic.mac
        ));
        // The alias marks the link as this jail's: teardown deletes by it.
        // `addrgenmode none` keeps the kernel from giving the host end an
        // IPv6 link-local address: the host is a switch port on the
        // tenant's segment, never a node on it (no address, so no DAD,
        // router solicitation or MLD report from the host there). The
        // kernel makes that address only once the link has carrier, which
        // it gets when the jail end comes up in the jail's batch, after
        // this line; so setting the mode in the line that brings the port
        // up is in time, and costs no line or process of its own.
        p.host.push(format!(
            "link set dev {host} addrgenmode none alias {} master {bridge} up",
            link_alias(&vm.uuid)
        ));
        if nic.vlan_id > 0 && !per_vlan {
            vlan_bridges.insert(bridge.clone());
            p.vlan.push(format!(
                "vlan add dev {host} vid {} pvid untagged",
                nic.vlan_id
            ));
            // A port joins its bridge as an untagged member of VLAN 1 (the
            // bridge's default pvid); that membership goes unless VLAN 1 is
            // the one the NIC asked for.
            if nic.vlan_id != 1 {
                p.vlan.push(format!("vlan del dev {host} vid 1"));
            }
        }
        p.host_ifaces.push(host);
        for addr in &nic.ips {
            match addr {
                NicAddr::Static { addr, prefix } => {
                    p.jail
                        .push(format!("addr add {addr}/{prefix} dev {}", nic.interface));
                }
                other => p.warnings.push(format!(
                    "nic {}: {other} addresses are left to the jail's own client",
                    nic.interface
                )),
            }
        }
        p.jail.push(format!("link set dev {} up", nic.interface));
    }
    // Bridges first: created ones must exist before a port joins them, and
    // VLAN filtering must be on before the per-port VLAN lines run.
    let mut pre = vec![format!("netns add {ns}")];
    // A bridge vmadm makes is a switch for jails, never a host interface:
    // no IPv4 address, and `addrgenmode none` before it comes up so the
    // kernel does not give it an IPv6 link-local one either. The host's
    // own addresses and routes stay exactly as they were.
    for b in &p.create {
        pre.push(format!("link add name {b} type bridge"));
        pre.push(format!("link set dev {b} addrgenmode none"));
        pre.push(format!("link set dev {b} up"));
    }
    for b in &vlan_bridges {
        pre.push(format!("link set dev {b} type bridge vlan_filtering 1"));
    }
    pre.append(&mut p.host);
    p.host = pre;
    if vm.nics.is_empty() {
        return Ok(NetPlan::default());
    }
    p.jail.extend(default_routes(vm));
    for (dest, gw) in &vm.routes {
        let ok_dest = dest
            .split_once('/')
            .map(|(a, l)| a.parse::<IpAddr>().is_ok() && l.parse::<u8>().is_ok())
            .unwrap_or_else(|| dest.parse::<IpAddr>().is_ok());
        match gw.parse::<IpAddr>() {
            Ok(gw) if ok_dest => p.jail.push(format!("route add {dest} via {gw}")),
            _ => p
                .warnings
                .push(format!("route {dest} via {gw}: not an IP route, skipped")),
        }
    }
    Ok(p)
}

/// One default route per address family: the primary NIC's gateway first,
/// else the first NIC that has one.
fn default_routes(vm: &VmSpec) -> Vec<String> {
    let mut nics: Vec<_> = vm.nics.iter().collect();
    nics.sort_by_key(|n| !n.primary);
    let mut out = Vec::new();
    for v6 in [false, true] {
        let found = nics.iter().find_map(|n| {
            n.gateways
                .iter()
                .find(|g| g.is_ipv6() == v6)
                .map(|g| (g, &n.interface))
        });
        if let Some((gw, iface)) = found {
            let fam = if v6 { "-6 " } else { "" };
            out.push(format!("{fam}route add default via {gw} dev {iface}"));
        }
    }
    out
}

/// Parses `ip -o link show [type bridge]` into interface names.
pub fn parse_link_names(out: &str) -> BTreeSet<String> {
    out.lines()
        .filter_map(|l| {
            let name = l.split(':').nth(1)?.trim();
            Some(name.split('@').next().unwrap_or(name).to_string())
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// The links of `ip -o link show` whose alias is exactly `alias`.
pub fn links_with_alias(out: &str, alias: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            l.rsplit_once("alias ")
                .is_some_and(|(_, a)| a.trim_end() == alias)
        })
        .filter_map(|l| {
            let name = l.split(':').nth(1)?.trim();
            Some(name.split('@').next().unwrap_or(name).to_string())
        })
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm(nics: serde_json::Value) -> VmSpec {
        crate::driver::test_vm(json!({
            "nics": nics,
            "routes": {"198.51.100.0/24": "192.0.2.254", "10.1.1.1": "nics[0]"}
        }))
    }

    fn nets() -> BTreeMap<String, String> {
        [
            ("admin".to_string(), "br0".to_string()),
            ("ext".into(), "br1".into()),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn two_nics_one_vlan() {
        let v = vm(json!([
            {"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
             "ips": ["192.0.2.10/24"], "gateways": ["192.0.2.1"], "mtu": 1400},
            {"interface": "net1", "mac": "02:00:00:00:00:02", "nic_tag": "ext", "vlan_id": 7,
             "ips": ["203.0.113.5/24", "dhcp"], "gateways": ["203.0.113.1"], "primary": true}
        ]));
        let existing: BTreeSet<String> = ["br0".to_string(), "br1".to_string()].into();
        let p = plan(&v, &nets(), false, &existing, VlanMode::Filtering).unwrap();
        let ns = "vmadm-6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60";
        let u = "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60";
        let (h0, h1) = (host_veth(&v.uuid, 0), host_veth(&v.uuid, 1));
        assert_eq!(
            p.host,
            vec![
                format!("netns add {ns}"),
                "link set dev br1 type bridge vlan_filtering 1".to_string(),
                format!("link add name {h0} mtu 1400 type veth peer name net0 address 02:00:00:00:00:01 mtu 1400 netns {ns}"),
                format!("link set dev {h0} addrgenmode none alias vmadm:{u} master br0 up"),
                format!("link add name {h1} type veth peer name net1 address 02:00:00:00:00:02 netns {ns}"),
                format!("link set dev {h1} addrgenmode none alias vmadm:{u} master br1 up"),
            ]
        );
        assert_eq!(
            p.vlan,
            vec![
                format!("vlan add dev {h1} vid 7 pvid untagged"),
                format!("vlan del dev {h1} vid 1")
            ]
        );
        assert_eq!(
            p.jail,
            vec![
                "link set dev lo up",
                "addr add 192.0.2.10/24 dev net0",
                "link set dev net0 up",
                "addr add 203.0.113.5/24 dev net1",
                "link set dev net1 up",
                // the primary NIC's gateway wins
                "route add default via 203.0.113.1 dev net1",
                "route add 198.51.100.0/24 via 192.0.2.254",
            ]
        );
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert_eq!(p.host_ifaces, vec![h0, h1]);
    }

    #[test]
    fn missing_bridge_is_created_only_when_allowed() {
        let v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin"}]));
        let none = BTreeSet::new();
        let e = plan(&v, &nets(), false, &none, VlanMode::Filtering).unwrap_err();
        assert!(e.to_string().contains("create_bridges"), "{e}");
        let p = plan(&v, &nets(), true, &none, VlanMode::Filtering).unwrap();
        assert_eq!(p.create, vec!["br0"]);
        assert_eq!(p.host[1], "link add name br0 type bridge");
        assert_eq!(p.host[2], "link set dev br0 addrgenmode none");
        assert_eq!(p.host[3], "link set dev br0 up");
        // Nothing on the host side gives any interface an address.
        assert!(
            p.host.iter().all(|l| !l.starts_with("addr")),
            "{:?}",
            p.host
        );
    }

    #[test]
    fn without_ipv6_no_line_sets_an_ipv6_mode() {
        let v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin"}]));
        let p = plan(&v, &nets(), true, &BTreeSet::new(), VlanMode::Filtering).unwrap();
        let h = host_veth(&v.uuid, 0);
        let u = "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60";
        let q = p.clone().without_ipv6();
        assert!(
            q.host.iter().all(|l| !l.contains("addrgenmode")),
            "{:?}",
            q.host
        );
        assert_eq!(q.host.len(), p.host.len() - 1);
        assert!(q.host.contains(&"link set dev br0 up".to_string()));
        assert!(q
            .host
            .contains(&format!("link set dev {h} alias vmadm:{u} master br0 up")));
        assert_eq!((q.jail, q.vlan), (p.jail, p.vlan));
    }

    #[test]
    fn unknown_tag_and_bad_values_are_refused() {
        let v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "nope"}]));
        assert!(matches!(
            plan(&v, &nets(), true, &BTreeSet::new(), VlanMode::Filtering),
            Err(PlanError::UnknownTag { .. })
        ));
        let v =
            vm(json!([{"interface": "net0 up", "mac": "02:00:00:00:00:01", "nic_tag": "admin"}]));
        assert!(matches!(
            plan(&v, &nets(), true, &BTreeSet::new(), VlanMode::Filtering),
            Err(PlanError::Invalid { .. })
        ));
    }

    #[test]
    fn no_nics_no_steps() {
        let v = vm(json!([]));
        let p = plan(&v, &nets(), false, &BTreeSet::new(), VlanMode::Filtering).unwrap();
        assert!(p.host.is_empty() && p.jail.is_empty());
    }

    #[test]
    fn vlan_without_filtering_gets_its_own_bridge() {
        let v = vm(
            json!([{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
                           "vlan_id": 4094}]),
        );
        let existing: BTreeSet<String> = ["br0".to_string()].into();
        let p = plan(&v, &nets(), false, &existing, VlanMode::BridgePerVlan).unwrap();
        assert_eq!(p.create, vec!["br0v4094"]);
        assert!(p.vlan.is_empty());
        assert!(p.host.iter().any(|l| l
            .starts_with(&format!("link set dev {} ", host_veth(&v.uuid, 0)))
            && l.ends_with(" master br0v4094 up")));
        assert!(!p.host.iter().any(|l| l.contains("vlan_filtering")));
        assert_eq!(
            vlan_bridge("averyverylongb", 4094),
            "averyveryl".to_string() + "v4094"
        );
        assert!(vlan_bridge("averyverylongb", 4094).len() <= 15);
    }

    #[test]
    fn vlan_1_keeps_its_only_vlan() {
        let v = vm(
            json!([{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
                           "vlan_id": 1}]),
        );
        let existing: BTreeSet<String> = ["br0".to_string()].into();
        let p = plan(&v, &nets(), false, &existing, VlanMode::Filtering).unwrap();
        let h = host_veth(&v.uuid, 0);
        assert_eq!(
            p.vlan,
            vec![format!("vlan add dev {h} vid 1 pvid untagged")]
        );
    }

    #[test]
    fn links_are_found_by_their_exact_alias() {
        let out = "4: vmaaa@if3: <UP> mtu 1500 master br0\\    link/ether 02:2c:bf:f9:d2:91 brd ff:ff:ff:ff:ff:ff\\    alias vmadm:6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60\n\
                   5: vmbbb@if3: <UP> mtu 1500\\    link/ether 02:2c:bf:f9:d2:92 brd ff:ff:ff:ff:ff:ff\\    alias vmadm:6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f61\n\
                   6: vmccc@if3: <UP> mtu 1500\\    link/ether 02:2c:bf:f9:d2:93 brd ff:ff:ff:ff:ff:ff\n";
        assert_eq!(
            links_with_alias(out, "vmadm:6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60"),
            vec!["vmaaa"]
        );
        assert!(links_with_alias(out, "vmadm:6b8b4567").is_empty());
    }

    #[test]
    fn bridges_are_parsed_from_ip_output() {
        let out = "5: br0: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue\n7: vmbr1@if3: <...> mtu 1500\n";
        let b = parse_link_names(out);
        assert!(b.contains("br0") && b.contains("vmbr1"));
    }
}
