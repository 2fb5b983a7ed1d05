//! `vmadm update`: validate, apply to the stored object, hand the driver the
//! typed host changes: dataset properties (quota, compression, recsize) at
//! once, limits when the jail runs. Everything else takes effect at next boot.
//! An update that can change NICs also holds the global lock, so its
//! address check and save cannot interleave with another's.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use crate::driver::{Changes, DatasetChange, Limit};
use crate::spec::fs_policy::FsRequest;
use crate::spec::object::apply_update;
use crate::spec::{self, Action, Field, VmRecord};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Turns `key=value` arguments into a payload (values stay strings; the
/// property table coerces them).
pub fn payload_from_args(args: &[String]) -> OpsResult<Map<String, Value>> {
    let mut out = Map::new();
    for a in args {
        let (k, v) = a.split_once('=').ok_or_else(|| {
            OpsError::Usage(format!(
                "Invalid argument to update: {a} (expected key=value)"
            ))
        })?;
        out.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(out)
}

/// What changed, for the caller's messages.
#[derive(Debug, Default)]
pub struct Updated {
    /// Top-level properties whose stored value changed; empty when the
    /// update changed nothing (and nothing was written).
    pub changed: Vec<String>,
    /// Live properties the driver could not apply to the running jail.
    pub need_reboot: Vec<String>,
}

/// Validates and applies an update payload. Dataset properties (quota,
/// compression, record size) go to ZFS before the record is saved; live
/// limits are applied to a running VM after; anything else waits for the
/// next boot. Refused when validation blocks the payload or the VM is
/// incomplete.
pub fn update(ctx: &Ctx, uuid: &Uuid, input: &Map<String, Value>) -> OpsResult<Updated> {
    let checked = spec::check(input, Action::Update);
    if checked.errors.blocks() {
        return Err(OpsError::Invalid(checked.errors));
    }
    // The address check reads every other record: two NIC updates (or an
    // update and a create) checked side by side could each find an address
    // free and both take it. Create holds the global lock, so a NIC-changing
    // update takes it too, first, in the order delete takes both.
    let _global = touches_nics(&checked.payload)
        .then(|| ctx.store.lock_global())
        .transpose()?;
    let _lock = ctx.store.lock_vm(uuid)?;
    let rec = ctx.record(uuid)?;
    if rec.vm.has_incomplete_marker() {
        return Err(OpsError::Failed(format!(
            "VM {uuid} is incomplete; delete it and create it again"
        )));
    }
    let mut obj = rec.vm.clone();
    let outcome = apply_update(&mut obj, &checked.payload).map_err(OpsError::Failed)?;
    if outcome.changed.is_empty() {
        return Ok(Updated::default());
    }
    let nics_changed = outcome.changed.iter().any(|k| k == "nics");
    if nics_changed {
        ctx.check_addresses_free(uuid, &obj)?;
    }
    if outcome.changed.iter().any(|k| k == "filesystems") {
        let pool = obj.zpool.clone().unwrap_or_else(|| ctx.config.pool.clone());
        ctx.check_filesystems(
            &pool,
            &FsRequest::from_objects(obj.filesystems.iter().flatten()),
        )?;
    }
    check_ceilings(ctx, &checked.payload, &obj, false)?;
    let changes = host_changes(&outcome.changed, &obj)?;
    // Only an update with host effects needs the typed view.
    let spec = if changes.is_empty() && !nics_changed {
        None
    } else {
        Some(crate::spec::VmSpec::from_record(&obj).map_err(OpsError::Failed)?)
    };
    if let Some(spec) = spec.as_ref().filter(|_| !changes.dataset.is_empty()) {
        ctx.driver.update_dataset(spec, &changes.dataset)?;
    }
    ctx.store.save(uuid, &obj)?;
    notice_unenforced(ctx, &outcome.changed, &obj);
    let mut need_reboot = Vec::new();
    if let Some(spec) = spec.as_ref().filter(|_| !changes.limits.is_empty()) {
        if ctx.is_running(uuid)? {
            need_reboot = ctx
                .driver
                .update_live(spec, &changes.limits)?
                .iter()
                .map(|l| l.property().to_string())
                .collect();
        }
    }
    // Anti-spoofing rules follow the NICs' addresses and flags live.
    if let Some(spec) = spec.as_ref().filter(|_| nics_changed) {
        if ctx.is_running(uuid)? {
            ctx.driver.update_nics(spec)?;
        }
    }
    Ok(Updated {
        changed: outcome.changed,
        need_reboot,
    })
}

/// True when `payload` can change the VM's NICs (and so its addresses).
fn touches_nics(payload: &Map<String, Value>) -> bool {
    ["nics", "add_nics", "update_nics", "remove_nics"]
        .iter()
        .any(|k| payload.contains_key(*k))
}

/// A record size property's value; `None` for 0 (zfs's default). Refuses
/// a size zfs would refuse before anything is applied.
fn recsize(obj: &VmRecord, field: Field, name: &str) -> OpsResult<Option<u64>> {
    let v = obj.int_or_default(field).unwrap_or_default();
    if v == 0 {
        return Ok(None);
    }
    if !v.is_power_of_two() || v < 512 {
        return Err(OpsError::Failed(format!(
            "invalid {name} ({v}), must be 512-131072 and a power of 2. (0 to disable)"
        )));
    }
    Ok(Some(v))
}

/// Says on stderr which of `given` properties the host's driver stores
/// without enforcing them. A NIC property (`nics.*.<name>`) counts when
/// the NICs were given or changed and one of `obj`'s NICs has it set.
pub(crate) fn notice_unenforced(ctx: &Ctx, given: &[String], obj: &VmRecord) {
    let nics_given = given.iter().any(|g| g == "nics");
    for (prop, why) in ctx.driver.unenforced() {
        let named = match prop.strip_prefix("nics.*.") {
            Some(sub) => nics_given && obj.nics.iter().flatten().any(|n| is_set(n.get(sub))),
            None => given.iter().any(|g| g == prop),
        };
        if named {
            crate::driver::notice_unenforced(prop, why);
        }
    }
}

/// Refuses a limit the payload sets above what the host's driver can give
/// ([`crate::driver::Driver::limit_ceiling`]), before anything changes: a
/// SmartOS operator gets the amount asked for or an error, never less in
/// silence. A value the payload did not set is lowered to the bound at
/// boot; `creating` says so on stderr, since create is where such a value
/// is born (`max_locked_memory` defaults to `max_physical_memory`).
pub(crate) fn check_ceilings(
    ctx: &Ctx,
    payload: &Map<String, Value>,
    obj: &VmRecord,
    creating: bool,
) -> OpsResult<()> {
    for limit in Limit::ALL {
        let Some(ceiling) = ctx.driver.limit_ceiling(limit) else {
            continue;
        };
        let prop = limit.property();
        let Some(field) = Field::from_name(prop) else {
            continue;
        };
        let want = obj.int_or_default(field).unwrap_or_default();
        if want <= ceiling {
            continue;
        }
        let why = ceiling_message(ctx, limit, want, ceiling);
        if payload.contains_key(prop) {
            return Err(OpsError::Failed(why));
        }
        if creating {
            tracing::warn!("{why}; the VM gets {ceiling}");
        }
    }
    Ok(())
}

/// Why `want` of `limit` cannot be had on this host, when it cannot (see
/// [`check_ceilings`]); `vmadm validate` answers with the same words.
pub(crate) fn above_ceiling(ctx: &Ctx, limit: Limit, want: u64) -> Option<String> {
    let ceiling = ctx.driver.limit_ceiling(limit).filter(|c| want > *c)?;
    Some(ceiling_message(ctx, limit, want, ceiling))
}

/// The words for `want` of `limit` above the host's `ceiling`.
fn ceiling_message(ctx: &Ctx, limit: Limit, want: u64, ceiling: u64) -> String {
    format!(
        "{} {want} is above the {ceiling} this {} host can enforce ({})",
        limit.property(),
        ctx.driver.name(),
        ceiling_reason(limit)
    )
}

/// Why a driver bounds `limit`, for [`check_ceilings`]' messages.
fn ceiling_reason(limit: Limit) -> &'static str {
    match limit {
        Limit::MaxLockedMemory => {
            "MiB: vmadm's hard RLIMIT_MEMLOCK, which it cannot raise without CAP_SYS_RESOURCE; \
             run vmadm with that capability or a higher memlock limit, or ask for less"
        }
        _ => "the host's own limit",
    }
}

/// True for a value that asks for something: not absent, null, false or
/// empty.
fn is_set(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// The host effects of the changed properties, in the order they changed.
/// Refuses a record size zfs would refuse before anything is applied.
pub(crate) fn host_changes(changed: &[String], obj: &VmRecord) -> OpsResult<Changes> {
    let mut out = Changes::default();
    for k in changed {
        if let Some(limit) = Limit::from_property(k) {
            out.limits.push(limit);
            continue;
        }
        match k.as_str() {
            // Absent values mean what the property table says (no quota,
            // compression off, the default record size).
            "quota" => out.dataset.push(DatasetChange::Quota(
                obj.int_or_default(Field::Quota).unwrap_or(0),
            )),
            "zfs_root_compression" => out.dataset.push(DatasetChange::Compression(
                obj.str_or_default(Field::ZfsRootCompression)
                    .unwrap_or_default()
                    .to_string(),
            )),
            "zfs_root_recsize" => {
                if let Some(v) = recsize(obj, Field::ZfsRootRecsize, k)? {
                    out.dataset.push(DatasetChange::RecordSize(v));
                }
            }
            "zfs_data_compression" => out.dataset.push(DatasetChange::DataCompression(
                obj.str_or_default(Field::ZfsDataCompression)
                    .unwrap_or("off")
                    .to_string(),
            )),
            "zfs_data_recsize" => {
                if let Some(v) = recsize(obj, Field::ZfsDataRecsize, k)? {
                    out.dataset.push(DatasetChange::DataRecordSize(v));
                }
            }
            "zfs_filesystem_limit" => out.dataset.push(DatasetChange::FilesystemLimit(
                obj.int_or_default(Field::ZfsFilesystemLimit),
            )),
            "zfs_snapshot_limit" => out.dataset.push(DatasetChange::SnapshotLimit(
                obj.int_or_default(Field::ZfsSnapshotLimit),
            )),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::fake::FakeDriver;
    use crate::ops::testing::Fixture;
    use serde_json::json;

    fn changes(keys: &[&str], obj: Value) -> OpsResult<Changes> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        host_changes(&keys, &VmRecord::from_map(obj.as_object().unwrap().clone()))
    }

    #[test]
    fn changed_properties_become_typed_host_changes() {
        let c = changes(
            &[
                "alias",
                "quota",
                "cpu_cap",
                "hostname",
                "zfs_root_compression",
                "max_lwps",
            ],
            json!({"quota": 5, "zfs_root_compression": "lz4"}),
        )
        .unwrap();
        assert_eq!(
            c.dataset,
            [
                DatasetChange::Quota(5),
                DatasetChange::Compression("lz4".into())
            ]
        );
        assert_eq!(c.limits, [Limit::CpuCap, Limit::MaxLwps]);
        // Removed values fall back to no quota / compression off.
        let c = changes(&["quota", "zfs_root_compression"], json!({})).unwrap();
        assert_eq!(
            c.dataset,
            [
                DatasetChange::Quota(0),
                DatasetChange::Compression("off".into())
            ]
        );
        assert!(changes(&["alias", "hostname", "nics"], json!({}))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn record_sizes_zfs_refuses_are_refused_first() {
        let e = changes(
            &["quota", "zfs_root_recsize"],
            json!({"zfs_root_recsize": 1000}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("invalid zfs_root_recsize (1000)"), "{e}");
        let c = changes(&["zfs_root_recsize"], json!({"zfs_root_recsize": 0})).unwrap();
        assert!(c.is_empty());
        let c = changes(&["zfs_root_recsize"], json!({"zfs_root_recsize": 8192})).unwrap();
        assert_eq!(c.dataset, [DatasetChange::RecordSize(8192)]);
    }

    fn payload(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn key_value_arguments_become_a_payload() {
        let args = ["alias=web01".to_string(), "quota=5".to_string()];
        let p = payload_from_args(&args).unwrap();
        assert_eq!(Value::Object(p), json!({"alias": "web01", "quota": "5"}));
        let err = payload_from_args(&["alias".to_string()]).unwrap_err();
        assert!(matches!(err, OpsError::Usage(_)), "{err:?}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn dataset_changes_reach_the_driver_on_a_stopped_vm() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"quota": 2}));
        let mark = fx.mark();
        let up = update(
            &fx.ctx,
            &uuid,
            &payload(json!({"quota": 5, "zfs_root_compression": "lz4"})),
        )
        .unwrap();
        assert_eq!(up.changed, ["quota", "zfs_root_compression"]);
        assert!(up.need_reboot.is_empty());
        assert_eq!(
            fx.driver_calls_since(&mark),
            [format!(
                "update dataset {uuid} [Quota(5), Compression(\"lz4\")]"
            )]
        );
        // The driver owns the dataset: ops runs no zfs command itself.
        assert!(fx.commands_since(&mark).is_empty());
        let rec = fx.record(&uuid);
        assert_eq!(rec.quota, Some(5));
        assert_eq!(fx.stored(&uuid)["zfs_root_compression"], "lz4");
    }

    #[test]
    fn limits_wait_for_the_next_boot_of_a_stopped_vm() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let mark = fx.mark();
        let up = update(&fx.ctx, &uuid, &payload(json!({"max_lwps": 3000}))).unwrap();
        assert_eq!(up.changed, ["max_lwps"]);
        assert!(fx.driver_calls_since(&mark).is_empty());
        assert_eq!(fx.stored(&uuid)["max_lwps"], 3000);
    }

    #[test]
    fn limits_reach_a_running_vm_live() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        let mark = fx.mark();
        let up = update(
            &fx.ctx,
            &uuid,
            &payload(json!({"cpu_cap": 50, "max_lwps": 3000})),
        )
        .unwrap();
        assert!(up.need_reboot.is_empty());
        let calls = fx.driver_calls_since(&mark);
        assert_eq!(calls.len(), 1, "{calls:?}");
        let (verb, names) = calls[0].rsplit_once(' ').unwrap();
        assert_eq!(verb, format!("update {uuid}"));
        let mut names: Vec<&str> = names.split(',').collect();
        names.sort_unstable();
        assert_eq!(names, ["cpu_cap", "max_lwps"]);
        let stored = fx.stored(&uuid);
        assert_eq!(stored["cpu_cap"], 50);
        assert_eq!(stored["max_lwps"], 3000);
    }

    #[test]
    fn limits_the_driver_cannot_apply_live_are_reported() {
        let mut fake = FakeDriver::new();
        fake.reboot_limits = vec![Limit::MaxLwps];
        let fx = Fixture::with_driver(fake);
        let uuid = fx.running_vm(json!({}));
        let up = update(
            &fx.ctx,
            &uuid,
            &payload(json!({"cpu_cap": 50, "max_lwps": 3000})),
        )
        .unwrap();
        assert_eq!(up.need_reboot, ["max_lwps"]);
        // The record holds the new value for the next boot all the same.
        assert_eq!(fx.stored(&uuid)["max_lwps"], 3000);
    }

    #[test]
    fn properties_without_host_effects_only_change_the_record() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({"alias": "old"}));
        let mark = fx.mark();
        let up = update(
            &fx.ctx,
            &uuid,
            &payload(json!({"alias": "new", "hostname": "web01"})),
        )
        .unwrap();
        assert_eq!(up.changed, ["alias", "hostname"]);
        assert!(fx.driver_calls_since(&mark).is_empty());
        assert!(fx.commands_since(&mark).is_empty());
        let rec = fx.record(&uuid);
        assert_eq!(rec.alias.as_deref(), Some("new"));
        assert_eq!(rec.hostname.as_deref(), Some("web01"));
    }

    fn nic(mac: &str, ip: &str) -> Value {
        json!({"nic_tag": "admin", "mac": mac, "ips": [format!("{ip}/24")]})
    }

    #[test]
    fn nic_changes_reach_a_running_vm_and_taken_addresses_are_refused() {
        let fx = Fixture::new();
        let a = fx.running_vm(json!({"nics": [nic("02:00:00:00:00:01", "192.0.2.10")]}));
        let b = fx.create_vm(json!({"nics": [nic("02:00:00:00:00:02", "192.0.2.11")]}));
        // A taken IP: refused before the record or the driver is touched.
        let before = fx.stored(&b);
        let mark = fx.mark();
        let taken =
            json!({"update_nics": [{"mac": "02:00:00:00:00:02", "ips": ["192.0.2.10/24"]}]});
        let err = update(&fx.ctx, &b, &payload(taken))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("Conflict detected with another vm"),
            "{err}"
        );
        assert!(err.contains(&a.to_string()), "{err}");
        assert_eq!(fx.stored(&b), before);
        assert!(fx.driver_calls_since(&mark).is_empty());
        // A flag change on the running VM goes to the driver at once …
        let flag =
            json!({"update_nics": [{"mac": "02:00:00:00:00:01", "allow_ip_spoofing": true}]});
        let up = update(&fx.ctx, &a, &payload(flag)).unwrap();
        assert_eq!(up.changed, ["nics"], "{:?}", fx.stored(&a));
        assert_eq!(fx.driver_calls_since(&mark), [format!("update nics {a}")]);
        // … and a stopped VM reads it at boot.
        let mark = fx.mark();
        let flag =
            json!({"update_nics": [{"mac": "02:00:00:00:00:02", "allow_mac_spoofing": true}]});
        update(&fx.ctx, &b, &payload(flag)).unwrap();
        assert!(fx.driver_calls_since(&mark).is_empty());
    }

    #[test]
    fn two_updates_racing_for_one_ip_never_both_win() {
        let fx = Fixture::new();
        // Each round: two VMs, started together by a barrier, both move
        // to the same new address. Without the global lock both checks can
        // read the other's old record and both save (seen in round 0 when
        // the lock is taken out).
        for round in 0..20u8 {
            let mac_a = format!("02:00:00:00:01:{round:02x}");
            let mac_b = format!("02:00:00:00:02:{round:02x}");
            let a = fx
                .create_vm(json!({"nics": [nic(&mac_a, &format!("192.0.2.{}", 2 * round + 10))]}));
            let b = fx
                .create_vm(json!({"nics": [nic(&mac_b, &format!("192.0.2.{}", 2 * round + 11))]}));
            let target = format!("198.51.100.{round}/24");
            let barrier = std::sync::Barrier::new(2);
            let results: Vec<OpsResult<Updated>> = std::thread::scope(|s| {
                let go = |uuid: Uuid, mac: String| {
                    let (barrier, fx, target) = (&barrier, &fx, &target);
                    s.spawn(move || {
                        let p = json!({"update_nics": [{"mac": mac, "ips": [target]}]});
                        barrier.wait();
                        update(&fx.ctx, &uuid, &payload(p))
                    })
                };
                let ta = go(a, mac_a.clone());
                let tb = go(b, mac_b.clone());
                [ta, tb].into_iter().map(|t| t.join().unwrap()).collect()
            });
            let won = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(won, 1, "round {round}: {results:?}");
            let lost = results.iter().find_map(|r| r.as_ref().err()).unwrap();
            assert!(
                lost.to_string()
                    .starts_with("Conflict detected with another vm"),
                "{lost}"
            );
            let holders = [a, b]
                .iter()
                .filter(|u| fx.stored(u)["nics"][0]["ips"] == json!([target]))
                .count();
            assert_eq!(holders, 1, "round {round}");
        }
    }

    #[test]
    fn an_update_that_changes_nothing_writes_nothing() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({"alias": "same"}));
        let before = fx.stored(&uuid);
        let up = update(&fx.ctx, &uuid, &payload(json!({"alias": "same"}))).unwrap();
        assert!(up.changed.is_empty() && up.need_reboot.is_empty());
        assert_eq!(fx.stored(&uuid), before);
    }

    #[test]
    fn a_refused_record_size_leaves_record_and_dataset_alone() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        let before = fx.stored(&uuid);
        let mark = fx.mark();
        let err = update(
            &fx.ctx,
            &uuid,
            &payload(json!({"quota": 9, "zfs_root_recsize": 1000})),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("invalid zfs_root_recsize (1000)"), "{err}");
        assert!(fx.driver_calls_since(&mark).is_empty());
        assert_eq!(fx.stored(&uuid), before);
    }

    #[test]
    fn an_invalid_payload_is_refused_before_the_record_is_read() {
        let fx = Fixture::new();
        // No such VM either: validation answers first.
        let err = update(
            &fx.ctx,
            &Uuid::new_v4(),
            &payload(json!({"max_lwps": "many"})),
        )
        .unwrap_err();
        assert!(matches!(err, OpsError::Invalid(_)), "{err:?}");
    }

    #[test]
    fn an_incomplete_vm_is_refused() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        fx.mark_incomplete(&uuid);
        let err = update(&fx.ctx, &uuid, &payload(json!({"quota": 5})))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("VM {uuid} is incomplete")),
            "{err}"
        );
        assert!(fx.driver.calls().is_empty());
    }
}
