//! Building and changing the stored VM object.
//!
//! [`new_vm_object`] turns a validated create payload into the full object
//! with SmartOS's defaults (memory 256 MiB, quota 10 GiB, …) and NIC fields
//! filled in (interface, MAC, primary). [`apply_update`] applies a validated
//! update payload to a stored object and names what changed, so ops can push
//! live changes to a running jail.

use super::mac;
use super::props::{self, Live};
use super::validate::ValidationErrors;
use serde_json::{Map, Value};

pub const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// Host facts create needs.
pub struct CreateContext<'a> {
    pub uuid: &'a str,
    pub default_pool: &'a str,
    /// Where the dataset will be mounted.
    pub zonepath: &'a str,
    pub now: &'a str,
}

fn u64_of(m: &Map<String, Value>, k: &str) -> Option<u64> {
    m.get(k).and_then(Value::as_u64)
}

/// Applies SmartOS's memory rules: `ram` sets max_physical_memory; locked,
/// shm and tmpfs default to it and are clamped to it; swap is at least
/// max(max_physical_memory, 256).
fn fix_memory(obj: &mut Map<String, Value>, creating: bool) {
    if let Some(ram) = obj.remove("ram") {
        obj.insert("max_physical_memory".into(), ram);
    }
    let phys = u64_of(obj, "max_physical_memory").unwrap_or(256);
    obj.insert("max_physical_memory".into(), phys.into());
    for k in ["max_locked_memory", "max_shm_memory", "tmpfs"] {
        let v = match u64_of(obj, k) {
            Some(v) => v.min(phys),
            None if creating => phys,
            None => continue,
        };
        obj.insert(k.into(), v.into());
    }
    let swap = u64_of(obj, "max_swap").unwrap_or(0).max(phys).max(256);
    obj.insert("max_swap".into(), swap.into());
}

/// Fills interface names, MACs and the primary flag of `nics`, keeping the
/// names already used by `existing`.
fn complete_nics(nics: &mut [Value], existing: &[Value], brand: &str) {
    let prefix = super::brand::interface_prefix(brand);
    let mut used: Vec<String> = existing
        .iter()
        .chain(nics.iter())
        .filter_map(|n| {
            n.get("interface")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    for nic in nics.iter_mut() {
        let Some(obj) = nic.as_object_mut() else {
            continue;
        };
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

fn sort_nics(nics: &mut [Value]) {
    let idx = |n: &Value| {
        n.get("interface")
            .and_then(Value::as_str)
            .map(|s| s.trim_start_matches(char::is_alphabetic))
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    };
    nics.sort_by_key(idx);
}

/// Makes sure exactly one NIC is primary when there are any.
fn ensure_primary(nics: &mut [Value]) {
    if nics.is_empty()
        || nics
            .iter()
            .any(|n| n.get("primary") == Some(&Value::Bool(true)))
    {
        return;
    }
    if let Some(obj) = nics[0].as_object_mut() {
        obj.insert("primary".into(), Value::Bool(true));
    }
}

/// Builds the stored object from a validated create payload.
pub fn new_vm_object(payload: &Map<String, Value>, ctx: &CreateContext) -> Map<String, Value> {
    let mut o = payload.clone();
    let brand = o
        .get("brand")
        .and_then(Value::as_str)
        .unwrap_or("jail")
        .to_string();
    let defaults: [(&str, Value); 18] = [
        ("autoboot", true.into()),
        ("owner_uuid", ZERO_UUID.into()),
        ("billing_id", ZERO_UUID.into()),
        ("zpool", ctx.default_pool.into()),
        ("dns_domain", "local".into()),
        ("cpu_shares", 100.into()),
        ("zfs_io_priority", 100.into()),
        ("max_lwps", 2000.into()),
        ("max_msg_ids", 4096.into()),
        ("max_sem_ids", 4096.into()),
        ("max_shm_ids", 4096.into()),
        ("limit_priv", "default".into()),
        ("quota", 10.into()),
        ("resolvers", Value::Array(vec![])),
        ("firewall_enabled", false.into()),
        ("zfs_root_recsize", 131_072.into()),
        ("nics", Value::Array(vec![])),
        ("restart_init", true.into()),
    ];
    for (k, v) in defaults {
        o.entry(k.to_string()).or_insert(v);
    }
    for k in ["customer_metadata", "internal_metadata", "routes", "tags"] {
        o.entry(k.to_string()).or_insert(Value::Object(Map::new()));
    }
    fix_memory(&mut o, true);
    if let Some(Value::Array(nics)) = o.get_mut("nics") {
        complete_nics(nics, &[], &brand);
        ensure_primary(nics);
        sort_nics(nics);
    }
    let pool = o
        .get("zpool")
        .and_then(Value::as_str)
        .unwrap_or(ctx.default_pool)
        .to_string();
    o.insert("uuid".into(), ctx.uuid.into());
    o.entry("zonename".to_string())
        .or_insert_with(|| ctx.uuid.into());
    o.insert(
        "zfs_filesystem".into(),
        format!("{pool}/{}", ctx.uuid).into(),
    );
    o.insert("zonepath".into(), ctx.zonepath.into());
    o.insert("create_timestamp".into(), ctx.now.into());
    o.insert("last_modified".into(), ctx.now.into());
    o.insert("v".into(), 1.into());
    o
}

/// What an update changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// Top-level properties whose stored value changed.
    pub changed: Vec<String>,
    /// The subset a running jail can take live.
    pub live: Vec<String>,
}

/// Applies a validated update payload to `obj`.
pub fn apply_update(
    obj: &mut Map<String, Value>,
    payload: &Map<String, Value>,
) -> Result<UpdateOutcome, String> {
    let before = obj.clone();
    let brand = obj
        .get("brand")
        .and_then(Value::as_str)
        .unwrap_or("jail")
        .to_string();
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
                obj.remove(k);
            }
            _ => {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    // Removal first, then set: a key named in both ends up set (SmartOS order).
    for target in ["customer_metadata", "internal_metadata", "tags", "routes"] {
        let mut map = obj
            .get(target)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
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
        obj.insert(target.into(), Value::Object(map));
    }
    update_nics(obj, payload, &brand)?;
    update_filesystems(obj, payload)?;
    if payload.keys().any(|k| {
        matches!(
            k.as_str(),
            "ram"
                | "max_physical_memory"
                | "max_locked_memory"
                | "max_swap"
                | "tmpfs"
                | "max_shm_memory"
        )
    }) {
        fix_memory(obj, false);
    }
    let mut outcome = UpdateOutcome::default();
    let keys: Vec<String> = before.keys().chain(obj.keys()).cloned().collect();
    for k in keys {
        if before.get(&k) != obj.get(&k) && !outcome.changed.contains(&k) {
            if props::find(&k).is_some_and(|p| p.live == Live::Yes) {
                outcome.live.push(k.clone());
            }
            outcome.changed.push(k);
        }
    }
    Ok(outcome)
}

fn update_nics(
    obj: &mut Map<String, Value>,
    payload: &Map<String, Value>,
    brand: &str,
) -> Result<(), String> {
    let mut nics: Vec<Value> = obj
        .get("nics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mac_of = |n: &Value| n.get("mac").and_then(Value::as_str).map(str::to_string);
    if let Some(remove) = payload.get("remove_nics").and_then(Value::as_array) {
        nics.retain(|n| !remove.iter().any(|m| m.as_str() == mac_of(n).as_deref()));
    }
    if let Some(updates) = payload.get("update_nics").and_then(Value::as_array) {
        for upd in updates {
            let mac = mac_of(upd).ok_or("NIC object needs a .mac property to update")?;
            let nic = nics
                .iter_mut()
                .find(|n| mac_of(n).as_deref() == Some(mac.as_str()))
                .ok_or_else(|| format!("There is no existing NIC with that mac address: {mac}"))?;
            if let (Some(dst), Some(src)) = (nic.as_object_mut(), upd.as_object()) {
                for (k, v) in src {
                    dst.insert(k.clone(), v.clone());
                }
                if src.contains_key("ips") && !src.contains_key("ip") {
                    dst.remove("ip");
                    dst.remove("netmask");
                }
            }
        }
        // Re-derive the legacy fields after changes.
        complete_nics(&mut nics, &[], brand);
    }
    if let Some(add) = payload.get("add_nics").and_then(Value::as_array) {
        let mut new = add.clone();
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
    let primaries = nics
        .iter()
        .filter(|n| n.get("primary") == Some(&Value::Bool(true)))
        .count();
    if primaries > 1 {
        // A newly given primary wins over the old one.
        let newest = payload
            .get("add_nics")
            .or_else(|| payload.get("update_nics"))
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .rev()
                    .find(|n| n.get("primary") == Some(&Value::Bool(true)))
            })
            .and_then(mac_of);
        for n in nics.iter_mut() {
            if mac_of(n) != newest {
                if let Some(o) = n.as_object_mut() {
                    o.remove("primary");
                }
            }
        }
    }
    ensure_primary(&mut nics);
    sort_nics(&mut nics);
    obj.insert("nics".into(), Value::Array(nics));
    Ok(())
}

fn update_filesystems(
    obj: &mut Map<String, Value>,
    payload: &Map<String, Value>,
) -> Result<(), String> {
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
    let mut fss: Vec<Value> = obj
        .get("filesystems")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let target = |f: &Value| f.get("target").and_then(Value::as_str).map(str::to_string);
    if let Some(rm) = payload.get("remove_filesystems").and_then(Value::as_array) {
        fss.retain(|f| !rm.iter().any(|t| t.as_str() == target(f).as_deref()));
    }
    if let Some(upd) = payload.get("update_filesystems").and_then(Value::as_array) {
        for u in upd {
            let t = target(u).ok_or("filesystem update needs a .target")?;
            let f = fss
                .iter_mut()
                .find(|f| target(f).as_deref() == Some(t.as_str()))
                .ok_or_else(|| format!("No filesystem with target {t}"))?;
            if let (Some(dst), Some(src)) = (f.as_object_mut(), u.as_object()) {
                for (k, v) in src {
                    dst.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if let Some(add) = payload.get("add_filesystems").and_then(Value::as_array) {
        for a in add {
            if fss.iter().any(|f| target(f) == target(a)) {
                return Err(format!(
                    "A filesystem with target {} already exists",
                    target(a).unwrap_or_default()
                ));
            }
            fss.push(a.clone());
        }
    }
    fss.sort_by_key(target);
    obj.insert("filesystems".into(), Value::Array(fss));
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

    fn make(payload: Value) -> Map<String, Value> {
        let c = check(payload.as_object().unwrap(), Action::Create);
        assert!(!c.errors.blocks(), "{:?}", c.errors);
        new_vm_object(&c.payload, &ctx())
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
            assert_eq!(o.get(k), Some(&v), "{k}");
        }
    }

    #[test]
    fn ram_and_memory_clamps() {
        let o = make(
            json!({"brand": "jail", "image_uuid": UUID, "ram": 1024, "tmpfs": 4096, "max_swap": 512}),
        );
        assert_eq!(o["max_physical_memory"], json!(1024));
        assert_eq!(o["tmpfs"], json!(1024));
        assert_eq!(o["max_swap"], json!(1024));
        assert!(o.get("ram").is_none());
        let o = make(json!({"brand": "jail", "image_uuid": UUID, "max_physical_memory": 128}));
        assert_eq!(o["max_swap"], json!(256));
    }

    #[test]
    fn nics_get_interfaces_macs_and_a_primary() {
        let o = make(json!({"brand": "lx", "image_uuid": UUID, "nics": [
            {"nic_tag": "admin", "ips": ["192.0.2.5/24"], "gateways": ["192.0.2.1"]},
            {"nic_tag": "internal", "ips": ["dhcp"]}
        ]}));
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

    fn upd(o: &mut Map<String, Value>, payload: Value) -> UpdateOutcome {
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
        assert_eq!(o["tags"], json!({"b": 3, "c": 4}));
        assert_eq!(o["alias"], json!("web"));
        assert!(out.live.contains(&"quota".to_string()));
        assert!(out.live.contains(&"cpu_cap".to_string()));
        assert!(!out.live.contains(&"alias".to_string()));
        let out = upd(&mut o, json!({"cpu_cap": null}));
        assert!(o.get("cpu_cap").is_none());
        assert_eq!(out.changed, vec!["cpu_cap"]);
        let out = upd(&mut o, json!({"alias": "web"}));
        assert!(out.changed.is_empty());
    }

    #[test]
    fn update_ram_moves_memory_limits() {
        let mut o = make(json!({"brand": "jail", "image_uuid": UUID}));
        upd(&mut o, json!({"ram": 2048}));
        assert_eq!(o["max_physical_memory"], json!(2048));
        assert_eq!(o["max_swap"], json!(2048));
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
        let nics = o["nics"].as_array().unwrap().clone();
        assert_eq!(nics.len(), 2);
        assert_eq!(nics[1]["interface"], json!("net1"));
        assert!(nics[0].get("primary").is_none());
        assert_eq!(nics[1]["primary"], json!(true));
        upd(
            &mut o,
            json!({"update_nics": [{"mac": "02:00:00:00:00:02", "vlan_id": 7}]}),
        );
        assert_eq!(o["nics"][1]["vlan_id"], json!(7));
        upd(&mut o, json!({"remove_nics": ["02:00:00:00:00:02"]}));
        assert_eq!(o["nics"].as_array().unwrap().len(), 1);
        assert_eq!(o["nics"][0]["primary"], json!(true));
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
