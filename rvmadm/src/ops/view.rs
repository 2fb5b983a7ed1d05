//! The VM object as `get`, `list` and `lookup` show it: the stored record
//! plus runtime fields from the OS, in SmartOS's key order (keys outside
//! that order follow in stored order; `_`-prefixed bookkeeping is hidden).

use crate::driver::RuntimeState;
use crate::spec::record::Key;
use crate::spec::{Field, VmRecord};
use crate::store::Record;
use serde_json::{Map, Value};
use std::sync::OnceLock;

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
pub fn states(vm: &VmRecord, rt: Option<&RuntimeState>) -> (&'static str, &'static str) {
    states_of(vm.is_incomplete(), rt)
}

/// [`states`] from the incomplete marker alone (`list` reads no record).
pub fn states_of(incomplete: bool, rt: Option<&RuntimeState>) -> (&'static str, &'static str) {
    if incomplete {
        return ("incomplete", "incomplete");
    }
    match rt {
        Some(r) if r.running => ("running", "running"),
        _ => ("stopped", "installed"),
    }
}

/// Where each known property sits in [`ORDER`], by field (looked up once:
/// `lookup` renders thousands of records).
fn field_ranks() -> &'static [Option<usize>] {
    static RANKS: OnceLock<Vec<Option<usize>>> = OnceLock::new();
    RANKS.get_or_init(|| {
        Field::ALL
            .iter()
            .map(|f| ORDER.iter().position(|k| *k == f.name()))
            .collect()
    })
}

fn rank(key: &Key) -> Option<usize> {
    match key {
        Key::Field(f) => field_ranks().get(*f as usize).copied().flatten(),
        Key::Extra(n) => ORDER.iter().position(|k| k == n),
    }
}

/// The full object: stored keys, runtime keys, in `get` order. Takes the
/// record by value and moves its values (lookup renders thousands of these).
/// A key both stored and from the OS shows the stored value, in its place.
pub fn full_object(
    rec: Record,
    rt: Option<&RuntimeState>,
    server_uuid: Option<&str>,
) -> Map<String, Value> {
    let mut runtime = runtime_fields(&rec.vm, rt, server_uuid);
    let entries = rec.vm.into_entries();
    let mut ordered: Vec<Option<Value>> = vec![None; ORDER.len()];
    let mut rest = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        match rank(&k) {
            Some(i) => ordered[i] = Some(v),
            None => rest.push((k, v)),
        }
    }
    let mut out = Map::with_capacity(ORDER.len() + rest.len());
    for (k, v) in ORDER.iter().zip(ordered) {
        if let Some(v) = v.or_else(|| runtime.remove(*k)) {
            out.insert((*k).to_string(), v);
        }
    }
    if !out.contains_key("snapshots") {
        out.insert("snapshots".into(), Value::Array(Vec::new()));
    }
    for (k, v) in rest {
        if !k.name().starts_with('_') {
            out.insert(k.name().to_string(), v);
        }
    }
    out
}

/// The same content as [`full_object`] without the `get` key order: for
/// `list`, which only reads fields. Here a runtime field wins over a stored
/// key of the same name. `wanted` limits the stored keys to those a query
/// reads (`None`: all of them); runtime fields are always there.
pub fn unordered_object(
    rec: Record,
    rt: Option<&RuntimeState>,
    server_uuid: Option<&str>,
    wanted: Option<&[String]>,
) -> Map<String, Value> {
    let extra = runtime_fields(&rec.vm, rt, server_uuid);
    let mut vm = match wanted {
        Some(keys) => rec.vm.into_map_of(keys),
        None => rec.vm.into_map(),
    };
    vm.extend(extra);
    if wanted.is_none_or(|w| w.iter().any(|k| k == "snapshots")) {
        vm.entry("snapshots")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    vm
}

/// The fields that come from the OS and the host, not the record.
fn runtime_fields(
    vm: &VmRecord,
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
