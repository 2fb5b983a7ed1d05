//! Anti-spoofing on the host end of each jail NIC: SmartOS's
//! `allow_ip_spoofing`, `allow_mac_spoofing`, `allow_dhcp_spoofing` and
//! `allow_restricted_traffic` (all off by default) as nftables rules.
//!
//! Jails keep CAP_NET_RAW, so whatever a jail's kernel or its root user puts
//! on the wire is checked where it leaves the jail: the ingress hook of the
//! host-side veth (a `netdev` table, one per jail, named from its uuid). Each
//! port gets one base chain bound to that device alone, so a frame walks
//! only its own jail's rules, and a dropped frame never reaches the bridge,
//! its forwarding table, another jail or the host. The whole table goes in
//! and out as one `nft -f -` transaction (one process); the text is built
//! here from validated values only (interface names, MACs, parsed IPs), so no
//! payload string ever reaches the nft parser.
//!
//! What each protection drops, after illumos' `mac_protect.c`:
//! * MAC (`allow_mac_spoofing` off): frames whose source MAC is not the NIC's.
//! * restricted (`allow_restricted_traffic` off): ether types other than
//!   IPv4, IPv6 and ARP (so also VLAN-tagged frames).
//! * IP (`allow_ip_spoofing` off, and not a DHCP server NIC): IPv4 sources
//!   and ARP sender addresses outside `ips` (host addresses) + `allowed_ips`
//!   (0.0.0.0 allowed); ARP whose sender MAC is not the NIC's; IPv6 sources
//!   outside those plus `::` and the link-local address derived from the MAC;
//!   neighbour advertisements for targets outside them; NS/NA/RS whose
//!   link-layer option names another MAC; and router advertisements and
//!   redirects (SmartOS lets a zone advertise from its own link-local
//!   address; here only a NIC that may spoof IPs, as a router must, may).
//! * DHCP (`allow_dhcp_spoofing`/`dhcp_server` off): DHCP and DHCPv6
//!   server/relay messages (source port 67 or 547), and DHCP requests whose
//!   client hardware address is not the NIC's MAC. As in SmartOS, a DHCP
//!   server NIC also may spoof IPs.
//! * learned leases (`dhcp` in `ips`, IP protection on): an IPv4 address
//!   a DHCP server acknowledges for the NIC's MAC, seen by an egress chain
//!   on the same port (frames to the jail), is a source too, as illumos
//!   learns it from the ACK, for the lease time the ACK gives; a NAK of the
//!   request that named it, or the jail's RELEASE, ends it, and a live
//!   update keeps it (see [`dhcp_rules`] and [`refresh_text`]).
//! * learned prefixes (`addrconf` in `ips`, IP protection on): an IPv6
//!   source, or a neighbour advertisement's target, with the NIC's EUI-64
//!   interface identifier under a 64-bit prefix a router advertised to the
//!   jail (seen by the same egress chain), for the prefix's valid lifetime
//!   (see [`slaac_rules`]); SmartOS has the link learn SLAAC addresses for
//!   such a NIC (its `dynamic-methods` linkprop).
//! * VRRP (`vrrp_vrid`): the NIC's MAC is the router's
//!   (`00:00:5e:00:01:<vrid>`, set at validation), so the MAC rule holds it to
//!   that one; its `vrrp_primary_ip` joins the allowed sources.
//! * `blocked_outgoing_ports`: TCP (over IPv4 or IPv6) to those destination
//!   ports, whatever the flags. SmartOS adds a `transport=tcp,remote_port=N`
//!   flow with no bandwidth to the VNIC, so UDP is not blocked there either.

use super::driver::LinuxDriver;
use super::names::{host_veth, JailDir};
use crate::driver::nic_addrs::{
    allowed_sources, blocked_tcp_ports, mac_text, net_list, parse_mac, Sources,
};
use crate::driver::{DriverError, DriverResult};
use crate::exec::{Argv, CommandRunner, ExecError, Output, Pipe, StreamChild};
use crate::spec::{Nic, NicAddr, VmSpec};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use uuid::Uuid;

/// What one port's rules are made from: everything validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortFilter {
    /// Host end of the veth pair (the device the chain hooks).
    pub port: String,
    /// The NIC's MAC, six bytes.
    pub mac: [u8; 6],
    /// Source MAC may differ from `mac`.
    pub mac_spoofing: bool,
    /// Source addresses are not checked (also set by DHCP server NICs).
    pub ip_spoofing: bool,
    /// May act as a DHCP server.
    pub dhcp_spoofing: bool,
    /// May send non-IP ether types.
    pub restricted_traffic: bool,
    /// Allowed IPv4 sources as (network, prefix).
    pub v4: Vec<(Ipv4Addr, u8)>,
    /// Allowed IPv6 sources as (network, prefix).
    pub v6: Vec<(Ipv6Addr, u8)>,
    /// TCP destination ports dropped (`blocked_outgoing_ports`); absent in
    /// the state file of a jail booted by an earlier version.
    #[serde(default)]
    pub blocked_tcp: Vec<u16>,
    /// The NIC takes an IPv4 address by DHCP (`dhcp` in `ips`): an
    /// address a server acknowledges for its MAC becomes an allowed source.
    #[serde(default)]
    pub learn_dhcp: bool,
    /// The NIC configures IPv6 by router advertisements (`addrconf` in
    /// `ips`): an address of a prefix a router advertised to it, with the
    /// interface identifier its MAC gives (EUI-64), becomes a source.
    #[serde(default)]
    pub learn_slaac: bool,
}

/// A NIC whose values cannot become rules (never expected: the spec was
/// validated, but a record edited by hand must not reach nft).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nic {iface}: cannot build anti-spoofing rules: invalid {what} {value:?}")]
pub struct FilterError {
    iface: String,
    what: &'static str,
    value: String,
}

fn valid_port(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

impl PortFilter {
    /// The filter of `nic`, whose host end is `port`.
    pub fn new(nic: &Nic, port: String) -> Result<PortFilter, FilterError> {
        let bad = |what, value: &str| FilterError {
            iface: nic.interface.clone(),
            what,
            value: value.to_string(),
        };
        if !valid_port(&port) {
            return Err(bad("host interface", &port));
        }
        let mac = parse_mac(&nic.mac).ok_or_else(|| bad("mac", &nic.mac))?;
        let Sources { v4, v6 } = allowed_sources(nic, mac).map_err(|a| bad("address", &a))?;
        let learn_dhcp = nic.ips.iter().any(|a| matches!(a, NicAddr::Dhcp));
        let learn_slaac = nic.ips.iter().any(|a| matches!(a, NicAddr::Addrconf));
        let blocked_tcp = blocked_tcp_ports(nic);
        Ok(PortFilter {
            port,
            mac,
            mac_spoofing: nic.allow_mac_spoofing,
            ip_spoofing: nic.allow_ip_spoofing || nic.allow_dhcp_spoofing,
            dhcp_spoofing: nic.allow_dhcp_spoofing,
            restricted_traffic: nic.allow_restricted_traffic,
            v4,
            v6,
            blocked_tcp,
            learn_dhcp,
            learn_slaac,
        })
    }

    /// True when the port needs no rule at all.
    fn open(&self) -> bool {
        self.mac_spoofing
            && self.ip_spoofing
            && self.dhcp_spoofing
            && self.restricted_traffic
            && self.blocked_tcp.is_empty()
    }
}

/// The filters of every NIC of `vm`, host ends named as the network plan
/// names them.
pub fn filters(vm: &VmSpec) -> Result<Vec<PortFilter>, FilterError> {
    vm.nics
        .iter()
        .enumerate()
        .map(|(i, nic)| PortFilter::new(nic, host_veth(&vm.uuid, i)))
        .collect()
}

/// The nft table of a jail: `vmadm-<uuid>` in the netdev family.
pub fn table_name(uuid: &Uuid) -> String {
    format!("vmadm-{uuid}")
}

fn mac_hex(mac: [u8; 6]) -> String {
    let mut s = String::from("0x");
    for b in mac {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// IPv6 networks as 128-bit ranges, for the raw match on a neighbour
/// advertisement's target (nft 1.0.6 has no typed field for it).
fn target_elems(nets: &[(Ipv6Addr, u8)]) -> String {
    nets.iter()
        .filter(|(a, _)| !a.is_unspecified())
        .map(|(a, p)| {
            let lo = u128::from(*a);
            let hi = lo | u128::MAX.checked_shr(u32::from(*p)).unwrap_or(0);
            if lo == hi {
                format!("0x{lo:032x}")
            } else {
                format!("0x{lo:032x}-0x{hi:032x}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One port's sets and chain, as lines of the table body.
fn port_rules(i: usize, f: &PortFilter, out: &mut String) {
    let mac = mac_text(f.mac);
    let machex = mac_hex(f.mac);
    if !f.ip_spoofing {
        let _ = writeln!(
            out,
            "\tset p{i}v4 {{ type ipv4_addr; flags interval; elements = {{ {} }}; }}",
            net_list(&f.v4, 32)
        );
        let _ = writeln!(
            out,
            "\tset p{i}v6 {{ type ipv6_addr; flags interval; elements = {{ {} }}; }}",
            net_list(&f.v6, 128)
        );
        let _ = writeln!(
            out,
            "\tset p{i}nd {{ typeof @th,64,128; flags interval; elements = {{ {} }}; }}",
            target_elems(&f.v6)
        );
    }
    if learns(f) {
        let _ = writeln!(
            out,
            "\tset p{i}dhcp {{ type ipv4_addr; flags dynamic, timeout; timeout {LEASE_HOLD}; size 16; }}"
        );
        let _ = writeln!(
            out,
            "\tmap p{i}xid {{ typeof @th,{XID},32 : ip daddr; flags dynamic, timeout; timeout {XID_HOLD}; size 16; }}"
        );
        let mut ranges = Vec::new();
        let mut low = 0u64;
        for k in LADDER {
            let high = 1u64 << k;
            ranges.push(format!("{low}-{high} : jump p{i}l{k}"));
            low = high + 1;
        }
        ranges.push(format!("{low}-{} : jump p{i}lmax", u32::MAX));
        let _ = writeln!(
            out,
            "\tmap p{i}lease {{ typeof @th,0,32 : verdict; flags interval; elements = {{ {} }}; }}",
            ranges.join(", ")
        );
    }
    if learns_slaac(f) {
        let _ = writeln!(
            out,
            "\tset p{i}slaac {{ typeof @nh,64,64; flags dynamic, timeout; timeout {PREFIX_HOLD}; size 16; }}"
        );
    }
    let _ = writeln!(out, "\tchain p{i} {{");
    let _ = writeln!(
        out,
        "\t\ttype filter hook ingress device \"{}\" priority 0; policy accept;",
        f.port
    );
    let mut rule = |r: String| {
        let _ = writeln!(out, "\t\t{r}");
    };
    if !f.mac_spoofing {
        rule(format!("ether saddr != {mac} drop"));
    }
    if !f.restricted_traffic {
        rule("ether type != { ip, ip6, arp } drop".into());
    }
    if !f.blocked_tcp.is_empty() {
        // `tcp dport` finds the TCP header behind IPv6 extension headers
        // too; a later fragment carries no ports, but its first fragment
        // (which must hold them) is dropped here.
        let ports: Vec<String> = f.blocked_tcp.iter().map(u16::to_string).collect();
        rule(format!("tcp dport {{ {} }} drop", ports.join(", ")));
    }
    if !f.ip_spoofing {
        rule("arp hlen != 6 drop".into());
        rule("arp plen != 4 drop".into());
        rule(format!("arp saddr ether != {mac} drop"));
        // A learned lease counts as well (see `dhcp_rules`).
        let learned = if f.learn_dhcp {
            format!(" ip saddr != @p{i}dhcp")
        } else {
            String::new()
        };
        rule(format!(
            "arp saddr ip != @p{i}v4{} drop",
            learned.replace("ip saddr", "arp saddr ip")
        ));
        rule(format!("ip saddr != @p{i}v4{learned} drop"));
        let src = format!("ip6 saddr != @p{i}v6");
        let na = format!("icmpv6 type nd-neighbor-advert @th,64,128 != @p{i}nd");
        if learns_slaac(f) {
            // Outside the configured sources, an address passes only with
            // the MAC's interface identifier in its low 64 bits and a
            // learned prefix in its high 64 (see `slaac_rules`); so does
            // the target of a neighbour advertisement.
            let iid = format!("0x{:016x}", eui64(f.mac));
            rule(format!("{src} @nh,128,64 != {iid} drop"));
            rule(format!("{src} @nh,64,64 != @p{i}slaac drop"));
            rule(format!("{na} @th,128,64 != {iid} drop"));
            rule(format!("{na} @th,64,64 != @p{i}slaac drop"));
        } else {
            rule(format!("{src} drop"));
            rule(format!("{na} drop"));
        }
        // The link-layer address option that NS/NA (after 24 bytes) and
        // RS (after 8) carry first, as Linux sends them.
        rule(format!(
            "icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} @th,192,8 {{ 1, 2 }} @th,208,48 != {machex} drop"
        ));
        rule(format!(
            "icmpv6 type nd-router-solicit @th,64,8 1 @th,80,48 != {machex} drop"
        ));
        rule("icmpv6 type { nd-router-advert, nd-redirect } drop".into());
    }
    if !f.dhcp_spoofing {
        rule("udp sport { 67, 547 } drop".into());
        // chaddr: 28 bytes into the BOOTP message, after the UDP header.
        rule(format!("udp dport 67 @th,288,48 != {machex} drop"));
    }
    if learns(f) {
        // The jail gives its lease back: the address stops being a source.
        rule(format!(
            "udp dport 67 @th,{OPT1},24 0x350107 delete @p{i}dhcp {{ @th,{CIADDR},32 }}"
        ));
        // A request notes which address its answer is about, under its
        // transaction id, so that a NAK (which names no address) can take
        // that one away: `ciaddr` when renewing or rebinding, else the
        // requested address (option 50) where it can be found.
        let request = format!("udp dport 67 @th,{OPT1},24 0x350103");
        rule(format!(
            "{request} @th,{CIADDR},32 != 0 update @p{i}xid {{ @th,{XID},32 : @th,{CIADDR},32 }}"
        ));
        for (walk, value) in option_walks(50, f.mac) {
            rule(format!(
                "{request} @th,{CIADDR},32 0 {walk} update @p{i}xid {{ @th,{XID},32 : @th,{value},32 }}"
            ));
        }
    }
    let _ = writeln!(out, "\t}}");
    if learns(f) || learns_slaac(f) {
        egress_rules(i, f, out);
    }
}

/// The port's egress chain (frames to the jail), which fills its learned
/// sets, and the chains it jumps to.
fn egress_rules(i: usize, f: &PortFilter, out: &mut String) {
    let _ = writeln!(out, "\tchain p{i}out {{");
    let _ = writeln!(
        out,
        "\t\ttype filter hook egress device \"{}\" priority 0; policy accept;",
        f.port
    );
    if learns_slaac(f) {
        slaac_rules(i, out);
    }
    if learns(f) {
        dhcp_rules(i, f, out);
    }
    let _ = writeln!(out, "\t}}");
    if learns(f) {
        dhcp_chains(i, f, out);
    }
}

/// Rules of the egress chain that learn the prefixes routers advertise to
/// the jail, for a NIC with `addrconf`: a router
/// advertisement whose prefix information option has the autonomous flag
/// and a 64-bit prefix adds that prefix (or refreshes it) for its valid
/// lifetime, rounded up to one hour, one day, thirty days or ten years for
/// an infinite one (an nft timeout
/// is a constant of its rule); a valid lifetime of 0 takes it away. The
/// option is looked for behind up to [`RA_WALK`] source link-layer or MTU
/// options (8 bytes each, as routers put them first), and a second prefix
/// option right behind the first; one laid out otherwise teaches nothing
/// (fail closed). The jail's own advertisements never get here (its
/// ingress drops them), so what teaches is the host, the uplink or a NIC
/// allowed to spoof.
fn slaac_rules(i: usize, out: &mut String) {
    // Options start behind the advertisement's 16 bytes.
    const FIRST: u32 = 16 * 8;
    let mut places: Vec<(String, u32)> = Vec::new();
    for k in 0..=RA_WALK {
        let mut walk = String::new();
        for j in 0..k {
            let _ = write!(walk, " @th,{},16 {{ 0x0101, 0x0501 }}", FIRST + 64 * j);
        }
        let at = FIRST + 64 * k;
        places.push((walk.clone(), at));
        // A second prefix option right behind this one (32 bytes).
        let _ = write!(walk, " @th,{at},16 0x0304");
        places.push((walk, at + 256));
    }
    for (walk, at) in places {
        let pio = format!(
            "icmpv6 type nd-router-advert{walk} @th,{at},16 0x0304 @th,{},8 64 @th,{},8 & 0x40 != 0",
            at + 16,
            at + 24
        );
        let (life, prefix) = (at + 32, at + 128);
        let _ = writeln!(
            out,
            "\t\t{pio} @th,{life},32 0 delete @p{i}slaac {{ @th,{prefix},64 }}"
        );
        for (range, hold) in PREFIX_LADDER {
            let _ = writeln!(
                out,
                "\t\t{pio} @th,{life},32 {range} update @p{i}slaac {{ @th,{prefix},64 timeout {hold} }}"
            );
        }
    }
}

/// True when the port learns DHCP leases: only a port whose sources are
/// checked has use for them.
fn learns(f: &PortFilter) -> bool {
    f.learn_dhcp && !f.ip_spoofing
}

/// True when the port learns advertised IPv6 prefixes (see `slaac_rules`).
fn learns_slaac(f: &PortFilter) -> bool {
    f.learn_slaac && !f.ip_spoofing
}

/// The interface identifier the kernel derives from `mac` (EUI-64): the low
/// 64 bits of its link-local address, and of every address SLAAC forms.
fn eui64(mac: [u8; 6]) -> u64 {
    u128::from(crate::driver::nic_addrs::link_local(mac)) as u64
}

/// How many 8-byte options (source link-layer address, MTU) may stand
/// before the prefix information option a `slaac_rules` walk finds.
const RA_WALK: u32 = 2;

/// A learned prefix's hold by its valid lifetime in seconds (1 to the
/// "infinite" 0xffffffff): never shorter than the lifetime.
const PREFIX_LADDER: [(&str, &str); 4] = [
    ("1-3600", "1h"),
    ("3601-86400", "1d"),
    ("86401-2592000", "30d"),
    ("2592001-4294967295", "3650d"),
];

/// How long a learned prefix stays when no lifetime put it there (never:
/// every rule that adds one gives its timeout).
const PREFIX_HOLD: &str = "1d";

/// Bit offsets into a BOOTP message behind the UDP header (8 bytes).
const XID: u32 = (8 + 4) * 8;
const YIADDR: u32 = (8 + 16) * 8;
const CIADDR: u32 = (8 + 12) * 8;
const CHADDR: u32 = (8 + 28) * 8;
const COOKIE: u32 = (8 + 236) * 8;
const OPT1: u32 = (8 + 240) * 8;

/// How long a learned lease stays a source after an ACK whose lease time
/// (option 51) could not be found: longer than the renewal time (half the
/// lease) of common lease lengths up to two days.
const LEASE_HOLD: &str = "1d";

/// How long a request's transaction id is kept for its NAK.
const XID_HOLD: &str = "2m";

/// How many options may stand between the message type (the first
/// option) and the option an [`option_walks`] looks for.
const WALK: u32 = 3;

/// The lease times as powers of two seconds: a lease of at most 2^k s is
/// held for 2^k s (64 s at least); a longer one, up to "infinite"
/// (0xffffffff), for [`HOLD_MAX`].
const LADDER: std::ops::RangeInclusive<u32> = 6..=25;

/// The hold of a lease longer than 2^25 s (about 388 days) or infinite:
/// ten years, as long as the port lives.
const HOLD_MAX: &str = "3650d";

/// Matches that find option `code` (of 4 bytes) at a fixed place in the
/// options of a message whose first option is the message type (3 bytes):
/// right behind it, or behind up to [`WALK`] options of exactly 4 bytes
/// each (server id, subnet mask, T1, T2 ...), the first of which may
/// instead be the client identifier derived from `mac` (61, 7, `01` +
/// MAC: 9 bytes, where busybox's udhcpc puts it). Each intervening option
/// is checked to be one (a 4-byte one not a pad, the end, or `code`
/// itself), so a match is a true parse of the options up to there and the
/// walks are mutually exclusive. Returns each walk's match text with the
/// bit offset of the option's value. nft reads only fixed offsets, so an
/// option behind one of another length is not found.
fn option_walks(code: u8, mac: [u8; 6]) -> Vec<(String, u32)> {
    let cid = format!("@th,{},72 0x3d0701{} ", OPT1 + 24, &mac_hex(mac)[2..]);
    // (what the walk starts with, where its 4-byte options begin, how many
    // options that start used up)
    let starts = [(String::new(), OPT1 + 24, 0), (cid, OPT1 + 24 + 72, 1)];
    let mut out = Vec::new();
    for (prefix, start, used) in starts {
        for k in 0..=WALK - used {
            let mut walk = prefix.clone();
            for j in 0..k {
                let at = start + 48 * j;
                let _ = write!(
                    walk,
                    "@th,{at},8 != {{ 0, {code}, 255 }} @th,{},8 4 ",
                    at + 8
                );
            }
            let at = start + 48 * k;
            let _ = write!(walk, "@th,{at},16 0x{code:02x}04");
            out.push((walk, at + 16));
        }
    }
    out
}

/// The rules of the egress chain that fill the port's set of addresses
/// learned from DHCP (declared with the other sets; the chains they jump to
/// are [`dhcp_chains`]).
///
/// A frame going *to* the jail that is a DHCP ACK (first option 53 = 5, as
/// servers put it) for the NIC's MAC adds (or refreshes) its `yiaddr` for
/// as long as the lease (option 51) says, rounded up to a power of two
/// seconds (an nft timeout is a constant of its rule, so each power has a
/// chain of its own and an interval map picks it); an ACK whose lease time
/// is not where [`option_walks`] looks keeps the address for
/// [`LEASE_HOLD`]. A NAK for the MAC (53 = 6, broadcast as RFC 2131 wants)
/// removes the address its request named (see the `p{i}xid` rules of the
/// ingress chain): nft stores a looked-up value only into a packet field,
/// so the NAK's destination is briefly that address for the set's delete
/// and then 255.255.255.255 again, which the NAK had to be sent to for the
/// rule to match; the jail receives the frame as it was.
///
/// Jails without DHCP spoofing cannot send from port 67 (their ingress
/// drops it), so such an ACK or NAK comes from the host, the uplink or a
/// NIC trusted to serve DHCP, as in illumos, which snoops ACKs the same
/// way. An ACK laid out otherwise teaches nothing (fail closed).
fn dhcp_rules(i: usize, f: &PortFilter, out: &mut String) {
    let machex = mac_hex(f.mac);
    let reply = format!(
        "udp sport 67 udp dport 68 @th,64,8 2 @th,80,8 6 @th,{CHADDR},48 {machex} \
         @th,{COOKIE},32 0x63825363"
    );
    let _ = writeln!(
        out,
        "\t\t{reply} @th,{OPT1},24 0x350105 \
         @th,{YIADDR},32 != 0 @th,{YIADDR},8 < 224 jump p{i}ack"
    );
    let _ = writeln!(
        out,
        "\t\t{reply} @th,{OPT1},24 0x350106 ip daddr 255.255.255.255 \
         ip daddr set @th,{XID},32 map @p{i}xid delete @p{i}dhcp {{ ip daddr }} \
         ip daddr set 255.255.255.255"
    );
}

/// The chains the DHCP rules of the egress chain jump to: the ACK's lease
/// time looked up, and one chain per hold of the ladder.
fn dhcp_chains(i: usize, f: &PortFilter, out: &mut String) {
    let _ = writeln!(out, "\tchain p{i}ack {{");
    for (walk, value) in option_walks(51, f.mac) {
        let _ = writeln!(out, "\t\t{walk} @th,{value},32 vmap @p{i}lease");
    }
    let _ = writeln!(out, "\t\tupdate @p{i}dhcp {{ @th,{YIADDR},32 }}");
    let _ = writeln!(out, "\t}}");
    let holds = LADDER
        .map(|k| (k.to_string(), format!("{}s", 1u64 << k)))
        .chain([("max".to_string(), HOLD_MAX.to_string())]);
    for (name, hold) in holds {
        let _ = writeln!(
            out,
            "\tchain p{i}l{name} {{\n\t\tupdate @p{i}dhcp {{ @th,{YIADDR},32 timeout {hold} }} accept\n\t}}"
        );
    }
}

/// The ruleset that creates the jail's table (none when no port needs a
/// rule). Meant for a table that does not exist yet: creating costs no
/// wait, replacing does (see [`replace_text`]).
pub fn ruleset(uuid: &Uuid, filters: &[PortFilter]) -> Option<String> {
    if filters.iter().all(PortFilter::open) {
        return None;
    }
    let mut out = format!("table netdev {} {{\n", table_name(uuid));
    for (i, f) in filters.iter().enumerate() {
        if !f.open() {
            port_rules(i, f, &mut out);
        }
    }
    out.push_str("}\n");
    Some(out)
}

/// One transaction that drops the jail's table if present (`add` first makes
/// the `delete` safe when it is not).
pub fn delete_text(uuid: &Uuid) -> String {
    let t = table_name(uuid);
    format!("add table netdev {t}\ndelete table netdev {t}\n")
}

/// One transaction that replaces the jail's table by `filters`' rules, so
/// the ports are never unfiltered in between.
pub fn replace_text(uuid: &Uuid, filters: &[PortFilter]) -> String {
    let mut out = delete_text(uuid);
    if let Some(r) = ruleset(uuid, filters) {
        out.push_str(&r);
    }
    out
}

/// One transaction that turns the jail's table from `old`'s rules into
/// `new`'s while keeping the addresses its ports learned from DHCP: the
/// chains are flushed and every chain and set of `old` deleted except each
/// learned set that `new` declares alike, which the new body's `set` line
/// then leaves as it is (an `add` of an existing set). `None` when there
/// is nothing to keep (then [`replace_text`] does). It fails as a whole
/// when the table is not what `old` made (a state file of another
/// version); the caller then replaces.
pub fn refresh_text(uuid: &Uuid, old: &[PortFilter], new: &[PortFilter]) -> Option<String> {
    let before = ruleset(uuid, old)?;
    let after = ruleset(uuid, new)?;
    let t = table_name(uuid);
    let declared = |text: &str, kind: &str| -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| {
                let name = l.strip_prefix(&format!("\t{kind} "))?.split(' ').next()?;
                Some((name.to_string(), l.to_string()))
            })
            .collect()
    };
    let kept: Vec<String> = declared(&before, "set")
        .into_iter()
        .filter(|(n, line)| {
            (n.ends_with("dhcp") || n.ends_with("slaac")) && after.lines().any(|l| l == line)
        })
        .map(|(n, _)| n)
        .collect();
    if kept.is_empty() {
        return None;
    }
    // Each chain flushed by name rather than `flush table`, whose reach
    // (rules only, or sets too) is nft's to choose.
    let chains = declared(&before, "chain");
    let mut out = format!("add table netdev {t}\n");
    for (name, _) in &chains {
        let _ = writeln!(out, "flush chain netdev {t} {name}");
    }
    // Then sets and maps, which no rule uses any more (a verdict map's
    // jumps hold their chains), then the chains.
    for kind in ["set", "map"] {
        for (name, _) in declared(&before, kind) {
            if !kept.contains(&name) {
                let _ = writeln!(out, "delete {kind} netdev {t} {name}");
            }
        }
    }
    for (name, _) in &chains {
        let _ = writeln!(out, "delete chain netdev {t} {name}");
    }
    out.push_str(&after);
    Some(out)
}

/// The boot's filters, kept in the run directory so a live update knows
/// which port carries which NIC, and as the mark that a table exists.
fn state_file(dir: &JailDir) -> std::path::PathBuf {
    dir.dir.join("antispoof.json")
}

impl LinuxDriver {
    fn nft(&self, text: &str) -> DriverResult<()> {
        self.try_nft(text).map_err(DriverError::from)
    }

    fn try_nft(&self, text: &str) -> Result<(), ExecError> {
        run_nft(self.runner.as_ref(), text)
    }

    /// Starts the `nft -f -` that will install the jail's filters, before
    /// its host ports exist: nft links a dozen libraries (about 1.5 ms here)
    /// while the host batch makes the ports, and reads its rules only then
    /// (see [`LinuxDriver::with_filters`]). On two busy cores the two
    /// start-ups share the CPU, so a start gains 0.5–1 ms, not all 1.5. None when every port is open:
    /// no process at all. Dropped unfed, the process reads an empty input
    /// and exits having changed nothing.
    pub(super) fn start_filters(&self, vm: &VmSpec) -> DriverResult<Option<EarlyNft<'_>>> {
        let filters = filters(vm).map_err(|e| DriverError::Other(format!("{}: {e}", vm.uuid)))?;
        let Some(text) = ruleset(&vm.uuid, &filters) else {
            return Ok(None);
        };
        let child = self.runner.stream(&nft_argv(), Pipe::Stdin)?;
        Ok(Some(EarlyNft {
            filters,
            text,
            child,
        }))
    }

    /// Installs the jail's filters through the nft started for them; called
    /// once its host veths exist and before its init runs.
    fn install_filters(&self, vm: &VmSpec, dir: &JailDir, early: EarlyNft<'_>) -> DriverResult<()> {
        let EarlyNft {
            filters,
            text,
            mut child,
        } = early;
        // Written first: a crash after nft leaves a mark for the teardown.
        let json = serde_json::to_vec(&filters).map_err(std::io::Error::other)?;
        std::fs::write(state_file(dir), json)?;
        // `create` refuses (atomically) a table a failed stop left behind,
        // whose sets would otherwise merge stale addresses into the new
        // ones; only then is the slower replacement paid for.
        let t = table_name(&vm.uuid);
        let full = format!("create table netdev {t}\n{text}");
        // A write that fails means nft is gone: its exit and stderr say why.
        let _ = std::io::Write::write_all(&mut child, full.as_bytes());
        match nft_outcome(child.wait()?, &full) {
            Err(ExecError::Failed { stderr, .. }) if stderr.contains("File exists") => {
                self.nft(&replace_text(&vm.uuid, &filters))
            }
            other => other.map_err(DriverError::from),
        }
    }

    /// Runs `meanwhile` (the jail-side network setup) while the filters are
    /// fed to `early` in another thread. Both must succeed.
    pub(super) fn with_filters(
        &self,
        vm: &VmSpec,
        dir: &JailDir,
        early: Option<EarlyNft<'_>>,
        meanwhile: impl FnOnce() -> DriverResult<()>,
    ) -> DriverResult<()> {
        let Some(early) = early else {
            return meanwhile();
        };
        let (other, filters) = std::thread::scope(|s| {
            let t = s.spawn(|| self.install_filters(vm, dir, early));
            let other = meanwhile();
            (other, t.join())
        });
        let filters = filters.unwrap_or_else(|_| {
            Err(DriverError::Other(format!(
                "{}: installing the anti-spoofing rules panicked",
                vm.uuid
            )))
        });
        other.and(filters)
    }

    /// Rebuilds a running jail's filters from `vm` (after `update_nics`):
    /// each port booted with a NIC keeps that NIC (matched by MAC) with its
    /// new addresses and flags; a NIC removed from the record keeps its boot
    /// rules and one added waits for the next boot, as its veth does.
    pub(super) fn refresh_filters(&self, vm: &VmSpec, dir: &JailDir) -> DriverResult<()> {
        let booted: Vec<PortFilter> = match std::fs::read(state_file(dir)) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let current = filters(vm).map_err(|e| DriverError::Other(format!("{}: {e}", vm.uuid)))?;
        let new = merge_filters(booted.clone(), current);
        let json = serde_json::to_vec(&new).map_err(std::io::Error::other)?;
        std::fs::write(state_file(dir), json)?;
        // Learned leases survive the update when the table is the one the
        // boot made; otherwise (another version's table) they are lost and
        // the jail's client learns them again at its next renewal.
        if let Some(text) = refresh_text(&vm.uuid, &booted, &new) {
            match self.try_nft(&text) {
                Err(ExecError::Failed { .. }) => {}
                other => return other.map_err(DriverError::from),
            }
        }
        self.nft(&replace_text(&vm.uuid, &new))
    }

    /// Starts dropping the jail's table in a thread of its own, so that it
    /// overlaps the rest of a teardown. A plain stop does so only when the
    /// boot installed one (no process otherwise); `thorough` (crash repair)
    /// whenever the jail may have had NICs, since a crash may have lost the
    /// mark.
    ///
    /// The removal counts as done once nft says the transaction is
    /// committed (`--echo` prints the new generation), not when nft exits:
    /// closing its netlink socket after deleting a netdev chain waits for
    /// the kernel to retire the hook, about one RCU grace period (9.5 ms of
    /// its 11–15 ms here), with the table long gone. The thread still waits
    /// for that exit, but nobody waits for the thread.
    pub(super) fn begin_removing_filters(&self, vm: &VmSpec, thorough: bool) -> PendingRemoval {
        let dir = JailDir::new(&self.run_dir, &vm.uuid);
        let marked = state_file(&dir).exists();
        // Without NICs now and without a mark, no boot of this record made a
        // table (a NIC removed from a running jail leaves the mark).
        if !marked && (!thorough || vm.nics.is_empty()) {
            return PendingRemoval(None);
        }
        let runner = Arc::clone(&self.runner);
        let argv = delete_argv(&vm.uuid);
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || remove_table(runner.as_ref(), &argv, &done));
        PendingRemoval(Some(outcome))
    }
}

/// `nft --echo` with the removal's two commands as its arguments (`add`
/// first makes the `delete` safe when the table is not there).
fn delete_argv(uuid: &Uuid) -> Argv {
    let t = table_name(uuid);
    Argv::new([
        "nft", "--echo", "add", "table", "netdev", &t, ";", "delete", "table", "netdev", &t,
    ])
}

/// Runs the removal `argv`, sending its outcome on `done` as soon as it is
/// known: at the commit line on nft's stdout, else at its exit.
fn remove_table(
    runner: &dyn CommandRunner,
    argv: &Argv,
    done: &std::sync::mpsc::Sender<Result<(), ExecError>>,
) {
    let mut child = match runner.stream(argv, Pipe::Stdout) {
        Ok(c) => c,
        Err(e) => {
            let _ = done.send(Err(e));
            return;
        }
    };
    let committed = {
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(&mut child));
        lines.any(|l| l.is_ok_and(|l| l.starts_with("# new generation")))
    };
    if committed {
        let _ = done.send(Ok(()));
        let _ = child.wait();
        return;
    }
    let outcome = child.wait().and_then(|out| out.check(argv).map(|_| ()));
    let _ = done.send(outcome);
}

/// A table removal started by [`LinuxDriver::begin_removing_filters`]: the
/// receiving end of its outcome.
pub(super) struct PendingRemoval(Option<std::sync::mpsc::Receiver<Result<(), ExecError>>>);

impl PendingRemoval {
    /// Waits for the removal's outcome; a failure joins the teardown's
    /// errors.
    pub(super) fn finish(mut self, errors: &mut Vec<String>) {
        match self.0.take().map(|rx| rx.recv()) {
            None | Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => errors.push(e.to_string()),
            Some(Err(_)) => errors.push("removing the anti-spoofing rules panicked".into()),
        }
    }
}

impl Drop for PendingRemoval {
    /// A teardown that returns early still waits for the removal's outcome.
    fn drop(&mut self) {
        if let Some(rx) = self.0.take() {
            let _ = rx.recv();
        }
    }
}

/// An `nft -f -` started ahead of its rules, with the filters it is to
/// load (see [`LinuxDriver::start_filters`]).
pub(super) struct EarlyNft<'a> {
    filters: Vec<PortFilter>,
    text: String,
    child: StreamChild<'a>,
}

fn nft_argv() -> Argv {
    Argv::new(["nft", "-f", "-"])
}

/// Loads `text` as one nft transaction (`nft -f -`, the text on stdin).
fn run_nft(runner: &dyn CommandRunner, text: &str) -> Result<(), ExecError> {
    nft_outcome(runner.output(&nft_argv(), Some(text.as_bytes()))?, text)
}

/// An nft run's exit as a result; a failure carries nft's message and the
/// ruleset it refused.
fn nft_outcome(out: Output, text: &str) -> Result<(), ExecError> {
    if out.success() {
        return Ok(());
    }
    Err(ExecError::Failed {
        argv: nft_argv(),
        status: out.status,
        stderr: format!(
            "{} (ruleset: {})",
            out.stderr_str().trim(),
            text.replace('\n', "; ")
        ),
    })
}

/// The ports of a running jail after an update: the boot's ports, each
/// with the current NIC of the same MAC when there is one.
fn merge_filters(booted: Vec<PortFilter>, current: Vec<PortFilter>) -> Vec<PortFilter> {
    booted
        .into_iter()
        .map(|b| match current.iter().find(|c| c.mac == b.mac) {
            Some(c) => PortFilter {
                port: b.port.clone(),
                ..c.clone()
            },
            None => b,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::nic_addrs::link_local;
    use serde_json::{json, Value};

    fn vm(nics: serde_json::Value) -> VmSpec {
        crate::driver::test_vm(json!({ "nics": nics }))
    }

    const GOLDEN: &str = "\
table netdev vmadm-6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60 {
\tset p0v4 { type ipv4_addr; flags interval; elements = { 0.0.0.0, 192.0.2.10, 198.51.100.0/24 }; }
\tset p0v6 { type ipv6_addr; flags interval; elements = { ::, 2001:db8::5, 2001:db8:1::/48, fe80::ff:fe00:1 }; }
\tset p0nd { typeof @th,64,128; flags interval; elements = { 0x20010db8000000000000000000000005, 0x20010db8000100000000000000000000-0x20010db80001ffffffffffffffffffff, 0xfe80000000000000000000fffe000001 }; }
\tset p0dhcp { type ipv4_addr; flags dynamic, timeout; timeout 1d; size 16; }
\tmap p0xid { typeof @th,96,32 : ip daddr; flags dynamic, timeout; timeout 2m; size 16; }
\tmap p0lease { typeof @th,0,32 : verdict; flags interval; elements = { 0-64 : jump p0l6, 65-128 : jump p0l7, 129-256 : jump p0l8, 257-512 : jump p0l9, 513-1024 : jump p0l10, 1025-2048 : jump p0l11, 2049-4096 : jump p0l12, 4097-8192 : jump p0l13, 8193-16384 : jump p0l14, 16385-32768 : jump p0l15, 32769-65536 : jump p0l16, 65537-131072 : jump p0l17, 131073-262144 : jump p0l18, 262145-524288 : jump p0l19, 524289-1048576 : jump p0l20, 1048577-2097152 : jump p0l21, 2097153-4194304 : jump p0l22, 4194305-8388608 : jump p0l23, 8388609-16777216 : jump p0l24, 16777217-33554432 : jump p0l25, 33554433-4294967295 : jump p0lmax }; }
\tchain p0 {
\t\ttype filter hook ingress device \"vme015a6e863e0\" priority 0; policy accept;
\t\tether saddr != 02:00:00:00:00:01 drop
\t\tether type != { ip, ip6, arp } drop
\t\tarp hlen != 6 drop
\t\tarp plen != 4 drop
\t\tarp saddr ether != 02:00:00:00:00:01 drop
\t\tarp saddr ip != @p0v4 arp saddr ip != @p0dhcp drop
\t\tip saddr != @p0v4 ip saddr != @p0dhcp drop
\t\tip6 saddr != @p0v6 drop
\t\ticmpv6 type nd-neighbor-advert @th,64,128 != @p0nd drop
\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } @th,192,8 { 1, 2 } @th,208,48 != 0x020000000001 drop
\t\ticmpv6 type nd-router-solicit @th,64,8 1 @th,80,48 != 0x020000000001 drop
\t\ticmpv6 type { nd-router-advert, nd-redirect } drop
\t\tudp sport { 67, 547 } drop
\t\tudp dport 67 @th,288,48 != 0x020000000001 drop
\t\tudp dport 67 @th,1984,24 0x350107 delete @p0dhcp { @th,160,32 }
\t\tudp dport 67 @th,1984,24 0x350103 @th,160,32 != 0 update @p0xid { @th,96,32 : @th,160,32 }
\t\tudp dport 67 @th,1984,24 0x350103 @th,160,32 0 @th,2008,16 0x3204 update @p0xid { @th,96,32 : @th,2024,32 }
\t\tudp dport 67 @th,1984,24 0x350103 @th,160,32 0 @th,2008,8 != { 0, 50, 255 } @th,2016,8 4 @th,2056,16 0x3204 update @p0xid { @th,96,32 : @th,2072,32 }
\t\tudp dport 67 @th,1984,24 0x350103 @th,160,32 0 @th,2008,8 != { 0, 50, 255 } @th,2016,8 4 @th,2056,8 != { 0, 50, 255 } @th,2064,8 4 @th,2104,16 0x3204 update @p0xid { @th,96,32 : @th,2120,32 }
\t\tudp dport 67 @th,1984,24 0x350103 @th,160,32 0 @th,2008,8 != { 0, 50, 255 } @th,2016,8 4 @th,2056,8 != { 0, 50, 255 } @th,2064,8 4 @th,2104,8 != { 0, 50, 255 } @th,2112,8 4 @th,2152,16 0x3204 update @p0xid { @th,96,32 : @th,2168,32 }
\t\tudp dport 67 @th,1984,24 0x350103 @th,160,32 0 @th,2008,72 0x3d0701020000000001 @th,2080,16 0x3204 update @p0xid { @th,96,32 : @th,2096,32 }
\t\tudp dport 67 @th,1984,24 0x350103 @th,160,32 0 @th,2008,72 0x3d0701020000000001 @th,2080,8 != { 0, 50, 255 } @th,2088,8 4 @th,2128,16 0x3204 update @p0xid { @th,96,32 : @th,2144,32 }
\t\tudp dport 67 @th,1984,24 0x350103 @th,160,32 0 @th,2008,72 0x3d0701020000000001 @th,2080,8 != { 0, 50, 255 } @th,2088,8 4 @th,2128,8 != { 0, 50, 255 } @th,2136,8 4 @th,2176,16 0x3204 update @p0xid { @th,96,32 : @th,2192,32 }
\t}
\tchain p0out {
\t\ttype filter hook egress device \"vme015a6e863e0\" priority 0; policy accept;
\t\tudp sport 67 udp dport 68 @th,64,8 2 @th,80,8 6 @th,288,48 0x020000000001 @th,1952,32 0x63825363 @th,1984,24 0x350105 @th,192,32 != 0 @th,192,8 < 224 jump p0ack
\t\tudp sport 67 udp dport 68 @th,64,8 2 @th,80,8 6 @th,288,48 0x020000000001 @th,1952,32 0x63825363 @th,1984,24 0x350106 ip daddr 255.255.255.255 ip daddr set @th,96,32 map @p0xid delete @p0dhcp { ip daddr } ip daddr set 255.255.255.255
\t}
\tchain p0ack {
\t\t@th,2008,16 0x3304 @th,2024,32 vmap @p0lease
\t\t@th,2008,8 != { 0, 51, 255 } @th,2016,8 4 @th,2056,16 0x3304 @th,2072,32 vmap @p0lease
\t\t@th,2008,8 != { 0, 51, 255 } @th,2016,8 4 @th,2056,8 != { 0, 51, 255 } @th,2064,8 4 @th,2104,16 0x3304 @th,2120,32 vmap @p0lease
\t\t@th,2008,8 != { 0, 51, 255 } @th,2016,8 4 @th,2056,8 != { 0, 51, 255 } @th,2064,8 4 @th,2104,8 != { 0, 51, 255 } @th,2112,8 4 @th,2152,16 0x3304 @th,2168,32 vmap @p0lease
\t\t@th,2008,72 0x3d0701020000000001 @th,2080,16 0x3304 @th,2096,32 vmap @p0lease
\t\t@th,2008,72 0x3d0701020000000001 @th,2080,8 != { 0, 51, 255 } @th,2088,8 4 @th,2128,16 0x3304 @th,2144,32 vmap @p0lease
\t\t@th,2008,72 0x3d0701020000000001 @th,2080,8 != { 0, 51, 255 } @th,2088,8 4 @th,2128,8 != { 0, 51, 255 } @th,2136,8 4 @th,2176,16 0x3304 @th,2192,32 vmap @p0lease
\t\tupdate @p0dhcp { @th,192,32 }
\t}
\tchain p0l6 {
\t\tupdate @p0dhcp { @th,192,32 timeout 64s } accept
\t}
\tchain p0l7 {
\t\tupdate @p0dhcp { @th,192,32 timeout 128s } accept
\t}
\tchain p0l8 {
\t\tupdate @p0dhcp { @th,192,32 timeout 256s } accept
\t}
\tchain p0l9 {
\t\tupdate @p0dhcp { @th,192,32 timeout 512s } accept
\t}
\tchain p0l10 {
\t\tupdate @p0dhcp { @th,192,32 timeout 1024s } accept
\t}
\tchain p0l11 {
\t\tupdate @p0dhcp { @th,192,32 timeout 2048s } accept
\t}
\tchain p0l12 {
\t\tupdate @p0dhcp { @th,192,32 timeout 4096s } accept
\t}
\tchain p0l13 {
\t\tupdate @p0dhcp { @th,192,32 timeout 8192s } accept
\t}
\tchain p0l14 {
\t\tupdate @p0dhcp { @th,192,32 timeout 16384s } accept
\t}
\tchain p0l15 {
\t\tupdate @p0dhcp { @th,192,32 timeout 32768s } accept
\t}
\tchain p0l16 {
\t\tupdate @p0dhcp { @th,192,32 timeout 65536s } accept
\t}
\tchain p0l17 {
\t\tupdate @p0dhcp { @th,192,32 timeout 131072s } accept
\t}
\tchain p0l18 {
\t\tupdate @p0dhcp { @th,192,32 timeout 262144s } accept
\t}
\tchain p0l19 {
\t\tupdate @p0dhcp { @th,192,32 timeout 524288s } accept
\t}
\tchain p0l20 {
\t\tupdate @p0dhcp { @th,192,32 timeout 1048576s } accept
\t}
\tchain p0l21 {
\t\tupdate @p0dhcp { @th,192,32 timeout 2097152s } accept
\t}
\tchain p0l22 {
\t\tupdate @p0dhcp { @th,192,32 timeout 4194304s } accept
\t}
\tchain p0l23 {
\t\tupdate @p0dhcp { @th,192,32 timeout 8388608s } accept
\t}
\tchain p0l24 {
\t\tupdate @p0dhcp { @th,192,32 timeout 16777216s } accept
\t}
\tchain p0l25 {
\t\tupdate @p0dhcp { @th,192,32 timeout 33554432s } accept
\t}
\tchain p0lmax {
\t\tupdate @p0dhcp { @th,192,32 timeout 3650d } accept
\t}
\tchain p1 {
\t\ttype filter hook ingress device \"vme015a6e863e1\" priority 0; policy accept;
\t\tether saddr != 02:00:00:00:00:02 drop
\t\tudp sport { 67, 547 } drop
\t\tudp dport 67 @th,288,48 != 0x020000000002 drop
\t}
}
";

    #[test]
    fn ruleset_golden() {
        let v = vm(json!([
            {"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
             "ips": ["192.0.2.10/24", "2001:db8::5/64", "dhcp"],
             "allowed_ips": ["198.51.100.7/24", "2001:db8:1::/48", "192.0.2.10"]},
            {"interface": "net1", "mac": "02:00:00:00:00:02", "nic_tag": "admin",
             "ips": ["203.0.113.5/24"], "allow_ip_spoofing": true,
             "allow_restricted_traffic": true},
            {"interface": "net2", "mac": "02:00:00:00:00:03", "nic_tag": "admin",
             "allow_ip_spoofing": true, "allow_mac_spoofing": true,
             "dhcp_server": true, "allow_restricted_traffic": true}
        ]));
        let f = filters(&v).unwrap();
        let text = ruleset(&v.uuid, &f).unwrap();
        assert_eq!(text, GOLDEN, "\n{text}");
    }

    #[test]
    fn dhcp_server_implies_ip_spoofing_as_in_smartos() {
        let v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01",
                            "nic_tag": "admin", "allow_dhcp_spoofing": true}]));
        let f = filters(&v).unwrap();
        assert!(f[0].ip_spoofing && f[0].dhcp_spoofing && !f[0].mac_spoofing);
        let text = ruleset(&v.uuid, &f).unwrap();
        assert!(
            !text.contains("ip saddr") && !text.contains("udp sport"),
            "{text}"
        );
        assert!(
            text.contains("ether saddr != 02:00:00:00:00:01 drop"),
            "{text}"
        );
    }

    #[test]
    fn open_ports_need_no_table() {
        let v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01",
                            "nic_tag": "admin", "allow_ip_spoofing": true,
                            "allow_mac_spoofing": true, "allow_dhcp_spoofing": true,
                            "allow_restricted_traffic": true}]));
        let f = filters(&v).unwrap();
        assert_eq!(ruleset(&v.uuid, &f), None);
        assert_eq!(ruleset(&v.uuid, &[]), None);
        // Replacing with nothing still drops the old table.
        assert_eq!(
            replace_text(&v.uuid, &f),
            "add table netdev vmadm-6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60\n\
             delete table netdev vmadm-6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60\n"
        );
    }

    #[test]
    fn blocked_ports_drop_tcp_whatever_the_flags() {
        let v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01",
                            "nic_tag": "admin", "allow_ip_spoofing": true,
                            "allow_mac_spoofing": true, "allow_dhcp_spoofing": true,
                            "allow_restricted_traffic": true,
                            "blocked_outgoing_ports": ["587", 25, "25"]}]));
        let f = filters(&v).unwrap();
        assert_eq!(f[0].blocked_tcp, [25, 587]);
        let text = ruleset(&v.uuid, &f).unwrap();
        let rules: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("\t\t") && !l.contains("hook"))
            .map(str::trim)
            .collect();
        assert_eq!(rules, ["tcp dport { 25, 587 } drop"], "{text}");
        // A state file written before the field existed still loads.
        let old = serde_json::to_value(&f[0]).unwrap();
        let mut old = old.as_object().unwrap().clone();
        old.remove("blocked_tcp");
        let back: PortFilter = serde_json::from_value(Value::Object(old)).unwrap();
        assert!(back.blocked_tcp.is_empty());
    }

    #[test]
    fn link_local_follows_eui64() {
        assert_eq!(
            link_local([0x02, 0x00, 0xc0, 0x00, 0x02, 0x0a]),
            "fe80::c0ff:fe00:20a".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            link_local([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn bad_values_never_reach_nft() {
        let mut v = vm(json!([{"interface": "net0", "mac": "02:00:00:00:00:01",
                                "nic_tag": "admin"}]));
        v.nics[0].mac = "02:00:00:00:00:01 drop; flush ruleset".into();
        assert!(filters(&v).is_err());
        let nic = v.nics[0].clone();
        assert!(PortFilter::new(&nic, "vm0\" accept".into()).is_err());
    }

    #[test]
    fn an_addrconf_nic_learns_advertised_prefixes_for_its_own_identifier() {
        let nics = |ips: Value| {
            json!([{"interface": "net0", "mac": "02:00:c0:00:02:5a", "nic_tag": "admin",
                    "ips": ips}])
        };
        let v = vm(nics(json!(["192.0.2.10/24", "addrconf"])));
        let f = filters(&v).unwrap();
        assert!(f[0].learn_slaac && !f[0].learn_dhcp);
        let text = ruleset(&v.uuid, &f).unwrap();
        let has = |l: &str| text.lines().any(|x| x.trim() == l);
        assert!(
            has("set p0slaac { typeof @nh,64,64; flags dynamic, timeout; timeout 1d; size 16; }"),
            "{text}"
        );
        // A source outside the configured ones needs both halves.
        assert!(
            has("ip6 saddr != @p0v6 @nh,128,64 != 0x0000c0fffe00025a drop"),
            "{text}"
        );
        assert!(
            has("ip6 saddr != @p0v6 @nh,64,64 != @p0slaac drop"),
            "{text}"
        );
        assert!(!has("ip6 saddr != @p0v6 drop"), "{text}");
        assert!(
            has("icmpv6 type nd-neighbor-advert @th,64,128 != @p0nd @th,64,64 != @p0slaac drop"),
            "{text}"
        );
        // The egress chain learns from advertisements, behind zero to two
        // 8-byte options and as a second prefix option; lifetime 0 deletes.
        assert!(text.contains("\tchain p0out {\n\t\ttype filter hook egress device"));
        let learning: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("nd-router-advert") && l.contains("@p0slaac"))
            .collect();
        assert_eq!(learning.len(), 6 * 5, "{text}");
        assert!(has(
            "icmpv6 type nd-router-advert @th,128,16 0x0304 @th,144,8 64 @th,152,8 & 0x40 != 0 \
             @th,160,32 0 delete @p0slaac { @th,256,64 }"
        ));
        assert!(has(
            "icmpv6 type nd-router-advert @th,128,16 { 0x0101, 0x0501 } @th,192,16 0x0304 \
             @th,208,8 64 @th,216,8 & 0x40 != 0 @th,224,32 3601-86400 \
             update @p0slaac { @th,320,64 timeout 1d }"
        ));
        // No DHCP learning without `dhcp`, and none at all when the port
        // does not check sources.
        assert!(!text.contains("p0dhcp"), "{text}");
        let mut open = v.clone();
        open.nics[0].allow_ip_spoofing = true;
        let text = ruleset(&open.uuid, &filters(&open).unwrap()).unwrap();
        assert!(!text.contains("slaac") && !text.contains("p0out"), "{text}");
        // With `dhcp` too, one egress chain learns both.
        let both = vm(nics(json!(["dhcp", "addrconf"])));
        let text = ruleset(&both.uuid, &filters(&both).unwrap()).unwrap();
        assert_eq!(text.matches("hook egress").count(), 1, "{text}");
        assert!(
            text.contains("@p0slaac") && text.contains("@p0dhcp"),
            "{text}"
        );
        // A state file of an earlier version (no field) still loads.
        let mut old = serde_json::to_value(&f[0])
            .unwrap()
            .as_object()
            .unwrap()
            .clone();
        old.remove("learn_slaac");
        let back: PortFilter = serde_json::from_value(Value::Object(old)).unwrap();
        assert!(!back.learn_slaac);
        // A live update keeps the learned prefixes, as it keeps leases.
        let mut wider = v.clone();
        wider.nics[0].allowed_ips = vec![NicAddr::Static {
            addr: "198.51.100.9".parse().unwrap(),
            prefix: 32,
        }];
        let text = refresh_text(&v.uuid, &f, &filters(&wider).unwrap()).unwrap();
        assert!(!text.lines().any(|l| l.ends_with(" p0slaac")), "{text}");
    }

    #[test]
    fn a_refresh_keeps_learned_sets_and_only_those() {
        let nic = |ips: Value| {
            json!([{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
                    "ips": ips}])
        };
        let v = vm(nic(json!(["dhcp"])));
        let old = filters(&v).unwrap();
        let mut with_extra = v.clone();
        with_extra.nics[0].allowed_ips = vec![NicAddr::Static {
            addr: "198.51.100.9".parse().unwrap(),
            prefix: 32,
        }];
        let new = filters(&with_extra).unwrap();
        let text = refresh_text(&v.uuid, &old, &new).unwrap();
        let t = "vmadm-6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60";
        let head: Vec<&str> = text
            .lines()
            .take_while(|l| !l.starts_with("table"))
            .collect();
        assert_eq!(head[0], format!("add table netdev {t}"));
        assert!(head.contains(&format!("flush chain netdev {t} p0out").as_str()));
        let flushed = head.iter().filter(|l| l.starts_with("flush chain")).count();
        let deleted = head
            .iter()
            .filter(|l| l.starts_with("delete chain"))
            .count();
        assert_eq!(flushed, deleted);
        assert!(head[1..=flushed]
            .iter()
            .all(|l| l.starts_with("flush chain")));
        // Every set and map goes but the learned one, then every chain.
        assert!(head.contains(&format!("delete set netdev {t} p0v4").as_str()));
        assert!(head.contains(&format!("delete map netdev {t} p0xid").as_str()));
        assert!(head.contains(&format!("delete map netdev {t} p0lease").as_str()));
        assert!(head.contains(&format!("delete chain netdev {t} p0l25").as_str()));
        assert!(!head.iter().any(|l| l.ends_with(" p0dhcp")), "{text}");
        let first_chain = head
            .iter()
            .position(|l| l.starts_with("delete chain"))
            .unwrap();
        assert!(head[first_chain..]
            .iter()
            .all(|l| l.starts_with("delete chain")));
        assert!(text.ends_with(&ruleset(&v.uuid, &new).unwrap()));
        // Nothing learned on either side: a plain replacement does.
        let fixed = filters(&vm(nic(json!(["192.0.2.10/24"])))).unwrap();
        assert_eq!(refresh_text(&v.uuid, &old, &fixed), None);
        assert_eq!(refresh_text(&v.uuid, &fixed, &new), None);
    }

    #[test]
    fn lease_times_are_found_behind_four_byte_options_only() {
        let walks = option_walks(51, [2, 0, 0, 0, 0, 1]);
        // Right behind the message type (53, 1, type): bytes 3..5 of the
        // options, the value at 5.
        assert_eq!(
            walks[0],
            (format!("@th,{},16 0x3304", OPT1 + 24), OPT1 + 40)
        );
        // Behind one 4-byte option that is not a pad, the end or 51.
        assert_eq!(
            walks[1].0,
            format!(
                "@th,{},8 != {{ 0, 51, 255 }} @th,{},8 4 @th,{},16 0x3304",
                OPT1 + 24,
                OPT1 + 32,
                OPT1 + 72
            )
        );
        assert_eq!(walks[1].1, OPT1 + 88);
        // Behind the client id derived from the MAC (9 bytes), then up to
        // two 4-byte options.
        assert_eq!(walks.len(), 2 * WALK as usize + 1);
        let cid = format!("@th,{},72 0x3d0701020000000001 ", OPT1 + 24);
        let with_cid = &walks[WALK as usize + 1];
        assert_eq!(
            *with_cid,
            (format!("{cid}@th,{},16 0x3304", OPT1 + 96), OPT1 + 112)
        );
        assert!(walks[WALK as usize + 2].0.starts_with(&cid));
    }

    #[test]
    fn update_keeps_ports_and_follows_macs() {
        let booted = filters(&vm(json!([
            {"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin", "ips": ["192.0.2.10/24"]},
            {"interface": "net1", "mac": "02:00:00:00:00:02", "nic_tag": "admin", "ips": ["192.0.2.11/24"]}
        ])))
        .unwrap();
        // net0 removed, net1 renumbered to index 0 with a new address, and
        // a new NIC that has no veth yet.
        let current = filters(&vm(json!([
            {"interface": "net1", "mac": "02:00:00:00:00:02", "nic_tag": "admin", "ips": ["192.0.2.12/24"]},
            {"interface": "net2", "mac": "02:00:00:00:00:03", "nic_tag": "admin"}
        ])))
        .unwrap();
        let merged = merge_filters(booted.clone(), current);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0], booted[0]);
        assert_eq!(merged[1].port, "vme015a6e863e1");
        assert!(merged[1].v4.contains(&("192.0.2.12".parse().unwrap(), 32)));
        assert!(!merged[1].v4.contains(&("192.0.2.11".parse().unwrap(), 32)));
    }
}
