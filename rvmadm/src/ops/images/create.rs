//! `imgadm create <vm-uuid>`: an image from a stopped VM.
//!
//! Holds the VM's lock for the whole run, so no `vmadm start`, `update` or
//! `delete` of it can slip in between the check and the snapshot; reads the
//! VM through the record store and asks the driver whether it runs (the
//! record itself never says). The snapshot/send pipeline is `image::create`.

use crate::image::build::Built;
use crate::image::create::{self as pipeline, CreateOpts, SourceVm};
use crate::image::error::{parse_uuid, Code, ImgError, Result};
use crate::ops::Ctx;

/// Makes an image of VM `vm_uuid_arg`, which must exist and be stopped.
/// A temporary snapshot left behind is reported to `warn`.
pub fn create(
    ctx: &Ctx,
    vm_uuid_arg: &str,
    opts: &CreateOpts,
    warn: &mut dyn FnMut(String),
) -> Result<Built> {
    let uuid = parse_uuid(vm_uuid_arg)?;
    let _lock = ctx.store.lock_vm(&uuid)?;
    let rec = ctx
        .store
        .load(&uuid)
        .map_err(|e| ImgError::new(Code::VmNotFound, e.to_string()))?
        .ok_or_else(|| ImgError::vm_not_found(uuid))?;
    let running = ctx
        .is_running(&uuid)
        .map_err(|e| ImgError::new(Code::InternalError, e.to_string()))?;
    if running {
        return Err(ImgError::vm_not_stopped(uuid));
    }
    let vm = SourceVm {
        uuid,
        zpool: rec.vm.zpool.unwrap_or_else(|| ctx.config.pool.clone()),
        brand: rec.vm.brand,
    };
    pipeline::create(&ctx.config, &ctx.zfs(), &vm, opts, warn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::driver::fake::FakeDriver;
    use crate::exec::RecordingRunner;
    use crate::image::manifest::Compression;
    use std::sync::Arc;
    use uuid::Uuid;

    fn ctx(state: &std::path::Path, runner: Arc<RecordingRunner>) -> Ctx {
        let config = Config {
            state_dir: state.to_path_buf(),
            image_dir: state.join("images"),
            ..Config::default()
        };
        Ctx::new(config, runner, Box::new(FakeDriver::new()))
    }

    fn opts(out: &std::path::Path) -> CreateOpts {
        CreateOpts {
            outdir: out.to_path_buf(),
            incremental: false,
            compression: Compression::Gzip,
            manifest: None,
            fields: Vec::new(),
        }
    }

    /// A stored VM record; returns its uuid.
    fn add_vm(ctx: &Ctx) -> Uuid {
        let uuid = Uuid::new_v4();
        let vm = serde_json::json!({
            "uuid": uuid.to_string(), "brand": "lx", "zpool": "zones",
            "image_uuid": "11111111-2222-4333-8444-555555555555",
        });
        let vm = crate::spec::VmRecord::from_map(vm.as_object().unwrap().clone());
        ctx.store.save(&uuid, &vm).unwrap();
        uuid
    }

    #[test]
    fn a_running_vm_is_refused_before_any_zfs_command() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(RecordingRunner::new());
        let ctx = ctx(dir.path(), runner.clone());
        let uuid = add_vm(&ctx);
        let spec = ctx.spec(&ctx.record(&uuid).unwrap()).unwrap();
        ctx.driver.start(&spec).unwrap();
        let mut warnings = Vec::new();
        let err = create(&ctx, &uuid.to_string(), &opts(dir.path()), &mut |w| {
            warnings.push(w)
        })
        .unwrap_err();
        assert_eq!(err.code, Code::VmNotStopped, "{err}");
        assert_eq!(err.message, format!("vm \"{uuid}\" is not stopped"));
        assert!(runner.calls().is_empty(), "{:?}", runner.calls());
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_stopped_vm_goes_on_to_its_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(RecordingRunner::new());
        let ctx = ctx(dir.path(), runner.clone());
        let uuid = add_vm(&ctx);
        // Past the running check, the first missing piece is the manifest
        // fields: the dataset was already asked for.
        let err = create(&ctx, &uuid.to_string(), &opts(dir.path()), &mut |_| {}).unwrap_err();
        assert_eq!(err.code, Code::Usage, "{err}");
        assert!(
            runner
                .calls()
                .iter()
                .any(|a| a.0.iter().any(|w| w == &format!("zones/{uuid}"))),
            "{:?}",
            runner.calls()
        );
    }

    #[test]
    fn unknown_vm_and_bad_uuid() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path(), Arc::new(RecordingRunner::new()));
        let err = create(
            &ctx,
            &Uuid::new_v4().to_string(),
            &opts(dir.path()),
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(err.code, Code::VmNotFound);
        let err = create(&ctx, "*", &opts(dir.path()), &mut |_| {}).unwrap_err();
        assert_eq!(err.code, Code::InvalidUUID);
    }
}
