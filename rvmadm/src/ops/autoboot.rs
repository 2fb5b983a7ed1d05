//! `vmadm autoboot`: at host boot, start every VM with autoboot=true that is
//! not running, oldest first; one failure never stops the others.

use super::context::Ctx;
use super::error::OpsResult;
use uuid::Uuid;

/// Outcome per VM, in start order.
pub fn autoboot(ctx: &Ctx) -> OpsResult<Vec<(Uuid, Result<(), String>)>> {
    let mut candidates: Vec<(String, Uuid)> = Vec::new();
    for (uuid, rec) in ctx.store.load_all()? {
        let Ok(rec) = rec else { continue };
        if rec.vm.autoboot == Some(true) {
            let created = rec.vm.create_timestamp.unwrap_or_default();
            candidates.push((created, uuid));
        }
    }
    candidates.sort();
    let uuids: Vec<Uuid> = candidates.iter().map(|(_, u)| *u).collect();
    let running = ctx.runtimes(&uuids)?;
    let mut out = Vec::new();
    for uuid in uuids {
        if running.get(&uuid).is_some_and(|r| r.running) {
            continue;
        }
        let r = super::start::start(ctx, &uuid)
            .map(|_| ())
            .map_err(|e| e.to_string());
        out.push((uuid, r));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::fake::FakeDriver;
    use crate::ops::testing::Fixture;
    use serde_json::json;

    /// A VM whose record says autoboot but which does not run (the host
    /// just booted), created at `created`.
    fn down_autoboot_vm(fx: &Fixture, created: &str) -> Uuid {
        let uuid = fx.create_vm(json!({}));
        let mut rec = fx.record(&uuid);
        rec.autoboot = Some(true);
        rec.create_timestamp = Some(created.into());
        fx.ctx.store.save(&uuid, &rec).unwrap();
        uuid
    }

    #[test]
    fn starts_only_stopped_autoboot_vms_oldest_first() {
        let fx = Fixture::new();
        let newer = down_autoboot_vm(&fx, "2026-02-01T00:00:00.000Z");
        let older = down_autoboot_vm(&fx, "2026-01-01T00:00:00.000Z");
        let manual = fx.create_vm(json!({}));
        let up = fx.create_vm(json!({"autoboot": true}));
        let mark = fx.mark();
        let out = autoboot(&fx.ctx).unwrap();
        assert_eq!(out, [(older, Ok(())), (newer, Ok(()))]);
        // Each start is the start verb: clean up, then boot.
        assert_eq!(
            fx.driver_calls_since(&mark),
            [
                format!("cleanup {older}"),
                format!("start {older}"),
                format!("cleanup {newer}"),
                format!("start {newer}")
            ]
        );
        assert!(fx.ctx.is_running(&older).unwrap());
        assert!(!fx.ctx.is_running(&manual).unwrap());
        assert!(fx.ctx.is_running(&up).unwrap());
    }

    #[test]
    fn one_failure_does_not_stop_the_others() {
        let mut fake = FakeDriver::new();
        fake.fail_start = Some("no init".into());
        let fx = Fixture::with_driver(fake);
        let a = down_autoboot_vm(&fx, "2026-01-01T00:00:00.000Z");
        let b = down_autoboot_vm(&fx, "2026-01-02T00:00:00.000Z");
        let out = autoboot(&fx.ctx).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].0, out[1].0), (a, b));
        for (uuid, r) in &out {
            let err = r.as_ref().unwrap_err();
            assert_eq!(*err, format!("Unable to start VM {uuid}: no init"));
        }
        assert!(fx.driver.calls().contains(&format!("start {b}")));
    }

    #[test]
    fn nothing_to_do_without_autoboot_vms() {
        let fx = Fixture::new();
        fx.create_vm(json!({}));
        assert!(autoboot(&fx.ctx).unwrap().is_empty());
        assert!(fx.driver.calls().is_empty());
    }
}
