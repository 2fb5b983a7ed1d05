//! `VmSpec`: the typed, validated view of a VM that drivers consume.
//!
//! The stored record ([`VmRecord`]) keeps what `get` shows, absent
//! properties included. Drivers get this struct instead, built by
//! [`VmSpec::from_record`]: every value resolved (defaults from the
//! property table), NICs and addresses parsed, so a driver never looks at
//! JSON or decides a default.

use super::props::{self, Prop};
use super::record::{Field, VmRecord};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use uuid::Uuid;

/// One address of a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NicAddr {
    /// A fixed address with its prefix length (`192.0.2.10/24`).
    Static {
        /// The address itself.
        addr: IpAddr,
        /// Prefix length: at most 32 for IPv4, 128 for IPv6.
        prefix: u8,
    },
    /// IPv4 by DHCP.
    Dhcp,
    /// IPv6 by stateless autoconfiguration.
    Addrconf,
}

impl NicAddr {
    /// Parses `addr/prefix`, `dhcp` or `addrconf`.
    pub fn parse(s: &str) -> Option<NicAddr> {
        match s {
            "dhcp" => return Some(NicAddr::Dhcp),
            "addrconf" => return Some(NicAddr::Addrconf),
            _ => {}
        }
        let (a, p) = s.split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = p.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(NicAddr::Static { addr, prefix })
    }
}

impl NicAddr {
    /// Parses an `allowed_ips` entry: `addr/prefix`, or a bare address
    /// standing for itself alone (/32 or /128).
    pub fn parse_network(s: &str) -> Option<NicAddr> {
        if s.contains('/') {
            return match NicAddr::parse(s)? {
                a @ NicAddr::Static { .. } => Some(a),
                _ => None,
            };
        }
        let addr: IpAddr = s.parse().ok()?;
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Some(NicAddr::Static { addr, prefix })
    }
}

impl std::fmt::Display for NicAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NicAddr::Static { addr, prefix } => write!(f, "{addr}/{prefix}"),
            NicAddr::Dhcp => f.write_str("dhcp"),
            NicAddr::Addrconf => f.write_str("addrconf"),
        }
    }
}

/// One network interface, parsed from its stored NIC object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nic {
    /// Name inside the jail: `net0`, `net1` … (`eth0` … for lx brands).
    pub interface: String,
    /// Lowercase, zero-padded `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The network it joins; vmadm.toml's `[networks]` maps it to a host
    /// bridge.
    pub nic_tag: String,
    /// Its addresses, in the order given; may be empty.
    pub ips: Vec<NicAddr>,
    /// Default gateways reached through this NIC.
    pub gateways: Vec<IpAddr>,
    /// 802.1Q VLAN id, 0..=4095; 0 = untagged.
    pub vlan_id: u16,
    /// Link MTU in bytes (576..=9000); `None` leaves the OS default.
    pub mtu: Option<u32>,
    /// As stored; use [`VmSpec::primary_nic`] to find the NIC that carries
    /// the default route.
    pub primary: bool,
    /// May send from source IPs it was not given (Linux: no source
    /// address filter on its port).
    pub allow_ip_spoofing: bool,
    /// May send from other source MACs.
    pub allow_mac_spoofing: bool,
    /// May act as a DHCP server; also set by the deprecated `dhcp_server`.
    pub allow_dhcp_spoofing: bool,
    /// May send traffic other than IPv4, IPv6 and ARP.
    pub allow_restricted_traffic: bool,
    /// Extra source addresses or networks (`allowed_ips`), each with its
    /// prefix length (a bare address gets the full length).
    pub allowed_ips: Vec<NicAddr>,
    /// TCP destination ports this NIC may not send to
    /// (`blocked_outgoing_ports`; SmartOS blocks TCP only).
    pub blocked_outgoing_ports: Vec<u16>,
    /// VRRP router id (`vrrp_vrid`); the MAC is then the router's.
    pub vrrp_vrid: Option<u8>,
    /// The address this VRRP NIC advertises from (`vrrp_primary_ip`, an IP
    /// of another NIC of the VM), allowed as a source beside `ips`.
    pub vrrp_primary_ip: Option<Ipv4Addr>,
}

/// Resource limits in SmartOS units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// MiB.
    pub max_physical_memory: u64,
    /// MiB.
    pub max_locked_memory: u64,
    /// MiB (memory + swap, SmartOS semantics).
    pub max_swap: u64,
    /// MiB.
    pub max_shm_memory: u64,
    /// Percent of one CPU; `None` (or 0) = uncapped.
    pub cpu_cap: Option<u64>,
    /// Relative CPU weight against other VMs (SmartOS default 100).
    pub cpu_shares: u64,
    /// Most processes and threads at once.
    pub max_lwps: u64,
    /// Most System V message queue ids.
    pub max_msg_ids: u64,
    /// Most System V semaphore ids.
    pub max_sem_ids: u64,
    /// Most System V shared memory ids.
    pub max_shm_ids: u64,
    /// GiB; 0 = no quota.
    pub quota: u64,
    /// MiB; 0 = no tmpfs on /tmp.
    pub tmpfs: u64,
    /// Relative I/O weight (SmartOS default 100); neither driver has an
    /// equivalent to apply it to.
    pub zfs_io_priority: u64,
}

/// A host directory (or other file system) mounted into the jail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filesystem {
    /// The entry's `type`: `nullfs` (FreeBSD), `bind` (Linux) or `lofs`
    /// (SmartOS's name, the default when the entry has none).
    pub kind: String,
    /// The host path mounted.
    pub source: String,
    /// Where it appears inside the VM.
    pub target: String,
    /// False only when `options` asks for `rw` (and not `ro`): mounts are
    /// read-only unless asked otherwise, and the allowlist permits it
    /// ([`crate::spec::fs_policy`]).
    pub read_only: bool,
    /// Mount options as given.
    pub options: Vec<String>,
}

/// Everything a driver needs to know about one VM, every default resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmSpec {
    /// The VM's uuid (also its zone name).
    pub uuid: Uuid,
    /// The brand as the user gave it (`jail`, `joyent`, `lx` …).
    pub brand: String,
    /// The free-form display name, if any.
    pub alias: Option<String>,
    /// The `hostname` property; [`VmSpec::effective_hostname`] supplies
    /// the uuid when it is absent.
    pub hostname: Option<String>,
    /// DNS search domain (`local` unless set).
    pub dns_domain: String,
    /// The image the dataset was cloned from.
    pub image_uuid: Uuid,
    /// The pool holding the VM's dataset.
    pub zpool: String,
    /// `<pool>/<uuid>`.
    pub zfs_filesystem: String,
    /// Where the dataset is mounted (the jail's root is this path itself).
    pub zonepath: PathBuf,
    /// Start the VM when the host boots (`vmadm start`/`stop` flip it).
    pub autoboot: bool,
    /// The init command inside the VM; `None` = the OS's default
    /// (`/sbin/init` on Linux, `/etc/rc` on FreeBSD).
    pub init_name: Option<String>,
    /// Restart the VM when init exits (stored; no driver acts on it yet).
    pub restart_init: bool,
    /// Create made `<zfs_filesystem>/data` for the VM to manage itself.
    pub delegate_dataset: bool,
    /// Resource limits.
    pub limits: Limits,
    /// Network interfaces, in stored order.
    pub nics: Vec<Nic>,
    /// DNS servers for the VM's resolv.conf; entries that are not IP
    /// addresses are left out.
    pub resolvers: Vec<IpAddr>,
    /// Host file systems to mount; entries without `source` or `target`
    /// are left out.
    pub filesystems: Vec<Filesystem>,
    /// Destination (IP or CIDR) → gateway.
    pub routes: BTreeMap<String, String>,
    /// Metadata the guest may read; empty when the record has none.
    pub customer_metadata: Map<String, Value>,
    /// Operator metadata; empty when the record has none.
    pub internal_metadata: Map<String, Value>,
    /// Operator tags; empty when the record has none.
    pub tags: Map<String, Value>,
}

impl VmSpec {
    /// True for the brands that run Linux binaries.
    pub fn is_lx(&self) -> bool {
        crate::spec::brand::is_lx(&self.brand)
    }

    /// The hostname the jail sees: the property, else the uuid (SmartOS
    /// uses the zonename).
    pub fn effective_hostname(&self) -> String {
        self.hostname
            .clone()
            .unwrap_or_else(|| self.uuid.to_string())
    }

    /// The NIC marked primary, else the first one.
    pub fn primary_nic(&self) -> Option<&Nic> {
        self.nics
            .iter()
            .find(|n| n.primary)
            .or_else(|| self.nics.first())
    }

    /// Builds the typed view of a stored record. Absent properties take
    /// what the property table says a record without them means. Fails
    /// only on a record that was written by something other than vmadm.
    pub fn from_record(rec: &VmRecord) -> Result<VmSpec, String> {
        let uuid_of = |v: Option<&String>, k: &str| -> Result<Uuid, String> {
            v.and_then(|v| Uuid::parse_str(v).ok())
                .ok_or_else(|| format!("{k} missing or invalid"))
        };
        let int = |f: Field| rec.int_or_default(f).unwrap_or_default();
        let uuid = uuid_of(rec.uuid.as_ref(), "uuid")?;
        let zpool = rec.zpool.clone().ok_or("zpool missing")?;
        let limits = Limits {
            max_physical_memory: int(Field::MaxPhysicalMemory),
            max_locked_memory: int(Field::MaxLockedMemory),
            max_swap: int(Field::MaxSwap),
            max_shm_memory: int(Field::MaxShmMemory),
            cpu_cap: rec.cpu_cap.filter(|c| *c > 0),
            cpu_shares: int(Field::CpuShares),
            max_lwps: int(Field::MaxLwps),
            max_msg_ids: int(Field::MaxMsgIds),
            max_sem_ids: int(Field::MaxSemIds),
            max_shm_ids: int(Field::MaxShmIds),
            // A record without quota has none (0).
            quota: int(Field::Quota),
            tmpfs: int(Field::Tmpfs),
            zfs_io_priority: int(Field::ZfsIoPriority),
        };
        if rec.extra.contains_key(Field::Nics.name()) {
            return Err("nic is not an object".into());
        }
        let mut nics = Vec::new();
        for n in rec.nics.iter().flatten() {
            nics.push(nic_from_object(n)?);
        }
        let resolvers = rec
            .resolvers
            .iter()
            .flatten()
            .filter_map(|r| r.parse().ok())
            .collect();
        let fs_type = implied_str(props::find_fs("type"));
        let filesystems = rec
            .filesystems
            .iter()
            .flatten()
            .filter_map(|f| {
                let g = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
                let options: Vec<String> = f
                    .get("options")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.as_str().map(str::to_string))
                    .collect();
                Some(Filesystem {
                    kind: g("type").unwrap_or_else(|| fs_type.to_string()),
                    source: g("source")?,
                    target: g("target")?,
                    read_only: !super::fs_policy::wants_rw(&options),
                    options,
                })
            })
            .collect();
        let routes = rec
            .routes
            .iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect();
        let object = |m: &Option<Map<String, Value>>| m.clone().unwrap_or_default();
        Ok(VmSpec {
            uuid,
            brand: rec.brand.clone().ok_or("brand missing")?,
            alias: rec.alias.clone(),
            hostname: rec.hostname.clone(),
            dns_domain: rec
                .str_or_default(Field::DnsDomain)
                .unwrap_or_default()
                .to_string(),
            image_uuid: uuid_of(rec.image_uuid.as_ref(), "image_uuid")?,
            zfs_filesystem: rec
                .zfs_filesystem
                .clone()
                .unwrap_or_else(|| format!("{zpool}/{uuid}")),
            zonepath: rec
                .zonepath
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(format!("/{zpool}/{uuid}"))),
            zpool,
            autoboot: rec.bool_or_default(Field::Autoboot).unwrap_or_default(),
            init_name: rec.init_name.clone(),
            restart_init: rec.bool_or_default(Field::RestartInit).unwrap_or_default(),
            delegate_dataset: rec.delegate_dataset == Some(true),
            limits,
            nics,
            resolvers,
            filesystems,
            routes,
            customer_metadata: object(&rec.customer_metadata),
            internal_metadata: object(&rec.internal_metadata),
            tags: object(&rec.tags),
        })
    }

    /// The typed view of a JSON object read as a record (fixtures, tests).
    pub fn from_object(obj: &Map<String, Value>) -> Result<VmSpec, String> {
        VmSpec::from_record(&VmRecord::from_map(obj.clone()))
    }
}

/// The text an absent nested property stands for, from its table row.
fn implied_str(p: Option<&Prop>) -> &'static str {
    p.and_then(|p| p.default.fixed())
        .and_then(|f| f.as_str())
        .unwrap_or_default()
}

fn nic_from_object(n: &Map<String, Value>) -> Result<Nic, String> {
    let s = |k: &str| n.get(k).and_then(Value::as_str).map(str::to_string);
    let b = |k: &str| n.get(k).and_then(Value::as_bool).unwrap_or(false);
    let strs = |k: &str| -> Vec<String> {
        n.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let ips = strs("ips")
        .iter()
        .map(|ip| NicAddr::parse(ip).ok_or_else(|| format!("bad nic address {ip:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let gateways = strs("gateways")
        .iter()
        .map(|g| g.parse().map_err(|_| format!("bad gateway {g:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Nic {
        interface: s("interface").ok_or("nic without interface")?,
        mac: s("mac").ok_or("nic without mac")?,
        nic_tag: s("nic_tag").ok_or("nic without nic_tag")?,
        ips,
        gateways,
        vlan_id: n
            .get("vlan_id")
            .and_then(Value::as_u64)
            .or_else(|| props::find_nic("vlan_id").and_then(|p| p.default.fixed()?.as_u64()))
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or_default(),
        mtu: n
            .get("mtu")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok()),
        primary: b("primary"),
        allow_ip_spoofing: b("allow_ip_spoofing"),
        allow_mac_spoofing: b("allow_mac_spoofing"),
        allow_dhcp_spoofing: b("allow_dhcp_spoofing") || b("dhcp_server"),
        allow_restricted_traffic: b("allow_restricted_traffic"),
        allowed_ips: strs("allowed_ips")
            .iter()
            .map(|a| {
                NicAddr::parse_network(a).ok_or_else(|| format!("bad allowed_ips entry {a:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        // Stored as strings by the property table; SmartOS payloads give
        // numbers, so both are read.
        blocked_outgoing_ports: n
            .get("blocked_outgoing_ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| {
                p.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .or_else(|| p.as_str().and_then(|p| p.parse().ok()))
                    .ok_or_else(|| format!("bad blocked_outgoing_ports entry {p}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        vrrp_vrid: n
            .get("vrrp_vrid")
            .and_then(Value::as_u64)
            .map(|v| u8::try_from(v).map_err(|_| format!("bad vrrp_vrid {v}")))
            .transpose()?,
        vrrp_primary_ip: s("vrrp_primary_ip")
            .map(|ip| {
                ip.parse()
                    .map_err(|_| format!("bad vrrp_primary_ip {ip:?}"))
            })
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nic_addr_parsing() {
        assert_eq!(
            NicAddr::parse("192.0.2.5/24"),
            Some(NicAddr::Static {
                addr: "192.0.2.5".parse().unwrap(),
                prefix: 24
            })
        );
        assert_eq!(NicAddr::parse("dhcp"), Some(NicAddr::Dhcp));
        assert!(NicAddr::parse("192.0.2.5/33").is_none());
        assert!(NicAddr::parse("192.0.2.5").is_none());
        assert!(NicAddr::parse("2001:db8::1/64").is_some());
        assert!(NicAddr::parse("192.0.2.5/+1").is_none());
    }

    #[test]
    fn from_object_reads_everything() {
        let obj = json!({
            "uuid": "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60",
            "brand": "jail",
            "image_uuid": "11111111-2222-4333-8444-555555555555",
            "zpool": "zones",
            "max_physical_memory": 512,
            "cpu_cap": 50,
            "quota": 5,
            "resolvers": ["192.0.2.53"],
            "nics": [{"interface": "net0", "mac": "02:00:00:00:00:01", "nic_tag": "admin",
                      "ips": ["192.0.2.10/24"], "gateways": ["192.0.2.1"], "vlan_id": 12,
                      "primary": true}]
        });
        let spec = VmSpec::from_object(obj.as_object().unwrap()).unwrap();
        assert_eq!(spec.limits.max_physical_memory, 512);
        assert_eq!(spec.limits.max_swap, 512);
        assert_eq!(spec.limits.cpu_cap, Some(50));
        assert_eq!(
            spec.zfs_filesystem,
            "zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60"
        );
        assert_eq!(spec.nics[0].vlan_id, 12);
        assert_eq!(spec.primary_nic().unwrap().interface, "net0");
        assert_eq!(spec.resolvers.len(), 1);
        assert_eq!(spec.effective_hostname(), spec.uuid.to_string());
    }
}
