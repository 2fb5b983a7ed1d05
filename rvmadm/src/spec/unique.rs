//! MAC and IP uniqueness across VMs: a NIC may not take a MAC or a static
//! IP that another NIC already holds on the same network, as SmartOS's
//! vmadm refuses at create and update.
//!
//! "Same network" is the same host bridge: the caller resolves each
//! `nic_tag` through vmadm.toml's `[networks]`, so two tags naming one
//! bridge are one network (a tag with no bridge is a network of its own).
//! For IPs it is also the same `vlan_id`, since VLANs are separate address
//! spaces. SmartOS compares nic_tags, where a tag is one physical link. A
//! conflict is waived where spoofing of that kind is allowed on either NIC:
//! such a NIC may send as any address anyway (a VRRP pair, a router). The
//! VM's own NICs are checked against each other too. A VRRP router id
//! (`vrrp_vrid`) is exclusive on its network like a MAC (it is the MAC,
//! `00:00:5e:00:01:<vrid>`), with no waiver. Pure: the caller hands in the
//! other records, so it works the same for create and update.
//!
//! [`check_vrrp`] holds SmartOS's rules between the NICs of one VM that
//! VRRP brings: a VRRP NIC names the address it advertises from
//! (`vrrp_primary_ip`), which must be a static IP of one of the VM's
//! non-VRRP NICs, and a VM may not have VRRP NICs only.

use super::record::VmRecord;
use super::vm::NicAddr;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use uuid::Uuid;

/// A MAC or IP that another NIC already holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Conflict detected with another vm, please check the MAC, IP, and VRID: {what} {value} on {network} is already used by {owner}")]
pub struct Conflict {
    /// `MAC`, `IP` or `VRID`.
    pub what: &'static str,
    /// The address in conflict.
    pub value: String,
    /// The network both NICs are on: `bridge <name> (nic_tag <tag>)`, or
    /// `nic_tag <tag>` for a tag no bridge is configured for.
    pub network: String,
    /// `VM <uuid>`, or `another NIC of this VM`.
    pub owner: String,
}

/// What the check needs of one NIC.
struct NicKey {
    mac: Option<String>,
    /// The resolved network: bridge name, or the tag when it has none.
    net: Network,
    vlan: u64,
    ips: Vec<IpAddr>,
    ip_spoofing: bool,
    mac_spoofing: bool,
    vrid: Option<u64>,
}

fn flag(n: &Map<String, Value>, k: &str) -> bool {
    matches!(n.get(k), Some(Value::Bool(true)))
}

/// Where a NIC's frames go: a configured bridge, or (no bridge known for
/// its tag) the tag itself; never equal to each other.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Network {
    Bridge { bridge: String, tag: String },
    Tag(String),
}

impl Network {
    fn describe(&self) -> String {
        match self {
            Network::Bridge { bridge, tag } => format!("bridge {bridge} (nic_tag {tag})"),
            Network::Tag(tag) => format!("nic_tag {tag}"),
        }
    }

    fn same(&self, other: &Network) -> bool {
        match (self, other) {
            (Network::Bridge { bridge: a, .. }, Network::Bridge { bridge: b, .. }) => a == b,
            (Network::Tag(a), Network::Tag(b)) => a == b,
            _ => false,
        }
    }
}

fn key(n: &Map<String, Value>, bridges: &BTreeMap<String, String>) -> NicKey {
    let ips = static_ips(n).collect();
    NicKey {
        mac: n
            .get("mac")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase),
        net: {
            let tag = n
                .get("nic_tag")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match bridges.get(&tag) {
                Some(bridge) => Network::Bridge {
                    bridge: bridge.clone(),
                    tag,
                },
                None => Network::Tag(tag),
            }
        },
        vlan: n.get("vlan_id").and_then(Value::as_u64).unwrap_or(0),
        ips,
        // A DHCP server NIC may spoof IPs too (SmartOS turns ip-nospoof off).
        ip_spoofing: flag(n, "allow_ip_spoofing")
            || flag(n, "allow_dhcp_spoofing")
            || flag(n, "dhcp_server"),
        mac_spoofing: flag(n, "allow_mac_spoofing"),
        vrid: n.get("vrrp_vrid").and_then(Value::as_u64),
    }
}

fn clash(a: &NicKey, b: &NicKey, owner: &str) -> Option<Conflict> {
    if !a.net.same(&b.net) {
        return None;
    }
    let conflict = |what, value: String| Conflict {
        what,
        value,
        network: a.net.describe(),
        owner: owner.to_string(),
    };
    if let (Some(x), Some(y)) = (a.vrid, b.vrid) {
        if x == y {
            return Some(conflict("VRID", x.to_string()));
        }
    }
    if !a.mac_spoofing && !b.mac_spoofing {
        if let (Some(x), Some(y)) = (&a.mac, &b.mac) {
            if x == y {
                return Some(conflict("MAC", x.clone()));
            }
        }
    }
    if a.vlan == b.vlan && !a.ip_spoofing && !b.ip_spoofing {
        if let Some(ip) = a.ips.iter().find(|ip| b.ips.contains(ip)) {
            return Some(conflict("IP", ip.to_string()));
        }
    }
    None
}

/// Refuses `vm` (the record about to be saved, uuid `uuid`) when one of its
/// NICs takes a MAC, IP or VRID held by another of its NICs or by a NIC of
/// one of `others` (every stored VM; `uuid`'s own record is skipped) on the
/// same network; `bridges` maps nic_tags to bridges (vmadm.toml).
pub fn check_unique<'a>(
    uuid: &Uuid,
    vm: &VmRecord,
    others: impl IntoIterator<Item = (&'a Uuid, &'a VmRecord)>,
    bridges: &BTreeMap<String, String>,
) -> Result<(), Conflict> {
    let mine: Vec<NicKey> = vm.nics.iter().flatten().map(|n| key(n, bridges)).collect();
    if mine.is_empty() {
        return Ok(());
    }
    for (i, a) in mine.iter().enumerate() {
        for b in &mine[i + 1..] {
            if let Some(c) = clash(a, b, "another NIC of this VM") {
                return Err(c);
            }
        }
    }
    for (other, rec) in others {
        if other == uuid {
            continue;
        }
        let owner = format!("VM {other}");
        for b in rec.nics.iter().flatten().map(|n| key(n, bridges)) {
            if let Some(c) = mine.iter().find_map(|a| clash(a, &b, &owner)) {
                return Err(c);
            }
        }
    }
    Ok(())
}

/// A VRRP NIC set up against SmartOS's rules (its messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VrrpError {
    /// A NIC has `vrrp_vrid` but no `vrrp_primary_ip`.
    #[error("vrrp_vrid set but not vrrp_primary_ip")]
    NoPrimaryIp,
    /// A `vrrp_primary_ip` is an address of a VRRP NIC.
    #[error("Cannot set vrrp_primary_ip to the IP of a VRRP nic")]
    PrimaryOnVrrpNic,
    /// A `vrrp_primary_ip` is no static IP of this VM's NICs.
    #[error("vrrp_primary_ip must belong to the same VM")]
    PrimaryElsewhere,
    /// Every NIC of the VM is a VRRP NIC.
    #[error("VM cannot contain only VRRP nics")]
    OnlyVrrp,
    /// Two NICs of the VM have the same router id.
    #[error("Cannot add multiple NICs with the same VRID: {0}")]
    SameVrid(u64),
}

fn static_ips(n: &Map<String, Value>) -> impl Iterator<Item = IpAddr> + '_ {
    n.get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(NicAddr::parse)
        .filter_map(|a| match a {
            NicAddr::Static { addr, .. } => Some(addr),
            _ => None,
        })
}

/// Refuses `vm` when its VRRP NICs break SmartOS's rules.
pub fn check_vrrp(vm: &VmRecord) -> Result<(), VrrpError> {
    let nics: Vec<&Map<String, Value>> = vm.nics.iter().flatten().collect();
    let vrid = |n: &Map<String, Value>| n.get("vrrp_vrid").and_then(Value::as_u64);
    let primary = |n: &Map<String, Value>| {
        n.get("vrrp_primary_ip")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
    };
    if nics.is_empty() || !nics.iter().any(|n| vrid(n).is_some()) {
        return Ok(());
    }
    if nics.iter().all(|n| vrid(n).is_some()) {
        return Err(VrrpError::OnlyVrrp);
    }
    let mut seen = Vec::new();
    for n in nics.iter().filter_map(|n| vrid(n)) {
        if seen.contains(&n) {
            return Err(VrrpError::SameVrid(n));
        }
        seen.push(n);
    }
    let primaries: Vec<IpAddr> = nics.iter().filter_map(|n| primary(n)).collect();
    for n in &nics {
        if vrid(n).is_none() {
            continue;
        }
        if primary(n).is_none() {
            return Err(VrrpError::NoPrimaryIp);
        }
        if static_ips(n).any(|ip| primaries.contains(&ip)) {
            return Err(VrrpError::PrimaryOnVrrpNic);
        }
    }
    for p in &primaries {
        if !nics
            .iter()
            .filter(|n| vrid(n).is_none())
            .any(|n| static_ips(n).any(|ip| ip == *p))
        {
            return Err(VrrpError::PrimaryElsewhere);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(nics: Value) -> VmRecord {
        VmRecord::from_map(json!({ "nics": nics }).as_object().unwrap().clone())
    }

    fn nic(mac: &str, ip: &str) -> Value {
        json!({"mac": mac, "nic_tag": "admin", "ips": [format!("{ip}/24")]})
    }

    /// admin and external share one bridge; ext has its own.
    fn nets() -> BTreeMap<String, String> {
        [("admin", "br0"), ("external", "br0"), ("ext", "br1")]
            .into_iter()
            .map(|(t, b)| (t.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn taken_mac_or_ip_is_refused_with_the_smartos_message() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let old = rec(json!([nic("02:00:00:00:00:01", "192.0.2.10")]));
        let same_ip = rec(json!([nic("02:00:00:00:00:02", "192.0.2.10")]));
        let e = check_unique(&b, &same_ip, [(&a, &old)], &nets()).unwrap_err();
        assert_eq!(e.what, "IP");
        let text = e.to_string();
        assert!(
            text.starts_with(
                "Conflict detected with another vm, please check the MAC, IP, and VRID"
            ) && text.contains(&a.to_string()),
            "{text}"
        );
        // MACs compare case-insensitively.
        let same_mac = rec(json!([nic("02:00:00:00:00:01", "192.0.2.11")]));
        assert_eq!(
            check_unique(&b, &same_mac, [(&a, &old)], &nets())
                .unwrap_err()
                .what,
            "MAC"
        );
        let upper = rec(json!([{"mac": "02:00:00:00:00:01".to_uppercase(), "nic_tag": "admin"}]));
        assert!(check_unique(&b, &upper, [(&a, &old)], &nets()).is_err());
        // Different addresses: fine; an update of the VM itself: fine.
        let other = rec(json!([nic("02:00:00:00:00:02", "192.0.2.11")]));
        assert!(check_unique(&b, &other, [(&a, &old)], &nets()).is_ok());
        assert!(check_unique(&a, &old, [(&a, &old)], &nets()).is_ok());
    }

    #[test]
    fn other_networks_and_spoofing_nics_do_not_conflict() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let old = rec(json!([nic("02:00:00:00:00:01", "192.0.2.10")]));
        let other_tag = rec(json!([{"mac": "02:00:00:00:00:01", "nic_tag": "ext",
                                     "ips": ["192.0.2.10/24"]}]));
        assert!(check_unique(&b, &other_tag, [(&a, &old)], &nets()).is_ok());
        // Another VLAN: same IP allowed, same MAC not.
        let vlan = rec(
            json!([{"mac": "02:00:00:00:00:02", "nic_tag": "admin", "vlan_id": 5,
                                "ips": ["192.0.2.10/24"]}]),
        );
        assert!(check_unique(&b, &vlan, [(&a, &old)], &nets()).is_ok());
        let vlan_mac = rec(json!([{"mac": "02:00:00:00:00:01", "nic_tag": "admin", "vlan_id": 5}]));
        assert!(check_unique(&b, &vlan_mac, [(&a, &old)], &nets()).is_err());
        let spoof_ip = rec(json!([{"mac": "02:00:00:00:00:02", "nic_tag": "admin",
                                    "ips": ["192.0.2.10/24"], "allow_ip_spoofing": true}]));
        assert!(check_unique(&b, &spoof_ip, [(&a, &old)], &nets()).is_ok());
        let spoof_mac = rec(json!([{"mac": "02:00:00:00:00:01", "nic_tag": "admin",
                                     "allow_mac_spoofing": true}]));
        assert!(check_unique(&b, &spoof_mac, [(&a, &old)], &nets()).is_ok());
        // dhcp / addrconf hold no address.
        let dhcp = rec(json!([{"mac": "02:00:00:00:00:03", "nic_tag": "admin", "ips": ["dhcp"]}]));
        let dhcp2 = rec(json!([{"mac": "02:00:00:00:00:04", "nic_tag": "admin", "ips": ["dhcp"]}]));
        assert!(check_unique(&b, &dhcp, [(&a, &dhcp2)], &nets()).is_ok());
    }

    #[test]
    fn vrrp_nics_follow_smartos_rules() {
        let base =
            json!({"mac": "02:00:00:00:00:01", "nic_tag": "admin", "ips": ["192.0.2.10/24"]});
        let vrrp = |vrid: u64, primary: Option<&str>, ip: &str| {
            let mut n = json!({"mac": format!("00:00:5e:00:01:{vrid:02x}"), "nic_tag": "admin",
                               "vrrp_vrid": vrid, "ips": [format!("{ip}/24")]});
            if let Some(p) = primary {
                n["vrrp_primary_ip"] = json!(p);
            }
            n
        };
        let ok = rec(json!([base, vrrp(7, Some("192.0.2.10"), "192.0.2.50")]));
        assert_eq!(check_vrrp(&ok), Ok(()));
        let cases = [
            (
                json!([base, vrrp(7, None, "192.0.2.50")]),
                VrrpError::NoPrimaryIp,
            ),
            (
                json!([base, vrrp(7, Some("192.0.2.11"), "192.0.2.50")]),
                VrrpError::PrimaryElsewhere,
            ),
            (
                json!([base, vrrp(7, Some("192.0.2.50"), "192.0.2.50")]),
                VrrpError::PrimaryOnVrrpNic,
            ),
            (
                json!([vrrp(7, Some("192.0.2.10"), "192.0.2.50")]),
                VrrpError::OnlyVrrp,
            ),
            (
                json!([
                    base,
                    vrrp(7, Some("192.0.2.10"), "192.0.2.50"),
                    vrrp(7, Some("192.0.2.10"), "192.0.2.51")
                ]),
                VrrpError::SameVrid(7),
            ),
        ];
        for (nics, want) in cases {
            assert_eq!(check_vrrp(&rec(nics.clone())), Err(want), "{nics}");
        }
        // Another VM on the network may not take the router id, even when
        // it may spoof MACs.
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let mut other = vrrp(7, Some("192.0.2.20"), "192.0.2.60");
        other["allow_mac_spoofing"] = json!(true);
        let theirs = rec(json!([nic("02:00:00:00:00:02", "192.0.2.20"), other]));
        let e = check_unique(&b, &theirs, [(&a, &ok)], &nets()).unwrap_err();
        assert_eq!((e.what, e.value.as_str()), ("VRID", "7"));
    }

    #[test]
    fn tags_on_one_bridge_are_one_network() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let old = rec(json!([nic("02:00:00:00:00:01", "192.0.2.10")]));
        // "external" is another tag for admin's bridge br0: same network.
        let ip = rec(json!([{"mac": "02:00:00:00:00:02", "nic_tag": "external",
                              "ips": ["192.0.2.10/24"]}]));
        let e = check_unique(&b, &ip, [(&a, &old)], &nets()).unwrap_err();
        assert_eq!(e.what, "IP");
        assert_eq!(e.network, "bridge br0 (nic_tag external)");
        assert!(e.to_string().contains("on bridge br0 (nic_tag external)"));
        let mac = rec(json!([{"mac": "02:00:00:00:00:01", "nic_tag": "external"}]));
        assert_eq!(
            check_unique(&b, &mac, [(&a, &old)], &nets())
                .unwrap_err()
                .what,
            "MAC"
        );
        // A tag without a bridge is only ever equal to itself, never to a
        // bridge that happens to carry its name.
        let odd = nets();
        let br0_tag = rec(json!([{"mac": "02:00:00:00:00:01", "nic_tag": "br0"}]));
        assert!(check_unique(&b, &br0_tag, [(&a, &old)], &odd).is_ok());
        let mut again = rec(json!([{"mac": "02:00:00:00:00:05", "nic_tag": "br0"}]));
        assert!(check_unique(&b, &again, [(&a, &br0_tag)], &odd).is_ok());
        again = rec(json!([{"mac": "02:00:00:00:00:01", "nic_tag": "br0"}]));
        let e = check_unique(&b, &again, [(&a, &br0_tag)], &odd).unwrap_err();
        assert_eq!(e.network, "nic_tag br0");
    }

    #[test]
    fn two_nics_of_one_vm_may_not_share() {
        let a = Uuid::new_v4();
        let twice = rec(json!([
            nic("02:00:00:00:00:01", "192.0.2.10"),
            nic("02:00:00:00:00:02", "192.0.2.10")
        ]));
        let e = check_unique(&a, &twice, [], &nets()).unwrap_err();
        assert_eq!(e.owner, "another NIC of this VM");
    }
}
