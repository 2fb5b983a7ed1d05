//! `vmadm validate create|update [brand]`: checks a payload without changing
//! anything, answering in SmartOS's words and JSON shape.

use super::context::Ctx;
use crate::spec::fs_policy::FsRequest;
use crate::spec::{self, brand, Action};
use serde_json::{json, Map, Value};

/// `Ok(message)` for a valid payload, `Err(json)` with the error object.
pub fn validate(
    action: Action,
    brand_arg: Option<&str>,
    payload: &Map<String, Value>,
) -> Result<String, Value> {
    let brand = match action {
        Action::Create => payload
            .get("brand")
            .and_then(Value::as_str)
            .map(str::to_string),
        Action::Update => brand_arg.map(str::to_string),
    };
    let brand = match brand {
        Some(b) if brand::is_supported(&b) => b,
        Some(b) => return Err(json!({ "bad_brand": b })),
        None => return Err(json!({ "bad_brand": "undefined" })),
    };
    let checked = spec::check(payload, action);
    if checked.errors.is_clean() {
        Ok(format!(
            "VALID '{}' payload for {brand} brand VMs.",
            action.as_str()
        ))
    } else {
        Err(serde_json::to_value(&checked.errors).unwrap_or(Value::Null))
    }
}

/// [`validate`], then the checks that need this host's configuration:
/// limits above what the host can give, and `filesystems` (and
/// `add_`/`update_filesystems`) sources against the allowlist. A refusal comes back as `bad_values` on the property, with
/// the reason under `message`.
pub fn validate_on_host(
    ctx: &Ctx,
    action: Action,
    brand_arg: Option<&str>,
    payload: &Map<String, Value>,
) -> Result<String, Value> {
    let ok = validate(action, brand_arg, payload)?;
    let pool = payload
        .get("zpool")
        .and_then(Value::as_str)
        .unwrap_or(&ctx.config.pool);
    // Limits above what this host can give (a default is not refused,
    // only an amount asked for; see `update::check_ceilings`).
    for limit in crate::driver::Limit::ALL {
        let want = payload.get(limit.property()).and_then(Value::as_u64);
        if let Some(message) = want.and_then(|w| super::update::above_ceiling(ctx, limit, w)) {
            return Err(json!({"bad_values": [limit.property()], "message": message}));
        }
    }
    for key in ["filesystems", "add_filesystems", "update_filesystems"] {
        let objs = payload.get(key).and_then(Value::as_array);
        let reqs = FsRequest::from_objects(objs.into_iter().flatten().filter_map(Value::as_object));
        if let Err(e) = ctx.check_filesystems(pool, &reqs) {
            return Err(
                json!({"bad_values": [format!("{key}.*.source")], "message": e.to_string()}),
            );
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn answers() {
        let ok = validate(
            Action::Create,
            None,
            &obj(json!({"brand": "joyent", "image_uuid": "11111111-2222-4333-8444-555555555555"})),
        );
        assert_eq!(ok.unwrap(), "VALID 'create' payload for joyent brand VMs.");
        let bad = validate(Action::Create, None, &obj(json!({"brand": "kvm"}))).unwrap_err();
        assert_eq!(bad, json!({"bad_brand": "kvm"}));
        let bad = validate(Action::Create, None, &obj(json!({}))).unwrap_err();
        assert_eq!(bad, json!({"bad_brand": "undefined"}));
        let bad = validate(
            Action::Update,
            Some("jail"),
            &obj(json!({"quota": -1, "foo": 1})),
        )
        .unwrap_err();
        assert_eq!(
            bad,
            json!({"bad_values": ["quota"], "bad_properties": ["foo"], "missing_properties": []})
        );
    }
}
