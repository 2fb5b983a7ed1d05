//! The VM object as `get`, `list` and `lookup` show it: the stored object
//! plus runtime fields from the OS, in SmartOS's key order.

use crate::driver::RuntimeState;
use crate::store::Record;
use serde_json::{Map, Value};

/// Keys that exist only inside records (bookkeeping, never shown).
pub const INCOMPLETE_KEY: &str = "_incomplete";

/// The order `vmadm get` prints the well-known keys in; others follow.
const ORDER: &[&str] = &[
    "zonename",
    "autoboot",
    "brand",
    "limit_priv",
    "v",
    "create_timestamp",
    "image_uuid",
    "cpu_shares",
    "max_lwps",
    "max_msg_ids",
    "max_sem_ids",
    "max_shm_ids",
    "max_shm_memory",
    "zfs_io_priority",
    "max_physical_memory",
    "max_locked_memory",
    "max_swap",
    "cpu_cap",
    "billing_id",
    "owner_uuid",
    "tmpfs",
    "hostname",
    "dns_domain",
    "resolvers",
    "alias",
    "nics",
    "uuid",
    "zone_state",
    "zonepath",
    "zoneid",
    "last_modified",
    "firewall_enabled",
    "server_uuid",
    "state",
    "boot_timestamp",
    "pid",
    "customer_metadata",
    "internal_metadata",
    "routes",
    "tags",
    "quota",
    "zfs_root_recsize",
    "zfs_filesystem",
    "zpool",
    "snapshots",
];

/// SmartOS `state` and `zone_state` for a record and its runtime.
pub fn states(vm: &Map<String, Value>, rt: Option<&RuntimeState>) -> (&'static str, &'static str) {
    if vm.get(INCOMPLETE_KEY) == Some(&Value::Bool(true)) {
        return ("incomplete", "incomplete");
    }
    match rt {
        Some(r) if r.running => ("running", "running"),
        _ => ("stopped", "installed"),
    }
}

/// The full object: stored keys, runtime keys, in `get` order. Takes the
/// record by value and moves its values (lookup renders thousands of these).
pub fn full_object(
    rec: Record,
    rt: Option<&RuntimeState>,
    server_uuid: Option<&str>,
) -> Map<String, Value> {
    let mut vm = rec.vm;
    let mut extra = runtime_fields(&vm, rt, server_uuid);
    let mut out = Map::new();
    for k in ORDER {
        if let Some(v) = extra.remove(*k).or_else(|| vm.shift_remove(*k)) {
            out.insert((*k).to_string(), v);
        }
    }
    if !out.contains_key("snapshots") {
        out.insert("snapshots".into(), Value::Array(Vec::new()));
    }
    for (k, v) in vm {
        if !k.starts_with('_') {
            out.insert(k, v);
        }
    }
    out
}

/// The same content as [`full_object`] without the `get` key order: for
/// `list`, which only reads fields, at a fraction of the cost.
pub fn unordered_object(
    rec: Record,
    rt: Option<&RuntimeState>,
    server_uuid: Option<&str>,
) -> Map<String, Value> {
    let mut vm = rec.vm;
    let extra = runtime_fields(&vm, rt, server_uuid);
    vm.extend(extra);
    vm.entry("snapshots")
        .or_insert_with(|| Value::Array(Vec::new()));
    vm
}

/// The fields that come from the OS and the host, not the record.
fn runtime_fields(
    vm: &Map<String, Value>,
    rt: Option<&RuntimeState>,
    server_uuid: Option<&str>,
) -> Map<String, Value> {
    let mut extra = Map::new();
    let (state, zone_state) = states(vm, rt);
    extra.insert("state".into(), state.into());
    extra.insert("zone_state".into(), zone_state.into());
    if let Some(rt) = rt.filter(|r| r.running) {
        if let Some(pid) = rt.pid {
            extra.insert("pid".into(), pid.into());
        }
        if let Some(ts) = &rt.boot_timestamp {
            extra.insert("boot_timestamp".into(), ts.clone().into());
        }
        if let Some(id) = rt.zoneid {
            extra.insert("zoneid".into(), id.into());
        }
    }
    if let Some(s) = server_uuid {
        extra.insert("server_uuid".into(), s.into());
    }
    extra
}

/// Adds the `type` and `ram` fields that only `list` and `lookup` show.
pub fn add_list_fields(obj: &mut Map<String, Value>) {
    let brand = obj.get("brand").and_then(Value::as_str).unwrap_or("");
    let t = crate::spec::brand::list_type(brand);
    obj.insert("type".into(), t.into());
    if let Some(m) = obj.get("max_physical_memory").cloned() {
        obj.insert("ram".into(), m);
    }
}
