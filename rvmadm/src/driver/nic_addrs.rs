//! Address helpers both drivers' NIC protections share: a MAC parsed to
//! its bytes and printed back, the IPv6 link-local address a kernel derives
//! from it, networks masked to their prefix and listed for a rule set. The
//! rules are text fed to a firewall (nft, pf), so only these parsed forms
//! are ever rendered into them.

use crate::spec::{Nic, NicAddr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The source networks a NIC whose IPs are checked may send from, as
/// (network, prefix) per family, sorted and without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// IPv4: 0.0.0.0 (a DHCP client before its lease), the NIC's own
    /// addresses, `vrrp_primary_ip`, `allowed_ips`.
    pub v4: Vec<(Ipv4Addr, u8)>,
    /// IPv6: `::`, the link-local address of `mac`, the NIC's own
    /// addresses, `allowed_ips`.
    pub v6: Vec<(Ipv6Addr, u8)>,
}

/// What SmartOS lets `nic` (whose MAC is `mac`) send from: its own static
/// addresses as hosts (their prefix is the subnet, not a licence for it),
/// the primary IP a VRRP NIC advertises from (SmartOS adds it to the VNIC's
/// allowed-ips) and `allowed_ips` as given. Err: an `addr/prefix` whose
/// prefix is too long for its family.
pub fn allowed_sources(nic: &Nic, mac: [u8; 6]) -> Result<Sources, String> {
    let mut v4 = vec![(Ipv4Addr::UNSPECIFIED, 32)];
    let mut v6 = vec![(Ipv6Addr::UNSPECIFIED, 128), (link_local(mac), 128)];
    let own = nic.ips.iter().filter_map(|a| match a {
        NicAddr::Static { addr, .. } => Some((*addr, if addr.is_ipv4() { 32 } else { 128 })),
        _ => None,
    });
    let own = own.chain(nic.vrrp_primary_ip.map(|ip| (IpAddr::V4(ip), 32)));
    let extra = nic.allowed_ips.iter().filter_map(|a| match a {
        NicAddr::Static { addr, prefix } => Some((*addr, *prefix)),
        _ => None,
    });
    for (addr, prefix) in own.chain(extra) {
        match addr {
            IpAddr::V4(a) if prefix <= 32 => v4.push((mask4(a, prefix), prefix)),
            IpAddr::V6(a) if prefix <= 128 => v6.push((mask6(a, prefix), prefix)),
            _ => return Err(format!("{addr}/{prefix}")),
        }
    }
    v4.sort();
    v4.dedup();
    v6.sort();
    v6.dedup();
    Ok(Sources { v4, v6 })
}

/// The TCP ports `nic` may not connect to, sorted, each once.
pub fn blocked_tcp_ports(nic: &Nic) -> Vec<u16> {
    let mut ports = nic.blocked_outgoing_ports.clone();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// `aa:bb:cc:dd:ee:ff` as six bytes; `None` for anything else.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The six bytes as lowercase `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The IPv6 link-local address the kernel derives from `mac` (EUI-64).
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

/// `a` with the bits after `prefix` (at most 32) cleared.
pub fn mask4(a: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(a);
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(bits & mask)
}

/// `a` with the bits after `prefix` (at most 128) cleared.
pub fn mask6(a: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(a);
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    Ipv6Addr::from(bits & mask)
}

/// Networks as a comma-separated list, a host (`full` bits) without its
/// prefix: the element list of an nft set or a pf table.
pub fn net_list<A: std::fmt::Display>(nets: &[(A, u8)], full: u8) -> String {
    nets.iter()
        .map(|(a, p)| {
            if *p == full {
                a.to_string()
            } else {
                format!("{a}/{p}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_junk_is_refused() {
        let m = parse_mac("02:AB:00:00:00:01").unwrap();
        assert_eq!(mac_text(m), "02:ab:00:00:00:01");
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "0:00:00:00:00:01",
            "zz:00:00:00:00:01",
            "02:00:00:00:00:01 x",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn masks_and_lists() {
        assert_eq!(
            mask4("198.51.100.7".parse().unwrap(), 24),
            Ipv4Addr::new(198, 51, 100, 0)
        );
        assert_eq!(
            mask4("198.51.100.7".parse().unwrap(), 0),
            Ipv4Addr::UNSPECIFIED
        );
        assert_eq!(
            mask6("2001:db8:1::9".parse().unwrap(), 48),
            "2001:db8:1::".parse::<Ipv6Addr>().unwrap()
        );
        let nets = [
            (Ipv4Addr::new(192, 0, 2, 1), 32),
            (Ipv4Addr::new(198, 51, 100, 0), 24),
        ];
        assert_eq!(net_list(&nets, 32), "192.0.2.1, 198.51.100.0/24");
    }
}
