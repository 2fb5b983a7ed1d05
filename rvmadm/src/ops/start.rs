//! `vmadm start`: boot a stopped VM and set autoboot, as SmartOS does.

use super::context::Ctx;
use super::error::{OpsError, OpsResult};
use super::lifecycle::{lock_and_load, set_autoboot};
use uuid::Uuid;

/// How `start` ended, for the caller's message.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// The VM was booted.
    Started,
    /// It was running already; nothing was done (`autoboot` untouched).
    AlreadyRunning,
}

/// Boots a stopped VM: first removes what a crashed earlier start or stop
/// may have left, then starts it and sets `autoboot`. A failure leaves
/// `autoboot` as it was.
pub fn start(ctx: &Ctx, uuid: &Uuid) -> OpsResult<Started> {
    let mut l = lock_and_load(ctx, uuid)?;
    if ctx.is_running(uuid)? {
        return Ok(Started::AlreadyRunning);
    }
    // A crash in an earlier start or stop may have left pieces behind.
    ctx.driver
        .cleanup(&l.spec)
        .map_err(|e| OpsError::Failed(format!("Unable to start VM {uuid}: {e}")))?;
    // The record's new `autoboot` is written (durably: write, fsync,
    // rename, fsync of the directory) while the driver boots the VM, not
    // after it: the runtime's tens of milliseconds hide the write. A boot
    // that fails puts the record back as it was.
    let before = l.rec.clone();
    let (booted, saved) = std::thread::scope(|s| {
        let rec = &mut l.rec;
        let saver = s.spawn(move || set_autoboot(ctx, uuid, rec, true));
        let booted = ctx.driver.start(&l.spec);
        (booted, saver.join())
    });
    let saved = saved.unwrap_or_else(|_| Err(OpsError::Failed("saving autoboot panicked".into())));
    if let Err(e) = booted {
        if saved.is_ok() && before.vm.autoboot != Some(true) {
            ctx.store.save(uuid, &before.vm)?;
        }
        return Err(OpsError::Failed(format!("Unable to start VM {uuid}: {e}")));
    }
    saved?;
    Ok(Started::Started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::fake::FakeDriver;
    use crate::ops::testing::Fixture;
    use serde_json::json;

    #[test]
    fn boots_a_stopped_vm_after_a_cleanup_and_sets_autoboot() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        assert_eq!(fx.record(&uuid).autoboot, Some(false));
        let mark = fx.mark();
        assert_eq!(start(&fx.ctx, &uuid).unwrap(), Started::Started);
        assert_eq!(
            fx.driver_calls_since(&mark),
            [format!("cleanup {uuid}"), format!("start {uuid}")]
        );
        assert!(fx.ctx.is_running(&uuid).unwrap());
        assert_eq!(fx.record(&uuid).autoboot, Some(true));
        assert!(fx.commands_since(&mark).is_empty());
    }

    #[test]
    fn a_running_vm_is_left_alone() {
        let fx = Fixture::new();
        let uuid = fx.running_vm(json!({}));
        let mark = fx.mark();
        assert_eq!(start(&fx.ctx, &uuid).unwrap(), Started::AlreadyRunning);
        assert!(fx.driver_calls_since(&mark).is_empty());
        // Only a start that boots sets autoboot.
        assert_eq!(fx.record(&uuid).autoboot, Some(false));
    }

    #[test]
    fn a_failed_boot_is_reported_and_autoboot_stays_off() {
        let mut fake = FakeDriver::new();
        fake.fail_start = Some("runtime refused".into());
        let fx = Fixture::with_driver(fake);
        let uuid = fx.create_vm(json!({}));
        let err = start(&fx.ctx, &uuid).unwrap_err().to_string();
        assert_eq!(err, format!("Unable to start VM {uuid}: runtime refused"));
        assert_eq!(fx.record(&uuid).autoboot, Some(false));
        assert!(!fx.ctx.is_running(&uuid).unwrap());
    }

    #[test]
    fn an_unknown_vm_is_smartos_no_such_zone() {
        let fx = Fixture::new();
        let uuid = Uuid::new_v4();
        let err = start(&fx.ctx, &uuid).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("zoneadm: {uuid}: No such zone configured")
        );
        assert!(fx.driver.calls().is_empty());
    }

    #[test]
    fn an_incomplete_vm_is_refused() {
        let fx = Fixture::new();
        let uuid = fx.create_vm(json!({}));
        fx.mark_incomplete(&uuid);
        let err = start(&fx.ctx, &uuid).unwrap_err().to_string();
        assert_eq!(err, format!("VM {uuid} is incomplete"));
        assert!(fx.driver.calls().is_empty());
    }
}
