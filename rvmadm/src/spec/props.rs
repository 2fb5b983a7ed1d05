//! The declarative property table for OS-container VMs.
//!
//! One row per SmartOS property that means something for a jail: its type,
//! bounds, whether create and/or update payloads may carry it, whether a
//! running jail picks up a change live, and a line of documentation.
//! Validation, defaults, `get`, `list -o` and `docs/properties.md` all read
//! this table, so adding a property is one row. The defaults column is the
//! only place that says what a property is when a payload or a record
//! leaves it out: `create` fills them in from here, and the typed record
//! ([`super::record`]) reads them from here for a record without them.

/// How a value is checked and normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true`/`false`; the strings `"true"`/`"false"`/`"1"`/`"0"` and the
    /// numbers 1/0 are accepted too, since `vmadm update k=v` sends strings.
    Bool,
    /// A UUID in its hyphenated form, stored lowercase.
    Uuid,
    /// Whole number in `min..=max` (numbers or numeric strings accepted).
    Int {
        /// The smallest value accepted.
        min: i64,
        /// The largest value accepted.
        max: i64,
    },
    /// Free text of at most this many bytes, without control characters.
    Text(usize),
    /// An RFC 1123 host name (see [`crate::spec::valid_hostname`]).
    Hostname,
    /// A display name from a conservative character set (see
    /// [`crate::spec::valid_alias`]).
    Alias,
    /// One of the OS-container brands in [`super::brand::OS_BRANDS`].
    Brand,
    /// A dotted DNS domain.
    Domain,
    /// An absolute path inside the jail (init_name).
    JailPath,
    /// zfs compression: on/off/lz4/gzip/gzip-N/lzjb/zle/zstd.
    Compression,
    /// A pool name (the pool must exist: checked by create, not here).
    Zpool,
    /// A list of strings (array, or a comma-separated string).
    List,
    /// A list of IP addresses.
    IpList,
    /// A flat object: string keys, string/number/bool values.
    FlatObject,
    /// `routes`: destination IP/CIDR → gateway IP or `nics[N]`/`macs[mac]`.
    Routes,
    /// The `nics` / `add_nics` arrays.
    Nics,
    /// `update_nics`.
    NicUpdates,
    /// `filesystems` / `add_filesystems` / `update_filesystems`.
    Filesystems,
    /// An array of keys (`remove_tags` …) or MACs (`remove_nics`).
    Keys,
}

/// When a change reaches a running jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Applied to the running jail at once (limits, quota).
    Yes,
    /// Stored; takes effect at the next boot.
    Reboot,
    /// Bookkeeping only: nothing in the jail depends on it.
    NotApplicable,
}

/// A default that does not depend on the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    /// A boolean.
    Bool(bool),
    /// A whole number, in the property's own unit (MiB, GiB, bytes …).
    Int(u64),
    /// A string.
    Text(&'static str),
    /// `[]`.
    EmptyList,
    /// `{}`.
    EmptyObject,
}

impl Fixed {
    /// The default as the JSON value a record stores.
    pub fn to_value(self) -> Value {
        match self {
            Fixed::Bool(b) => Value::Bool(b),
            Fixed::Int(n) => Value::from(n),
            Fixed::Text(t) => Value::from(t),
            Fixed::EmptyList => Value::Array(Vec::new()),
            Fixed::EmptyObject => Value::Object(Map::new()),
        }
    }

    /// The number of an [`Fixed::Int`]; `None` for other kinds.
    pub fn as_u64(self) -> Option<u64> {
        match self {
            Fixed::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The value of a [`Fixed::Bool`]; `None` for other kinds.
    pub fn as_bool(self) -> Option<bool> {
        match self {
            Fixed::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The text of a [`Fixed::Text`]; `None` for other kinds.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Fixed::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// What a property is when it is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRule {
    /// Nothing: a VM without the property has none.
    NoDefault,
    /// `create` stores this when the payload has none, and a record without
    /// the property means the same.
    Stored(Fixed),
    /// `create` stores this, but a record without the property has none of
    /// it (`quota`: clearing it leaves the dataset without a quota).
    OnCreate(Fixed),
    /// Never stored: an object without the property means this (NIC and
    /// filesystem fields, the compression a cleared property goes back to).
    Implied(Fixed),
    /// The VM's `max_physical_memory`, and never more than it.
    PhysicalMemory,
    /// The VM's `max_physical_memory`, but at least the property's minimum.
    AtLeastPhysicalMemory,
    /// The VM's uuid.
    VmUuid,
    /// `pool` from vmadm.toml.
    HostPool,
}

impl DefaultRule {
    /// The value of a rule that does not depend on the VM.
    pub fn fixed(self) -> Option<Fixed> {
        match self {
            DefaultRule::Stored(f) | DefaultRule::OnCreate(f) | DefaultRule::Implied(f) => Some(f),
            _ => None,
        }
    }
}

/// One row of the property table.
#[derive(Debug, Clone, Copy)]
pub struct Prop {
    /// The SmartOS property name, as it appears in payloads and records.
    pub name: &'static str,
    /// How values are checked and normalised.
    pub kind: Kind,
    /// Whether a create payload may carry it. Only top-level rows
    /// ([`PROPS`]) are checked against this; NIC and filesystem objects
    /// follow their own rules in [`super::validate`].
    pub create: bool,
    /// Whether an update payload may carry it.
    pub update: bool,
    /// When a change reaches a running VM.
    pub live: Live,
    /// One line of documentation, the "meaning" column of
    /// `docs/properties.md`.
    pub doc: &'static str,
    /// What the property is when a payload or record leaves it out.
    pub default: DefaultRule,
}

impl Prop {
    const fn defaults_to(self, default: DefaultRule) -> Prop {
        Prop { default, ..self }
    }

    /// The lower bound of an integer property (0 for other kinds).
    pub fn min(&self) -> u64 {
        match self.kind {
            Kind::Int { min, .. } => u64::try_from(min).unwrap_or(0),
            _ => 0,
        }
    }
}

/// The owner/billing uuid of a VM nobody claimed.
pub const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

const MIB_MAX: i64 = 16 << 20; // 16 TiB in MiB
const GIB_MAX: i64 = 1 << 20; // 1 PiB in GiB
const COUNT_MAX: i64 = i32::MAX as i64;

const fn p(
    name: &'static str,
    kind: Kind,
    create: bool,
    update: bool,
    live: Live,
    doc: &'static str,
) -> Prop {
    Prop {
        name,
        kind,
        create,
        update,
        live,
        doc,
        default: DefaultRule::NoDefault,
    }
}

use serde_json::{Map, Value};
use DefaultRule::{
    AtLeastPhysicalMemory, HostPool, Implied, OnCreate, PhysicalMemory, Stored, VmUuid,
};
use Kind::*;
use Live::{NotApplicable as NA, Reboot, Yes};

/// Top-level properties of create and update payloads.
#[rustfmt::skip]
pub const PROPS: &[Prop] = &[
    p("alias", Alias, true, true, NA, "Free-form name shown by list; not unique."),
    p("archive_on_delete", Bool, true, true, NA, "Keep debug data on delete (recorded only)."),
    p("autoboot", Bool, true, true, NA, "Start at host boot; set by start, cleared by stop.").defaults_to(Stored(Fixed::Bool(true))),
    p("billing_id", Uuid, true, true, NA, "Package/billing UUID (bookkeeping).").defaults_to(Stored(Fixed::Text(ZERO_UUID))),
    p("brand", Brand, true, false, NA, "jail, joyent, joyent-minimal, lx or lx-jail; kept as given."),
    p("cpu_cap", Int { min: 0, max: 102_400 }, true, true, Yes, "CPU cap in percent of one CPU; 0 removes the cap."),
    p("cpu_shares", Int { min: 0, max: 65_535 }, true, true, Yes, "Relative CPU weight (default 100).").defaults_to(Stored(Fixed::Int(100))),
    p("customer_metadata", FlatObject, true, false, NA, "Key/value metadata for the guest; update with set_/remove_customer_metadata.").defaults_to(Stored(Fixed::EmptyObject)),
    p("delegate_dataset", Bool, true, false, NA, "Create <zfs_filesystem>/data for the jail to manage."),
    p("dns_domain", Domain, true, true, Reboot, "DNS domain of the jail (default local).").defaults_to(Stored(Fixed::Text("local"))),
    p("do_not_inventory", Bool, true, true, NA, "Hide from inventory tools."),
    p("filesystems", Filesystems, true, false, Reboot, "Host paths mounted into the jail (nullfs/bind)."),
    p("firewall_enabled", Bool, true, true, NA, "Recorded for compatibility; no firewall is managed.").defaults_to(Stored(Fixed::Bool(false))),
    p("fs_allowed", List, true, true, Reboot, "File system types the jail may mount."),
    p("hostname", Hostname, true, true, Reboot, "Host name inside the jail (RFC 1123)."),
    p("image_uuid", Uuid, true, false, NA, "The installed image the jail is cloned from (required)."),
    p("indestructible_delegated", Bool, true, true, NA, "Refuse to delete the delegated dataset."),
    p("indestructible_zoneroot", Bool, true, true, NA, "Refuse to delete the jail's root dataset."),
    p("init_name", JailPath, true, true, Reboot, "Init program run at boot (default /sbin/init on Linux, /etc/rc on FreeBSD)."),
    p("internal_metadata", FlatObject, true, false, NA, "Operator metadata; update with set_/remove_internal_metadata.").defaults_to(Stored(Fixed::EmptyObject)),
    p("internal_metadata_namespaces", List, true, true, NA, "Namespaces of internal metadata readable in the jail."),
    p("kernel_version", Text(64), true, true, Reboot, "Linux kernel version reported to lx jails."),
    p("limit_priv", List, true, true, Reboot, "Privilege set (recorded; jails use their own mechanisms).").defaults_to(Stored(Fixed::Text("default"))),
    p("maintain_resolvers", Bool, true, true, NA, "Rewrite resolv.conf when resolvers change."),
    p("max_locked_memory", Int { min: 0, max: MIB_MAX }, true, true, Yes, "Locked memory limit in MiB.").defaults_to(PhysicalMemory),
    p("max_lwps", Int { min: 1, max: COUNT_MAX }, true, true, Yes, "Maximum processes/threads (default 2000).").defaults_to(Stored(Fixed::Int(2000))),
    p("max_msg_ids", Int { min: 0, max: COUNT_MAX }, true, true, Yes, "System V message queue ids.").defaults_to(Stored(Fixed::Int(4096))),
    p("max_physical_memory", Int { min: 1, max: MIB_MAX }, true, true, Yes, "Memory limit in MiB (default 256).").defaults_to(Stored(Fixed::Int(256))),
    p("max_sem_ids", Int { min: 0, max: COUNT_MAX }, true, true, Yes, "System V semaphore ids.").defaults_to(Stored(Fixed::Int(4096))),
    p("max_shm_ids", Int { min: 0, max: COUNT_MAX }, true, true, Yes, "System V shared memory ids.").defaults_to(Stored(Fixed::Int(4096))),
    p("max_shm_memory", Int { min: 0, max: MIB_MAX }, true, true, Yes, "System V shared memory in MiB.").defaults_to(PhysicalMemory),
    p("max_swap", Int { min: 256, max: MIB_MAX }, true, true, Yes, "Memory plus swap limit in MiB (at least 256).").defaults_to(AtLeastPhysicalMemory),
    p("mdata_exec_timeout", Int { min: 0, max: COUNT_MAX }, true, false, NA, "Seconds allowed for the metadata user-script."),
    p("nics", Nics, true, false, Reboot, "Network interfaces; update with add_/update_/remove_nics.").defaults_to(Stored(Fixed::EmptyList)),
    p("nowait", Bool, true, false, NA, "Do not wait for provisioning to finish."),
    p("owner_uuid", Uuid, true, true, NA, "Owner of the jail (bookkeeping).").defaults_to(Stored(Fixed::Text(ZERO_UUID))),
    p("package_name", Text(256), true, true, NA, "Package name (deprecated, bookkeeping)."),
    p("package_version", Text(64), true, true, NA, "Package version (deprecated, bookkeeping)."),
    p("quota", Int { min: 0, max: GIB_MAX }, true, true, Yes, "Disk quota in GiB on the jail's dataset (default 10, 0 = none).").defaults_to(OnCreate(Fixed::Int(10))),
    p("ram", Int { min: 1, max: MIB_MAX }, true, true, Yes, "Shorthand for max_physical_memory in MiB."),
    p("resolvers", IpList, true, true, Reboot, "DNS resolvers written to the jail's resolv.conf.").defaults_to(Stored(Fixed::EmptyList)),
    p("restart_init", Bool, true, true, Reboot, "Restart the jail when init exits.").defaults_to(Stored(Fixed::Bool(true))),
    p("routes", Routes, true, false, Reboot, "Static routes; update with set_/remove_routes.").defaults_to(Stored(Fixed::EmptyObject)),
    p("tags", FlatObject, true, false, NA, "Key/value tags; update with set_/remove_tags.").defaults_to(Stored(Fixed::EmptyObject)),
    p("tmpfs", Int { min: 0, max: MIB_MAX }, true, true, Reboot, "Size of the tmpfs on /tmp in MiB (0 = none).").defaults_to(PhysicalMemory),
    p("uuid", Uuid, true, false, NA, "The VM's UUID (generated when absent)."),
    p("zfs_data_compression", Compression, true, true, Yes, "Compression of the delegated dataset."),
    p("zfs_data_recsize", Int { min: 0, max: 131_072 }, true, true, Yes, "Record size of the delegated dataset (power of 2)."),
    p("zfs_filesystem_limit", Int { min: 0, max: COUNT_MAX }, true, true, Yes, "Maximum child file systems."),
    p("zfs_io_priority", Int { min: 0, max: 16_383 }, true, true, Yes, "Relative I/O weight (default 100).").defaults_to(Stored(Fixed::Int(100))),
    p("zfs_root_compression", Compression, true, true, Yes, "Compression of the jail's dataset.").defaults_to(Implied(Fixed::Text("off"))),
    p("zfs_root_recsize", Int { min: 0, max: 131_072 }, true, true, Yes, "Record size of the jail's dataset (power of 2).").defaults_to(Stored(Fixed::Int(131_072))),
    p("zfs_snapshot_limit", Int { min: 0, max: COUNT_MAX }, true, true, Yes, "Maximum snapshots."),
    p("zonename", Text(64), true, false, NA, "Zone name (defaults to the uuid; discouraged).").defaults_to(VmUuid),
    p("zpool", Zpool, true, false, NA, "Pool for the jail's dataset (default from vmadm.toml).").defaults_to(HostPool),
    // Deprecated names SmartOS still maps on create.
    p("dataset_uuid", Uuid, true, false, NA, "Deprecated name of image_uuid."),
    p("zfs_storage_pool_name", Zpool, true, false, NA, "Deprecated name of zpool."),
    // Update-only collection edits.
    p("set_customer_metadata", FlatObject, false, true, NA, "Keys to add or replace in customer_metadata."),
    p("remove_customer_metadata", Keys, false, true, NA, "Keys to remove from customer_metadata."),
    p("set_internal_metadata", FlatObject, false, true, NA, "Keys to add or replace in internal_metadata."),
    p("remove_internal_metadata", Keys, false, true, NA, "Keys to remove from internal_metadata."),
    p("set_tags", FlatObject, false, true, NA, "Tags to add or replace."),
    p("remove_tags", Keys, false, true, NA, "Tags to remove."),
    p("set_routes", Routes, false, true, Reboot, "Routes to add or replace."),
    p("remove_routes", Keys, false, true, Reboot, "Route destinations to remove."),
    p("add_nics", Nics, false, true, Reboot, "NICs to add."),
    p("update_nics", NicUpdates, false, true, Reboot, "NIC changes, each keyed by mac."),
    p("remove_nics", Keys, false, true, Reboot, "MACs of NICs to remove."),
    p("add_filesystems", Filesystems, false, true, Reboot, "File systems to add."),
    p("update_filesystems", Filesystems, false, true, Reboot, "File system changes keyed by target."),
    p("remove_filesystems", Keys, false, true, Reboot, "Targets of file systems to remove."),
];

/// Properties of one NIC object.
#[rustfmt::skip]
pub const NIC_PROPS: &[Prop] = &[
    p("interface", Text(15), false, false, Reboot, "Name inside the jail (net0 …); assigned."),
    p("mac", Text(17), true, true, Reboot, "MAC address; generated when absent; key for updates."),
    p("nic_tag", Text(31), true, true, Reboot, "Network name, mapped to a bridge by vmadm.toml [networks] (required)."),
    p("ips", List, true, true, Reboot, "Addresses as CIDR, or dhcp / addrconf (at most 20)."),
    p("gateways", IpList, true, true, Reboot, "Default gateways (IPv4)."),
    p("ip", Text(45), true, true, Reboot, "Deprecated single IPv4 address (with netmask) or dhcp."),
    p("netmask", Text(15), true, true, Reboot, "Deprecated dotted IPv4 netmask for ip."),
    p("gateway", Text(45), true, true, Reboot, "Deprecated single gateway."),
    p("vlan_id", Int { min: 0, max: 4095 }, true, true, Reboot, "802.1Q VLAN id; 0 = untagged.").defaults_to(Implied(Fixed::Int(0))),
    p("primary", Bool, true, true, Reboot, "The NIC that carries the default route."),
    p("mtu", Int { min: 576, max: 9000 }, true, true, Reboot, "Link MTU."),
    p("network_uuid", Uuid, true, true, NA, "Network UUID (bookkeeping)."),
    p("allow_ip_spoofing", Bool, true, true, Yes, "Allow other source IPs."),
    p("allow_mac_spoofing", Bool, true, true, Yes, "Allow other source MACs."),
    p("allow_dhcp_spoofing", Bool, true, true, Yes, "Allow acting as a DHCP server."),
    p("allow_restricted_traffic", Bool, true, true, Yes, "Allow non-IP traffic."),
    p("dhcp_server", Bool, true, true, Yes, "Deprecated alias of allow_dhcp_spoofing."),
    p("allowed_ips", List, true, true, Yes, "Extra source addresses allowed."),
    p("blocked_outgoing_ports", List, true, true, Yes, "Outgoing TCP ports to block."),
    p("vrrp_vrid", Int { min: 0, max: 255 }, true, true, Reboot, "VRRP virtual router id; the NIC's MAC becomes 00:00:5e:00:01:<vrid>."),
    p("vrrp_primary_ip", Text(15), true, true, Yes, "IPv4 address of another NIC of this VM that the VRRP NIC may send from (its advertisements)."),
    p("allowed_dhcp_cids", List, true, true, Yes, "DHCP client identifiers (0x-prefixed hex, at most 20) the NIC may send; not enforced on Linux."),
];

/// Properties of one `filesystems` entry.
#[rustfmt::skip]
pub const FS_PROPS: &[Prop] = &[
    p("type", Text(16), true, true, Reboot, "nullfs (FreeBSD), bind (Linux) or lofs (SmartOS name).").defaults_to(Implied(Fixed::Text("lofs"))),
    p("source", Text(1024), true, true, Reboot, "Absolute host path, below a filesystem_sources entry of vmadm.toml."),
    p("target", Text(1024), true, true, Reboot, "Absolute path in the jail."),
    p("raw", Text(1024), true, true, Reboot, "Raw device (recorded only)."),
    p("options", List, true, true, Reboot, "Mount options: read-only unless rw is given and vmadm.toml's filesystem_sources allows it."),
];

/// Looks a top-level property up.
pub fn find(name: &str) -> Option<&'static Prop> {
    PROPS.iter().find(|p| p.name == name)
}

/// Looks a property of one NIC object up (`nics`, `add_nics` entries).
pub fn find_nic(name: &str) -> Option<&'static Prop> {
    NIC_PROPS.iter().find(|p| p.name == name)
}

/// Looks a property of one `filesystems` entry up.
pub fn find_fs(name: &str) -> Option<&'static Prop> {
    FS_PROPS.iter().find(|p| p.name == name)
}

/// Properties vmadm computes; never accepted from a payload, shown by `get`.
pub const GENERATED: &[(&str, &str)] = &[
    ("state", "running, stopped, … (from the OS on every read)"),
    ("zone_state", "the raw state: running, installed …"),
    ("zonepath", "where the jail's dataset is mounted"),
    ("zfs_filesystem", "<pool>/<uuid>"),
    ("zonename", "the uuid"),
    ("zoneid", "the OS's id of the running jail (jid on FreeBSD)"),
    ("pid", "the jail's init pid, while running"),
    ("boot_timestamp", "when init started, while running"),
    ("create_timestamp", "when the VM was created"),
    ("last_modified", "when the record last changed"),
    ("snapshots", "vmsnap-* snapshots of the dataset"),
    ("server_uuid", "this host's uuid, when configured"),
    ("v", "VM object version (1)"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_sorted_groups_are_consistent() {
        for (i, table) in [PROPS, NIC_PROPS, FS_PROPS].into_iter().enumerate() {
            let mut seen = HashSet::new();
            for p in table {
                assert!(seen.insert(p.name), "duplicate {}", p.name);
                assert!(p.create || p.update || i == 1, "{} is unusable", p.name);
                assert!(!p.doc.is_empty());
            }
        }
    }

    #[test]
    fn smartos_permissions() {
        assert!(find("brand").is_some_and(|p| p.create && !p.update));
        assert!(find("image_uuid").is_some_and(|p| !p.update));
        assert!(find("customer_metadata").is_some_and(|p| !p.update));
        assert!(find("set_tags").is_some_and(|p| p.update && !p.create));
        assert!(find("quota").is_some_and(|p| p.live == Live::Yes));
        assert!(find("state").is_none());
        assert_eq!(
            find_nic("vlan_id").map(|p| p.kind),
            Some(Int { min: 0, max: 4095 })
        );
    }

    #[test]
    fn defaults_are_valid_values_and_match_their_docs() {
        use crate::spec::value::{normalize, Norm};
        for p in PROPS.iter().chain(NIC_PROPS).chain(FS_PROPS) {
            let Some(fixed) = p.default.fixed() else {
                continue;
            };
            assert!(
                matches!(normalize(p.kind, &fixed.to_value()), Norm::Value(_)),
                "{}: default {fixed:?} is not a valid value",
                p.name
            );
            // A doc that names the default must name this one.
            if let Some(rest) = p.doc.split("(default ").nth(1) {
                let said = rest.split([',', ')', ' ']).next().unwrap_or_default();
                let value = match fixed {
                    Fixed::Int(n) => n.to_string(),
                    Fixed::Text(t) => t.to_string(),
                    other => format!("{other:?}"),
                };
                assert_eq!(said, value, "{}", p.name);
            }
        }
        let rule = |n: &str| find(n).map(|p| p.default);
        assert_eq!(rule("max_swap"), Some(DefaultRule::AtLeastPhysicalMemory));
        assert_eq!(find("max_swap").map(|p| p.min()), Some(256));
        assert_eq!(rule("quota"), Some(DefaultRule::OnCreate(Fixed::Int(10))));
    }
}
