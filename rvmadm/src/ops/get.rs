//! `vmadm get <uuid>`: the full VM object, runtime fields from the OS.

use super::context::Ctx;
use super::error::OpsResult;
use super::view::full_object;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The VM object `vmadm get` prints: the stored properties in SmartOS's
/// key order, with `state`, `zone_state`, `pid` and the other runtime
/// fields as the driver finds them now.
pub fn get(ctx: &Ctx, uuid: &Uuid) -> OpsResult<Map<String, Value>> {
    let rec = ctx.record(uuid)?;
    let rt = ctx.runtime(uuid)?;
    Ok(full_object(
        rec,
        rt.as_ref(),
        ctx.config.server_uuid.as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Fixture;
    use crate::ops::OpsError;
    use serde_json::json;

    #[test]
    fn get_spawns_no_process() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        let mark = fx.mark();
        get(&fx.ctx, &uuid).unwrap();
        assert!(fx.commands_since(&mark).is_empty());
    }

    #[test]
    fn a_running_vm_shows_the_drivers_runtime_state() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({"alias": "web01"}));
        let vm = get(&fx.ctx, &uuid).unwrap();
        assert_eq!(vm["uuid"], uuid.to_string());
        assert_eq!(vm["alias"], "web01");
        assert_eq!(vm["state"], "running");
        assert_eq!(vm["zone_state"], "running");
        // The fake's init: pid 4242, zone id 1.
        assert_eq!(vm["pid"], 4242);
        assert_eq!(vm["zoneid"], 1);
        assert_eq!(vm["boot_timestamp"], "2026-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_stopped_vm_is_installed_without_runtime_fields() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        fx.driver.set_running(uuid, false);
        let vm = get(&fx.ctx, &uuid).unwrap();
        assert_eq!(vm["state"], "stopped");
        assert_eq!(vm["zone_state"], "installed");
        for k in ["pid", "zoneid", "boot_timestamp"] {
            assert!(!vm.contains_key(k), "{k} shown for a stopped VM");
        }
    }

    #[test]
    fn the_configured_server_uuid_is_shown() {
        let mut fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        assert!(!get(&fx.ctx, &uuid).unwrap().contains_key("server_uuid"));
        let server = "44454c4c-0000-1000-8000-000000000001";
        fx.ctx.config.server_uuid = Some(server.into());
        assert_eq!(get(&fx.ctx, &uuid).unwrap()["server_uuid"], server);
    }

    #[test]
    fn an_unknown_vm_is_smartos_no_such_zone() {
        let fx = Fixture::new();
        let err = get(&fx.ctx, &Uuid::new_v4()).unwrap_err();
        assert!(matches!(err, OpsError::NoSuchVm(_)), "{err:?}");
    }
}
