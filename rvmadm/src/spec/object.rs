//! Building and changing the stored VM record.
//!
//! [`new_vm_record`] turns a validated create payload into the full record:
//! the property table's defaults, SmartOS's memory rules, NIC fields filled
//! in (interface, MAC, primary). [`apply_update`] applies a validated update
//! payload to a record and names what changed, so ops can push live changes
//! to a running jail. Both set keys in the same sequence as they always
//! have: where a key lands in the record is visible in `get`.

use super::mac;
use super::props::{self, DefaultRule, Live};
use super::record::{Field, JsonObject, VmRecord};
use super::validate::ValidationErrors;
use serde_json::{Map, Value};

pub use super::props::ZERO_UUID;

/// Host facts create needs.
pub struct CreateContext<'a> {
    /// The new VM's uuid (the payload's, or a fresh one).
    pub uuid: &'a str,
    /// The pool from vmadm.toml, used when the payload names no `zpool`.
    pub default_pool: &'a str,
    /// Where the dataset will be mounted.
    pub zonepath: &'a str,
    /// The creation time, ISO-8601 UTC with milliseconds: stored as both
    /// `create_timestamp` and `last_modified`.
    pub now: &'a str,
}

/// The properties create fills in from the table when the payload lacks
/// them, in the order it adds them (the memory limits follow from
/// [`fix_memory`], `zonename` once the uuid is set).
const CREATE_DEFAULTS: &[&str] = &[
    "autoboot",
    "owner_uuid",
    "billing_id",
    "zpool",
    "dns_domain",
    "cpu_shares",
    "zfs_io_priority",
    "max_lwps",
    "max_msg_ids",
    "max_sem_ids",
    "max_shm_ids",
    "limit_priv",
    "quota",
    "resolvers",
    "firewall_enabled",
    "zfs_root_recsize",
    "nics",
    "restart_init",
    "customer_metadata",
    "internal_metadata",
    "routes",
    "tags",
];

/// The value create stores for `name` when the payload has none.
fn create_default(name: &str, ctx: &CreateContext) -> Option<Value> {
    match props::find(name)?.default {
        DefaultRule::Stored(f) | DefaultRule::OnCreate(f) => Some(f.to_value()),
        DefaultRule::HostPool => Some(ctx.default_pool.into()),
        DefaultRule::VmUuid => Some(ctx.uuid.into()),
        _ => None,
    }
}

/// The memory limits that follow `max_physical_memory` (table order).
fn memory_limits(rule: DefaultRule) -> impl Iterator<Item = (Field, u64)> {
    props::PROPS
        .iter()
        .filter(move |p| p.default == rule)
        .filter_map(|p| Field::from_name(p.name).map(|f| (f, p.min())))
}

/// True for the payload keys that make [`fix_memory`] run on update.
fn touches_memory(key: &str) -> bool {
    key == "ram"
        || key == Field::MaxPhysicalMemory.name()
        || props::find(key).is_some_and(|p| {
            matches!(
                p.default,
                DefaultRule::PhysicalMemory | DefaultRule::AtLeastPhysicalMemory
            )
        })
}

/// Applies SmartOS's memory rules: `ram` sets max_physical_memory; locked,
/// shm and tmpfs default to it and are clamped to it; swap is at least
/// max(max_physical_memory, its minimum of 256).
fn fix_memory(rec: &mut VmRecord, creating: bool) {
    if let Some(ram) = rec.remove("ram") {
        rec.set(Field::MaxPhysicalMemory.name(), ram);
    }
    let phys = rec
        .int_or_default(Field::MaxPhysicalMemory)
        .unwrap_or_default();
    rec.set_u64(Field::MaxPhysicalMemory, phys);
    for (f, _) in memory_limits(DefaultRule::PhysicalMemory) {
        let v = match rec.get_u64(f) {
            Some(v) => v.min(phys),
            None if creating => phys,
            None => continue,
        };
        rec.set_u64(f, v);
    }
    for (f, min) in memory_limits(DefaultRule::AtLeastPhysicalMemory) {
        let v = rec.get_u64(f).unwrap_or(0).max(phys).max(min);
        rec.set_u64(f, v);
    }
}

fn text<'a>(n: &'a JsonObject, k: &str) -> Option<&'a str> {
    n.get(k).and_then(Value::as_str)
}

/// Fills interface names, MACs and the primary flag of `nics`, keeping the
/// names already used by `existing`.
fn complete_nics(nics: &mut [JsonObject], existing: &[JsonObject], brand: &str) {
    let prefix = super::brand::interface_prefix(brand);
    let mut used: Vec<String> = existing
        .iter()
        .chain(nics.iter())
        .filter_map(|n| text(n, "interface").map(str::to_string))
        .collect();
    for obj in nics.iter_mut() {
        if !obj.contains_key("interface") {
            let name = (0..)
                .map(|i| format!("{prefix}{i}"))
                .find(|n| !used.contains(n))
                .unwrap_or_default();
            used.push(name.clone());
            obj.insert("interface".into(), Value::String(name));
        }
        if !obj.contains_key("mac") {
            obj.insert("mac".into(), Value::String(mac::generate()));
        }
        // Keep the legacy single-address fields SmartOS shows in `get`.
        let first_v4 = obj.get("ips").and_then(Value::as_array).and_then(|ips| {
            ips.iter()
                .filter_map(Value::as_str)
                .find(|ip| ip.contains('.') || *ip == "dhcp")
                .map(str::to_string)
        });
        if let Some(ip) = first_v4 {
            match ip.split_once('/') {
                Some((addr, bits)) => {
                    let bits: u32 = bits.parse().unwrap_or(32);
                    let mask = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                    obj.insert("ip".into(), Value::String(addr.into()));
                    obj.insert(
                        "netmask".into(),
                        Value::String(std::net::Ipv4Addr::from(mask).to_string()),
                    );
                }
                None => {
                    obj.insert("ip".into(), Value::String(ip));
                }
            }
        }
        if let Some(gw) = obj
            .get("gateways")
            .and_then(Value::as_array)
            .and_then(|g| g.first())
            .cloned()
        {
            obj.insert("gateway".into(), gw);
        }
    }
}

fn sort_nics(nics: &mut [JsonObject]) {
    let idx = |n: &JsonObject| {
        text(n, "interface")
            .map(|s| s.trim_start_matches(char::is_alphabetic))
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    };
    nics.sort_by_key(idx);
}

fn is_primary(n: &JsonObject) -> bool {
    n.get("primary") == Some(&Value::Bool(true))
}

/// Makes sure exactly one NIC is primary when there are any.
fn ensure_primary(nics: &mut [JsonObject]) {
    if nics.iter().any(is_primary) {
        return;
    }
    if let Some(first) = nics.first_mut() {
        first.insert("primary".into(), Value::Bool(true));
    }
}

/// Builds the stored record from a validated create payload.
pub fn new_vm_record(payload: &Map<String, Value>, ctx: &CreateContext) -> VmRecord {
    let mut rec = VmRecord::from_map(payload.clone());
    let brand = rec.brand.clone().unwrap_or_else(|| "jail".into());
    for name in CREATE_DEFAULTS {
        if !rec.has(name) {
            if let Some(v) = create_default(name, ctx) {
                rec.set(name, v);
            }
        }
    }
    fix_memory(&mut rec, true);
    if let Some(nics) = rec.nics.as_mut() {
        complete_nics(nics, &[], &brand);
        ensure_primary(nics);
        sort_nics(nics);
    }
    let pool = rec
        .zpool
        .clone()
        .unwrap_or_else(|| ctx.default_pool.to_string());
    rec.set(Field::Uuid.name(), ctx.uuid.into());
    let zonename = Field::Zonename.name();
    if !rec.has(zonename) {
        if let Some(v) = create_default(zonename, ctx) {
            rec.set(zonename, v);
        }
    }
    rec.set(
        Field::ZfsFilesystem.name(),
        format!("{pool}/{}", ctx.uuid).into(),
    );
    rec.set(Field::Zonepath.name(), ctx.zonepath.into());
    rec.set(Field::CreateTimestamp.name(), ctx.now.into());
    rec.set(Field::LastModified.name(), ctx.now.into());
    rec.set_u64(Field::V, 1);
    rec
}

/// What an update changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// Top-level properties whose stored value changed.
    pub changed: Vec<String>,
    /// The subset a running jail can take live.
    pub live: Vec<String>,
}

/// The collection properties `set_<name>` / `remove_<name>` edit, in the
/// order update applies them.
const EDITED_OBJECTS: [Field; 4] = [
    Field::CustomerMetadata,
    Field::InternalMetadata,
    Field::Tags,
    Field::Routes,
];

/// Applies a validated update payload to `rec`.
pub fn apply_update(
    rec: &mut VmRecord,
    payload: &Map<String, Value>,
) -> Result<UpdateOutcome, String> {
    let before = rec.clone();
    let brand = rec.brand.clone().unwrap_or_else(|| "jail".into());
    for (k, v) in payload {
        match k.as_str() {
            "set_customer_metadata"
            | "set_internal_metadata"
            | "set_tags"
            | "set_routes"
            | "remove_customer_metadata"
            | "remove_internal_metadata"
            | "remove_tags"
            | "remove_routes"
            | "add_nics"
            | "update_nics"
            | "remove_nics"
            | "add_filesystems"
            | "update_filesystems"
            | "remove_filesystems" => {}
            _ if v.is_null() => {
                rec.remove(k);
            }
            _ => rec.set(k, v.clone()),
        }
    }
    // Removal first, then set: a key named in both ends up set (SmartOS order).
    for field in EDITED_OBJECTS {
        let target = field.name();
        let mut map = rec.get_object(field).cloned().unwrap_or_default();
        if let Some(keys) = payload
            .get(&format!("remove_{target}"))
            .and_then(Value::as_array)
        {
            for key in keys.iter().filter_map(Value::as_str) {
                map.remove(key);
            }
        }
        if let Some(set) = payload
            .get(&format!("set_{target}"))
            .and_then(Value::as_object)
        {
            for (key, val) in set {
                map.insert(key.clone(), val.clone());
            }
        }
        rec.set(target, Value::Object(map));
    }
    update_nics(rec, payload, &brand)?;
    update_filesystems(rec, payload)?;
    if payload.keys().any(|k| touches_memory(k)) {
        fix_memory(rec, false);
    }
    let mut outcome = UpdateOutcome::default();
    let before_keys = before.key_names();
    let after_keys = rec.key_names();
    for k in before_keys.into_iter().chain(after_keys) {
        if before.get(k) != rec.get(k) && !outcome.changed.iter().any(|c| c == k) {
            if props::find(k).is_some_and(|p| p.live == Live::Yes) {
                outcome.live.push(k.to_string());
            }
            outcome.changed.push(k.to_string());
        }
    }
    Ok(outcome)
}

fn mac_of(n: &JsonObject) -> Option<String> {
    text(n, "mac").map(str::to_string)
}

/// The objects of an array-valued payload key.
fn objects(payload: &Map<String, Value>, key: &str) -> Option<Vec<JsonObject>> {
    payload.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_object().cloned())
            .collect::<Vec<_>>()
    })
}

fn update_nics(
    rec: &mut VmRecord,
    payload: &Map<String, Value>,
    brand: &str,
) -> Result<(), String> {
    let mut nics: Vec<JsonObject> = rec.nics.clone().unwrap_or_default();
    if let Some(remove) = payload.get("remove_nics").and_then(Value::as_array) {
        nics.retain(|n| !remove.iter().any(|m| m.as_str() == mac_of(n).as_deref()));
    }
    if let Some(updates) = objects(payload, "update_nics") {
        for upd in &updates {
            let mac = mac_of(upd).ok_or("NIC object needs a .mac property to update")?;
            let nic = nics
                .iter_mut()
                .find(|n| mac_of(n).as_deref() == Some(mac.as_str()))
                .ok_or_else(|| format!("There is no existing NIC with that mac address: {mac}"))?;
            for (k, v) in upd {
                nic.insert(k.clone(), v.clone());
            }
            if upd.contains_key("ips") && !upd.contains_key("ip") {
                nic.remove("ip");
                nic.remove("netmask");
            }
        }
        // Re-derive the legacy fields after changes.
        complete_nics(&mut nics, &[], brand);
    }
    if let Some(mut new) = objects(payload, "add_nics") {
        for n in &new {
            if let Some(m) = mac_of(n) {
                if nics
                    .iter()
                    .any(|e| mac_of(e).as_deref() == Some(m.as_str()))
                {
                    return Err(format!("Cannot add multiple NICs with the same MAC: {m}"));
                }
            }
        }
        complete_nics(&mut new, &nics, brand);
        nics.extend(new);
    }
    if nics.iter().filter(|n| is_primary(n)).count() > 1 {
        // A newly given primary wins over the old one.
        let newest = objects(payload, "add_nics")
            .or_else(|| objects(payload, "update_nics"))
            .and_then(|a| a.iter().rev().find(|n| is_primary(n)).and_then(mac_of));
        for n in nics.iter_mut() {
            if mac_of(n) != newest {
                n.remove("primary");
            }
        }
    }
    ensure_primary(&mut nics);
    sort_nics(&mut nics);
    rec.nics = Some(nics);
    rec.place(Field::Nics);
    Ok(())
}

fn update_filesystems(rec: &mut VmRecord, payload: &Map<String, Value>) -> Result<(), String> {
    let touched = [
        "add_filesystems",
        "update_filesystems",
        "remove_filesystems",
    ]
    .iter()
    .any(|k| payload.contains_key(*k));
    if !touched {
        return Ok(());
    }
    let mut fss: Vec<JsonObject> = rec.filesystems.clone().unwrap_or_default();
    let target = |f: &JsonObject| text(f, "target").map(str::to_string);
    if let Some(rm) = payload.get("remove_filesystems").and_then(Value::as_array) {
        fss.retain(|f| !rm.iter().any(|t| t.as_str() == target(f).as_deref()));
    }
    if let Some(upd) = objects(payload, "update_filesystems") {
        for u in &upd {
            let t = target(u).ok_or("filesystem update needs a .target")?;
            let f = fss
                .iter_mut()
                .find(|f| target(f).as_deref() == Some(t.as_str()))
                .ok_or_else(|| format!("No filesystem with target {t}"))?;
            for (k, v) in u {
                f.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(add) = objects(payload, "add_filesystems") {
        for a in add {
            if fss.iter().any(|f| target(f) == target(&a)) {
                return Err(format!(
                    "A filesystem with target {} already exists",
                    target(&a).unwrap_or_default()
                ));
            }
            fss.push(a);
        }
    }
    fss.sort_by_key(target);
    rec.filesystems = Some(fss);
    rec.place(Field::Filesystems);
    Ok(())
}

/// Errors of the shape create/update print for a blocked payload.
pub fn blocked_message(errors: &ValidationErrors) -> Option<String> {
    errors.blocks().then(|| errors.message())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::validate::{check, Action};
    use serde_json::json;

    const UUID: &str = "6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60";

    fn ctx() -> CreateContext<'static> {
        CreateContext {
            uuid: UUID,
            default_pool: "zones",
            zonepath: "/zones/6b8b4567-327b-4c4e-8d8e-1b2c3d4e5f60",
            now: "2026-01-01T00:00:00.000Z",
        }
    }

    fn make(payload: Value) -> VmRecord {
        let c = check(payload.as_object().unwrap(), Action::Create);
        assert!(!c.errors.blocks(), "{:?}", c.errors);
        new_vm_record(&c.payload, &ctx())
    }

    /// The record as the JSON object it is stored as.
    fn json(r: &VmRecord) -> Map<String, Value> {
        r.clone().into_map()
    }

    #[test]
    fn smartos_defaults() {
        let o = make(json!({"brand": "joyent", "image_uuid": UUID}));
        for (k, v) in [
            ("autoboot", json!(true)),
            ("billing_id", json!(ZERO_UUID)),
            ("owner_uuid", json!(ZERO_UUID)),
            ("cpu_shares", json!(100)),
            ("dns_domain", json!("local")),
            ("max_lwps", json!(2000)),
            ("max_msg_ids", json!(4096)),
            ("max_physical_memory", json!(256)),
            ("max_locked_memory", json!(256)),
            ("max_swap", json!(256)),
            ("tmpfs", json!(256)),
            ("quota", json!(10)),
            ("zfs_io_priority", json!(100)),
            ("zfs_root_recsize", json!(131072)),
            ("zpool", json!("zones")),
            ("nics", json!([])),
            ("resolvers", json!([])),
            ("tags", json!({})),
            ("brand", json!("joyent")),
            ("zfs_filesystem", json!(format!("zones/{UUID}"))),
            ("zonename", json!(UUID)),
            ("v", json!(1)),
        ] {
            assert_eq!(o.get(k), Some(v), "{k}");
        }
    }

    #[test]
    fn keys_land_where_they_always_did() {
        // `ram` is dropped by moving the last key into its place, as the
        // JSON map did; `get` shows the result for keys outside its order.
        let o = make(
            json!({"brand": "jail", "image_uuid": UUID, "ram": 512, "alias": "a", "init_name": "/sbin/init"}),
        );
        let want = [
            "brand",
            "image_uuid",
            "tags",
            "alias",
            "init_name",
            "autoboot",
            "owner_uuid",
            "billing_id",
            "zpool",
            "dns_domain",
            "cpu_shares",
            "zfs_io_priority",
            "max_lwps",
            "max_msg_ids",
            "max_sem_ids",
            "max_shm_ids",
            "limit_priv",
            "quota",
            "resolvers",
            "firewall_enabled",
            "zfs_root_recsize",
            "nics",
            "restart_init",
            "customer_metadata",
            "internal_metadata",
            "routes",
            "max_physical_memory",
            "max_locked_memory",
            "max_shm_memory",
            "tmpfs",
            "max_swap",
            "uuid",
            "zonename",
            "zfs_filesystem",
            "zonepath",
            "create_timestamp",
            "last_modified",
            "v",
        ];
        assert_eq!(o.key_names(), want);
        let mut o = o;
        upd(&mut o, json!({"alias": null}));
        assert_eq!(o.key_names()[3], "v");
    }

    #[test]
    fn every_create_default_is_in_the_table() {
        for name in CREATE_DEFAULTS {
            assert!(create_default(name, &ctx()).is_some(), "{name}");
        }
        for p in props::PROPS {
            let filled = matches!(
                p.default,
                DefaultRule::Stored(_) | DefaultRule::OnCreate(_) | DefaultRule::HostPool
            );
            let memory = touches_memory(p.name);
            assert_eq!(
                filled && !memory,
                CREATE_DEFAULTS.contains(&p.name),
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn ram_and_memory_clamps() {
        let o = json(&make(
            json!({"brand": "jail", "image_uuid": UUID, "ram": 1024, "tmpfs": 4096, "max_swap": 512}),
        ));
        assert_eq!(o["max_physical_memory"], json!(1024));
        assert_eq!(o["tmpfs"], json!(1024));
        assert_eq!(o["max_swap"], json!(1024));
        assert!(o.get("ram").is_none());
        let o = json(&make(
            json!({"brand": "jail", "image_uuid": UUID, "max_physical_memory": 128}),
        ));
        assert_eq!(o["max_swap"], json!(256));
    }

    #[test]
    fn nics_get_interfaces_macs_and_a_primary() {
        let o = json(&make(json!({"brand": "lx", "image_uuid": UUID, "nics": [
            {"nic_tag": "admin", "ips": ["192.0.2.5/24"], "gateways": ["192.0.2.1"]},
            {"nic_tag": "internal", "ips": ["dhcp"]}
        ]})));
        let nics = o["nics"].as_array().unwrap();
        assert_eq!(nics[0]["interface"], json!("eth0"));
        assert_eq!(nics[1]["interface"], json!("eth1"));
        assert_eq!(nics[0]["primary"], json!(true));
        assert!(nics[1].get("primary").is_none());
        assert_eq!(nics[0]["ip"], json!("192.0.2.5"));
        assert_eq!(nics[0]["netmask"], json!("255.255.255.0"));
        assert_eq!(nics[0]["gateway"], json!("192.0.2.1"));
        assert_eq!(nics[1]["ip"], json!("dhcp"));
        assert_ne!(nics[0]["mac"], nics[1]["mac"]);
    }

    fn upd(o: &mut VmRecord, payload: Value) -> UpdateOutcome {
        let c = check(payload.as_object().unwrap(), Action::Update);
        assert!(!c.errors.blocks(), "{:?}", c.errors);
        apply_update(o, &c.payload).unwrap()
    }

    #[test]
    fn update_sets_removes_and_reports_live() {
        let mut o = make(json!({"brand": "jail", "image_uuid": UUID, "tags": {"a": 1, "b": 2}}));
        let out = upd(
            &mut o,
            json!({"alias": "web", "quota": 20, "cpu_cap": 50, "set_tags": {"b": 3, "c": 4}, "remove_tags": ["a", "c"]}),
        );
        assert_eq!(o.get("tags"), Some(json!({"b": 3, "c": 4})));
        assert_eq!(o.alias.as_deref(), Some("web"));
        assert!(out.live.contains(&"quota".to_string()));
        assert!(out.live.contains(&"cpu_cap".to_string()));
        assert!(!out.live.contains(&"alias".to_string()));
        let out = upd(&mut o, json!({"cpu_cap": null}));
        assert!(o.cpu_cap.is_none());
        assert_eq!(out.changed, vec!["cpu_cap"]);
        let out = upd(&mut o, json!({"alias": "web"}));
        assert!(out.changed.is_empty());
    }

    #[test]
    fn update_ram_moves_memory_limits() {
        let mut o = make(json!({"brand": "jail", "image_uuid": UUID}));
        upd(&mut o, json!({"ram": 2048}));
        assert_eq!(o.max_physical_memory, Some(2048));
        assert_eq!(o.max_swap, Some(2048));
    }

    #[test]
    fn nic_add_update_remove() {
        let mut o = make(
            json!({"brand": "jail", "image_uuid": UUID, "nics": [{"nic_tag": "admin", "mac": "02:00:00:00:00:01"}]}),
        );
        upd(
            &mut o,
            json!({"add_nics": [{"nic_tag": "internal", "mac": "02:00:00:00:00:02", "primary": true}]}),
        );
        let nics = o.nics.clone().unwrap();
        assert_eq!(nics.len(), 2);
        assert_eq!(nics[1]["interface"], json!("net1"));
        assert!(nics[0].get("primary").is_none());
        assert_eq!(nics[1]["primary"], json!(true));
        upd(
            &mut o,
            json!({"update_nics": [{"mac": "02:00:00:00:00:02", "vlan_id": 7}]}),
        );
        assert_eq!(json(&o)["nics"][1]["vlan_id"], json!(7));
        upd(&mut o, json!({"remove_nics": ["02:00:00:00:00:02"]}));
        assert_eq!(o.nics.as_ref().unwrap().len(), 1);
        assert_eq!(json(&o)["nics"][0]["primary"], json!(true));
        let c = check(
            json!({"update_nics": [{"mac": "02:00:00:00:00:09", "vlan_id": 1}]})
                .as_object()
                .unwrap(),
            Action::Update,
        );
        assert!(apply_update(&mut o, &c.payload)
            .unwrap_err()
            .contains("no existing NIC"));
    }
}
