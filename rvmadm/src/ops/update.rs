//! `vmadm update`: validate, apply to the stored object, push ZFS properties
//! (quota, compression, recsize) at once, and hand the live properties to
//! the driver when the jail runs. Everything else takes effect at next boot.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::view::INCOMPLETE_KEY;
use crate::spec::object::apply_update;
use crate::spec::{self, Action};
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
    pub changed: Vec<String>,
    /// Live properties the driver could not apply to the running jail.
    pub need_reboot: Vec<String>,
}

pub fn update(ctx: &Ctx, uuid: &Uuid, input: &Map<String, Value>) -> OpsResult<Updated> {
    let checked = spec::check(input, Action::Update);
    if checked.errors.blocks() {
        return Err(OpsError::Invalid(checked.errors));
    }
    let _lock = ctx.store.lock_vm(uuid)?;
    let rec = ctx.record(uuid)?;
    if rec.vm.get(INCOMPLETE_KEY).is_some() {
        return Err(OpsError::Failed(format!(
            "VM {uuid} is incomplete; delete it and create it again"
        )));
    }
    let mut obj = rec.vm.clone();
    let outcome = apply_update(&mut obj, &checked.payload).map_err(OpsError::Failed)?;
    if outcome.changed.is_empty() {
        return Ok(Updated::default());
    }
    let dataset = obj
        .get("zfs_filesystem")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| ctx.config.vm_dataset(uuid));
    let zfs = ctx.zfs();
    for k in &outcome.changed {
        match k.as_str() {
            "quota" => zfs.set_quota_gib(
                &dataset,
                obj.get("quota").and_then(Value::as_u64).unwrap_or(0),
            )?,
            "zfs_root_compression" => zfs.set(
                &dataset,
                "compression",
                obj.get(k).and_then(Value::as_str).unwrap_or("off"),
            )?,
            "zfs_root_recsize" => {
                let v = obj.get(k).and_then(Value::as_u64).unwrap_or(131_072);
                if v != 0 {
                    if !v.is_power_of_two() || v < 512 {
                        return Err(OpsError::Failed(format!(
                            "invalid zfs_root_recsize ({v}), must be 512-131072 and a power of 2. (0 to disable)"
                        )));
                    }
                    zfs.set(&dataset, "recordsize", &v.to_string())?;
                }
            }
            _ => {}
        }
    }
    ctx.store.save(uuid, &obj)?;
    let mut need_reboot = Vec::new();
    let live: Vec<String> = outcome
        .live
        .iter()
        .filter(|k| k.as_str() != "quota")
        .cloned()
        .collect();
    if !live.is_empty() && ctx.is_running(uuid)? {
        let spec = crate::spec::VmSpec::from_object(&obj).map_err(OpsError::Failed)?;
        need_reboot = ctx.driver.update_live(&spec, &live)?;
    }
    Ok(Updated {
        changed: outcome.changed,
        need_reboot,
    })
}
